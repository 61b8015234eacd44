package redisstore_test

import (
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// RedisStore is what stepup.New asks of a store shared by replicas. The
// tests that run it against a real redis-server are in the repository's
// root module (stores_redis_test.go), beside the one helper that starts
// redis-server.
var _ stepup.AtomicStore = (*redisstore.RedisStore)(nil)
