package redisstore_test

import (
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// The store replaces scs's redisstore.New: sessions stay where they were,
// and stepup can merge revocations atomically across replicas. The
// session manager then goes to stepup.New as Config.SessionManager,
// which takes this store where it refuses scs's own.
func Example() {
	pool := &redis.Pool{
		MaxIdle: 16,
		Dial: func() (redis.Conn, error) {
			// A read timeout bounds every read, pipelined ones included.
			return redis.Dial("tcp", "127.0.0.1:6379",
				redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
		},
	}
	sessions := scs.New()
	sessions.Store = redisstore.New(pool)

	// su, err := stepup.New(stepup.Config{SessionManager: sessions /* , Issuer, ClientID, ... */})
	_ = sessions
}
