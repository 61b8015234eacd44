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
// the scs session, keyed by state, so several tabs can step up at once. A
// navigation that another site started (Sec-Fetch-Site) starts no challenge
// at StartHandler, nor at the guard while one is pending: it gets a page
// whose one link the user follows to continue, so no other site can push
// the user's challenges out or fill the audit log.
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
// # Revocations
//
// An elevation also ends before its deadline when the application drops it
// ([StepUp.Drop]), when the IdP ends the IdP session or the user's sessions
// (OpenID Connect Back-Channel Logout 1.0 through
// [StepUp.BackChannelLogoutHandler]; CAEP session-revoked, credential-change
// and assurance-level-change through [StepUp.SecurityEventHandler]), or when
// an operator revokes the user ([StepUp.RevokeSubject]). Each revocation is
// merged into one record per user in the session store, which every replica
// reads: the guard's one store lookup per request answers all of them. IdP
// revocations are ordered by the IdP's own instants against auth_time, an
// operator's by a counter, so no two servers' clocks are compared; a login
// after the revocation is not affected. The store must update a record
// atomically across replicas ([AtomicStore]); New refuses one that cannot,
// unless [Config.InsecureNonAtomicRevocations] says there is one replica.
// Mount the two handlers outside the session middleware: the IdP calls them
// directly.
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
//   - Forced step-ups. Another site can still send the user to a guarded
//     route, which starts a challenge when none is pending, so that links
//     from e-mails work; the user sees an IdP prompt, and only the user's
//     own login elevates. Browsers that send no Sec-Fetch-Site (old ones,
//     and all over plain http off loopback) are not stopped at all.
//   - An IdP that lies. stepup checks what the ID token asserts; it cannot
//     know whether the IdP really performed the authentication its acr names.
//   - Application routes left unguarded. Only routes behind RequireStepUp
//     are protected; data they render elsewhere is not.
//   - Logout at IdPs that tell nobody. With an IdP that sends neither
//     back-channel logout nor CAEP events (Microsoft Entra ID among them),
//     an elevation lasts until its deadline even if the IdP session ends
//     earlier, unless the application calls [StepUp.RevokeSubject]. A
//     revocation the store could not record is lost: it is audited as
//     revocation_failed, and the IdP does not resend a logout token.
//
// See the docs/ directory of the repository for the configuration reference,
// the expiry and skew semantics with a worked timeline, and the threat model.
package stepup
