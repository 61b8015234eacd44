package stepuptest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// RP is a relying party for tests, wired the way the stepup library wires
// itself: discovery, x/oauth2 with client_secret_basic (RFC 6749 §2.3.1),
// PKCE S256 (RFC 7636 §4), a nonce (OIDC Core §3.1.2.1), and go-oidc to
// verify the ID token. It stands in for an application's callback when a
// test is about the provider itself, or needs a real ID token from it.
//
// [RP.Login] runs a whole authorization code flow. [RP.Start], [RP.Browse]
// and [RP.Exchange] run it step by step, so that a test can change the
// authorization URL or the callback in between, or drive an interactive
// login page with a browser of its own and hand the callback it reaches to
// Exchange. It works with any provider that serves a discovery document, not
// only [Provider].
//
// An RP is safe for concurrent use; change its fields only before using it.
// It is for tests: it keeps no state between the steps (the caller holds the
// [Flow]) and trusts whatever the discovery document says.
type RP struct {
	// OAuth2 is the client's configuration: the discovered endpoints with
	// oauth2.AuthStyleInHeader, the client's ID and secret, the first of its
	// redirect URIs and the openid scope. A test may copy it and change a
	// field, such as the secret, to see the token endpoint refuse.
	OAuth2 oauth2.Config
	// Verifier verifies the provider's ID tokens for the client: the
	// signature against the provider's JWKS, iss, aud and exp
	// (OIDC Core §3.1.3.7).
	Verifier *oidc.IDTokenVerifier

	client *http.Client
}

// NewRP discovers issuer and returns an RP for the client c, which must be
// registered at the provider with at least one redirect URI; the RP uses the
// first. client carries every request the RP and [RP.Browse] make (Browse
// keeps its own cookie jar); nil means http.DefaultClient. A test that checks
// for leaked goroutines passes a client with a Transport of its own and
// closes its idle connections when it ends.
func NewRP(ctx context.Context, issuer string, c Client, client *http.Client) (*RP, error) {
	if len(c.RedirectURIs) == 0 {
		return nil, errors.New("stepuptest: NewRP: the client has no redirect URI")
	}
	if client == nil {
		client = http.DefaultClient
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), issuer)
	if err != nil {
		return nil, fmt.Errorf("stepuptest: NewRP: discovery: %w", err)
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	return &RP{
		OAuth2: oauth2.Config{
			ClientID:     c.ID,
			ClientSecret: c.Secret,
			Endpoint:     endpoint,
			RedirectURL:  c.RedirectURIs[0],
			Scopes:       []string{oidc.ScopeOpenID},
		},
		Verifier: provider.Verifier(&oidc.Config{ClientID: c.ID}),
		client:   client,
	}, nil
}

// Flow is one authorization request as the RP made it: what an
// application keeps in the user's session between the redirect to the
// provider and the callback.
type Flow struct {
	// State and Nonce are fresh random values (OIDC Core §3.1.2.1).
	State, Nonce string
	// Verifier is the PKCE code_verifier; the request carries its S256
	// code_challenge (RFC 7636 §4.1, §4.2).
	Verifier string
	// AuthURL is the authorization URL to send the browser to.
	AuthURL string
}

// Start begins an authorization request with a fresh state, nonce and PKCE
// verifier. opts add parameters, such as
// oauth2.SetAuthURLParam("acr_values", "urn:example:mfa").
func (rp *RP) Start(opts ...oauth2.AuthCodeOption) Flow {
	f := Flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	opts = append(opts, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce))
	f.AuthURL = rp.OAuth2.AuthCodeURL(f.State, opts...)
	return f
}

// Browse follows authURL as a browser with an empty cookie jar would,
// through every redirect, until the provider sends it to the RP's redirect
// URL. It returns that URL, not requested, and the path of every URL it
// passed through on the way. An authorization response carrying an error
// is returned like any other; an answer that is not a redirect to the RP,
// such as an interactive login page, is an error.
func (rp *RP) Browse(ctx context.Context, authURL string) (callback *url.URL, visited []string, err error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, nil, err
	}
	browser := &http.Client{
		Jar:       jar,
		Transport: rp.client.Transport,
		Timeout:   rp.client.Timeout,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if rp.isRedirectURL(req.URL) {
				return http.ErrUseLastResponse
			}
			visited = append(visited, req.URL.Path)
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return nil, visited, fmt.Errorf("stepuptest: Browse: %w", err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !rp.isRedirectURL(loc) {
		return nil, visited, fmt.Errorf("stepuptest: Browse: %s answered %d, not a redirect to %s", resp.Request.URL.Redacted(), resp.StatusCode, rp.OAuth2.RedirectURL)
	}
	return loc, visited, nil
}

// isRedirectURL reports whether u, whatever its query, is the RP's
// redirect URL.
func (rp *RP) isRedirectURL(u *url.URL) bool {
	r, err := url.Parse(rp.OAuth2.RedirectURL)
	return err == nil && u.Scheme == r.Scheme && u.Host == r.Host && u.Path == r.Path
}

// Exchange finishes f at callback, as an application's callback would: the
// state must be f's, an error response is returned as an error, the code is
// redeemed with f's PKCE verifier (RFC 7636 §4.5), and the ID token is
// verified and must carry f's nonce (OIDC Core §3.1.3.7). It returns the
// verified ID token and its compact form. A token endpoint error is an
// *oauth2.RetrieveError, wrapped.
func (rp *RP) Exchange(ctx context.Context, f Flow, callback *url.URL) (*oidc.IDToken, string, error) {
	q := callback.Query()
	switch {
	case q.Get("state") != f.State:
		return nil, "", errors.New("stepuptest: Exchange: the callback's state is not the flow's")
	case q.Get("error") != "":
		return nil, "", fmt.Errorf("stepuptest: Exchange: the provider answered %s (%s)", q.Get("error"), q.Get("error_description"))
	case q.Get("code") == "":
		return nil, "", errors.New("stepuptest: Exchange: the callback has no code")
	}
	ctx = oidc.ClientContext(ctx, rp.client)
	tok, err := rp.OAuth2.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, "", fmt.Errorf("stepuptest: Exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, "", errors.New("stepuptest: Exchange: the token response has no id_token")
	}
	idt, err := rp.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, "", fmt.Errorf("stepuptest: Exchange: %w", err)
	}
	if idt.Nonce != f.Nonce {
		return nil, "", errors.New("stepuptest: Exchange: the ID token's nonce is not the flow's")
	}
	return idt, raw, nil
}

// Login runs a whole authorization code flow, [RP.Start], [RP.Browse] and
// [RP.Exchange], and returns the verified ID token.
func (rp *RP) Login(ctx context.Context, opts ...oauth2.AuthCodeOption) (*oidc.IDToken, error) {
	f := rp.Start(opts...)
	callback, _, err := rp.Browse(ctx, f.AuthURL)
	if err != nil {
		return nil, err
	}
	idt, _, err := rp.Exchange(ctx, f, callback)
	return idt, err
}
