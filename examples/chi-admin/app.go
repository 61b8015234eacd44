package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup"
)

//go:embed templates/*.html
var templateFS embed.FS

// staticFS holds the pages' scripts, served from files so that the pages'
// Content-Security-Policy allows no inline script: elevation.js (the
// elevation card) and forms.js (the Add-user and Delete forms, through
// stepup.js).
//
//go:embed static/*.js
var staticFS embed.FS

// app is one instance of the admin console. Several instances can share a
// session store and serve the same users.
type app struct {
	cfg        *config
	sessions   *scs.SessionManager
	su         *stepup.StepUp
	login0     oauth2.Config // the primary login's client
	verifier   *oidc.IDTokenVerifier
	httpClient *http.Client
	// loginSealer keeps unfinished primary logins in a cookie.
	loginSealer *loginSealer
	// locks serialises each session's requests.
	locks *sessionLocks
	audit *auditLog
	// metrics counts the audit events for GET /metrics (metrics.go).
	metrics *metrics

	pages map[string]*template.Template
	logw  io.Writer
	now   func() time.Time

	mu    sync.Mutex
	users []string
}

// sessionLockWait is how long a request waits while another request of its
// session runs. The callbacks, the longest requests, take at most two
// idpTimeouts; a request that waits longer is told to try again.
const sessionLockWait = 5 * time.Second

// idpTimeout bounds each call to the IdP (discovery, token endpoint,
// JWKS), here and in stepup (Config.HTTPClient). A callback makes at most
// two: the code exchange, then a JWKS fetch for a new key.
const idpTimeout = 10 * time.Second

// appDeps are what newApp needs besides the configuration.
type appDeps struct {
	store  scs.Store
	stdout io.Writer // audit events, as JSON lines
	stderr io.Writer // operational log
	now    func() time.Time
}

func newApp(cfg *config, deps appDeps) (*app, error) {
	a := &app{
		cfg:        cfg,
		httpClient: &http.Client{Timeout: idpTimeout},
		audit:      newAuditLog(deps.stdout, 200),
		logw:       deps.stderr,
		now:        deps.now,
		users:      []string{"alice", "bob"},
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.sessions = scs.New()
	a.sessions.Store = deps.store
	a.sessions.Lifetime = 12 * time.Hour
	a.sessions.Cookie.Name = "chi_admin_session"
	a.sessions.Cookie.SameSite = http.SameSiteLaxMode
	a.sessions.Cookie.Secure = strings.HasPrefix(cfg.baseURL, "https://")
	a.sessions.ErrorFunc = a.sessionError
	a.locks = newSessionLocks(a.sessions.Cookie.Name, sessionLockWait, endsToken, http.HandlerFunc(a.sessionBusy))
	var err error
	if a.loginSealer, err = newLoginSealer(cfg.clientSecret, a.sessions.Cookie.Secure); err != nil {
		return nil, err
	}
	if a.metrics, err = newMetrics(cfg.metricsToken, a.audit); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(oidc.ClientContext(context.Background(), a.httpClient), 30*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, cfg.issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", cfg.issuer, err)
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	a.login0 = oauth2.Config{
		ClientID: cfg.clientID, ClientSecret: cfg.clientSecret, Endpoint: endpoint,
		RedirectURL: cfg.baseURL + "/auth/callback", Scopes: []string{oidc.ScopeOpenID},
	}
	a.verifier = provider.VerifierContext(oidc.ClientContext(context.Background(), a.httpClient),
		&oidc.Config{ClientID: cfg.clientID, Now: a.now})

	skew := cfg.skew
	if skew == 0 {
		skew = stepup.NoClockSkew
	}
	admin := stepup.Scope{ACR: cfg.acrValues(), MaxAge: cfg.maxAge, PromptLogin: cfg.maxAge > 0, Lifetime: cfg.lifetime}
	if cfg.deviceBinding != stepup.DeviceBindingOff {
		// The browser refreshes the bound cookie for the admin pages and
		// for /elevation, which answers as the guard would.
		admin.DeviceBinding, admin.DevicePaths = cfg.deviceBinding, []string{"/admin", "/elevation"}
	}
	// Deleting a user asks for a fresh approval of exactly that deletion
	// (RequireStepUpFor): the IdP shows "Delete user bob" (RFC 9396
	// authorization_details) and the approval deletes bob once.
	deleteUser := stepup.Scope{ACR: cfg.acrValues(), AuthorizationDetails: true}
	// The Shared Signals receiver, when there is a transmitter: stepup.New
	// fetches its /.well-known/ssf-configuration and keys once, here.
	var signals *stepup.SharedSignals
	if cfg.ssfIssuer != "" {
		signals = &stepup.SharedSignals{Issuer: cfg.ssfIssuer, Audience: cfg.signalsAudience()}
	}
	a.su, err = stepup.New(stepup.Config{
		Provider:        provider,
		ClientID:        cfg.clientID,
		ClientSecret:    cfg.clientSecret,
		RedirectURL:     cfg.baseURL + "/stepup/callback",
		SessionManager:  a.sessions,
		Scopes:          map[string]stepup.Scope{"admin": admin, "delete-user": deleteUser},
		Subject:         a.subject,
		LoginHint:       true,
		ClockSkew:       skew,
		Now:             a.now,
		Auditor:         a.metrics.auditor, // counts, then writes the JSON line
		RequestID:       func(r *http.Request) string { return middleware.GetReqID(r.Context()) },
		HTTPClient:      a.httpClient,
		Unauthenticated: http.HandlerFunc(a.unauthenticated),
		OnDenied:        a.denied,
		OnError:         a.sessionError,
		SharedSignals:   signals,
		BoundCookieTTL:  cfg.boundCookieTTL,
		// No OnLogout: a logout token ends admin mode (stepup's revocation
		// record, on every replica), and the console's own login, which
		// is worth no more than the dashboard, stays. See the README.
	})
	if err != nil {
		return nil, err
	}
	if a.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return a, nil
}

// routes is the whole console.
func (a *app) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(dropInboundRequestID, middleware.RequestID, middleware.Recoverer)
	// chi answers HEAD with 405 where only GET is routed; GetHead sends it
	// to the GET handler, so that a HEAD navigation to a guarded page gets
	// the guard's 303 as a GET does.
	r.Use(middleware.GetHead)

	// The IdP's back channel. The IdP posts here itself, with no cookie
	// and no login: these routes are outside the session middleware, the
	// per-session lock and the CSRF protection (a signed token is what
	// authenticates a post, not where it comes from), and each handler
	// answers every method itself. A logout token or a security event
	// ends the elevations it covers in the session store, so every replica
	// refuses them at their next request.
	r.Handle("/backchannel-logout", a.su.BackChannelLogoutHandler())
	r.Handle("/ssf/events", a.su.SecurityEventHandler()) // 404 without -ssf-issuer
	r.Get("/static/elevation.js", serveScript("static/elevation.js"))
	r.Get("/static/forms.js", serveScript("static/forms.js"))
	// stepup.js, which forms.js imports: the same for every visitor, so it
	// needs no session and takes no session lock. Revalidated by its ETag.
	r.Get("/stepup/stepup.js", stepup.ScriptHandler().ServeHTTP)
	// The browser's DBSC calls. They read the session (the elevation they
	// bind) and never write it, so they take no session lock: the
	// registration arrives while the page the step-up returned to is
	// loading, which may wait for it. A proof of the device key, not the
	// request's origin, authenticates them.
	r.Group(func(r chi.Router) {
		r.Use(a.sessions.LoadAndSave)
		r.Post("/stepup/device/register", a.su.DeviceRegisterHandler().ServeHTTP)
		r.Post("/stepup/device/refresh", a.su.DeviceRefreshHandler().ServeHTTP)
	})

	r.Group(func(r chi.Router) {
		r.Use(http.NewCrossOriginProtection().Handler) // CSRF protection for every POST form
		r.Use(a.locks.Handler, a.sessions.LoadAndSave) // one request per session at a time (sessionlock.go)

		r.Get("/", a.dashboard)
		r.Get("/login", a.login)
		r.Get("/auth/callback", a.loginCallback)
		r.Post("/logout", a.logout)
		r.Get("/stepup/start", a.su.StartHandler().ServeHTTP)
		r.Get("/stepup/callback", a.su.CallbackHandler().ServeHTTP)
		r.Post("/stepup/drop", a.drop)
		r.Get("/elevation", a.serveElevation)
		r.Get("/ping", pong) // unguarded twin of /admin/ping, for load tests
		// A deletion needs an approval of that one deletion, a fresh login
		// at the admin acr: more than admin mode proves, so admin mode is
		// not asked for as well (two challenges in a row would make the
		// user log in twice, and stepup.js retries a request once).
		r.With(a.su.RequireStepUpFor("delete-user", a.deleteAction)).Post("/admin/users/delete", a.deleteUser)
		// A Group's middleware runs after routing, so audit events name the
		// matched route ("/admin/users"), not the mount ("/admin/*").
		r.Group(func(r chi.Router) {
			r.Use(a.su.RequireStepUp("admin"))
			r.Get("/admin", a.adminHome)
			r.Get("/admin/users", a.usersPage)
			r.Post("/admin/users", a.addUser)
			// Where a full-page step-up for a deletion returns (the 401's
			// return_to is the POST's URL): back to the list, where Delete
			// uses the approval.
			r.Get("/admin/users/delete", toUsers)
			r.Post("/admin/elevations/revoke", a.revokeElevations)
			r.Get("/admin/audit", a.auditPage)
			r.Get("/admin/ping", pong)
		})
	})
	return a.metrics.endpoint(r) // GET /metrics, outside the session middleware
}

// pong is the smallest handler: /ping and /admin/ping compare the same
// request with and without the guard.
func pong(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("pong\n"))
}

// dropInboundRequestID removes a client-supplied X-Request-Id, which chi's
// RequestID would otherwise trust verbatim into the audit log.
func dropInboundRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(middleware.RequestIDHeader)
		next.ServeHTTP(w, r)
	})
}

func (a *app) logf(format string, args ...any) {
	fmt.Fprintf(a.logw, "chi-admin: "+format+"\n", args...)
}

// page data shared by every template.
type page struct {
	Title     string
	User      string
	Elevation *elevationView
	Data      any
	// Flash is a one-time message from the previous request (the revoke
	// form's result).
	Flash string
	// IdPAccount is the development IdP's account page, when it runs.
	IdPAccount string
	// ReturnTo is the page's own path and query: where "Extend admin
	// mode" comes back to without JavaScript.
	ReturnTo string
}

type elevationView struct {
	ACR, AMR, Bound string
	EndsAt          time.Time
	EndsUnix        int64
	DeviceBound     bool
}

func (a *app) base(r *http.Request, title string) page {
	p := page{Title: title, IdPAccount: a.cfg.idpAccountURL, ReturnTo: r.URL.RequestURI()}
	p.User, _ = a.subject(r)
	if el, ok := a.su.Elevation(r, "admin"); ok {
		ends := el.Ends
		p.Elevation = &elevationView{ACR: el.ACR, AMR: strings.Join(el.AMR, ", "), Bound: string(el.Bound), EndsAt: ends, EndsUnix: ends.Unix(), DeviceBound: el.DeviceBound}
	}
	return p
}

// pageCSP is every page's Content-Security-Policy: scripts from the
// console's own files only (static/*.js, and /stepup/stepup.js, which
// static/forms.js imports), never inline or from elsewhere; no plugins, no
// <base>, no framing.
const pageCSP = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func (a *app) render(w http.ResponseWriter, status int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(status)
	if err := a.pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		a.logf("rendering %s: %v", name, err)
	}
}

func (a *app) message(w http.ResponseWriter, status int, title, text string) {
	a.render(w, status, "message", page{Title: title, Data: text})
}

func (a *app) dashboard(w http.ResponseWriter, r *http.Request) {
	a.render(w, http.StatusOK, "dashboard", a.base(r, "Dashboard"))
}

func (a *app) adminHome(w http.ResponseWriter, r *http.Request) {
	p := a.base(r, "Admin")
	p.Flash = a.sessions.PopString(r.Context(), keyFlash)
	a.render(w, http.StatusOK, "admin", p)
}

func (a *app) usersPage(w http.ResponseWriter, r *http.Request) {
	p := a.base(r, "Users")
	a.mu.Lock()
	p.Data = slices.Clone(a.users)
	a.mu.Unlock()
	a.render(w, http.StatusOK, "users", p)
}

func (a *app) addUser(w http.ResponseWriter, r *http.Request) {
	// stepup.Printable refuses what would make a name display as another
	// (bidi overrides, "Trojan Source") or break a log line or a page (C0
	// and C1 controls, U+2028/9, invalid UTF-8), as stepup does for claims.
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || len(name) > 64 || !stepup.Printable(name) {
		a.message(w, http.StatusBadRequest, "Users", "A user name is 1 to 64 printable characters.")
		return
	}
	a.mu.Lock()
	a.users = append(a.users, name)
	a.mu.Unlock()
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}

// userActionType is the RFC 9396 authorization details type of the
// console's actions on a user.
const userActionType = "urn:stepup:example:user"

// deleteAction is what POST /admin/users/delete does, for
// RequireStepUpFor: delete the listed user named by the form field name.
// A missing or unlisted name names no action (400).
func (a *app) deleteAction(r *http.Request) (stepup.Action, bool) {
	name := r.PostFormValue("name")
	a.mu.Lock()
	listed := slices.Contains(a.users, name)
	a.mu.Unlock()
	if name == "" || !listed {
		return stepup.Action{}, false
	}
	return stepup.Action{Type: userActionType, Actions: []string{"delete"}, Identifier: name, Text: "Delete user " + name}, true
}

// deleteUser deletes the user named by the form field name, every entry of
// that name: the request that used up an approval of exactly this
// deletion.
func (a *app) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("name")
	a.mu.Lock()
	n := len(a.users)
	a.users = slices.DeleteFunc(a.users, func(u string) bool { return u == name })
	deleted := len(a.users) < n
	a.mu.Unlock()
	if !deleted {
		// Deleted by another request since the guard let this one in.
		a.message(w, http.StatusNotFound, "Users", "That user is no longer listed.")
		return
	}
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}

// toUsers sends a GET of /admin/users/delete to the users page.
func toUsers(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}

func (a *app) auditPage(w http.ResponseWriter, r *http.Request) {
	p := a.base(r, "Audit")
	p.Data = a.audit.recent()
	a.render(w, http.StatusOK, "audit", p)
}

// keyFlash holds the admin page's one-time message.
const keyFlash = "flash"

// revokeElevations ends every elevation of the user named by the form
// field subject, on every session, device and replica, with
// stepup.RevokeSubject: for an account disabled or credentials reset by
// support. The user stays logged in to the console; their next admin
// request asks them to step up again.
func (a *app) revokeElevations(w http.ResponseWriter, r *http.Request) {
	sub := strings.TrimSpace(r.PostFormValue("subject"))
	if sub == "" || len(sub) > 255 || !stepup.Printable(sub) {
		a.message(w, http.StatusBadRequest, "Revoke", "A subject is 1 to 255 printable characters.")
		return
	}
	if err := a.su.RevokeSubject(r.Context(), sub); err != nil {
		// RevokeSubject audited revocation_failed: nothing was revoked.
		a.logf("revoking the elevations of %q failed: %v", sub, err)
		a.message(w, http.StatusInternalServerError, "Revocation failed", "The revocation could not be recorded, so nothing was revoked. Try again in a moment.")
		return
	}
	a.sessions.Put(r.Context(), keyFlash, "Every elevation of "+sub+" has ended, on every session and replica. They stay logged in, and their next admin action asks them to step up again.")
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

// elevationStatus is what GET /elevation answers.
type elevationStatus struct {
	Elevated bool   `json:"elevated"`
	Ends     int64  `json:"ends,omitempty"` // Unix seconds: the countdown's end
	EndsAt   string `json:"ends_at,omitempty"`
	ACR      string `json:"acr,omitempty"`
	AMR      string `json:"amr,omitempty"`
	Bound    string `json:"bound,omitempty"`
	// DeviceBound: admin mode is bound to this browser's key (DBSC); set
	// while elevated.
	DeviceBound *bool `json:"device_bound,omitempty"`
}

// serveElevation answers whether the session is in admin mode now, as the
// guard would decide, revocations included, without enforcing anything. The
// admin pages' card polls it (static/elevation.js), so that an elevation
// ended elsewhere (a logout at the IdP, a security event, a revocation on
// another replica, "End admin mode" in another tab) shows within seconds.
// It costs what a guarded request does: the session and the revocation
// lookup.
func (a *app) serveElevation(w http.ResponseWriter, r *http.Request) {
	var st elevationStatus
	if v := a.base(r, "").Elevation; v != nil {
		st = elevationStatus{Elevated: true, Ends: v.EndsUnix, EndsAt: v.EndsAt.UTC().Format(time.RFC3339), ACR: v.ACR, AMR: v.AMR, Bound: v.Bound, DeviceBound: &v.DeviceBound}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	json.NewEncoder(w).Encode(st)
}

// serveScript serves one of the console's scripts, static/*.js.
func serveScript(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, staticFS, name)
	}
}

// drop ends admin mode.
func (a *app) drop(w http.ResponseWriter, r *http.Request) {
	a.su.Drop(r, "admin")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *app) denied(w http.ResponseWriter, r *http.Request, d *stepup.Denial) {
	// The library's status for the reason: a refusal (by the IdP or by
	// stepup's rules) is a 403, a token endpoint that could not be reached
	// or failed is the IdP's trouble, a 502.
	a.render(w, d.Status(), "denied", page{Title: "Step-up failed", Data: d})
}

// endsToken reports whether r may end its session's token, and so must not
// overlap any other request of the session (sessionlock.go): the logout,
// the two callbacks (which renew the token), and any form post.
func endsToken(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return true
	}
	return r.URL.Path == "/auth/callback" || r.URL.Path == "/stepup/callback"
}

// sessionBusy answers a request that waited sessionLockWait for another
// request of its session to finish.
func (a *app) sessionBusy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	a.message(w, http.StatusServiceUnavailable, "Busy", "Another request of your session is still running. Try again in a moment.")
}

// sessionError answers a request whose session could not be loaded or
// saved. The error is logged, never shown. A request whose client went
// away while the store was read is not a store failure: the store gave up
// waiting because the request's context ended (the Redis adapter and
// PostgreSQL honour it), nobody reads the answer, and a log line per
// closed connection would drown the real failures an operator alerts on.
func (a *app) sessionError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	a.logf("session error on %s %s: %v", r.Method, r.URL.Path, err)
	a.message(w, http.StatusInternalServerError, "Something went wrong", "Your session could not be read or saved. Try again in a moment.")
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"dashboard", "admin", "users", "audit", "message", "denied"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}
