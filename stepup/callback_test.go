package stepup

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The callback's rules that need an OpenID Provider (state, iss, the code
// exchange, signatures and keys) are tested at the repository's root, which
// runs stepuptest's provider; these need none.

func TestHandlersRefuseOtherMethodsAndRepeatedParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		name    string
		handler http.Handler
		req     *http.Request
		want    int
	}{
		{"CallbackByPOST", h.su.CallbackHandler(), navigation("POST", "/stepup/callback?state=x&code=y", "alice"), http.StatusMethodNotAllowed},
		{"StartByPOST", h.su.StartHandler(), navigation("POST", "/stepup/start?scope=admin", "alice"), http.StatusMethodNotAllowed},
		{"StartWithScopeRepeated", h.su.StartHandler(), navigation("GET", "/stepup/start?scope=admin&scope=admin", "alice"), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := h.serve(tc.req, nil, tc.handler); w.Code != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.req.Method, tc.req.URL, w.Code, tc.want)
			}
		})
	}
	var got []pending
	h.serve(navigation("GET", "/stepup/start?scope=admin&return_to=%2Fa&return_to=%2F%2Fevil.test", "alice"), nil,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.StartHandler().ServeHTTP(w, r)
			got, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
		}))
	if len(got) != 1 || got[0].returnTo != "/" {
		t.Errorf("a repeated return_to: %+v, want the default", got)
	}
}

// TestCorruptPendingListIsDroppedNotTrusted: a pending-challenge list that
// does not decode is removed, and its callback is unknown_state.
func TestCorruptPendingListIsDroppedNotTrusted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var left bool
	w := h.serve(navigation("GET", "/stepup/callback?state=S&code=C", "alice"), map[string]any{"stepup.pending": "p1\x1eS\x1fN"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.CallbackHandler().ServeHTTP(w, r)
			left = h.sm.Exists(r.Context(), "stepup.pending")
		}))
	if w.Code != http.StatusForbidden || left {
		t.Errorf("status %d, corrupt list left in the session: %v", w.Code, left)
	}
	if ev := h.audit.Events(); len(ev) != 2 || ev[0].Reason != ReasonCorrupt || ev[1].Reason != ReasonUnknownState {
		t.Errorf("audit %+v, want dropped/corrupt then denied/unknown_state", ev)
	}
}

func TestDefaultErrorResponseHidesTheError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := httptestRecorder()
	errStoreDown := errors.New("store down")
	h.su.cfg.OnError(w, navigation("GET", "/admin", "alice"), errStoreDown)
	if w.Code != 500 || strings.Contains(w.Body.String(), errStoreDown.Error()) {
		t.Errorf("default OnError: %d %q", w.Code, w.Body)
	}
}

// TestResponseRules: the checks of an authorization response before its
// code is redeemed, one row per rule, and their order: an error response
// is believed only from this session's challenge and this issuer, so a
// forged ?error= link ends as unknown_state or issuer_mismatch.
func TestResponseRules(t *testing.T) {
	t.Parallel()
	const started = 1_800_000_000
	ttl := int64(challengeTTL / time.Second)
	good := callbackParams{state: "S", code: "C", iss: testIssuer, hasIss: true}
	rc := responseContext{issuer: testIssuer, issParam: true, now: started + 5}
	c := pending{state: "S", scope: "admin", started: started}
	with := func(f func(*callbackParams)) callbackParams { p := good; f(&p); return p }
	for _, tc := range []struct {
		name     string
		params   callbackParams
		paramsOK bool
		found    bool
		hasUser  bool
		rc       responseContext
		want     Reason
	}{
		{"HonestResponse", good, true, true, true, rc, ""},
		{"MalformedBeforeEverything", with(func(p *callbackParams) { p.err = "access_denied" }), false, false, false, rc, ReasonBadRequest},
		{"ForgedErrorLinkWithoutState", with(func(p *callbackParams) { p.err = "access_denied" }), true, false, true, rc, ReasonUnknownState},
		{"MixUpIssuer", with(func(p *callbackParams) { p.iss = "https://evil.test" }), true, true, true, rc, ReasonIssuerMismatch},
		{"MixUpIssuerBeforeIdPError", with(func(p *callbackParams) { p.iss, p.err = "https://evil.test", "login_required" }), true, true, true, rc, ReasonIssuerMismatch},
		{"PromisedIssMissing", with(func(p *callbackParams) { p.iss, p.hasIss = "", false }), true, true, true, rc, ReasonMissingIssuer},
		{"IssNotPromisedNotSent", with(func(p *callbackParams) { p.iss, p.hasIss = "", false }), true, true, true, responseContext{issuer: testIssuer, now: rc.now}, ""},
		{"IdPError", with(func(p *callbackParams) { p.err = "access_denied" }), true, true, true, rc, ReasonIdPError},
		{"IdPErrorBeforeExpiry", with(func(p *callbackParams) { p.err = "access_denied" }), true, true, true, responseContext{issuer: testIssuer, issParam: true, now: started + ttl}, ReasonIdPError},
		{"ChallengeAtItsLastSecond", good, true, true, true, responseContext{issuer: testIssuer, issParam: true, now: started + ttl - 1}, ""},
		{"ChallengeExpired", good, true, true, true, responseContext{issuer: testIssuer, issParam: true, now: started + ttl}, ReasonChallengeExpired},
		{"LoggedOutWhileAtTheIdP", good, true, true, false, rc, ReasonUnauthenticated},
		{"NoCode", with(func(p *callbackParams) { p.code = "" }), true, true, true, rc, ReasonMissingCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := checkResponse(tc.params, tc.paramsOK, c, tc.found, tc.hasUser, tc.rc); got != tc.want {
				t.Errorf("checkResponse = %q, want %q", got, tc.want)
			}
		})
	}
}
