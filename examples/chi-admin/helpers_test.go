package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// instance is one running console.
type instance struct {
	URL            string
	stdout, stderr *testkit.SyncBuffer
}

// startApp runs the console in-process, as main would, and stops it when
// the test ends.
func startApp(t *testing.T, args ...string) *instance {
	t.Helper()
	return startAppEnv(t, nil, args...)
}

// startAppEnv is startApp with env as the environment.
func startAppEnv(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, in.stdout, in.stderr, func(k string) string { return env[k] }, func(u string) { ready <- u })
	}()
	select {
	case in.URL = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("chi-admin %q did not start: %v\n%s", args, err, in.stderr)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("chi-admin %q did not start in 30s\n%s", args, in.stderr)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("chi-admin stopped with %v", err)
		}
	})
	return in
}

// client is a browser stand-in: a cookie jar, HTML accepted, redirects
// followed unless stop says otherwise.
type client struct {
	t    *testing.T
	http *http.Client
}

func newClient(t *testing.T, stop func(*http.Request) bool) *client {
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, http: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
	c.http.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if stop != nil && stop(req) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

// in returns c for the subtest t: the same browser (cookie jar, redirect
// rule), failing t rather than the test that made c.
func (c *client) in(t *testing.T) *client { return &client{t: t, http: c.http} }

type result struct {
	status int
	url    *url.URL
	body   string
	header http.Header
}

func (c *client) do(method, target string, form url.Values, accept string) result {
	c.t.Helper()
	return c.doWith(method, target, form, http.Header{"Accept": {accept}})
}

// doWith sends a request with the given headers, and a form body when form
// is not nil.
func (c *client) doWith(method, target string, form url.Values, header http.Header) result {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, url: resp.Request.URL, body: string(b), header: resp.Header}
}

func (c *client) get(target string) result { return c.do("GET", target, nil, "text/html") }

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// location is where a redirect that was not followed points, resolved
// against the request's URL.
func (p result) location() *url.URL {
	loc, err := p.url.Parse(p.header.Get("Location"))
	if err != nil || p.header.Get("Location") == "" {
		return &url.URL{}
	}
	return loc
}

// hidden returns a page's hidden form fields.
func (p result) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#43;", "+").Replace(s)
}

var devCodeHintRE = regexp.MustCompile(`<p id="dev-code">Current code for ([^:]+): <code>([0-9]{6})</code></p>`)

// signIn completes the dev IdP's password form on p, and its one-time-code
// form when the IdP asks for one, with the code from idp, or, when idp is
// nil (the console's embedded IdP), from the hint on the page.
func (c *client) signIn(idp *devidp.IdP, p result, user string) result {
	c.t.Helper()
	if !strings.Contains(p.body, `name="step" value="password"`) {
		c.t.Fatalf("not the IdP's sign-in form: %d %s\n%s", p.status, p.url, p.body)
	}
	f := p.hidden()
	f.Set("username", user)
	f.Set("password", devidp.Password)
	p = c.do("POST", p.url.String(), f, "text/html")
	if strings.Contains(p.body, `name="step" value="otp"`) {
		var code string
		var err error
		if idp != nil {
			code, err = idp.Code(user)
		} else if m := devCodeHintRE.FindStringSubmatch(p.body); m != nil && m[1] == user {
			code = m[2]
		} else {
			err = fmt.Errorf("no code for %s on the one-time code page", user)
		}
		if err != nil {
			c.t.Fatal(err)
		}
		f = p.hidden()
		f.Set("otp", code)
		p = c.do("POST", p.url.String(), f, "text/html")
	}
	return p
}

// console is the console built in-process by newConsoleApp.
type console struct {
	*app
	idp    *devidp.IdP
	URL    string // where it serves, on loopback
	stderr *testkit.SyncBuffer
}

// newConsoleApp builds the console in-process on a development IdP the
// test holds, from the same flags as main, and serves it on loopback until
// the test ends. Tests can also call its handler directly. deps.store
// defaults to a memory store, deps.stdout to a buffer; deps.stderr is
// always the returned buffer. "$IDP" in args stands for the IdP's issuer.
func newConsoleApp(t *testing.T, deps appDeps, args ...string) *console {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	idp, err := devidp.Start(devidp.Config{
		Addr: testkit.FreeAddr(t),
		Clients: []stepuptest.Client{{
			ID: "console", Secret: "console-secret", RedirectURIs: []string{base + "/auth/callback", base + "/stepup/callback"},
			BackChannelLogoutURI: base + "/backchannel-logout",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "$IDP", idp.Issuer())
	}
	args = append([]string{
		"-base-url", base, "-issuer", idp.Issuer(), "-client-id", "console", "-client-secret", "console-secret",
		"-acr", devidp.StrongACR,
	}, args...)
	cfg, err := parseConfig(args, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c := &console{idp: idp, URL: base, stderr: &testkit.SyncBuffer{}}
	if deps.store == nil {
		deps.store = memstore.NewWithCleanupInterval(0)
	}
	if deps.stdout == nil {
		deps.stdout = &testkit.SyncBuffer{}
	}
	deps.stderr = c.stderr
	if c.app, err = newApp(cfg, deps); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(c.routes())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return c
}

// stepUp logs a new browser in as user and steps it up, through the IdP's
// forms (idp nil: the console's embedded IdP), and fails the test unless
// it lands on the admin page.
func (c *client) stepUp(idp *devidp.IdP, appURL, user string) {
	c.t.Helper()
	c.signIn(idp, c.get(appURL+"/login"), user) // the primary login
	p := c.signIn(idp, c.get(appURL+"/admin"), user)
	if p.status != http.StatusOK || p.url.String() != appURL+"/admin" || !strings.Contains(p.body, `id="admin-title"`) {
		c.t.Fatalf("%s's step-up ended on %d %s", user, p.status, p.url)
	}
}

// embeddedIdP is the issuer of the embedded development IdP of an instance
// started without -issuer, as it prints it at start.
func embeddedIdP(t *testing.T, in *instance) string {
	t.Helper()
	m := regexp.MustCompile(`development IdP at (http://\S+) `).FindStringSubmatch(in.stderr.String())
	if m == nil {
		t.Fatalf("the console did not print its development IdP:\n%s", in.stderr)
	}
	return m[1]
}

// requireChallenged checks that c's next admin request is challenged: an
// API request gets the RFC 9470 401, a navigation the redirect to the IdP.
func (c *client) requireChallenged(appURL, issuer string) {
	c.t.Helper()
	p := c.do("GET", appURL+"/admin/users", nil, "application/json")
	if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
		c.t.Errorf("an admin API request got %d %q, want the step-up challenge", p.status, p.header.Get("WWW-Authenticate"))
	}
	stop := newClient(c.t, func(*http.Request) bool { return true })
	stop.http.Jar = c.http.Jar
	p = stop.get(appURL + "/admin")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), issuer+"/authorize?") {
		c.t.Errorf("an admin navigation got %d %q, want a redirect to %s/authorize", p.status, p.header.Get("Location"), issuer)
	}
}
