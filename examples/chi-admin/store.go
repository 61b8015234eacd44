package main

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	_ "github.com/lib/pq" // the postgres driver postgresstore uses
	"github.com/redis/rueidis"

	// stepup's adapters of scs's Redis and PostgreSQL stores: the same
	// keys and tables, plus the atomic update stepup.New asks for, so that
	// revocations written by two replicas at once never lose one another.
	"github.com/oidc-stepup/stepup/stores/postgresstore"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// openStore returns the scs store named by -session-store and a function
// that releases it.
func openStore(spec string) (scs.Store, func(), error) {
	switch {
	case spec == "" || spec == "memory":
		// The cleanup goroutine lives as long as the process: scs's
		// StopCleanup races with the goroutine's start.
		return memstore.New(), func() {}, nil
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
		return openRedis(spec)
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return openPostgres(spec)
	}
	// Not quoted: the value may hold a password.
	return nil, nil, fmt.Errorf("-session-store: want memory, redis://host:port[/db], rediss://..., redis://host:port?master_set=NAME or postgres://...")
}

// openRedis opens a Redis client on a URL in rueidis's forms:
// redis://[user:password@]host:port[/db] names a standalone server or any
// node of a Redis Cluster (the client discovers the others), rediss://
// uses TLS, and redis://host:port?master_set=NAME names Sentinels (more
// with &addr=host:port) and the primary they watch for NAME. Errors name
// the URL with its password redacted.
func openRedis(spec string) (scs.Store, func(), error) {
	u, err := url.Parse(spec)
	if err != nil || u.Opaque != "" {
		// url.Parse's error quotes the URL, password included.
		return nil, nil, fmt.Errorf("-session-store: bad redis URL")
	}
	opt, err := rueidis.ParseURL(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("-session-store: bad redis URL %s", u.Redacted())
	}
	opt.DisableCache = true
	opt.Dialer.Timeout = 2 * time.Second
	// A connection whose writes go unanswered this long is dead: its
	// requests fail, and the client dials again.
	opt.ConnWriteTimeout = 2 * time.Second
	// Retry a command that failed with its connection for about five
	// seconds (a failover takes two or three), not until the request's
	// context ends.
	opt.RetryDelay = redisstore.RetryDelay
	// Gather concurrent commands into fewer writes, as redisstore.Open does.
	opt.MaxFlushDelay = redisstore.MaxFlushDelay
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, nil, fmt.Errorf("-session-store: redis at %s: %w", u.Redacted(), err)
	}
	return redisstore.New(client), client.Close, nil
}

func openPostgres(spec string) (scs.Store, func(), error) {
	db, err := sql.Open("postgres", spec)
	if err != nil {
		return nil, nil, fmt.Errorf("-session-store: %w", err)
	}
	// Keep as many idle connections as the console serves at once, as for
	// Redis: database/sql keeps two by default, and under 64 clients the
	// PostgreSQL drill saw the console open 313 connections in 10 s and a
	// guarded p99 of 2.28 s.
	db.SetMaxIdleConns(128)
	// The schema postgresstore expects.
	const schema = `CREATE TABLE IF NOT EXISTS sessions (
		token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);
		CREATE INDEX IF NOT EXISTS sessions_expiry_idx ON sessions (expiry);`
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("-session-store: postgres: %w", err)
	}
	s := postgresstore.New(db)
	return s, func() { s.StopCleanup(); db.Close() }, nil
}
