package postgresstore_test

import (
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
)

// PostgresStore is what stepup.New asks of a store shared by replicas. The
// tests that run it against a real PostgreSQL are in the repository's root
// module (stores_postgres_test.go), beside the one helper that starts
// PostgreSQL.
var _ stepup.AtomicStore = (*postgresstore.PostgresStore)(nil)
