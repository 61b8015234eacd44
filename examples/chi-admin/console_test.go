package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// startConsole runs one console (memory store) on a development IdP the
// test holds, so that it can read the one-time codes.
func startConsole(t *testing.T, idpCfg devidp.Config, extra ...string) (*instance, *devidp.IdP) {
	t.Helper()
	addr := testkit.FreeAddr(t)
	base := "http://" + addr
	idpCfg.Addr = testkit.FreeAddr(t)
	idpCfg.Clients = []stepuptest.Client{{
		ID: "console", Secret: "console-secret", RedirectURIs: []string{base + "/auth/callback", base + "/stepup/callback"},
		BackChannelLogoutURI: base + "/backchannel-logout",
	}}
	idp, err := devidp.Start(idpCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	args := append([]string{
		"-addr", addr, "-issuer", idp.Issuer(), "-client-id", "console", "-client-secret", "console-secret",
		"-acr", devidp.StrongACR,
	}, extra...)
	return startApp(t, args...), idp
}

// TestVisitorIsSentThroughLoginAndLandsOnTheAdminPage: a visitor who is
// not logged in opens /admin/users, logs in at normal strength, steps up
// with the one-time code, and lands on the page they asked for, which
// shows the elevation and the bound that set its deadline.
func TestVisitorIsSentThroughLoginAndLandsOnTheAdminPage(t *testing.T) {
	app, idp := startConsole(t, devidp.Config{SessionExpiry: 2 * time.Minute})
	c := newClient(t, nil)

	p := c.get(app.URL + "/admin/users?sort=name")
	if !strings.Contains(p.body, `value="password"`) {
		t.Fatalf("not sent to the IdP's sign-in form: %d %s", p.status, p.url)
	}
	p = c.signIn(idp, p, "alice") // the primary login, at normal strength: no code
	// The admin scope asks for a fresh login (max_age=0) at the strong acr:
	// the password again, then the one-time code.
	if !strings.Contains(p.body, `value="password"`) {
		t.Fatalf("the step-up did not ask to sign in again: %d %s", p.status, p.url)
	}
	f := p.hidden()
	f.Set("username", "alice")
	f.Set("password", devidp.Password)
	p = c.do("POST", p.url.String(), f, "text/html")
	if !strings.Contains(p.body, `value="otp"`) {
		t.Fatalf("the step-up did not ask for the one-time code: %d %s", p.status, p.url)
	}
	f = p.hidden()
	code, _ := idp.Code("alice")
	f.Set("otp", code)
	p = c.do("POST", p.url.String(), f, "text/html")
	if p.status != 200 || p.url.Path != "/admin/users" || p.url.RawQuery != "sort=name" {
		t.Fatalf("landed on %d %s, want /admin/users?sort=name", p.status, p.url)
	}
	for _, want := range []string{`id="acr">` + devidp.StrongACR, `id="amr">pwd, otp`, `id="bound">session_expiry`, `id="countdown"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the admin page lacks %q", want)
		}
	}

	// The users form is guarded too, and works while elevated.
	p = c.do("POST", app.URL+"/admin/users", url.Values{"name": {"carol"}}, "text/html")
	if p.status != 200 || !strings.Contains(p.body, `<span class="user-name">carol</span>`) {
		t.Errorf("adding a user: %d %s", p.status, p.url)
	}

	// Ending admin mode: the next admin request is challenged again.
	c.do("POST", app.URL+"/stepup/drop", url.Values{}, "text/html")
	if p := c.do("GET", app.URL+"/admin", nil, "application/json"); p.status != http.StatusUnauthorized {
		t.Errorf("after Drop /admin answered %d", p.status)
	}
	for _, typ := range []stepup.EventType{stepup.EventChallenge, stepup.EventGranted, stepup.EventDropped} {
		if len(auditEvents(t, app, typ)) == 0 {
			t.Errorf("no %s event on standard output", typ)
		}
	}

	// Logging out ends the session: admin pages send the visitor to /login.
	c.do("POST", app.URL+"/logout", url.Values{}, "text/html")
	stop := newClient(t, func(*http.Request) bool { return true })
	stop.http.Jar = c.http.Jar
	if p := stop.get(app.URL + "/admin"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/login?") {
		t.Errorf("after logout /admin answered %d %q", p.status, p.header.Get("Location"))
	}
}

// crossSite is what a browser sends with a form another site posts.
var crossSite = http.Header{"Sec-Fetch-Site": {"cross-site"}}

// TestCrossSiteFormPostIsRefused: the console's forms are protected by
// http.CrossOriginProtection.
func TestCrossSiteFormPostIsRefused(t *testing.T) {
	app, _ := startConsole(t, devidp.Config{})
	p := newClient(t, nil).doWith("POST", app.URL+"/logout", url.Values{}, crossSite)
	if p.status != http.StatusForbidden {
		t.Errorf("a cross-site POST got %d, want 403", p.status)
	}
}

// TestAuditPageListsEvents checks /admin/audit renders the events of the
// instance, escaped.
func TestAuditPageListsEvents(t *testing.T) {
	app, idp := startConsole(t, devidp.Config{})
	c := newClient(t, nil)
	p := c.signIn(idp, c.get(app.URL+"/login"), "alice")
	p = c.signIn(idp, c.get(app.URL+"/admin/audit"), "alice")
	if p.status != 200 || !strings.Contains(p.body, `<table id="audit">`) {
		t.Fatalf("audit page: %d %s", p.status, p.url)
	}
	for _, want := range []string{"<td>challenge</td>", "<td>granted</td>", devidp.StrongACR} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the audit page lacks %q", want)
		}
	}
}

// TestCrossSiteGuardedFormIsRefused: a cross-site page cannot post the
// guarded users form with the victim's elevated session.
func TestCrossSiteGuardedFormIsRefused(t *testing.T) {
	app, idp := startConsole(t, devidp.Config{})
	c := newClient(t, nil)
	c.signIn(idp, c.get(app.URL+"/login"), "alice")
	if p := c.signIn(idp, c.get(app.URL+"/admin/users"), "alice"); p.status != 200 {
		t.Fatalf("step-up: %d %s", p.status, p.url)
	}
	if p := c.doWith("POST", app.URL+"/admin/users", url.Values{"name": {"mallory"}}, crossSite); p.status != http.StatusForbidden {
		t.Fatalf("a cross-site POST of the guarded form got %d, want 403", p.status)
	}
	if p := c.get(app.URL + "/admin/users"); strings.Contains(p.body, "mallory") {
		t.Error("the cross-site POST added a user")
	}
}

// TestForgedRequestIDStaysOutOfTheAuditLog: chi's RequestID middleware
// would trust an inbound X-Request-Id verbatim; the console drops it.
func TestForgedRequestIDStaysOutOfTheAuditLog(t *testing.T) {
	app, idp := startConsole(t, devidp.Config{})
	c := newClient(t, nil)
	c.signIn(idp, c.get(app.URL+"/login"), "alice") // logged in, not elevated
	req, _ := http.NewRequest("GET", app.URL+"/admin", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", "forged-request-id")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(auditEvents(t, app, stepup.EventChallenge)) != 1 {
		t.Fatalf("want one audited 401 challenge, got %d", resp.StatusCode)
	}
	if strings.Contains(app.stdout.String(), "forged") {
		t.Errorf("a client-supplied request id reached the audit log:\n%s", app.stdout)
	}
}

// TestSessionCookieAttributes: /login sets only the short-lived login
// cookie, scoped to the callback; the callback clears it and sets the
// session cookie. Both are HttpOnly and SameSite=Lax.
func TestSessionCookieAttributes(t *testing.T) {
	app, idp := startConsole(t, devidp.Config{})
	appURL, _ := url.Parse(app.URL)
	c := newClient(t, func(*http.Request) bool { return true }) // every redirect by hand
	// toApp follows redirects until the next one points back at the console.
	toApp := func(p result) result {
		for p.status/100 == 3 && p.location().Host != appURL.Host {
			p = c.get(p.location().String())
		}
		return p
	}
	cookies := func(p result) map[string]*http.Cookie {
		out := map[string]*http.Cookie{}
		for _, ck := range (&http.Response{Header: p.header}).Cookies() {
			out[ck.Name] = ck
		}
		return out
	}

	p := c.get(app.URL + "/login")
	set := cookies(p)
	if _, ok := set["chi_admin_session"]; ok {
		t.Errorf("/login set the session cookie: an anonymous visitor must not get a session")
	}
	if ck := set[loginCookieName]; ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/auth/callback" ||
		ck.MaxAge != 600 || ck.Secure {
		t.Errorf("login cookie %+v: want HttpOnly, SameSite=Lax, Path=/auth/callback, Max-Age=600, not Secure on http", ck)
	}

	p = toApp(c.signIn(idp, toApp(c.get(p.location().String())), "alice"))
	if p.location().Path != "/auth/callback" {
		t.Fatalf("the IdP did not send the browser to the callback: %d %s", p.status, p.location())
	}
	p = c.get(p.location().String())
	set = cookies(p)
	if ck := set["chi_admin_session"]; ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/", ck)
	}
	if ck := set[loginCookieName]; ck == nil || ck.MaxAge >= 0 || ck.Path != "/auth/callback" {
		t.Errorf("the callback did not delete the login cookie: %+v", ck)
	}
}

// TestAuditPageEscapesMarkup: event fields come from the IdP and the
// request; the audit page must render them as text.
func TestAuditPageEscapesMarkup(t *testing.T) {
	t.Parallel()
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	evil := "<script>alert(1)</script>"
	err = pages["audit"].ExecuteTemplate(&b, "layout", page{Title: "Audit", Data: []stepup.Event{{
		Type: stepup.EventDenied, Subject: evil, ACR: evil, Reason: stepup.Reason(evil), Route: evil,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), evil) || !strings.Contains(b.String(), "&lt;script&gt;") {
		t.Errorf("the audit page does not escape event fields:\n%s", b.String())
	}
}
