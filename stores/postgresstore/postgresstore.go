// Package postgresstore is scs's PostgreSQL session store
// (github.com/alexedwards/scs/postgresstore) with the one operation stepup
// needs that scs does not have: an atomic read-modify-write of one record,
// [PostgresStore.Update], which makes it a stepup.AtomicStore.
//
// stepup keeps one revocation record per user in the session store, and
// several replicas may revoke for the same user at the same instant (a
// logout token and an operator, say). scs's Commit writes a whole value:
// two replicas that each Find the record, add their revocation and Commit
// lose one of the two. Update takes a transaction-scoped advisory lock on
// the token first, so updates of one token run one after the other on
// every process sharing the database; the record need not exist yet, which
// is why a row lock (SELECT ... FOR UPDATE) would not do.
//
// Find, Commit, Delete, All and the cleanup goroutine are scs's own,
// unchanged: sessions live in the same table, so the wrapper is a drop-in
// replacement for scs/postgresstore. Like scs's store it uses database/sql
// and leaves the driver to the application (github.com/lib/pq, or pgx's
// stdlib). Update needs PostgreSQL 11 or later (hashtextextended).
package postgresstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/alexedwards/scs/postgresstore"
)

// Config is scs's postgresstore.Config: CleanUpInterval (0 disables the
// cleanup goroutine) and TableName (empty means "sessions").
type Config = postgresstore.Config

// PostgresStore is scs's PostgresStore plus [PostgresStore.Update].
type PostgresStore struct {
	*postgresstore.PostgresStore

	db     *sql.DB
	lock   string // the advisory lock statement
	find   string // Update's read, scs's Find in the transaction
	commit string // Update's write, scs's Commit in the transaction
	table  string
}

// New returns a store on db's table "sessions", whose expired sessions a
// goroutine deletes every 5 minutes, as scs's New.
func New(db *sql.DB) *PostgresStore {
	return NewWithConfig(db, Config{CleanUpInterval: 5 * time.Minute})
}

// NewWithCleanupInterval returns a store on db's table "sessions", whose
// expired sessions a goroutine deletes every cleanupInterval (0: never),
// as scs's NewWithCleanupInterval.
func NewWithCleanupInterval(db *sql.DB, cleanupInterval time.Duration) *PostgresStore {
	return NewWithConfig(db, Config{CleanUpInterval: cleanupInterval})
}

// NewWithConfig returns a store configured as scs's NewWithConfig. The
// table name is put into the SQL as it is, as scs does: it must be a
// trusted identifier, never user input. The table is scs's:
//
//	CREATE TABLE sessions (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);
//	CREATE INDEX sessions_expiry_idx ON sessions (expiry);
func NewWithConfig(db *sql.DB, config Config) *PostgresStore {
	if config.TableName == "" {
		config.TableName = "sessions" // scs's default, which NewWithConfig applies too
	}
	t := config.TableName
	return &PostgresStore{
		PostgresStore: postgresstore.NewWithConfig(db, config),
		db:            db,
		table:         t,
		lock:          "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
		// statement_timestamp(), not scs's current_timestamp: in a
		// transaction current_timestamp is the transaction's start,
		// which precedes the wait for the lock, and a record that
		// expired during the wait would still be found.
		find:   fmt.Sprintf("SELECT data FROM %s WHERE token = $1 AND statement_timestamp() < expiry", t),
		commit: fmt.Sprintf("INSERT INTO %s (token, data, expiry) VALUES ($1, $2, $3) ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry", t),
	}
}

// Update reads the value under token (found is false when there is none,
// or it has expired by the database's clock, as scs's Find decides), calls
// update with it and stores what update returns until expiry, in one
// transaction that first takes pg_advisory_xact_lock on the table and the
// token. Every other Update of the token, on any process sharing the
// database, waits for that transaction to end, and then reads what it
// wrote: update runs once, and no update is lost.
//
// The lock is advisory: it orders Updates, not scs's Commit and Delete,
// which take no lock. stepup writes its records only through Update. The
// lock's key is a 64-bit hash of table and token, in the database's one
// space of advisory locks: a collision with another key, the
// application's own included, makes one wait for the other, no more.
//
// The transaction is READ COMMITTED whatever the session's default, so
// that the read sees the commit of the Update that held the lock before.
//
// An error from update is returned unchanged and nothing is stored. A
// cancelled ctx rolls the transaction back, and Update returns an error
// that wraps ctx's error, whichever driver reports it.
func (s *PostgresStore) Update(ctx context.Context, token string, update func(current []byte, found bool) (next []byte, expiry time.Time, err error)) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fail(ctx, err)
	}
	defer tx.Rollback() // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, s.lock, s.table+":"+token); err != nil {
		return fail(ctx, err)
	}
	var cur []byte
	found := true
	if err := tx.QueryRowContext(ctx, s.find, token).Scan(&cur); err == sql.ErrNoRows {
		cur, found = nil, false
	} else if err != nil {
		return fail(ctx, err)
	}
	next, expiry, err := update(cur, found)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.commit, token, next, expiry); err != nil {
		return fail(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return fail(ctx, err)
	}
	return nil
}

// fail wraps a database error, or ctx's error when ctx ended: drivers
// report a cancelled statement in their own words (lib/pq: "canceling
// statement due to user request").
func fail(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("postgresstore: update: %w", ctxErr)
	}
	return fmt.Errorf("postgresstore: update: %w", err)
}
