package devidp_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

const (
	clientID     = "admin-console"
	clientSecret = "admin-secret"
	// redirectURI is never dialled: the browser stops at the redirect to it.
	redirectURI = "http://127.0.0.1:9/callback"
)

// env is an IdP on a free port with a fake clock, and an RP registered at it
// that uses x/oauth2 with PKCE and go-oidc, as the stepup library does.
type env struct {
	idp      *devidp.IdP
	clock    *stepuptest.Clock
	ctx      context.Context // carries the RP's http.Client
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// newEnv starts an IdP with cfg plus a free port, the fake clock and the
// test client; it is closed when the test ends.
func newEnv(t *testing.T, cfg devidp.Config) *env {
	t.Helper()
	// Whole seconds near the real time: auth_time looks like a real one.
	c := stepuptest.NewClock(time.Now().Truncate(time.Second))
	cfg.Addr = "127.0.0.1:0"
	cfg.Now = c.Now
	cfg.Clients = append(cfg.Clients, stepuptest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}})
	idp, err := devidp.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := idp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx := oidc.ClientContext(t.Context(), &http.Client{Transport: tr, Timeout: 10 * time.Second})
	provider, err := oidc.NewProvider(ctx, idp.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &env{
		idp:   idp,
		clock: c,
		ctx:   ctx,
		oauth: oauth2.Config{
			ClientID: clientID, ClientSecret: clientSecret, Endpoint: ep,
			RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID},
		},
		verifier: provider.Verifier(&oidc.Config{ClientID: clientID}),
	}
}

// flow is one authorization request as the RP made it.
type flow struct {
	state, nonce, verifier, authURL string
}

// params are extra authorization request parameters, e.g. acr_values.
type params map[string]string

func (e *env) start(p params) flow {
	f := flow{state: oauth2.GenerateVerifier()[:12], nonce: oauth2.GenerateVerifier()[:12], verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), oidc.Nonce(f.nonce)}
	for k, v := range p {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	f.authURL = e.oauth.AuthCodeURL(f.state, opts...)
	return f
}

// claims are the ID token claims the tests read.
type claims struct {
	Sub           string   `json:"sub"`
	ACR           string   `json:"acr"`
	AMR           []string `json:"amr"`
	AuthTime      int64    `json:"auth_time"`
	SID           string   `json:"sid"`
	SessionExpiry *int64   `json:"session_expiry"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
}

// finish checks that res is the successful redirect to the RP for f,
// redeems the code with the PKCE verifier, verifies the ID token and its
// nonce, and returns its claims.
func (e *env) finish(t *testing.T, f flow, res result) claims {
	t.Helper()
	c, _ := e.redeem(t, f, res)
	return c
}

// redeem is finish that also returns the token response.
func (e *env) redeem(t *testing.T, f flow, res result) (claims, *oauth2.Token) {
	t.Helper()
	cb := res.callback
	if cb == nil {
		t.Fatalf("browser at %s (status %d, title %q), want a redirect to the RP", res.url, res.status, res.title())
	}
	if got := cb.Query().Get("state"); got != f.state {
		t.Fatalf("state = %q, want %q", got, f.state)
	}
	if e := cb.Query().Get("error"); e != "" {
		t.Fatalf("RP got error=%s", e)
	}
	tok, err := e.oauth.Exchange(e.ctx, cb.Query().Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := e.verifier.Verify(e.ctx, raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if idt.Nonce != f.nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, f.nonce)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return c, tok
}

// browser is a user agent with a cookie jar that stops when it is sent to
// the RP.
type browser struct {
	c   *http.Client
	jar *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{jar: jar, c: &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirectURI) {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

// result is where the browser ended: a page at the IdP, or a redirect to
// the RP (callback).
type result struct {
	status   int
	url      *url.URL
	body     string
	callback *url.URL
}

var (
	titleRE    = regexp.MustCompile(`<title>([^<]*)</title>`)
	hiddenRE   = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	selectedRE = regexp.MustCompile(`<option value="([^"]+)" selected>`)
	devCodeRE  = regexp.MustCompile(`<p id="dev-code">Current code for ([a-z]+): <code>([0-9]{6})</code></p>`)
)

func (r result) title() string {
	m := titleRE.FindStringSubmatch(r.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// hidden returns the hidden fields of the page's form.
func (r result) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(r.body, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

func (r result) selected() string {
	m := selectedRE.FindStringSubmatch(r.body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (r result) hasError() bool { return strings.Contains(r.body, `id="error"`) }

func (b *browser) do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := result{status: resp.StatusCode, url: resp.Request.URL, body: string(body)}
	if resp.StatusCode == http.StatusFound {
		if loc, err := resp.Location(); err == nil && strings.HasPrefix(loc.String(), redirectURI) {
			res.callback = loc
		}
	}
	return res
}

func (b *browser) get(t *testing.T, u string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// submit posts the page's hidden fields plus fields to the form's action,
// /login on the page's origin, with the headers a same-origin form post
// carries unless hdr overrides them.
func (b *browser) submit(t *testing.T, page result, fields url.Values, hdr http.Header) result {
	t.Helper()
	form := page.hidden()
	for k, v := range fields {
		form[k] = v
	}
	action := &url.URL{Scheme: page.url.Scheme, Host: page.url.Host, Path: "/login"}
	req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range hdr {
		req.Header[k] = v
	}
	return b.do(t, req)
}

const (
	signInTitle = "Dev IdP — sign in"
	otpTitle    = "Dev IdP — one-time code"
)

// wantPage fails the test unless res is the IdP page titled title.
func wantPage(t *testing.T, res result, title string) {
	t.Helper()
	if res.callback != nil {
		t.Fatalf("browser sent to the RP (%s), want the page %q", res.callback, title)
	}
	if res.status != http.StatusOK || res.title() != title {
		t.Fatalf("status %d, title %q at %s, want 200 %q", res.status, res.title(), res.url, title)
	}
}

// signIn submits the sign-in form on page as user with the right password.
func (b *browser) signIn(t *testing.T, page result, user string) result {
	t.Helper()
	wantPage(t, page, signInTitle)
	return b.submit(t, page, url.Values{"username": {user}, "password": {devidp.Password}}, nil)
}

// enterCode submits the one-time code form on page with code.
func (b *browser) enterCode(t *testing.T, page result, code string) result {
	t.Helper()
	wantPage(t, page, otpTitle)
	return b.submit(t, page, url.Values{"otp": {code}}, nil)
}

// code returns the user's current code, as the OTP page shows it.
func (e *env) code(t *testing.T, user string) string {
	t.Helper()
	c, err := e.idp.Code(user)
	if err != nil {
		t.Fatalf("Code(%q): %v", user, err)
	}
	return c
}

// wrongCode returns a code that is not the user's in the accepted window.
func (e *env) wrongCode(t *testing.T, user string) string {
	t.Helper()
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 60 * time.Second, -30 * time.Second} {
		e.clock.Advance(d) // t-30s, t+30s, back to t
		valid[e.code(t, user)] = true
	}
	for n := 0; ; n++ {
		c := strings.Repeat(string(rune('0'+n%10)), 6)
		if !valid[c] {
			return c
		}
	}
}
