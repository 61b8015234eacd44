package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// TestRedisStore runs stores/redisstore against a real redis-server, two
// pools standing for two replicas.
func TestRedisStore(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	pools := [2]*redis.Pool{newRedisPool(t, addr), newRedisPool(t, addr)}
	const prefix = "scs:session:" // scs's, which New uses
	testAtomicStore(t, atomicStoreKit{
		replicas: [2]stepup.AtomicStore{redisstore.New(pools[0]), redisstore.New(pools[1])},
		expiry: func(t *testing.T, token string) time.Time {
			t.Helper()
			conn := pools[0].Get()
			defer conn.Close()
			ms, err := redis.Int64(conn.Do("PEXPIRETIME", prefix+token))
			if err != nil || ms < 0 {
				t.Fatalf("PEXPIRETIME: %d, %v", ms, err)
			}
			return time.UnixMilli(ms)
		},
	})

	t.Run("KeysAreScsKeys", func(t *testing.T) {
		t.Parallel()
		token := testUpdateSharesScsEntries(t, redisstore.NewWithPrefix(pools[0], "app:"), scsredis.NewWithPrefix(pools[1], "app:"))
		if n, err := testkit.RedisCommand(addr, "EXISTS", "app:"+token); err != nil || n != "1" {
			t.Fatalf("EXISTS app:<token>: %q, %v", n, err)
		}
	})

	t.Run("AnInterveningWriteMakesUpdateReadAgain", func(t *testing.T) {
		t.Parallel()
		store := redisstore.New(pools[0])
		token := newToken()
		var reads []string
		err := store.Update(context.Background(), token, func(cur []byte, found bool) ([]byte, time.Time, error) {
			reads = append(reads, fmt.Sprintf("%q/%v", cur, found))
			if len(reads) == 1 {
				// Another replica writes between this Update's GET and its EXEC.
				if err := redisstore.New(pools[1]).Commit(token, []byte("theirs"), hourFromNow()); err != nil {
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
		if b, _ := find(t, store, token); b != "theirs,ours" {
			t.Fatalf("stored %q, want both writes", b)
		}
	})

	t.Run("GivesUpAfterMaxAttempts", func(t *testing.T) {
		t.Parallel()
		store := redisstore.New(pools[0])
		store.MaxAttempts = 3
		other := redisstore.New(pools[1])
		token := newToken()
		calls := 0
		err := store.Update(context.Background(), token, func([]byte, bool) ([]byte, time.Time, error) {
			calls++
			if err := other.Commit(token, fmt.Appendf(nil, "intervening %d", calls), hourFromNow()); err != nil {
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

	t.Run("AFailedUpdateLeavesNoWatchOnThePooledConnection", func(t *testing.T) {
		t.Parallel()
		// One connection, so that the next command reuses the one the
		// failed Update WATCHed on. A WATCH left on it would make the
		// EXEC of scs's Commit below fail, and Commit ignores that: the
		// session write would be lost without an error.
		one := &redis.Pool{MaxActive: 1, MaxIdle: 1, Wait: true, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) }}
		defer one.Close()
		store := redisstore.New(one)
		token := newToken()
		errVeto := errors.New("veto")
		if err := store.Update(context.Background(), token, func([]byte, bool) ([]byte, time.Time, error) {
			return nil, time.Time{}, errVeto
		}); err != errVeto {
			t.Fatalf("Update: %v", err)
		}
		if err := redisstore.New(pools[1]).Commit(token, []byte("theirs"), hourFromNow()); err != nil {
			t.Fatal(err)
		}
		if err := store.Commit(token, []byte("session"), hourFromNow()); err != nil {
			t.Fatal(err)
		}
		if b, _ := find(t, store, token); b != "session" {
			t.Fatalf("stored %q: the Commit after the failed Update was lost", b)
		}
	})

	t.Run("CancelWhileRedisHangs", func(t *testing.T) {
		t.Parallel()
		testRedisUpdateCancelledWhileRedisHangs(t)
	})
}

// testRedisUpdateCancelledWhileRedisHangs points the store at a server
// that reads commands and never answers, cancels the context once the
// WATCH has arrived, and wants Update back with the cancellation.
func testRedisUpdateCancelledWhileRedisHangs(t *testing.T) {
	// Update leaves an abandoned command's connection to the command,
	// which returns when the server hangs up, at the end of the test.
	addr, watched := hangingRedis(t, "WATCH")
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) }}
	defer pool.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() {
		result <- redisstore.New(pool).Update(ctx, newToken(), func([]byte, bool) ([]byte, time.Time, error) {
			t.Error("update ran although GET was never answered")
			return nil, time.Time{}, nil
		})
	}()
	select {
	case <-watched:
	case err := <-result:
		t.Fatalf("Update returned %v before it sent WATCH", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Update sent no WATCH")
	}
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Update returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Update did not return after its context was cancelled")
	}
}
