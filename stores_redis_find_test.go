package stepup_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// hangingRedis is a server that reads commands and never answers, until
// the test ends and it hangs up. got receives a value each time a command
// named command arrives (up to 16 unread).
func hangingRedis(t *testing.T, command string) (addr string, got <-chan struct{}) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.EqualFold(strings.TrimSpace(line), command) {
						select {
						case arrived <- struct{}{}:
						default:
						}
					}
				}
			}()
		}
	}()
	return l.Addr().String(), arrived
}

// countingRedisPool is a pool on addr that counts the connections it
// dials.
func countingRedisPool(t testing.TB, addr string, dials *atomic.Int64) *redis.Pool {
	pool := &redis.Pool{MaxIdle: 64, Dial: func() (redis.Conn, error) {
		dials.Add(1)
		return redis.Dial("tcp", addr)
	}}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// redisInfoInt reads one integer field of INFO stats.
func redisInfoInt(t testing.TB, pool *redis.Pool, field string) int64 {
	t.Helper()
	conn := pool.Get()
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "stats"))
	if err != nil {
		t.Fatalf("INFO stats: %v", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO stats %s: %q", field, v)
			}
			return n
		}
	}
	t.Fatalf("INFO stats has no %s", field)
	return 0
}

// findCase is one key the pipelined-read tests read, and what a read of it
// must return.
type findCase struct {
	token   string
	value   string // "" when the key is missing
	refused bool   // the key holds a list: GET answers WRONGTYPE
}

// seedFindCases writes n keys through scs's own store: a third missing, a
// few holding a list, the rest each a value of its own.
func seedFindCases(t testing.TB, pool *redis.Pool, n int) []findCase {
	t.Helper()
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

// check compares a read's result with the case; a connection error is
// allowed only when connErrOK.
func (c findCase) check(b []byte, found bool, err error, connErrOK bool) error {
	var redisErr redis.Error
	if err != nil && !errors.As(err, &redisErr) {
		if connErrOK {
			return nil
		}
		return fmt.Errorf("read: %w", err)
	}
	switch {
	case c.refused:
		if err == nil || !strings.HasPrefix(string(redisErr), "WRONGTYPE") {
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

// TestRedisFindPipelinesConcurrentReads sends 600 reads at once: they
// must share one connection, in pipelines of several GETs (Redis counts
// fewer reads from its sockets than commands), and each must get its own
// key's reply, a WRONGTYPE error only for the key that holds a list.
func TestRedisFindPipelinesConcurrentReads(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	var dials atomic.Int64
	pool := countingRedisPool(t, addr, &dials)
	cases := seedFindCases(t, pool, 600)
	admin := newRedisPool(t, addr)
	store := redisstore.New(pool)
	readsBefore := redisInfoInt(t, admin, "total_reads_processed")
	dialsBefore := dials.Load()

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
	// INFO's own command is one more read.
	reads := redisInfoInt(t, admin, "total_reads_processed") - readsBefore - 1
	if reads >= int64(len(cases)) {
		t.Errorf("Redis read %d times from its sockets for %d GETs: the reads were not pipelined", reads, len(cases))
	}
	if n := dials.Load() - dialsBefore; n > 1 {
		t.Errorf("%d connections dialled for reads that can share one", n)
	}
	// The last reader hands the connection back after the last reply.
	deadline := time.Now().Add(10 * time.Second)
	for pool.ActiveCount() != pool.IdleCount() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still out of the pool with no read in flight", pool.ActiveCount()-pool.IdleCount())
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d GETs in %d socket reads by Redis", len(cases), reads)
}

// TestRedisFindNeverHandsAReadAnotherReadsReply kills the store's
// connections while pipelines are in flight: a read may then fail with
// the connection's error, but never return another read's reply or
// none-found for a key that exists, and the reads after the kills succeed
// on new connections.
func TestRedisFindNeverHandsAReadAnotherReadsReply(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	var dials atomic.Int64
	pool := countingRedisPool(t, addr, &dials)
	// A killed connection idle in the pool would fail its next use, as it
	// does with scs's store: test each one as it is borrowed.
	pool.TestOnBorrow = func(c redis.Conn, _ time.Time) error {
		_, err := c.Do("PING")
		return err
	}
	cases := seedFindCases(t, pool, 300)
	store := redisstore.New(pool)

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
			case <-time.After(2 * time.Millisecond):
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
			for i := range 400 {
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
	t.Logf("%d connections killed, %d of 3,200 reads failed with them, %d dialled", kills, failed.Load(), dials.Load())
}

// TestRedisFindAbandonedReadsKeepRepliesInOrder cancels half of many
// concurrent reads 0 to 60 µs after they start, before or after their GET
// was written: the reply of an abandoned GET must still be read and
// dropped, or every later read on the connection would get the reply
// before its own. Every read not cancelled must get its own key's reply.
func TestRedisFindAbandonedReadsKeepRepliesInOrder(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	var dials atomic.Int64
	pool := countingRedisPool(t, addr, &dials)
	cases := seedFindCases(t, pool, 200)
	store := redisstore.New(pool)
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

// TestRedisFindEndsWithItsContext points the store at a server that reads
// commands and never answers. A read whose context is cancelled while its
// GET waits in the pipeline behind another must return at once with the
// cancellation, and the other must end with the pool's read timeout, not
// hang.
func TestRedisFindEndsWithItsContext(t *testing.T) {
	t.Parallel()
	addr, got := hangingRedis(t, "GET")
	pool := &redis.Pool{Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", addr, redis.DialReadTimeout(time.Second))
	}}
	defer pool.Close()
	store := redisstore.New(pool)

	first := make(chan error, 1)
	go func() {
		_, _, err := store.FindCtx(context.Background(), newToken())
		first <- err
	}()
	waitGET := func(which string) {
		t.Helper()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s GET never arrived", which)
		}
	}
	waitGET("first")
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, _, err := store.FindCtx(ctx, newToken())
		second <- err
	}()
	waitGET("second")
	cancel()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the cancelled read returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled read did not return after its context was cancelled")
	}
	select {
	case err := <-first:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the first read returned %v, want the read timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first read hung past the pool's read timeout")
	}
}

// BenchmarkRedisFind reads 64 sessions on a real redis-server, from one
// goroutine and from 64 at once, through scs's redisstore (the baseline,
// a connection per read in flight) and through stores/redisstore (the
// reads in flight pipelined on one connection).
func BenchmarkRedisFind(b *testing.B) {
	addr := testkit.StartRedis(b)
	var dials atomic.Int64
	pool := countingRedisPool(b, addr, &dials)
	cases := seedFindCases(b, pool, 64)
	b.Cleanup(func() { b.Logf("%d connections dialled", dials.Load()) })
	stores := []struct {
		name string
		find func(token string) ([]byte, bool, error)
	}{
		{"store=scs", scsredis.New(pool).Find},
		{"store=stepup", redisstore.New(pool).Find},
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
	}
	for _, st := range stores {
		b.Run("readers=64/"+st.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on two cores
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
