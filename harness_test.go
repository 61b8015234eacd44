package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/go-chi/chi/v5"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// This file is the one harness of the module's tests: an application using
// stepup behind scs sessions, served over loopback, an in-process OpenID
// Provider, and browsers with cookie jars that drive the two over real HTTP.
// The end-to-end tests, the callback rules, the fault tests, the policy
// flows, the revocation races and the guard's benchmark all start it with
// newApp and the options they need.

const (
	mfa           = "urn:stepup:mfa"
	pwd           = "urn:stepup:pwd"
	sessionCookie = "app_session" // not "session": cookies do not separate ports, and the IdP shares the host
	callbackPath  = "/stepup/callback"
	// backChannelLogoutPath is the client's backchannel_logout_uri.
	backChannelLogoutPath = "/backchannel-logout"
	// ssfEventsPath is the Shared Signals push endpoint.
	ssfEventsPath = "/ssf/events"
)

// advanceTo moves the application's clock to to, which must not be in its
// past: the provider stamps iat and exp with the real clock, so the clock
// starts at the real time and only moves forward.
func advanceTo(t testing.TB, c *stepuptest.Clock, to time.Time) {
	t.Helper()
	if to.Before(c.Now()) {
		t.Fatalf("fake clock: cannot move back from %v to %v", c.Now(), to)
	}
	c.Set(to)
}

// auditLog keeps every audit event the application emits.
type auditLog struct {
	mu     sync.Mutex
	events []stepup.Event
}

func (l *auditLog) record(_ context.Context, e stepup.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *auditLog) all() []stepup.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *auditLog) types() []stepup.EventType {
	var out []stepup.EventType
	for _, e := range l.all() {
		out = append(out, e.Type)
	}
	return out
}

// latest returns the most recent event of any type, or the zero Event.
func (l *auditLog) latest() stepup.Event {
	events := l.all()
	if len(events) == 0 {
		return stepup.Event{}
	}
	return events[len(events)-1]
}

func (l *auditLog) count(typ stepup.EventType) int {
	return len(slices.DeleteFunc(l.all(), func(e stepup.Event) bool { return e.Type != typ }))
}

// last returns the most recent event of type typ, failing the test if
// there is none.
func (l *auditLog) last(t testing.TB, typ stepup.EventType) stepup.Event {
	t.Helper()
	events := l.all()
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Type == typ {
			return events[i]
		}
	}
	t.Fatalf("no %q audit event; got %v", typ, l.types())
	return stepup.Event{}
}

// wantReason asserts that the last event of type typ has reason.
func (l *auditLog) wantReason(t testing.TB, typ stepup.EventType, reason stepup.Reason) stepup.Event {
	t.Helper()
	e := l.last(t, typ)
	if e.Reason != reason {
		t.Fatalf("last %s event: reason = %q, want %q (events %v)", typ, e.Reason, reason, l.types())
	}
	return e
}

// routerKind selects the router the application mounts stepup on.
type routerKind string

const (
	routerChi      routerKind = "chi"
	routerServeMux routerKind = "http.ServeMux"
)

// appOptions configures newApp. The zero value is the application on chi
// with a memory session store, a provider without RFC 9207 iss, and the
// configuration newApp writes.
type appOptions struct {
	router       routerKind // Default: routerChi.
	issParameter bool       // the provider sends RFC 9207 iss
	// idpTransport carries the application's requests to the provider
	// (discovery, token, JWKS), e.g. a fault-injecting one. Its idle
	// connections are closed when the test ends if it has a
	// CloseIdleConnections method. Default: a new *http.Transport.
	idpTransport http.RoundTripper
	// idpTimeout becomes Config.HTTPClient.Timeout once New has discovered
	// the provider, so that a short one cannot fail discovery on a loaded
	// machine. Default: 10s.
	idpTimeout time.Duration
	// signals makes the provider the application's Shared Signals
	// transmitter: SETs are pushed to ssfEventsPath, with aud the
	// application's URL. Default: false, no receiver.
	signals bool
	// store is the session store, under app.store's switchable faults.
	// Default: a memstore without a cleanup goroutine.
	store scs.Store
	// config changes the application's stepup.Config before New.
	config func(*stepup.Config)
	// routes adds handlers to the application's router by "METHOD /path"
	// pattern. It is called once the StepUp exists, before the application
	// serves.
	routes func(a *app) map[string]http.Handler
}

// app is the application under test and its identity provider.
type app struct {
	url      string
	idp      *stepuptest.Provider
	su       *stepup.StepUp
	cfg      stepup.Config // as passed to stepup.New
	sessions *scs.SessionManager
	store    *flakyStore // the session store, whose operations can be made to fail
	clock    *stepuptest.Clock
	audit    *auditLog
	tr       *http.Transport // shared by the test's browsers
	// extraRoutes is appOptions.routes, which replicas mount too.
	extraRoutes func(a *app) map[string]http.Handler
}

// newApp starts an identity provider and an application on loopback; both
// are stopped, and every idle connection closed, when the test ends. The
// provider has one client, the application's, and logs in anyone as alice
// with pwd and otp at the requested acr (see setLogin). The application's
// clock is fake, starts at the real time and, as the provider stamps tokens
// with the real clock, should only move forward.
func newApp(t testing.TB, opts appOptions) *app {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	appURL := "http://" + srv.Listener.Addr().String()
	a := &app{url: appURL, clock: stepuptest.NewClock(time.Now()), audit: &auditLog{}, tr: &http.Transport{}}

	idp, err := stepuptest.New(stepuptest.Config{
		Clients: []stepuptest.Client{{
			ID: "admin-console", Secret: "s3cret", RedirectURIs: []string{appURL + callbackPath},
			BackChannelLogoutURI: appURL + backChannelLogoutPath,
		}},
		IssParameter: opts.issParameter,
	})
	if err != nil {
		srv.Close()
		t.Fatalf("stepuptest.New: %v", err)
	}
	a.idp = idp
	idpTransport := opts.idpTransport
	if idpTransport == nil {
		idpTransport = &http.Transport{}
	}
	t.Cleanup(func() {
		a.tr.CloseIdleConnections()
		srv.Close()
		if err := idp.Close(); err != nil {
			t.Errorf("provider Close: %v", err)
		}
		if c, ok := idpTransport.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
		a.tr.CloseIdleConnections()
	})
	a.setLogin(stepuptest.Login{AMR: []string{"pwd", "otp"}})

	// scs.New starts a memstore cleanup goroutine that cannot be stopped
	// without a data race (StopCleanup reads the channel startCleanup is
	// still assigning); TestMain tells goleak about it. The store the app
	// uses has no goroutine.
	store := opts.store
	if store == nil {
		store = memstore.NewWithCleanupInterval(0)
	}
	a.store = &flakyStore{Store: store}
	a.sessions = scs.New()
	a.sessions.Store = a.store
	a.sessions.Cookie.Name = sessionCookie

	a.cfg = stepup.Config{
		Issuer:         idp.Issuer(),
		ClientID:       "admin-console",
		ClientSecret:   "s3cret",
		RedirectURL:    appURL + callbackPath,
		SessionManager: a.sessions,
		Subject: func(r *http.Request) (string, bool) {
			sub := a.sessions.GetString(r.Context(), "sub")
			return sub, sub != ""
		},
		Scopes:     map[string]stepup.Scope{"admin": {ACR: []string{mfa}}},
		Now:        a.clock.Now,
		Auditor:    stepup.AuditorFunc(a.audit.record),
		HTTPClient: &http.Client{Transport: idpTransport, Timeout: 10 * time.Second},
	}
	if opts.signals {
		a.cfg.SharedSignals = &stepup.SharedSignals{Issuer: idp.Issuer(), Audience: appURL}
	}
	if opts.config != nil {
		opts.config(&a.cfg)
	}
	if a.su, err = stepup.New(a.cfg); err != nil {
		t.Fatalf("stepup.New: %v", err)
	}
	if opts.idpTimeout != 0 {
		a.cfg.HTTPClient.Timeout = opts.idpTimeout
	}
	var extra map[string]http.Handler
	a.extraRoutes = opts.routes
	if opts.routes != nil {
		extra = opts.routes(a)
	}
	srv.Config.Handler = a.sessions.LoadAndSave(a.routes(opts.router, extra))
	srv.Start()
	return a
}

// replica starts a second instance of the application, as a second
// replica behind a load balancer: its own SessionManager and StepUp over
// store, which must share its data with the first replica's (the same
// memstore, or a second pool on the same Redis or PostgreSQL), with the
// same configuration, provider, clock and audit log. Browsers send it the
// first replica's session cookie (cookies do not separate ports), and a
// challenge started on one completes on the other.
func (a *app) replica(t testing.TB, store scs.Store) *app {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	r := *a
	r.url = "http://" + srv.Listener.Addr().String()
	r.store = &flakyStore{Store: store}
	r.sessions = scs.New()
	r.sessions.Store = r.store
	r.sessions.Cookie.Name = sessionCookie
	r.cfg.SessionManager = r.sessions
	r.cfg.Subject = func(req *http.Request) (string, bool) {
		sub := r.sessions.GetString(req.Context(), "sub")
		return sub, sub != ""
	}
	var err error
	if r.su, err = stepup.New(r.cfg); err != nil {
		t.Fatalf("stepup.New (replica): %v", err)
	}
	var extra map[string]http.Handler
	if r.extraRoutes != nil {
		extra = r.extraRoutes(&r)
	}
	srv.Config.Handler = r.sessions.LoadAndSave(r.routes(routerChi, extra))
	srv.Start()
	t.Cleanup(srv.Close)
	return &r
}

// on returns a copy of the browser that sends its requests to replica r.
func (b *browser) on(r *app) *browser {
	c := *b
	c.a = r
	return &c
}

// setLogin decides every later login at the provider. A zero AuthTime is the
// application's fake clock: the IdP's clock agrees with the app's, so a login
// after the fake clock moved is not older than the challenge.
func (a *app) setLogin(l stepuptest.Login) {
	a.idp.SetAuthenticate(func(stepuptest.AuthRequest) stepuptest.Login {
		l := l
		if l.AuthTime.IsZero() {
			l.AuthTime = a.clock.Now()
		}
		return l
	})
}

// observeNextIDToken records the claims of the next ID token the provider
// issues. The token is re-signed with the same claims and key, unchanged.
func (a *app) observeNextIDToken() func(t testing.TB) map[string]any {
	var (
		mu     sync.Mutex
		claims map[string]any
	)
	a.idp.RewriteNextIDToken(func(c map[string]any) (string, error) {
		mu.Lock()
		claims = c
		mu.Unlock()
		return a.idp.Sign(c)
	})
	return func(t testing.TB) map[string]any {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if claims == nil {
			t.Fatal("the provider issued no ID token")
		}
		return claims
	}
}

// unixClaim reads a NumericDate claim as decoded by encoding/json.
func unixClaim(t testing.TB, claims map[string]any, name string) int64 {
	t.Helper()
	f, ok := claims[name].(float64)
	if !ok {
		t.Fatalf("claim %s = %#v, want a number", name, claims[name])
	}
	return int64(f)
}

// flakyStore is the application's session store whose operations can be
// made to fail, one switch each; with every switch off it is the store it
// wraps.
type flakyStore struct {
	scs.Store
	failFind, failCommit, failDelete atomic.Bool
	// failCommitPrefix, when set, makes Commit fail for the keys that
	// start with it only: "R;" fails revocation records and nothing else.
	failCommitPrefix atomic.Pointer[string]
}

// innerStoreLocks serialises flakyStore.Update per wrapped store.
var innerStoreLocks sync.Map // scs.Store → *sync.Mutex

// Update makes flakyStore a stepup.AtomicStore: the wrapped store's
// Update when it has one (the Redis and PostgreSQL adapters), else one
// atomic within this process, as stepup treats scs's memstore. It fails as
// Find and Commit do.
func (s *flakyStore) Update(ctx context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	if as, ok := s.Store.(stepup.AtomicStore); ok {
		if s.failFind.Load() {
			return errStoreDown
		}
		return as.Update(ctx, token, func(cur []byte, found bool) ([]byte, time.Time, error) {
			next, expiry, err := update(cur, found)
			if err == nil && s.failCommit.Load() {
				err = errStoreDown // an error from update stores nothing
			}
			return next, expiry, err
		})
	}
	// Replicas in one process wrap one memstore each in a flakyStore of
	// their own, so the lock belongs to the wrapped store, not to s.
	mu, _ := innerStoreLocks.LoadOrStore(s.Store, new(sync.Mutex))
	return testkit.UpdateLocked(mu.(*sync.Mutex), s, token, update)
}

// UpdateReplicated makes flakyStore a stepup.ReplicatedStore when the
// wrapped store is one (the Redis adapter), failing as Update does; on
// any other store it is Update.
func (s *flakyStore) UpdateReplicated(ctx context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	rs, ok := s.Store.(stepup.ReplicatedStore)
	if !ok {
		return s.Update(ctx, token, update)
	}
	if s.failFind.Load() {
		return errStoreDown
	}
	return rs.UpdateReplicated(ctx, token, func(cur []byte, found bool) ([]byte, time.Time, error) {
		next, expiry, err := update(cur, found)
		if err == nil && s.failCommit.Load() {
			err = errStoreDown
		}
		return next, expiry, err
	})
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Find(token string) ([]byte, bool, error) {
	if s.failFind.Load() {
		return nil, false, errStoreDown
	}
	return s.Store.Find(token)
}

func (s *flakyStore) Commit(token string, b []byte, expiry time.Time) error {
	if s.failCommit.Load() {
		return errStoreDown
	}
	if p := s.failCommitPrefix.Load(); p != nil && strings.HasPrefix(token, *p) {
		return errStoreDown
	}
	return s.Store.Commit(token, b, expiry)
}

func (s *flakyStore) Delete(token string) error {
	if s.failDelete.Load() {
		return errStoreDown
	}
	return s.Store.Delete(token)
}

// routes is the application: a primary-login stand-in, stepup's handlers,
// guarded admin routes and the test's extra routes, on the chosen router.
func (a *app) routes(kind routerKind, extra map[string]http.Handler) http.Handler {
	loginAs := func(w http.ResponseWriter, r *http.Request) {
		if err := a.sessions.RenewToken(r.Context()); err != nil {
			http.Error(w, "session", http.StatusInternalServerError)
			return
		}
		a.sessions.Put(r.Context(), "sub", r.URL.Query().Get("user"))
		io.WriteString(w, "logged in")
	}
	text := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	drop := func(w http.ResponseWriter, r *http.Request) {
		a.su.Drop(r, "admin")
		w.WriteHeader(http.StatusNoContent)
	}
	guard := a.su.RequireStepUp("admin")
	switch kind {
	case routerServeMux:
		mux := http.NewServeMux()
		mux.HandleFunc("GET /login-as", loginAs)
		mux.Handle("GET /stepup/start", a.su.StartHandler())
		mux.Handle("GET "+callbackPath, a.su.CallbackHandler())
		mux.Handle("GET /admin", guard(text(http.StatusOK, "admin ok")))
		mux.Handle("GET /admin/users", guard(text(http.StatusOK, "users")))
		mux.Handle("POST /admin/users", guard(text(http.StatusCreated, "user created")))
		mux.HandleFunc("POST /admin/drop", drop)
		mux.Handle("POST "+backChannelLogoutPath, a.su.BackChannelLogoutHandler())
		mux.Handle("POST "+ssfEventsPath, a.su.SecurityEventHandler())
		for pattern, h := range extra {
			mux.Handle(pattern, h)
		}
		return mux
	default:
		r := chi.NewRouter()
		r.Get("/login-as", loginAs)
		r.Method(http.MethodGet, "/stepup/start", a.su.StartHandler())
		r.Method(http.MethodGet, callbackPath, a.su.CallbackHandler())
		r.Post("/admin/drop", drop)
		r.Method(http.MethodPost, backChannelLogoutPath, a.su.BackChannelLogoutHandler())
		r.Method(http.MethodPost, ssfEventsPath, a.su.SecurityEventHandler())
		r.Group(func(r chi.Router) {
			r.Use(guard)
			r.Get("/admin", text(http.StatusOK, "admin ok"))
			r.Get("/admin/users", text(http.StatusOK, "users"))
			r.Post("/admin/users", text(http.StatusCreated, "user created"))
		})
		for pattern, h := range extra {
			method, path, _ := strings.Cut(pattern, " ")
			r.Method(method, path, h)
		}
		return r
	}
}

// navTransport makes every request look like a browser navigation unless
// the test set Accept itself.
type navTransport struct{ base http.RoundTripper }

func (n navTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	}
	return n.base.RoundTrip(r)
}

// browser is one user agent with its own cookie jar. follow follows every
// redirect; noFollow stops at the first response; toCallback follows
// redirects until the IdP sends it back to the application's callback.
type browser struct {
	a                            *app
	jar                          *cookiejar.Jar
	follow, noFollow, toCallback *http.Client
}

func (a *app) newBrowser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := navTransport{a.tr}
	client := func(check func(*http.Request, []*http.Request) error) *http.Client {
		return &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second, CheckRedirect: check}
	}
	return &browser{
		a:        a,
		jar:      jar,
		follow:   client(nil),
		noFollow: client(func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }),
		toCallback: client(func(r *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(r.URL.String(), a.url+callbackPath) {
				return http.ErrUseLastResponse
			}
			return nil
		}),
	}
}

// response is a read and closed HTTP response.
type response struct {
	status int
	header http.Header
	body   string
	url    *url.URL // of the last request made
}

func (r response) String() string {
	return fmt.Sprintf("%d from %s (Location %q): %.200q", r.status, r.url, r.header.Get("Location"), r.body)
}

// do sends a request; target is a path on the application or an absolute URL.
func (b *browser) do(t testing.TB, c *http.Client, method, target string, form url.Values, header http.Header) response {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = b.a.url + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b2, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b2), url: resp.Request.URL}
}

// get navigates to target following every redirect.
func (b *browser) get(t testing.TB, target string) response {
	t.Helper()
	return b.do(t, b.follow, http.MethodGet, target, nil, nil)
}

// peek navigates to target and stops at the first response.
func (b *browser) peek(t testing.TB, target string) response {
	t.Helper()
	return b.do(t, b.noFollow, http.MethodGet, target, nil, nil)
}

func (b *browser) loginAs(t testing.TB, user string) {
	t.Helper()
	wantStatus(t, b.peek(t, "/login-as?user="+url.QueryEscape(user)), http.StatusOK)
}

// loggedIn returns a new browser in which user has logged in to the
// application.
func (a *app) loggedIn(t testing.TB, user string) *browser {
	t.Helper()
	b := a.newBrowser(t)
	b.loginAs(t, user)
	return b
}

// cookie returns the application's session cookie value.
func (b *browser) cookie(t testing.TB) string {
	t.Helper()
	u, _ := url.Parse(b.a.url)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in the jar", sessionCookie)
	return ""
}

// setCookie puts a session cookie value into the jar, as an attacker who
// learned it would.
func (b *browser) setCookie(t testing.TB, value string) {
	u, _ := url.Parse(b.a.url)
	b.jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: value, Path: "/"}})
}

// challenge navigates to a guarded path and returns the authorization URL
// the application redirected to.
func (b *browser) challenge(t testing.TB, path string) string {
	t.Helper()
	r := b.peek(t, path)
	wantRedirectToIdP(t, b.a, r)
	return r.header.Get("Location")
}

// authorize follows an authorization URL through the IdP and returns the
// callback URL the IdP redirected back to, without requesting it.
func (b *browser) authorize(t testing.TB, authURL string) *url.URL {
	t.Helper()
	r := b.do(t, b.toCallback, http.MethodGet, authURL, nil, nil)
	loc, err := url.Parse(r.header.Get("Location"))
	if r.status/100 != 3 || err != nil || !strings.HasPrefix(loc.String(), b.a.url+callbackPath+"?") {
		t.Fatalf("authorize: got %v, want a redirect to the callback", r)
	}
	return loc
}

// callback starts a challenge for the admin scope at the start handler,
// whether the session is elevated or not, follows it through the IdP and
// returns the callback URL the IdP redirected back to, not yet delivered.
func (b *browser) callback(t testing.TB) *url.URL {
	t.Helper()
	r := b.peek(t, "/stepup/start?scope=admin&return_to=%2Fadmin")
	wantRedirectToIdP(t, b.a, r)
	return b.authorize(t, r.header.Get("Location"))
}

// elevated reports whether /admin answers an API request with 200: the
// session is elevated. An API request is challenged with a 401, so asking
// starts no challenge.
func (b *browser) elevated(t testing.TB) bool {
	t.Helper()
	r := b.do(t, b.noFollow, http.MethodGet, "/admin", nil, http.Header{"Accept": {"application/json"}})
	return r.status == http.StatusOK
}

// stepUp runs a whole challenge for path step by step, and asserts that the
// callback grants it and sends the browser back to path. It returns the
// callback URL.
func (b *browser) stepUp(t testing.TB, path string) *url.URL {
	t.Helper()
	cb := b.authorize(t, b.challenge(t, path))
	wantRedirect(t, b.peek(t, cb.String()), http.StatusSeeOther, path)
	return cb
}

func wantStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %v, want status %d", r, status)
	}
}

func wantRedirect(t testing.TB, r response, status int, location string) {
	t.Helper()
	if r.status != status || r.header.Get("Location") != location {
		t.Fatalf("got %v, want %d to %q", r, status, location)
	}
}

func wantRedirectToIdP(t testing.TB, a *app, r response) {
	t.Helper()
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), a.idp.Issuer()+"/") {
		t.Fatalf("got %v, want a 303 to the IdP at %s", r, a.idp.Issuer())
	}
}

// wantDenied asserts that a callback was refused with status and reason, and
// that neither the response nor any audit event repeats the callback's code
// or state.
func wantDenied(t testing.TB, a *app, r response, cb *url.URL, status int, reason stepup.Reason) stepup.Event {
	t.Helper()
	wantStatus(t, r, status)
	if loc := r.header.Get("Location"); loc != "" {
		t.Errorf("denied callback redirects to %q", loc)
	}
	// The callback URL carries the code: the page must not be cached or
	// leak it through Referer.
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("denied callback: Cache-Control = %q, want no-store", cc)
	}
	if rp := r.header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("denied callback: Referrer-Policy = %q, want no-referrer", rp)
	}
	e := a.audit.wantReason(t, stepup.EventDenied, reason)
	wantNoSecrets(t, a, r, cb)
	return e
}

// wantNoSecrets asserts that the callback's code and state appear in no
// response header, body or audit event.
func wantNoSecrets(t testing.TB, a *app, r response, cb *url.URL) {
	t.Helper()
	q := cb.Query()
	for _, name := range []string{"code", "state"} {
		secret := q.Get(name)
		if secret == "" {
			continue
		}
		if strings.Contains(r.body, secret) {
			t.Errorf("response body contains the %s: %q", name, r.body)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				if strings.Contains(v, secret) {
					t.Errorf("response header %s contains the %s", k, name)
				}
			}
		}
		for _, e := range a.audit.all() {
			if strings.Contains(fmt.Sprintf("%+v", e), secret) {
				t.Errorf("audit event %s contains the %s", e.Type, name)
			}
		}
	}
}
