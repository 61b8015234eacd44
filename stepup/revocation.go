package stepup

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash/maphash"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
)

// An elevation can end before its deadline in four ways: the application
// drops it ([StepUp.Drop]), the IdP ends the IdP session it came from
// (back-channel logout or CAEP session-revoked, naming a sid), the IdP ends
// every session of the user (a logout token naming only sub, CAEP
// credential-change, session-revoked for the user, a lowered assurance
// level), or an operator revokes the user ([StepUp.RevokeSubject]).
//
// All four are answered from one record per user and issuer, the subject's
// revocation record, kept in the session store beside the sessions, so
// that every replica sharing the store sees it. The guard reads it once per
// request, whatever the cause. Writers merge into it with an atomic update
// ([AtomicStore]): several revocations for one user that arrive at once
// never lose one another.
//
// Which revocations cover an elevation is decided without comparing clocks
// of different machines:
//
//   - An IdP revocation carries the IdP's instant (a logout token's iat, a
//     SET's event_timestamp). It covers the elevations whose auth_time, the
//     IdP's instant of the login, is not after it. A login one second later
//     is not covered, whatever the skew between this server and the IdP.
//   - An operator revocation happens on this side, where replicas' clocks
//     differ. It uses no clock: the user's lifetime record counts
//     generations. Every grant records the generation current when it
//     wrote that record; RevokeSubject raises the generation and ends every
//     earlier one. A grant that came before the raise is covered, one that
//     came after is not.
//   - A drop names the elevation's id.

// A revocation record is kept until no elevation it can cover is still
// alive: every grant raises the record's end to the elevation's deadline,
// and entries for one sid or one elevation end with the last elevation
// they cover. The store then expires the record.

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

const revocationTag = "r1"

// revocations is a subject's revocation record.
type revocations struct {
	opCut    int64  // elevations of an earlier generation were revoked by an operator
	opTime   int64  // when (this server's clock) the last operator revocation was written
	idpCut   int64  // elevations with auth_time up to this IdP instant were revoked by the IdP
	idpCause Reason // why, for idpCut
	sids     []sidRevocation
	drops    []dropRevocation
	until    int64 // Unix seconds: no elevation this record covers lives beyond it
}

// sidRevocation ends the elevations from one IdP session whose auth_time
// is not after cut.
type sidRevocation struct {
	sidTag string
	cut    int64
	cause  Reason
	until  int64
}

// dropRevocation ends one elevation, dropped by the application.
type dropRevocation struct {
	id    string
	until int64
}

// covers reports whether the record ends the elevation h, and why.
func (rv *revocations) covers(h elevationHead) (Reason, bool) {
	for _, d := range rv.drops {
		if d.id == h.id {
			return ReasonRevoked, true
		}
	}
	if h.generation < rv.opCut {
		return ReasonRevokedByOperator, true
	}
	if h.authTime <= rv.idpCut {
		return rv.idpCause, true
	}
	if h.sidTag != "" {
		for _, s := range rv.sids {
			if s.sidTag == h.sidTag && h.authTime <= s.cut {
				return s.cause, true
			}
		}
	}
	return "", false
}

// prune drops the entries whose elevations have all ended by now.
func (rv *revocations) prune(now int64) {
	rv.sids = slices.DeleteFunc(rv.sids, func(s sidRevocation) bool { return s.until <= now })
	rv.drops = slices.DeleteFunc(rv.drops, func(d dropRevocation) bool { return d.until <= now })
}

// extend makes the record last at least until t.
func (rv *revocations) extend(t int64) { rv.until = max(rv.until, t) }

// The record's causes are stored as one-letter codes.
var causeCodes = map[Reason]string{
	ReasonBackChannelLogout: "b",
	ReasonRevokedByOperator: "o",
	ReasonSessionRevoked:    "s",
	ReasonCredentialChange:  "c",
	ReasonAssuranceLowered:  "a",
}

func causeCode(r Reason) string { return causeCodes[r] }

func causeFromCode(c string) (Reason, bool) {
	for r, code := range causeCodes {
		if code == c {
			return r, true
		}
	}
	return "", c == ""
}

// encodeRevocations serialises rv: the scalars, then the sid entries and
// the drops as lists of sub-records separated by the list separator, their
// fields by a colon (tags and ids are base64url, with no colon).
func encodeRevocations(rv *revocations) string {
	var w writer
	w.str(revocationTag)
	w.int(rv.until)
	w.int(rv.opCut)
	w.int(rv.opTime)
	w.int(rv.idpCut)
	w.str(causeCode(rv.idpCause))
	sids := make([]string, len(rv.sids))
	for i, s := range rv.sids {
		sids[i] = s.sidTag + ":" + strconv.FormatInt(s.cut, 10) + ":" + causeCode(s.cause) + ":" + strconv.FormatInt(s.until, 10)
	}
	w.list(sids)
	drops := make([]string, len(rv.drops))
	for i, d := range rv.drops {
		drops[i] = d.id + ":" + strconv.FormatInt(d.until, 10)
	}
	w.list(drops)
	return string(w.b)
}

func decodeRevocations(s string) (*revocations, error) {
	d := record{rest: s}
	if d.str() != revocationTag {
		return nil, ErrCorruptRecord
	}
	rv := &revocations{}
	rv.until = d.int()
	rv.opCut = d.int()
	rv.opTime = d.int()
	rv.idpCut = d.int()
	cause, causeOK := causeFromCode(d.str())
	rv.idpCause = cause
	sids, drops := d.str(), d.str()
	if err := d.end(); err != nil || !causeOK || (rv.idpCut != 0) != (cause != "") {
		return nil, ErrCorruptRecord
	}
	for _, item := range splitList(sids) {
		f := strings.Split(item, ":")
		if len(f) != 4 || f[0] == "" {
			return nil, ErrCorruptRecord
		}
		cut, err1 := strconv.ParseInt(f[1], 10, 64)
		c, ok := causeFromCode(f[2])
		until, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || !ok || c == "" || cut <= 0 {
			return nil, ErrCorruptRecord
		}
		rv.sids = append(rv.sids, sidRevocation{sidTag: f[0], cut: cut, cause: c, until: until})
	}
	for _, item := range splitList(drops) {
		id, u, ok := strings.Cut(item, ":")
		until, err := strconv.ParseInt(u, 10, 64)
		if !ok || id == "" || err != nil {
			return nil, ErrCorruptRecord
		}
		rv.drops = append(rv.drops, dropRevocation{id: id, until: until})
	}
	return rv, nil
}

// A sid's index record maps an IdP session to its subject, for logout
// tokens that name only sid (Back-Channel Logout §2.4 allows that). It
// also remembers a logout that arrived before any grant from that session,
// so that such a grant is refused.
type sidIndex struct {
	subject string
	cut     int64  // the IdP's instant of a logout of this session, or 0
	cause   Reason // why, for cut
	until   int64
}

const sidIndexTag = "s1"

func encodeSidIndex(x *sidIndex) string {
	var w writer
	w.str(sidIndexTag)
	w.int(x.until)
	w.str(x.subject)
	w.int(x.cut)
	w.str(causeCode(x.cause))
	return string(w.b)
}

func decodeSidIndex(s string) (*sidIndex, error) {
	d := record{rest: s}
	if d.str() != sidIndexTag {
		return nil, ErrCorruptRecord
	}
	x := &sidIndex{until: d.int(), subject: d.str(), cut: d.int()}
	cause, ok := causeFromCode(d.str())
	x.cause = cause
	if d.end() != nil || !ok || (x.cut != 0) != (cause != "") {
		return nil, ErrCorruptRecord
	}
	return x, nil
}

// Store keys. Each starts with a letter and a semicolon: a semicolon never
// occurs in a cookie value, so no client can present one as its session
// token, load the record as its session and overwrite it. Each names its
// issuer, so that two IdPs' subjects and sessions never share a record.
func recordKey(kind byte, issuer, value string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + value))
	return string([]byte{kind, ';'}) + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// subjectKey is the key of sub's revocation record. The guard needs it on
// every request, so keys are cached: a map lookup by subject allocates
// nothing, a SHA-256 and a new string would. The cache is emptied when it
// holds maxSubjectKeys subjects.
func (s *StepUp) subjectKey(sub string) string {
	if k, ok := s.subjectKeys.Load(sub); ok {
		return k.(string)
	}
	k := recordKey('R', s.cfg.Issuer, sub)
	if s.subjectKeyCount.Add(1) > maxSubjectKeys {
		s.subjectKeys.Clear()
		s.subjectKeyCount.Store(1)
	}
	s.subjectKeys.Store(strings.Clone(sub), k)
	return k
}

const maxSubjectKeys = 100_000

func (s *StepUp) sidKey(sid string) string   { return recordKey('S', s.cfg.Issuer, sid) }
func (s *StepUp) tokenKey(jti string) string { return recordKey('J', s.cfg.Issuer, jti) }

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

// updateRecord atomically replaces the record under key with what update
// returns from the current one ("" when there is none). update may be
// called more than once. When update returns the empty string nothing is
// written.
func (s *StepUp) updateRecord(ctx context.Context, key string, update func(cur string) (next string, until int64, err error)) error {
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
	if as, ok := s.sm.Store.(AtomicStore); ok {
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

// A subject's lifetime record holds the latest deadline of the user's
// elevations granted so far, and the user's revocation generation. Grants
// raise the deadline and read the generation; operator revocations raise
// the generation; every revocation reads the deadline to keep its record
// as long as an elevation it covers can live. It is a separate record so
// that the revocation record, which the guard reads on every request,
// exists only for users something was revoked for: for everyone else the
// guard's lookup finds nothing and decodes nothing.
//
// The lifetime record outlives the revocation record (every revocation
// raises it to at least the revocation record's end), so the generation
// never starts over while an elevation or a revocation that carries it
// is alive.
const lifetimeTag = "d1"

type lifetime struct {
	until      int64 // Unix seconds: the latest deadline, and at least the revocation record's end
	generation int64 // the generation grants record; RevokeSubject raises it
}

func (s *StepUp) lifetimeKey(sub string) string { return recordKey('D', s.cfg.Issuer, sub) }

func encodeLifetime(l lifetime) string {
	var w writer
	w.str(lifetimeTag)
	w.int(l.until)
	w.int(l.generation)
	return string(w.b)
}

func decodeLifetime(cur string) (lifetime, error) {
	d := record{rest: cur}
	if d.str() != lifetimeTag {
		return lifetime{}, ErrCorruptRecord
	}
	l := lifetime{until: d.int(), generation: d.int()}
	if d.end() != nil {
		return lifetime{}, ErrCorruptRecord
	}
	return l, nil
}

// updateLifetime applies change to sub's lifetime record atomically and
// returns the result. Nothing is written when change leaves it as it was.
func (s *StepUp) updateLifetime(ctx context.Context, sub string, change func(*lifetime)) (lifetime, error) {
	var out lifetime
	err := s.updateRecord(ctx, s.lifetimeKey(sub), func(cur string) (string, int64, error) {
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

// registerGrant checks the elevation el, about to be stored, against the
// revocations that may have arrived while the user was at the IdP, and
// records it where later revocations will look: the subject's lifetime
// record (its deadline), the sid's index (its subject, when the ID token
// named a sid), and the elevation itself (the subject's current
// revocation generation). It returns the cause of a revocation that
// already covers el.
//
// The order makes a grant and a revocation that run at the same time
// safe without a lock across records: the grant writes the lifetime record
// before it reads the revocation record; a revocation writes the
// revocation record before it reads the lifetime record. So either the
// revocation reads this deadline and keeps its record for it, or the
// grant reads the revocation and is not covered by it (it came after).
func (s *StepUp) registerGrant(ctx context.Context, el *Elevation, sid string) (Reason, error) {
	authTime, deadline := el.AuthTime.Unix(), el.Deadline.Unix()
	if sid != "" {
		var cause Reason
		err := s.updateRecord(ctx, s.sidKey(sid), func(cur string) (string, int64, error) {
			x := &sidIndex{}
			if cur != "" {
				var err error
				if x, err = decodeSidIndex(cur); err != nil {
					return "", 0, ErrCorruptRecord
				}
			}
			cause = ""
			if x.cut != 0 && authTime <= x.cut {
				cause = x.cause
				return "", 0, nil
			}
			x.subject = el.Subject
			x.until = max(x.until, deadline)
			return encodeSidIndex(x), x.until, nil
		})
		if err != nil || cause != "" {
			return cause, err
		}
	}
	l, err := s.updateLifetime(ctx, el.Subject, func(l *lifetime) { l.until = max(l.until, deadline) })
	if err != nil {
		return "", err
	}
	el.generation = l.generation
	cur, found, err := s.findRecord(ctx, s.subjectKey(el.Subject))
	if err != nil || !found {
		return "", err
	}
	rv, err := decodeRevocations(cur)
	if err != nil {
		return "", ErrCorruptRecord
	}
	if cause, covered := rv.covers(elevationHead{id: el.ID, generation: el.generation, sidTag: el.sidTag, authTime: authTime}); covered {
		return cause, nil
	}
	// A login more than ClockSkew older than an operator revocation
	// belongs to a step-up that was under way when it was written.
	if rv.opTime != 0 && authTime <= rv.opTime-s.skew {
		return ReasonRevokedByOperator, nil
	}
	return "", nil
}

// inFlight is how long after a revocation a step-up that was under way
// when it arrived can still complete: a challenge's lifetime.
func (s *StepUp) inFlight(now int64) int64 { return now + int64(challengeTTL/time.Second) + s.skew }

// revise merges a revocation into sub's revocation record, then keeps the
// record as long as the latest elevation of sub granted so far can live,
// and the lifetime record at least as long as the revocation record. With
// bump, it first raises the user's generation and hands the new one to
// revise (an operator revocation).
//
// The order makes a grant and a revocation that run at the same time safe
// without a lock across records: a grant writes the lifetime record, then
// reads the revocation record; a revocation writes the revocation record,
// then reads the lifetime record. So either the revocation reads the
// grant's deadline and keeps its record for it, or the grant reads the
// revocation.
func (s *StepUp) revise(ctx context.Context, sub string, bump bool, revise func(rv *revocations, generation int64)) error {
	now := s.now().Unix()
	var generation int64
	if bump {
		l, err := s.updateLifetime(ctx, sub, func(l *lifetime) {
			l.generation++
			l.until = max(l.until, s.inFlight(now))
		})
		if err != nil {
			return err
		}
		generation = l.generation
	}
	key := s.subjectKey(sub)
	until := int64(0)
	err := s.updateRecord(ctx, key, func(cur string) (string, int64, error) {
		rv, err := s.parseRevocations(cur, now)
		if err != nil {
			return "", 0, err
		}
		revise(rv, generation)
		rv.extend(s.inFlight(now))
		until = rv.until
		return encodeRevocations(rv), rv.until, nil
	})
	if err != nil {
		return err
	}
	cur, found, err := s.findRecord(ctx, s.lifetimeKey(sub))
	if err != nil {
		return err
	}
	latest := int64(0)
	if found {
		l, err := decodeLifetime(cur)
		if err != nil {
			return err
		}
		latest = l.until
	}
	if latest > until {
		err := s.updateRecord(ctx, key, func(cur string) (string, int64, error) {
			rv, err := s.parseRevocations(cur, now)
			if err != nil {
				return "", 0, err
			}
			rv.extend(latest)
			for i := range rv.sids {
				rv.sids[i].until = max(rv.sids[i].until, latest)
			}
			until = rv.until
			return encodeRevocations(rv), rv.until, nil
		})
		if err != nil {
			return err
		}
	}
	if latest < until {
		_, err = s.updateLifetime(ctx, sub, func(l *lifetime) { l.until = max(l.until, until) })
	}
	return err
}

// revokeIdP records a revocation by the IdP: of the IdP session sid when
// it is given, else of every elevation of sub. at is the IdP's instant of
// the revocation: elevations whose login (auth_time) is not after it end.
// It returns the subject it reached, which is empty for a sid no grant
// has named yet (a later grant from that session is refused).
func (s *StepUp) revokeIdP(ctx context.Context, sub, sid string, at int64, cause Reason) (string, error) {
	now := s.now().Unix()
	if sub == "" {
		err := s.updateRecord(ctx, s.sidKey(sid), func(cur string) (string, int64, error) {
			x := &sidIndex{}
			if cur != "" {
				var err error
				if x, err = decodeSidIndex(cur); err != nil {
					return "", 0, ErrCorruptRecord
				}
			}
			if at > x.cut {
				x.cut, x.cause = at, cause
			}
			x.until = max(x.until, s.inFlight(now))
			sub = x.subject
			return encodeSidIndex(x), x.until, nil
		})
		if err != nil || sub == "" {
			return sub, err
		}
	}
	tag := sidTag(s.cfg.Issuer, sid)
	return sub, s.revise(ctx, sub, false, func(rv *revocations, _ int64) {
		if sid == "" {
			if at > rv.idpCut {
				rv.idpCut, rv.idpCause = at, cause
			}
			return
		}
		i := slices.IndexFunc(rv.sids, func(e sidRevocation) bool { return e.sidTag == tag })
		if i < 0 {
			rv.sids = append(rv.sids, sidRevocation{sidTag: tag})
			i = len(rv.sids) - 1
		}
		if e := &rv.sids[i]; at > e.cut {
			e.cut, e.cause = at, cause
		}
		rv.sids[i].until = max(rv.sids[i].until, s.inFlight(now))
	})
}

// revokeOperator records an operator's revocation of every elevation of
// sub granted so far.
func (s *StepUp) revokeOperator(ctx context.Context, sub string) error {
	now := s.now().Unix()
	return s.revise(ctx, sub, true, func(rv *revocations, generation int64) {
		rv.opCut, rv.opTime = max(rv.opCut, generation), now
	})
}
