package main

import (
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// The tests run the example as main does, from flags, against an in-process
// OpenID Provider (stepuptest) over loopback HTTP, with browsers that keep
// cookies. The provider logs in anyone as alice at the requested acr.
//
// The provider stamps iat and exp with the real clock, so the example's fake
// clock starts at the real time and only moves forward, and the provider's ID
// tokens live an hour: the example's 15-minute Lifetime is what ends an
// elevation, and a step-up after the clock moved still gets a fresh token.
// auth_time comes from the example's clock, as the example would see a fresh
// login at that moment.

const (
	mfa      = "urn:example:mfa"
	clientID = "minimal"
	secret   = "s3cret"
)

// app is the example and its IdP, both on loopback.
type app struct {
	url   string
	idp   *stepuptest.Provider
	clock *stepuptest.Clock // the example's clock; the IdP stamps tokens with the real one
}

// startApp starts the IdP and the example; both stop when the test ends.
// The example's clock starts at the real time and only moves forward.
func startApp(t *testing.T) *app {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	a := &app{url: "http://" + srv.Listener.Addr().String(), clock: stepuptest.NewClock(time.Now())}
	idp, err := stepuptest.New(stepuptest.Config{
		Clients: []stepuptest.Client{{ID: clientID, Secret: secret, RedirectURIs: []string{a.url + "/stepup/callback"}}},
		Authenticate: func(stepuptest.AuthRequest) stepuptest.Login {
			return stepuptest.Login{IDTokenLifetime: time.Hour, AuthTime: a.clock.Now()}
		},
	})
	if err != nil {
		srv.Close()
		t.Fatalf("stepuptest.New: %v", err)
	}
	t.Cleanup(func() { idp.Close() })
	a.idp = idp

	args := []string{"-issuer", idp.Issuer(), "-client-id", clientID, "-acr", mfa, "-base-url", a.url}
	cfg, err := parseFlags(args, env{"OIDC_CLIENT_SECRET": secret}.get, io.Discard)
	if err != nil {
		srv.Close()
		t.Fatalf("parseFlags(%q): %v", args, err)
	}
	cfg.now = a.clock.Now
	h, err := newHandler(cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("newHandler: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return a
}

type env map[string]string

func (e env) get(k string) string { return e[k] }

// browser is a browser stand-in: a cookie jar, and Accept: text/html so
// that the guard treats its requests as navigations.
type browser struct {
	t    *testing.T
	jar  http.CookieJar
	hops []*url.URL // where the last get was redirected, in order
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, jar: jar}
}

// page is a response as the browser saw it.
type page struct {
	status int
	url    *url.URL // the last URL requested
	header http.Header
	body   string
}

// get fetches target, following redirects (and recording them in b.hops)
// when follow is set.
func (b *browser) get(target string, follow bool) page {
	b.t.Helper()
	b.hops = nil
	c := &http.Client{Jar: b.jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		b.hops = append(b.hops, req.URL)
		return nil
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("GET %s: reading the body: %v", target, err)
	}
	return page{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(body)}
}

// stepUp visits /admin, is sent through the IdP's login, and returns the
// admin page it lands on.
func (a *app) stepUp(t *testing.T, b *browser) page {
	t.Helper()
	p := b.get(a.url+"/admin", true)
	if p.status != http.StatusOK || p.url.String() != a.url+"/admin" || !strings.Contains(p.body, "Admin mode") {
		t.Fatalf("step-up ended at %s with %d (through %v):\n%s", p.url, p.status, b.hops, p.body)
	}
	return p
}

var endsRE = regexp.MustCompile(`ends (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)`)

// ends reads when the elevation ends from the admin page.
func ends(t *testing.T, p page) time.Time {
	t.Helper()
	m := endsRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("admin page shows no end:\n%s", p.body)
	}
	at, err := time.Parse("2006-01-02 15:04:05 MST", m[1])
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// wantChallenge asserts that p redirects to the IdP's authorization
// endpoint, and returns the authorization request's parameters.
func (a *app) wantChallenge(t *testing.T, p page) url.Values {
	t.Helper()
	loc, err := p.url.Parse(p.header.Get("Location"))
	if p.status != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), a.idp.Issuer()+"/") {
		t.Fatalf("GET %s: %d to %q, want 303 to the IdP %s", p.url, p.status, p.header.Get("Location"), a.idp.Issuer())
	}
	return loc.Query()
}

func TestHomePageLinksToAdminWithoutStepUp(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	p := newBrowser(t).get(a.url+"/", false)
	if p.status != http.StatusOK || !strings.Contains(p.body, `href="/admin"`) {
		t.Fatalf("GET /: %d\n%s", p.status, p.body)
	}
	if n := len(a.idp.Requests()); n != 0 {
		t.Errorf("the home page sent %d authorization requests to the IdP", n)
	}
}

func TestAdminRedirectsToIdPWithACRValuesAndPKCE(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	q := a.wantChallenge(t, newBrowser(t).get(a.url+"/admin", false))
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             clientID,
		"redirect_uri":          a.url + "/stepup/callback",
		"acr_values":            mfa,
		"code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("code_challenge")) != 43 { // RFC 7636 §4.2: BASE64URL(SHA256(verifier))
		t.Errorf("code_challenge = %q, want an S256 challenge", q.Get("code_challenge"))
	}
	if q.Get("state") == "" || q.Get("nonce") == "" || !strings.Contains(" "+q.Get("scope")+" ", " openid ") {
		t.Errorf("state %q, nonce %q, scope %q: want a state, a nonce and the openid scope", q.Get("state"), q.Get("nonce"), q.Get("scope"))
	}
}

func TestStepUpLandsOnAdminShowingTheElevation(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	b := newBrowser(t)
	p := a.stepUp(t, b)
	if !strings.Contains(p.body, "acr <code>"+mfa+"</code>") {
		t.Errorf("admin page does not show acr %s:\n%s", mfa, p.body)
	}
	// The 15-minute Lifetime ends the elevation before the hour-long ID
	// token, brought forward by the default 30s clock skew.
	if end, want := ends(t, p), a.clock.Now().Add(15*time.Minute-30*time.Second).Truncate(time.Second); !end.Equal(want) {
		t.Errorf("elevation ends at %v, want %v", end, want)
	}
	if len(b.hops) == 0 || b.hops[len(b.hops)-1].Path != "/admin" || !hopped(b.hops, a.url+"/stepup/callback") {
		t.Errorf("redirects %v: want the IdP, the callback, then /admin", b.hops)
	}
}

// hopped reports whether a redirect went to prefix.
func hopped(hops []*url.URL, prefix string) bool {
	for _, u := range hops {
		if strings.HasPrefix(u.String(), prefix) {
			return true
		}
	}
	return false
}

func TestElevatedSessionNeedsNoIdPRoundTrip(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	b := newBrowser(t)
	a.stepUp(t, b)
	a.clock.Advance(time.Minute)
	p := b.get(a.url+"/admin", true)
	if p.status != http.StatusOK || len(b.hops) != 0 || !strings.Contains(p.body, "Admin mode") {
		t.Fatalf("second GET /admin: %d through %v:\n%s", p.status, b.hops, p.body)
	}
	if n := len(a.idp.Requests()); n != 1 {
		t.Errorf("the IdP saw %d authorization requests, want the first one only", n)
	}
}

func TestElevationBelongsToTheSession(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.stepUp(t, newBrowser(t))
	a.wantChallenge(t, newBrowser(t).get(a.url+"/admin", false)) // another browser, no cookie
}

func TestExpiredElevationIsChallengedAgain(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	b := newBrowser(t)
	end := ends(t, a.stepUp(t, b))

	a.clock.Set(end.Add(-time.Second))
	if p := b.get(a.url+"/admin", false); p.status != http.StatusOK {
		t.Fatalf("one second before the end: GET /admin = %d, want 200", p.status)
	}
	a.clock.Set(end)
	a.wantChallenge(t, b.get(a.url+"/admin", false))
	// The new step-up starts from the moved clock and grants a new elevation.
	if got := ends(t, a.stepUp(t, b)); !got.After(end) {
		t.Errorf("the second elevation ends at %v, not after the first (%v)", got, end)
	}
	if n := len(a.idp.Requests()); n != 2 {
		t.Errorf("the IdP saw %d authorization requests, want 2: the first step-up and the one after expiry", n)
	}
}

func TestWeakerACRIsRefused(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.idp.SetAuthenticate(func(stepuptest.AuthRequest) stepuptest.Login {
		return stepuptest.Login{ACR: "urn:example:pwd", AuthTime: a.clock.Now()}
	})
	b := newBrowser(t)
	if p := b.get(a.url+"/admin", true); p.status != http.StatusForbidden || p.url.Path != "/stepup/callback" {
		t.Fatalf("step-up at a weaker acr ended at %s with %d, want 403 at the callback", p.url, p.status)
	}
	a.wantChallenge(t, b.get(a.url+"/admin", false))
}

func TestBadFlagsAreRefusedWithTheReason(t *testing.T) {
	t.Parallel()
	ok := []string{"-issuer", "https://idp.example.com", "-client-id", "app", "-acr", mfa}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing issuer", ok[2:], "-issuer is required"},
		{"missing client id", append(ok[:2:2], ok[4:]...), "-client-id is required"},
		{"missing acr", ok[:4], "-acr is required"},
		{"empty acr list", append(ok[:4:4], "-acr", " , "), "-acr is required"},
		{"unknown flag", append(ok, "-secret", "x"), "flag provided but not defined: -secret"},
		{"stray argument", append(ok, "serve"), `unexpected argument "serve"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, env{}.get, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestFlagDefaultsAndSecretFromEnvironment(t *testing.T) {
	t.Parallel()
	args := []string{"-issuer", "https://idp.example.com", "-client-id", "app", "-acr", "urn:a, urn:b"}
	cfg, err := parseFlags(args, env{"OIDC_CLIENT_SECRET": "from-env"}.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "127.0.0.1:8080" || cfg.baseURL != "http://127.0.0.1:8080" || cfg.clientSecret != "from-env" || strings.Join(cfg.acr, "|") != "urn:a|urn:b" {
		t.Errorf("config = %+v", cfg)
	}
	cfg, err = parseFlags(append(args, "-client-secret", "from-flag", "-base-url", "https://app.example.com/"), env{"OIDC_CLIENT_SECRET": "from-env"}.get, io.Discard)
	if err != nil || cfg.clientSecret != "from-flag" || cfg.baseURL != "https://app.example.com" {
		t.Errorf("with -client-secret and -base-url: %+v, %v", cfg, err)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if _, err := parseFlags([]string{"-h"}, env{}.get, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags(-h) = %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-issuer", "-client-id", "-client-secret", "OIDC_CLIENT_SECRET", "-acr", "-addr", "-base-url"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h does not mention %s:\n%s", f, out.String())
		}
	}
}

func TestPlainHTTPBaseURLIsRefusedAtStartup(t *testing.T) {
	t.Parallel()
	// Validation comes before discovery: the unreachable issuer is never asked.
	args := []string{"-issuer", "http://127.0.0.1:1", "-client-id", "app", "-acr", mfa, "-base-url", "http://app.example.com"}
	cfg, err := parseFlags(args, env{}.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newHandler(cfg); err == nil || !strings.Contains(err.Error(), "RedirectURL: must use https") {
		t.Errorf("newHandler with an http base URL on a public host = %v, want the RedirectURL https error", err)
	}
}
