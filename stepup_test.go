package stepup_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// These tests drive a real application (scs sessions, chi or http.ServeMux)
// and the in-process OpenID Provider over loopback HTTP, with browsers that
// keep cookies. The application's clock is fake and only moves forward.

// TestMain fails the run if a test leaves a goroutine behind: servers,
// providers and idle connections are all closed. The exceptions are the
// memstore cleanup goroutine every scs.New starts, which scs cannot stop
// race-free (see newApp), and rueidis's Cluster client closing the
// connections a topology refresh (a failover) replaced five seconds
// later, whether or not the client was closed meanwhile.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(memstoreCleanup),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"))
}

const skew = int64(stepup.DefaultClockSkew / time.Second)

func TestStepUpGrantsElevation(t *testing.T) {
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	before := b.cookie(t)
	idToken := a.observeNextIDToken()

	r := b.get(t, "/admin")
	wantStatus(t, r, http.StatusOK)
	if r.body != "admin ok" || r.url.String() != a.url+"/admin" {
		t.Fatalf("ended at %s with %q, want %s/admin with \"admin ok\"", r.url, r.body, a.url)
	}
	if got, want := a.audit.types(), []stepup.EventType{stepup.EventChallenge, stepup.EventGranted}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
	exp := unixClaim(t, idToken(t), "exp")
	g := a.audit.last(t, stepup.EventGranted)
	if g.Scope != "admin" || g.Subject != "alice" || g.Issuer != a.idp.Issuer() || g.ACR != mfa ||
		!slices.Equal(g.AMR, []string{"pwd", "otp"}) || g.Elevation == "" {
		t.Errorf("granted event = %+v", g)
	}
	if g.Bound != stepup.BoundExp || !g.Deadline.Equal(time.Unix(exp, 0)) {
		t.Errorf("granted deadline = %v (%s), want the ID token's exp %v", g.Deadline, g.Bound, time.Unix(exp, 0))
	}

	reqs := a.idp.Requests()
	if len(reqs) != 1 {
		t.Fatalf("provider saw %d authorization requests, want 1", len(reqs))
	}
	q := reqs[0]
	if !slices.Equal(q.ACRValues, []string{mfa}) || q.MaxAge == nil || *q.MaxAge != 0 || q.Nonce == "" ||
		q.State == "" || q.CodeChallengeMethod != "S256" || q.CodeChallenge == "" ||
		q.RedirectURI != a.url+callbackPath || !slices.Contains(q.Scopes, "openid") {
		t.Errorf("authorization request = %+v, want acr_values, max_age=0, nonce, state and PKCE S256", q)
	}

	// Session fixation: the privilege change gets a new session token, and
	// the token from before it (which an attacker may have planted or seen)
	// no longer names a session at all.
	if after := b.cookie(t); after == before {
		t.Fatal("session cookie unchanged across the grant; want RenewToken")
	}
	fixer := a.newBrowser(t)
	fixer.setCookie(t, before)
	wantStatus(t, fixer.peek(t, "/admin"), http.StatusUnauthorized)
}

// assertElevationEndsAt checks, with the fake clock, that the elevation is
// honoured up to deadline-skew-1 and challenged from deadline-skew on, with
// an expired event naming bound.
func assertElevationEndsAt(t *testing.T, a *app, b *browser, deadline int64, bound stepup.Bound) {
	t.Helper()
	g := a.audit.last(t, stepup.EventGranted)
	if g.Bound != bound || g.Deadline.Unix() != deadline {
		t.Fatalf("granted deadline %d (%s), want %d (%s)", g.Deadline.Unix(), g.Bound, deadline, bound)
	}
	advanceTo(t, a.clock, time.Unix(deadline-skew-1, 0))
	r := b.peek(t, "/admin")
	if r.status != http.StatusOK || r.body != "admin ok" {
		t.Fatalf("one second before deadline-skew: got %v, want 200", r)
	}
	advanceTo(t, a.clock, time.Unix(deadline-skew, 0))
	wantRedirectToIdP(t, a, b.peek(t, "/admin"))
	e := a.audit.last(t, stepup.EventExpired)
	if e.Bound != bound || e.Deadline.Unix() != deadline || e.Elevation != g.Elevation || e.Subject != "alice" {
		t.Errorf("expired event = %+v, want bound %s, deadline %d, elevation %s", e, bound, deadline, g.Elevation)
	}
	if got := a.audit.types(); got[len(got)-1] != stepup.EventChallenge {
		t.Errorf("audit = %v, want a challenge after the expiry", got)
	}
}

func TestElevationExpiresAtIDTokenExp(t *testing.T) {
	a := newApp(t, appOptions{})
	a.setLogin(stepuptest.Login{IDTokenLifetime: 2 * time.Minute})
	b := a.loggedIn(t, "alice")
	idToken := a.observeNextIDToken()
	b.stepUp(t, "/admin")
	assertElevationEndsAt(t, a, b, unixClaim(t, idToken(t), "exp"), stepup.BoundExp)
}

func TestElevationExpiresAtSessionExpiry(t *testing.T) {
	a := newApp(t, appOptions{})
	sessionExpiry := a.clock.Now().Unix() + 90
	a.setLogin(stepuptest.Login{IDTokenLifetime: 10 * time.Minute, SessionExpiry: time.Unix(sessionExpiry, 0)})
	b := a.loggedIn(t, "alice")
	idToken := a.observeNextIDToken()
	b.stepUp(t, "/admin")
	if got := unixClaim(t, idToken(t), "session_expiry"); got != sessionExpiry {
		t.Fatalf("session_expiry claim = %d, want %d", got, sessionExpiry)
	}
	assertElevationEndsAt(t, a, b, sessionExpiry, stepup.BoundSessionExpiry)
}

func TestReChallengeAfterExpiryLandsWhereTheUserWas(t *testing.T) {
	a := newApp(t, appOptions{})
	a.setLogin(stepuptest.Login{IDTokenLifetime: time.Minute})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	advanceTo(t, a.clock, a.audit.last(t, stepup.EventGranted).Deadline.Add(-stepup.DefaultClockSkew))
	// The next login's token must outlive the moved clock.
	a.setLogin(stepuptest.Login{})

	r := b.get(t, "/admin?tab=users")
	if r.status != http.StatusOK || r.url.String() != a.url+"/admin?tab=users" {
		t.Fatalf("got %v, want 200 at %s/admin?tab=users", r, a.url)
	}
	want := []stepup.EventType{
		stepup.EventChallenge, stepup.EventGranted,
		stepup.EventExpired, stepup.EventChallenge, stepup.EventGranted,
	}
	if got := a.audit.types(); !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
}

func TestTwoTabsStepUpAtOnce(t *testing.T) {
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	// scs keeps the last commit of concurrent requests, so the tabs take
	// turns; what matters is that both challenges are pending at once.
	auth1 := b.challenge(t, "/admin?x=1")
	auth2 := b.challenge(t, "/admin?x=2")
	cb2 := b.authorize(t, auth2)
	cb1 := b.authorize(t, auth1)

	wantRedirect(t, b.peek(t, cb2.String()), http.StatusSeeOther, "/admin?x=2")
	wantRedirect(t, b.peek(t, cb1.String()), http.StatusSeeOther, "/admin?x=1")
	if n := a.audit.count(stepup.EventGranted); n != 2 {
		t.Errorf("%d granted events, want 2 (audit %v)", n, a.audit.types())
	}
	wantStatus(t, b.peek(t, "/admin"), http.StatusOK)
}

func TestACRDowngradeIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		login   stepuptest.Login
		edit    func(authURL *url.URL) // what the user changes before going to the IdP
		granted bool
		acr     string // in the granted or denied event
	}{
		{
			name: "user edits acr_values",
			edit: func(u *url.URL) {
				q := u.Query()
				q.Set("acr_values", pwd)
				u.RawQuery = q.Encode()
			},
			acr: pwd,
		},
		{name: "IdP asserts a weaker acr", login: stepuptest.Login{ACR: pwd}, acr: pwd},
		{name: "acrs array without an accepted value", login: stepuptest.Login{ACR: "1", Claims: map[string]any{"acrs": []string{"c1", pwd}}}, acr: "1"},
		{name: "Entra acrs array with the accepted value", login: stepuptest.Login{ACR: "1", Claims: map[string]any{"acrs": []string{"c1", mfa}}}, granted: true, acr: mfa},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(t, appOptions{})
			a.setLogin(tt.login)
			b := a.loggedIn(t, "alice")
			authURL, err := url.Parse(b.challenge(t, "/admin"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.edit != nil {
				tt.edit(authURL)
			}
			cb := b.authorize(t, authURL.String())
			r := b.peek(t, cb.String())

			if tt.granted {
				wantRedirect(t, r, http.StatusSeeOther, "/admin")
				if g := a.audit.last(t, stepup.EventGranted); g.ACR != tt.acr {
					t.Errorf("granted acr = %q, want %q", g.ACR, tt.acr)
				}
				wantStatus(t, b.peek(t, "/admin"), http.StatusOK)
				return
			}
			e := wantDenied(t, a, r, cb, http.StatusForbidden, stepup.ReasonACRNotSatisfied)
			if e.ACR != tt.acr {
				t.Errorf("denied acr = %q, want %q", e.ACR, tt.acr)
			}
			if n := a.audit.count(stepup.EventGranted); n != 0 {
				t.Errorf("%d granted events after a downgrade", n)
			}
			wantRedirectToIdP(t, a, b.peek(t, "/admin"))
		})
	}
}

func TestSubjectSwitchAtIdPIsRefused(t *testing.T) {
	a := newApp(t, appOptions{})
	a.setLogin(stepuptest.Login{Subject: "mallory"})
	b := a.loggedIn(t, "alice")
	cb := b.authorize(t, b.challenge(t, "/admin"))
	wantDenied(t, a, b.peek(t, cb.String()), cb, http.StatusForbidden, stepup.ReasonSubjectMismatch)
	if n := a.audit.count(stepup.EventGranted); n != 0 {
		t.Errorf("%d granted events for another subject", n)
	}
	wantRedirectToIdP(t, a, b.peek(t, "/admin"))
}

func TestSubjectSwitchInAppDropsElevation(t *testing.T) {
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	g := a.audit.last(t, stepup.EventGranted)

	b.loginAs(t, "bob") // the app keeps the session data across the switch
	wantRedirectToIdP(t, a, b.peek(t, "/admin"))
	e := a.audit.wantReason(t, stepup.EventDropped, stepup.ReasonSubjectChanged)
	if e.Subject != "alice" || e.Elevation != g.Elevation {
		t.Errorf("dropped event = %+v, want alice's elevation %s", e, g.Elevation)
	}
}

func TestLoginTimeLockoutRefusesBornExpiredElevation(t *testing.T) {
	a := newApp(t, appOptions{})
	a.setLogin(stepuptest.Login{SessionExpiry: time.Unix(a.clock.Now().Unix()+10, 0)})
	b := a.loggedIn(t, "alice")
	cb := b.authorize(t, b.challenge(t, "/admin"))

	e := wantDenied(t, a, b.peek(t, cb.String()), cb, http.StatusForbidden, stepup.ReasonCeilingInPast)
	if e.Bound != stepup.BoundSessionExpiry {
		t.Errorf("denied bound = %q, want %q", e.Bound, stepup.BoundSessionExpiry)
	}
	// The challenge was consumed by the refusal.
	wantDenied(t, a, b.peek(t, cb.String()), cb, http.StatusForbidden, stepup.ReasonUnknownState)
	if n := a.audit.count(stepup.EventGranted); n != 0 {
		t.Errorf("%d granted events for a born-expired elevation", n)
	}
}

func TestCallbackReplayIsRefused(t *testing.T) {
	tests := []struct {
		name     string
		replayer func(t *testing.T, a *app, victim *browser) *browser
	}{
		{"in the same session", func(_ *testing.T, _ *app, victim *browser) *browser { return victim }},
		{"in another session of the same user", func(t *testing.T, a *app, _ *browser) *browser {
			b := a.loggedIn(t, "alice")
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(t, appOptions{})
			victim := a.loggedIn(t, "alice")
			cb := victim.stepUp(t, "/admin")
			replayer := tt.replayer(t, a, victim)

			wantDenied(t, a, replayer.peek(t, cb.String()), cb, http.StatusForbidden, stepup.ReasonUnknownState)
			if n := a.audit.count(stepup.EventGranted); n != 1 {
				t.Errorf("%d granted events, want 1", n)
			}
			if replayer != victim {
				wantRedirectToIdP(t, a, replayer.peek(t, "/admin"))
			}
		})
	}
}

func TestAPIClientGets401NotRedirect(t *testing.T) {
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	const wwwAuth = `Bearer error="insufficient_user_authentication", ` +
		`error_description="A stronger or more recent authentication is required", ` +
		`acr_values="urn:stepup:mfa", max_age=0`

	requests := []struct {
		name, method, path string
		form               url.Values
		header             http.Header
		returnTo           string
	}{
		{"form POST", http.MethodPost, "/admin/users", url.Values{"name": {"carol"}}, nil, "/admin/users"},
		{"JSON GET", http.MethodGet, "/admin/users?page=2", nil, http.Header{"Accept": {"application/json"}}, "/admin/users?page=2"},
		{"XHR GET", http.MethodGet, "/admin", nil, http.Header{"X-Requested-With": {"XMLHttpRequest"}}, "/admin"},
		{"fetch GET", http.MethodGet, "/admin", nil, http.Header{"Sec-Fetch-Mode": {"cors"}}, "/admin"},
	}
	var stepUpURL string
	for _, rq := range requests {
		t.Run(rq.name, func(t *testing.T) {
			r := b.do(t, b.noFollow, rq.method, rq.path, rq.form, rq.header)
			wantStatus(t, r, http.StatusUnauthorized)
			if got := r.header.Get("WWW-Authenticate"); got != wwwAuth {
				t.Errorf("WWW-Authenticate = %s\nwant %s", got, wwwAuth)
			}
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("401 carries Location %q", loc)
			}
			var body struct {
				Error     string `json:"error"`
				ACRValues string `json:"acr_values"`
				MaxAge    *int64 `json:"max_age"`
				StepUpURL string `json:"step_up_url"`
			}
			if err := json.Unmarshal([]byte(r.body), &body); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			u, err := url.Parse(body.StepUpURL)
			if body.Error != "insufficient_user_authentication" || body.ACRValues != mfa || body.MaxAge == nil ||
				*body.MaxAge != 0 || err != nil || u.Path != "/stepup/start" ||
				u.Query().Get("scope") != "admin" || u.Query().Get("return_to") != rq.returnTo {
				t.Errorf("challenge body = %+v", body)
			}
			if rq.method == http.MethodPost {
				stepUpURL = body.StepUpURL
			}
		})
	}
	if len(a.idp.Requests()) != 0 {
		t.Fatal("a 401 challenge reached the IdP")
	}
	if stepUpURL == "" {
		t.Fatal("no step_up_url from the POST")
	}

	// The browser follows step_up_url and lands where the POST was aimed.
	r := b.get(t, stepUpURL)
	if r.status != http.StatusOK || r.body != "users" || r.url.String() != a.url+"/admin/users" {
		t.Fatalf("step_up_url ended with %v, want 200 \"users\" at /admin/users", r)
	}
	r = b.do(t, b.noFollow, http.MethodPost, "/admin/users", url.Values{"name": {"carol"}}, nil)
	if r.status != http.StatusCreated || r.body != "user created" {
		t.Fatalf("POST after step-up: %v, want 201", r)
	}
}

func TestUnauthenticatedVisitorIsNotChallenged(t *testing.T) {
	a := newApp(t, appOptions{})
	b := a.newBrowser(t)
	for _, rq := range []struct{ method, path string }{
		{http.MethodGet, "/admin"},
		{http.MethodPost, "/admin/users"},
		{http.MethodGet, "/stepup/start?scope=admin&return_to=%2Fadmin"},
	} {
		t.Run(rq.method+" "+rq.path, func(t *testing.T) {
			var form url.Values
			if rq.method == http.MethodPost {
				form = url.Values{"name": {"carol"}}
			}
			r := b.do(t, b.noFollow, rq.method, rq.path, form, nil)
			wantStatus(t, r, http.StatusUnauthorized)
			if r.header.Get("Location") != "" || r.header.Get("WWW-Authenticate") != "" {
				t.Errorf("unauthenticated visitor was challenged: %v", r)
			}
			if !strings.Contains(r.body, "Log in first.") {
				t.Errorf("body = %q, want the default Unauthenticated body", r.body)
			}
		})
	}
	if ev := a.audit.all(); len(ev) != 0 {
		t.Errorf("audit = %v, want nothing", a.audit.types())
	}
	if n := len(a.idp.Requests()); n != 0 {
		t.Errorf("the IdP saw %d authorization requests, want none", n)
	}
}

func TestIdPErrorIsAuditedAndDenied(t *testing.T) {
	a := newApp(t, appOptions{})
	const description = "User cancelled <script>alert(1)</script>"
	a.setLogin(stepuptest.Login{Error: "access_denied", ErrorDescription: description})
	b := a.loggedIn(t, "alice")
	cb := b.authorize(t, b.challenge(t, "/admin"))
	if cb.Query().Get("error") != "access_denied" || cb.Query().Get("state") == "" {
		t.Fatalf("callback %s, want error=access_denied with state", cb)
	}

	r := b.peek(t, cb.String())
	e := wantDenied(t, a, r, cb, http.StatusForbidden, stepup.ReasonIdPError)
	if e.IdPError != "access_denied" {
		t.Errorf("denied IdPError = %q, want access_denied", e.IdPError)
	}
	if strings.Contains(r.body, "script") || strings.Contains(r.body, "cancelled") {
		t.Errorf("the IdP's error_description reached the page: %q", r.body)
	}
	wantRedirectToIdP(t, a, b.peek(t, "/admin"))
}

func TestMixUpIsRefused(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(q url.Values)
		reason stepup.Reason // "" means granted
	}{
		{"iss of another issuer", func(q url.Values) { q.Set("iss", "https://attacker.example") }, stepup.ReasonIssuerMismatch},
		{"iss with a trailing slash", func(q url.Values) { q.Set("iss", q.Get("iss")+"/") }, stepup.ReasonIssuerMismatch},
		{"iss removed", func(q url.Values) { q.Del("iss") }, stepup.ReasonMissingIssuer},
		{"honest iss", func(url.Values) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(t, appOptions{issParameter: true})
			b := a.loggedIn(t, "alice")
			cb := b.authorize(t, b.challenge(t, "/admin"))
			q := cb.Query()
			if q.Get("iss") != a.idp.Issuer() {
				t.Fatalf("callback %s, want iss=%s", cb, a.idp.Issuer())
			}
			tt.edit(q)
			cb.RawQuery = q.Encode()

			r := b.peek(t, cb.String())
			if tt.reason == "" {
				wantRedirect(t, r, http.StatusSeeOther, "/admin")
				wantStatus(t, b.peek(t, "/admin"), http.StatusOK)
				return
			}
			wantDenied(t, a, r, cb, http.StatusForbidden, tt.reason)
			if n := a.audit.count(stepup.EventGranted); n != 0 {
				t.Errorf("%d granted events", n)
			}
		})
	}
}

func TestDropEndsElevation(t *testing.T) {
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	wantStatus(t, b.peek(t, "/admin"), http.StatusOK)
	g := a.audit.last(t, stepup.EventGranted)

	wantStatus(t, b.do(t, b.noFollow, http.MethodPost, "/admin/drop", url.Values{}, nil), http.StatusNoContent)
	e := a.audit.wantReason(t, stepup.EventDropped, stepup.ReasonDropped)
	if e.Elevation != g.Elevation || e.Subject != "alice" {
		t.Errorf("dropped event = %+v, want alice's elevation %s", e, g.Elevation)
	}
	wantRedirectToIdP(t, a, b.peek(t, "/admin"))
	if got := a.audit.types(); got[len(got)-1] != stepup.EventChallenge {
		t.Errorf("audit = %v, want a challenge after the drop", got)
	}
}

func TestServeMuxAndChiBothWork(t *testing.T) {
	for _, kind := range []routerKind{routerChi, routerServeMux} {
		t.Run(string(kind), func(t *testing.T) {
			a := newApp(t, appOptions{router: kind})
			b := a.loggedIn(t, "alice")
			r := b.get(t, "/admin")
			if r.status != http.StatusOK || r.body != "admin ok" || r.url.String() != a.url+"/admin" {
				t.Fatalf("got %v, want 200 \"admin ok\" at /admin", r)
			}
			for typ, route := range map[stepup.EventType]string{
				stepup.EventChallenge: "/admin",
				stepup.EventGranted:   callbackPath,
			} {
				if e := a.audit.last(t, typ); !strings.HasSuffix(e.Route, route) {
					t.Errorf("%s event route = %q, want the %s route", typ, e.Route, route)
				}
			}
		})
	}
}
