package main

import (
	"context"
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
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, in.stdout, in.stderr, func(string) string { return "" }, func(u string) { ready <- u })
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

// signIn completes the dev IdP's password form on p, and its one-time-code
// form when the IdP asks for one.
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
		code, err := idp.Code(user)
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
// always the returned buffer.
func newConsoleApp(t *testing.T, deps appDeps, args ...string) *console {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	idp, err := devidp.Start(devidp.Config{
		Addr:    testkit.FreeAddr(t),
		Clients: []stepuptest.Client{{ID: "console", Secret: "console-secret", RedirectURIs: []string{base + "/auth/callback", base + "/stepup/callback"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
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
