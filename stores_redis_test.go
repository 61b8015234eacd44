package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"
	"github.com/redis/rueidis"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// newRedisStore opens stores/redisstore on the Redis that url names (a
// standalone server, a Cluster node, or Sentinels), closed when the test
// ends. Each store has its own client: it stands for one replica.
func newRedisStore(t testing.TB, url string) *redisstore.RedisStore {
	t.Helper()
	s, err := redisstore.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestRedisStore runs stores/redisstore against a real redis-server, two
// clients standing for two replicas.
func TestRedisStore(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	url := "redis://" + addr
	stores := [2]*redisstore.RedisStore{newRedisStore(t, url), newRedisStore(t, url)}
	const prefix = "scs:session:" // scs's, which New uses
	testAtomicStore(t, atomicStoreKit{
		replicas: [2]stepup.AtomicStore{stores[0], stores[1]},
		expiry: func(t *testing.T, token string) time.Time {
			t.Helper()
			ms, err := testkit.RedisCommand(addr, "PEXPIRETIME", prefix+token)
			n, _ := strconv.ParseInt(ms, 10, 64)
			if err != nil || n < 0 {
				t.Fatalf("PEXPIRETIME: %q, %v", ms, err)
			}
			return time.UnixMilli(n)
		},
	})

	t.Run("KeysAndValuesAreScsOwn", func(t *testing.T) {
		t.Parallel()
		// scs's redisstore (redigo) and this one read each other's
		// sessions: replicas can switch stores in a rolling upgrade.
		token := testUpdateSharesScsEntries(t, redisstore.NewWithPrefix(stores[0].Client(), "app:"), scsredis.NewWithPrefix(newRedisPool(t, addr), "app:"))
		if n, err := testkit.RedisCommand(addr, "EXISTS", "app:"+token); err != nil || n != "1" {
			t.Fatalf("EXISTS app:<token>: %q, %v", n, err)
		}
	})

	t.Run("AnInterveningWriteMakesUpdateReadAgain", func(t *testing.T) {
		t.Parallel()
		token := newToken()
		var reads []string
		err := stores[0].Update(context.Background(), token, func(cur []byte, found bool) ([]byte, time.Time, error) {
			reads = append(reads, fmt.Sprintf("%q/%v", cur, found))
			if len(reads) == 1 {
				// Another replica writes between this Update's GET and its
				// compare-and-set.
				if err := stores[1].Commit(token, []byte("theirs"), hourFromNow()); err != nil {
					t.Error(err)
				}
			}
			return appendItem(cur, found, "ours"), hourFromNow(), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{`""/false`, `"theirs"/true`}; strings.Join(reads, " ") != strings.Join(want, " ") {
			t.Fatalf("update read %v, want %v", reads, want)
		}
		if b, _ := find(t, stores[0], token); b != "theirs,ours" {
			t.Fatalf("stored %q, want both writes", b)
		}
	})

	t.Run("GivesUpAfterMaxAttempts", func(t *testing.T) {
		t.Parallel()
		store := redisstore.New(stores[0].Client())
		store.MaxAttempts = 3
		token := newToken()
		calls := 0
		err := store.Update(context.Background(), token, func([]byte, bool) ([]byte, time.Time, error) {
			calls++
			if err := stores[1].Commit(token, fmt.Appendf(nil, "intervening %d", calls), hourFromNow()); err != nil {
				t.Error(err)
			}
			return []byte("ours"), hourFromNow(), nil
		})
		if !errors.Is(err, redisstore.ErrContended) || calls != 3 {
			t.Fatalf("Update returned %v after %d calls of update; want ErrContended after 3", err, calls)
		}
		if b, _ := find(t, store, token); b != "intervening 3" {
			t.Fatalf("stored %q, want the last intervening write", b)
		}
	})

	t.Run("CancelWhileRedisIsPaused", func(t *testing.T) {
		t.Parallel()
		testRedisCancelledWhilePaused(t, addr)
	})

	t.Run("UpdateReplicatedWithoutReplicasFailsAfterItsTimeout", func(t *testing.T) {
		t.Parallel()
		// A standalone server has no replica: the default waits for none,
		// and a store told to wait for one reports that none acknowledged.
		token := newToken()
		put := func([]byte, bool) ([]byte, time.Time, error) { return []byte("revoked"), hourFromNow(), nil }
		if err := stores[0].UpdateReplicated(context.Background(), token, put); err != nil {
			t.Fatalf("UpdateReplicated on a standalone server: %v", err)
		}
		strict := redisstore.New(stores[0].Client())
		strict.Replicas, strict.ReplicaTimeout = 1, 100*time.Millisecond
		start := time.Now()
		err := strict.UpdateReplicated(context.Background(), newToken(), put)
		if !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Fatalf("UpdateReplicated with Replicas 1 and none: %v, want ErrNotReplicated", err)
		}
		if took := time.Since(start); took < 100*time.Millisecond || took > 5*time.Second {
			t.Errorf("ErrNotReplicated after %s, want after the 100ms timeout", took)
		}
	})
}

// testRedisCancelledWhilePaused pauses every client of the server
// (CLIENT PAUSE), so that commands wait unanswered, and cancels an Update
// and a Find: each must return the cancellation at once, not wait for the
// server.
func testRedisCancelledWhilePaused(t *testing.T, addr string) {
	store := newRedisStore(t, "redis://"+addr)
	token := newToken()
	if err := store.Commit(token, []byte("before"), hourFromNow()); err != nil {
		t.Fatal(err)
	}
	// A connection of its own, which CLIENT PAUSE does not stop: the
	// pause is for the store's.
	if _, err := testkit.RedisCommand(addr, "CLIENT", "PAUSE", "3000", "ALL"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Update", func(ctx context.Context) error {
			return store.Update(ctx, token, func([]byte, bool) ([]byte, time.Time, error) {
				t.Error("update ran although GET was never answered")
				return nil, time.Time{}, nil
			})
		}},
		{"Find", func(ctx context.Context) error { _, _, err := store.FindCtx(ctx, token); return err }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := tc.call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while Redis is paused: %v, want the context's deadline", tc.name, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s returned %s after its 200ms deadline: it waited for the paused server", tc.name, took)
		}
	}
}

// redisInfoInt reads one integer field of INFO.
func redisInfoInt(t testing.TB, addr, section, field string) int64 {
	t.Helper()
	conn, err := redis.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", section))
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s %s: %q", section, field, v)
			}
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// findCase is one key the concurrent-read tests read, and what a read of
// it must return.
type findCase struct {
	token   string
	value   string // "" when the key is missing
	refused bool   // the key holds a list: GET answers WRONGTYPE
}

// seedFindCases writes n keys through scs's own store: a third missing, a
// few holding a list, the rest each a value of its own.
func seedFindCases(t testing.TB, addr string, n int) []findCase {
	t.Helper()
	pool := newRedisPool(t, addr)
	plain := scsredis.New(pool)
	conn := pool.Get()
	defer conn.Close()
	cases := make([]findCase, n)
	for i := range cases {
		c := findCase{token: newToken()}
		switch {
		case i%3 == 0:
		case i%17 == 1:
			if _, err := conn.Do("RPUSH", "scs:session:"+c.token, "not a session"); err != nil {
				t.Fatal(err)
			}
			c.refused = true
		default:
			c.value = fmt.Sprintf("session %d of %s", i, c.token)
			if err := plain.Commit(c.token, []byte(c.value), hourFromNow()); err != nil {
				t.Fatal(err)
			}
		}
		cases[i] = c
	}
	return cases
}

// check compares a read's result with the case; an error that is not
// Redis's own (a killed connection) is allowed only when connErrOK.
func (c findCase) check(b []byte, found bool, err error, connErrOK bool) error {
	var redisErr *rueidis.RedisError
	isRedis := errors.As(err, &redisErr)
	if err != nil && !isRedis {
		if connErrOK {
			return nil
		}
		return fmt.Errorf("read: %w", err)
	}
	switch {
	case c.refused:
		if err == nil || !strings.HasPrefix(redisErr.Error(), "WRONGTYPE") {
			return fmt.Errorf("read of a list: (%q, %v, %v), want WRONGTYPE", b, found, err)
		}
	case err != nil:
		return fmt.Errorf("read: %w", err)
	case c.value == "" && (found || b != nil):
		return fmt.Errorf("read of a missing key: (%q, %v)", b, found)
	case c.value != "" && (!found || string(b) != c.value):
		return fmt.Errorf("read (%q, %v), want %q: another read's reply", b, found, c.value)
	}
	return nil
}

// TestRedisFindPipelinesConcurrentReads sends 600 reads at once: the
// client must pipeline them on a few shared connections (Redis counts
// fewer reads from its sockets than commands), and each must get its own
// key's reply, a WRONGTYPE error only for the key that holds a list.
func TestRedisFindPipelinesConcurrentReads(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	cases := seedFindCases(t, addr, 600)
	store := newRedisStore(t, "redis://"+addr)
	if _, _, err := store.Find(newToken()); err != nil { // connect before counting
		t.Fatal(err)
	}
	readsBefore := redisInfoInt(t, addr, "stats", "total_reads_processed")
	connsBefore := redisInfoInt(t, addr, "stats", "total_connections_received")

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(cases))
	for _, c := range cases {
		wg.Go(func() {
			<-start
			b, found, err := store.FindCtx(t.Context(), c.token)
			if err := c.check(b, found, err, false); err != nil {
				errs <- fmt.Errorf("%s: %w", c.token, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// INFO's own command is one more read, on one more connection.
	reads := redisInfoInt(t, addr, "stats", "total_reads_processed") - readsBefore - 1
	if reads >= int64(len(cases)) {
		t.Errorf("Redis read %d times from its sockets for %d GETs: the reads were not pipelined", reads, len(cases))
	}
	if n := redisInfoInt(t, addr, "stats", "total_connections_received") - connsBefore - 1; n > 4 {
		t.Errorf("%d connections opened for reads that can share the client's", n)
	}
	t.Logf("%d GETs in %d socket reads by Redis", len(cases), reads)
}

// TestRedisFindNeverHandsAReadAnotherReadsReply kills the client's
// connections while pipelines are in flight: a read may then fail with
// the connection's error, but never return another read's reply or
// none-found for a key that exists, and the reads after the kills succeed
// on new connections.
func TestRedisFindNeverHandsAReadAnotherReadsReply(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	cases := seedFindCases(t, addr, 300)
	store := newRedisStore(t, "redis://"+addr)

	ctx := t.Context()
	stop := make(chan struct{})
	killed := make(chan int)
	go func() {
		n := 0
		defer func() { killed <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			// Every client but this one: the store's connections.
			if k, err := testkit.RedisCommand(addr, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"); err == nil {
				k, _ := strconv.Atoi(k)
				n += k
			}
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				c := cases[(w*131+i*7)%len(cases)]
				b, found, err := store.FindCtx(ctx, c.token)
				if err != nil {
					failed.Add(1)
				}
				if err := c.check(b, found, err, true); err != nil {
					t.Errorf("%s: %v", c.token, err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	kills := <-killed
	if kills == 0 {
		t.Fatal("no connection was killed while the reads ran")
	}
	for _, c := range cases {
		b, found, err := store.FindCtx(ctx, c.token)
		if err := c.check(b, found, err, false); err != nil {
			t.Errorf("after the kills: %s: %v", c.token, err)
		}
	}
	t.Logf("%d connections killed, %d of 1,600 reads failed with them", kills, failed.Load())
}

// TestRedisFindAbandonedReadsKeepRepliesInOrder cancels half of many
// concurrent reads 0 to 60 µs after they start, before or after their GET
// was written: the reply of an abandoned GET must still be read and
// dropped, or every later read on the connection would get the reply
// before its own. Every read not cancelled must get its own key's reply.
func TestRedisFindAbandonedReadsKeepRepliesInOrder(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	cases := seedFindCases(t, addr, 200)
	store := newRedisStore(t, "redis://"+addr)
	var wg sync.WaitGroup
	var cancelled atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := range 300 {
				c := cases[(w*37+i*11)%len(cases)]
				ctx := t.Context()
				if i%2 == 1 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(time.Duration(i%7)*10*time.Microsecond, cancel)
				}
				b, found, err := store.FindCtx(ctx, c.token)
				if errors.Is(err, context.Canceled) {
					cancelled.Add(1)
					continue
				}
				if err := c.check(b, found, err, false); err != nil {
					t.Errorf("%s: %v", c.token, err)
				}
			}
		})
	}
	wg.Wait()
	if cancelled.Load() == 0 {
		t.Fatal("no read was abandoned")
	}
	t.Logf("%d of 4,800 reads abandoned", cancelled.Load())
}

// BenchmarkRedisFind reads 64 sessions on a real redis-server, from one
// goroutine and from 64 at once, through scs's redisstore (the baseline,
// redigo: a connection per read in flight) and through stores/redisstore
// (rueidis: the reads in flight pipelined on shared connections).
func BenchmarkRedisFind(b *testing.B) {
	addr := testkit.StartRedis(b)
	cases := seedFindCases(b, addr, 64)
	pool := newRedisPool(b, addr)
	stores := []struct {
		name string
		find func(token string) ([]byte, bool, error)
	}{
		{"store=scs", scsredis.New(pool).Find},
		{"store=stepup", newRedisStore(b, "redis://"+addr).Find},
	}
	read := func(b *testing.B, find func(string) ([]byte, bool, error), i int64) bool {
		c := cases[i%int64(len(cases))]
		if c.refused {
			return true
		}
		if _, _, err := find(c.token); err != nil {
			b.Error(err)
			return false
		}
		return true
	}
	for _, st := range stores {
		b.Run("readers=1/"+st.name, func(b *testing.B) {
			b.ReportAllocs()
			i := int64(0)
			for b.Loop() {
				if i++; !read(b, st.find, i) {
					return
				}
			}
		})
		b.Run("readers=64/"+st.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on 2 cores
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !read(b, st.find, next.Add(1)) {
						return
					}
				}
			})
		})
	}
}
