package stepuptest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

const (
	clientID     = "rp"
	clientSecret = "rp-secret"
	// redirectURI is never dialled: the browser stops at the redirect to it.
	redirectURI = "http://127.0.0.1:9/callback"
)

// rp is a relying party wired to a provider the way the stepup library wires
// itself: discovery, x/oauth2 with client_secret_basic, go-oidc verification.
type rp struct {
	p        *stepuptest.Provider
	client   *http.Client
	ctx      context.Context // carries client for oauth2 and go-oidc
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// newRP starts a provider with cfg plus the test client and returns an RP for
// it. The provider is closed when the test ends.
func newRP(t *testing.T, cfg stepuptest.Config) *rp {
	t.Helper()
	cfg.Clients = append(cfg.Clients, stepuptest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}})
	p, err := stepuptest.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx := oidc.ClientContext(t.Context(), client)
	provider, err := oidc.NewProvider(ctx, p.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &rp{
		p:      p,
		client: client,
		ctx:    ctx,
		oauth: oauth2.Config{
			ClientID:     clientID,
			ClientSecret: clientSecret,
			Endpoint:     ep,
			RedirectURL:  redirectURI,
			Scopes:       []string{oidc.ScopeOpenID},
		},
		verifier: provider.Verifier(&oidc.Config{ClientID: clientID}),
	}
}

// flow is one authorization request as the RP made it.
type flow struct {
	state, nonce, verifier string
	authURL                string
}

func (r *rp) start(opts ...oauth2.AuthCodeOption) flow {
	f := flow{state: "st-" + oauth2.GenerateVerifier()[:8], nonce: "n-" + oauth2.GenerateVerifier()[:8], verifier: oauth2.GenerateVerifier()}
	opts = append(opts, oauth2.S256ChallengeOption(f.verifier), oidc.Nonce(f.nonce))
	f.authURL = r.oauth.AuthCodeURL(f.state, opts...)
	return f
}

// browse follows the authorization URL like a browser with a cookie jar and
// returns the URL it was finally sent to on the RP, and the URLs it passed
// through. It fails the test if any page other than a redirect is served.
func browse(t *testing.T, authURL string) (*url.URL, []string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var hops []string
	c := &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirectURI) {
				return http.ErrUseLastResponse
			}
			hops = append(hops, req.URL.Path)
			return nil
		},
	}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("browse: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("browse: ended with status %d at %s, want a 302 to the RP", resp.StatusCode, resp.Request.URL)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("browse: %v", err)
	}
	return loc, hops
}

// login runs a whole flow and returns the code and the RP callback URL.
func (r *rp) login(t *testing.T, opts ...oauth2.AuthCodeOption) (flow, *url.URL) {
	t.Helper()
	f := r.start(opts...)
	cb, _ := browse(t, f.authURL)
	if got := cb.Query().Get("state"); got != f.state {
		t.Fatalf("state = %q, want %q", got, f.state)
	}
	if cb.Query().Get("code") == "" {
		t.Fatalf("no code in callback %s", cb)
	}
	return f, cb
}

// exchange redeems the code from cb with the PKCE verifier and verifies the
// ID token with go-oidc, including the nonce, which go-oidc leaves to callers.
func (r *rp) exchange(t *testing.T, f flow, cb *url.URL) (*oidc.IDToken, string) {
	t.Helper()
	tok, err := r.oauth.Exchange(r.ctx, cb.Query().Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(r.ctx, raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if idt.Nonce != f.nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, f.nonce)
	}
	return idt, raw
}

// wantTokenError asserts that err is a token endpoint error with code.
func wantTokenError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a token endpoint error %q", err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("error = %q (%s), want %q", re.ErrorCode, re.ErrorDescription, code)
	}
}

// idClaims are the ID token claims the tests read through IDToken.Claims.
type idClaims struct {
	Iss           string   `json:"iss"`
	Sub           string   `json:"sub"`
	Aud           any      `json:"aud"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
	AuthTime      *int64   `json:"auth_time"`
	Nonce         string   `json:"nonce"`
	ACR           *string  `json:"acr"`
	AMR           []string `json:"amr"`
	AZP           string   `json:"azp"`
	SessionExpiry *int64   `json:"session_expiry"`
	ACRs          []string `json:"acrs"`
}
