package stepup_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	scspostgres "github.com/alexedwards/scs/postgresstore"
	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// The tests in this file run each stepup.AtomicStore adapter of the
// repository (stores/redisstore, stores/postgresstore) against a real
// server; stores_redis_test.go and stores_postgres_test.go start the
// servers and add what only one adapter has.

// atomicStoreKit is an adapter under test: two instances on one server,
// each with its own connection pool, standing for two replicas.
type atomicStoreKit struct {
	replicas [2]stepup.AtomicStore
	// locks is true for an adapter whose Update makes the other updates
	// of the token wait (PostgreSQL's advisory lock), false for one that
	// lets them run and retries the losers (Redis's WATCH).
	locks bool
	// expiry reads the expiry the server holds for token, behind the
	// adapter's back.
	expiry func(t *testing.T, token string) time.Time
}

// writers is how many replicas' writers update one record at once in
// the no-lost-updates tests.
const writers = 64

// testAtomicStore runs what every adapter must do.
func testAtomicStore(t *testing.T, kit atomicStoreKit) {
	t.Run("IsStillAnScsStore", func(t *testing.T) {
		t.Parallel()
		testScsRoundTrip(t, kit)
	})
	t.Run("UpdateSeesWhatIsStoredAndStoresUntilExpiry", func(t *testing.T) {
		t.Parallel()
		testUpdateFoundAndExpiry(t, kit)
	})
	t.Run("ConcurrentUpdatesFromTwoReplicasLoseNothing", func(t *testing.T) {
		t.Parallel()
		testNoLostUpdates(t, kit)
	})
	t.Run("PlainFindThenCommitLosesUpdates", func(t *testing.T) {
		t.Parallel()
		testPlainCommitLosesUpdates(t, kit)
	})
	t.Run("UpdateErrorStoresNothing", func(t *testing.T) {
		t.Parallel()
		testUpdateErrorStoresNothing(t, kit)
	})
	t.Run("CancelledContextStoresNothing", func(t *testing.T) {
		t.Parallel()
		testCancelledUpdate(t, kit)
	})
}

// newToken is a session token as scs makes them.
func newToken() string { return rand.Text() }

// testUpdateSharesScsEntries writes a token through plain, scs's own store
// on the same keys or table as store, updates it through store, and reads
// it back through plain: the adapter reads and writes exactly what scs
// does. It returns the token, for the caller's check of where it landed.
func testUpdateSharesScsEntries(t *testing.T, store stepup.AtomicStore, plain scs.Store) string {
	t.Helper()
	token := newToken()
	if err := plain.Commit(token, []byte("from scs"), hourFromNow()); err != nil {
		t.Fatal(err)
	}
	err := store.Update(context.Background(), token, func(cur []byte, found bool) ([]byte, time.Time, error) {
		if !found || string(cur) != "from scs" {
			t.Errorf("Update read (%q, %v), want what scs's Commit wrote", cur, found)
		}
		return []byte("from Update"), hourFromNow(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := find(t, plain, token); b != "from Update" {
		t.Fatalf("scs's Find read %q, want what Update wrote", b)
	}
	return token
}

// hourFromNow is an expiry that both servers store exactly: Redis keeps
// milliseconds, PostgreSQL microseconds.
func hourFromNow() time.Time { return time.Now().Add(time.Hour).Truncate(time.Millisecond) }

// find reads token through store's scs Find and fails the test on error.
func find(t *testing.T, store scs.Store, token string) (string, bool) {
	t.Helper()
	b, found, err := store.Find(token)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	return string(b), found
}

// testScsRoundTrip stores a session through scs's LoadAndSave on one
// replica and reads it on the other: the adapter's Find, Commit and
// Delete are scs's.
func testScsRoundTrip(t *testing.T, kit atomicStoreKit) {
	managers := [2]*scs.SessionManager{scs.New(), scs.New()}
	for i, sm := range managers {
		sm.Store = kit.replicas[i]
	}
	put := managers[0].LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		managers[0].Put(r.Context(), "sub", "alice")
	}))
	get := managers[1].LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, managers[1].GetString(r.Context(), "sub"))
	}))
	logout := managers[1].LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := managers[1].Destroy(r.Context()); err != nil {
			t.Error(err)
		}
	}))

	rec := httptest.NewRecorder()
	put.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/login", nil))
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusOK || len(cookies) != 1 {
		t.Fatalf("login: %d, cookies %v", rec.Code, cookies)
	}
	token := cookies[0].Value
	if b, found := find(t, kit.replicas[1], token); !found || b == "" {
		t.Fatal("the session is not in the store under its cookie's token")
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(cookies[0])
	rec = httptest.NewRecorder()
	get.ServeHTTP(rec, req)
	if rec.Body.String() != "alice" {
		t.Fatalf("the other replica read sub %q, want alice", rec.Body.String())
	}
	rec = httptest.NewRecorder()
	logout.ServeHTTP(rec, req)
	if _, found := find(t, kit.replicas[0], token); found {
		t.Fatal("the destroyed session is still in the store")
	}
}

// testUpdateFoundAndExpiry walks one token through absent, stored,
// updated and expired.
func testUpdateFoundAndExpiry(t *testing.T, kit atomicStoreKit) {
	ctx := context.Background()
	token := newToken()
	update := func(t *testing.T, store stepup.AtomicStore, wantCur string, wantFound bool, next string, expiry time.Time) {
		t.Helper()
		calls := 0
		err := store.Update(ctx, token, func(cur []byte, found bool) ([]byte, time.Time, error) {
			calls++
			if found != wantFound || string(cur) != wantCur || (!found && cur != nil) {
				t.Errorf("update got (%q, %v), want (%q, %v)", cur, found, wantCur, wantFound)
			}
			return []byte(next), expiry, nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("Update: %v after %d calls of update", err, calls)
		}
		if b, found := find(t, kit.replicas[1], token); !found || b != next {
			t.Fatalf("Find after Update: (%q, %v), want %q", b, found, next)
		}
		if got := kit.expiry(t, token); !got.Equal(expiry) {
			t.Fatalf("stored expiry %v, want %v", got, expiry)
		}
	}

	update(t, kit.replicas[0], "", false, "v1", hourFromNow())
	update(t, kit.replicas[1], "v1", true, "v2", hourFromNow().Add(time.Hour))
	// scs's Commit wrote a value that has expired: it is not there.
	if err := kit.replicas[0].Commit(token, []byte("stale"), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, found := find(t, kit.replicas[0], token); found {
		t.Fatal("Find returned an expired value")
	}
	update(t, kit.replicas[0], "", false, "v3", hourFromNow())
}

// appendItem is the update the no-lost-updates tests make: add item to a
// comma-separated list.
func appendItem(cur []byte, found bool, item string) []byte {
	if !found {
		return []byte(item)
	}
	return []byte(string(cur) + "," + item)
}

// storedItems returns the distinct items of the record under token.
func storedItems(t *testing.T, store scs.Store, token string) []string {
	t.Helper()
	b, found := find(t, store, token)
	if !found {
		t.Fatal("the record is not there")
	}
	items := strings.Split(b, ",")
	slices.Sort(items)
	return slices.Compact(items)
}

func itemOf(i int) string { return fmt.Sprintf("w%02d", i) }

// testNoLostUpdates has 64 writers, half on each replica, each add one
// item to one record with Update. All 64 items must be there.
//
// For an adapter that retries (Redis), every writer's first call of
// update waits until all 64 have read the record: every writer then
// holds the same stale read, the interleaving that makes plain Find and
// Commit lose all but one (testPlainCommitLosesUpdates), and 63 of the 64
// transactions must fail and retry. An adapter that locks (PostgreSQL)
// cannot be forced into that interleaving (its update runs under the
// lock): there all 64 start together, and update must never run twice at
// once, across both replicas.
func testNoLostUpdates(t *testing.T, kit atomicStoreKit) {
	ctx := context.Background()
	token := newToken()
	expiry := hourFromNow()
	var (
		ready          sync.WaitGroup
		done           sync.WaitGroup
		calls          atomic.Int64
		inside, most   atomic.Int64
		firstCallsDone atomic.Int64
		mostAttempts   atomic.Int64 // the most calls of update one writer needed
	)
	raise := func(v *atomic.Int64, n int64) {
		for m := v.Load(); n > m && !v.CompareAndSwap(m, n); m = v.Load() {
		}
	}
	ready.Add(writers)
	for i := range writers {
		done.Go(func() {
			first, attempts := true, int64(0)
			defer func() { raise(&mostAttempts, attempts) }()
			if kit.locks {
				ready.Done()
				ready.Wait()
			}
			err := kit.replicas[i%2].Update(ctx, token, func(cur []byte, found bool) ([]byte, time.Time, error) {
				calls.Add(1)
				attempts++
				raise(&most, inside.Add(1))
				defer inside.Add(-1)
				if first && !kit.locks {
					first = false
					firstCallsDone.Add(1)
					ready.Done()
					ready.Wait()
				}
				return appendItem(cur, found, itemOf(i)), expiry, nil
			})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	done.Wait()

	got := storedItems(t, kit.replicas[0], token)
	if len(got) != writers {
		t.Fatalf("%d of %d updates are in the record: %v", len(got), writers, got)
	}
	if kit.locks {
		if most.Load() != 1 || calls.Load() != writers {
			t.Fatalf("update ran %d times, up to %d at once; want %d times, one at a time", calls.Load(), most.Load(), writers)
		}
		t.Logf("%d updates from 2 replicas, none lost; update ran %d times, never two at once", writers, calls.Load())
		return
	}
	if firstCallsDone.Load() != writers || calls.Load() < 2*writers-1 {
		t.Fatalf("update ran %d times; with %d writers holding the same read, at least %d retries were due", calls.Load(), writers, writers-1)
	}
	t.Logf("%d updates from 2 replicas, none lost; all %d read the record before any wrote, update ran %d times (%d retries, at most %d for one writer)",
		writers, writers, calls.Load(), calls.Load()-writers, mostAttempts.Load())
}

// testPlainCommitLosesUpdates is the control for testNoLostUpdates: the
// same 64 writers with scs's Find and Commit, every read before any write,
// as testNoLostUpdates forces for Redis. Every writer read the empty
// record, so only the last commit's item survives: 63 updates are lost.
// That the test tells this from Update's result is what makes it a test.
func testPlainCommitLosesUpdates(t *testing.T, kit atomicStoreKit) {
	token := newToken()
	expiry := hourFromNow()
	var ready, done sync.WaitGroup
	ready.Add(writers)
	for i := range writers {
		done.Go(func() {
			store := kit.replicas[i%2]
			cur, found, err := store.Find(token)
			ready.Done()
			ready.Wait() // every writer has read before any writes
			if err == nil {
				err = store.Commit(token, appendItem(cur, found, itemOf(i)), expiry)
			}
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	done.Wait()
	got := storedItems(t, kit.replicas[0], token)
	if len(got) != 1 {
		t.Fatalf("plain Find then Commit kept %d of %d updates, want exactly 1: %v", len(got), writers, got)
	}
	t.Logf("plain Find then Commit: %d of %d updates lost", writers-len(got), writers)
}

// testUpdateErrorStoresNothing: update's error comes back as it is, and
// the record stays as it was, present or absent.
func testUpdateErrorStoresNothing(t *testing.T, kit atomicStoreKit) {
	ctx := context.Background()
	errVeto := errors.New("veto")
	veto := func([]byte, bool) ([]byte, time.Time, error) {
		return []byte("must not be stored"), hourFromNow().Add(time.Hour), errVeto
	}

	absent := newToken()
	if err := kit.replicas[0].Update(ctx, absent, veto); err != errVeto {
		t.Fatalf("Update returned %v, want update's error unchanged", err)
	}
	if _, found := find(t, kit.replicas[1], absent); found {
		t.Fatal("a vetoed update created the record")
	}

	present := newToken()
	expiry := hourFromNow()
	if err := kit.replicas[0].Commit(present, []byte("v1"), expiry); err != nil {
		t.Fatal(err)
	}
	if err := kit.replicas[1].Update(ctx, present, veto); err != errVeto {
		t.Fatalf("Update returned %v, want update's error unchanged", err)
	}
	if b, _ := find(t, kit.replicas[0], present); b != "v1" {
		t.Fatalf("a vetoed update changed the record to %q", b)
	}
	if got := kit.expiry(t, present); !got.Equal(expiry) {
		t.Fatalf("a vetoed update changed the expiry to %v, want %v", got, expiry)
	}
}

// testCancelledUpdate: a context cancelled before Update, or while update
// runs, stores nothing and reports the cancellation.
func testCancelledUpdate(t *testing.T, kit atomicStoreKit) {
	token := newToken()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := kit.replicas[0].Update(ctx, token, func([]byte, bool) ([]byte, time.Time, error) {
		t.Error("update ran under a cancelled context")
		return []byte("x"), hourFromNow(), nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update under a cancelled context returned %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	err = kit.replicas[1].Update(ctx, token, func([]byte, bool) ([]byte, time.Time, error) {
		cancel() // the request went away while the update was computed
		return []byte("x"), hourFromNow(), nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update cancelled during update returned %v", err)
	}
	if _, found := find(t, kit.replicas[0], token); found {
		t.Fatal("a cancelled Update stored its value")
	}
}

// Both adapters are what stepup.New asks of a store shared by replicas.
// The assertions live here rather than in the adapters' own tests so that
// the adapters' modules need not require the library.
var (
	_ stepup.AtomicStore = (*redisstore.RedisStore)(nil)
	_ stepup.AtomicStore = (*postgresstore.PostgresStore)(nil)
)

// TestNewTakesTheStoreAdaptersNotScsStores: stepup.New refuses scs's
// Redis and PostgreSQL stores, whose last Commit wins, and takes the
// adapters that wrap them. New does not talk to the store, so neither
// needs a server here.
func TestNewTakesTheStoreAdaptersNotScsStores(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return nil, errors.New("not dialled") }}
	db, err := sql.Open("postgres", "postgres://127.0.0.1:1/unused?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name  string
		store scs.Store
		takes bool
	}{
		{"scs/redisstore", scsredis.New(pool), false},
		{"stores/redisstore", redisstore.New(nil), true}, // New keeps the client; nothing dials
		{"scs/postgresstore", scspostgres.NewWithCleanupInterval(db, 0), false},
		{"stores/postgresstore", postgresstore.NewWithCleanupInterval(db, 0), true},
	} {
		cfg := a.cfg
		cfg.SessionManager = scs.New()
		cfg.SessionManager.Store = tc.store
		_, err := stepup.New(cfg)
		var ce *stepup.ConfigError
		switch {
		case tc.takes && err != nil:
			t.Errorf("%s: New refused it: %v", tc.name, err)
		case !tc.takes && (!errors.As(err, &ce) || ce.Field != "SessionManager"):
			t.Errorf("%s: New returned %v, want a ConfigError on SessionManager", tc.name, err)
		}
	}
}
