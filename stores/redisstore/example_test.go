package redisstore_test

import (
	"log"

	"github.com/alexedwards/scs/v2"

	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// The store replaces scs's redisstore.New: sessions stay where they were,
// and stepup can merge revocations atomically across replicas. Open takes
// a standalone server, any node of a Redis Cluster, or Sentinels with
// ?master_set=NAME. The session manager then goes to stepup.New as
// Config.SessionManager, which takes this store where it refuses scs's
// own.
func Example() {
	store, err := redisstore.Open("redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	sessions := scs.New()
	sessions.Store = store

	// su, err := stepup.New(stepup.Config{SessionManager: sessions /* , Issuer, ClientID, ... */})
	_ = sessions
}
