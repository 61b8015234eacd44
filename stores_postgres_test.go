package stepup_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"testing"
	"time"

	scspostgres "github.com/alexedwards/scs/postgresstore"
	_ "github.com/lib/pq"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
)

// sessionsSchema is scs's postgresstore schema, for table name.
func sessionsSchema(table string) string {
	return "CREATE TABLE " + table + " (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);" +
		"CREATE INDEX " + table + "_expiry_idx ON " + table + " (expiry)"
}

// openDB opens dsn with lib/pq, as one replica's pool, closed when the
// test ends.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Two replicas' pools of 32 serve the 64 writers within the server's
	// max_connections.
	db.SetMaxOpenConns(writers / 2)
	t.Cleanup(func() { db.Close() })
	return db
}

// postgresDB is a database pool on a throwaway PostgreSQL for the test,
// with scs's sessions table.
func postgresDB(t *testing.T) *sql.DB {
	db := openDB(t, testkit.StartPostgres(t))
	if _, err := db.Exec(sessionsSchema("sessions")); err != nil {
		t.Fatal(err)
	}
	return db
}

// postgresKit is stores/postgresstore on table sessions of the server at
// dsn, one pool for each replica.
func postgresKit(t *testing.T, dsn string) (atomicStoreKit, [2]*sql.DB) {
	dbs := [2]*sql.DB{openDB(t, dsn), openDB(t, dsn)}
	return atomicStoreKit{
		// No cleanup goroutine: the tests expire nothing by waiting.
		replicas: [2]stepup.AtomicStore{postgresstore.NewWithCleanupInterval(dbs[0], 0), postgresstore.NewWithCleanupInterval(dbs[1], 0)},
		locks:    true,
		expiry: func(t *testing.T, token string) time.Time {
			t.Helper()
			var expiry time.Time
			if err := dbs[0].QueryRow("SELECT expiry FROM sessions WHERE token = $1", token).Scan(&expiry); err != nil {
				t.Fatalf("reading the expiry: %v", err)
			}
			return expiry
		},
	}, dbs
}

// TestPostgresStore runs stores/postgresstore against a real PostgreSQL,
// two database pools standing for two replicas.
func TestPostgresStore(t *testing.T) {
	t.Parallel()
	dsn := testkit.StartPostgres(t)
	kit, dbs := postgresKit(t, dsn)
	if _, err := dbs[0].Exec(sessionsSchema("sessions")); err != nil {
		t.Fatal(err)
	}
	testAtomicStore(t, kit)

	t.Run("HonoursTheTableName", func(t *testing.T) {
		t.Parallel()
		if _, err := dbs[0].Exec(sessionsSchema("stepup_sessions")); err != nil {
			t.Fatal(err)
		}
		cfg := postgresstore.Config{TableName: "stepup_sessions"}
		token := testUpdateSharesScsEntries(t, postgresstore.NewWithConfig(dbs[0], cfg), scspostgres.NewWithConfig(dbs[1], cfg))
		if _, found := find(t, kit.replicas[0], token); found {
			t.Fatal("Update wrote to the default table")
		}
	})

	t.Run("CancelWhileWaitingForTheLock", func(t *testing.T) {
		t.Parallel()
		testPostgresCancelWhileWaiting(t, kit, dbs[0])
	})

	t.Run("ReadCommittedWhateverTheDefault", func(t *testing.T) {
		t.Parallel()
		// Under REPEATABLE READ the read would use a snapshot taken
		// before the lock was granted, missing the previous holder's
		// write, and the write would fail with a serialization error.
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("default_transaction_isolation", "repeatable read") // a run-time parameter lib/pq passes on
		u.RawQuery = q.Encode()
		rr, rrDBs := postgresKit(t, u.String())
		var level string
		if err := rrDBs[0].QueryRow("SHOW default_transaction_isolation").Scan(&level); err != nil || level != "repeatable read" {
			t.Fatalf("default_transaction_isolation is %q (%v), want repeatable read", level, err)
		}
		testNoLostUpdates(t, rr)
	})
}

// testPostgresCancelWhileWaiting holds the lock of a token with one
// Update, starts a second on the other replica, cancels its context once
// PostgreSQL shows it waiting for the lock, and wants it back with the
// cancellation; an update of another token does not wait at all. The
// first Update then completes.
func testPostgresCancelWhileWaiting(t *testing.T, kit atomicStoreKit, db *sql.DB) {
	token := newToken()
	entered, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- kit.replicas[0].Update(context.Background(), token, func(cur []byte, found bool) ([]byte, time.Time, error) {
			close(entered)
			<-release
			return []byte("holder"), hourFromNow(), nil
		})
	}()
	<-entered
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	// Another token's lock is another lock.
	ctx, cancelOther := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelOther()
	if err := kit.replicas[1].Update(ctx, newToken(), func([]byte, bool) ([]byte, time.Time, error) {
		return []byte("other"), hourFromNow(), nil
	}); err != nil {
		t.Fatalf("an update of another token: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiter := make(chan error, 1)
	go func() {
		waiter <- kit.replicas[1].Update(ctx, token, func([]byte, bool) ([]byte, time.Time, error) {
			t.Error("update ran while another Update held the lock")
			return []byte("waiter"), hourFromNow(), nil
		})
	}()
	for waiting := 0; waiting == 0; {
		err := db.QueryRow("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-waiter:
			t.Fatalf("the second Update returned %v while the first held the lock", err)
		default:
		}
	}
	cancel()
	select {
	case err := <-waiter:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the waiting Update returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting Update did not return after its context was cancelled")
	}

	close(release)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	if b, _ := find(t, kit.replicas[1], token); b != "holder" {
		t.Fatalf("stored %q, want the holder's update", b)
	}
}
