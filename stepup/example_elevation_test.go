package stepup_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/oidc-stepup/stepup/stepup"
)

// The examples in this file step up for real: a browser goes through a
// small OpenID Provider, exampleIdP at the end of this file, which logs
// alice in at once. The application's StepUp comes from idp.config, the
// same in each: one scope "admin" (acr urn:example:mfa, at most 15
// minutes), the IdP's clock, and audit events printed as "audit: type
// scope reason subject".

// A page can show whether the user is in admin mode, and for how long,
// without a challenge: Elevation only reads. Ends is the deadline brought
// forward by ClockSkew, when the guard stops honouring the elevation.
func ExampleStepUp_Elevation() {
	idp := newExampleIdP()
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	cfg := idp.config(sessions) // scope "admin" with a Lifetime of 15 minutes
	cfg.ClockSkew = 30 * time.Second
	su, err := stepup.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("/admin/", su.RequireStepUp("admin")(adminConsole))
	mux.HandleFunc("GET /banner", func(w http.ResponseWriter, r *http.Request) {
		e, ok := su.Elevation(r, "admin")
		if !ok {
			fmt.Fprintln(w, "not in admin mode")
			return
		}
		now := idp.Now() // Config.Now; with the real clock, time.Until(e.Ends)
		fmt.Fprintf(w, "admin mode (%s), %s left; deadline in %s, set by %s\n",
			e.ACR, e.Ends.Sub(now), e.Deadline.Sub(now), e.Bound)
	})
	browser := newExampleClient(sessions.LoadAndSave(mux))

	fmt.Println(browser.get("/banner"))
	fmt.Println(browser.get("/admin/"))
	fmt.Println(browser.get("/banner"))
	// Output:
	// 200 OK: not in admin mode
	// audit: challenge admin
	// audit: granted admin alice
	// 200 OK: admin console
	// 200 OK: admin mode (urn:example:mfa), 14m30s left; deadline in 15m0s, set by lifetime
}

// A "leave admin mode" button ends the elevation at once. Drop must run
// before the response starts: scs saves the session then.
func ExampleStepUp_Drop() {
	idp := newExampleIdP()
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	su, err := stepup.New(idp.config(sessions))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("/admin/", su.RequireStepUp("admin")(adminConsole))
	mux.HandleFunc("POST /leave-admin", func(w http.ResponseWriter, r *http.Request) {
		su.Drop(r, "admin")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "home") })
	browser := newExampleClient(sessions.LoadAndSave(mux))

	fmt.Println(browser.get("/admin/"))
	fmt.Println(browser.post("/leave-admin", "application/x-www-form-urlencoded", ""))
	fmt.Println(browser.post("/admin/users", "application/x-www-form-urlencoded", "name=bob"))
	// Output:
	// audit: challenge admin
	// audit: granted admin alice
	// 200 OK: admin console
	// audit: dropped admin drop alice
	// 200 OK: home
	// audit: challenge admin
	// 401 Unauthorized
}

// Support disables a user's account or resets their credentials: their
// elevations end on every session, device and replica sharing the session
// store, each refused at its next guarded request. A step-up after the
// revocation is granted as usual.
// Step-up for one action: the approval of "delete user bob" authorizes one
// request that deletes bob, and nothing else. The IdP sees the action as
// RFC 9396 authorization details and returns what the user approved.
func ExampleStepUp_RequireStepUpFor() {
	idp := newExampleIdP()
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	cfg := idp.config(sessions)
	cfg.Scopes["delete-user"] = stepup.Scope{ACR: []string{"urn:example:mfa"}, AuthorizationDetails: true}
	su, err := stepup.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	deleteUser := func(r *http.Request) (stepup.Action, bool) {
		name := r.PostFormValue("name")
		return stepup.Action{Type: "urn:example:user", Actions: []string{"delete"}, Identifier: name,
			Text: "Delete user " + name}, name != ""
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/start", su.StartHandler())
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.HandleFunc("GET /users/delete", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "the delete form") })
	mux.Handle("POST /users/delete", su.RequireStepUpFor("delete-user", deleteUser)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "deleted", r.PostFormValue("name"))
		})))
	browser := newExampleClient(sessions.LoadAndSave(mux))
	bob, alice := url.Values{"name": {"bob"}}, url.Values{"name": {"alice"}}

	status, stepUp := browser.fetch("POST", "/users/delete", bob)
	fmt.Println(status)
	// stepup.js opens step_up_url in a popup and then sends the form again;
	// here the client follows it to the IdP and back to return_to, the
	// form's page, which does not use the approval.
	fmt.Println(browser.get(stepUp))
	status, _ = browser.fetch("POST", "/users/delete", alice)
	fmt.Println("delete alice:", status)
	status, _ = browser.fetch("POST", "/users/delete", bob)
	fmt.Println("delete bob:", status)
	status, _ = browser.fetch("POST", "/users/delete", bob)
	fmt.Println("delete bob again:", status)
	// Output:
	// audit: challenge delete-user
	// 401 Unauthorized
	// audit: challenge delete-user
	// audit: granted delete-user alice
	// 200 OK: the delete form
	// audit: challenge delete-user
	// delete alice: 401 Unauthorized
	// audit: consumed delete-user alice
	// delete bob: 200 OK
	// audit: challenge delete-user
	// delete bob again: 401 Unauthorized
}

func ExampleStepUp_RevokeSubject() {
	idp := newExampleIdP()
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	su, err := stepup.New(idp.config(sessions))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("/admin/", su.RequireStepUp("admin")(adminConsole))
	browser := newExampleClient(sessions.LoadAndSave(mux))
	fmt.Println(browser.get("/admin/"))

	// In the support tool:
	if err := su.RevokeSubject(context.Background(), "alice"); err != nil {
		log.Print("not recorded, try again: ", err) // audited as revocation_failed
	}

	fmt.Println(browser.post("/admin/users", "application/x-www-form-urlencoded", "name=bob"))
	fmt.Println(browser.get("/admin/"))
	// Output:
	// audit: challenge admin
	// audit: granted admin alice
	// 200 OK: admin console
	// audit: revoked revoked_by_operator alice
	// audit: dropped admin revoked_by_operator alice
	// audit: challenge admin
	// 401 Unauthorized
	// audit: challenge admin
	// audit: granted admin alice
	// 200 OK: admin console
}

// The IdP ends alice's IdP session and POSTs a signed logout token (OpenID
// Connect Back-Channel Logout 1.0) to the URL registered as the client's
// backchannel_logout_uri. The handler is mounted outside the session
// middleware: the IdP sends no cookie. A token the IdP's keys do not
// verify is answered 400 and revokes nothing.
func ExampleStepUp_BackChannelLogoutHandler() {
	idp := newExampleIdP()
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	su, err := stepup.New(idp.config(sessions))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("/admin/", su.RequireStepUp("admin")(adminConsole))
	app := http.NewServeMux()
	app.Handle("POST /backchannel-logout", su.BackChannelLogoutHandler())
	app.Handle("/", sessions.LoadAndSave(mux))
	browser, idpClient := newExampleClient(app), newExampleClient(app)
	fmt.Println(browser.get("/admin/"))

	logout := map[string]any{
		"iss":    idp.URL,
		"aud":    "console",
		"iat":    idp.Now().Unix(),
		"exp":    idp.Now().Add(2 * time.Minute).Unix(),
		"jti":    "logout-1",
		"sub":    "alice",
		"sid":    idp.sid, // the IdP session alice logged in with: her ID token's sid
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	form := "logout_token=" + idp.sign("logout+jwt", logout)
	fmt.Println(idpClient.post("/backchannel-logout", "application/x-www-form-urlencoded", form))

	// A forgery: the same claims, signed with a key the IdP never published.
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := "logout_token=" + signJWT(attacker, "logout+jwt", logout)
	fmt.Println(idpClient.post("/backchannel-logout", "application/x-www-form-urlencoded", forged))

	fmt.Println(browser.post("/admin/users", "application/x-www-form-urlencoded", "name=bob"))
	// Output:
	// audit: challenge admin
	// audit: granted admin alice
	// 200 OK: admin console
	// audit: revoked backchannel_logout alice
	// 200 OK
	// audit: signal_rejected invalid_token
	// 400 Bad Request
	// audit: dropped admin backchannel_logout alice
	// audit: challenge admin
	// 401 Unauthorized
}

// A Shared Signals transmitter (here the IdP) pushes a CAEP session-revoked
// event for alice as a signed Security Event Token (RFC 8935 push
// delivery). New reads the transmitter's /.well-known/ssf-configuration
// for its keys; the handler is mounted outside the session middleware and
// answers 202.
func ExampleStepUp_SecurityEventHandler() {
	idp := newExampleIdP()
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	cfg := idp.config(sessions)
	cfg.SharedSignals = &stepup.SharedSignals{Issuer: idp.URL, Audience: "https://app.example.com"}
	su, err := stepup.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("/admin/", su.RequireStepUp("admin")(adminConsole))
	app := http.NewServeMux()
	app.Handle("POST /security-events", su.SecurityEventHandler())
	app.Handle("/", sessions.LoadAndSave(mux))
	browser, transmitter := newExampleClient(app), newExampleClient(app)
	fmt.Println(browser.get("/admin/"))

	set := idp.sign("secevent+jwt", map[string]any{
		"iss":    idp.URL,
		"aud":    "https://app.example.com",
		"iat":    idp.Now().Unix(),
		"jti":    "set-1",
		"sub_id": map[string]any{"format": "iss_sub", "iss": idp.URL, "sub": "alice"}, // every session of alice
		"events": map[string]any{
			stepup.CAEPSessionRevoked: map[string]any{"event_timestamp": idp.Now().Unix()},
		},
	})
	fmt.Println(transmitter.post("/security-events", "application/secevent+jwt", set))

	fmt.Println(browser.post("/admin/users", "application/x-www-form-urlencoded", "name=bob"))
	// Output:
	// audit: challenge admin
	// audit: granted admin alice
	// 200 OK: admin console
	// audit: revoked session_revoked alice
	// 202 Accepted
	// audit: dropped admin session_revoked alice
	// audit: challenge admin
	// 401 Unauthorized
}

// What follows is the examples' scaffolding, not part of an application.

var adminConsole = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "admin console")
})

// exampleIdP is a compact OpenID Provider on an httptest server: discovery,
// a JWKS with one ES256 key, an authorization endpoint that logs alice in
// at once (acr: the first of acr_values) and redirects back with a code,
// and a token endpoint that checks the code and its PKCE verifier (not the
// client's secret) and returns an ID token with the request's nonce. It is
// also a Shared Signals transmitter: /.well-known/ssf-configuration names
// the same JWKS. Its clock stands still at the instant it starts, so every
// deadline is the same at each run. (Not at a fixed date: the memory store
// expires revocation records on the host's clock, and would drop at once
// a record whose end a Config.Now in the past computed.)
type exampleIdP struct {
	*httptest.Server
	key *ecdsa.PrivateKey
	now time.Time
	sid string // the IdP session it logs alice in to: the ID tokens' sid

	mu    sync.Mutex
	codes map[string]url.Values // code → its authorization request
}

func newExampleIdP() *exampleIdP {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	p := &exampleIdP{key: key, now: time.Now().Truncate(time.Second), sid: "idp-session-1", codes: map[string]url.Values{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                p.URL,
			"authorization_endpoint":                p.URL + "/authorize",
			"token_endpoint":                        p.URL + "/token",
			"jwks_uri":                              p.URL + "/jwks",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /.well-known/ssf-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"spec_version": "1_0", "issuer": p.URL, "jwks_uri": p.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		code := rand.Text()
		p.mu.Lock()
		p.codes[code] = q
		p.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		q, ok := p.codes[r.PostFormValue("code")]
		delete(p.codes, r.PostFormValue("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		idToken := p.sign("JWT", map[string]any{
			"iss": p.URL, "sub": "alice", "aud": q.Get("client_id"), "nonce": q.Get("nonce"),
			"iat": p.now.Unix(), "exp": p.now.Add(time.Hour).Unix(), "auth_time": p.now.Unix(),
			"acr": strings.Fields(q.Get("acr_values"))[0], "amr": []string{"pwd", "hwk"}, "sid": p.sid,
		})
		resp := map[string]any{"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 3600, "id_token": idToken}
		var details any // RFC 9396 §7: what the user approved, as requested
		if json.Unmarshal([]byte(q.Get("authorization_details")), &details) == nil {
			resp["authorization_details"] = details
		}
		writeJSON(w, resp)
	})
	p.Server = httptest.NewServer(mux)
	return p
}

// Now is the IdP's clock, which the application shares.
func (p *exampleIdP) Now() time.Time { return p.now }

// config is the StepUp configuration every example starts from.
func (p *exampleIdP) config(sessions *scs.SessionManager) stepup.Config {
	return stepup.Config{
		Issuer:         p.URL,
		ClientID:       "console",
		ClientSecret:   "s3cret",
		RedirectURL:    "https://app.example.com/stepup/callback",
		SessionManager: sessions,
		Scopes: map[string]stepup.Scope{
			"admin": {ACR: []string{"urn:example:mfa"}, Lifetime: 15 * time.Minute},
		},
		Now: p.Now,
		Auditor: stepup.AuditorFunc(func(_ context.Context, e stepup.Event) {
			line := []string{"audit:", string(e.Type)}
			for _, f := range []string{e.Scope, string(e.Reason), e.Subject} {
				if f != "" {
					line = append(line, f)
				}
			}
			fmt.Println(strings.Join(line, " "))
		}),
	}
}

// sign signs claims with the IdP's key, with typ as the JWT's typ header.
func (p *exampleIdP) sign(typ string, claims map[string]any) string {
	return signJWT(p.key, typ, claims)
}

// signJWT signs claims with key as ES256, under the IdP's key id.
func signJWT(key *ecdsa.PrivateKey, typ string, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		log.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		log.Fatal(err)
	}
	token, _ := jws.CompactSerialize()
	return token
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// exampleClient is an HTTP client with a cookie jar that follows
// redirects, as a browser does. It serves requests for
// https://app.example.com with app, in process, and sends the others (to
// the IdP) over the network.
type exampleClient struct {
	app    http.Handler
	client *http.Client
}

func newExampleClient(app http.Handler) *exampleClient {
	jar, _ := cookiejar.New(nil)
	c := &exampleClient{app: app}
	c.client = &http.Client{Jar: jar, Transport: c}
	return c
}

// get navigates to path, as a browser does on a link; post sends body to
// it. Each returns the final status, and the body when it is plain text.
func (c *exampleClient) get(path string) string { return c.do("GET", path, "", "") }

func (c *exampleClient) post(path, contentType, body string) string {
	return c.do("POST", path, contentType, body)
}

func (c *exampleClient) do(method, path, contentType, body string) string {
	req, _ := http.NewRequest(method, "https://app.example.com"+path, strings.NewReader(body))
	req.Header.Set("Accept", "text/html,*/*;q=0.8")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") && len(b) > 0 {
		return resp.Status + ": " + strings.TrimSpace(string(b))
	}
	return resp.Status
}

// fetch sends a form as a script does (fetch, not a navigation), and
// returns the status and, for an RFC 9470 401, its step_up_url.
func (c *exampleClient) fetch(method, path string, form url.Values) (status, stepUpURL string) {
	req, _ := http.NewRequest(method, "https://app.example.com"+path, strings.NewReader(form.Encode()))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		StepUpURL string `json:"step_up_url"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.Status, body.StepUpURL
}

// RoundTrip serves a request for the app in process, as the server would
// see it, and sends any other over the network.
func (c *exampleClient) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != "app.example.com" {
		return http.DefaultTransport.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.RequestURI, r.Host, r.RemoteAddr = req.URL.RequestURI(), req.URL.Host, "192.0.2.1:1234"
	r.URL.Scheme, r.URL.Host = "", ""
	if r.Body == nil {
		r.Body = http.NoBody
	}
	w := httptest.NewRecorder()
	c.app.ServeHTTP(w, r)
	return w.Result(), nil
}
