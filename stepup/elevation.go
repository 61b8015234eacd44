package stepup

import (
	"crypto/rand"
	"encoding/base64"
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
	// DeviceBound says that the browser bound the elevation to its key
	// (the scope's DeviceBinding) and the request carried a valid bound
	// cookie. Set by [StepUp.Elevation].
	DeviceBound bool

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
// elevation nor challenges nor waits for a device registration. Use it for banners and countdowns. It returns
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
	rv, _, revoked, err := s.revokedBy(r.Context(), h)
	if err != nil || revoked {
		return Elevation{}, false
	}
	bound, ok := s.deviceHonours(r, p, h, rv)
	if !ok {
		return Elevation{}, false
	}
	e, err := s.decodeElevation(v.(string), scope)
	if err != nil {
		return Elevation{}, false
	}
	e.DeviceBound = bound
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
