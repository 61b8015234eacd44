// Package redisstore is scs's Redis session store
// (github.com/alexedwards/scs/redisstore) with the one operation stepup
// needs that scs does not have: an atomic read-modify-write of one record,
// [RedisStore.Update], which makes it a stepup.AtomicStore.
//
// stepup keeps one revocation record per user in the session store, and
// several replicas may revoke for the same user at the same instant (a
// logout token and an operator, say). scs's Commit writes a whole value:
// two replicas that each Find the record, add their revocation and Commit
// lose one of the two. Redis has no compare-and-set command, but its
// transactions offer optimistic locking: a WATCHed key that another client
// writes before EXEC makes EXEC fail, and the client reads again and
// retries. Update is that loop.
//
// Commit, Delete and All are scs's own, unchanged, and Find sends scs's
// GET, with the reads in flight pipelined on one connection
// ([RedisStore.FindCtx]): sessions live under the same keys, so the
// wrapper is a drop-in replacement for scs/redisstore, and the two can
// share a Redis during a rolling upgrade.
//
// Limits: the pool must talk to one Redis primary (redigo has no cluster
// client; WATCH and MULTI on one key would also work on Redis Cluster, but
// not through this pool). With asynchronous replication a failover can
// lose writes the old primary acknowledged, an Update among them, as it can
// lose any Commit.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"
)

// DefaultMaxAttempts is RedisStore.MaxAttempts when it is zero. Every
// failed attempt means another write to the token succeeded in the
// meantime, so n updates that start together all finish within n attempts:
// 100 covers a hundred replicas revoking for one user at the same instant.
const DefaultMaxAttempts = 100

// ErrContended is returned (wrapped) by Update when other writes to the
// token kept intervening for MaxAttempts attempts. Nothing was stored.
var ErrContended = errors.New("redisstore: update gave up: other writes to the token kept intervening")

// RedisStore is scs's RedisStore plus [RedisStore.Update].
type RedisStore struct {
	*redisstore.RedisStore

	// MaxAttempts bounds how many times Update reads the token, calls
	// update and tries to store the result while other writes to the
	// token keep intervening; then it returns ErrContended.
	// Default: DefaultMaxAttempts (100).
	MaxAttempts int

	pool   *redis.Pool
	prefix string
	reads  reads
}

// New returns a store on pool with scs's key prefix, "scs:session:". The
// pool's connections must support contexts (redigo's redis.Dial and
// redis.DialContext connections do): Update sends every command with its
// context.
func New(pool *redis.Pool) *RedisStore {
	return NewWithPrefix(pool, "scs:session:")
}

// NewWithPrefix returns a store on pool whose keys are prefix followed by
// the session token, as scs's NewWithPrefix.
func NewWithPrefix(pool *redis.Pool, prefix string) *RedisStore {
	return &RedisStore{RedisStore: redisstore.NewWithPrefix(pool, prefix), pool: pool, prefix: prefix}
}

// Update reads the value under token (found is false when there is none:
// Redis removes a key when it expires), calls update with it and stores
// what update returns until expiry, in one Redis transaction that is
// discarded if anything else wrote the key since it was read. Then it
// starts again, so update may run several times; it should only compute.
//
// This is Redis's optimistic locking ("check-and-set" in
// https://redis.io/docs/latest/develop/interact/transactions/): WATCH the
// key, GET it, then MULTI, SET, PEXPIREAT, EXEC. If the key was modified
// after WATCH (written, deleted or expired, the last since Redis 6.0.9),
// EXEC executes nothing and replies with a null array, and Update retries.
// Any client's write counts, so the update is atomic with respect to every
// other Update, and to scs's Commit and Delete, on every process sharing
// the Redis.
//
// An error from update is returned unchanged and nothing is stored. A
// cancelled ctx ends Update at once, even while a command waits for
// Redis; that command keeps the connection until it returns (its reply,
// the pool's read timeout or a broken connection), then the connection
// goes back to the pool. Cancelled while EXEC is in flight, the update may
// or may not have been stored, as with any write whose reply is lost.
// After MaxAttempts attempts it returns ErrContended.
func (s *RedisStore) Update(ctx context.Context, token string, update func(current []byte, found bool) (next []byte, expiry time.Time, err error)) error {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("redisstore: update: %w", err)
	}
	c := &ctxConn{Conn: conn}
	defer c.close()
	key := s.prefix + token
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	for range attempts {
		stored, err := s.attempt(ctx, c, key, update)
		if err != nil || stored {
			return err
		}
	}
	return fmt.Errorf("%w (%d attempts)", ErrContended, attempts)
}

// attempt is one round of Update's loop. It reports whether the value was
// stored; false with no error means another write intervened.
func (s *RedisStore) attempt(ctx context.Context, conn *ctxConn, key string, update func([]byte, bool) ([]byte, time.Time, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	if _, err := conn.do(ctx, "WATCH", key); err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	// From here every return before EXEC ends the WATCH: the connection
	// goes back to the pool, and a WATCH left on it would abort the next
	// user's transaction. (redigo's pool also sends UNWATCH when a
	// connection that WATCHed is closed; this does not rely on it.)
	cur, err := redis.Bytes(conn.do(ctx, "GET", key))
	found := true
	if err == redis.ErrNil {
		cur, found, err = nil, false, nil
	}
	if err != nil {
		conn.unwatch()
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	next, expiry, err := update(cur, found)
	if err != nil {
		conn.unwatch()
		return false, err
	}
	if err := ctx.Err(); err != nil {
		conn.unwatch()
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	// The same three commands as scs's Commit, so the stored value and
	// its TTL are what Commit would have written.
	for _, cmd := range [][]any{{"MULTI"}, {"SET", key, next}, {"PEXPIREAT", key, expiry.UnixMilli()}} {
		if err := conn.Send(cmd[0].(string), cmd[1:]...); err != nil {
			return false, fmt.Errorf("redisstore: update: %w", err)
		}
	}
	replies, err := redis.Values(conn.do(ctx, "EXEC"))
	if err == redis.ErrNil {
		return false, nil // the WATCHed key changed; EXEC also ended the WATCH
	}
	if err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	for _, r := range replies {
		if e, ok := r.(redis.Error); ok {
			return false, fmt.Errorf("redisstore: update: %w", e)
		}
	}
	return true, nil
}

// ctxConn is Update's connection, whose commands a cancelled context can
// abandon. redigo's DoContext returns on cancellation while its own
// goroutine may still be writing the command; closing the connection then
// (which sends UNWATCH) would write to it from two goroutines at once. So
// do runs the command in a goroutine of its own and, when ctx ends first,
// returns at once and leaves the connection to that goroutine, which
// closes it once the command has returned (its reply, the read timeout, or
// a broken connection). Nothing else uses it after that.
type ctxConn struct {
	redis.Conn
	abandoned chan struct{} // closed when the abandoned command returned; nil if none was
}

func (c *ctxConn) do(ctx context.Context, cmd string, args ...any) (any, error) {
	if ctx.Done() == nil {
		return c.Do(cmd, args...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var reply any
	var err error
	go func() {
		defer close(done)
		reply, err = c.Do(cmd, args...)
	}()
	select {
	case <-done:
		return reply, err
	case <-ctx.Done():
		c.abandoned = done
		return nil, ctx.Err()
	}
}

// close returns the connection to the pool, after an abandoned command
// has returned.
func (c *ctxConn) close() {
	if c.abandoned == nil {
		c.Close()
		return
	}
	go func() {
		<-c.abandoned
		c.Close()
	}()
}

// unwatch ends a WATCH. Its error is not reported: the caller returns a
// better one, and a connection that cannot send UNWATCH is broken, so the
// pool discards it. After an abandoned command it sends nothing: the
// connection is the abandoned command's until it returns, and then
// redigo's Close sends UNWATCH itself before the pool takes it back.
func (c *ctxConn) unwatch() {
	if c.abandoned == nil {
		c.Do("UNWATCH")
	}
}
