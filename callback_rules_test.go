package stepup_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// The callback's limits, as stepup states them unexported.
const (
	challengeTTL     = 10 * time.Minute // stepup's challengeTTL: how long a challenge waits for its callback
	maxCodeLen       = 4 << 10          // stepup's maxCodeLen
	maxStateLen      = 128              // stepup's maxStateLen
	maxCallbackQuery = 8 << 10          // stepup's maxCallbackQuery
)

// callbackCase is one way a callback can be wrong that takes a provider to
// show: the state, the iss parameter, the code exchange, the ID token's
// signature and go-oidc's checks. Each is named after the attack or failure
// it stands for. The rules about one claim of a verified token are table
// rows of the library's own tests, without a provider; ACRDowngrade and
// SubjectSwitchAtIdP stay here to prove the callback applies them.
type callbackCase struct {
	name   string
	login  stepuptest.Login                                    // what the IdP asserts
	claims func(a *app, c map[string]any)                      // rewrites the ID token's claims, re-signed by the IdP
	token  func(t *testing.T, a *app, c map[string]any) string // replaces the ID token outright
	tamper func(t *testing.T, a *app, b *browser, u *url.URL)  // changes the callback URL before delivery
	reason stepup.Reason
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
func otherBrowser(t *testing.T, a *app) *url.URL {
	return a.loggedIn(t, "alice").callback(t)
}

// unixIn is the application's clock d from now, as a NumericDate claim.
func unixIn(a *app, d time.Duration) float64 { return float64(a.clock.Now().Add(d).Unix()) }

var callbackCases = []callbackCase{
	{name: "IdPErrorAccessDenied", login: stepuptest.Login{Error: "access_denied"}, reason: stepup.ReasonIdPError},
	{name: "IdPErrorUnmetAuthenticationRequirements", login: stepuptest.Login{Error: "unmet_authentication_requirements"}, reason: stepup.ReasonIdPError},
	{name: "ForgedIdPErrorWithoutState", orphan: true, tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { u.RawQuery = "error=access_denied" }, reason: stepup.ReasonUnknownState},
	{name: "ForgedIdPErrorFromAnotherIssuer", login: stepuptest.Login{Error: "access_denied"}, tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { setQuery(u, "iss", "https://evil.test") }, reason: stepup.ReasonIssuerMismatch},
	{name: "LoginCSRFWithoutState", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { delQuery(u, "state") }, orphan: true, reason: stepup.ReasonUnknownState},
	{name: "LoginCSRFWithForgedState", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { setQuery(u, "state", "AAAAAAAAAAAAAAAAAAAAAAAAAA") }, orphan: true, reason: stepup.ReasonUnknownState},
	{name: "CallbackCSRFFromAnotherSession", tamper: func(t *testing.T, a *app, _ *browser, u *url.URL) { *u = *otherBrowser(t, a) }, orphan: true, reason: stepup.ReasonUnknownState},
	{name: "ChallengeLeftOpenTooLong", tamper: func(_ *testing.T, a *app, _ *browser, _ *url.URL) { a.clock.Advance(challengeTTL) }, reason: stepup.ReasonChallengeExpired},
	{name: "MixUpWithAnotherIssuer", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { setQuery(u, "iss", "https://evil.test") }, reason: stepup.ReasonIssuerMismatch},
	{name: "MissingCode", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { delQuery(u, "code") }, reason: stepup.ReasonMissingCode},
	{name: "ForgedCode", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { setQuery(u, "code", "forged") }, reason: stepup.ReasonTokenRefused},
	{name: "CodeInjectionStoppedByPKCE", tamper: func(t *testing.T, a *app, _ *browser, u *url.URL) {
		stolen := otherBrowser(t, a) // the attacker's own code, injected into the victim's callback
		setQuery(u, "code", stolen.Query().Get("code"))
	}, reason: stepup.ReasonTokenRefused},
	{name: "TokenResponseWithoutIDToken", token: func(*testing.T, *app, map[string]any) string { return "" }, reason: stepup.ReasonMissingIDToken},
	{name: "AlgNone", token: func(_ *testing.T, _ *app, c map[string]any) string { return unsignedJWT(c) }, reason: stepup.ReasonInvalidIDToken},
	{name: "AlgConfusionHS256WithRSAPublicKey", token: func(t *testing.T, a *app, c map[string]any) string { return hmacWithPublicKey(t, a.idp, c) }, reason: stepup.ReasonInvalidIDToken},
	{name: "TamperedSignature", token: func(_ *testing.T, a *app, c map[string]any) string {
		signed, _ := a.idp.Sign(c)
		c["acr"] = mfa + "-but-forged"
		forged := unsignedJWT(c)
		parts, fparts := strings.Split(signed, "."), strings.Split(forged, ".")
		return parts[0] + "." + fparts[1] + "." + parts[2]
	}, reason: stepup.ReasonInvalidIDToken},
	{name: "TokenFromAnotherIssuer", claims: func(_ *app, c map[string]any) { c["iss"] = "https://evil.test" }, reason: stepup.ReasonInvalidIDToken},
	{name: "TokenForAnotherAudience", claims: func(_ *app, c map[string]any) { c["aud"] = []string{"other-app"} }, reason: stepup.ReasonInvalidIDToken},
	{name: "ExpiredIDToken", claims: func(a *app, c map[string]any) { c["exp"] = unixIn(a, -time.Minute) }, reason: stepup.ReasonInvalidIDToken},
	{name: "NotYetValidToken", claims: func(a *app, c map[string]any) { c["nbf"] = unixIn(a, 10*time.Minute) }, reason: stepup.ReasonInvalidIDToken},
	{name: "ACRDowngrade", login: stepuptest.Login{ACR: pwd}, reason: stepup.ReasonACRNotSatisfied},
	{name: "SubjectSwitchAtIdP", login: stepuptest.Login{Subject: "mallory"}, reason: stepup.ReasonSubjectMismatch},
	{name: "OversizedCode", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) {
		setQuery(u, "code", strings.Repeat("A", maxCodeLen+1))
	}, reason: stepup.ReasonBadRequest, status: 400},
	{name: "OversizedState", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) {
		setQuery(u, "state", strings.Repeat("A", maxStateLen+1))
	}, orphan: true, reason: stepup.ReasonBadRequest, status: 400},
	{name: "RepeatedState", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { u.RawQuery += "&state=" + u.Query().Get("state") }, orphan: true, reason: stepup.ReasonBadRequest, status: 400},
	{name: "GarbageQuery", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) { u.RawQuery += "&%zz" }, reason: stepup.ReasonBadRequest, status: 400},
	{name: "OversizedQuery", tamper: func(_ *testing.T, _ *app, _ *browser, u *url.URL) {
		u.RawQuery += "&pad=" + strings.Repeat("x", maxCallbackQuery)
	}, orphan: true, reason: stepup.ReasonBadRequest, status: 400},
	{name: "UserLoggedOutDuringStepUp", tamper: func(t *testing.T, _ *app, b *browser, _ *url.URL) { b.loginAs(t, "") }, reason: stepup.ReasonUnauthenticated, status: 401},
}

// TestCallbackRules runs every bad callback through a real code flow: each
// gets a clear error, a denied audit event with its reason, no elevation,
// and neither the response nor the audit log holds the code or the state.
// The challenge is consumed whatever the outcome.
func TestCallbackRules(t *testing.T) {
	t.Parallel()
	for _, tc := range callbackCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, appOptions{})
			a.setLogin(tc.login)
			switch {
			case tc.claims != nil:
				a.rewrite(func(c map[string]any) { tc.claims(a, c) })
			case tc.token != nil:
				a.idp.RewriteNextIDToken(func(c map[string]any) (string, error) { return tc.token(t, a, c), nil })
			}
			b := a.loggedIn(t, "alice")
			u := b.callback(t)
			honest := *u
			if tc.tamper != nil {
				tc.tamper(t, a, b, u)
			}
			r := b.peek(t, u.String())
			want := tc.status
			if want == 0 {
				want = http.StatusForbidden
			}
			if r.status != want {
				t.Errorf("status %d, want %d (body %q)", r.status, want, r.body)
			}
			wantNoSecrets(t, a, r, &honest)
			e := a.audit.latest()
			if e.Type != stepup.EventDenied || e.Reason != tc.reason {
				t.Errorf("last audit event %s/%s, want denied/%s", e.Type, e.Reason, tc.reason)
			}
			if tc.reason == stepup.ReasonIdPError && e.IdPError != tc.login.Error {
				t.Errorf("IdPError %q, want %q", e.IdPError, tc.login.Error)
			}
			if b.elevated(t) {
				t.Fatal("a denied callback left the session elevated")
			}
			// The challenge was consumed: the honest callback cannot be
			// replayed to finish it now.
			switch {
			case tc.orphan:
				// The honest callback still works: a forged one cannot
				// cancel the user's step-up.
				if r := b.peek(t, honest.String()); r.status != http.StatusSeeOther {
					t.Errorf("the honest callback after a forged one: status %d", r.status)
				}
			case tc.reason == stepup.ReasonIdPError, tc.reason == stepup.ReasonUnauthenticated, tc.login.Error != "":
				// The honest URL carries the same error, or there is still
				// no user.
			default:
				b.peek(t, honest.String())
				if e := a.audit.latest(); e.Reason != stepup.ReasonUnknownState {
					t.Errorf("replaying the honest callback: %s/%s, want denied/unknown_state", e.Type, e.Reason)
				}
			}
		})
	}
}

// rewrite makes the IdP's next ID token carry mutated claims, re-signed
// with the IdP's own key.
func (a *app) rewrite(mutate func(c map[string]any)) {
	a.idp.RewriteNextIDToken(func(c map[string]any) (string, error) {
		mutate(c)
		return a.idp.Sign(c)
	})
}

func unsignedJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}

// hmacWithPublicKey signs claims with HS256 using the IdP's RSA public key
// as the HMAC secret: the classic algorithm-confusion forgery.
func hmacWithPublicKey(t *testing.T, idp *stepuptest.Provider, claims map[string]any) string {
	der, err := x509.MarshalPKIXPublicKey(idp.PublicKey())
	if err != nil {
		t.Error(err)
		return ""
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", idp.KeyID()))
	if err != nil {
		t.Error(err)
		return ""
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Error(err)
		return ""
	}
	s, _ := jws.CompactSerialize()
	return s
}
