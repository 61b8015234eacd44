module github.com/oidc-stepup/stepup/stores/postgresstore

go 1.26.0

require (
	github.com/alexedwards/scs/postgresstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/v2 v2.9.0
)

require (
	github.com/coreos/go-oidc/v3 v3.21.0 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
)

// The library is required by this module's tests only: they assert that
// PostgresStore is a stepup.AtomicStore. The replace points at this
// repository's copy of it.
require github.com/oidc-stepup/stepup/stepup v0.0.0-00010101000000-000000000000

replace github.com/oidc-stepup/stepup/stepup => ../../stepup
