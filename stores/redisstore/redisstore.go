// Package redisstore is an scs session store on Redis, through the rueidis
// client, with what stepup needs of a store shared by several replicas: an
// atomic read-modify-write of one record ([RedisStore.Update], which makes
// it a stepup.AtomicStore), and one that returns only once replicas hold
// the write ([RedisStore.UpdateReplicated]), so that a revocation survives
// a failover.
//
// The client speaks to a standalone server, to any node of a Redis Cluster
// (it discovers the rest and follows the slots), or to Sentinels that name
// the primary; [Open] takes rueidis's URL forms for all three. It
// pipelines the commands of concurrent requests on shared connections by
// itself, so a guarded request's two reads (the session and the user's
// revocation record) cost two commands and no connection of their own.
//
// Sessions live under scs's keys ("scs:session:" and the token), with
// scs's values and expiry, so replicas running scs's redisstore and this
// one can share a Redis during a rolling upgrade (only this one's Update
// is atomic). Every command names one key, so every one works on Redis
// Cluster.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// DefaultMaxAttempts is RedisStore.MaxAttempts when it is zero. Every
// failed attempt means another write to the token succeeded in the
// meantime, so n updates that start together all finish within n attempts:
// 100 covers a hundred replicas revoking for one user at the same instant.
const DefaultMaxAttempts = 100

// DefaultReplicaTimeout is RedisStore.ReplicaTimeout when it is zero.
const DefaultReplicaTimeout = time.Second

// NoReplicas, as [RedisStore.Replicas], makes UpdateReplicated wait for
// no replica.
const NoReplicas = -1

// ErrContended is returned (wrapped) by Update when other writes to the
// token kept intervening for MaxAttempts attempts. Nothing was stored.
var ErrContended = errors.New("redisstore: update gave up: other writes to the token kept intervening")

// ErrNotReplicated is returned (wrapped) by UpdateReplicated when fewer
// replicas than [RedisStore.Replicas] acknowledged the write within
// ReplicaTimeout. The primary holds the write; a failover before the
// replicas catch up may lose it, so the caller should treat the write as
// failed and retry.
var ErrNotReplicated = errors.New("redisstore: the write did not reach enough replicas in time")

// RedisStore is an scs.Store (and scs.CtxStore, scs.IterableCtxStore) on
// Redis, with [RedisStore.Update] and [RedisStore.UpdateReplicated].
type RedisStore struct {
	// MaxAttempts bounds how many times Update reads the token, calls
	// update and tries to store the result while other writes to the
	// token keep intervening; then it returns ErrContended.
	// Default: DefaultMaxAttempts (100).
	MaxAttempts int

	// Replicas is how many replicas must acknowledge a write of
	// UpdateReplicated (Redis WAIT) before it returns. Default: 1 on a
	// Redis Cluster or behind Sentinel, whose primaries have replicas, and
	// none on a standalone server; NoReplicas for none.
	Replicas int

	// ReplicaTimeout bounds UpdateReplicated's wait for the replicas.
	// Default: DefaultReplicaTimeout (1s).
	ReplicaTimeout time.Duration

	client rueidis.Client
	prefix string
	owned  bool // Open made the client: Close closes it
}

// New returns a store on client with scs's key prefix, "scs:session:".
// The client stays the caller's to close.
func New(client rueidis.Client) *RedisStore {
	return NewWithPrefix(client, "scs:session:")
}

// NewWithPrefix returns a store on client whose keys are prefix followed by
// the session token, as scs's NewWithPrefix.
func NewWithPrefix(client rueidis.Client, prefix string) *RedisStore {
	return &RedisStore{client: client, prefix: prefix}
}

// Open connects to the Redis that url names, in rueidis's URL forms
// (rueidis.ParseURL): redis://[user:password@]host:port[/db] for a
// standalone server or any node of a Redis Cluster (the client discovers
// the others), rediss:// for TLS, and
// redis://host:port?master_set=NAME for Sentinels at host:port (more
// with addr=host:port parameters) that name the primary of NAME. The
// client does no client-side caching, gathers concurrent commands into
// fewer writes ([MaxFlushDelay]), and retries a command that failed with
// its connection for about five seconds ([RetryDelay]), long enough to
// ride out a failover, then fails it. [RedisStore.Close] closes it.
func Open(url string) (*RedisStore, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	opt.DisableCache = true
	opt.RetryDelay = RetryDelay
	opt.MaxFlushDelay = MaxFlushDelay
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s := New(client)
	s.owned = true
	return s, nil
}

// MaxFlushDelay is the rueidis.ClientOption.MaxFlushDelay that [Open]
// sets: after each write of its pipeline a connection waits up to this
// long to gather more commands before the next. Under load that turns many
// small writes into few (on two cores, 64 concurrent readers: 3.9 µs a
// read instead of 9.5 µs, BenchmarkRedisFind); a lone request does not
// wait, since it is written before the pause. rueidis's documentation
// suggests this value.
const MaxFlushDelay = 20 * time.Microsecond

// maxRetries bounds RetryDelay: the waits before the 24 retries add up to
// about five seconds.
const maxRetries = 24

// RetryDelay is the rueidis.ClientOption.RetryDelay that [Open] sets:
// rueidis's exponential backoff (microseconds at first, at most a second),
// for at most 24 retries, about five seconds in all. rueidis's own retries
// a command until its context ends, and a web request's context may have
// no deadline: a Redis that is down would hold every request. A client
// made for [New] should bound its retries the same way.
func RetryDelay(attempts int, _ rueidis.Completed, _ error) time.Duration {
	if attempts >= maxRetries {
		return -1
	}
	base := time.Duration(1<<min(attempts, 20)) * time.Microsecond
	return min(time.Second, base+base/2)
}

// Close closes the client when [Open] made it.
func (s *RedisStore) Close() {
	if s.owned {
		s.client.Close()
	}
}

// Client returns the store's client.
func (s *RedisStore) Client() rueidis.Client { return s.client }

func (s *RedisStore) key(token string) string { return s.prefix + token }

// Find returns the data of token (scs.Store).
func (s *RedisStore) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx is Find with a context (scs.CtxStore): a GET. A read sent after
// a write was acknowledged sees it, a revocation included.
func (s *RedisStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	b, err := s.client.Do(ctx, s.client.B().Get().Key(s.key(token)).Build().Pin()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redisstore: find: %w", err)
	}
	return b, true, nil
}

// Commit stores b under token until expiry (scs.Store).
func (s *RedisStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is Commit with a context (scs.CtxStore): one SET with PXAT,
// the value and the absolute expiry in milliseconds that scs's MULTI, SET
// and PEXPIREAT write.
func (s *RedisStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	cmd := s.client.B().Set().Key(s.key(token)).Value(rueidis.BinaryString(b)).Pxat(expiry).Build().Pin()
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("redisstore: commit: %w", err)
	}
	return nil
}

// Delete removes token (scs.Store).
func (s *RedisStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteCtx is Delete with a context (scs.CtxStore).
func (s *RedisStore) DeleteCtx(ctx context.Context, token string) error {
	if err := s.client.Do(ctx, s.client.B().Del().Key(s.key(token)).Build().Pin()).Error(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	return nil
}

// All returns every session (scs.IterableStore).
func (s *RedisStore) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// AllCtx is All with a context (scs.IterableCtxStore): it scans the keys
// with the prefix on every node (each primary of a Cluster) and reads
// each. A session that expires meanwhile is left out.
func (s *RedisStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	sessions := map[string][]byte{}
	for _, node := range s.client.Nodes() {
		var cursor uint64
		for {
			entry, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(s.prefix+"*").Count(1000).Build().Pin()).AsScanEntry()
			if err != nil {
				return nil, fmt.Errorf("redisstore: all: %w", err)
			}
			for _, key := range entry.Elements {
				token := key[len(s.prefix):]
				if _, seen := sessions[token]; seen {
					continue
				}
				b, found, err := s.FindCtx(ctx, token)
				if err != nil {
					return nil, err
				}
				if found {
					sessions[token] = b
				}
			}
			if cursor = entry.Cursor; cursor == 0 {
				break
			}
		}
	}
	return sessions, nil
}

// casScript stores ARGV[3] until ARGV[4] (Unix milliseconds) under
// KEYS[1] if the key still holds what the update read: ARGV[2] when
// ARGV[1] is "1", nothing when it is "0". It returns 1 when it stored, 0
// when another write intervened. A script runs atomically, and it names
// one key, so it runs on the Cluster node of the key's slot.
const casScript = `local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
return 1`

// update is the update function of stepup.AtomicStore.
type update = func(current []byte, found bool) (next []byte, expiry time.Time, err error)

// Update reads the value under token (found is false when there is none:
// Redis removes a key when it expires), calls update with it and stores
// what update returns until expiry, if the key still holds what was read;
// otherwise it reads again, so update may run several times and should
// only compute. The compare and the write are one Lua script (EVAL, about
// 250 bytes of script a write), which Redis runs atomically: the update is atomic with respect to every other
// Update, and to Commit and Delete, on every process sharing the Redis. A
// write of the very value that was read, in between, is not told apart:
// the update then applies to the same value, as if it came first.
//
// An error from update is returned unchanged and nothing is stored. A
// cancelled ctx ends Update; cancelled while the script is in flight, the
// update may or may not have been stored, as with any write whose reply is
// lost. After MaxAttempts attempts it returns ErrContended.
func (s *RedisStore) Update(ctx context.Context, token string, fn update) error {
	return s.attempts(func() (bool, error) { return s.attempt(ctx, s.client, token, fn) })
}

// UpdateReplicated is Update, then waits until Replicas replicas hold the
// write (Redis WAIT, on the connection that wrote it), at most
// ReplicaTimeout. Fewer is ErrNotReplicated: the primary holds the write,
// but a failover now could lose it. stepup writes revocations with it, so
// that an IdP or an operator is told a revocation is recorded only once a
// promoted replica would still have it.
func (s *RedisStore) UpdateReplicated(ctx context.Context, token string, fn update) error {
	replicas := s.replicas()
	if replicas == 0 {
		return s.Update(ctx, token, fn)
	}
	// A dedicated connection stays on the node it was opened to, and
	// rueidis does not follow a MOVED there for a write. Just after a
	// failover the client's slot map may still name the old primary (seen
	// 216 ms after the cluster was healthy again): open a new connection
	// once the map is refreshed. A redirected command did not run.
	var err error
	for attempt := range maxRedirects {
		if err = s.updateReplicated(ctx, token, fn, replicas); !redirected(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(redirectPause<<attempt, time.Second)):
		}
	}
	return err
}

// maxRedirects bounds UpdateReplicated's new connections after a
// redirect, redirectPause the first wait before one: 50, 100, 200, 400,
// 800 ms, then a second each time, about 6.5 s in all. rueidis refreshes
// its slot map lazily, up to a second after a redirect (on a cluster of
// fewer than 100 nodes), and then needs a round trip to each node; RetryDelay
// gives a failover about five seconds too.
const (
	maxRedirects  = 10
	redirectPause = 50 * time.Millisecond
)

// redirected reports whether err is Redis Cluster's answer that the slot
// lives elsewhere, or is being moved or failed over.
func redirected(err error) bool {
	var re *rueidis.RedisError
	if !errors.As(err, &re) {
		return false
	}
	_, moved := re.IsMoved()
	_, ask := re.IsAsk()
	return moved || ask || re.IsTryAgain() || re.IsClusterDown()
}

func (s *RedisStore) updateReplicated(ctx context.Context, token string, fn update, replicas int) error {
	return s.client.Dedicated(func(c rueidis.DedicatedClient) error {
		err := s.attempts(func() (bool, error) { return s.attempt(ctx, c, token, fn) })
		if err != nil {
			return err
		}
		timeout := s.ReplicaTimeout
		if timeout <= 0 {
			timeout = DefaultReplicaTimeout
		}
		acked, err := c.Do(ctx, c.B().Wait().Numreplicas(int64(replicas)).Timeout(timeout.Milliseconds()).Build().Pin()).AsInt64()
		if err != nil {
			return fmt.Errorf("redisstore: update: wait: %w", err)
		}
		if acked < int64(replicas) {
			return fmt.Errorf("%w: %d of %d replicas in %s", ErrNotReplicated, acked, replicas, timeout)
		}
		return nil
	})
}

// replicas is how many replicas UpdateReplicated waits for.
func (s *RedisStore) replicas() int {
	switch {
	case s.Replicas == NoReplicas:
		return 0
	case s.Replicas > 0:
		return s.Replicas
	}
	switch s.client.Mode() {
	case rueidis.ClientModeCluster, rueidis.ClientModeSentinel:
		return 1
	}
	return 0
}

// attempts runs one attempt at a time until one stores or fails.
func (s *RedisStore) attempts(attempt func() (stored bool, err error)) error {
	n := s.MaxAttempts
	if n <= 0 {
		n = DefaultMaxAttempts
	}
	for range n {
		stored, err := attempt()
		if err != nil || stored {
			return err
		}
	}
	return fmt.Errorf("%w (%d attempts)", ErrContended, n)
}

// doer is what an attempt sends its commands through: the client, or a
// dedicated connection. Every command is pinned (never recycled): rueidis
// recycles a command's buffer once its reply is in, and under killed
// connections the race detector saw a dead connection's writer still
// reading a buffer that a later command reused.
type doer interface {
	Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult
	B() rueidis.Builder
}

// attempt is one round of Update's loop: read, update, compare and set. It
// reports whether the value was stored; false with no error means another
// write intervened.
func (s *RedisStore) attempt(ctx context.Context, d doer, token string, fn update) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	cur, err := d.Do(ctx, d.B().Get().Key(s.key(token)).Build().Pin()).AsBytes()
	found := true
	if rueidis.IsRedisNil(err) {
		cur, found, err = nil, false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	next, expiry, err := fn(cur, found)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	had := "0"
	if found {
		had = "1"
	}
	cas := d.B().Eval().Script(casScript).Numkeys(1).Key(s.key(token)).
		Arg(had, string(cur), string(next), strconv.FormatInt(expiry.UnixMilli(), 10)).Build().Pin()
	stored, err := d.Do(ctx, cas).AsInt64()
	if err != nil {
		return false, fmt.Errorf("redisstore: update: %w", err)
	}
	return stored == 1, nil
}
