package stepuptest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// Example runs one step-up login against the provider: the RP asks for an
// acr, the provider's Authenticate grants it, and the RP reads acr and amr
// from the verified ID token.
func Example() {
	p, err := stepuptest.New(stepuptest.Config{
		Clients: []stepuptest.Client{{ID: "rp", Secret: "s3cret", RedirectURIs: []string{"http://127.0.0.1:9/callback"}}},
		Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
			return stepuptest.Login{AMR: []string{"pwd", "otp"}} // acr defaults to the first acr_values value
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// The relying party: discovery, client_secret_basic, PKCE.
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, p.Issuer())
	if err != nil {
		log.Fatal(err)
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	conf := oauth2.Config{
		ClientID: "rp", ClientSecret: "s3cret", Endpoint: endpoint,
		RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{oidc.ScopeOpenID},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-1"),
		oauth2.SetAuthURLParam("acr_values", "urn:example:mfa"))

	// The browser follows redirects until it is sent back to the RP.
	browser := &http.Client{CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), conf.RedirectURL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(authURL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	callback, err := resp.Location()
	if err != nil {
		log.Fatal(err)
	}

	// The RP's callback: exchange the code with the PKCE verifier, verify the ID token.
	tok, err := conf.Exchange(ctx, callback.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		log.Fatal(err)
	}
	rawIDToken, _ := tok.Extra("id_token").(string)
	idToken, err := provider.Verifier(&oidc.Config{ClientID: "rp"}).Verify(ctx, rawIDToken)
	if err != nil {
		log.Fatal(err)
	}
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	if err := idToken.Claims(&claims); err != nil {
		log.Fatal(err)
	}
	fmt.Println("state:", callback.Query().Get("state"))
	fmt.Println("sub:", idToken.Subject, "nonce:", idToken.Nonce)
	fmt.Println("acr:", claims.ACR, "amr:", claims.AMR)
	fmt.Println("requested acr_values:", p.Requests()[0].ACRValues)
	// Output:
	// state: state-1
	// sub: alice nonce: nonce-1
	// acr: urn:example:mfa amr: [pwd otp]
	// requested acr_values: [urn:example:mfa]
}

// A Clock drives stepup's Config.Now in tests, so that expiry is tested by
// moving the clock rather than by sleeping.
func ExampleClock() {
	clock := stepuptest.NewClock(time.Unix(1_800_000_000, 0).UTC())
	now := clock.Now // as stepup.Config{Now: clock.Now}
	clock.Advance(5 * time.Minute)
	fmt.Println(now().Format(time.RFC3339))
	// Output:
	// 2027-01-15T08:05:00Z
}
