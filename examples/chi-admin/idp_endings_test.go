package main

// Tests of the ways the IdP ends admin mode, driven from the embedded
// development IdP's account page as a user would: "Sign out everywhere"
// (OIDC Back-Channel Logout to /backchannel-logout), "Reset my one-time
// code" (CAEP credential-change to /ssf/events) and "Lock account" (CAEP
// session-revoked).

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup"
)

// startWithEmbeddedIdP runs the console as `go run ./examples/chi-admin`
// does, on its embedded development IdP, and returns the IdP's issuer.
func startWithEmbeddedIdP(t *testing.T, extra ...string) (*instance, string) {
	t.Helper()
	in := startApp(t, append([]string{"-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0"}, extra...)...)
	return in, embeddedIdP(t, in)
}

// accountAction posts one of the dev IdP's account forms ("signout",
// "reset-code", "lock", "unlock") with c's IdP session, as its page does,
// and returns the page it answers.
func (c *client) accountAction(issuer, step string) result {
	c.t.Helper()
	page := c.get(issuer + "/login")
	if !strings.Contains(page.body, `id="account-user"`) {
		c.t.Fatalf("the IdP's account page does not show a signed-in user: %d\n%s", page.status, page.body)
	}
	return c.do("POST", issuer+"/login", url.Values{"step": {step}}, "text/html")
}

// requireAudited checks that in audited an event of type typ with reason
// for subject, and returns the first.
func requireAudited(t *testing.T, in *instance, typ stepup.EventType, reason stepup.Reason, subject string) stepup.Event {
	t.Helper()
	for _, e := range auditEvents(t, in, typ) {
		if e.Reason == reason && e.Subject == subject {
			return e
		}
	}
	t.Errorf("no %s event with reason %s for %s:\n%s", typ, reason, subject, in.stdout)
	return stepup.Event{}
}

// elevated reads GET /elevation, the card's poll, for c.
func (c *client) elevated(appURL string) bool {
	c.t.Helper()
	p := c.do("GET", appURL+"/elevation", nil, "application/json")
	var st struct{ Elevated bool }
	if p.status != http.StatusOK || p.header.Get("Cache-Control") != "no-store" || json.Unmarshal([]byte(p.body), &st) != nil {
		c.t.Fatalf("GET /elevation: %d %q %s", p.status, p.header.Get("Cache-Control"), p.body)
	}
	return st.Elevated
}

// TestSignOutEverywhereAtTheDevIdPEndsAdminMode: the dev IdP sends a
// logout token to the console's /backchannel-logout, which ends the
// elevation from that IdP session: the next guarded request is challenged
// and audited as dropped with reason backchannel_logout. The console's own
// login stays (the example's choice, see the README).
func TestSignOutEverywhereAtTheDevIdPEndsAdminMode(t *testing.T) {
	in, issuer := startWithEmbeddedIdP(t)
	c := newClient(t, nil)
	c.stepUp(nil, in.URL, "alice")
	if !c.elevated(in.URL) {
		t.Fatal("GET /elevation says not elevated right after the step-up")
	}

	p := c.accountAction(issuer, "signout")
	if !strings.Contains(p.body, "Logout token to chi-admin: 200 OK.") {
		t.Fatalf("the IdP's page after Sign out everywhere:\n%s", p.body)
	}
	if c.elevated(in.URL) {
		t.Error("GET /elevation still says elevated after the logout")
	}
	c.requireChallenged(in.URL, issuer)
	granted := requireAudited(t, in, stepup.EventGranted, "", "alice")
	revoked := requireAudited(t, in, stepup.EventRevoked, stepup.ReasonBackChannelLogout, "alice")
	if revoked.SID == "" || revoked.TokenID == "" || revoked.Route != "/backchannel-logout" {
		t.Errorf("revoked event %+v: want the logout token's sid and jti, on /backchannel-logout", revoked)
	}
	if dropped := requireAudited(t, in, stepup.EventDropped, stepup.ReasonBackChannelLogout, "alice"); dropped.Elevation != granted.Elevation {
		t.Errorf("dropped elevation %q, want the granted %q", dropped.Elevation, granted.Elevation)
	}

	// The console's login stays: the dashboard still knows alice.
	if p := c.get(in.URL + "/"); !strings.Contains(p.body, `<span id="user">Signed in as <strong>alice</strong>`) {
		t.Errorf("after the logout token the dashboard says:\n%s", p.body)
	}
}

// TestResetOneTimeCodeAtTheDevIdPEndsAdminModeByCredentialChange: the dev
// IdP pushes CAEP credential-change for the user to /ssf/events, with the
// console's base URL as the audience; every elevation of the user ends.
func TestResetOneTimeCodeAtTheDevIdPEndsAdminModeByCredentialChange(t *testing.T) {
	in, issuer := startWithEmbeddedIdP(t)
	c := newClient(t, nil)
	c.stepUp(nil, in.URL, "alice")
	other := newClient(t, nil) // alice on a second device
	other.stepUp(nil, in.URL, "alice")

	p := c.accountAction(issuer, "reset-code")
	if !strings.Contains(p.body, "credential-change event to "+in.URL+"/ssf/events: 202 Accepted.") {
		t.Fatalf("the IdP's page after Reset my one-time code:\n%s", p.body)
	}
	for _, device := range []*client{c, other} {
		device.requireChallenged(in.URL, issuer)
	}
	if e := requireAudited(t, in, stepup.EventRevoked, stepup.ReasonCredentialChange, "alice"); e.TokenID == "" || e.Route != "/ssf/events" {
		t.Errorf("revoked event %+v: want the SET's jti, on /ssf/events", e)
	}
	n := 0
	for _, e := range auditEvents(t, in, stepup.EventDropped) {
		if e.Reason == stepup.ReasonCredentialChange && e.Subject == "alice" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d elevations dropped for credential_change, want both devices'", n)
	}
}

// TestLockAccountAtTheDevIdPEndsAdminModeAndBlocksLogin: the dev IdP
// pushes CAEP session-revoked for the user and refuses their sign-ins, so
// admin mode ends and cannot be entered again until the account is
// unlocked.
func TestLockAccountAtTheDevIdPEndsAdminModeAndBlocksLogin(t *testing.T) {
	in, issuer := startWithEmbeddedIdP(t)
	c := newClient(t, nil)
	c.stepUp(nil, in.URL, "alice")

	p := c.accountAction(issuer, "lock")
	if !strings.Contains(p.body, "session-revoked event to "+in.URL+"/ssf/events: 202 Accepted.") {
		t.Fatalf("the IdP's page after Lock account:\n%s", p.body)
	}
	c.requireChallenged(in.URL, issuer)
	requireAudited(t, in, stepup.EventRevoked, stepup.ReasonSessionRevoked, "alice")
	requireAudited(t, in, stepup.EventDropped, stepup.ReasonSessionRevoked, "alice")

	// The step-up is refused at the IdP, and so is a new browser's login.
	for _, who := range []struct {
		c    *client
		path string
	}{{c, "/admin"}, {newClient(t, nil), "/login"}} {
		page := who.c.get(in.URL + who.path)
		f := page.hidden()
		f.Set("username", "alice")
		f.Set("password", devidp.Password)
		p := who.c.do("POST", page.url.String(), f, "text/html")
		if sameOrigin(p.url.String(), in.URL) || !strings.Contains(p.body, "This account is locked.") {
			t.Errorf("a locked sign-in from %s ended on %d %s:\n%s", who.path, p.status, p.url, p.body)
		}
	}
	if n := len(auditEvents(t, in, stepup.EventGranted)); n != 1 {
		t.Errorf("%d granted events, want the one before the lock", n)
	}

	// Unlocked, alice steps up again. A login in the same second as the
	// lock would still be covered by it (the IdP's instants are whole
	// seconds, and a login not after the event is covered), as a user
	// cannot click that fast.
	c.accountAction(issuer, "unlock")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	if p := c.signIn(nil, c.get(in.URL+"/admin"), "alice"); p.status != http.StatusOK || !strings.Contains(p.body, `id="admin-title"`) {
		t.Errorf("the step-up after unlocking ended on %d %s", p.status, p.url)
	}
}
