// Package stepup brings OpenID Connect step-up elevation to net/http
// applications: routes guarded by [StepUp.RequireStepUp] demand a fresh,
// stronger login at the identity provider (IdP), and the elevation it grants
// ends exactly when the IdP says it must.
//
// # Usage
//
//	sessions := scs.New()
//	su, err := stepup.New(stepup.Config{
//		Issuer:         "https://idp.example.com",
//		ClientID:       "admin-console",
//		ClientSecret:   os.Getenv("CLIENT_SECRET"),
//		RedirectURL:    "https://app.example.com/stepup/callback",
//		SessionManager: sessions,
//		Subject:        currentUserSub, // the sub of the app's primary login
//		Scopes: map[string]stepup.Scope{
//			"admin": {ACR: []string{"urn:example:mfa"}, Lifetime: 15 * time.Minute},
//		},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux := http.NewServeMux()
//	mux.Handle("GET /stepup/start", su.StartHandler())
//	mux.Handle("GET /stepup/callback", su.CallbackHandler())
//	mux.Handle("/admin/", su.RequireStepUp("admin")(adminHandler))
//	http.ListenAndServe(addr, sessions.LoadAndSave(mux))
//
// # How it works
//
// A guarded request without a fresh elevation is challenged. A browser
// navigation is redirected to the IdP with an authorization-code request
// (PKCE S256, a fresh state and nonce, the scope's acr_values and max_age);
// any other request gets a 401 with an RFC 9470 WWW-Authenticate header and
// a JSON body pointing at [StepUp.StartHandler]. Pending challenges live in
// the scs session, keyed by state, so several tabs can step up at once.
//
// The callback verifies the ID token with go-oidc and then checks what
// go-oidc leaves to its caller: nonce, azp, iat, acr (or an acrs array),
// auth_time, the subject of the logged-in user, and the IPSIE session_expiry
// claim. The elevation's deadline is the earliest of the token's exp, its
// session_expiry, the scope's Lifetime cap and auth_time + MaxAge. It is
// stored in the session under the scope, and the session token is renewed.
//
// Every guarded request compares the stored deadline with [Config.Now], in
// whole Unix seconds, with [Config.ClockSkew] applied on the safe side: the
// elevation ends ClockSkew early, never late. An expired elevation is
// removed, audited, and challenged again.
//
// # What it does not protect against
//
//   - Theft of the session cookie. Whoever presents the cookie holds the
//     elevation until its deadline; stepup shortens that window but cannot
//     tell the thief from the user. Use Secure, HttpOnly, SameSite cookies
//     and short Lifetime caps.
//   - Everything concurrent requests on one session can do. scs has no
//     locking across requests and the last commit wins: a request in flight
//     during [StepUp.Drop] writes the dropped elevation back. stepup records
//     each drop in the session store until the elevation's deadline and
//     refuses such an elevation, but other session data the app changed is
//     still lost, and challenges started in truly concurrent requests can
//     lose one another. Call [StepUp.DropAll] before destroying a session at
//     logout.
//   - An IdP that lies. stepup checks what the ID token asserts; it cannot
//     know whether the IdP really performed the authentication its acr names.
//   - Application routes left unguarded. Only routes behind RequireStepUp
//     are protected; data they render elsewhere is not.
//   - Logout at the IdP. Without back-channel logout the elevation lasts
//     until its deadline even if the IdP session ends earlier.
//
// See the docs/ directory of the repository for the configuration reference,
// the expiry and skew semantics with a worked timeline, and the threat model.
package stepup
