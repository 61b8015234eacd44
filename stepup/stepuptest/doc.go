// Package stepuptest runs an in-process OpenID Provider for tests and for the
// development example. It is built on the real OP library
// github.com/zitadel/oidc/v3/pkg/op: discovery, JWKS, the authorization
// endpoint, the code exchange with client_secret_basic (RFC 6749 §2.3.1) and
// PKCE verification (RFC 7636 §4.6) are zitadel's, over an in-memory
// storage. What a test controls is the login: [Config.Authenticate] (or
// [Provider.SetAuthenticate], or an interactive [Config.LoginHandler]) returns
// a [Login] that decides sub, acr, amr, auth_time, exp, session_expiry and
// extra claims, or an OAuth error.
//
// A test starts a provider, registers its RP as a [Client], and drives the
// authorization code flow with a browser-like http.Client (a cookie jar,
// following redirects): with no LoginHandler the browser goes from the
// authorization URL to the RP's redirect_uri with ?code=&state= and no page in
// between. [Provider.Requests] shows what the RP asked for (acr_values,
// max_age, prompt, login_hint, nonce, claims, PKCE parameters).
//
//	p, err := stepuptest.New(stepuptest.Config{
//		Clients: []stepuptest.Client{{ID: "rp", Secret: "s", RedirectURIs: []string{rpURL + "/callback"}}},
//	})
//	if err != nil { ... }
//	defer p.Close()
//	p.SetAuthenticate(func(r stepuptest.AuthRequest) stepuptest.Login {
//		return stepuptest.Login{ACR: "urn:example:mfa", AMR: []string{"pwd", "otp"}}
//	})
//	// point the RP at p.Issuer() ...
//
// A test that is about the provider, or needs a real ID token without an
// application in between, uses an [RP]: a relying party wired as the stepup
// library wires itself, which runs the flow ([RP.Login]) or each of its steps
// ([RP.Start], [RP.Browse], [RP.Exchange]) and returns the verified ID token.
//
// Tokens that no honest provider would issue come from
// [Provider.RewriteNextIDToken], which hands a test the honest token's claims
// to change, and [Provider.Sign] to re-sign them with the provider's key.
// [Provider.RotateKey] exercises JWKS key rotation.
//
// This is a development and test provider, not for production: it listens on
// loopback only, over plain http, logs in anyone its Authenticate function
// says, keeps everything in memory, and issues no refresh tokens. zitadel
// stamps iat and exp with the real clock, so tests of expiry either use short
// lifetimes, move the RP's clock, or rewrite the token.
package stepuptest
