package stepup

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// callbackCase is one way a callback can be wrong. Each is named after the
// attack or failure it stands for.
type callbackCase struct {
	name   string
	login  stepuptest.Login                              // what the IdP asserts
	claims func(h *flowHarness, c map[string]any)        // rewrites the ID token's claims, re-signed by the IdP
	token  func(h *flowHarness, c map[string]any) string // replaces the ID token outright
	tamper func(h *flowHarness, u *url.URL)              // changes the callback URL before delivery
	reason Reason
	status int  // default 403
	orphan bool // the callback names no challenge of this session, so none is consumed
}

func setQuery(u *url.URL, k, v string) {
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
}

func delQuery(u *url.URL, k string) {
	q := u.Query()
	q.Del(k)
	u.RawQuery = q.Encode()
}

// otherBrowser runs a challenge in a second browser session (another user
// agent, logged in as alice too) and returns its undelivered callback.
func otherBrowser(h *flowHarness) *url.URL {
	jar, _ := cookiejar.New(nil)
	saved := h.browser
	defer func() { h.browser = saved }()
	h.browser = &http.Client{Jar: jar, CheckRedirect: saved.CheckRedirect}
	h.get("/login-as?user=alice")
	return h.callbackURL()
}

func in(d time.Duration, h *flowHarness) float64 { return float64(h.clock.Now().Add(d).Unix()) }

var callbackCases = []callbackCase{
	{name: "IdPErrorAccessDenied", login: stepuptest.Login{Error: "access_denied"}, reason: ReasonIdPError},
	{name: "IdPErrorUnmetAuthenticationRequirements", login: stepuptest.Login{Error: "unmet_authentication_requirements"}, reason: ReasonIdPError},
	{name: "ForgedIdPErrorWithoutState", orphan: true, tamper: func(h *flowHarness, u *url.URL) { u.RawQuery = "error=access_denied" }, reason: ReasonUnknownState},
	{name: "ForgedIdPErrorFromAnotherIssuer", login: stepuptest.Login{Error: "access_denied"}, tamper: func(h *flowHarness, u *url.URL) { setQuery(u, "iss", "https://evil.test") }, reason: ReasonIssuerMismatch},
	{name: "LoginCSRFWithoutState", tamper: func(h *flowHarness, u *url.URL) { delQuery(u, "state") }, orphan: true, reason: ReasonUnknownState},
	{name: "LoginCSRFWithForgedState", tamper: func(h *flowHarness, u *url.URL) { setQuery(u, "state", "AAAAAAAAAAAAAAAAAAAAAAAAAA") }, orphan: true, reason: ReasonUnknownState},
	{name: "CallbackCSRFFromAnotherSession", tamper: func(h *flowHarness, u *url.URL) { *u = *otherBrowser(h) }, orphan: true, reason: ReasonUnknownState},
	{name: "ChallengeLeftOpenTooLong", tamper: func(h *flowHarness, u *url.URL) { h.clock.Advance(challengeTTL) }, reason: ReasonChallengeExpired},
	{name: "MixUpWithAnotherIssuer", tamper: func(h *flowHarness, u *url.URL) { setQuery(u, "iss", "https://evil.test") }, reason: ReasonIssuerMismatch},
	{name: "MissingCode", tamper: func(h *flowHarness, u *url.URL) { delQuery(u, "code") }, reason: ReasonMissingCode},
	{name: "ForgedCode", tamper: func(h *flowHarness, u *url.URL) { setQuery(u, "code", "forged") }, reason: ReasonTokenRefused},
	{name: "CodeInjectionStoppedByPKCE", tamper: func(h *flowHarness, u *url.URL) {
		stolen := otherBrowser(h) // the attacker's own code, injected into the victim's callback
		setQuery(u, "code", stolen.Query().Get("code"))
	}, reason: ReasonTokenRefused},
	{name: "TokenResponseWithoutIDToken", token: func(*flowHarness, map[string]any) string { return "" }, reason: ReasonMissingIDToken},
	{name: "AlgNone", token: func(h *flowHarness, c map[string]any) string { return unsignedJWT(c) }, reason: ReasonInvalidIDToken},
	{name: "AlgConfusionHS256WithRSAPublicKey", token: func(h *flowHarness, c map[string]any) string { return hmacWithPublicKey(h.t, h.idp, c) }, reason: ReasonInvalidIDToken},
	{name: "TamperedSignature", token: func(h *flowHarness, c map[string]any) string {
		signed, _ := h.idp.Sign(c)
		c["acr"] = "urn:test:mfa-but-forged"
		forged := unsignedJWT(c)
		parts, fparts := strings.Split(signed, "."), strings.Split(forged, ".")
		return parts[0] + "." + fparts[1] + "." + parts[2]
	}, reason: ReasonInvalidIDToken},
	{name: "TokenFromAnotherIssuer", claims: func(h *flowHarness, c map[string]any) { c["iss"] = "https://evil.test" }, reason: ReasonInvalidIDToken},
	{name: "TokenForAnotherAudience", claims: func(h *flowHarness, c map[string]any) { c["aud"] = []string{"other-app"} }, reason: ReasonInvalidIDToken},
	{name: "ExpiredIDToken", claims: func(h *flowHarness, c map[string]any) { c["exp"] = in(-time.Minute, h) }, reason: ReasonInvalidIDToken},
	{name: "NotYetValidToken", claims: func(h *flowHarness, c map[string]any) { c["nbf"] = in(10*time.Minute, h) }, reason: ReasonInvalidIDToken},
	{name: "TokenSubstitutionWrongNonce", claims: func(h *flowHarness, c map[string]any) { c["nonce"] = "another-challenges-nonce" }, reason: ReasonNonceMismatch},
	{name: "TokenSubstitutionNoNonce", claims: func(h *flowHarness, c map[string]any) { delete(c, "nonce") }, reason: ReasonNonceMismatch},
	{name: "AudienceConfusionWithoutAZP", claims: func(h *flowHarness, c map[string]any) {
		c["aud"] = []string{"app", "other-app"}
		delete(c, "azp")
	}, reason: ReasonAZPMismatch},
	{name: "AZPNamesAnotherClient", claims: func(h *flowHarness, c map[string]any) { c["azp"] = "other-app" }, reason: ReasonAZPMismatch},
	{name: "IATInTheFuture", claims: func(h *flowHarness, c map[string]any) { c["iat"] = in(2*time.Minute, h) }, reason: ReasonInvalidIAT},
	{name: "IATFrom1970", claims: func(h *flowHarness, c map[string]any) { c["iat"] = 5 }, reason: ReasonInvalidIAT},
	{name: "EndlessElevationFromExpInMilliseconds", claims: func(h *flowHarness, c map[string]any) { c["exp"] = in(time.Hour, h) * 1000 }, reason: ReasonInvalidClaims},
	{name: "MissingIAT", claims: func(h *flowHarness, c map[string]any) { delete(c, "iat") }, reason: ReasonInvalidIAT},
	{name: "ACRDowngrade", login: stepuptest.Login{ACR: "urn:test:pwd"}, reason: ReasonACRNotSatisfied},
	{name: "ACRMissing", claims: func(h *flowHarness, c map[string]any) { delete(c, "acr") }, reason: ReasonACRNotSatisfied},
	{name: "ACRWrongType", claims: func(h *flowHarness, c map[string]any) { c["acr"] = 3 }, reason: ReasonInvalidClaims},
	{name: "AMRWrongType", claims: func(h *flowHarness, c map[string]any) { c["amr"] = "otp" }, reason: ReasonInvalidClaims},
	{name: "StaleAuthTimeFromIdPIgnoringMaxAge", login: stepuptest.Login{AuthTime: time.Now().Add(-time.Hour)}, reason: ReasonStaleAuthTime},
	{name: "AuthTimeInTheFuture", claims: func(h *flowHarness, c map[string]any) { c["auth_time"] = in(2*time.Minute, h) }, reason: ReasonAuthTimeInFuture},
	{name: "MissingAuthTime", claims: func(h *flowHarness, c map[string]any) { delete(c, "auth_time") }, reason: ReasonMissingAuthTime},
	{name: "AuthTimeAsString", claims: func(h *flowHarness, c map[string]any) { c["auth_time"] = "1800000000" }, reason: ReasonInvalidAuthTime},
	{name: "AuthTimeInMilliseconds", claims: func(h *flowHarness, c map[string]any) { c["auth_time"] = in(0, h) * 1000 }, reason: ReasonInvalidAuthTime},
	{name: "SubjectSwitchAtIdP", login: stepuptest.Login{Subject: "mallory"}, reason: ReasonSubjectMismatch},
	{name: "SubjectWithControlCharacters", claims: func(h *flowHarness, c map[string]any) { c["sub"] = "alice\x1fe1" }, reason: ReasonInvalidClaims},
	{name: "SessionExpiryAsString", claims: func(h *flowHarness, c map[string]any) { c["session_expiry"] = "1800000000" }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryWithFraction", claims: func(h *flowHarness, c map[string]any) { c["session_expiry"] = in(time.Hour, h) + 0.5 }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryNegative", claims: func(h *flowHarness, c map[string]any) { c["session_expiry"] = -in(time.Hour, h) }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryInMilliseconds", claims: func(h *flowHarness, c map[string]any) { c["session_expiry"] = in(time.Hour, h) * 1000 }, reason: ReasonInvalidSessionExpiry},
	{name: "LoginTimeLockoutSessionExpiryInThePast", login: stepuptest.Login{SessionExpiry: time.Now().Add(-time.Minute)}, reason: ReasonCeilingInPast},
	{name: "LoginTimeLockoutSessionExpiryWithinSkew", login: stepuptest.Login{SessionExpiry: time.Now().Add(20 * time.Second)}, reason: ReasonCeilingInPast},
	{name: "LoginTimeLockoutIDTokenExpiringWithinSkew", login: stepuptest.Login{IDTokenLifetime: 20 * time.Second}, reason: ReasonCeilingInPast},
	{name: "OversizedCode", tamper: func(h *flowHarness, u *url.URL) { setQuery(u, "code", strings.Repeat("A", maxCodeLen+1)) }, reason: ReasonBadRequest, status: 400},
	{name: "OversizedState", tamper: func(h *flowHarness, u *url.URL) { setQuery(u, "state", strings.Repeat("A", maxStateLen+1)) }, orphan: true, reason: ReasonBadRequest, status: 400},
	{name: "RepeatedState", tamper: func(h *flowHarness, u *url.URL) { u.RawQuery += "&state=" + u.Query().Get("state") }, orphan: true, reason: ReasonBadRequest, status: 400},
	{name: "GarbageQuery", tamper: func(h *flowHarness, u *url.URL) { u.RawQuery += "&%zz" }, reason: ReasonBadRequest, status: 400},
	{name: "OversizedQuery", tamper: func(h *flowHarness, u *url.URL) { u.RawQuery += "&pad=" + strings.Repeat("x", maxCallbackQuery) }, orphan: true, reason: ReasonBadRequest, status: 400},
	{name: "UserLoggedOutDuringStepUp", tamper: func(h *flowHarness, u *url.URL) { h.get("/login-as?user=") }, reason: ReasonUnauthenticated, status: 401},
}

// TestCallbackRules runs every bad callback through a real code flow: each
// gets a clear error, a denied audit event with its reason, no elevation,
// and a body that leaks neither the code nor the state. The challenge is
// consumed whatever the outcome.
func TestCallbackRules(t *testing.T) {
	t.Parallel()
	for _, tc := range callbackCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFlowHarness(t, stepuptest.Config{Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
				l := tc.login
				if l.ACR == "" && len(r.ACRValues) > 0 {
					l.ACR = r.ACRValues[0]
				}
				return l
			}})
			switch {
			case tc.claims != nil:
				h.rewrite(func(c map[string]any) { tc.claims(h, c) })
			case tc.token != nil:
				h.idp.RewriteNextIDToken(func(c map[string]any) (string, error) { return tc.token(h, c), nil })
			}
			u := h.callbackURL()
			honest := *u
			if tc.tamper != nil {
				tc.tamper(h, u)
			}
			status, body := h.deliver(u)
			want := tc.status
			if want == 0 {
				want = http.StatusForbidden
			}
			if status != want {
				t.Errorf("status %d, want %d (body %q)", status, want, body)
			}
			for _, secret := range []string{honest.Query().Get("code"), honest.Query().Get("state")} {
				if secret != "" && strings.Contains(body, secret) {
					t.Errorf("the response body leaks %q", secret)
				}
			}
			e := h.lastEvent()
			if e.Type != EventDenied || e.Reason != tc.reason {
				t.Errorf("last audit event %s/%s, want denied/%s", e.Type, e.Reason, tc.reason)
			}
			if tc.reason == ReasonIdPError && e.IdPError != tc.login.Error {
				t.Errorf("IdPError %q, want %q", e.IdPError, tc.login.Error)
			}
			if h.elevated() {
				t.Fatal("a denied callback left the session elevated")
			}
			// The challenge was consumed: the honest callback cannot be
			// replayed to finish it now.
			switch {
			case tc.orphan:
				// The honest callback still works: a forged one cannot
				// cancel the user's step-up.
				if status, _ := h.deliver(&honest); status != http.StatusSeeOther {
					t.Errorf("the honest callback after a forged one: status %d", status)
				}
			case tc.reason == ReasonIdPError, tc.reason == ReasonUnauthenticated, tc.login.Error != "":
				// The honest URL carries the same error, or there is still
				// no user.
			default:
				h.deliver(&honest)
				if e := h.lastEvent(); e.Reason != ReasonUnknownState {
					t.Errorf("replaying the honest callback: %s/%s, want denied/unknown_state", e.Type, e.Reason)
				}
			}
		})
	}
}

func TestCallbackGrantsAndRenewsTheSessionToken(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
		return stepuptest.Login{ACR: "urn:test:mfa", AMR: []string{"pwd", "otp"}}
	}})
	before := h.cookie()
	status, _ := h.deliver(h.callbackURL())
	if status != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", status)
	}
	if after := h.cookie(); after == before || after == "" {
		t.Error("the session token was not renewed on elevation (session fixation)")
	}
	if !h.elevated() {
		t.Fatal("not elevated after a good callback")
	}
	e := h.lastEvent()
	if e.Type != EventGranted || e.Subject != "alice" || e.ACR != "urn:test:mfa" || e.Bound != BoundExp || e.Elevation == "" {
		t.Errorf("granted event %+v", e)
	}
}

func (h *flowHarness) cookie() string {
	u, _ := url.Parse(h.app.URL)
	for _, c := range h.browser.Jar.Cookies(u) {
		if c.Name == h.sessions.Cookie.Name {
			return c.Value
		}
	}
	return ""
}

func TestEntraACRsArrayIsAccepted(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
		return stepuptest.Login{ACR: "c1", Claims: map[string]any{"acrs": []string{"c1", "urn:test:mfa"}}}
	}})
	if status, _ := h.deliver(h.callbackURL()); status != http.StatusSeeOther || !h.elevated() {
		t.Fatalf("status %d, elevated %v", status, h.elevated())
	}
	if e := h.lastEvent(); e.ACR != "urn:test:mfa" {
		t.Errorf("granted acr %q, want the accepted value", e.ACR)
	}
}

// TestMixUpWithoutIssIsRefusedWhenPromised: an IdP whose discovery promises
// RFC 9207 iss must send it.
func TestMixUpWithoutIssIsRefusedWhenPromised(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{IssParameter: true})
	u := h.callbackURL()
	if u.Query().Get("iss") != h.idp.Issuer() {
		t.Fatalf("the provider sent iss %q", u.Query().Get("iss"))
	}
	delQuery(u, "iss")
	if status, _ := h.deliver(u); status != 403 || h.lastEvent().Reason != ReasonMissingIssuer {
		t.Fatalf("status %d, reason %s", status, h.lastEvent().Reason)
	}
	if status, _ := h.deliver(h.callbackURL()); status != http.StatusSeeOther || !h.elevated() {
		t.Fatalf("the honest callback: status %d", status)
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
			var gotErr error
			h := newFlowHarness(t, stepuptest.Config{}, func(c *Config) {
				c.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
					gotErr = err
					http.Error(w, "session trouble", 500)
				}
			})
			u := h.callbackURL()
			restore := tc.fail(h.store)
			status, body := h.deliver(u)
			restore()
			if status != 500 || strings.Contains(body, "store down") {
				t.Errorf("status %d body %q", status, body)
			}
			if gotErr == nil || !strings.Contains(gotErr.Error(), "store down") {
				t.Errorf("OnError got %v", gotErr)
			}
			if e := h.lastEvent(); e.Type != EventDenied || e.Reason != ReasonSessionError {
				t.Errorf("audit %s/%s", e.Type, e.Reason)
			}
			if h.elevated() {
				t.Error("elevated after the store failed")
			}
		})
	}
}

// TestAuditNeverLogsSecrets runs a grant, a denial and a challenge through
// the default slog sink and looks for every secret of the flow in the log.
func TestAuditNeverLogsSecrets(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	h := newFlowHarness(t, stepuptest.Config{}, func(c *Config) {
		c.Auditor = SlogAuditor{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	})
	denied := h.callbackURL()
	setQuery(denied, "iss", "https://evil.test")
	h.deliver(denied)
	granted := h.callbackURL()
	h.deliver(granted)
	h.elevated()
	var secrets []string
	for _, u := range []*url.URL{denied, granted} {
		secrets = append(secrets, u.Query().Get("code"), u.Query().Get("state"))
	}
	for _, r := range h.idp.Requests() {
		secrets = append(secrets, r.Nonce, r.CodeChallenge)
	}
	secrets = append(secrets, h.cookie())
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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCodeReplayIsRefused: an authorization code that was already redeemed
// is injected into a new challenge's callback. The IdP refuses it (the
// code is single-use, RFC 6749 §4.1.2), and so does stepup.
func TestCodeReplayIsRefused(t *testing.T) {
	t.Parallel()
	h := newFlowHarness(t, stepuptest.Config{})
	used := h.callbackURL()
	if status, _ := h.deliver(used); status != http.StatusSeeOther {
		t.Fatalf("the first callback: %d", status)
	}
	u := h.callbackURL()
	setQuery(u, "code", used.Query().Get("code"))
	status, _ := h.deliver(u)
	if status != http.StatusForbidden || h.lastEvent().Reason != ReasonTokenRefused || h.lastEvent().IdPError != "invalid_grant" {
		t.Fatalf("replayed code: %d %s (%s)", status, h.lastEvent().Reason, h.lastEvent().IdPError)
	}
}
