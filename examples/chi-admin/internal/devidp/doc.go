// Package devidp is the embedded development identity provider of the
// chi-admin example: a real OpenID Provider ([stepuptest.Provider], built on
// zitadel/oidc) with login pages a person can use in a browser.
//
// It knows two demo users, alice and bob, whose password is [Password] and
// is printed on the sign-in page. A request for [BasicACR] is satisfied by
// the password; a request for [StrongACR] (in acr_values, or as an essential
// acr in the claims parameter, OIDC Core §5.5.1.1) also asks for a TOTP code
// (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step accepted). Each user's
// secret is random per process, and the OTP page shows the current code so
// nobody needs an authenticator app.
//
// A successful login starts an IdP session (cookie "devidp_session"), so a
// later request is answered without a page (single sign-on) unless it says
// prompt=login, its max_age has elapsed since the last authentication (OIDC
// Core §3.1.2.1), its login_hint names someone else, or it wants a stronger
// acr than the session has. prompt=none with no usable session answers
// login_required (OIDC Core §3.1.2.6). ID tokens carry a sid claim naming the
// IdP session and, when [Config.SessionExpiry] is set, session_expiry.
//
// An authorization request may carry RFC 9396 authorization_details (a
// JSON array of objects, at most 4 KiB, whatever is shown printable text):
// the sign-in and one-time code pages then ask the user to approve them
// (#approve-text: "chi-admin asks you to approve: Delete user bob" for
// the type [UserDetailsType], a generic line for any other type), single
// sign-on never answers such a request, and the token response returns
// them as a JSON array (§7). Malformed details are refused before any page
// with the error invalid_authorization_details (§5). Discovery does not
// list authorization_details_types_supported: the provider underneath
// serves its own discovery document.
//
// The account page, [IdP.AccountURL], lets a user signed in at the IdP end
// an application's elevation the ways a real IdP does: "Sign out everywhere"
// ends the user's IdP sessions and sends a logout token to each client's
// [stepuptest.Client.BackChannelLogoutURI] (OIDC Back-Channel Logout 1.0);
// "Reset my one-time code" gives the user a new TOTP secret and pushes a
// CAEP credential-change event to each of [Config.Receivers] (the IdP is a
// Shared Signals transmitter); "Lock account" refuses the user's sign-ins
// until "Unlock account", and pushes CAEP session-revoked.
//
//	idp, err := devidp.Start(devidp.Config{
//		Clients: []stepuptest.Client{{ID: "admin", Secret: "s", RedirectURIs: []string{"http://127.0.0.1:8080/callback"}}},
//		SessionExpiry: 8 * time.Hour,
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer idp.Close()
//	// point the RP at idp.Issuer()
//
// # Development only
//
// Never run this in production, nor expose it beyond loopback. Everybody
// knows the password, the OTP page hands out the code, everything lives in
// memory, it speaks plain http, it has no rate limiting beyond a few OTP
// attempts per login, and a TOTP code may be replayed within its window.
// Logout tokens and security events are sent once, synchronously, and never
// retried. A locked user can still sign in to the account page, so that
// they can unlock it.
package devidp
