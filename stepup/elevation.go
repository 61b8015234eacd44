package stepup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Elevation is an elevation as stored in the session.
type Elevation struct {
	ID            string // random id, linking the elevation's audit events
	Scope         string
	Issuer        string
	Subject       string
	ACR           string   // the acr the IdP asserted (from acrs, the accepted value)
	AMR           []string // the authentication methods the IdP asserted
	AuthTime      time.Time
	IDTokenExpiry time.Time // the ID token's exp; the elevation ends at Deadline
	SessionExpiry time.Time // the IPSIE session_expiry claim; zero when absent
	GrantedAt     time.Time
	Deadline      time.Time // when the elevation ends; the earliest bound
	Bound         Bound     // which bound set Deadline
	// Ends is when the guard stops honouring the elevation: Deadline
	// brought forward by [Config.ClockSkew]. Set by [StepUp.Elevation]; show
	// this one in countdowns.
	Ends time.Time

	issuerTag  string // what the stored record keeps of Issuer
	acrTag     string // what the stored record keeps of ACR
	sidTag     string // what the stored record keeps of the ID token's sid
	sid        string // the ID token's sid, at the grant only
	generation int64  // the subject's revocation generation at the grant
}

// decodeElevation decodes a stored elevation and names its issuer and acr
// from their tags: the configured issuer, and the scope's acr value with
// the same tag. A tag that names nothing configured any more leaves the
// field empty.
func (s *StepUp) decodeElevation(rec, scope string) (Elevation, error) {
	e, err := decodeElevation(rec, scope)
	if err != nil {
		return e, err
	}
	if e.issuerTag == s.issuerTag {
		e.Issuer = s.cfg.Issuer
	}
	if p := s.policies[scope]; p != nil {
		for _, v := range p.ACR {
			if acrTag(v) == e.acrTag {
				e.ACR = v
				break
			}
		}
	}
	return e, nil
}

// Elevation returns the session's elevation for scope if the guard would
// honour it now, without enforcing anything: it neither removes a stale
// elevation nor challenges. Use it for banners and countdowns. It returns
// false for an unknown scope, a missing session or any failed check.
func (s *StepUp) Elevation(r *http.Request, scope string) (Elevation, bool) {
	p, ok := s.policies[scope]
	if !ok {
		return Elevation{}, false
	}
	v, err := s.get(r.Context(), p.key)
	if err != nil {
		return Elevation{}, false
	}
	sub, checkSub := "", s.cfg.Subject != nil
	if checkSub {
		if sub, ok = s.cfg.Subject(r); !ok {
			return Elevation{}, false
		}
	}
	vd, h := s.check(v, sub, checkSub, s.now().Unix())
	if vd != verdictElevated {
		return Elevation{}, false
	}
	if _, revoked, err := s.revokedBy(r.Context(), h); err != nil || revoked {
		return Elevation{}, false
	}
	e, err := s.decodeElevation(v.(string), scope)
	if err != nil {
		return Elevation{}, false
	}
	e.Ends = e.Deadline.Add(-time.Duration(s.skew) * time.Second)
	return e, true
}

// Drop ends the session's elevation for scope now, and audits a dropped
// event. Call it before writing the response: scs saves the session when the
// response starts. Dropping a scope that is not elevated does nothing.
//
// Drop also records the drop in the subject's revocation record until the
// elevation's deadline, so that a request already in flight cannot write it
// back (scs commits whole sessions, and the last commit wins). If that
// record cannot be written, the elevation is still removed from the session
// and the event's reason is [ReasonDropUnrevoked].
func (s *StepUp) Drop(r *http.Request, scope string) {
	p, ok := s.policies[scope]
	if !ok {
		return
	}
	v, err := s.get(r.Context(), p.key)
	if err != nil || v == nil {
		return
	}
	reason := ReasonDropped
	if rec, ok := v.(string); ok {
		if h, err := readElevationHead(rec); err == nil && h.issuerTag == s.issuerTag {
			if s.recordDrop(r.Context(), h) != nil {
				reason = ReasonDropUnrevoked
			}
		}
	}
	s.remove(r, p, EventDropped, reason)
}

// recordDrop adds the elevation h to its subject's revocation record,
// kept until the elevation's deadline, and keeps the lifetime record at
// least as long.
func (s *StepUp) recordDrop(ctx context.Context, h elevationHead) error {
	now := s.now().Unix()
	until := int64(0)
	err := s.updateRecord(ctx, s.subjectKey(h.subject), func(cur string) (string, int64, error) {
		rv, err := s.parseRevocations(cur, now)
		if err != nil {
			return "", 0, err
		}
		rv.drops = append(rv.drops, dropRevocation{id: h.id, until: h.deadline})
		rv.extend(h.deadline)
		until = rv.until
		return encodeRevocations(rv), rv.until, nil
	})
	if err != nil {
		return err
	}
	_, err = s.updateLifetime(ctx, h.subject, func(l *lifetime) { l.until = max(l.until, until) })
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
// A store error, or a record that does not decode, is returned, and the
// caller fails closed.
func (s *StepUp) revokedBy(ctx context.Context, h elevationHead) (Reason, bool, error) {
	cur, found, err := s.findRecord(ctx, s.subjectKey(h.subject))
	if err != nil || !found {
		return "", false, err
	}
	rv, err := decodeRevocations(cur)
	if err != nil {
		return "", false, ErrCorruptRecord
	}
	cause, covered := rv.covers(h)
	return cause, covered, nil
}

// DropAll drops every elevation of the session, as [StepUp.Drop] does. Call
// it at logout, before destroying the session: a destroyed session can be
// written back by a request in flight too.
func (s *StepUp) DropAll(r *http.Request) {
	for name := range s.policies {
		s.Drop(r, name)
	}
}

// newElevationID returns a random elevation id: 128 bits, base64url,
// after "E;". The prefix marks it in audit logs; like the store keys of
// revocation records, it can never be a cookie value.
func newElevationID() string {
	var b [16]byte
	rand.Read(b[:])
	return "E;" + base64.RawURLEncoding.EncodeToString(b[:])
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
