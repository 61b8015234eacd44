package stepup_test

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

func TestCallbackGrantsAndRenewsTheSessionToken(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	before := b.cookie(t)
	if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", r.status)
	}
	if after := b.cookie(t); after == before || after == "" {
		t.Error("the session token was not renewed on elevation (session fixation)")
	}
	if !b.elevated(t) {
		t.Fatal("not elevated after a good callback")
	}
	e := a.audit.latest()
	if e.Type != stepup.EventGranted || e.Subject != "alice" || e.ACR != mfa || e.Bound != stepup.BoundExp || e.Elevation == "" {
		t.Errorf("granted event %+v", e)
	}
}

func TestEntraACRsArrayIsAccepted(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	a.setLogin(stepuptest.Login{ACR: "c1", Claims: map[string]any{"acrs": []string{"c1", mfa}}})
	b := a.loggedIn(t, "alice")
	if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther || !b.elevated(t) {
		t.Fatalf("status %d, elevated %v", r.status, b.elevated(t))
	}
	if e := a.audit.last(t, stepup.EventGranted); e.ACR != mfa {
		t.Errorf("granted acr %q, want the accepted value", e.ACR)
	}
}

// TestMixUpWithoutIssIsRefusedWhenPromised: an IdP whose discovery promises
// RFC 9207 iss must send it.
func TestMixUpWithoutIssIsRefusedWhenPromised(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{issParameter: true})
	b := a.loggedIn(t, "alice")
	u := b.callback(t)
	if u.Query().Get("iss") != a.idp.Issuer() {
		t.Fatalf("the provider sent iss %q", u.Query().Get("iss"))
	}
	delQuery(u, "iss")
	if r := b.peek(t, u.String()); r.status != http.StatusForbidden || a.audit.latest().Reason != stepup.ReasonMissingIssuer {
		t.Fatalf("status %d, reason %s", r.status, a.audit.latest().Reason)
	}
	if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther || !b.elevated(t) {
		t.Fatalf("the honest callback: status %d", r.status)
	}
}

// TestStoreFailureDuringGrantFailsClosed: the session store fails while the
// elevation is being written; nothing is elevated and the failure is
// audited.
func TestStoreFailureDuringGrantFailsClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func(*flakyStore) func()
	}{
		{"Delete (RenewToken)", func(s *flakyStore) func() { s.failDelete.Store(true); return func() { s.failDelete.Store(false) } }},
		{"Commit", func(s *flakyStore) func() { s.failCommit.Store(true); return func() { s.failCommit.Store(false) } }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			errs := make(chan error, 1)
			a := newApp(t, appOptions{config: func(c *stepup.Config) {
				c.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
					select {
					case errs <- err:
					default:
					}
					http.Error(w, "session trouble", 500)
				}
			}})
			b := a.loggedIn(t, "alice")
			u := b.callback(t)
			restore := tc.fail(a.store)
			r := b.peek(t, u.String())
			restore()
			if r.status != 500 || strings.Contains(r.body, "store down") {
				t.Errorf("status %d body %q", r.status, r.body)
			}
			var gotErr error
			select {
			case gotErr = <-errs:
			default:
			}
			if gotErr == nil || !strings.Contains(gotErr.Error(), "store down") {
				t.Errorf("OnError got %v", gotErr)
			}
			if e := a.audit.latest(); e.Type != stepup.EventDenied || e.Reason != stepup.ReasonSessionError {
				t.Errorf("audit %s/%s", e.Type, e.Reason)
			}
			if b.elevated(t) {
				t.Error("elevated after the store failed")
			}
		})
	}
}

// TestAuditNeverLogsSecrets runs a grant, a denial and a challenge through
// the default slog sink and looks for every secret of the flow in the log.
func TestAuditNeverLogsSecrets(t *testing.T) {
	t.Parallel()
	var buf testkit.SyncBuffer
	a := newApp(t, appOptions{config: func(c *stepup.Config) {
		c.Auditor = stepup.SlogAuditor{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	}})
	b := a.loggedIn(t, "alice")
	denied := b.callback(t)
	setQuery(denied, "iss", "https://evil.test")
	b.peek(t, denied.String())
	granted := b.callback(t)
	b.peek(t, granted.String())
	b.elevated(t)
	var secrets []string
	for _, u := range []*url.URL{denied, granted} {
		secrets = append(secrets, u.Query().Get("code"), u.Query().Get("state"))
	}
	for _, r := range a.idp.Requests() {
		secrets = append(secrets, r.Nonce, r.CodeChallenge)
	}
	secrets = append(secrets, b.cookie(t))
	log := buf.String()
	if !strings.Contains(log, `"event":"granted"`) || !strings.Contains(log, `"reason":"issuer_mismatch"`) {
		t.Fatalf("the log lacks the events:\n%s", log)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("the audit log holds the secret %q", s)
		}
	}
}

// TestCodeReplayIsRefused: an authorization code that was already redeemed
// is injected into a new challenge's callback. The IdP refuses it (the
// code is single-use, RFC 6749 §4.1.2), and so does stepup.
func TestCodeReplayIsRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	used := b.callback(t)
	if r := b.peek(t, used.String()); r.status != http.StatusSeeOther {
		t.Fatalf("the first callback: %d", r.status)
	}
	u := b.callback(t)
	setQuery(u, "code", used.Query().Get("code"))
	if r := b.peek(t, u.String()); r.status != http.StatusForbidden || a.audit.latest().Reason != stepup.ReasonTokenRefused || a.audit.latest().IdPError != "invalid_grant" {
		t.Fatalf("replayed code: %d %s (%s), want 403 token_refused (invalid_grant)", r.status, a.audit.latest().Reason, a.audit.latest().IdPError)
	}
}
