package stepup

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// These tests run real grants under each scope policy knob, and the callback
// checks that depend on them, against the in-process provider.

func TestScopePoliciesSetTheDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		scope Scope
		login stepuptest.Login
		bound Bound
		after time.Duration // deadline - grant time
	}{
		{"LifetimeCapsALongIDToken", Scope{ACR: []string{"urn:test:mfa"}, Lifetime: 2 * time.Minute},
			stepuptest.Login{IDTokenLifetime: time.Hour}, BoundLifetime, 2 * time.Minute},
		{"MaxAgeCountsFromAuthTime", Scope{ACR: []string{"urn:test:mfa"}, MaxAge: 3 * time.Minute, PromptLogin: true},
			stepuptest.Login{IDTokenLifetime: time.Hour}, BoundMaxAge, 3 * time.Minute},
		{"IgnoreIDTokenExpiryOutlivesAShortToken", Scope{ACR: []string{"urn:test:mfa"}, Lifetime: 20 * time.Minute, IgnoreIDTokenExpiry: true},
			stepuptest.Login{IDTokenLifetime: 2 * time.Minute}, BoundLifetime, 20 * time.Minute},
		{"SessionExpiryBeatsTheCap", Scope{ACR: []string{"urn:test:mfa"}, Lifetime: 20 * time.Minute},
			stepuptest.Login{IDTokenLifetime: time.Hour, SessionExpiry: time.Now().Add(10 * time.Minute)}, BoundSessionExpiry, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFlowHarness(t, stepuptest.Config{Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
				l := tc.login
				l.ACR, l.AuthTime = "urn:test:mfa", time.Now().Truncate(time.Second)
				return l
			}}, func(c *Config) { c.Scopes = map[string]Scope{"admin": tc.scope} })
			if status, _ := h.deliver(h.callbackURL()); status != http.StatusSeeOther {
				t.Fatalf("status %d (%s)", status, h.lastEvent().Reason)
			}
			e := h.lastEvent()
			if e.Type != EventGranted || e.Bound != tc.bound {
				t.Fatalf("event %s, bound %s; want granted, %s", e.Type, e.Bound, tc.bound)
			}
			if tc.after > 0 {
				if got := e.Deadline.Sub(h.clock.Now()); got < tc.after-2*time.Second || got > tc.after {
					t.Errorf("deadline %s after the grant, want %s", got, tc.after)
				}
			}
		})
	}
}

// TestStaleLoginBeyondMaxAgeIsRefused: the login happened after the
// challenge began, but the callback arrives more than MaxAge after it.
func TestStaleLoginBeyondMaxAgeIsRefused(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
		return stepuptest.Login{ACR: "urn:test:mfa", IDTokenLifetime: time.Hour}
	}}, func(c *Config) {
		c.Scopes = map[string]Scope{"admin": {ACR: []string{"urn:test:mfa"}, MaxAge: time.Minute, PromptLogin: true}}
	})
	u := h.callbackURL()
	h.clock.Advance(90 * time.Second)
	if status, _ := h.deliver(u); status != http.StatusForbidden || h.lastEvent().Reason != ReasonStaleAuthTime {
		t.Fatalf("status %d, reason %s; want 403 stale_auth_time", status, h.lastEvent().Reason)
	}
}

func TestRequireIssParameterWithoutDiscoveryPromise(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{}, func(c *Config) { c.RequireIssParameter = true })
	u := h.callbackURL()
	if u.Query().Has("iss") {
		t.Fatal("this provider is not supposed to send iss")
	}
	if status, _ := h.deliver(u); status != http.StatusForbidden || h.lastEvent().Reason != ReasonMissingIssuer {
		t.Fatalf("status %d, reason %s; want 403 missing_iss", status, h.lastEvent().Reason)
	}
}

// TestCodeIssuedToAnotherClientIsRefused: a code the IdP issued to another
// relying party is injected into this app's callback.
func TestCodeIssuedToAnotherClientIsRefused(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{})
	other := newFlowHarness(t, stepuptest.Config{})
	// The other app is a second client of the same provider.
	h.idp.AddClient(stepuptest.Client{ID: "other", Secret: "other-secret", RedirectURIs: []string{other.app.URL + "/stepup/callback"}})
	foreign := (&url.URL{Scheme: "http", Host: strings.TrimPrefix(h.idp.Issuer(), "http://"), Path: "/authorize",
		RawQuery: url.Values{"client_id": {"other"}, "redirect_uri": {other.app.URL + "/stepup/callback"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"x"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode()}).String()
	resp := h.get(foreign)
	stolen, err := resp.Location()
	if err != nil || stolen.Query().Get("code") == "" {
		t.Fatalf("the other client got no code: %d %v", resp.StatusCode, err)
	}
	u := h.callbackURL()
	setQuery(u, "code", stolen.Query().Get("code"))
	if status, _ := h.deliver(u); status != http.StatusForbidden || h.lastEvent().Reason != ReasonTokenRefused || h.lastEvent().IdPError != "invalid_grant" {
		t.Fatalf("status %d, reason %s (%s); want 403 token_refused (invalid_grant)", status, h.lastEvent().Reason, h.lastEvent().IdPError)
	}
	if h.elevated() {
		t.Fatal("elevated with another client's code")
	}
}

func TestMalformedClaimsAreRefused(t *testing.T) {
	t.Parallel()
	many := make([]string, 33)
	for i := range many {
		many[i] = "otp"
	}
	for _, tc := range []struct {
		name   string
		mutate func(c map[string]any)
		reason Reason
	}{
		{"AZPOfTheWrongType", func(c map[string]any) { c["azp"] = 7 }, ReasonAZPMismatch},
		{"AMRWithANullElement", func(c map[string]any) { c["amr"] = []any{"pwd", nil} }, ReasonInvalidClaims},
		{"AMRTooLong", func(c map[string]any) { c["amr"] = many }, ReasonInvalidClaims},
		{"AMREntryTooLong", func(c map[string]any) { c["amr"] = []string{strings.Repeat("x", 65)} }, ReasonInvalidClaims},
		{"AMREntryWithControlCharacters", func(c map[string]any) { c["amr"] = []string{"otp\x1e"} }, ReasonInvalidClaims},
		{"ACRWithControlCharacters", func(c map[string]any) { c["acr"] = "urn:test:mfa\x1f" }, ReasonInvalidClaims},
		{"SubjectOverOneKilobyte", func(c map[string]any) { c["sub"] = strings.Repeat("a", maxField+1) }, ReasonInvalidClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFlowHarness(t, stepuptest.Config{})
			h.rewrite(tc.mutate)
			if status, _ := h.deliver(h.callbackURL()); status != http.StatusForbidden || h.lastEvent().Reason != tc.reason {
				t.Fatalf("status %d, reason %s; want 403 %s", status, h.lastEvent().Reason, tc.reason)
			}
			if e := h.lastEvent(); strings.ContainsAny(e.ACR, "\x1e\x1f") {
				t.Errorf("an unstorable acr reached the audit event: %q", e.ACR)
			}
		})
	}
}

func TestHandlersRefuseOtherMethodsAndRepeatedParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		handler http.Handler
		req     *http.Request
		want    int
	}{
		{h.su.CallbackHandler(), navigation("POST", "/stepup/callback?state=x&code=y", "alice"), http.StatusMethodNotAllowed},
		{h.su.StartHandler(), navigation("POST", "/stepup/start?scope=admin", "alice"), http.StatusMethodNotAllowed},
		{h.su.StartHandler(), navigation("GET", "/stepup/start?scope=admin&scope=admin", "alice"), http.StatusBadRequest},
	} {
		if w := h.serve(tc.req, nil, tc.handler); w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.req.Method, tc.req.URL, w.Code, tc.want)
		}
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

func TestGrantResponseIsNotCachedAndSendsNoReferrer(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{})
	c := &http.Client{Jar: h.browser.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(h.callbackURL().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("grant: %d, Cache-Control %q, Referrer-Policy %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Referrer-Policy"))
	}
}

// TestCorruptPendingListIsDroppedNotTrusted: a pending-challenge list that
// does not decode is removed and audited, and its callback is unknown_state.
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
	h.su.cfg.OnError(w, navigation("GET", "/admin", "alice"), errStoreDown)
	if w.Code != 500 || strings.Contains(w.Body.String(), errStoreDown.Error()) {
		t.Errorf("default OnError: %d %q", w.Code, w.Body)
	}
}
