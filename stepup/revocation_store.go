package stepup

import (
	"context"
	"errors"
	"hash/maphash"
	"reflect"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
)

// This file holds how revocation records are read from and written to the
// session store: as scs sessions with one value, updated atomically
// through an [AtomicStore], or under a lock of this process for scs's
// memstore.

// AtomicStore is implemented by session stores that can update one record
// atomically with respect to every other update of the same record, on
// every replica that shares the store. stepup merges revocations into one
// record per user with it; without it two revocations arriving together
// could lose one another (scs stores commit whole values, and the last
// commit wins).
//
// The Redis and PostgreSQL adapters of this repository implement it
// (modules github.com/oidc-stepup/stepup/stores/redisstore and
// .../postgresstore). For scs's memstore, which lives in one process,
// stepup serialises updates with a lock of its own.
type AtomicStore interface {
	scs.Store
	// Update reads the value stored under token (found is false when there
	// is none, or it has expired), passes it to update, and stores what
	// update returns, until expiry, unless another update of token
	// happened in between: then it reads again and calls update again.
	// An error from update is returned unchanged and nothing is stored.
	Update(ctx context.Context, token string, update func(current []byte, found bool) (next []byte, expiry time.Time, err error)) error
}

// revocationValueKey is the key of the record inside the scs session
// value that holds it: revocation records are stored in the store's own
// codec, as sessions with one value, so SessionManager.Iterate can still
// decode everything in the store.
const revocationValueKey = "stepup.revocations"

// findRecordRaw reads a store entry as it is stored. Like scs, it passes
// ctx to a store that has FindCtx, even without the rest of scs.CtxStore.
func (s *StepUp) findRecordRaw(ctx context.Context, key string) ([]byte, bool, error) {
	if cs, ok := s.sm.Store.(ctxFinder); ok {
		return cs.FindCtx(ctx, key)
	}
	return s.sm.Store.Find(key)
}

type ctxFinder interface {
	FindCtx(ctx context.Context, token string) ([]byte, bool, error)
}

// findRecord reads a record from the store. A store error is returned, and
// the caller fails closed.
func (s *StepUp) findRecord(ctx context.Context, key string) (string, bool, error) {
	b, found, err := s.findRecordRaw(ctx, key)
	if err != nil || !found {
		return "", false, err
	}
	v, err := s.decodeRecordValue(b)
	return v, err == nil, err
}

func (s *StepUp) decodeRecordValue(b []byte) (string, error) {
	_, values, err := s.sm.Codec.Decode(b)
	if err != nil {
		return "", ErrCorruptRecord
	}
	v, ok := values[revocationValueKey].(string)
	if !ok {
		return "", ErrCorruptRecord
	}
	return v, nil
}

// ReplicatedStore is implemented by an [AtomicStore] on a server that
// replicates writes asynchronously, such as Redis, whose failover can
// lose a write the old primary acknowledged. UpdateReplicated is Update
// that returns only once the store's replicas hold the write, or an error
// when they did not within the store's bound.
//
// stepup writes every revocation through it (a logout token, a security
// event, RevokeSubject, Drop's record) and acknowledges the revocation
// (the IdP's 200 or 202, RevokeSubject's nil) only after it returned, so
// that a replica promoted by a failover still holds it. An error is a
// failed revocation: revocation_failed, and the IdP is answered so that it
// retries. Grants are written with Update: a grant a failover loses only
// asks the user to step up again. The Redis adapter of this repository
// implements it with Redis WAIT.
type ReplicatedStore interface {
	UpdateReplicated(ctx context.Context, token string, update func(current []byte, found bool) (next []byte, expiry time.Time, err error)) error
}

// durability says when a record write counts as done.
type durability bool

const (
	// asWritten: when the store acknowledged it. Grants and replay
	// records: losing one in a failover asks the user to step up again,
	// or lets a processed token be processed again, to the same effect.
	asWritten durability = false
	// replicated: when the store's replicas hold it too
	// ([ReplicatedStore]). Revocations: losing one would elevate again a
	// user who was signed out.
	replicated durability = true
)

// updateRecord atomically replaces the record under key with what update
// returns from the current one ("" when there is none). update may be
// called more than once. When update returns the empty string nothing is
// written.
func (s *StepUp) updateRecord(ctx context.Context, key string, d durability, update func(cur string) (next string, until int64, err error)) error {
	errUnchanged := errors.New("unchanged")
	apply := func(b []byte, found bool) ([]byte, time.Time, error) {
		cur := ""
		if found {
			var err error
			if cur, err = s.decodeRecordValue(b); err != nil {
				return nil, time.Time{}, err
			}
		}
		next, until, err := update(cur)
		if err != nil {
			return nil, time.Time{}, err
		}
		if next == "" {
			return nil, time.Time{}, errUnchanged
		}
		expiry := time.Unix(until, 0)
		enc, err := s.sm.Codec.Encode(expiry, map[string]interface{}{revocationValueKey: next})
		return enc, expiry, err
	}
	var err error
	if rs, ok := s.sm.Store.(ReplicatedStore); ok && d == replicated {
		err = rs.UpdateReplicated(ctx, key, apply)
	} else if as, ok := s.sm.Store.(AtomicStore); ok {
		err = as.Update(ctx, key, apply)
	} else {
		err = s.lockedUpdate(ctx, key, apply)
	}
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// lockedUpdate is updateRecord for stores that are not an AtomicStore:
// scs's memstore, which lives in this process, so a lock of this process
// makes the update atomic; or any store when
// Config.InsecureNonAtomicRevocations is set, where it is atomic only
// among this process's own writers.
func (s *StepUp) lockedUpdate(ctx context.Context, key string, apply func([]byte, bool) ([]byte, time.Time, error)) error {
	mu := storeLock(s.sm.Store, key)
	mu.Lock()
	defer mu.Unlock()
	b, found, err := s.findRecordRaw(ctx, key)
	if err != nil {
		return err
	}
	next, expiry, err := apply(b, found)
	if err != nil {
		return err
	}
	if cs, ok := s.sm.Store.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, key, next, expiry)
	}
	return s.sm.Store.Commit(key, next, expiry)
}

// storeLocks serialises lockedUpdate per store and key: one store can be
// shared by several StepUp values in a process (several replicas in a test,
// several SessionManagers on one memstore). Stores of a type that cannot be
// a map key share one set of locks.
var (
	storeLocks    sync.Map // scs.Store → *lockStripes
	storeLockSeed = maphash.MakeSeed()
	sharedStripes lockStripes
)

type lockStripes [64]sync.Mutex

func storeLock(store scs.Store, key string) *sync.Mutex {
	stripes := &sharedStripes
	if reflect.TypeOf(store).Comparable() {
		v, _ := storeLocks.LoadOrStore(store, new(lockStripes))
		stripes = v.(*lockStripes)
	}
	return &stripes[maphash.String(storeLockSeed, key)%64]
}

// atomicRevocations reports whether revocations written through store are
// atomic across every process that shares it.
func atomicRevocations(store scs.Store) bool {
	switch store.(type) {
	case AtomicStore, *memstore.MemStore:
		return true
	}
	return false
}

// updateLifetime applies change to sub's lifetime record atomically and
// returns the result. Nothing is written when change leaves it as it was.
func (s *StepUp) updateLifetime(ctx context.Context, sub string, d durability, change func(*lifetime)) (lifetime, error) {
	var out lifetime
	err := s.updateRecord(ctx, s.lifetimeKey(sub), d, func(cur string) (string, int64, error) {
		var l lifetime
		if cur != "" {
			var err error
			if l, err = decodeLifetime(cur); err != nil {
				return "", 0, err
			}
		}
		before := l
		change(&l)
		out = l
		if l == before && cur != "" {
			return "", 0, nil
		}
		return encodeLifetime(l), l.until, nil
	})
	return out, err
}

// updateSidIndex applies change to sid's index record atomically (a new,
// empty one when there is none) and writes it when change returns true.
func (s *StepUp) updateSidIndex(ctx context.Context, sid string, d durability, change func(x *sidIndex) (write bool)) error {
	return s.updateRecord(ctx, s.sidKey(sid), d, func(cur string) (string, int64, error) {
		x := &sidIndex{}
		if cur != "" {
			var err error
			if x, err = decodeSidIndex(cur); err != nil {
				return "", 0, err
			}
		}
		if !change(x) {
			return "", 0, nil
		}
		return encodeSidIndex(x), x.until, nil
	})
}
