package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup"
)

// TestAnonymousLoginFloodLeavesNoSessionsAndLittleHeap: 1,000 cookieless
// GET /login, one in ten with a 900 KB return_to, must not create sessions
// (each would live 12 hours) nor keep their return_to in memory.
func TestAnonymousLoginFloodLeavesNoSessionsAndLittleHeap(t *testing.T) {
	// Not parallel: the heap is measured, and other tests would allocate.
	store := memstore.NewWithCleanupInterval(0)
	a := newConsoleApp(t, appDeps{store: store})
	h := a.routes()
	hugeQuery := "return_to=" + url.QueryEscape("/admin?x="+strings.Repeat("a", 900<<10))

	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	cookies := 0
	for i := range 1000 {
		r := httptest.NewRequest("GET", "/login", nil)
		if i%10 == 0 {
			r.URL.RawQuery = hugeQuery // 900 KB
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("GET /login answered %d", w.Code)
		}
		for _, c := range w.Result().Cookies() {
			if c.Name == a.sessions.Cookie.Name {
				cookies++
			}
		}
	}
	after := heap()
	sessions, err := store.All()
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(after) - int64(before)
	t.Logf("HeapInuse before %.1f MiB, after %.1f MiB (%+.1f MiB); sessions in the store: %d",
		float64(before)/(1<<20), float64(after)/(1<<20), float64(grew)/(1<<20), len(sessions))
	if cookies != 0 {
		t.Errorf("%d anonymous logins set the session cookie, want none", cookies)
	}
	if len(sessions) != 0 {
		t.Errorf("1,000 anonymous logins left %d sessions in the store, want 0", len(sessions))
	}
	if grew > 4<<20 {
		t.Errorf("1,000 anonymous logins grew the heap by %.1f MiB, want at most 4", float64(grew)/(1<<20))
	}
}

// TestOverlongReturnToFallsBackToRoot: a return_to over stepup's 2 KiB
// bound is not carried through the login; the visitor lands on "/".
func TestOverlongReturnToFallsBackToRoot(t *testing.T) {
	t.Parallel()
	app, idp := startConsole(t, devidp.Config{})
	for _, tc := range []struct{ name, returnTo, want string }{
		{"Overlong", "/admin/users?x=" + strings.Repeat("a", 2<<10), "/"},
		{"OtherOrigin", "https://evil.example/", "/"},
		{"LocalPathWithQuery", "/admin/users?sort=name", "/admin/users?sort=name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, func(r *http.Request) bool { return r.URL.Path == "/admin/users" })
			p := c.signIn(idp, c.get(app.URL+"/login?return_to="+url.QueryEscape(tc.returnTo)), "alice")
			got := p.url.RequestURI()
			if p.status/100 == 3 {
				got = p.header.Get("Location")
			}
			if got != tc.want {
				t.Errorf("return_to %.40q: landed on %.60q, want %q", tc.returnTo, got, tc.want)
			}
		})
	}
}

// TestForgedOrStaleLoginCookieIsRefused: the login cookie opens only where
// it was sealed (the same client secret), unaltered, and for ten minutes.
func TestForgedOrStaleLoginCookieIsRefused(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	sealer, _ := newLoginSealer("console-secret", false)
	replica, _ := newLoginSealer("console-secret", false)
	other, _ := newLoginSealer("another-secret", false)
	p := pendingLogin{started: now.Unix(), state: "st", nonce: "no", verifier: "ve", returnTo: "/admin"}
	w := httptest.NewRecorder()
	sealer.set(w, p)
	sealed := w.Result().Cookies()[0].Value
	tampered := []byte(sealed)
	tampered[len(tampered)/2] ^= 1

	for _, tc := range []struct {
		name   string
		sealer *loginSealer
		value  string
		at     time.Time
		ok     bool
	}{
		{"as sealed", sealer, sealed, now.Add(time.Minute), true},
		{"on another replica", replica, sealed, now, true},
		{"ten minutes old", sealer, sealed, now.Add(10 * time.Minute), true},
		{"over ten minutes old", sealer, sealed, now.Add(10*time.Minute + time.Second), false},
		{"from the future", sealer, sealed, now.Add(-2 * time.Minute), false},
		{"another client secret", other, sealed, now, false},
		{"one bit flipped", sealer, string(tampered), now, false},
		{"not base64", sealer, "%%%", now, false},
		{"empty", sealer, "", now, false},
		{"oversized", sealer, strings.Repeat("A", 5<<10), now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/auth/callback", nil)
			r.AddCookie(&http.Cookie{Name: loginCookieName, Value: tc.value})
			w := httptest.NewRecorder()
			got, ok := tc.sealer.take(w, r, tc.at)
			if ok != tc.ok || (ok && got != p) {
				t.Errorf("%s: %+v, %v; want ok=%v", tc.name, got, ok, tc.ok)
			}
			if ck := w.Result().Cookies(); len(ck) != 1 || ck[0].MaxAge >= 0 {
				t.Errorf("%s: the login cookie was not deleted: %v", tc.name, ck)
			}
		})
	}
}

// TestUnauthenticatedUsesTheGuardsNavigationRule: a visitor who is not
// logged in is redirected to /login exactly when stepup.IsNavigation says
// the request can follow a redirect; anything else gets the 401.
func TestUnauthenticatedUsesTheGuardsNavigationRule(t *testing.T) {
	t.Parallel()
	a := newConsoleApp(t, appDeps{})
	h := a.routes()
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		want   int
	}{
		{"HTMLPage", "GET", map[string]string{"Accept": "text/html"}, http.StatusSeeOther},
		{"XHTMLNavigation", "GET", map[string]string{"Accept": "application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}, http.StatusSeeOther},
		{"CORSFetch", "GET", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, http.StatusUnauthorized},
		{"XMLHttpRequest", "GET", map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, http.StatusUnauthorized},
		{"HTMLRefused", "GET", map[string]string{"Accept": "text/html;q=0"}, http.StatusUnauthorized},
		{"AnyType", "GET", map[string]string{"Accept": "*/*"}, http.StatusUnauthorized},
		{"POST", "POST", map[string]string{"Accept": "text/html"}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/admin/users?sort=name", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("%s %v: %d, want %d", tc.method, tc.header, w.Code, tc.want)
			}
			if w.Code == http.StatusSeeOther && w.Header().Get("Location") != "/login?return_to="+url.QueryEscape("/admin/users?sort=name") {
				t.Errorf("%s %v: Location %q", tc.method, tc.header, w.Header().Get("Location"))
			}
		})
	}
}

// loginUntilCallback starts a primary login in a new browser, lets edit
// change the authorization request on its way to the IdP, signs alice in
// and returns the browser and the callback URL the IdP sent it to, not yet
// followed.
func loginUntilCallback(t *testing.T, con *console, edit func(q url.Values)) (*client, *url.URL) {
	t.Helper()
	appURL, _ := url.Parse(con.URL)
	c := newClient(t, func(r *http.Request) bool { return r.URL.Host == appURL.Host })
	raw := newClient(t, func(*http.Request) bool { return true })
	raw.http.Jar = c.http.Jar
	auth := raw.get(con.URL + "/login").location()
	q := auth.Query()
	edit(q)
	auth.RawQuery = q.Encode()
	p := c.signIn(con.idp, c.get(auth.String()), "alice")
	if cb := p.location(); cb.Path != "/auth/callback" {
		t.Fatalf("the IdP did not send the browser to the callback: %d %s", p.status, cb)
	}
	return c, p.location()
}

// TestPrimaryLoginLogsWhyTheIDTokenWasRefused: a substituted nonce and an
// ID token that does not verify are refused with a 403 and logged as what
// they are, never as "ID token: <nil>".
func TestPrimaryLoginLogsWhyTheIDTokenWasRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		now     func() time.Time
		edit    func(q url.Values)
		wantLog string
	}{
		{"substituted nonce", nil, func(q url.Values) { q.Set("nonce", "SUBSTITUTED") }, "primary login refused: the ID token's nonce is not this login's"},
		{"expired ID token", func() time.Time { return time.Now().Add(time.Hour) }, func(url.Values) {}, "primary login refused: the ID token has expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			con := newConsoleApp(t, appDeps{now: tc.now})
			c, cb := loginUntilCallback(t, con, tc.edit)
			if p := c.get(cb.String()); p.status != http.StatusForbidden {
				t.Errorf("callback answered %d, want 403", p.status)
			}
			log := con.stderr.String()
			if !strings.Contains(log, tc.wantLog) || strings.Contains(log, "<nil>") || strings.Contains(log, "SUBSTITUTED") {
				t.Errorf("log:\n%s\nwant a line with %q, and no <nil> or nonce", log, tc.wantLog)
			}
		})
	}
}

// tokenEndpointFault makes the console's HTTP client fail calls to the
// token endpoint in one of several ways; other calls go through.
type tokenEndpointFault struct {
	tokenURL string
	mode     atomic.Value // string: "", "503", "400-html", "network", "timeout"
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (f *tokenEndpointFault) RoundTrip(r *http.Request) (*http.Response, error) {
	mode, _ := f.mode.Load().(string)
	if r.URL.String() != f.tokenURL || mode == "" {
		return http.DefaultTransport.RoundTrip(r)
	}
	answer := func(status int, contentType, body string) (*http.Response, error) {
		return &http.Response{
			StatusCode: status, Header: http.Header{"Content-Type": {contentType}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r,
		}, nil
	}
	switch mode {
	case "503":
		return answer(http.StatusServiceUnavailable, "application/json", `{"error":"temporarily_unavailable"}`)
	case "400-html":
		return answer(http.StatusBadRequest, "text/html", `<h1>Bad Request</h1>`)
	case "timeout":
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: timeoutError{}}
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
}

// TestForgedCodeIsARefusalNotAnUpstreamFailure: the IdP's invalid_grant
// for a forged code (RFC 6749 §5.2) is a refusal, 403; a token endpoint
// that cannot be reached, times out, fails with a 5xx or does not answer
// with an OAuth error is an upstream failure, 502.
func TestForgedCodeIsARefusalNotAnUpstreamFailure(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	fault := &tokenEndpointFault{tokenURL: con.login0.Endpoint.TokenURL}
	con.httpClient.Transport = fault // before any request uses it
	for _, tc := range []struct {
		name    string
		mode    string
		want    int
		wantLog string
	}{
		{"InvalidGrant", "", http.StatusForbidden, "primary login refused: the token endpoint refused the code: invalid_grant"},
		{"ServiceUnavailable", "503", http.StatusBadGateway, "the token endpoint failed: HTTP 503"},
		{"BadRequestInHTML", "400-html", http.StatusBadGateway, "the token endpoint failed: HTTP 400"},
		{"Unreachable", "network", http.StatusBadGateway, "the token endpoint could not be reached"},
		{"TimedOut", "timeout", http.StatusBadGateway, "the token endpoint timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fault.mode.Store(tc.mode)
			c := newClient(t, func(*http.Request) bool { return true })
			state := c.get(con.URL + "/login").location().Query().Get("state")
			p := c.get(con.URL + "/auth/callback?state=" + url.QueryEscape(state) + "&code=bogus")
			if p.status != tc.want {
				t.Errorf("token endpoint %q: callback answered %d, want %d", tc.mode, p.status, tc.want)
			}
			if tc.want == http.StatusForbidden && !strings.Contains(p.body, "The identity provider refused the login.") {
				t.Errorf("token endpoint %q: the page does not say the IdP refused the login:\n%s", tc.mode, p.body)
			}
			if !strings.Contains(con.stderr.String(), tc.wantLog) {
				t.Errorf("token endpoint %q: log lacks %q:\n%s", tc.mode, tc.wantLog, con.stderr)
			}
		})
	}
}

// TestDeniedStatusByReason: a step-up the IdP or the rules refused is a
// 403, a token endpoint that failed a 502, a visitor who is not logged in a
// 401.
func TestDeniedStatusByReason(t *testing.T) {
	t.Parallel()
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	a := &app{pages: pages, logw: io.Discard}
	for reason, want := range map[stepup.Reason]int{
		stepup.ReasonUnauthenticated: http.StatusUnauthorized,
		stepup.ReasonTokenExchange:   http.StatusBadGateway,
		stepup.ReasonTokenRefused:    http.StatusForbidden, // the token endpoint answered an OAuth error
		stepup.ReasonIdPError:        http.StatusForbidden,
		stepup.ReasonNonceMismatch:   http.StatusForbidden,
		stepup.ReasonACRNotSatisfied: http.StatusForbidden,
		stepup.ReasonUnknownState:    http.StatusForbidden,
	} {
		t.Run(string(reason), func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			a.denied(w, httptest.NewRequest("GET", "/stepup/callback", nil), &stepup.Denial{Scope: "admin", Reason: reason})
			if w.Code != want {
				t.Errorf("%s: %d, want %d", reason, w.Code, want)
			}
		})
	}
}
