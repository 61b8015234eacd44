package main

// Tests of POST /admin/elevations/revoke, the admin page's form that ends
// every elevation of a user with stepup.RevokeSubject.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
)

// revoke posts the revoke form for subject as c, without following the
// redirect, with extra headers.
func (c *client) revoke(appURL, subject string, header http.Header) result {
	c.t.Helper()
	stop := newClient(c.t, func(*http.Request) bool { return true })
	stop.http.Jar = c.http.Jar
	h := http.Header{"Accept": {"text/html"}}
	for k, v := range header {
		h[k] = v
	}
	return stop.doWith("POST", appURL+"/admin/elevations/revoke", url.Values{"subject": {subject}}, h)
}

// aliceAndBob starts a console on a development IdP the test holds, and
// steps up alice and bob, each in a browser of their own.
func aliceAndBob(t *testing.T) (app *instance, idp *devidp.IdP, alice, bob *client) {
	t.Helper()
	app, idp = startConsole(t, devidp.Config{})
	alice, bob = newClient(t, nil), newClient(t, nil)
	alice.stepUp(idp, app.URL, "alice")
	bob.stepUp(idp, app.URL, "bob")
	return app, idp, alice, bob
}

// requireElevated checks that c's admin page answers, elevated.
func (c *client) requireElevated(appURL string) {
	c.t.Helper()
	if p := c.do("GET", appURL+"/admin/ping", nil, "application/json"); p.status != http.StatusOK {
		c.t.Errorf("/admin/ping answered %d, want 200: the elevation should be alive", p.status)
	}
}

// TestRevokeFormEndsAnotherUsersAdminMode: alice, in admin mode, revokes
// bob; bob's next admin request is challenged, alice's elevation lives on.
func TestRevokeFormEndsAnotherUsersAdminMode(t *testing.T) {
	t.Parallel()
	app, idp, alice, bob := aliceAndBob(t)

	page := alice.get(app.URL + "/admin")
	for _, want := range []string{`<form method="post" action="/admin/elevations/revoke" id="revoke-form">`, `id="revoke-subject" name="subject"`, `id="revoke"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the admin page lacks %s", want)
		}
	}
	p := alice.revoke(app.URL, "bob", nil)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/admin" {
		t.Fatalf("revoke: %d %q, want 303 /admin", p.status, p.header.Get("Location"))
	}
	if p := alice.get(app.URL + "/admin"); !strings.Contains(p.body, `id="flash"`) || !strings.Contains(p.body, "Every elevation of bob has ended") {
		t.Errorf("the admin page after the revocation does not say so:\n%s", p.body)
	}
	bob.requireChallenged(app.URL, idp.Issuer())
	alice.requireElevated(app.URL)
	requireAudited(t, app, stepup.EventRevoked, stepup.ReasonRevokedByOperator, "bob")
	requireAudited(t, app, stepup.EventDropped, stepup.ReasonRevokedByOperator, "bob")
}

// TestRevokeFormIsRefusedCrossOrigin: a page of another origin cannot post
// the form with an administrator's elevated session (CSRF).
func TestRevokeFormIsRefusedCrossOrigin(t *testing.T) {
	t.Parallel()
	app, _, alice, bob := aliceAndBob(t)
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": crossSite,
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site": {"same-site"}},
		"foreign Origin":            {"Origin": {"http://evil.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			if p := alice.in(t).revoke(app.URL, "bob", h); p.status != http.StatusForbidden {
				t.Errorf("%s: %d, want 403", name, p.status)
			}
		})
	}
	bob.requireElevated(app.URL)
	if n := len(auditEvents(t, app, stepup.EventRevoked)); n != 0 {
		t.Errorf("%d revoked events after refused posts", n)
	}
}

// TestRevokeFormIsGuarded: a user who is logged in but not in admin mode,
// or a visitor who is not logged in, cannot revoke anyone: the guard
// answers the POST with its 401 challenge.
func TestRevokeFormIsGuarded(t *testing.T) {
	t.Parallel()
	app, idp := startConsole(t, devidp.Config{})
	alice, bob := newClient(t, nil), newClient(t, nil)
	alice.stepUp(idp, app.URL, "alice")
	bob.signIn(idp, bob.get(app.URL+"/login"), "bob") // logged in, not elevated

	if p := bob.revoke(app.URL, "alice", nil); p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
		t.Errorf("a user not in admin mode: %d %q, want the 401 challenge", p.status, p.header.Get("WWW-Authenticate"))
	}
	if p := newClient(t, nil).revoke(app.URL, "alice", nil); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "login_required") {
		t.Errorf("a visitor: %d %s, want 401 login_required", p.status, p.body)
	}
	alice.requireElevated(app.URL)
	if n := len(auditEvents(t, app, stepup.EventRevoked)); n != 0 {
		t.Errorf("%d revoked events after refused posts", n)
	}
}

// TestRevokeFormRefusesABadSubject: a subject stepup could not store, or
// that would display as another (bidi overrides, controls), is a 400.
func TestRevokeFormRefusesABadSubject(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	for _, tc := range []struct{ name, sub string }{
		{"Empty", ""},
		{"Blank", "   "},
		{"BidiOverride", "bob\u202Eecila"},
		{"NUL", "eve\x00"},
		{"LineSeparator", "line\u2028break"},
		{"InvalidUTF8", "bad\xffutf8"},
		{"InvisibleCharacter", "bob\u200d"},
		{"TooLong", strings.Repeat("a", 256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/admin/elevations/revoke", strings.NewReader(url.Values{"subject": {tc.sub}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			con.revokeElevations(w, r)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "A subject is 1 to 255 printable characters.") {
				t.Errorf("subject %q: %d, want 400 and what a subject is\n%s", tc.sub, w.Code, w.Body)
			}
		})
	}
}

// failingUpdates is a memory store whose atomic updates fail while fail is
// set: a session store that went away between two requests.
type failingUpdates struct {
	*memstore.MemStore
	mu   sync.Mutex
	fail atomic.Bool
}

func (s *failingUpdates) Update(_ context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	if s.fail.Load() {
		return errors.New("store unreachable")
	}
	return testkit.UpdateLocked(&s.mu, s.MemStore, token, update)
}

// TestRevokeFormShowsAnErrorPageWhenTheStoreFails: a revocation that could
// not be written is a 500 page saying nothing was revoked, and a
// revocation_failed event to alert on; the user's elevation lives on.
func TestRevokeFormShowsAnErrorPageWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	store := &failingUpdates{MemStore: memstore.NewWithCleanupInterval(0)}
	stdout := &testkit.SyncBuffer{}
	con := newConsoleApp(t, appDeps{store: store, stdout: stdout})
	alice, bob := newClient(t, nil), newClient(t, nil)
	alice.stepUp(con.idp, con.URL, "alice")
	bob.stepUp(con.idp, con.URL, "bob")

	store.fail.Store(true)
	p := alice.revoke(con.URL, "bob", nil)
	if p.status != http.StatusInternalServerError || !strings.Contains(p.body, "nothing was revoked") || strings.Contains(p.body, "store unreachable") {
		t.Errorf("revoke with a failing store: %d\n%s", p.status, p.body)
	}
	if !strings.Contains(stdout.String(), `"type":"revocation_failed"`) {
		t.Errorf("no revocation_failed event:\n%s", stdout)
	}
	store.fail.Store(false)
	bob.requireElevated(con.URL)
}
