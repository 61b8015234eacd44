package stepup_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// These tests run real grants under each scope policy knob, and the callback
// checks that depend on them, against the in-process provider.

// maxClaimLen is stepup's maxField: the most bytes of one claim value it
// stores in the session.
const maxClaimLen = 1024

func TestScopePoliciesSetTheDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		scope stepup.Scope
		login stepuptest.Login
		bound stepup.Bound
		after time.Duration // deadline - grant time
	}{
		{"LifetimeCapsALongIDToken", stepup.Scope{ACR: []string{mfa}, Lifetime: 2 * time.Minute},
			stepuptest.Login{IDTokenLifetime: time.Hour}, stepup.BoundLifetime, 2 * time.Minute},
		{"MaxAgeCountsFromAuthTime", stepup.Scope{ACR: []string{mfa}, MaxAge: 3 * time.Minute, PromptLogin: true},
			stepuptest.Login{IDTokenLifetime: time.Hour}, stepup.BoundMaxAge, 3 * time.Minute},
		{"IgnoreIDTokenExpiryOutlivesAShortToken", stepup.Scope{ACR: []string{mfa}, Lifetime: 20 * time.Minute, IgnoreIDTokenExpiry: true},
			stepuptest.Login{IDTokenLifetime: 2 * time.Minute}, stepup.BoundLifetime, 20 * time.Minute},
		{"SessionExpiryBeatsTheCap", stepup.Scope{ACR: []string{mfa}, Lifetime: 20 * time.Minute},
			stepuptest.Login{IDTokenLifetime: time.Hour, SessionExpiry: time.Now().Add(10 * time.Minute)}, stepup.BoundSessionExpiry, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, appOptions{config: func(c *stepup.Config) { c.Scopes = map[string]stepup.Scope{"admin": tc.scope} }})
			a.setLogin(tc.login) // auth_time: the application's clock, which does not move
			b := a.loggedIn(t, "alice")
			if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther {
				t.Fatalf("status %d (%s)", r.status, a.audit.latest().Reason)
			}
			e := a.audit.latest()
			if e.Type != stepup.EventGranted || e.Bound != tc.bound {
				t.Fatalf("event %s, bound %s; want granted, %s", e.Type, e.Bound, tc.bound)
			}
			if tc.after > 0 {
				if got := e.Deadline.Sub(a.clock.Now()); got < tc.after-2*time.Second || got > tc.after {
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
	a := newApp(t, appOptions{config: func(c *stepup.Config) {
		c.Scopes = map[string]stepup.Scope{"admin": {ACR: []string{mfa}, MaxAge: time.Minute, PromptLogin: true}}
	}})
	a.setLogin(stepuptest.Login{IDTokenLifetime: time.Hour})
	b := a.loggedIn(t, "alice")
	u := b.callback(t)
	a.clock.Advance(90 * time.Second)
	if r := b.peek(t, u.String()); r.status != http.StatusForbidden || a.audit.latest().Reason != stepup.ReasonStaleAuthTime {
		t.Fatalf("status %d, reason %s; want 403 stale_auth_time", r.status, a.audit.latest().Reason)
	}
}

func TestRequireIssParameterWithoutDiscoveryPromise(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{config: func(c *stepup.Config) { c.RequireIssParameter = true }})
	b := a.loggedIn(t, "alice")
	u := b.callback(t)
	if u.Query().Has("iss") {
		t.Fatal("this provider is not supposed to send iss")
	}
	if r := b.peek(t, u.String()); r.status != http.StatusForbidden || a.audit.latest().Reason != stepup.ReasonMissingIssuer {
		t.Fatalf("status %d, reason %s; want 403 missing_iss", r.status, a.audit.latest().Reason)
	}
}

// TestCodeIssuedToAnotherClientIsRefused: a code the IdP issued to another
// relying party is injected into this app's callback.
func TestCodeIssuedToAnotherClientIsRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	// The other relying party is a second client of the same provider.
	other := stepuptest.Client{ID: "other", Secret: "other-secret", RedirectURIs: []string{"http://127.0.0.1:9/stepup/callback"}}
	a.idp.AddClient(other)
	rp, err := stepuptest.NewRP(t.Context(), a.idp.Issuer(), other, &http.Client{Transport: a.tr, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stolen, _, err := rp.Browse(t.Context(), rp.Start().AuthURL)
	if err != nil || stolen.Query().Get("code") == "" {
		t.Fatalf("the other client got no code: %v %v", stolen, err)
	}
	b := a.loggedIn(t, "alice")
	u := b.callback(t)
	setQuery(u, "code", stolen.Query().Get("code"))
	if r := b.peek(t, u.String()); r.status != http.StatusForbidden || a.audit.latest().Reason != stepup.ReasonTokenRefused || a.audit.latest().IdPError != "invalid_grant" {
		t.Fatalf("status %d, reason %s (%s); want 403 token_refused (invalid_grant)", r.status, a.audit.latest().Reason, a.audit.latest().IdPError)
	}
	if b.elevated(t) {
		t.Fatal("elevated with another client's code")
	}
}

func TestGrantResponseIsNotCachedAndSendsNoReferrer(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	r := b.peek(t, b.callback(t).String())
	if r.status != http.StatusSeeOther || r.header.Get("Cache-Control") != "no-store" || r.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("grant: %d, Cache-Control %q, Referrer-Policy %q", r.status, r.header.Get("Cache-Control"), r.header.Get("Referrer-Policy"))
	}
}
