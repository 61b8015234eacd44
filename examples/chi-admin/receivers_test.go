package main

// Tests of the IdP's back channel as the console mounts it:
// POST /backchannel-logout and POST /ssf/events, and the -ssf-issuer and
// -ssf-audience flags.

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// post sends body to the console as the IdP would, plus header, and
// returns the answer and how long it took.
func post(t *testing.T, target, contentType, body string, header http.Header) (result, time.Duration) {
	t.Helper()
	req, err := http.NewRequest("POST", target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 20 * time.Second}
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, url: req.URL, body: string(b), header: resp.Header}, time.Since(start)
}

// TestBackChannelRoutesIgnoreCrossOriginProtectionAndTheSessionLock: the
// IdP's posts are authenticated by their signed tokens, not by where they
// come from, and must never wait for a user's session: a logout token and
// a security event are accepted with cross-site headers and with the
// cookie of a session whose lock another request holds.
func TestBackChannelRoutesIgnoreCrossOriginProtectionAndTheSessionLock(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{}, "-ssf-issuer", "$IDP", "-ssf-audience", "urn:chi-admin:test")
	unlock, ok := con.locks.lock(context.Background(), "held-session", true)
	if !ok {
		t.Fatal("could not take the session lock")
	}
	defer unlock()
	hostile := http.Header{
		"Sec-Fetch-Site": {"cross-site"},
		"Origin":         {"http://evil.example"},
		"Cookie":         {"chi_admin_session=held-session"},
	}
	p := con.idp.Provider()
	logout, err := p.LogoutToken("console", stepuptest.LogoutClaims{Subject: "alice", SessionID: "idp-session-1"})
	if err != nil {
		t.Fatal(err)
	}
	res, took := post(t, con.URL+"/backchannel-logout", "application/x-www-form-urlencoded", url.Values{"logout_token": {logout}}.Encode(), hostile)
	if res.status != http.StatusOK || took >= sessionLockWait {
		t.Errorf("/backchannel-logout: %d after %s, want 200 at once\n%s", res.status, took, res.body)
	}
	set, err := p.SecurityEventToken(stepuptest.SecurityEvent{
		Audience: "urn:chi-admin:test", Subject: stepuptest.UserSubject(p.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, took = post(t, con.URL+"/ssf/events", "application/secevent+jwt", set, hostile)
	if res.status != http.StatusAccepted || took >= sessionLockWait {
		t.Errorf("/ssf/events: %d after %s, want 202 at once\n%s", res.status, took, res.body)
	}
	for _, path := range []string{"/backchannel-logout", "/ssf/events"} {
		res, _ := post(t, con.URL+path, "text/plain", "", hostile)
		if res.status != http.StatusBadRequest || res.header.Get("Set-Cookie") != "" {
			t.Errorf("%s with a bad body: %d, Set-Cookie %q: want the handler's 400 and no session", path, res.status, res.header.Get("Set-Cookie"))
		}
	}
}

// TestExternalIssuerWithoutSSFIssuerHasNoReceiver: with -issuer and no
// -ssf-issuer there is no transmitter, and /ssf/events answers 404.
func TestExternalIssuerWithoutSSFIssuerHasNoReceiver(t *testing.T) {
	t.Parallel()
	app, idp := startConsole(t, devidp.Config{})
	p := idp.Provider()
	set, err := p.SecurityEventToken(stepuptest.SecurityEvent{
		Audience: app.URL, Subject: stepuptest.UserSubject(p.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := post(t, app.URL+"/ssf/events", "application/secevent+jwt", set, nil); res.status != http.StatusNotFound {
		t.Errorf("/ssf/events without -ssf-issuer: %d, want 404", res.status)
	}
}

// TestSSFIssuerAndAudienceFromFlagsOrEnvironment: -ssf-issuer (or
// STEPUP_SSF_ISSUER) starts the receiver for that transmitter, and only
// security events naming -ssf-audience (or STEPUP_SSF_AUDIENCE), else the
// base URL, are accepted; the command line wins over the environment.
func TestSSFIssuerAndAudienceFromFlagsOrEnvironment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		audience string // "" means the base URL
	}{
		{name: "flags", args: []string{"-ssf-issuer", "$ISSUER", "-ssf-audience", "urn:from-flag"}, audience: "urn:from-flag"},
		{name: "environment", env: map[string]string{"STEPUP_SSF_ISSUER": "$ISSUER", "STEPUP_SSF_AUDIENCE": "urn:from-env"}, audience: "urn:from-env"},
		{name: "flag over environment", args: []string{"-ssf-audience", "urn:from-flag"},
			env: map[string]string{"STEPUP_SSF_ISSUER": "$ISSUER", "STEPUP_SSF_AUDIENCE": "urn:from-env"}, audience: "urn:from-flag"},
		{name: "audience defaults to the base URL", args: []string{"-ssf-issuer", "$ISSUER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idp, err := devidp.Start(devidp.Config{Addr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { idp.Close() })
			args := []string{"-addr", "127.0.0.1:0", "-issuer", idp.Issuer(), "-client-id", "console", "-client-secret", "s", "-acr", devidp.StrongACR}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "$ISSUER", idp.Issuer()))
			}
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = strings.ReplaceAll(v, "$ISSUER", idp.Issuer())
			}
			in := startAppEnv(t, env, args...)
			audience := tc.audience
			if audience == "" {
				audience = in.URL
			}
			p := idp.Provider()
			for _, aud := range []string{"urn:someone-else", audience} {
				set, err := p.SecurityEventToken(stepuptest.SecurityEvent{
					Audience: aud, Subject: stepuptest.UserSubject(p.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange,
				})
				if err != nil {
					t.Fatal(err)
				}
				res, _ := post(t, in.URL+"/ssf/events", "application/secevent+jwt", set, nil)
				want, wantBody := http.StatusAccepted, ""
				if aud != audience {
					want, wantBody = http.StatusBadRequest, `"err":"invalid_audience"`
				}
				if res.status != want || !strings.Contains(res.body, wantBody) {
					t.Errorf("a SET for %s: %d %s, want %d %s", aud, res.status, res.body, want, wantBody)
				}
			}
			requireAudited(t, in, stepup.EventRevoked, stepup.ReasonCredentialChange, "alice")
		})
	}
}

func TestSSFFlagsFallBackToEnvironment(t *testing.T) {
	t.Parallel()
	c := parseWithEnv(t, []string{"-base-url", "https://console.example/", "-issuer", "https://idp.example", "-client-id", "c", "-acr", "a"},
		map[string]string{"STEPUP_SSF_ISSUER": "https://ssf.example"})
	if c.ssfIssuer != "https://ssf.example" || c.ssfAudience != "" || c.signalsAudience() != "https://console.example" {
		t.Errorf("ssf issuer %q, audience %q (%q), want the environment's issuer and the base URL", c.ssfIssuer, c.ssfAudience, c.signalsAudience())
	}
	c = parseWithEnv(t, []string{"-ssf-audience", "urn:flag"}, map[string]string{"STEPUP_SSF_AUDIENCE": "urn:env"})
	if c.signalsAudience() != "urn:flag" {
		t.Errorf("audience %q, want the flag's", c.signalsAudience())
	}
}

func TestHelpNamesSSFFlagsAndBackChannelRoutes(t *testing.T) {
	t.Parallel()
	requireHelpMentions(t,
		"/backchannel-logout", "/ssf/events", "/admin/elevations/revoke", "/elevation",
		"-ssf-issuer (env STEPUP_SSF_ISSUER)", "-ssf-audience (env STEPUP_SSF_AUDIENCE)",
	)
}

// TestUnreachableSSFIssuerFailsAtStart: the transmitter's configuration
// is fetched once, at start; a console that cannot reach it does not
// start, rather than refuse every event later.
func TestUnreachableSSFIssuerFailsAtStart(t *testing.T) {
	t.Parallel()
	idp, err := devidp.Start(devidp.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	cfg := parseWithEnv(t, []string{"-issuer", idp.Issuer(), "-client-id", "c", "-acr", "a", "-ssf-issuer", "http://127.0.0.1:9"}, nil)
	_, err = newApp(cfg, appDeps{store: memstore.New(), stdout: &strings.Builder{}, stderr: &strings.Builder{}})
	if err == nil || !strings.Contains(err.Error(), "SharedSignals") {
		t.Errorf("newApp with an unreachable -ssf-issuer: %v", err)
	}
}
