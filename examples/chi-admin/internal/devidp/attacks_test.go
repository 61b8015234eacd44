package devidp_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
)

// sessionCookie returns b's devidp_session cookie for the IdP, or "".
func (b *browser) sessionCookie(issuer string) string {
	u, _ := url.Parse(issuer)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "devidp_session" {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setSessionCookie(issuer, value string) {
	u, _ := url.Parse(issuer)
	b.jar.SetCookies(u, []*http.Cookie{{Name: "devidp_session", Value: value, Path: "/"}})
}

func TestSessionFixationPlantedCookieIsWorthless(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	victim := newBrowser(t)
	victim.setSessionCookie(e.idp.Issuer(), "planted-by-attacker")
	e.login(t, victim, basic, "alice")
	first := victim.sessionCookie(e.idp.Issuer())
	if first == "" || first == "planted-by-attacker" {
		t.Fatalf("session cookie after login = %q, want a fresh value", first)
	}
	e.login(t, victim, strong, "alice") // re-authentication rotates it again
	if now := victim.sessionCookie(e.idp.Issuer()); now == first {
		t.Fatal("re-authentication kept the session cookie value")
	}
	for _, tc := range []struct{ name, value string }{
		{"PlantedBeforeTheLogin", "planted-by-attacker"},
		{"RotatedAwayByReauthentication", first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := newBrowser(t)
			attacker.setSessionCookie(e.idp.Issuer(), tc.value)
			wantPage(t, attacker.get(t, e.start(basic).authURL), signInTitle)
		})
	}
}

func TestOTPTokenFromAnotherRequestIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	stolen := b.signIn(t, b.get(t, e.start(strong).authURL), "alice")
	wantPage(t, stolen, otpTitle)

	// Another request, in another browser, reuses the token of the first.
	other := newBrowser(t)
	f := e.start(strong)
	page := other.get(t, f.authURL)
	form := stolen.hidden()
	form.Set("id", page.hidden().Get("id"))
	form.Set("otp", e.code(t, "alice"))
	res := other.submit(t, page, form, nil)
	wantPage(t, res, signInTitle)
	if !res.hasError() {
		t.Fatal("no #error after a foreign OTP token")
	}
	// The victim's own login still works.
	e.finish(t, f, other.enterCode(t, other.signIn(t, res, "bob"), e.code(t, "bob")))
}

func TestOTPStepExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	page := b.signIn(t, b.get(t, e.start(strong).authURL), "alice")
	e.clock.Advance(5 * time.Minute)
	res := b.enterCode(t, page, e.code(t, "alice"))
	wantPage(t, res, signInTitle)
	if !res.hasError() {
		t.Fatal("no #error after an expired OTP step")
	}
}

func TestOTPGuessingIsLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	page := b.signIn(t, b.get(t, e.start(strong).authURL), "alice")
	wrong := e.wrongCode(t, "alice")
	first := page
	for range 4 {
		page = b.enterCode(t, page, wrong)
		wantPage(t, page, otpTitle)
	}
	page = b.enterCode(t, page, wrong)
	wantPage(t, page, signInTitle) // the fifth wrong code ends the step
	// The token is gone: even the right code is refused now.
	wantPage(t, b.enterCode(t, first, e.code(t, "alice")), signInTitle)
}

func TestDevHintNeedsThePendingLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	page := b.signIn(t, b.get(t, e.start(strong).authURL), "alice")
	res := b.submit(t, page, url.Values{"step": {"code"}}, nil)
	if res.status != http.StatusOK || res.body != e.code(t, "alice") {
		t.Fatalf("hint: status %d body %q, want alice's code", res.status, res.body)
	}
	res = b.submit(t, page, url.Values{"step": {"code"}, "token": {"guessed"}}, nil)
	if res.status != http.StatusGone {
		t.Fatalf("hint with a guessed token: status %d, want 410", res.status)
	}
}

func TestUnknownAuthRequestIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	if res := b.get(t, e.idp.Issuer()+"/login?id=nope"); res.status != http.StatusBadRequest {
		t.Fatalf("GET unknown id: status %d, want 400", res.status)
	}
	page := b.get(t, e.start(basic).authURL)
	form := url.Values{"id": {"nope"}, "username": {"alice"}, "password": {devidp.Password}}
	if res := b.submit(t, page, form, nil); res.status != http.StatusBadRequest {
		t.Fatalf("POST unknown id: status %d, want 400", res.status)
	}
}

func TestStartValidates(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]devidp.Config{
		"public address":         {Addr: "0.0.0.0:0"},
		"negative IDTokenTTL":    {Addr: "127.0.0.1:0", IDTokenTTL: -time.Second},
		"negative SessionExpiry": {Addr: "127.0.0.1:0", SessionExpiry: -time.Second},
		"receiver without URL":   {Addr: "127.0.0.1:0", Receivers: []devidp.Receiver{{Audience: "https://rp.example"}}},
		"receiver without aud":   {Addr: "127.0.0.1:0", Receivers: []devidp.Receiver{{URL: "http://127.0.0.1:9/ssf/events"}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if idp, err := devidp.Start(cfg); err == nil {
				idp.Close()
				t.Errorf("%s: Start succeeded", name)
			}
		})
	}
	e := newEnv(t, devidp.Config{})
	if _, err := e.idp.Code("mallory"); err == nil {
		t.Error("Code of an unknown user succeeded")
	}
	if got := e.idp.Users(); len(got) != 2 || got[0] != (devidp.User{Name: "alice", Subject: "alice"}) || got[1] != (devidp.User{Name: "bob", Subject: "bob"}) {
		t.Errorf("Users = %v", got)
	}
}
