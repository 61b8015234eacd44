package stepup

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGuardLetsAFreshElevationThrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	el := h.elevation(t0.Add(time.Hour))
	w := h.serve(navigation("GET", "/admin", "alice"),
		map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
		h.su.RequireStepUp("admin")(okHandler))
	if w.Code != 200 || w.Body.String() != "secret admin page" {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
	if got := h.audit.Events(); len(got) != 0 {
		t.Errorf("the fast path audited %v", got)
	}
}

func TestGuardChallengesANavigationWithARedirect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.LoginHint = true })
	w := h.serve(navigation("GET", "/admin/users?page=2", "alice"), nil, h.su.RequireStepUp("admin")(okHandler))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", w.Code)
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), testIssuer+"/authorize?") {
		t.Fatalf("Location %q", w.Header().Get("Location"))
	}
	q := loc.Query()
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             "client",
		"redirect_uri":          "https://app.test/stepup/callback",
		"scope":                 "openid",
		"acr_values":            "urn:test:mfa urn:test:hw",
		"max_age":               "0",
		"code_challenge_method": "S256",
		"login_hint":            "alice",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("state")) < 26 || len(q.Get("nonce")) < 26 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("state %q, nonce %q, code_challenge %q: too short", q.Get("state"), q.Get("nonce"), q.Get("code_challenge"))
	}
	if q.Has("prompt") || q.Has("claims") {
		t.Errorf("prompt or claims sent though not configured: %v", q)
	}
	if got := h.audit.Types(); !slices.Equal(got, []EventType{EventChallenge}) {
		t.Errorf("audit %v, want [challenge]", got)
	}
}

func TestGuardSendsPromptAndClaimsWhenConfigured(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Scopes = map[string]Scope{"admin": {ACR: []string{"mfa"}, MaxAge: 5 * time.Minute, PromptLogin: true, RequestACRClaim: true}}
	})
	w := h.serve(navigation("GET", "/admin", "alice"), nil, h.su.RequireStepUp("admin")(okHandler))
	q, _ := url.ParseQuery(strings.SplitN(w.Header().Get("Location"), "?", 2)[1])
	if q.Get("prompt") != "login" || q.Get("max_age") != "300" {
		t.Errorf("prompt %q max_age %q", q.Get("prompt"), q.Get("max_age"))
	}
	var claims map[string]map[string]struct {
		Essential bool     `json:"essential"`
		Values    []string `json:"values"`
	}
	if err := json.Unmarshal([]byte(q.Get("claims")), &claims); err != nil {
		t.Fatalf("claims %q: %v", q.Get("claims"), err)
	}
	if acr := claims["id_token"]["acr"]; !acr.Essential || !slices.Equal(acr.Values, []string{"mfa"}) {
		t.Errorf("claims request %+v", claims)
	}
}

// TestPOSTBodyIsNotLostToARedirect: a POST, an XHR or an API client gets an
// RFC 9470 401 it can act on, never a redirect that replays as a GET.
func TestPOSTBodyIsNotLostToARedirect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Scopes = map[string]Scope{"admin": {ACR: []string{"urn:test:mfa", "urn:test:hw"}, MaxAge: 10 * time.Minute, PromptLogin: true}}
	})
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"POST form", func() *http.Request {
			r := navigation("POST", "/admin/users", "alice")
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}},
		{"GET asking for JSON", func() *http.Request {
			r := httptest.NewRequest("GET", "/admin/users", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("X-Test-User", "alice")
			return r
		}},
		{"XHR", func() *http.Request {
			r := navigation("GET", "/admin/users", "alice")
			r.Header.Set("X-Requested-With", "XMLHttpRequest")
			return r
		}},
		{"fetch()", func() *http.Request {
			r := navigation("GET", "/admin/users", "alice")
			r.Header.Set("Sec-Fetch-Mode", "cors")
			return r
		}},
		{"HTML at q=0", func() *http.Request {
			r := navigation("GET", "/admin/users", "alice")
			r.Header.Set("Accept", "text/html;q=0, application/json")
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.serve(tc.req(), nil, h.su.RequireStepUp("admin")(okHandler))
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			want := `Bearer error="insufficient_user_authentication", error_description="A stronger or more recent authentication is required", acr_values="urn:test:mfa urn:test:hw", max_age=600`
			if got := w.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, want)
			}
			var body challengeBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.StepUpURL != "/stepup/start?return_to=%2Fadmin%2Fusers&scope=admin" || body.MaxAge != 600 {
				t.Errorf("body %+v", body)
			}
			if w.Header().Get("Location") != "" {
				t.Errorf("a 401 challenge redirected to %q", w.Header().Get("Location"))
			}
		})
	}
}

func TestVisitorWithoutLoginGetsUnauthenticatedNotAChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.serve(navigation("GET", "/admin", ""), nil, h.su.RequireStepUp("admin")(okHandler))
	if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != "" || w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("got %d, headers %v", w.Code, w.Header())
	}
	if got := h.audit.Events(); len(got) != 0 {
		t.Errorf("audit %v, want none", got)
	}
}

func TestExpiredElevationIsDroppedAuditedOnceAndChallenged(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	el := h.elevation(t0.Add(5 * time.Minute))
	el.Bound = BoundSessionExpiry
	h.setClock(el.Deadline)
	var stillThere bool
	w := h.serve(navigation("GET", "/admin", "alice"),
		map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.RequireStepUp("admin")(okHandler).ServeHTTP(w, r)
			stillThere = h.sm.Exists(r.Context(), "stepup.elevation.admin")
		}))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("status %d", w.Code)
	}
	if stillThere {
		t.Error("the expired elevation is still in the session")
	}
	ev := h.audit.Events()
	if len(ev) != 2 || ev[0].Type != EventExpired || ev[1].Type != EventChallenge {
		t.Fatalf("audit %+v, want expired then challenge", ev)
	}
	if !ev[0].Deadline.Equal(el.Deadline) || ev[0].Bound != BoundSessionExpiry || ev[0].Subject != "alice" || ev[0].ACR != "urn:test:mfa" || ev[0].Elevation != "elev-1" {
		t.Errorf("expired event %+v", ev[0])
	}
}

// TestSubjectSwitchDoesNotInheritElevation: bob logs in to the app in a
// session where alice stepped up; he must not inherit her elevation.
func TestSubjectSwitchDoesNotInheritElevation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	el := h.elevation(t0.Add(time.Hour))
	w := h.serve(navigation("GET", "/admin", "bob"),
		map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
		h.su.RequireStepUp("admin")(okHandler))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", w.Code)
	}
	if ev := h.audit.Events(); len(ev) < 1 || ev[0].Type != EventDropped || ev[0].Reason != ReasonSubjectChanged {
		t.Errorf("audit %+v", ev)
	}
}

// TestElevationFromAnotherProviderIsRefused is GitLab !212755: an elevation
// granted by provider B must not satisfy a scope configured for provider A.
func TestElevationFromAnotherProviderIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	el := h.elevation(t0.Add(time.Hour))
	el.Issuer = "https://other-idp.test"
	w := h.serve(navigation("GET", "/admin", "alice"),
		map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
		h.su.RequireStepUp("admin")(okHandler))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", w.Code)
	}
	if ev := h.audit.Events(); len(ev) < 1 || ev[0].Reason != ReasonOtherIssuer {
		t.Errorf("audit %+v", ev)
	}
}

func TestCorruptElevationFailsClosed(t *testing.T) {
	t.Parallel()
	var gotErr error
	h := newHarness(t, func(c *Config) {
		c.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
			gotErr = err
			http.Error(w, "broken", 500)
		}
	})
	el := h.elevation(t0.Add(time.Hour))
	good := encodeElevation(&el)
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"PreReleaseFormat", "e1\x1fnot-a-number"},
		{"StoredAsAnInt", 42},
		{"StoredAsBytes", []byte("e1")},
		{"TruncatedAfterTheDeadline", "e2\x1f99999999999"},
		{"GrantedAtNotANumber", good[:len(good)-2] + "x"},
		{"EmptyFieldAppended", good + "\x1f"},
	} {
		// The rows share the harness and its OnError: not parallel.
		t.Run(tc.name, func(t *testing.T) {
			gotErr = nil
			w := h.serve(navigation("GET", "/admin", "alice"),
				map[string]any{"stepup.elevation.admin": tc.v},
				h.su.RequireStepUp("admin")(okHandler))
			if w.Code != 500 || strings.Contains(w.Body.String(), "secret") {
				t.Errorf("%#v: got %d %q", tc.v, w.Code, w.Body)
			}
			if !errors.Is(gotErr, ErrCorruptRecord) {
				t.Errorf("%#v: OnError got %v", tc.v, gotErr)
			}
			if ev := h.audit.Events(); len(ev) == 0 || ev[len(ev)-1].Type != EventDropped || ev[len(ev)-1].Reason != ReasonCorrupt {
				t.Errorf("%#v: audit %+v, want dropped/corrupt", tc.v, ev)
			}
		})
	}
}

func TestMissingSessionMiddlewareFailsClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := httptest.NewRecorder()
	h.su.RequireStepUp("admin")(okHandler).ServeHTTP(w, navigation("GET", "/admin", "alice"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
}

func TestRequireStepUpPanicsOnUnknownScope(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"root"`) {
			t.Errorf("recover() = %v", r)
		}
	}()
	h.su.RequireStepUp("root")
}

func TestAcceptsHTML(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		accept string
		want   bool
	}{
		{"HTML", "text/html", true},
		{"HTMLInUpperCaseWithAParameter", "TEXT/HTML; charset=utf-8", true},
		{"XHTMLWithAWeight", "application/xhtml+xml;q=0.5", true},
		{"HTMLAtWeightZero", "text/html;q=0", false},
		{"HTMLAtWeightZeroWithDecimals", "text/html;q=0.000, application/json", false},
		{"HTMLAtTheSmallestWeight", "text/html;q=0.001", true},
		{"AnyType", "*/*", false},
		{"JSON", "application/json", false},
		{"Empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := acceptsHTML([]string{tc.accept}); got != tc.want {
				t.Errorf("acceptsHTML(%q) = %v, want %v", tc.accept, got, tc.want)
			}
		})
	}
}

// TestGuardHonoursDeadlineAtTheBoundaries drives the same boundaries through
// the middleware with a fake clock.
func TestGuardHonoursDeadlineAtTheBoundaries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		skew   time.Duration
		offset time.Duration // clock position relative to the deadline
		want   int
	}{
		{"default skew, deadline - 31s", 0, -31 * time.Second, 200},
		{"default skew, deadline - 30s", 0, -30 * time.Second, 303},
		{"default skew, deadline", 0, 0, 303},
		{"default skew, deadline + 1s", 0, time.Second, 303},
		{"no skew, deadline - 1s", NoClockSkew, -time.Second, 200},
		{"no skew, deadline", NoClockSkew, 0, 303},
		{"no skew, deadline + 1s", NoClockSkew, time.Second, 303},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.ClockSkew = tc.skew })
			deadline := t0.Add(10 * time.Minute)
			el := h.elevation(deadline)
			h.setClock(deadline.Add(tc.offset))
			w := h.serve(navigation("GET", "/admin", "alice"),
				map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
				h.su.RequireStepUp("admin")(okHandler))
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
		})
	}
}

// TestGuardVerdict calls the guard's pure decision directly, over every
// verdict, the order in which they are decided, and every second around
// the deadline for several skews.
func TestGuardVerdict(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	deadline := t0.Add(time.Hour)
	rec := func(edit func(*Elevation)) string {
		el := h.elevation(deadline)
		if edit != nil {
			edit(&el)
		}
		return encodeElevation(&el)
	}
	valid := rec(nil)
	d := deadline.Unix()
	for _, tc := range []struct {
		name     string
		v        any
		sub      string
		checkSub bool
		now      int64
		want     verdict
	}{
		{"NothingStored", nil, "alice", true, t0.Unix(), verdictNone},
		{"Fresh", valid, "alice", true, t0.Unix(), verdictElevated},
		{"FreshWithoutSubjectCheck", valid, "", false, t0.Unix(), verdictElevated},
		{"StoredAsAnotherType", 42, "alice", true, t0.Unix(), verdictCorrupt},
		{"EmptyRecord", "", "alice", true, t0.Unix(), verdictCorrupt},
		{"Garbage", "not a record", "alice", true, t0.Unix(), verdictCorrupt},
		{"Truncated", valid[:len(valid)/2], "alice", true, t0.Unix(), verdictCorrupt},
		{"FieldAppended", valid + "\x1fextra", "alice", true, t0.Unix(), verdictCorrupt},
		{"FutureRecordVersion", "e3" + valid[2:], "alice", true, t0.Unix(), verdictCorrupt},
		{"OtherIssuer", rec(func(e *Elevation) { e.Issuer = "https://evil.test" }), "alice", true, t0.Unix(), verdictOtherIssuer},
		{"OtherUser", valid, "mallory", true, t0.Unix(), verdictOtherUser},
		{"OtherUserUncheckedWithoutSubject", valid, "mallory", false, t0.Unix(), verdictElevated},
		{"ExpiredAtDeadlineMinusSkew", valid, "alice", true, d - 30, verdictExpired},
		{"FreshOneSecondEarlier", valid, "alice", true, d - 31, verdictElevated},
		{"ExpiredLongAfter", valid, "alice", true, d + 86400, verdictExpired},
		// When several things are wrong, the first in this order decides:
		// corrupt, other issuer, other user, expired.
		{"OtherIssuerBeatsOtherUserAndExpiry", rec(func(e *Elevation) { e.Issuer = "https://evil.test" }), "mallory", true, d + 1, verdictOtherIssuer},
		{"OtherUserBeatsExpiry", valid, "mallory", true, d + 1, verdictOtherUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, head := h.su.check(tc.v, tc.sub, tc.checkSub, tc.now)
			if got != tc.want {
				t.Fatalf("verdict %d, want %d", got, tc.want)
			}
			if got == verdictElevated && (head.id != "elev-1" || head.deadline != d) {
				t.Errorf("head %+v", head)
			}
		})
	}

	for _, sk := range []struct {
		name string
		skew time.Duration
	}{
		{"BoundaryWithNoClockSkew", NoClockSkew},
		{"BoundaryWithASkewOf1s", time.Second},
		{"BoundaryWithTheDefaultClockSkew", DefaultClockSkew},
		{"BoundaryWithASkewOf5m", 5 * time.Minute},
	} {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.ClockSkew = sk.skew })
			s := int64(max(sk.skew, 0) / time.Second)
			for now := d - s - 3; now <= d+2; now++ {
				got, _ := h.su.check(valid, "alice", true, now)
				want := verdictExpired
				if now < d-s {
					want = verdictElevated
				}
				if got != want {
					t.Errorf("skew %s, %ds before the deadline: verdict %d, want %d", sk.skew, d-now, got, want)
				}
			}
		})
	}
}

// TestSubjectFromSessionWithoutLoadAndSaveFailsClosed: Config.Subject reads
// the scs session, as the package doc writes it, and LoadAndSave is not
// mounted. Every entry point answers through OnError with ErrNoSession
// instead of panicking in scs.
func TestSubjectFromSessionWithoutLoadAndSaveFailsClosed(t *testing.T) {
	t.Parallel()
	var gotErr error
	h := newHarness(t, func(c *Config) {
		sm := c.SessionManager
		c.Subject = func(r *http.Request) (string, bool) {
			sub := sm.GetString(r.Context(), "sub") // panics without LoadAndSave
			return sub, sub != ""
		}
		c.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
			gotErr = err
			http.Error(w, "fail closed", http.StatusInternalServerError)
		}
	})
	for _, tc := range []struct {
		name    string
		handler http.Handler
	}{
		{"RequireStepUp", h.su.RequireStepUp("admin")(okHandler)},
		{"StartHandler", h.su.StartHandler()},
		{"CallbackHandler", h.su.CallbackHandler()},
	} {
		// The rows share the harness and its OnError: not parallel.
		t.Run(tc.name, func(t *testing.T) {
			gotErr = nil
			w := httptest.NewRecorder()
			tc.handler.ServeHTTP(w, navigation("GET", "/stepup/start?scope=admin", ""))
			if w.Code != http.StatusInternalServerError || !errors.Is(gotErr, ErrNoSession) || strings.Contains(w.Body.String(), "secret") {
				t.Errorf("%d %q, OnError got %v", w.Code, w.Body, gotErr)
			}
		})
	}
	if _, ok := h.su.Elevation(navigation("GET", "/", ""), "admin"); ok {
		t.Error("Elevation reported an elevation without a session")
	}
	h.su.Drop(navigation("POST", "/", ""), "admin") // must not panic
	h.su.DropAll(navigation("POST", "/", ""))
}

// TestGuardSendsEntraACRSClaimsRequest: against Entra ID, the authentication
// context is requested in acrs, in the exact form Microsoft documents.
func TestGuardSendsEntraACRSClaimsRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Scopes = map[string]Scope{"admin": {ACR: []string{"c1"}, RequestACRClaim: true, ACRClaim: "acrs"}}
	})
	w := h.serve(navigation("GET", "/admin", "alice"), nil, h.su.RequireStepUp("admin")(okHandler))
	q, _ := url.ParseQuery(strings.SplitN(w.Header().Get("Location"), "?", 2)[1])
	if got, want := q.Get("claims"), `{"id_token":{"acrs":{"essential":true,"value":"c1"}}}`; got != want || q.Get("acr_values") != "c1" {
		t.Errorf("claims %s acr_values %q, want %s and c1", got, q.Get("acr_values"), want)
	}
}
