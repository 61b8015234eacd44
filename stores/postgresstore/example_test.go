package postgresstore_test

import (
	"database/sql"
	"log"

	"github.com/alexedwards/scs/v2"

	"github.com/oidc-stepup/stepup/stores/postgresstore"
)

// The store replaces scs's postgresstore.New: sessions stay in the same
// table, and stepup can merge revocations atomically across replicas. The
// driver is the application's: import _ "github.com/lib/pq" (driver
// "postgres") or _ "github.com/jackc/pgx/v5/stdlib" (driver "pgx"). The
// session manager then goes to stepup.New as Config.SessionManager,
// which takes this store where it refuses scs's own.
func Example() {
	db, err := sql.Open("postgres", "postgres://app@db.internal/app")
	if err != nil {
		log.Fatal(err)
	}
	sessions := scs.New()
	sessions.Store = postgresstore.New(db)

	// su, err := stepup.New(stepup.Config{SessionManager: sessions /* , Issuer, ClientID, ... */})
	_ = sessions
}
