package stepup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// StepUp guards routes with step-up elevations. Build one with [New] at
// startup and share it; it is safe for concurrent use.
type StepUp struct {
	cfg        Config
	sm         *scs.SessionManager
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	issParam   bool // the IdP promises the RFC 9207 iss parameter
	policies   map[string]*policy
	pendingKey string
	skew       int64  // Config.ClockSkew in whole seconds
	issuerTag  string // issuerTag(Config.Issuer), as stored in elevations
}

// New validates cfg, discovers the IdP when cfg.Provider is nil, and
// precomputes everything requests need. Nothing is discovered or parsed per
// request. A bad configuration is reported as a [*ConfigError] naming the
// field.
func New(cfg Config) (*StepUp, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.validateAgainstSkew(); err != nil {
		return nil, err
	}
	cfg.ExtraScopes = append([]string(nil), cfg.ExtraScopes...)
	provider, issParam, err := cfg.discover()
	if err != nil {
		return nil, err
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = cfg.AuthStyle
	if endpoint.AuthURL == "" || endpoint.TokenURL == "" {
		return nil, &ConfigError{Field: "Issuer", Problem: "the provider has no authorization or token endpoint"}
	}
	s := &StepUp{
		cfg: cfg,
		sm:  cfg.SessionManager,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       append([]string{oidc.ScopeOpenID}, cfg.ExtraScopes...),
		},
		verifier: provider.VerifierContext(
			oidc.ClientContext(context.Background(), cfg.HTTPClient),
			&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now},
		),
		issParam:   issParam,
		policies:   make(map[string]*policy, len(cfg.Scopes)),
		pendingKey: cfg.SessionKeyPrefix + "pending",
		issuerTag:  issuerTag(cfg.Issuer),
		skew:       int64(cfg.ClockSkew / time.Second),
	}
	for name, sc := range cfg.Scopes {
		sc.ACR = append([]string(nil), sc.ACR...)
		s.policies[name] = newPolicy(name, sc, cfg.SessionKeyPrefix)
	}
	return s, nil
}

func (s *StepUp) now() time.Time { return s.cfg.Now() }

// RequireStepUp returns middleware that lets a request through only while
// the session holds a fresh elevation for scope, issued by the configured
// issuer to the logged-in user. Otherwise it removes a stale elevation,
// audits, and challenges: browsers navigating with GET or HEAD are
// redirected to the IdP, everything else gets an RFC 9470 401.
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
	sub, checkSub := "", s.cfg.Subject != nil
	if checkSub {
		var ok bool
		if sub, ok = s.cfg.Subject(r); !ok {
			s.cfg.Unauthenticated.ServeHTTP(w, r)
			return
		}
	}
	ctx := r.Context()
	v, err := s.get(ctx, p.key)
	if err != nil {
		s.cfg.OnError(w, r, err)
		return
	}
	vd, h := s.check(v, sub, checkSub, s.now().Unix())
	switch vd {
	case verdictElevated:
		revoked, err := s.revoked(ctx, h.id)
		if err != nil {
			s.cfg.OnError(w, r, fmt.Errorf("%w: %w", ErrSession, err))
			return
		}
		if !revoked {
			next.ServeHTTP(w, r)
			return
		}
		s.remove(r, p, EventDropped, ReasonRevoked)
	case verdictNone:
	case verdictCorrupt:
		s.sm.Remove(ctx, p.key)
		s.audit(r, Event{Type: EventDropped, Scope: p.name, Subject: sub, Reason: ReasonCorrupt})
		s.cfg.OnError(w, r, ErrCorruptElevation)
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

// Elevation is an elevation as stored in the session.
type Elevation struct {
	ID            string // random id, linking the elevation's audit events
	Scope         string
	Issuer        string
	Subject       string
	ACR           string   // the acr the IdP asserted (from acrs, the accepted value)
	AMR           []string // the authentication methods the IdP asserted
	AuthTime      time.Time
	Expiry        time.Time // the ID token's exp
	SessionExpiry time.Time // the IPSIE session_expiry claim; zero when absent
	GrantedAt     time.Time
	Deadline      time.Time // when the elevation ends; the earliest bound
	Bound         Bound     // which bound set Deadline
	// Ends is when the guard stops honouring the elevation: Deadline
	// brought forward by [Config.ClockSkew]. Set by [StepUp.Elevation]; show
	// this one in countdowns.
	Ends time.Time

	issuerTag string // what the stored record keeps of Issuer
	acrTag    string // what the stored record keeps of ACR
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
	if revoked, err := s.revoked(r.Context(), h.id); err != nil || revoked {
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
// Drop also records the elevation's revocation in the session store until
// its deadline, so that a request already in flight cannot write it back
// (scs commits whole sessions, and the last commit wins). If that record
// cannot be written, the elevation is still removed from the session and
// the event's reason is [ReasonDropUnrevoked].
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
		if h, err := readElevationHead(rec); err == nil {
			if s.revoke(r.Context(), h.id, time.Unix(h.deadline, 0)) != nil {
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

// challenge answers a request that is not elevated.
func (s *StepUp) challenge(w http.ResponseWriter, r *http.Request, p *policy, sub string) {
	returnTo, ok := SafeReturnTo(r.URL.RequestURI())
	if !ok {
		returnTo = s.cfg.DefaultReturnTo
	}
	if IsNavigation(r) {
		s.redirectToIdP(w, r, p, sub, returnTo)
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
