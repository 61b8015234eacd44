package stepuptest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCodeFlowClaimsRoundTrip(t *testing.T) {
	t.Parallel()
	authTime := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	sessionExpiry := time.Now().Add(time.Hour).Truncate(time.Second)
	r := newRP(t, stepuptest.Config{
		Authenticate: func(req stepuptest.AuthRequest) stepuptest.Login {
			return stepuptest.Login{
				Subject:         "bob",
				AMR:             []string{"pwd", "otp"},
				AuthTime:        authTime,
				IDTokenLifetime: 2 * time.Minute,
				SessionExpiry:   sessionExpiry,
				Claims:          map[string]any{"acrs": []string{"c2", "c3"}},
			}
		},
	})
	claimsParam := `{"id_token":{"acr":{"essential":true,"values":["c2"]}}}`
	f := r.Start(
		oauth2.SetAuthURLParam("acr_values", "c2 c3"),
		oauth2.SetAuthURLParam("max_age", "300"),
		oauth2.SetAuthURLParam("prompt", "login"),
		oauth2.SetAuthURLParam("login_hint", "bob@example.com"),
		oauth2.SetAuthURLParam("claims", claimsParam),
	)
	cb, hops := r.browse(t, f.AuthURL)
	if want := []string{"/login", "/authorize/callback"}; !slices.Equal(hops, want) {
		t.Errorf("browser went through %v, want %v and no page", hops, want)
	}
	if cb.Query().Get("state") != f.State || cb.Query().Get("code") == "" {
		t.Fatalf("callback = %s, want code and state %q", cb, f.State)
	}
	if cb.Query().Has("iss") {
		t.Errorf("callback has iss without IssParameter: %s", cb)
	}
	idt, _ := r.exchange(t, f, cb)

	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.Iss != r.p.Issuer() || c.Sub != "bob" || c.AZP != clientID || c.Nonce != f.Nonce {
		t.Errorf("iss, sub, azp, nonce = %q, %q, %q, %q", c.Iss, c.Sub, c.AZP, c.Nonce)
	}
	if !slices.Equal(idt.Audience, []string{clientID}) {
		t.Errorf("aud = %v, want [%s]", idt.Audience, clientID)
	}
	if c.ACR == nil || *c.ACR != "c2" {
		t.Errorf("acr = %v, want the first acr_values value c2", c.ACR)
	}
	if !slices.Equal(c.AMR, []string{"pwd", "otp"}) {
		t.Errorf("amr = %v", c.AMR)
	}
	if c.AuthTime == nil || *c.AuthTime != authTime.Unix() {
		t.Errorf("auth_time = %v, want %d", c.AuthTime, authTime.Unix())
	}
	if d := c.Exp - c.Iat; d != 120 && d != 121 {
		t.Errorf("exp - iat = %ds, want the 120s lifetime", d)
	}
	if now := time.Now().Unix(); c.Iat < now-5 || c.Iat > now {
		t.Errorf("iat = %d, now %d", c.Iat, now)
	}
	if c.SessionExpiry == nil || *c.SessionExpiry != sessionExpiry.Unix() {
		t.Errorf("session_expiry = %v, want %d", c.SessionExpiry, sessionExpiry.Unix())
	}
	if !slices.Equal(c.ACRs, []string{"c2", "c3"}) {
		t.Errorf("acrs = %v", c.ACRs)
	}

	reqs := r.p.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests() has %d entries, want 1", len(reqs))
	}
	got := reqs[0]
	if got.ClientID != clientID || got.RedirectURI != redirectURI || got.State != f.State || got.Nonce != f.Nonce ||
		got.LoginHint != "bob@example.com" || got.Claims != claimsParam ||
		got.CodeChallenge != oauth2.S256ChallengeFromVerifier(f.Verifier) || got.CodeChallengeMethod != "S256" {
		t.Errorf("recorded request = %+v", got)
	}
	if !slices.Equal(got.ACRValues, []string{"c2", "c3"}) || !slices.Equal(got.Prompt, []string{"login"}) ||
		!slices.Equal(got.Scopes, []string{"openid"}) {
		t.Errorf("acr_values, prompt, scope = %v, %v, %v", got.ACRValues, got.Prompt, got.Scopes)
	}
	if got.MaxAge == nil || *got.MaxAge != 300 {
		t.Errorf("max_age = %v, want 300", got.MaxAge)
	}
	if byID, ok := r.p.AuthRequest(got.ID); !ok || byID.State != f.State {
		t.Errorf("AuthRequest(%q) = %+v, %v", got.ID, byID, ok)
	}
}

func TestDefaultLogin(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	f, cb := r.login(t, oauth2.SetAuthURLParam("prompt", "login"))
	idt, _ := r.exchange(t, f, cb)
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.Sub != "alice" || c.ACR != nil || !slices.Equal(c.AMR, []string{"pwd"}) || c.SessionExpiry != nil {
		t.Errorf("sub, acr, amr, session_expiry = %q, %v, %v, %v", c.Sub, c.ACR, c.AMR, c.SessionExpiry)
	}
	if c.AuthTime == nil || *c.AuthTime < c.Iat-5 || *c.AuthTime > c.Iat {
		t.Errorf("auth_time = %v, want the login moment, iat %d", c.AuthTime, c.Iat)
	}
	if d := c.Exp - c.Iat; d != 300 && d != 301 {
		t.Errorf("exp - iat = %ds, want the default 300s", d)
	}
	if m := r.p.Requests()[0].MaxAge; m != nil {
		t.Errorf("max_age = %d, want nil: the RP did not send it (zitadel sets 0 for prompt=login)", *m)
	}
}

func TestErrorLoginReturnsToRedirectURI(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"access_denied", "login_required", "unmet_authentication_requirements"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			r := newRP(t, stepuptest.Config{Authenticate: func(stepuptest.AuthRequest) stepuptest.Login {
				return stepuptest.Login{Error: code, ErrorDescription: "no"}
			}})
			f := r.Start()
			cb, _ := r.browse(t, f.AuthURL)
			q := cb.Query()
			if q.Get("error") != code || q.Get("error_description") != "no" || q.Get("state") != f.State || q.Has("code") {
				t.Errorf("callback = %s, want error=%s, state=%s and no code", cb, code, f.State)
			}
		})
	}
}

func TestIssParameter(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[on], func(t *testing.T) {
			t.Parallel()
			r := newRP(t, stepuptest.Config{IssParameter: on})
			resp, err := r.client.Get(r.p.Issuer() + "/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := doc["authorization_response_iss_parameter_supported"].(bool); got != on {
				t.Errorf("discovery iss_parameter_supported = %v, want %v", doc["authorization_response_iss_parameter_supported"], on)
			}
			if doc["issuer"] != r.p.Issuer() {
				t.Errorf("discovery issuer = %v", doc["issuer"])
			}

			_, cb := r.login(t)
			if got := cb.Query().Get("iss"); (got == r.p.Issuer()) != on || (!on && cb.Query().Has("iss")) {
				t.Errorf("success callback %s: iss = %q, want it iff IssParameter", cb, got)
			}
			r.p.SetAuthenticate(func(stepuptest.AuthRequest) stepuptest.Login { return stepuptest.Login{Error: "access_denied"} })
			cb, _ = r.browse(t, r.Start().AuthURL)
			if got := cb.Query().Get("iss"); (got == r.p.Issuer()) != on || cb.Query().Get("error") != "access_denied" {
				t.Errorf("error callback %s: iss = %q, want it iff IssParameter", cb, got)
			}
			// An error from zitadel's own validation is an authorization response too.
			u, _ := url.Parse(r.Start().AuthURL)
			q := u.Query()
			q.Set("code_challenge_method", "S512")
			u.RawQuery = q.Encode()
			cb, _ = r.browse(t, u.String())
			if got := cb.Query().Get("iss"); (got == r.p.Issuer()) != on || cb.Query().Get("error") != "invalid_request" {
				t.Errorf("validation error callback %s: iss = %q, want it iff IssParameter", cb, got)
			}
		})
	}
}

func TestWrongPKCEVerifierRejected(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	f, cb := r.login(t)
	code := cb.Query().Get("code")
	_, err := r.OAuth2.Exchange(r.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantTokenError(t, err, "invalid_grant")
	_, err = r.OAuth2.Exchange(r.ctx, code)
	wantTokenError(t, err, "invalid_request")
	// zitadel keeps the code after a failed verifier: the right one still works.
	r.exchange(t, f, cb)
}

func TestCodeReplayRejected(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	f, cb := r.login(t)
	r.exchange(t, f, cb)
	_, err := r.OAuth2.Exchange(r.ctx, cb.Query().Get("code"), oauth2.VerifierOption(f.Verifier))
	wantTokenError(t, err, "invalid_grant")
}

func TestWrongClientSecretRejected(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	f, cb := r.login(t)
	bad := r.OAuth2
	bad.ClientSecret = "guess"
	_, err := bad.Exchange(r.ctx, cb.Query().Get("code"), oauth2.VerifierOption(f.Verifier))
	wantTokenError(t, err, "invalid_client")
}

func TestRewriteNextIDToken(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	var seen map[string]any
	r.p.RewriteNextIDToken(func(claims map[string]any) (string, error) {
		seen = claims
		claims["acr"] = "forged"
		return r.p.Sign(claims)
	})
	f, cb := r.login(t, oauth2.SetAuthURLParam("acr_values", "c1"))
	idt, _ := r.exchange(t, f, cb)
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.ACR == nil || *c.ACR != "forged" {
		t.Errorf("acr = %v, want the rewritten value", c.ACR)
	}
	if seen["sub"] != "alice" || seen["nonce"] != f.Nonce {
		t.Errorf("fn saw claims %v, want the honest token's", seen)
	}

	// One-shot: the next token is honest again.
	f, cb = r.login(t, oauth2.SetAuthURLParam("acr_values", "c1"))
	idt, _ = r.exchange(t, f, cb)
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.ACR == nil || *c.ACR != "c1" {
		t.Errorf("acr = %v after the one-shot rewrite, want c1", c.ACR)
	}
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	keys := oidc.NewRemoteKeySet(r.ctx, r.p.Issuer()+"/keys")
	verifier := oidc.NewVerifier(r.p.Issuer(), keys, &oidc.Config{ClientID: clientID})

	oldKID := r.p.KeyID()
	f, cb := r.login(t)
	_, oldRaw := r.exchange(t, f, cb)
	if _, err := verifier.Verify(r.ctx, oldRaw); err != nil {
		t.Fatalf("verify before rotation: %v", err)
	}

	if err := r.p.RotateKey(); err != nil {
		t.Fatal(err)
	}
	newKID := r.p.KeyID()
	if newKID == oldKID {
		t.Fatal("RotateKey kept the kid")
	}
	f, cb = r.login(t)
	_, newRaw := r.exchange(t, f, cb)
	jws, err := jose.ParseSigned(newRaw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if kid := jws.Signatures[0].Header.KeyID; kid != newKID {
		t.Errorf("new token kid = %q, want %q", kid, newKID)
	}
	if _, err := verifier.Verify(r.ctx, newRaw); err != nil {
		t.Errorf("verify after rotation with a cached key set: %v", err)
	}
	if _, err := verifier.Verify(r.ctx, oldRaw); err != nil {
		t.Errorf("token signed before rotation no longer verifies: %v", err)
	}
}

func TestInteractiveLoginHandler(t *testing.T) {
	t.Parallel()
	var p *stepuptest.Provider
	var mu sync.Mutex
	var gotHint string
	login := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ar, ok := p.AuthRequest(req.URL.Query().Get("id"))
		if !ok {
			http.Error(w, "unknown", http.StatusBadRequest)
			return
		}
		mu.Lock()
		gotHint = ar.LoginHint
		mu.Unlock()
		p.Finish(w, req, ar.ID, stepuptest.Login{Subject: ar.LoginHint})
	})
	r := newRP(t, stepuptest.Config{LoginHandler: login})
	p = r.p
	f, cb := r.login(t, oauth2.SetAuthURLParam("login_hint", "carol"))
	idt, _ := r.exchange(t, f, cb)
	mu.Lock()
	defer mu.Unlock()
	if gotHint != "carol" || idt.Subject != "carol" {
		t.Errorf("login_hint seen %q, sub %q, want carol", gotHint, idt.Subject)
	}
}

func TestConcurrentFlows(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	t.Run("group", func(t *testing.T) {
		for i := range 6 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				if i%2 == 0 {
					r.p.SetAuthenticate(stepuptest.DefaultAuthenticate)
					_ = r.p.Requests()
					r.p.RewriteNextIDToken(func(c map[string]any) (string, error) { return r.p.Sign(c) })
				}
				f, cb := r.login(t)
				r.exchange(t, f, cb)
			})
		}
	})
	if n := len(r.p.Requests()); n != 6 {
		t.Errorf("Requests() has %d entries, want 6", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]stepuptest.Config{
		"non-loopback addr": {Addr: "0.0.0.0:0"},
		"bad addr":          {Addr: "127.0.0.1"},
		"HS256":             {IDTokenSigningAlg: "HS256"},
		"none":              {IDTokenSigningAlg: "none"},
		"empty client ID":   {Clients: []stepuptest.Client{{Secret: "s"}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := stepuptest.New(cfg)
			if err == nil {
				p.Close()
				t.Fatal("New succeeded")
			}
			if !strings.HasPrefix(err.Error(), "stepuptest: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestCloseLeaksNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := stepuptest.New(stepuptest.Config{
		Clients: []stepuptest.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // leaves a keep-alive connection open for Close to end
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := (&http.Client{Transport: tr, Timeout: time.Second}).Get(p.Issuer() + "/keys"); err == nil {
		t.Error("provider still answers after Close")
	}
}
