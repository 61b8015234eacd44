package devidp_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
)

var (
	basic  = params{"acr_values": devidp.BasicACR}
	strong = params{"acr_values": devidp.StrongACR}
)

// with returns p plus the key and value.
func with(p params, kv ...string) params {
	out := params{}
	for k, v := range p {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func wantAMR(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("amr = %v, want %v", got, want)
	}
}

// login runs a whole interactive login of user in b for request p.
func (e *env) login(t *testing.T, b *browser, p params, user string) claims {
	t.Helper()
	f := e.start(p)
	res := b.signIn(t, b.get(t, f.authURL), user)
	if res.title() == otpTitle {
		res = b.enterCode(t, res, e.code(t, user))
	}
	return e.finish(t, f, res)
}

func TestBasicLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	f := e.start(basic)
	page := b.get(t, f.authURL)
	wantPage(t, page, signInTitle)
	for _, want := range []string{`<select id="username" name="username">`, `<input id="password" type="password" name="password"`,
		`<button id="login" type="submit">Sign in</button>`, `<button id="cancel" name="cancel" value="1"`,
		`<label for="username">`, `<label for="password">`, "alice", "bob", "<code>" + devidp.Password + "</code>"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	c := e.finish(t, f, b.signIn(t, page, "alice"))
	if c.Sub != "alice" || c.ACR != devidp.BasicACR || c.SID == "" || c.SessionExpiry != nil {
		t.Fatalf("claims = %+v, want sub alice, acr %s, a sid, no session_expiry", c, devidp.BasicACR)
	}
	wantAMR(t, c.AMR, "pwd")
	if c.AuthTime != e.clock.Now().Unix() {
		t.Errorf("auth_time = %d, want %d", c.AuthTime, e.clock.Now().Unix())
	}
}

func TestStrongLogin(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]params{
		"acr_values": strong,
		"claims":     {"claims": `{"id_token":{"acr":{"essential":true,"values":["` + devidp.StrongACR + `"]}}}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, devidp.Config{})
			b := newBrowser(t)
			f := e.start(p)
			page := b.signIn(t, b.get(t, f.authURL), "bob")
			wantPage(t, page, otpTitle)
			for _, want := range []string{`<input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code"`,
				`<button id="verify" type="submit">Verify</button>`, `<label for="otp">`} {
				if !strings.Contains(page.body, want) {
					t.Errorf("OTP page lacks %s", want)
				}
			}
			m := devCodeRE.FindStringSubmatch(page.body)
			if m == nil || m[1] != "bob" || m[2] != e.code(t, "bob") {
				t.Fatalf("dev hint = %v, want bob's current code %s", m, e.code(t, "bob"))
			}
			if strings.Contains(page.body, `value="`+m[2]+`"`) {
				t.Fatal("the OTP page fills in the code")
			}

			page = b.enterCode(t, page, e.wrongCode(t, "bob"))
			wantPage(t, page, otpTitle)
			if !page.hasError() {
				t.Fatal("wrong code: no #error on the page")
			}

			e.clock.Advance(30 * time.Second) // a new code, the old one still in the window
			c := e.finish(t, f, b.enterCode(t, page, e.code(t, "bob")))
			if c.Sub != "bob" || c.ACR != devidp.StrongACR || c.SID == "" {
				t.Fatalf("claims = %+v, want sub bob, acr %s, a sid", c, devidp.StrongACR)
			}
			wantAMR(t, c.AMR, "pwd", "otp")
		})
	}
}

func TestIDTokenTTL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		ttl, want time.Duration
	}{
		{"DefaultIsFiveMinutes", 0, 5 * time.Minute},
		{"TwoMinutes", 2 * time.Minute, 2 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, devidp.Config{IDTokenTTL: tt.ttl})
			c := e.login(t, newBrowser(t), basic, "alice")
			// zitadel reads the real clock twice: exp - iat may be a second more.
			if d := time.Duration(c.Exp-c.Iat) * time.Second; d < tt.want || d > tt.want+time.Second {
				t.Errorf("IDTokenTTL %v: exp - iat = %v, want %v", tt.ttl, d, tt.want)
			}
		})
	}
}

func TestUnknownACRIsTreatedAsBasic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	c := e.login(t, newBrowser(t), params{"acr_values": "urn:other:gold"}, "alice")
	if c.ACR != devidp.BasicACR {
		t.Fatalf("acr = %q, want %q", c.ACR, devidp.BasicACR)
	}
	wantAMR(t, c.AMR, "pwd")
}

func TestSingleSignOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	first := e.login(t, b, basic, "alice")
	e.clock.Advance(2 * time.Minute)

	t.Run("max_age=600 without a page", func(t *testing.T) {
		f := e.start(with(basic, "max_age", "600"))
		c := e.finish(t, f, b.get(t, f.authURL))
		if c.AuthTime != first.AuthTime || c.SID != first.SID || c.ACR != devidp.BasicACR {
			t.Fatalf("SSO claims = %+v, want auth_time %d, sid %s, acr %s", c, first.AuthTime, first.SID, devidp.BasicACR)
		}
		wantAMR(t, c.AMR, "pwd")
	})
	t.Run("no parameters, no page", func(t *testing.T) {
		f := e.start(nil)
		if c := e.finish(t, f, b.get(t, f.authURL)); c.AuthTime != first.AuthTime {
			t.Fatalf("auth_time = %d, want %d", c.AuthTime, first.AuthTime)
		}
	})
	for name, p := range map[string]params{
		"max_age=0":      with(basic, "max_age", "0"),
		"max_age passed": with(basic, "max_age", "60"),
		"prompt=login":   with(basic, "prompt", "login", "max_age", "600"),
	} {
		t.Run(name+" re-prompts", func(t *testing.T) {
			page := b.get(t, e.start(p).authURL)
			wantPage(t, page, signInTitle)
			if page.selected() != "alice" {
				t.Errorf("selected user = %q, want the session's alice", page.selected())
			}
		})
	}
	t.Run("strong after basic demands password and code", func(t *testing.T) {
		f := e.start(with(strong, "max_age", "600"))
		page := b.signIn(t, b.get(t, f.authURL), "alice")
		wantPage(t, page, otpTitle)
		c := e.finish(t, f, b.enterCode(t, page, e.code(t, "alice")))
		if c.ACR != devidp.StrongACR || c.AuthTime != e.clock.Now().Unix() || c.SID != first.SID {
			t.Fatalf("claims = %+v, want acr %s, a new auth_time, the same sid", c, devidp.StrongACR)
		}
		wantAMR(t, c.AMR, "pwd", "otp")

		f = e.start(strong) // and now the strong session signs on alone
		if c2 := e.finish(t, f, b.get(t, f.authURL)); c2.ACR != devidp.StrongACR || c2.AuthTime != c.AuthTime {
			t.Fatalf("strong SSO claims = %+v, want acr %s, auth_time %d", c2, devidp.StrongACR, c.AuthTime)
		}
	})
}

func TestLoginHintForAnotherUserShowsForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	e.login(t, b, basic, "alice")

	f := e.start(with(basic, "login_hint", "bob"))
	page := b.get(t, f.authURL)
	wantPage(t, page, signInTitle)
	if page.selected() != "bob" {
		t.Fatalf("selected user = %q, want bob", page.selected())
	}
	if c := e.finish(t, f, b.signIn(t, page, "bob")); c.Sub != "bob" {
		t.Fatalf("sub = %q, want bob", c.Sub)
	}

	f = e.start(with(basic, "login_hint", "bob")) // bob's session now
	if c := e.finish(t, f, b.get(t, f.authURL)); c.Sub != "bob" {
		t.Fatalf("SSO sub = %q, want bob", c.Sub)
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{SessionExpiry: 8 * time.Hour})
	b := newBrowser(t)
	loginTime := e.clock.Now()
	want := loginTime.Add(8 * time.Hour).Unix()
	first := e.login(t, b, basic, "alice")
	if first.SessionExpiry == nil || *first.SessionExpiry != want {
		t.Fatalf("session_expiry = %v, want %d", first.SessionExpiry, want)
	}

	e.clock.Advance(10 * time.Minute)
	f := e.start(basic)
	c := e.finish(t, f, b.get(t, f.authURL))
	if c.SessionExpiry == nil || *c.SessionExpiry != want || c.SID != first.SID {
		t.Fatalf("SSO: session_expiry = %v, sid %s; want %d, %s", c.SessionExpiry, c.SID, want, first.SID)
	}

	e.clock.Advance(10 * time.Minute) // re-authentication keeps the session
	c = e.login(t, b, strong, "alice")
	if c.SessionExpiry == nil || *c.SessionExpiry != want || c.AuthTime != e.clock.Now().Unix() {
		t.Fatalf("step-up: session_expiry = %v, auth_time %d; want %d, %d", c.SessionExpiry, c.AuthTime, want, e.clock.Now().Unix())
	}

	e.clock.Advance(8 * time.Hour) // the session has ended
	f = e.start(basic)
	page := b.get(t, f.authURL)
	wantPage(t, page, signInTitle)
	c = e.finish(t, f, b.signIn(t, page, "alice"))
	if c.SessionExpiry == nil || *c.SessionExpiry != e.clock.Now().Add(8*time.Hour).Unix() || c.SID == first.SID {
		t.Fatalf("after expiry: session_expiry = %v, sid %s; want a new session", c.SessionExpiry, c.SID)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	for name, p := range map[string]params{"sign-in page": basic, "OTP page": strong} {
		t.Run(name, func(t *testing.T) {
			f := e.start(p)
			page := b.get(t, f.authURL)
			if name == "OTP page" {
				page = b.signIn(t, page, "alice")
				wantPage(t, page, otpTitle)
			}
			res := b.submit(t, page, url.Values{"cancel": {"1"}}, nil)
			if res.callback == nil {
				t.Fatalf("cancel: status %d at %s, want a redirect to the RP", res.status, res.url)
			}
			if q := res.callback.Query(); q.Get("error") != "access_denied" || q.Get("state") != f.state || q.Get("code") != "" {
				t.Fatalf("callback = %s, want error=access_denied with state", res.callback)
			}
		})
	}
}

func TestWrongPasswordIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	f := e.start(basic)
	page := b.get(t, f.authURL)
	for _, tc := range []struct {
		name   string
		fields url.Values
	}{
		{"WrongPassword", url.Values{"username": {"alice"}, "password": {"wrong"}}},
		{"EmptyPassword", url.Values{"username": {"alice"}, "password": {""}}},
		{"UnknownUser", url.Values{"username": {"mallory"}, "password": {devidp.Password}}},
	} {
		// Each row posts the form the row before got back, as a user
		// retrying would.
		t.Run(tc.name, func(t *testing.T) {
			res := b.submit(t, page, tc.fields, nil)
			wantPage(t, res, signInTitle)
			if !res.hasError() {
				t.Fatalf("%v: no #error on the page", tc.fields)
			}
			page = res
		})
	}
	if c := e.finish(t, f, b.signIn(t, page, "alice")); c.Sub != "alice" {
		t.Fatalf("sub = %q after retrying, want alice", c.Sub)
	}
}

func TestCrossOriginPOSTIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	f := e.start(basic)
	page := b.get(t, f.authURL)
	fields := url.Values{"username": {"alice"}, "password": {devidp.Password}}
	for name, hdr := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site": {"same-site"}},
		"foreign Origin":            {"Sec-Fetch-Site": nil, "Origin": {"http://evil.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			res := b.submit(t, page, fields, hdr)
			if res.status != http.StatusForbidden || res.callback != nil {
				t.Errorf("%s: status %d, callback %v; want 403", name, res.status, res.callback)
			}
		})
	}
	for _, step := range []string{"otp", "code"} { // every form, not just the first
		t.Run("cross-site step "+step, func(t *testing.T) {
			res := b.submit(t, page, url.Values{"step": {step}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
			if res.status != http.StatusForbidden {
				t.Errorf("step %s: status %d, want 403", step, res.status)
			}
		})
	}
	e.finish(t, f, b.signIn(t, page, "alice")) // the request is still there for the user
}

func TestPromptNoneWithoutSessionIsLoginRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	f := e.start(with(basic, "prompt", "none"))
	res := b.get(t, f.authURL)
	if res.callback == nil || res.callback.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none without a session: callback %v, want error=login_required", res.callback)
	}
	e.login(t, b, basic, "alice")
	f = e.start(with(basic, "prompt", "none"))
	if c := e.finish(t, f, b.get(t, f.authURL)); c.Sub != "alice" {
		t.Fatalf("prompt=none with a session: sub %q", c.Sub)
	}
	f = e.start(with(strong, "prompt", "none"))
	if res := b.get(t, f.authURL); res.callback == nil || res.callback.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none beyond the session's acr: callback %v, want error=login_required", res.callback)
	}
}
