package stepup

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync/atomic"
	"time"
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
		err := s.updateSidIndex(ctx, sid, asWritten, func(x *sidIndex) bool {
			cause = ""
			if x.cut != 0 && authTime <= x.cut {
				cause = x.cause
				return false
			}
			x.subject = el.Subject
			x.until = max(x.until, deadline)
			return true
		})
		if err != nil || cause != "" {
			return cause, err
		}
	}
	l, err := s.updateLifetime(ctx, el.Subject, asWritten, func(l *lifetime) { l.until = max(l.until, deadline) })
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
		l, err := s.updateLifetime(ctx, sub, replicated, func(l *lifetime) {
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
	err := s.updateRecord(ctx, key, replicated, func(cur string) (string, int64, error) {
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
		err := s.updateRecord(ctx, key, replicated, func(cur string) (string, int64, error) {
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
		_, err = s.updateLifetime(ctx, sub, replicated, func(l *lifetime) { l.until = max(l.until, until) })
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
		err := s.updateSidIndex(ctx, sid, replicated, func(x *sidIndex) bool {
			if at > x.cut {
				x.cut, x.cause = at, cause
			}
			x.until = max(x.until, s.inFlight(now))
			sub = x.subject
			return true
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

// recordDrop adds the elevation h to its subject's revocation record,
// kept until the elevation's deadline, and keeps the lifetime record at
// least as long.
func (s *StepUp) recordDrop(ctx context.Context, h elevationHead) error {
	now := s.now().Unix()
	until := int64(0)
	err := s.updateRecord(ctx, s.subjectKey(h.subject), replicated, func(cur string) (string, int64, error) {
		rv, err := s.parseRevocations(cur, now)
		if err != nil {
			return "", 0, err
		}
		rv.drops = append(rv.drops, dropRevocation{id: h.id, until: h.deadline})
		// A dropped elevation's device binding is of no more use: free its
		// place among the user's bindings (maxBindings).
		rv.bindings = slices.DeleteFunc(rv.bindings, func(b deviceBinding) bool { return b.id == h.id })
		rv.extend(h.deadline)
		until = rv.until
		return encodeRevocations(rv), rv.until, nil
	})
	if err != nil {
		return err
	}
	_, err = s.updateLifetime(ctx, h.subject, replicated, func(l *lifetime) { l.until = max(l.until, until) })
	return err
}

// parseRevocations decodes a stored record for an update, pruned at now;
// the empty string is a new, empty record.
func (s *StepUp) parseRevocations(cur string, now int64) (*revocations, error) {
	if cur == "" {
		return &revocations{}, nil
	}
	rv, err := decodeRevocations(cur)
	if err != nil {
		return nil, ErrCorruptRecord
	}
	rv.prune(now)
	return rv, nil
}

// revokedBy reports whether a revocation covers the elevation h, reading
// its subject's record: the one store lookup the guard adds to a request.
// It returns the record too (nil when there is none), which also says
// whether h is bound to a device; the caller must not change it. A store
// error, or a record that does not decode, is returned, and the caller
// fails closed.
func (s *StepUp) revokedBy(ctx context.Context, h elevationHead) (*revocations, Reason, bool, error) {
	b, found, err := s.findRecordRaw(ctx, s.subjectKey(h.subject))
	if err != nil || !found {
		return nil, "", false, err
	}
	rv := s.records.get(b)
	if rv == nil {
		cur, err := s.decodeRecordValue(b)
		if err != nil {
			return nil, "", false, err
		}
		if rv, err = decodeRevocations(cur); err != nil {
			return nil, "", false, ErrCorruptRecord
		}
		s.records.put(b, rv)
	}
	cause, covered := rv.covers(h)
	return rv, cause, covered, nil
}

// recordCache remembers the last revocation records the guard decoded,
// by their stored bytes. A record is a pure function of its bytes, so a
// hit is exact: the store is still read on every request, and a record
// changed by any replica has other bytes and is decoded afresh. It spares
// the codec's decoding (scs's gob: microseconds and hundreds of
// allocations) for the records that exist on every request of their user:
// those of users with a bound elevation.
type recordCache struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[cachedRecord]
}

type cachedRecord struct {
	raw string
	rv  *revocations
}

func newRecordCache() *recordCache { return &recordCache{seed: maphash.MakeSeed()} }

func (c *recordCache) get(b []byte) *revocations {
	e := c.slots[maphash.Bytes(c.seed, b)%uint64(len(c.slots))].Load()
	if e != nil && e.raw == string(b) {
		return e.rv
	}
	return nil
}

func (c *recordCache) put(b []byte, rv *revocations) {
	c.slots[maphash.Bytes(c.seed, b)%uint64(len(c.slots))].Store(&cachedRecord{raw: string(b), rv: rv})
}

// RevokeSubject ends every elevation of the user sub granted so far, on
// every session, device and replica that shares the session store, at its
// next request at the latest: for an account disabled or credentials reset
// by support. An elevation granted after it returns is not affected. Which
// elevations it covers does not depend on any clock: every grant records
// the user's revocation generation, and RevokeSubject ends every earlier
// generation. A step-up under way at the IdP whose login is more than
// ClockSkew older than the revocation is refused when its callback
// arrives.
//
// It audits a revoked event with reason revoked_by_operator. When the
// store fails it returns an error wrapping [ErrSession] and audits
// revocation_failed: the revocation was not recorded, or not kept for as
// long as the elevations it covers can live (it then lapses with the
// step-ups in flight, ten minutes and ClockSkew after it). Either way the
// caller should retry; a retry revokes again, to the same effect.
func (s *StepUp) RevokeSubject(ctx context.Context, sub string) error {
	e := Event{Subject: sub, Issuer: s.cfg.Issuer, Reason: ReasonRevokedByOperator}
	if sub == "" || !storable(sub) {
		return errors.New("stepup: RevokeSubject: the subject must be a non-empty printable string")
	}
	if err := s.revokeOperator(ctx, sub); err != nil {
		e.Type = EventRevocationFailed
		s.auditContext(ctx, e)
		return fmt.Errorf("%w: %w", ErrSession, err)
	}
	e.Type = EventRevoked
	s.auditContext(ctx, e)
	return nil
}
