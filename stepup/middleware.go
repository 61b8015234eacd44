package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// RequireStepUp returns middleware that lets a request through only while
// the session holds a fresh elevation for scope, issued by the configured
// issuer to the logged-in user. Otherwise it removes a stale elevation,
// audits, and challenges: browsers navigating with GET or HEAD are
// redirected to the IdP, everything else gets an RFC 9470 401. A
// navigation from another site (Sec-Fetch-Site cross-site or same-site)
// while a challenge of the session is pending gets the confirmation page
// of [StepUp.StartHandler] instead, so that no other site can push that
// challenge out.
//
// It fails closed: a missing session, an undecodable record or any doubt
// means "not elevated". It panics if scope is not in [Config.Scopes], as a
// router panics on a bad route, so the mistake shows at startup.
func (s *StepUp) RequireStepUp(scope string) func(http.Handler) http.Handler {
	p, ok := s.policies[scope]
	if !ok {
		panic(fmt.Sprintf("stepup: RequireStepUp(%q): scope not in Config.Scopes", scope))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.guard(w, r, p, next)
		})
	}
}

// verdict is the outcome of checking a stored elevation.
type verdict int

const (
	verdictNone        verdict = iota // no elevation stored
	verdictElevated                   // fresh, right issuer, right user
	verdictExpired                    // past its deadline (minus skew)
	verdictOtherUser                  // issued to someone else than the logged-in user
	verdictOtherIssuer                // issued by another provider
	verdictCorrupt                    // does not decode
)

// check decides whether a stored elevation is honoured: the pure core of the
// guard. v is the raw session value; sub is the logged-in subject, checked
// only when checkSub is set; now is in Unix seconds.
func (s *StepUp) check(v any, sub string, checkSub bool, now int64) (verdict, elevationHead) {
	if v == nil {
		return verdictNone, elevationHead{}
	}
	rec, ok := v.(string)
	if !ok {
		return verdictCorrupt, elevationHead{}
	}
	h, err := readElevationHead(rec)
	switch {
	case err != nil:
		return verdictCorrupt, h
	case h.issuerTag != s.issuerTag:
		return verdictOtherIssuer, h
	case checkSub && h.subject != sub:
		return verdictOtherUser, h
	case !fresh(now, s.skew, h.deadline):
		return verdictExpired, h
	}
	return verdictElevated, h
}

// guard is RequireStepUp's handler.
func (s *StepUp) guard(w http.ResponseWriter, r *http.Request, p *policy, next http.Handler) {
	ctx := r.Context()
	v, sub, checkSub, ok := s.sessionUser(w, r, p.key)
	if !ok {
		return
	}
	vd, h := s.check(v, sub, checkSub, s.now().Unix())
	switch vd {
	case verdictElevated:
		rv, cause, revoked, err := s.revokedBy(ctx, h)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				err = fmt.Errorf("%w: %w", ErrSession, err)
			}
			s.cfg.OnError(w, r, err)
			return
		}
		if !revoked && p.DeviceBinding == DeviceBindingOff {
			next.ServeHTTP(w, r)
			return
		}
		if !revoked {
			s.deviceGate(w, r, p, h, rv, sub, next)
			return
		}
		s.remove(r, p, EventDropped, cause)
	case verdictNone:
	case verdictCorrupt:
		s.sm.Remove(ctx, p.key)
		s.audit(r, Event{Type: EventDropped, Scope: p.name, Subject: sub, Reason: ReasonCorrupt})
		s.cfg.OnError(w, r, ErrCorruptRecord)
		return
	case verdictExpired:
		s.remove(r, p, EventExpired, "")
	case verdictOtherUser:
		s.remove(r, p, EventDropped, ReasonSubjectChanged)
	case verdictOtherIssuer:
		s.remove(r, p, EventDropped, ReasonOtherIssuer)
	}
	s.challenge(w, r, p, sub)
}

// sessionUser reads the session value under key, then the logged-in user
// when Config.Subject is set (checkSub). The session comes first:
// Config.Subject usually reads it, and scs panics on a request that
// LoadAndSave did not load. When either fails it has answered (OnError,
// Unauthenticated) and ok is false.
func (s *StepUp) sessionUser(w http.ResponseWriter, r *http.Request, key string) (v any, sub string, checkSub, ok bool) {
	v, err := s.get(r.Context(), key)
	if err != nil {
		s.cfg.OnError(w, r, err)
		return nil, "", false, false
	}
	if checkSub = s.cfg.Subject != nil; checkSub {
		if sub, ok = s.cfg.Subject(r); !ok {
			s.cfg.Unauthenticated.ServeHTTP(w, r)
			return nil, "", true, false
		}
	}
	return v, sub, checkSub, true
}

// get reads a session value, turning scs's panic on a request without
// session data into ErrNoSession.
func (s *StepUp) get(ctx context.Context, key string) (v any, err error) {
	defer func() {
		if recover() != nil {
			v, err = nil, ErrNoSession
		}
	}()
	return s.sm.Get(ctx, key), nil
}

// remove deletes the scope's elevation from the session and audits it.
func (s *StepUp) remove(r *http.Request, p *policy, typ EventType, reason Reason) {
	ctx := r.Context()
	e := Event{Type: typ, Scope: p.name, Reason: reason}
	if rec, ok := s.sm.Get(ctx, p.key).(string); ok {
		if el, err := s.decodeElevation(rec, p.name); err == nil {
			e.Subject, e.Issuer, e.ACR, e.AMR = el.Subject, el.Issuer, el.ACR, el.AMR
			e.Deadline, e.Bound, e.Elevation = el.Deadline, el.Bound, el.ID
		}
	}
	s.sm.Remove(ctx, p.key)
	s.audit(r, e)
}

// challenge answers a request that is not elevated.
func (s *StepUp) challenge(w http.ResponseWriter, r *http.Request, p *policy, sub string) {
	returnTo, ok := SafeReturnTo(r.URL.RequestURI())
	if !ok {
		returnTo = s.cfg.DefaultReturnTo
	}
	if IsNavigation(r) {
		// A navigation from another site starts a challenge only into an
		// empty pending list, so that a link from an e-mail still goes
		// straight to the IdP but no other site can push out a challenge
		// the user started; the user confirms the rest.
		if fromAnotherSite(r) && len(s.livePending(r, s.now().Unix())) > 0 {
			s.writeConfirmPage(w, p.name, returnTo, challengeMode{})
			return
		}
		s.redirectToIdP(w, r, p, sub, returnTo, challengeMode{})
		return
	}
	// RFC 9470 §3: tell the client what authentication it lacks, and where
	// a browser can go to get it. A redirect would make the browser repeat
	// the request as a GET and silently drop a POST body.
	s.audit(r, Event{Type: EventChallenge, Scope: p.name, Subject: sub, Issuer: s.cfg.Issuer})
	q := url.Values{"scope": {p.name}, "return_to": {returnTo}}
	body, _ := json.Marshal(challengeBody{
		Error:       "insufficient_user_authentication",
		Description: "A stronger or more recent authentication is required",
		ACRValues:   p.acrValues,
		MaxAge:      p.maxAgeSecs,
		StepUpURL:   s.cfg.StartPath + "?" + q.Encode(),
	})
	h := w.Header()
	h.Set("WWW-Authenticate", p.wwwAuth)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(body)
}

// challengeBody is the JSON body of a 401 challenge.
type challengeBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	ACRValues   string `json:"acr_values"`
	MaxAge      int64  `json:"max_age"`
	StepUpURL   string `json:"step_up_url"`
}

// IsNavigation reports whether r is a browser navigation that can follow a
// redirect to the IdP: a GET or HEAD that accepts text/html or
// application/xhtml+xml (a wildcard does not count), not sent by script
// (no X-Requested-With, and Sec-Fetch-Mode absent or "navigate"). The guard
// redirects such requests and answers every other one with an RFC 9470 401.
// An application's own login can use it to choose between a redirect and a
// 401 in the same way, so both challenges treat a request alike.
func IsNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	return acceptsHTML(r.Header.Values("Accept"))
}

// acceptsHTML reports whether an Accept header lists text/html or
// application/xhtml+xml with a non-zero quality. Wildcards do not count:
// an API client sending */* gets the 401, which it can act on.
func acceptsHTML(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, _ := strings.Cut(part, ";")
			mt = strings.TrimSpace(mt)
			if !strings.EqualFold(mt, "text/html") && !strings.EqualFold(mt, "application/xhtml+xml") {
				continue
			}
			if !zeroQuality(params) {
				return true
			}
		}
	}
	return false
}

func zeroQuality(params string) bool {
	for param := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(param, "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimRight(strings.TrimSpace(v), "0")
			return v == "" || v == "." || v == "0."
		}
	}
	return false
}

func defaultUnauthenticated(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "Log in first.", http.StatusUnauthorized)
}

func defaultError(w http.ResponseWriter, _ *http.Request, _ error) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "Internal Server Error", http.StatusInternalServerError)
}
