module github.com/oidc-stepup/stepup/tools

go 1.26.0

require (
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/oidc-stepup/stepup v0.1.0
	github.com/oidc-stepup/stepup/stepup v0.1.0
	github.com/oidc-stepup/stepup/stepup/stepuptest v0.1.0
	github.com/oidc-stepup/stepup/stores/redisstore v0.1.0
	golang.org/x/mod v0.43.0
)

require (
	github.com/bmatcuk/doublestar/v4 v4.10.4 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coreos/go-oidc/v3 v3.21.0 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/gorilla/securecookie v1.1.2 // indirect
	github.com/muhlemmer/gu v0.3.1 // indirect
	github.com/muhlemmer/httpforwarded v0.1.0 // indirect
	github.com/redis/rueidis v1.0.80 // indirect
	github.com/rs/cors v1.11.1 // indirect
	github.com/zitadel/oidc/v3 v3.52.0 // indirect
	github.com/zitadel/schema v1.3.2 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel v1.46.0 // indirect
	go.opentelemetry.io/otel/metric v1.46.0 // indirect
	go.opentelemetry.io/otel/trace v1.46.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace (
	github.com/oidc-stepup/stepup => ..
	github.com/oidc-stepup/stepup/stepup => ../stepup
	github.com/oidc-stepup/stepup/stepup/stepuptest => ../stepup/stepuptest
	github.com/oidc-stepup/stepup/stores/postgresstore => ../stores/postgresstore
	github.com/oidc-stepup/stepup/stores/redisstore => ../stores/redisstore
)
