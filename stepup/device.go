package stepup

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file binds elevations to the device with Device Bound Session
// Credentials (DBSC, W3C WebAppSec): the response that grants an elevation
// asks the browser to register a key; the registration endpoint stores the
// key and sets a short-lived bound cookie; the browser refreshes that cookie
// with a proof of the key (device_refresh.go); and the guard honours a bound
// elevation only with a valid bound cookie. docs/device-binding.md explains
// it.

// DeviceBinding is a scope's policy for binding its elevations to the
// browser's key.
type DeviceBinding int

const (
	// DeviceBindingOff: elevations are not bound (the default).
	DeviceBindingOff DeviceBinding = iota
	// DeviceBindingPreferred: the grant asks the browser to bind the
	// elevation. Once bound, the elevation is honoured only with a valid
	// bound cookie, except within [Config.DeviceBindingGrace] of the grant,
	// when the first page may overtake its own registration. A browser
	// that does not bind it within the grace keeps an unbound elevation,
	// audited once per server as an unbound event (device_bound false).
	DeviceBindingPreferred
	// DeviceBindingRequired: an elevation is honoured only once the
	// browser bound it, and only with a valid bound cookie. A request that
	// arrives before the registration waits for it (up to
	// [Config.DeviceBindingGrace] after the grant) and is then redirected
	// to itself, with the cookie; a browser that cannot bind is refused
	// with reason device_not_bound.
	DeviceBindingRequired
)

func (b DeviceBinding) String() string {
	switch b {
	case DeviceBindingOff:
		return "off"
	case DeviceBindingPreferred:
		return "preferred"
	case DeviceBindingRequired:
		return "required"
	}
	return "DeviceBinding(" + strconv.Itoa(int(b)) + ")"
}

// ParseDeviceBinding parses "off", "preferred" or "required".
func ParseDeviceBinding(s string) (DeviceBinding, error) {
	for _, b := range []DeviceBinding{DeviceBindingOff, DeviceBindingPreferred, DeviceBindingRequired} {
		if s == b.String() {
			return b, nil
		}
	}
	return 0, fmt.Errorf("stepup: device binding %q: want off, preferred or required", s)
}

// Defaults of the device binding settings.
const (
	DefaultBoundCookieTTL     = 60 * time.Second
	DefaultDeviceBindingGrace = 10 * time.Second
	// maxBindingWait bounds how long one request waits for a registration.
	maxBindingWait = 5 * time.Second
	bindingPoll    = 50 * time.Millisecond
)

// registration is what the grant hands the browser in
// Secure-Session-Registration.
type registration struct {
	challenge     string
	authorization string
	failed        bool // the registration could not be stored: the grant is unbound
}

// startRegistration creates the DBSC session record of the elevation el,
// about to be granted, with its registration challenge. The challenge and
// the authorization are single-use and expire after challengeTTL.
func (s *StepUp) startRegistration(ctx context.Context, el *Elevation) (registration, error) {
	id := randomToken()
	now := s.now().Unix()
	ds := &deviceSession{until: el.Deadline.Unix(), subject: el.Subject, scope: el.Scope, elevation: el.ID,
		generation: el.generation, sidTag: el.sidTag, authTime: el.AuthTime.Unix(), authorization: randomToken()}
	reg := registration{challenge: ds.addChallenge(id, now, s.challengeTTL()), authorization: ds.authorization}
	err := s.updateRecord(ctx, s.deviceSessionKey(id), asWritten, func(cur string) (string, int64, error) {
		if cur != "" {
			return "", 0, errors.New("stepup: device session id collision")
		}
		return encodeDeviceSession(ds), ds.until, nil
	})
	return reg, err
}

// registrationHeader is the Secure-Session-Registration value for reg.
func (s *StepUp) registrationHeader(reg registration) string {
	return `(ES256 RS256);path="` + s.cfg.DeviceRegisterPath + `";challenge="` + reg.challenge +
		`";authorization="` + reg.authorization + `"`
}

// DeviceRegisterHandler returns the DBSC registration endpoint, to mount at
// [Config.DeviceRegisterPath] (POST) behind the SessionManager's
// LoadAndSave, and outside any lock that serialises a session's requests:
// the registration arrives while the page the step-up returned to is
// loading, and that page may wait for it. It is reached only by browsers
// that a grant asked to register. It checks the dbsc+jwt (ES256 on P-256
// or RS256 with 2048 to 4096 bits, signed by the key in its own header,
// typ dbsc+jwt), that its jti is the registration challenge of a DBSC
// session not registered yet and its authorization that session's, and
// that the request's session holds that very elevation. It then records
// the key's thumbprint in the subject's record, sets the bound cookie and
// answers the session's configuration, audited as bound.
//
// A refusal audits device_refused with a reason and stores nothing: 401
// for a bad proof, 400 for an unknown, used or expired challenge, a wrong
// authorization, another session's elevation, a user with too many bound
// elevations or an oversized request. A store failure answers through
// [Config.OnError] (500); if it strikes after the challenge was used,
// the elevation stays unbound.
func (s *StepUp) DeviceRegisterHandler() http.Handler {
	return http.HandlerFunc(s.register)
}

func (s *StepUp) register(w http.ResponseWriter, r *http.Request) {
	e, refuse, ok := s.deviceRequest(w, r)
	if !ok {
		return
	}
	alg, jwk, jkt, claims, err := verifyRegistration(r.Header.Get("Secure-Session-Response"))
	if err != nil {
		refuse(ReasonDeviceProofInvalid)
		return
	}
	e.KeyThumbprint = jkt
	id, _, _ := strings.Cut(claims.JTI, ".")
	if !validToken(id) {
		refuse(ReasonDeviceChallengeUnknown)
		return
	}
	key := s.deviceSessionKey(id)
	cur, found, err := s.findRecord(r.Context(), key)
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	if !found {
		refuse(ReasonDeviceChallengeUnknown)
		return
	}
	ds, err := decodeDeviceSession(cur)
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	e.Scope, e.Subject, e.Elevation = ds.scope, ds.subject, ds.elevation
	p := s.policies[ds.scope]
	switch {
	case p == nil || p.DeviceBinding == DeviceBindingOff:
		refuse(ReasonDeviceChallengeUnknown)
		return
	case ds.authorization == "":
		refuse(ReasonDeviceChallengeUnknown) // registered already
		return
	case !hmac.Equal([]byte(claims.Authorization), []byte(ds.authorization)):
		refuse(ReasonDeviceAuthorization)
		return
	}
	if reason, err := s.sessionHolds(r, p, ds.elevation); err != nil {
		s.deviceError(w, r, *e, err)
		return
	} else if reason != "" {
		refuse(reason)
		return
	}
	now := s.now().Unix()
	// Refuse a user at the cap before the challenge is used up.
	if rv, _, _, err := s.revokedBy(r.Context(), ds.head()); err != nil {
		s.deviceError(w, r, *e, err)
		return
	} else if rv != nil && liveBindings(rv, now) >= maxBindings {
		refuse(ReasonTooManyBindings)
		return
	}
	var next string
	err = s.updateRecord(r.Context(), key, asWritten, func(cur string) (string, int64, error) {
		d, err := decodeDeviceSession(cur)
		if err != nil {
			return "", 0, err
		}
		if taken, _ := d.takeChallenge(claims.JTI, now); d.authorization != ds.authorization || !taken {
			return "", 0, errChallengeTaken
		}
		d.authorization, d.alg, d.jwk, d.jkt = "", alg, jwk, jkt
		d.challenges = nil
		next = d.addChallenge(id, now, s.challengeTTL())
		return encodeDeviceSession(d), d.until, nil
	})
	if errors.Is(err, errChallengeTaken) {
		refuse(ReasonDeviceChallengeUnknown)
		return
	}
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	b := deviceBinding{id: ds.elevation, jkt: jkt, secret: randomToken(), until: ds.until}
	full := false
	err = s.updateRecord(r.Context(), s.subjectKey(ds.subject), replicated, func(cur string) (string, int64, error) {
		rv, err := s.parseRevocations(cur, now)
		if err != nil {
			return "", 0, err
		}
		if _, ok := rv.binding(b.id); ok {
			return "", 0, errChallengeTaken
		}
		if full = len(rv.bindings) >= maxBindings; full {
			return "", 0, nil
		}
		rv.bindings = append(rv.bindings, b)
		rv.extend(b.until)
		return encodeRevocations(rv), rv.until, nil
	})
	switch {
	case errors.Is(err, errChallengeTaken):
		refuse(ReasonDeviceChallengeUnknown)
		return
	case err != nil:
		s.deviceError(w, r, *e, err)
		return
	case full:
		refuse(ReasonTooManyBindings)
		return
	}
	s.setBoundCookie(w, b, ds.scope, now)
	w.Header().Set("Secure-Session-Challenge", `"`+next+`";id="`+id+`"`)
	s.writeSessionConfig(w, id, p, ds.elevation)
	bound := true
	e.Type, e.DeviceBound, e.Deadline = EventBound, &bound, time.Unix(ds.until, 0).UTC()
	s.audit(r, *e)
}

// deviceRequest starts the answer of the registration or refresh
// endpoint: no-store, POST only, a declared body of at most maxDeviceBody.
// It returns the device_refused event the endpoint fills in, and refuse,
// which audits it with a reason and answers that reason's status. ok is
// false when it has answered already.
func (s *StepUp) deviceRequest(w http.ResponseWriter, r *http.Request) (e *Event, refuse func(Reason), ok bool) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return nil, nil, false
	}
	e = &Event{Type: EventDeviceRefused, Issuer: s.cfg.Issuer}
	refuse = func(reason Reason) {
		e.Reason = reason
		s.audit(r, *e)
		http.Error(w, reason.text(), reason.status())
	}
	if r.ContentLength > maxDeviceBody {
		refuse(ReasonBadRequest)
		return nil, nil, false
	}
	return e, refuse, true
}

var errChallengeTaken = errors.New("stepup: device challenge already answered")

// liveBindings counts the bindings of rv whose elevations are still alive
// at now: the guard's copy of the record is not pruned.
func liveBindings(rv *revocations, now int64) int {
	n := 0
	for _, b := range rv.bindings {
		if b.until > now {
			n++
		}
	}
	return n
}

// maxDeviceBody bounds the body of a registration or refresh, which DBSC
// sends empty.
const maxDeviceBody = 1024

// sessionHolds checks that the request's session holds the elevation id
// for p: a registration or a refresh acts for the session whose elevation
// it binds, and no other. A handler mounted without the SessionManager's
// LoadAndSave is an error ([ErrNoSession]), not a mismatch.
func (s *StepUp) sessionHolds(r *http.Request, p *policy, id string) (Reason, error) {
	v, err := s.get(r.Context(), p.key)
	if err != nil {
		return "", err
	}
	rec, _ := v.(string)
	h, err := readElevationHead(rec)
	if v == nil || err != nil || h.id != id || h.issuerTag != s.issuerTag {
		return ReasonDeviceSessionMismatch, nil
	}
	return "", nil
}

// deviceError answers a registration or refresh that failed on the store:
// 500, which chromium treats as "try later" and keeps the DBSC session.
func (s *StepUp) deviceError(w http.ResponseWriter, r *http.Request, e Event, err error) {
	e.Reason = ReasonSessionError
	if errors.Is(err, ErrCorruptRecord) {
		e.Reason = ReasonCorrupt
	}
	s.audit(r, e)
	if !errors.Is(err, ErrNoSession) {
		// A handler mounted without LoadAndSave is a wiring mistake, and
		// goes to OnError as the guard sends it: not as a store failure.
		err = fmt.Errorf("%w: %w", ErrSession, err)
	}
	s.cfg.OnError(w, r, err)
}

// boundCookieExpiry is when a bound cookie made at now ends: after
// BoundCookieTTL, and never after the elevation stops being honoured.
func (s *StepUp) boundCookieExpiry(b deviceBinding, now int64) int64 {
	return min(now+int64(s.cfg.BoundCookieTTL/time.Second), b.until-s.skew)
}

func (s *StepUp) setBoundCookie(w http.ResponseWriter, b deviceBinding, scope string, now int64) {
	exp := s.boundCookieExpiry(b, now)
	http.SetCookie(w, &http.Cookie{
		Name:  s.boundCookieName(b.id),
		Value: boundCookieValue(b, scope, exp),
		Path:  "/",
		// A second short of the expiry the server checks: exp counts from
		// the start of the current second, Max-Age from the browser's
		// now, and a browser that still sent a cookie the server calls
		// expired would not refresh it first.
		MaxAge:   int(max(exp-now-1, 1)),
		HttpOnly: true,
		Secure:   s.secureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// clearBoundCookie removes the bound cookie of elevation id.
func (s *StepUp) clearBoundCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: s.boundCookieName(id), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies, SameSite: http.SameSiteLaxMode})
}

// sessionConfig is the JSON of a DBSC session's configuration.
type sessionConfig struct {
	SessionIdentifier string            `json:"session_identifier"`
	RefreshURL        string            `json:"refresh_url"`
	Scope             sessionScope      `json:"scope"`
	Credentials       []sessionCredType `json:"credentials"`
}

type sessionScope struct {
	Origin             string      `json:"origin"`
	IncludeSite        bool        `json:"include_site"`
	ScopeSpecification []scopeRule `json:"scope_specification"`
}

type scopeRule struct {
	Type   string `json:"type"`
	Domain string `json:"domain"`
	Path   string `json:"path"`
}

type sessionCredType struct {
	Type       string `json:"type"`
	Name       string `json:"name"`
	Attributes string `json:"attributes"`
}

// writeSessionConfig answers 200 with the configuration of DBSC session
// id: refreshed through DeviceRefreshPath, its scope the scope's
// DevicePaths on this origin (everything else excluded), its credential
// the elevation's bound cookie.
func (s *StepUp) writeSessionConfig(w http.ResponseWriter, id string, p *policy, elevation string) {
	rules := make([]scopeRule, 0, 1+len(p.DevicePaths))
	rules = append(rules, scopeRule{Type: "exclude", Domain: s.originHost, Path: "/"})
	for _, path := range p.DevicePaths {
		rules = append(rules, scopeRule{Type: "include", Domain: s.originHost, Path: path})
	}
	attrs := "Path=/; HttpOnly; SameSite=Lax"
	if s.secureCookies {
		attrs += "; Secure"
	}
	body, _ := json.Marshal(sessionConfig{
		SessionIdentifier: id,
		RefreshURL:        s.cfg.DeviceRefreshPath,
		Scope:             sessionScope{Origin: s.origin, ScopeSpecification: rules},
		Credentials:       []sessionCredType{{Type: "cookie", Name: s.boundCookieName(elevation), Attributes: attrs}},
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// deviceGate applies the scope's device binding to an elevation the guard
// would otherwise honour: h, whose subject's record rv (nil when there is
// none) says whether it is bound.
//
// The first page after a grant races its own registration: chromium sends
// the registration and the request the callback redirected to at once, so
// that request may arrive before the binding is stored, or after it is
// stored but before the browser took in the registration's answer and its
// cookie. Within [Config.DeviceBindingGrace] of the grant, Preferred
// honours it; Required waits for the binding, then sends the browser back
// to the same URL (307), which it requests again with the cookie.
func (s *StepUp) deviceGate(w http.ResponseWriter, r *http.Request, p *policy, h elevationHead, rv *revocations, sub string, next http.Handler) {
	now := s.now().Unix()
	graceEnd := h.grantedAt + int64(s.cfg.DeviceBindingGrace/time.Second)
	inGrace := now < graceEnd
	required := p.DeviceBinding == DeviceBindingRequired
	if b, bound := rv.binding(h.id); bound {
		v, present := s.boundCookieOf(r, h.id)
		switch {
		case present && s.cookies.check(v, b, p.name, now):
			next.ServeHTTP(w, r)
		case inGrace && !present && !required:
			next.ServeHTTP(w, r)
		case inGrace && !present:
			s.retryWithCookie(w, r)
		default:
			// Challenged, not dropped: whoever holds only the session
			// cookie must not be able to end the real user's elevation.
			reason := ReasonBoundCookieMissing
			if present {
				reason = ReasonBoundCookieInvalid
			}
			s.audit(r, Event{Type: EventDeviceRefused, Scope: p.name, Subject: h.subject, Issuer: s.cfg.Issuer,
				Elevation: h.id, Reason: reason, KeyThumbprint: b.jkt})
			s.challenge(w, r, p, sub)
		}
		return
	}
	if !required {
		if !inGrace {
			s.auditUnboundOnce(r, p, h)
		}
		next.ServeHTTP(w, r)
		return
	}
	if inGrace && s.awaitBinding(r.Context(), h, time.Duration(graceEnd-now)*time.Second) {
		s.retryWithCookie(w, r)
		return
	}
	s.audit(r, Event{Type: EventDeviceRefused, Scope: p.name, Subject: h.subject, Issuer: s.cfg.Issuer,
		Elevation: h.id, Reason: ReasonDeviceNotBound})
	s.cfg.OnDenied(w, r, &Denial{Scope: p.name, Reason: ReasonDeviceNotBound})
}

// bindingSettle is how long the guard lets a registration's answer reach
// the browser before it sends the browser back for the same URL: the
// binding is stored just before that answer leaves.
const bindingSettle = 100 * time.Millisecond

// retryWithCookie answers 307 to the request's own URL after bindingSettle:
// the browser requests it again, method and body included, with the bound
// cookie its registration set.
func (s *StepUp) retryWithCookie(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(bindingSettle):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, r.URL.RequestURI(), http.StatusTemporaryRedirect)
}

// deviceHonours reports whether the guard would honour the elevation h
// under p's device binding now, without waiting or auditing, and whether
// it is bound (with a valid bound cookie).
func (s *StepUp) deviceHonours(r *http.Request, p *policy, h elevationHead, rv *revocations) (bound, ok bool) {
	if p.DeviceBinding == DeviceBindingOff {
		return false, true
	}
	now := s.now().Unix()
	preferred := p.DeviceBinding == DeviceBindingPreferred
	if b, isBound := rv.binding(h.id); isBound {
		v, present := s.boundCookieOf(r, h.id)
		if present && s.cookies.check(v, b, p.name, now) {
			return true, true
		}
		inGrace := now < h.grantedAt+int64(s.cfg.DeviceBindingGrace/time.Second)
		return false, preferred && inGrace && !present
	}
	return false, preferred
}

// awaitBinding polls the subject's record until the elevation h is bound,
// wait (what is left of the grace) or maxBindingWait has gone by, or the
// request ends.
func (s *StepUp) awaitBinding(ctx context.Context, h elevationHead, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, min(maxBindingWait, wait))
	defer cancel()
	t := time.NewTicker(bindingPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		rv, _, _, err := s.revokedBy(ctx, h)
		if err != nil {
			return false
		}
		if _, ok := rv.binding(h.id); ok {
			return true
		}
	}
}

// unboundSeen remembers the elevations this server audited as used
// unbound, so that each is audited once per server and not per request.
type unboundSeen struct {
	mu  sync.Mutex
	ids map[string]int64 // elevation id → deadline
}

const maxUnboundSeen = 10_000

func (s *StepUp) auditUnboundOnce(r *http.Request, p *policy, h elevationHead) {
	u := &s.unbound
	u.mu.Lock()
	if _, seen := u.ids[h.id]; seen {
		u.mu.Unlock()
		return
	}
	if u.ids == nil || len(u.ids) >= maxUnboundSeen {
		u.ids = make(map[string]int64)
	}
	u.ids[strings.Clone(h.id)] = h.deadline
	u.mu.Unlock()
	bound := false
	s.audit(r, Event{Type: EventUnbound, Scope: p.name, Subject: h.subject, Issuer: s.cfg.Issuer,
		Elevation: h.id, Deadline: time.Unix(h.deadline, 0).UTC(), DeviceBound: &bound})
}

// originHostOf is the host of an origin, without its port: the domain of
// DBSC scope rules.
func originHostOf(origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
