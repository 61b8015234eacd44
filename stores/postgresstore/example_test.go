package postgresstore_test

import (
	"database/sql"
	"log"

	"github.com/alexedwards/scs/v2"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
)

// The store replaces scs's postgresstore.New: sessions stay in the same
// table, and stepup can merge revocations atomically across replicas. The
// driver is the application's: import _ "github.com/lib/pq" (driver
// "postgres") or _ "github.com/jackc/pgx/v5/stdlib" (driver "pgx").
func Example() {
	db, err := sql.Open("postgres", "postgres://app@db.internal/app")
	if err != nil {
		log.Fatal(err)
	}
	sessions := scs.New()
	sessions.Store = postgresstore.New(db)

	su, err := stepup.New(stepup.Config{
		Issuer:         "https://idp.example.com",
		ClientID:       "admin-console",
		RedirectURL:    "https://app.example.com/stepup/callback",
		SessionManager: sessions,
		Scopes:         map[string]stepup.Scope{"admin": {ACR: []string{"urn:example:mfa"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = su
}
