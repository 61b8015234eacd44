module github.com/oidc-stepup/stepup/stores/redisstore

go 1.26.0

require (
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/redis/rueidis v1.0.80
)

require golang.org/x/sys v0.50.0 // indirect
