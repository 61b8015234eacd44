package devidp_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

const accountTitle = "Dev IdP — your account"

// relyingParty stands for the application's back channel: it records the
// logout tokens and security events the IdP sends it, and accepts them.
type relyingParty struct {
	*httptest.Server
	mu     sync.Mutex
	logout []map[string]any // the claims of each logout token
	events []map[string]any // the claims of each pushed SET
}

func newRelyingParty(t *testing.T) *relyingParty {
	rp := &relyingParty{}
	rp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rp.mu.Lock()
		defer rp.mu.Unlock()
		switch r.URL.Path {
		case "/backchannel-logout":
			form, _ := url.ParseQuery(string(body))
			rp.logout = append(rp.logout, jwtClaims(t, form.Get("logout_token")))
			w.WriteHeader(http.StatusOK)
		case "/ssf/events":
			if r.Header.Get("Content-Type") != "application/secevent+jwt" {
				http.Error(w, "bad content type", http.StatusBadRequest)
				return
			}
			rp.events = append(rp.events, jwtClaims(t, string(body)))
			w.WriteHeader(http.StatusAccepted)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(rp.Close)
	return rp
}

func (rp *relyingParty) received() (logout, events []map[string]any) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return slices.Clone(rp.logout), slices.Clone(rp.events)
}

// jwtClaims decodes a JWT's claims without verifying it: the tests of
// stepup verify logout tokens and SETs; these check what the IdP put in.
func jwtClaims(t *testing.T, raw string) map[string]any {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Errorf("not a JWS: %q", raw)
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		t.Errorf("JWT claims: %v", err)
	}
	return c
}

// newAccountEnv is newEnv with a relying party's back channel: the test
// client's back-channel logout URI and a Shared Signals receiver.
func newAccountEnv(t *testing.T) (*env, *relyingParty) {
	t.Helper()
	rp := newRelyingParty(t)
	e := newEnv(t, devidp.Config{Receivers: []devidp.Receiver{{URL: rp.URL + "/ssf/events", Audience: "https://rp.example"}}})
	e.idp.Provider().AddClient(stepuptest.Client{
		ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI},
		BackChannelLogoutURI: rp.URL + "/backchannel-logout",
	})
	return e, rp
}

// account opens the account page in b.
func (e *env) account(t *testing.T, b *browser) result {
	t.Helper()
	res := b.get(t, e.idp.AccountURL())
	wantPage(t, res, accountTitle)
	return res
}

// act posts one of the account page's forms.
func (b *browser) act(t *testing.T, page result, step string) result {
	t.Helper()
	return b.submit(t, page, url.Values{"step": {step}}, nil)
}

func TestSignOutEverywhereSendsALogoutTokenForEachSessionAndEndsThem(t *testing.T) {
	t.Parallel()
	e, rp := newAccountEnv(t)
	laptop, phone, other := newBrowser(t), newBrowser(t), newBrowser(t)
	first := e.login(t, laptop, strong, "alice")
	second := e.login(t, phone, basic, "alice")
	e.login(t, other, basic, "bob")

	page := e.account(t, laptop)
	for _, want := range []string{`id="account-user"`, `<strong>alice</strong>`, `id="sign-out-everywhere"`, `id="reset-code"`, `id="lock-account"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the account page lacks %s", want)
		}
	}
	res := laptop.act(t, page, "signout")
	wantPage(t, res, accountTitle)
	if strings.Count(res.body, "Logout token to "+clientID+": 200 OK.") != 2 || strings.Contains(res.body, `id="account-user"`) {
		t.Errorf("after signing out the page says:\n%s", res.body)
	}

	logout, _ := rp.received()
	var sids []string
	for _, c := range logout {
		events, _ := c["events"].(map[string]any)
		if c["sub"] != "alice" || c["aud"] != clientID || c["iss"] != e.idp.Issuer() || events[stepuptest.BackChannelLogoutEvent] == nil {
			t.Errorf("logout token claims %v", c)
		}
		sid, _ := c["sid"].(string)
		sids = append(sids, sid)
	}
	slices.Sort(sids)
	want := []string{first.SID, second.SID}
	slices.Sort(want)
	if !slices.Equal(sids, want) {
		t.Errorf("logout tokens name sessions %q, want the ID tokens' sids %q", sids, want)
	}

	// Both of alice's browsers must sign in again; bob's session lives on.
	for _, br := range []*browser{laptop, phone} {
		wantPage(t, br.get(t, e.start(basic).authURL), signInTitle)
	}
	f := e.start(basic)
	if c := e.finish(t, f, other.get(t, f.authURL)); c.Sub != "bob" {
		t.Errorf("bob's single sign-on after alice signed out: sub %q", c.Sub)
	}
	if len(e.idp.Provider().Sessions("alice")) != 0 {
		t.Errorf("alice still has provider sessions %q", e.idp.Provider().Sessions("alice"))
	}
}

func TestResetOneTimeCodeInvalidatesTheOldCodeAndPushesCredentialChange(t *testing.T) {
	t.Parallel()
	e, rp := newAccountEnv(t)
	br := newBrowser(t)
	e.login(t, br, strong, "alice")
	old := e.code(t, "alice")

	res := br.act(t, e.account(t, br), "reset-code")
	wantPage(t, res, accountTitle)
	if !strings.Contains(res.body, "credential-change event to "+rp.URL+"/ssf/events: 202 Accepted.") {
		t.Errorf("the page does not report the push:\n%s", res.body)
	}
	if e.code(t, "alice") == old {
		t.Fatal("the code did not change") // 1 in 10^6, or no new secret
	}
	_, events := rp.received()
	if len(events) != 1 {
		t.Fatalf("%d events pushed, want 1", len(events))
	}
	ev := events[0]
	sub, _ := ev["sub_id"].(map[string]any)
	body, _ := ev["events"].(map[string]any)[stepuptest.CAEPCredentialChange].(map[string]any)
	if ev["iss"] != e.idp.Issuer() || ev["aud"] != "https://rp.example" || sub["format"] != "iss_sub" || sub["iss"] != e.idp.Issuer() ||
		sub["sub"] != "alice" || body["credential_type"] != "app" || body["change_type"] != "update" || body["event_timestamp"] == nil {
		t.Errorf("SET claims %v", ev)
	}

	// A step-up with the old code is refused; the new one works.
	page := br.signIn(t, br.get(t, e.start(with(strong, "prompt", "login")).authURL), "alice")
	if res := br.enterCode(t, page, old); !res.hasError() {
		t.Errorf("the old code was accepted")
	}
	f := e.start(with(strong, "prompt", "login"))
	page = br.signIn(t, br.get(t, f.authURL), "alice")
	if c := e.finish(t, f, br.enterCode(t, page, e.code(t, "alice"))); c.ACR != devidp.StrongACR {
		t.Errorf("acr %q with the new code", c.ACR)
	}
}

func TestLockedAccountIsRefusedEverySignInUntilUnlocked(t *testing.T) {
	t.Parallel()
	e, rp := newAccountEnv(t)
	br := newBrowser(t)
	e.login(t, br, strong, "alice")

	res := br.act(t, e.account(t, br), "lock")
	if !strings.Contains(res.body, `id="locked"`) || !strings.Contains(res.body, `id="unlock-account"`) ||
		!strings.Contains(res.body, "session-revoked event to "+rp.URL+"/ssf/events: 202 Accepted.") || !e.idp.Locked("alice") {
		t.Fatalf("after locking the page says:\n%s", res.body)
	}
	_, events := rp.received()
	if len(events) != 1 || events[0]["events"].(map[string]any)[stepuptest.CAEPSessionRevoked] == nil ||
		events[0]["sub_id"].(map[string]any)["sub"] != "alice" {
		t.Fatalf("pushed %v, want one session-revoked for alice", events)
	}

	// No single sign-on from the strong session ...
	f := e.start(with(strong, "prompt", "none"))
	if res := br.get(t, f.authURL); res.callback == nil || res.callback.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none for a locked account: %v, want login_required", res.callback)
	}
	page := br.get(t, e.start(basic).authURL)
	wantPage(t, page, signInTitle)
	// ... and no password sign-in, in this browser or another.
	for _, who := range []*browser{br, newBrowser(t)} {
		res := who.signIn(t, who.get(t, e.start(basic).authURL), "alice")
		wantPage(t, res, signInTitle)
		if !strings.Contains(res.body, "This account is locked.") {
			t.Errorf("a locked sign-in says:\n%s", res.body)
		}
	}
	// A step-up whose password came before the lock is refused at its
	// code: unlock, enter the password, lock, enter the code.
	other := newBrowser(t)
	br.act(t, e.account(t, br), "unlock")
	page = other.signIn(t, other.get(t, e.start(strong).authURL), "alice")
	wantPage(t, page, otpTitle)
	br.act(t, e.account(t, br), "lock")
	if res := other.enterCode(t, page, e.code(t, "alice")); res.callback != nil || !strings.Contains(res.body, "This account is locked.") {
		t.Errorf("the code of a login locked midway: callback %v\n%s", res.callback, res.body)
	}

	res = br.act(t, e.account(t, br), "unlock")
	if strings.Contains(res.body, `id="locked"`) || e.idp.Locked("alice") {
		t.Fatalf("after unlocking the page says:\n%s", res.body)
	}
	if c := e.login(t, newBrowser(t), basic, "alice"); c.Sub != "alice" {
		t.Errorf("sign-in after unlocking: sub %q", c.Sub)
	}
}

func TestAccountPageSignInLetsALockedUserUnlock(t *testing.T) {
	t.Parallel()
	e, _ := newAccountEnv(t)
	br := newBrowser(t)
	e.login(t, br, basic, "alice")
	br.act(t, e.account(t, br), "lock")
	br.act(t, e.account(t, br), "signout")

	page := e.account(t, br)
	if !strings.Contains(page.body, `id="account-signin"`) {
		t.Fatalf("a signed-out browser's account page has no sign-in form:\n%s", page.body)
	}
	res := br.submit(t, page, url.Values{"step": {"account"}, "username": {"alice"}, "password": {"wrong"}}, nil)
	if !res.hasError() || strings.Contains(res.body, `id="account-user"`) {
		t.Errorf("a wrong password signed in to the account page:\n%s", res.body)
	}
	res = br.submit(t, page, url.Values{"step": {"account"}, "username": {"alice"}, "password": {devidp.Password}}, nil)
	if !strings.Contains(res.body, `id="account-user"`) || !strings.Contains(res.body, `id="unlock-account"`) {
		t.Fatalf("after the account sign-in the page says:\n%s", res.body)
	}
	br.act(t, res, "unlock")
	if e.idp.Locked("alice") {
		t.Error("alice is still locked")
	}
}

func TestAccountFormsRefuseCrossOriginPostsAndVisitorsWithoutASession(t *testing.T) {
	t.Parallel()
	e, rp := newAccountEnv(t)
	br := newBrowser(t)
	e.login(t, br, basic, "alice")
	page := e.account(t, br)
	for _, step := range []string{"signout", "reset-code", "lock", "unlock", "account"} {
		t.Run("cross-site "+step, func(t *testing.T) {
			res := br.submit(t, page, url.Values{"step": {step}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
			if res.status != http.StatusForbidden {
				t.Errorf("a cross-site %s: status %d, want 403", step, res.status)
			}
		})
	}
	stranger := newBrowser(t)
	for _, step := range []string{"signout", "reset-code", "lock"} {
		t.Run("without a session "+step, func(t *testing.T) {
			res := stranger.submit(t, page, url.Values{"step": {step}}, nil)
			if !res.hasError() || strings.Contains(res.body, `id="account-user"`) {
				t.Errorf("%s without an IdP session:\n%s", step, res.body)
			}
		})
	}
	if logout, events := rp.received(); len(logout)+len(events) != 0 || e.idp.Locked("alice") || len(e.idp.Provider().Sessions("alice")) != 1 {
		t.Errorf("refused posts changed something: %d logout tokens, %d events, locked %v", len(logout), len(events), e.idp.Locked("alice"))
	}
}
