package stepuptest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// Example runs one step-up login against the provider: the RP asks for an
// acr, the provider's Authenticate grants it, and the RP reads acr and amr
// from the verified ID token.
func Example() {
	client := stepuptest.Client{ID: "rp", Secret: "s3cret", RedirectURIs: []string{"http://127.0.0.1:9/callback"}}
	p, err := stepuptest.New(stepuptest.Config{
		Clients: []stepuptest.Client{client},
		Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
			return stepuptest.Login{AMR: []string{"pwd", "otp"}} // acr defaults to the first acr_values value
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx := context.Background()
	rp, err := stepuptest.NewRP(ctx, p.Issuer(), client, nil)
	if err != nil {
		log.Fatal(err)
	}
	idToken, err := rp.Login(ctx, oauth2.SetAuthURLParam("acr_values", "urn:example:mfa"))
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
	fmt.Println("sub:", idToken.Subject)
	fmt.Println("acr:", claims.ACR, "amr:", claims.AMR)
	fmt.Println("requested acr_values:", p.Requests()[0].ACRValues)
	// Output:
	// sub: alice
	// acr: urn:example:mfa amr: [pwd otp]
	// requested acr_values: [urn:example:mfa]
}

// An RP runs the authorization code flow step by step, so that a test can
// look at, or tamper with, the authorization URL and the callback between
// the steps: here it replays a code the provider already redeemed.
func ExampleRP() {
	client := stepuptest.Client{ID: "rp", Secret: "s3cret", RedirectURIs: []string{"http://127.0.0.1:9/callback"}}
	p, err := stepuptest.New(stepuptest.Config{Clients: []stepuptest.Client{client}, IssParameter: true})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	rp, err := stepuptest.NewRP(ctx, p.Issuer(), client, nil)
	if err != nil {
		log.Fatal(err)
	}

	// What the application's start handler does: a fresh state, nonce and
	// PKCE verifier, and a redirect to the provider.
	flow := rp.Start(oauth2.SetAuthURLParam("prompt", "login"))
	// The browser logs in and is sent back to the callback.
	callback, visited, err := rp.Browse(ctx, flow.AuthURL)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("through:", visited)
	fmt.Println("iss in the callback:", callback.Query().Get("iss") == p.Issuer())
	// What the application's callback does: redeem the code, verify the token.
	idToken, _, err := rp.Exchange(ctx, flow, callback)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sub:", idToken.Subject)
	// The same callback again: the provider refuses the used code.
	_, _, err = rp.Exchange(ctx, flow, callback)
	var re *oauth2.RetrieveError
	fmt.Println("replayed:", errors.As(err, &re), re.ErrorCode)
	// Output:
	// through: [/login /authorize/callback]
	// iss in the callback: true
	// sub: alice
	// replayed: true invalid_grant
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
