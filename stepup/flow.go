package stepup

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Limits on callback parameters. Honest values are far below them; anything
// longer is refused before it reaches the session or the IdP.
const (
	maxCallbackQuery = 8 << 10
	maxStateLen      = 128
	maxCodeLen       = 4 << 10
	maxErrorLen      = 64
	maxReturnToLen   = 2 << 10
)

// SafeReturnTo reports whether target is safe to redirect a browser to
// after a login or a step-up, and returns it unchanged when it is. It
// accepts only a same-origin relative path of at most 2 KiB: it must start
// with a single "/", and hold no backslash, no character [Printable]
// refuses, and no scheme or host. Browsers read "//host" and "/\host" as
// other origins and strip tabs and newlines, so all of these are refused,
// not repaired: fall back to a fixed path. stepup applies it to return_to
// and to [Config.DefaultReturnTo]; an application's own login can apply it
// to its return_to, with the same limits.
func SafeReturnTo(target string) (string, bool) {
	s := target
	if s == "" || len(s) > maxReturnToLen || s[0] != '/' {
		return "", false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "", false
	}
	if strings.IndexByte(s, '\\') >= 0 || !Printable(s) {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return s, true
}

// StartHandler starts a challenge for ?scope=...&return_to=... and redirects
// the browser to the IdP. It is where the step_up_url of a 401 challenge
// points, and can be linked to ("enter admin mode"). An unknown scope gets a
// 400; a refused return_to falls back to [Config.DefaultReturnTo]. Mount it
// at [Config.StartPath], behind the session middleware.
//
// A navigation that another site started (Sec-Fetch-Site cross-site or
// same-site) starts no challenge: it gets a page that asks the user to
// continue, whose link is a same-origin navigation back here with the same
// checked parameters. Otherwise any site could push the user's pending
// challenges out of the session and fill the audit log. A request without
// Sec-Fetch-Site, from a browser that does not send it, starts the
// challenge at once.
func (s *StepUp) StartHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		p, ok := s.policies[q.Get("scope")]
		if !ok || len(q["scope"]) != 1 {
			http.Error(w, "Unknown step-up scope.", http.StatusBadRequest)
			return
		}
		// The session comes first: Config.Subject usually reads it.
		if _, err := s.get(r.Context(), s.pendingKey); err != nil {
			s.cfg.OnError(w, r, err)
			return
		}
		sub := ""
		if s.cfg.Subject != nil {
			if sub, ok = s.cfg.Subject(r); !ok {
				s.cfg.Unauthenticated.ServeHTTP(w, r)
				return
			}
		}
		returnTo, ok := SafeReturnTo(q.Get("return_to"))
		if !ok || len(q["return_to"]) > 1 {
			returnTo = s.cfg.DefaultReturnTo
		}
		mode, ok := startMode(q)
		if !ok {
			http.Error(w, "Unknown display mode or bad ref.", http.StatusBadRequest)
			return
		}
		if action := q["action"]; len(action) > 0 {
			s.startAction(w, r, p, sub, returnTo, mode, action)
			return
		}
		if fromAnotherSite(r) {
			s.writeConfirmPage(w, p.name, returnTo, mode)
			return
		}
		s.redirectToIdP(w, r, p, sub, returnTo, mode)
	})
}

// startAction starts the pending action challenge whose state a 401 named
// in its step_up_url: the action was derived from the guarded request and
// kept in the session, so that no link can ask the IdP to approve an
// action of its choosing.
func (s *StepUp) startAction(w http.ResponseWriter, r *http.Request, p *policy, sub, returnTo string, mode challengeMode, action []string) {
	var c pending
	found := false
	for _, old := range s.livePending(r, s.now().Unix()) {
		if len(action) == 1 && old.state == action[0] && old.action != "" && old.scope == p.name {
			c, found = old, true
		}
	}
	if !found {
		http.Error(w, "Unknown or expired step-up for this action. Try the action again.", http.StatusBadRequest)
		return
	}
	if fromAnotherSite(r) {
		mode.action = c.state
		s.writeConfirmPage(w, p.name, returnTo, mode)
		return
	}
	c.returnTo, c.popup, c.ref = returnTo, mode.popup, mode.ref
	s.startChallenge(w, r, p, sub, c)
}

// startMode reads StartHandler's display and ref. display=popup (OIDC Core
// §3.1.2.1): the callback answers with the page that reports to the
// opener, which names itself by ref. ok is false for anything else.
func startMode(q url.Values) (mode challengeMode, ok bool) {
	switch display, ref := q["display"], q.Get("ref"); {
	case len(display) == 0 && len(q["ref"]) == 0:
		return challengeMode{}, true
	case len(display) == 1 && display[0] == "popup" && len(q["ref"]) <= 1 && (ref == "" || validRef(ref)):
		return challengeMode{popup: true, ref: ref}, true
	}
	return challengeMode{}, false
}

// redirectToIdP records a new pending challenge in the session and sends the
// browser to the IdP's authorization endpoint (OIDC Core §3.1.2.1) with PKCE
// S256 (RFC 7636), a fresh state and nonce, and the scope's acr_values and
// max_age (RFC 9470 §4).
// challengeMode is how a challenge's callback answers: a redirect to
// return_to, or the popup page.
type challengeMode struct {
	popup bool
	ref   string
	// action is the state of a pending action challenge a 401 named
	// (RequireStepUpFor), which the start handler starts.
	action string
}

func (s *StepUp) redirectToIdP(w http.ResponseWriter, r *http.Request, p *policy, sub, returnTo string, mode challengeMode) {
	s.startChallenge(w, r, p, sub, s.newPending(p, returnTo, mode))
}

// newPending is a new challenge for p: a fresh state, nonce and PKCE
// verifier.
func (s *StepUp) newPending(p *policy, returnTo string, mode challengeMode) pending {
	return pending{
		state:    rand.Text(), // 26 base32 characters: 130 bits
		nonce:    rand.Text(),
		verifier: oauth2.GenerateVerifier(),
		scope:    p.name,
		started:  s.now().Unix(),
		returnTo: returnTo,
		popup:    mode.popup,
		ref:      mode.ref,
	}
}

// savePending records the challenge c in the session, replacing one with
// the same state, and saves the session before anything is answered: if
// the store fails, the browser must not be sent to the IdP with a state no
// session holds, and the authorization URL (state, nonce) must not end up
// in an error page. On failure it audits, answers through OnError and
// returns false.
func (s *StepUp) savePending(w http.ResponseWriter, r *http.Request, p *policy, sub string, c pending, a *Action) bool {
	ctx := r.Context()
	list := slices.DeleteFunc(s.livePending(r, s.now().Unix()), func(old pending) bool { return old.state == c.state })
	if len(list) >= maxPending {
		list = list[len(list)-maxPending+1:]
	}
	list = append(list, c)
	s.sm.Put(ctx, s.pendingKey, encodePending(list))
	if _, _, err := s.sm.Commit(ctx); err != nil {
		e := Event{Type: EventChallenge, Scope: p.name, Subject: sub, Issuer: s.cfg.Issuer, Reason: ReasonSessionError}
		if a != nil {
			e.setAction(*a)
		}
		s.audit(r, e)
		s.cfg.OnError(w, r, fmt.Errorf("%w: %w", ErrSession, err))
		return false
	}
	return true
}

// startChallenge saves the challenge c and sends the browser to the IdP's
// authorization endpoint. A challenge for an action sends max_age=0, and
// the action as RFC 9396 authorization_details when the scope asks for it.
func (s *StepUp) startChallenge(w http.ResponseWriter, r *http.Request, p *policy, sub string, c pending) {
	var a *Action
	if c.action != "" {
		act, ok := decodeAction(c.action)
		if !ok {
			s.cfg.OnError(w, r, ErrCorruptRecord)
			return
		}
		a = &act
	}
	if !s.savePending(w, r, p, sub, c, a) {
		return
	}
	opts := append(slices.Clip(p.authOptions),
		oauth2.S256ChallengeOption(c.verifier),
		oidc.Nonce(c.nonce),
	)
	if s.cfg.LoginHint && sub != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", sub))
	}
	if c.popup {
		opts = append(opts, oauth2.SetAuthURLParam("display", "popup"))
	}
	e := Event{Type: EventChallenge, Scope: p.name, Subject: sub, Issuer: s.cfg.Issuer}
	if a != nil {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", "0"))
		if p.AuthorizationDetails {
			opts = append(opts, oauth2.SetAuthURLParam("authorization_details", a.authorizationDetails()))
		}
		e.setAction(*a)
	}
	s.audit(r, e)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.oauth.AuthCodeURL(c.state, opts...), http.StatusSeeOther)
}

func stringValue(v any) string {
	s, _ := v.(string)
	return s
}

// pendingList returns the session's pending challenges. A list that does
// not decode is removed and audited as a dropped event with reason corrupt
// and no scope: losing pending challenges grants nothing, and a callback
// that would have answered one is denied as unknown_state.
func (s *StepUp) pendingList(r *http.Request) []pending {
	ctx := r.Context()
	list, err := decodePending(stringValue(s.sm.Get(ctx, s.pendingKey)))
	if err != nil {
		s.sm.Remove(ctx, s.pendingKey)
		s.audit(r, Event{Type: EventDropped, Reason: ReasonCorrupt, Issuer: s.cfg.Issuer})
		return nil
	}
	return list
}

// livePending returns the session's pending challenges that are younger
// than challengeTTL at now (Unix seconds).
func (s *StepUp) livePending(r *http.Request, now int64) []pending {
	return slices.DeleteFunc(s.pendingList(r), func(old pending) bool {
		return now-old.started >= int64(challengeTTL/time.Second)
	})
}

// takePending removes the challenge with this state from the session and
// returns it. Every challenge is single-use: it is consumed whatever the
// callback's outcome. Expired challenges are swept at the same time. The
// state is compared in constant time against every pending challenge.
func (s *StepUp) takePending(r *http.Request, state string) (pending, bool) {
	ctx := r.Context()
	list := s.pendingList(r)
	var found pending
	match := 0
	for _, p := range list {
		if subtle.ConstantTimeCompare([]byte(p.state), []byte(state)) == 1 && state != "" {
			found, match = p, 1
		}
	}
	now := s.now().Unix()
	kept := slices.DeleteFunc(slices.Clone(list), func(p pending) bool {
		return p.state == found.state || now-p.started >= int64(challengeTTL/time.Second)
	})
	if len(kept) != len(list) {
		if len(kept) == 0 {
			s.sm.Remove(ctx, s.pendingKey)
		} else {
			s.sm.Put(ctx, s.pendingKey, encodePending(kept))
		}
	}
	return found, match == 1
}

// callbackParams are the authorization response parameters
// (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2).
type callbackParams struct {
	state, code, iss, err string
	hasIss                bool
}

// parseCallback reads the authorization response. Each parameter may appear
// at most once, and within its size limit; the error code must use the
// characters RFC 6749 §4.1.2.1 allows. error_description and error_uri are
// ignored: they are the IdP's (or an attacker's) free text.
func parseCallback(rawQuery string) (callbackParams, bool) {
	if len(rawQuery) > maxCallbackQuery {
		return callbackParams{}, false
	}
	// On a syntax error q still holds what parsed, so that a well-formed
	// state can be found and its challenge consumed.
	q, err := url.ParseQuery(rawQuery)
	ok := err == nil
	var p callbackParams
	for _, f := range []struct {
		name string
		dst  *string
		max  int
	}{
		{"state", &p.state, maxStateLen},
		{"code", &p.code, maxCodeLen},
		{"iss", &p.iss, maxReturnToLen},
		{"error", &p.err, maxErrorLen},
	} {
		switch v := q[f.name]; {
		case len(v) > 1 || (len(v) == 1 && (len(v[0]) > f.max || !Printable(v[0]))):
			ok = false
		case len(v) == 1:
			*f.dst = v[0]
		}
	}
	_, p.hasIss = q["iss"]
	if !oauthErrorChars(p.err) {
		return p, false
	}
	return p, ok
}

// CallbackHandler completes a challenge. Mount it at the path of
// [Config.RedirectURL], behind the session middleware. It checks, in order,
// that the parameters are well formed, the state, the RFC 9207 iss, the
// IdP's error, the challenge's age, that a user is still logged in, the code
// exchange with the PKCE verifier, the ID token (go-oidc: signature, iss,
// aud, exp), and then what go-oidc leaves out: nonce, azp, iat, acr,
// auth_time, sub and session_expiry (OIDC Core §3.1.3.7). Any failure consumes the challenge,
// audits a denied event, grants nothing and answers through
// [Config.OnDenied]. Success renews the session token, stores the elevation,
// audits a granted event and answers 303 to the challenge's return_to.
func (s *StepUp) CallbackHandler() http.Handler {
	return http.HandlerFunc(s.callback)
}

func (s *StepUp) callback(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	// The callback URL carries the code: keep it out of Referer headers of
	// anything the response loads or links to.
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet {
		h.Set("Allow", "GET")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if _, err := s.get(r.Context(), s.pendingKey); err != nil {
		s.cfg.OnError(w, r, err)
		return
	}
	o := s.answerChallenge(r)
	s.auditCallback(r, o)
	s.renderCallback(w, r, o)
}

// callbackOutcome is where a callback ends: a grant (reason empty, err
// nil), a denial (reason), or a session that could not be saved (err, with
// reason session_error). The callback audits it once and renders it once.
type callbackOutcome struct {
	c     pending // the challenge the callback answers; zero when none matched
	found bool
	sub   string    // the logged-in user, when Config.Subject is set
	el    Elevation // the elevation granted
	// reason is why the callback was denied; empty for a grant.
	reason Reason
	// detail is what the failing step learned for the audit event: the
	// IdP's error code, the acr, amr and deadline the token asserted.
	detail Event
	// err is the session store's error, for a reason of session_error.
	err error
	// reg is the DBSC registration the grant asks the browser for; empty
	// when the scope does not bind elevations to the device.
	reg registration
}

// answerChallenge takes a callback through its steps: parse the response
// and find its challenge, check the response, redeem the code and check
// the ID token, then grant. Every step that fails ends it with a reason.
func (s *StepUp) answerChallenge(r *http.Request) callbackOutcome {
	var o callbackOutcome
	hasUser := true
	if s.cfg.Subject != nil {
		o.sub, hasUser = s.cfg.Subject(r)
	}
	// Any callback consumes the challenge its state names, whatever its
	// outcome: a challenge is single-use.
	params, paramsOK := parseCallback(r.URL.RawQuery)
	o.c, o.found = s.takePending(r, params.state)
	o.reason = checkResponse(params, paramsOK, o.c, o.found, hasUser, s.responseContext())
	if o.reason == ReasonIdPError {
		o.detail.IdPError = params.err
	}
	if o.reason != "" {
		return o
	}
	o.el, o.reason, o.detail = s.redeem(r.Context(), params.code, o.c, o.sub, s.cfg.Subject != nil)
	if o.reason != "" {
		return o
	}
	o.reg, o.reason, o.err = s.grant(r.Context(), &o.el, o.c)
	return o
}

// responseContext is what checkResponse compares a response with.
type responseContext struct {
	issuer   string
	issParam bool  // the IdP promises the RFC 9207 iss parameter
	now      int64 // Unix seconds
}

func (s *StepUp) responseContext() responseContext {
	return responseContext{issuer: s.cfg.Issuer, issParam: s.issParam, now: s.now().Unix()}
}

// checkResponse checks an authorization response before its code is
// redeemed, in this order, and returns the first reason to deny it. It is
// pure. An error response is believed only once the state and iss show it
// answers this session's challenge from this issuer: anyone can link a
// browser to the callback with ?error=..., and RFC 9207 §2.4 says a
// client must not assume an error comes from the intended server.
func checkResponse(p callbackParams, paramsOK bool, c pending, found, hasUser bool, rc responseContext) Reason {
	switch {
	case !paramsOK:
		return ReasonBadRequest
	case !found:
		return ReasonUnknownState
	case p.hasIss && p.iss != rc.issuer:
		return ReasonIssuerMismatch
	case !p.hasIss && rc.issParam:
		return ReasonMissingIssuer
	case p.err != "":
		return ReasonIdPError
	case rc.now-c.started >= int64(challengeTTL/time.Second):
		return ReasonChallengeExpired
	case !hasUser:
		return ReasonUnauthenticated
	case p.code == "":
		return ReasonMissingCode
	}
	return ""
}

// grant checks the elevation against the revocations that may have
// arrived while the user was at the IdP, starts its device registration
// when the scope binds elevations, then stores it. A revocation that
// covers it is a denial with the revocation's cause. A session that
// cannot be renewed or saved is session_error with the store's error, and
// nothing is elevated; so is a registration that cannot be stored for a
// scope that requires binding (one that prefers it grants unbound).
func (s *StepUp) grant(ctx context.Context, el *Elevation, c pending) (registration, Reason, error) {
	var reg registration
	// The subject's record also hands out the elevation's generation.
	reason, err := s.registerGrant(ctx, el, el.sid)
	if err != nil {
		return reg, ReasonSessionError, err
	}
	if reason != "" {
		return reg, reason, nil
	}
	if c.action != "" {
		reason, err := s.grantApproval(ctx, el, c)
		return reg, reason, err
	}
	if p := s.policies[c.scope]; p.DeviceBinding != DeviceBindingOff {
		if reg, err = s.startRegistration(ctx, el); err != nil {
			if p.DeviceBinding == DeviceBindingRequired {
				return registration{}, ReasonSessionError, err
			}
			// Preferred grants unbound; auditCallback says why.
			reg = registration{failed: true}
		}
	}
	// Session fixation: a change of privilege gets a new session token
	// (OWASP ASVS V3.2.1). Then save the session before the first byte of
	// the response, so a store failure is seen here and not after a 303.
	if err := s.sm.RenewToken(ctx); err != nil {
		return registration{}, ReasonSessionError, err
	}
	key := s.policies[c.scope].key
	s.sm.Put(ctx, key, encodeElevation(el))
	if _, _, err := s.sm.Commit(ctx); err != nil {
		s.sm.Remove(ctx, key)
		return registration{}, ReasonSessionError, err
	}
	return reg, "", nil
}

// auditCallback writes the callback's one audit event: granted, or denied
// with its reason.
func (s *StepUp) auditCallback(r *http.Request, o callbackOutcome) {
	e := o.detail
	if o.found {
		e.ChallengeStarted = time.Unix(o.c.started, 0).UTC()
	}
	if a, ok := decodeAction(o.c.action); ok {
		e.setAction(a)
	}
	if o.reason == "" {
		el := &o.el
		e.Type, e.Scope, e.Subject, e.Issuer = EventGranted, el.Scope, el.Subject, el.Issuer
		e.ACR, e.AMR, e.Deadline, e.Bound, e.Elevation = el.ACR, el.AMR, el.Deadline, el.Bound, el.ID
		s.audit(r, e)
		if o.reg.failed {
			s.audit(r, Event{Type: EventDeviceRefused, Scope: el.Scope, Subject: el.Subject, Issuer: el.Issuer,
				Elevation: el.ID, Reason: ReasonSessionError})
		}
		return
	}
	e.Type, e.Reason, e.Scope, e.Issuer = EventDenied, o.reason, o.c.scope, s.cfg.Issuer
	if e.Subject == "" {
		e.Subject = o.sub
	}
	s.audit(r, e)
}

// renderCallback answers the callback: a popup challenge gets the page
// that reports to its opener, whatever the outcome; otherwise a grant is a
// 303 to return_to, a denial goes to Config.OnDenied, and a session that
// could not be saved to Config.OnError (it fails closed: nothing is
// elevated).
func (s *StepUp) renderCallback(w http.ResponseWriter, r *http.Request, o callbackOutcome) {
	if o.reason == "" && o.reg.challenge != "" {
		w.Header().Set("Secure-Session-Registration", s.registrationHeader(o.reg))
	}
	switch {
	case o.c.popup && o.reason == "":
		s.popupGranted(w, o.c)
	case o.c.popup:
		s.popupDenied(w, o.c, &Denial{Scope: o.c.scope, Reason: o.reason, IdPError: o.detail.IdPError})
	case o.err != nil:
		s.cfg.OnError(w, r, fmt.Errorf("%w: %w", ErrSession, o.err))
	case o.reason != "":
		s.cfg.OnDenied(w, r, &Denial{Scope: o.c.scope, Reason: o.reason, IdPError: o.detail.IdPError})
	default:
		http.Redirect(w, r, o.c.returnTo, http.StatusSeeOther)
	}
}

// redeem exchanges the code and checks the ID token. It returns the
// elevation to grant, or the reason to deny and what to add to the audit
// event.
func (s *StepUp) redeem(ctx context.Context, code string, c pending, sub string, checkSub bool) (Elevation, Reason, Event) {
	p := s.policies[c.scope]
	if p == nil {
		// The scope was removed from the configuration since the
		// challenge began.
		return Elevation{}, ReasonUnknownState, Event{}
	}
	ctx = oidc.ClientContext(ctx, s.cfg.HTTPClient)
	tok, err := s.oauth.Exchange(ctx, code, oauth2.VerifierOption(c.verifier))
	if err != nil {
		reason, oauthErr := tokenError(err)
		return Elevation{}, reason, Event{IdPError: oauthErr}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Elevation{}, ReasonMissingIDToken, Event{}
	}
	idt, err := s.verifier.Verify(ctx, raw)
	if err != nil {
		return Elevation{}, ReasonInvalidIDToken, Event{}
	}
	t, err := newIDToken(idt)
	if err != nil {
		return Elevation{}, ReasonInvalidClaims, Event{}
	}
	el, reason, e := checkClaims(t, c, p, s.ruleContext(sub, checkSub))
	if reason != "" || c.action == "" || !p.AuthorizationDetails {
		return el, reason, e
	}
	// RFC 9396 §7: the token response says what the user approved.
	a, ok := decodeAction(c.action)
	if !ok {
		return Elevation{}, ReasonActionInvalid, e
	}
	switch present, match := grantedDetailsMatch(a, tok.Extra("authorization_details")); {
	case !present:
		return Elevation{}, ReasonDetailsMissing, e
	case !match:
		return Elevation{}, ReasonDetailsMismatch, e
	}
	return el, "", e
}

// tokenError tells a refusal from a failure of the token endpoint. An
// OAuth error response (RFC 6749 §5.2: a 4xx with an error code, such as
// invalid_grant for a forged, replayed or PKCE-mismatched code, or
// invalid_client) is the IdP refusing: ReasonTokenRefused, with the error
// code when it is well formed. Anything else (no connection, a timeout, a
// 5xx, a 4xx that is not OAuth) is ReasonTokenExchange: the IdP could not
// answer.
func tokenError(err error) (Reason, string) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode == "" || re.Response == nil ||
		re.Response.StatusCode < 400 || re.Response.StatusCode > 499 {
		return ReasonTokenExchange, ""
	}
	code := re.ErrorCode
	if len(code) > maxErrorLen || !oauthErrorChars(code) {
		code = ""
	}
	return ReasonTokenRefused, code
}

// oauthErrorChars reports whether s uses only the characters RFC 6749
// §4.1.2.1 and §5.2 allow in an error code: %x20-21 / %x23-5B / %x5D-7E.
func oauthErrorChars(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ruleContext is what the claim rules need from the configuration and the
// request, read now.
func (s *StepUp) ruleContext(sub string, checkSub bool) ruleContext {
	return ruleContext{
		clientID: s.cfg.ClientID,
		issuer:   s.cfg.Issuer,
		skew:     s.skew,
		now:      s.now().Unix(),
		subject:  sub,
		checkSub: checkSub,
	}
}

// defaultDenied is the default [Config.OnDenied]: the denial's text, with
// its status.
func defaultDenied(w http.ResponseWriter, _ *http.Request, d *Denial) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, fmt.Sprintf("Step-up failed: %s (%s)", d.Text(), d.Reason), d.Status())
}
