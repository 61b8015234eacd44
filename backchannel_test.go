package stepup_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// elevatedAs returns a browser in which user has logged in and stepped up
// for the admin scope, and the sid of the IdP session the step-up used.
func elevatedAs(t *testing.T, a *app, user string) (*browser, string) {
	t.Helper()
	a.setLogin(stepuptest.Login{Subject: user, AMR: []string{"pwd", "otp"}})
	claims := a.observeNextIDToken()
	b := a.loggedIn(t, user)
	b.stepUp(t, "/admin")
	sid, _ := claims(t)["sid"].(string)
	if sid == "" || !b.elevated(t) {
		t.Fatalf("%s did not step up (sid %q)", user, sid)
	}
	return b, sid
}

// postLogout sends a logout token to the application's back-channel logout
// endpoint.
func postLogout(t *testing.T, a *app, token string) (int, string) {
	t.Helper()
	status, body, err := stepuptest.PostLogoutToken(t.Context(), &http.Client{Transport: a.tr}, a.url+backChannelLogoutPath, token)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

func logoutToken(t *testing.T, a *app, c stepuptest.LogoutClaims) string {
	t.Helper()
	token, err := a.idp.LogoutToken("admin-console", c)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestBackChannelLogoutEndsTheElevation: the user signs out everywhere at
// the IdP; the IdP posts a logout token naming the IdP session; the
// elevation from that session ends at its next request, which is
// challenged again, and a new step-up works.
func TestBackChannelLogoutEndsTheElevation(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, sid := elevatedAs(t, a, "alice")

	deliveries := a.idp.LogOut(t.Context(), "alice")
	if len(deliveries) != 1 || deliveries[0].Status != http.StatusOK || deliveries[0].SessionID != sid {
		t.Fatalf("logout deliveries %+v", deliveries)
	}
	e := a.audit.wantReason(t, stepup.EventRevoked, stepup.ReasonBackChannelLogout)
	if e.SID != sid || e.Subject != "alice" || e.TokenID == "" {
		t.Errorf("revoked event %+v", e)
	}
	wantRedirectToIdP(t, a, b.peek(t, "/admin"))
	a.audit.wantReason(t, stepup.EventDropped, stepup.ReasonBackChannelLogout)
	if b.elevated(t) {
		t.Fatal("elevated after the IdP logged the session out")
	}
	b.stepUp(t, "/admin")
	if !b.elevated(t) {
		t.Fatal("a step-up after the logout is not honoured")
	}
}

// hydraLogoutToken is a logout token as Ory Hydra v2.3 sends it: typ JWT,
// and the claims iss, aud, iat, jti, events and sid, with no exp and no
// sub.
func hydraLogoutToken(t *testing.T, a *app, sid string) string {
	t.Helper()
	c, err := a.idp.LogoutTokenClaims("admin-console", stepuptest.LogoutClaims{SessionID: sid, IssuedAt: a.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	delete(c, "exp")
	delete(c, "sub")
	token, err := a.idp.SignTyped("JWT", c)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestLogoutTokenWithoutExpEndsTheElevation: Ory Hydra's logout tokens
// carry no exp (Back-Channel Logout §2.4 requires one). With a fresh iat
// and every other rule kept, such a token ends the elevation, and the
// revoked event says the token had no exp; its replay is refused, since
// its jti is remembered for as long as its iat is fresh.
func TestLogoutTokenWithoutExpEndsTheElevation(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, sid := elevatedAs(t, a, "alice")
	token := hydraLogoutToken(t, a, sid)

	if status, body := postLogout(t, a, token); status != http.StatusOK {
		t.Fatalf("a logout token without exp: %d %s", status, body)
	}
	e := a.audit.wantReason(t, stepup.EventRevoked, stepup.ReasonBackChannelLogout)
	if !e.NoExp || e.SID != sid || e.Subject != "alice" || e.TokenID == "" {
		t.Errorf("revoked event %+v, want no_exp with the sid, the subject and the jti", e)
	}
	if b.elevated(t) {
		t.Fatal("elevated after a logout token without exp")
	}
	if status, _ := postLogout(t, a, token); status != http.StatusBadRequest {
		t.Errorf("the replayed token: %d, want 400", status)
	}
	if e := a.audit.wantReason(t, stepup.EventSignalRejected, stepup.ReasonReplayedToken); !e.NoExp {
		t.Errorf("rejected replay %+v, want no_exp", e)
	}
}

// TestStrictLogoutTokenExpiryRefusesATokenWithoutExp: the strict reading
// of Back-Channel Logout §2.4, for deployments that want it, refuses the
// token the default accepts; a token with exp is accepted either way.
func TestStrictLogoutTokenExpiryRefusesATokenWithoutExp(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{config: func(c *stepup.Config) { c.StrictLogoutTokenExpiry = true }})
	b, sid := elevatedAs(t, a, "alice")
	if status, _ := postLogout(t, a, hydraLogoutToken(t, a, sid)); status != http.StatusBadRequest {
		t.Errorf("a token without exp under StrictLogoutTokenExpiry: %d, want 400", status)
	}
	a.audit.wantReason(t, stepup.EventSignalRejected, stepup.ReasonInvalidSignal)
	if !b.elevated(t) {
		t.Fatal("a refused token ended the elevation")
	}
	if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{SessionID: sid, IssuedAt: a.clock.Now()})); status != http.StatusOK {
		t.Fatalf("a token with exp under StrictLogoutTokenExpiry: %d %s", status, body)
	}
	if e := a.audit.wantReason(t, stepup.EventRevoked, stepup.ReasonBackChannelLogout); e.NoExp {
		t.Errorf("revoked event %+v says no_exp for a token with exp", e)
	}
	if b.elevated(t) {
		t.Error("elevated after a logout token with exp")
	}
}

// TestBackChannelLogoutBySubjectAndBySession: two browsers of one user,
// elevated from two IdP sessions; a logout token naming a sid ends only
// that session's elevation, and one naming only the sub ends both.
func TestBackChannelLogoutBySubjectAndBySession(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	laptop, laptopSID := elevatedAs(t, a, "alice")
	phone, _ := elevatedAs(t, a, "alice")
	bob, _ := elevatedAs(t, a, "bob")

	if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{SessionID: laptopSID})); status != http.StatusOK {
		t.Fatalf("sid-only logout: %d %s", status, body)
	}
	if laptop.elevated(t) || !phone.elevated(t) {
		t.Fatalf("after a logout of the laptop's session: laptop %v, phone %v", laptop.elevated(t), phone.elevated(t))
	}
	if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice"})); status != http.StatusOK {
		t.Fatalf("sub-only logout: %d %s", status, body)
	}
	if phone.elevated(t) {
		t.Fatal("a sub-only logout token left one of the user's elevations")
	}
	if !bob.elevated(t) {
		t.Fatal("a logout of alice ended bob's elevation")
	}
}

// TestLoginASecondAfterALogoutIsNotEnded: a logout token names the user
// only; a step-up whose login comes one second after the token's iat is not
// ended by it, even with ClockSkew at one second. The order is the IdP's
// own clock: the token's iat against the elevation's auth_time.
func TestLoginASecondAfterALogoutIsNotEnded(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{config: func(c *stepup.Config) { c.ClockSkew = time.Second }})
	b := a.loggedIn(t, "alice")
	iat := a.clock.Now().Truncate(time.Second)
	if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", IssuedAt: iat})); status != http.StatusOK {
		t.Fatalf("logout: %d %s", status, body)
	}
	a.clock.Set(iat.Add(time.Second))
	b.stepUp(t, "/admin")
	if !b.elevated(t) {
		t.Fatal("a login one second after the logout was ended by it")
	}
}

// TestReplayedLogoutTokenDoesNotEndALaterElevation: a logout token that was
// processed is posted again after the user stepped up anew; it is refused
// as a replay, and the new elevation stands.
func TestReplayedLogoutTokenDoesNotEndALaterElevation(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, _ := elevatedAs(t, a, "alice")
	token := logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", IssuedAt: a.clock.Now()})
	if status, _ := postLogout(t, a, token); status != http.StatusOK {
		t.Fatalf("first delivery: %d", status)
	}
	a.clock.Advance(2 * time.Second)
	b.stepUp(t, "/admin")
	status, body := postLogout(t, a, token)
	if status != http.StatusBadRequest || !strings.Contains(body, `"error":"invalid_request"`) {
		t.Errorf("replay: %d %s", status, body)
	}
	a.audit.wantReason(t, stepup.EventSignalRejected, stepup.ReasonReplayedToken)
	if !b.elevated(t) {
		t.Fatal("a replayed logout token ended an elevation granted after it")
	}
}

// TestBackChannelLogoutRules: every way a logout request can be wrong is
// refused with a 400 (or 405) carrying the spec's JSON error, audited as
// signal_rejected, and ends nothing.
func TestBackChannelLogoutRules(t *testing.T) {
	t.Parallel()
	other, err := stepuptest.New(stepuptest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	for _, tc := range []struct {
		name    string
		claims  func(a *app, c map[string]any) // changes an honest token's claims
		typ     string                         // header typ; default logout+jwt
		token   func(t *testing.T, a *app) string
		request func(t *testing.T, a *app, token string) (*http.Request, error)
		reason  stepup.Reason
		status  int
	}{
		{name: "BadSignature", token: func(t *testing.T, a *app) string {
			good := logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice"})
			parts := strings.Split(good, ".")
			return parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		}, reason: stepup.ReasonInvalidSignal},
		{name: "AlgNone", token: func(t *testing.T, a *app) string {
			c, _ := a.idp.LogoutTokenClaims("admin-console", stepuptest.LogoutClaims{Subject: "alice"})
			return unsignedJWT(c)
		}, reason: stepup.ReasonInvalidSignal},
		{name: "SignedByAnUnknownKey", token: func(t *testing.T, a *app) string {
			c, _ := a.idp.LogoutTokenClaims("admin-console", stepuptest.LogoutClaims{Subject: "alice"})
			tok, err := other.SignTyped("logout+jwt", c)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, reason: stepup.ReasonInvalidSignal},
		{name: "FromAnotherIssuer", claims: func(_ *app, c map[string]any) { c["iss"] = "https://evil.test" }, reason: stepup.ReasonInvalidSignal},
		{name: "ForAnotherClient", claims: func(_ *app, c map[string]any) { c["aud"] = "other-app" }, reason: stepup.ReasonInvalidSignal},
		{name: "IDTokenPassedOffWithNonce", claims: func(_ *app, c map[string]any) { c["nonce"] = "n" }, reason: stepup.ReasonInvalidSignal},
		{name: "EventsMissing", claims: func(_ *app, c map[string]any) { delete(c, "events") }, reason: stepup.ReasonInvalidSignal},
		{name: "EventsNotAnObject", claims: func(_ *app, c map[string]any) { c["events"] = []string{stepuptest.BackChannelLogoutEvent} }, reason: stepup.ReasonInvalidSignal},
		{name: "LogoutEventNotAnObject", claims: func(_ *app, c map[string]any) {
			c["events"] = map[string]any{stepuptest.BackChannelLogoutEvent: true}
		}, reason: stepup.ReasonInvalidSignal},
		{name: "OtherEventOnly", claims: func(_ *app, c map[string]any) {
			c["events"] = map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-revoked": map[string]any{}}
		}, reason: stepup.ReasonInvalidSignal},
		{name: "MissingJTI", claims: func(_ *app, c map[string]any) { delete(c, "jti") }, reason: stepup.ReasonInvalidSignal},
		{name: "NeitherSidNorSub", claims: func(_ *app, c map[string]any) { delete(c, "sub"); delete(c, "sid") }, reason: stepup.ReasonInvalidSignal},
		{name: "SubjectWithLineBreak", claims: func(_ *app, c map[string]any) { c["sub"] = "alice\nforged" }, reason: stepup.ReasonInvalidSignal},
		{name: "MissingIAT", claims: func(_ *app, c map[string]any) { delete(c, "iat") }, reason: stepup.ReasonInvalidSignal},
		{name: "IATFarInTheFuture", claims: func(a *app, c map[string]any) {
			c["iat"] = a.clock.Now().Add(time.Hour).Unix()
			c["exp"] = a.clock.Now().Add(2 * time.Hour).Unix()
		}, reason: stepup.ReasonStaleToken},
		{name: "IATTooOld", claims: func(a *app, c map[string]any) { c["iat"] = a.clock.Now().Add(-10 * time.Minute).Unix() }, reason: stepup.ReasonStaleToken},
		{name: "Expired", claims: func(a *app, c map[string]any) { c["exp"] = a.clock.Now().Add(-time.Minute).Unix() }, reason: stepup.ReasonInvalidSignal},
		{name: "ExpInMilliseconds", claims: func(a *app, c map[string]any) { c["exp"] = a.clock.Now().Add(time.Minute).UnixMilli() }, reason: stepup.ReasonInvalidSignal},
		// Without exp, iat is what bounds a token's use (Ory Hydra sends
		// none): a stale one is refused as any stale token is.
		{name: "NoExpAndIATTooOld", claims: func(a *app, c map[string]any) {
			delete(c, "exp")
			c["iat"] = a.clock.Now().Add(-10 * time.Minute).Unix()
		}, reason: stepup.ReasonStaleToken},
		{name: "NoExpAndIATFromTheFuture", claims: func(a *app, c map[string]any) {
			delete(c, "exp")
			c["iat"] = a.clock.Now().Add(time.Hour).Unix()
		}, reason: stepup.ReasonStaleToken},
		{name: "AccessTokenTyp", typ: "at+jwt", reason: stepup.ReasonInvalidSignal},
		{name: "SecurityEventTyp", typ: "secevent+jwt", reason: stepup.ReasonInvalidSignal},
		{name: "WrongContentType", request: func(t *testing.T, a *app, token string) (*http.Request, error) {
			body, _ := json.Marshal(map[string]string{"logout_token": token})
			r, err := http.NewRequest(http.MethodPost, a.url+backChannelLogoutPath, strings.NewReader(string(body)))
			if err == nil {
				r.Header.Set("Content-Type", "application/json")
			}
			return r, err
		}, reason: stepup.ReasonBadRequest},
		{name: "OversizedBody", request: func(t *testing.T, a *app, token string) (*http.Request, error) {
			return formPost(a, url.Values{"logout_token": {token}, "pad": {strings.Repeat("x", 20<<10)}})
		}, reason: stepup.ReasonBadRequest},
		{name: "TwoTokens", request: func(t *testing.T, a *app, token string) (*http.Request, error) {
			return formPost(a, url.Values{"logout_token": {token, token}})
		}, reason: stepup.ReasonBadRequest},
		{name: "NoToken", request: func(t *testing.T, a *app, token string) (*http.Request, error) {
			return formPost(a, url.Values{"token": {token}})
		}, reason: stepup.ReasonBadRequest},
		{name: "TokenInTheQueryString", request: func(t *testing.T, a *app, token string) (*http.Request, error) {
			r, err := formPost(a, url.Values{})
			if err == nil {
				r.URL.RawQuery = url.Values{"logout_token": {token}}.Encode()
			}
			return r, err
		}, reason: stepup.ReasonBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, appOptions{})
			b, sid := elevatedAs(t, a, "alice")
			var token string
			switch {
			case tc.token != nil:
				token = tc.token(t, a)
			default:
				c, err := a.idp.LogoutTokenClaims("admin-console", stepuptest.LogoutClaims{Subject: "alice", SessionID: sid, IssuedAt: a.clock.Now()})
				if err != nil {
					t.Fatal(err)
				}
				if tc.claims != nil {
					tc.claims(a, c)
				}
				typ := tc.typ
				if typ == "" {
					typ = "logout+jwt"
				}
				if token, err = a.idp.SignTyped(typ, c); err != nil {
					t.Fatal(err)
				}
			}
			req, err := formPost(a, url.Values{"logout_token": {token}})
			if tc.request != nil {
				req, err = tc.request(t, a, token)
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: a.tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			decodeErr := json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusBadRequest || decodeErr != nil || body.Error != "invalid_request" ||
				resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("answer %d %+v (%v), Cache-Control %q", resp.StatusCode, body, decodeErr, resp.Header.Get("Cache-Control"))
			}
			a.audit.wantReason(t, stepup.EventSignalRejected, tc.reason)
			if a.audit.count(stepup.EventRevoked) != 0 {
				t.Error("a rejected token revoked something")
			}
			if !b.elevated(t) {
				t.Error("a rejected logout token ended the elevation")
			}
		})
	}
}

func formPost(a *app, form url.Values) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodPost, a.url+backChannelLogoutPath, strings.NewReader(form.Encode()))
	if err == nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r, err
}

// TestBackChannelLogoutOnlyAcceptsPOST: a GET (a link, an image) cannot
// end anything.
func TestBackChannelLogoutOnlyAcceptsPOST(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, _ := elevatedAs(t, a, "alice")
	token := logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice"})
	r := b.peek(t, backChannelLogoutPath+"?logout_token="+url.QueryEscape(token))
	if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v", r)
	}
	if !b.elevated(t) {
		t.Error("a GET ended the elevation")
	}
}

// TestBackChannelLogoutStoreFailureIsAuditedForAlerting: the logout token
// is valid but the session store fails; the IdP gets the 400 of a failed
// logout (it does not retry), and a revocation_failed event says what was
// lost.
func TestBackChannelLogoutStoreFailureIsAuditedForAlerting(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, sid := elevatedAs(t, a, "alice")
	a.store.failCommit.Store(true)
	token := logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", SessionID: sid})
	status, body := postLogout(t, a, token)
	a.store.failCommit.Store(false)
	if status != http.StatusBadRequest || !strings.Contains(body, `"error":"temporarily_unavailable"`) || strings.Contains(body, "store down") {
		t.Errorf("answer %d %s", status, body)
	}
	e := a.audit.wantReason(t, stepup.EventRevocationFailed, stepup.ReasonBackChannelLogout)
	if e.SID != sid || e.TokenID == "" {
		t.Errorf("revocation_failed event %+v", e)
	}
	// The failed token was not taken as processed: sent again once the
	// store is back, it ends the elevation.
	if status, body := postLogout(t, a, token); status != http.StatusOK {
		t.Fatalf("the same token after the store recovered: %d %s", status, body)
	}
	if b.elevated(t) {
		t.Fatal("the retried logout did not end the elevation")
	}
}

// TestLogoutNotYetOnAReplicaIsAFailureTheIdPRetries: on Redis, a logout
// token is answered 200 only once a replica holds its revocation (WAIT),
// so that a failover cannot lose it. A WAIT that times out (here a store
// told to wait for one replica on a server that has none) is a failed
// logout: 400 temporarily_unavailable, so that the IdP retries, and
// revocation_failed for the operator.
func TestLogoutNotYetOnAReplicaIsAFailureTheIdPRetries(t *testing.T) {
	t.Parallel()
	store := newRedisStore(t, "redis://"+testkit.StartRedis(t))
	store.Replicas, store.ReplicaTimeout = 1, 100*time.Millisecond
	a := newApp(t, appOptions{store: store})
	_, sid := elevatedAs(t, a, "alice")
	status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", SessionID: sid, IssuedAt: a.clock.Now()}))
	if status != http.StatusBadRequest || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
		t.Errorf("a logout no replica acknowledged: %d %s, want 400 temporarily_unavailable", status, body)
	}
	a.audit.wantReason(t, stepup.EventRevocationFailed, stepup.ReasonBackChannelLogout)
	if err := a.su.RevokeSubject(t.Context(), "alice"); !errors.Is(err, stepup.ErrSession) || !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Errorf("RevokeSubject no replica acknowledged: %v, want ErrSession wrapping ErrNotReplicated", err)
	}
}

// TestOnLogoutEndsTheApplicationsOwnLogin: the hook receives the logout,
// and its failure is a failed logout for the IdP.
func TestOnLogoutEndsTheApplicationsOwnLogin(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []stepup.Logout
	fail := false
	a := newApp(t, appOptions{config: func(c *stepup.Config) {
		c.OnLogout = func(_ context.Context, l stepup.Logout) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, l)
			if fail {
				return errors.New("db connection refused: hook detail")
			}
			return nil
		}
	}})
	_, sid := elevatedAs(t, a, "alice")
	if status, _ := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", SessionID: sid})); status != http.StatusOK {
		t.Fatalf("logout: %d", status)
	}
	mu.Lock()
	if len(got) != 1 || got[0].SessionID != sid || got[0].Subject != "alice" || got[0].Issuer != a.idp.Issuer() || got[0].IssuedAt.IsZero() {
		t.Errorf("OnLogout got %+v", got)
	}
	fail = true
	mu.Unlock()
	if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice"})); status != http.StatusBadRequest || strings.Contains(body, "hook detail") {
		t.Errorf("failing hook: %d %s", status, body)
	}
}

// TestRevokeSubjectEndsEveryElevationOfTheUser: support disables alice's
// account; both her devices lose admin mode, bob keeps his, and alice can
// step up again afterwards (once the IdP lets her).
func TestRevokeSubjectEndsEveryElevationOfTheUser(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	laptop, _ := elevatedAs(t, a, "alice")
	phone, _ := elevatedAs(t, a, "alice")
	bob, _ := elevatedAs(t, a, "bob")
	if err := a.su.RevokeSubject(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	a.audit.wantReason(t, stepup.EventRevoked, stepup.ReasonRevokedByOperator)
	if laptop.elevated(t) || phone.elevated(t) {
		t.Fatal("an elevation of the revoked user survives")
	}
	a.audit.wantReason(t, stepup.EventDropped, stepup.ReasonRevokedByOperator)
	if !bob.elevated(t) {
		t.Fatal("revoking alice ended bob's elevation")
	}
	a.clock.Advance(time.Minute) // the next login is well after the revocation
	a.setLogin(stepuptest.Login{Subject: "alice", AMR: []string{"pwd", "otp"}})
	laptop.stepUp(t, "/admin")
	if !laptop.elevated(t) {
		t.Fatal("a step-up after the revocation is not honoured")
	}
}

// TestRevokeSubjectReportsAStoreFailure: the caller learns that nothing
// was revoked, and can retry.
func TestRevokeSubjectReportsAStoreFailure(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, _ := elevatedAs(t, a, "alice")
	a.store.failCommit.Store(true)
	err := a.su.RevokeSubject(t.Context(), "alice")
	a.store.failCommit.Store(false)
	if !errors.Is(err, stepup.ErrSession) {
		t.Fatalf("RevokeSubject = %v, want ErrSession", err)
	}
	a.audit.wantReason(t, stepup.EventRevocationFailed, stepup.ReasonRevokedByOperator)
	if !b.elevated(t) {
		t.Fatal("the failed revocation ended the elevation anyway")
	}
	if err := a.su.RevokeSubject(t.Context(), "alice"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if b.elevated(t) {
		t.Fatal("the retried revocation did not end the elevation")
	}
	if err := a.su.RevokeSubject(t.Context(), "alice\nforged"); err == nil {
		t.Error("RevokeSubject accepted a subject with a line break")
	}
}

// TestALogoutWhoseRevocationFailedIsNotTakenForAReplay: the store accepts
// the token's jti but fails the revocation itself. The token must not be
// remembered as processed, or the sender's second attempt would be refused
// as a replay and the logout lost.
func TestALogoutWhoseRevocationFailedIsNotTakenForAReplay(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b, sid := elevatedAs(t, a, "alice")
	revocations := "R;"
	a.store.failCommitPrefix.Store(&revocations)
	token := logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", SessionID: sid})
	if status, body := postLogout(t, a, token); status != http.StatusBadRequest || !strings.Contains(body, "temporarily_unavailable") {
		t.Fatalf("with the revocation record failing: %d %s", status, body)
	}
	a.store.failCommitPrefix.Store(nil)
	if status, body := postLogout(t, a, token); status != http.StatusOK {
		t.Fatalf("the same token again: %d %s, want 200 (not a replay)", status, body)
	}
	if b.elevated(t) {
		t.Fatal("the logout sent again did not end the elevation")
	}
}
