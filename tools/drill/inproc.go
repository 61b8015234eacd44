package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
	"github.com/oidc-stepup/stepup/stores/redisstore"
	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// Drills 3, 4, 7 and 8 need what the example cannot do: reach its IdP
// through a proxy, run on a skewed clock, run ten replicas, revoke through
// Shared Signals. They run the library in test servers in this process
// instead: a replica is an application with stepup's guard on /admin/ping,
// scs sessions in a real Redis (through stepup's adapter, opened with
// redisstore.Open, with a client of its own, as a separate process would
// have), and stepuptest's provider as the IdP. Its routes are the
// example's that the load uses (/ping, /admin/ping, /stepup/start,
// /stepup/callback), the two revocation receivers (POST
// /backchannel-logout, POST /ssf/push) and a stand-in for the primary
// login, POST /login with the user's name: the drills are about the
// step-up, not the login.

const (
	mfa          = "urn:stepup:drill:mfa"
	drillClient  = "drill-app"
	drillSecret  = "drill-secret"
	callbackPath = "/stepup/callback"
	userKey      = "user"
	// The revocation receivers' paths, and the receiver's identifier in
	// the Shared Signals stream (SharedSignals.Audience).
	logoutPath    = "/backchannel-logout"
	pushPath      = "/ssf/push"
	drillAudience = "drill-app"
)

// replicaConfig is one replica.
type replicaConfig struct {
	index     int8   // 0 for "A", 1 for "B", ...: its X-Replica header
	publicURL string // where browsers reach it: itself, or a balancer
	issuer    string
	// redisURL is redisstore.Open's: one server, or any node of a Redis
	// Cluster.
	redisURL string
	// noWait makes the store acknowledge a revocation once the primary
	// holds it, without waiting for a replica (Replicas = NoReplicas).
	noWait bool
	// signals receives CAEP events from the issuer (Config.SharedSignals).
	signals bool
	// offset is added to the real clock: the replica's Config.Now.
	offset time.Duration
	skew   time.Duration // Config.ClockSkew
	// idp makes the replica's calls to the IdP (Config.HTTPClient).
	idp   *http.Client
	audit *auditLog
}

// replica is a running application.
type replica struct {
	url   string
	srv   *http.Server
	su    *stepup.StepUp
	store *redisstore.RedisStore
}

func replicaName(i int8) string { return string(rune('A' + i)) }

// startReplica starts a replica on ln.
func startReplica(ctx context.Context, cfg replicaConfig, ln net.Listener) (*replica, error) {
	store, err := redisstore.Open(cfg.redisURL)
	if err != nil {
		return nil, err
	}
	if cfg.noWait {
		store.Replicas = redisstore.NoReplicas
	}
	var signals *stepup.SharedSignals
	if cfg.signals {
		signals = &stepup.SharedSignals{Issuer: cfg.issuer, Audience: drillAudience}
	}
	sm := scs.New()
	sm.Store = store
	sm.Lifetime = 12 * time.Hour
	sm.Cookie.Name = console.SessionCookie
	sm.Cookie.SameSite = http.SameSiteLaxMode
	name := replicaName(cfg.index)
	su, err := stepup.New(stepup.Config{
		Issuer:         cfg.issuer,
		ClientID:       drillClient,
		ClientSecret:   drillSecret,
		RedirectURL:    cfg.publicURL + callbackPath,
		SessionManager: sm,
		Scopes:         map[string]stepup.Scope{"admin": {ACR: []string{mfa}}},
		Subject: func(r *http.Request) (string, bool) {
			u := sm.GetString(r.Context(), userKey)
			return u, u != ""
		},
		LoginHint: true,
		ClockSkew: cfg.skew,
		Now:       func() time.Time { return time.Now().Add(cfg.offset) },
		Auditor: stepup.AuditorFunc(func(_ context.Context, e stepup.Event) {
			cfg.audit.add(auditEvent{Type: string(e.Type), Reason: string(e.Reason), Subject: e.Subject,
				Time: e.Time, Deadline: e.Deadline, Elevation: e.Elevation, replica: cfg.index})
		}),
		HTTPClient:    cfg.idp,
		SharedSignals: signals,
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("replica %s: %w", name, err)
	}
	pong := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("pong\n"))
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, "session", http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), userKey, r.FormValue("user"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("GET /ping", pong)
	mux.Handle("GET /admin/ping", su.RequireStepUp("admin")(pong))
	mux.Handle("GET /stepup/start", su.StartHandler())
	mux.Handle("GET "+callbackPath, su.CallbackHandler())
	// The receivers are called by the IdP, without a session.
	top := http.NewServeMux()
	top.Handle("POST "+logoutPath, su.BackChannelLogoutHandler())
	top.Handle("POST "+pushPath, su.SecurityEventHandler())
	top.Handle("/", sm.LoadAndSave(mux))
	rp := &replica{url: "http://" + ln.Addr().String(), su: su, store: store}
	rp.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Replica", name)
			top.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
	}
	go rp.srv.Serve(ln)
	return rp, nil
}

func (rp *replica) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rp.srv.Shutdown(ctx); err != nil {
		rp.srv.Close()
	}
	rp.store.Close()
}

// startIdP starts stepuptest's provider with the drill's client, whose
// redirect URI is on publicURL, and logins for the login_hint the app
// sends (its logged-in user) at mfa, with ID tokens that live lifetime.
func startIdP(publicURL string, lifetime time.Duration) (*stepuptest.Provider, error) {
	return stepuptest.New(stepuptest.Config{
		Clients: []stepuptest.Client{{ID: drillClient, Secret: drillSecret, RedirectURIs: []string{publicURL + callbackPath}}},
		Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
			return stepuptest.Login{Subject: r.LoginHint, ACR: mfa, AMR: []string{"pwd", "otp"}, IDTokenLifetime: lifetime}
		},
	})
}

// balancer spreads requests over the replicas, round robin, one request
// each in turn.
type balancer struct {
	url     string
	srv     *http.Server
	tr      *http.Transport
	proxies []*httputil.ReverseProxy
	next    atomic.Uint64
}

func startBalancer(ln net.Listener, replicas []string) (*balancer, error) {
	b := &balancer{url: "http://" + ln.Addr().String(), tr: &http.Transport{MaxIdleConnsPerHost: 256}}
	for _, r := range replicas {
		u, err := url.Parse(r)
		if err != nil {
			return nil, err
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = b.tr
		b.proxies = append(b.proxies, p)
	}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	return b, nil
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.proxies[(b.next.Add(1)-1)%uint64(len(b.proxies))].ServeHTTP(w, r)
}

func (b *balancer) close() {
	b.srv.Close()
	b.tr.CloseIdleConnections()
}

// logIn logs user in at an in-process app (POST /login) and returns the
// browser holding the session.
func logIn(ctx context.Context, base, user string) (*console.Browser, error) {
	b := console.NewBrowser()
	p, err := b.Do(ctx, http.MethodPost, base+"/login", url.Values{"user": {user}})
	if err != nil {
		b.Close()
		return nil, err
	}
	if p.Status != http.StatusNoContent {
		b.Close()
		return nil, fmt.Errorf("POST /login: %d", p.Status)
	}
	return b, nil
}

// stepUp logs user in at an in-process app and steps the session up: the
// guard's redirect, the provider, the callback, and /admin/ping again.
func stepUp(ctx context.Context, base, user string) (cookie string, err error) {
	b, err := logIn(ctx, base, user)
	if err != nil {
		return "", err
	}
	defer b.Close()
	p, err := b.Do(ctx, http.MethodGet, base+"/admin/ping", nil)
	if err != nil {
		return "", err
	}
	if p.Status != http.StatusOK || p.Body != "pong\n" {
		return "", fmt.Errorf("step-up of %s ended at %d %s", user, p.Status, p.URL)
	}
	return b.Cookie(base), nil
}

// checkOwnGoroutines compares this process's goroutines, once the
// in-process apps are closed, with before, counted before they started:
// the library runs in this process, so its goroutines are this process's.
// It waits up to 5s for connections to wind down.
func checkOwnGoroutines(r *result, before int) {
	var g goroutines
	for deadline := time.Now().Add(5 * time.Second); ; {
		buf := make([]byte, 8<<20)
		g = readDump(string(buf[:runtime.Stack(buf, true)]))
		if (g.total <= before+goroutineSlack && g.inRequests == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.count("goroutines of this process after the load, with the apps closed: %d, serving a request %d (before they started: %d)", g.total, g.inRequests, before)
	r.must(g.inRequests == 0, "%d goroutines still serving a request:\n%s", g.inRequests, g.first)
	r.must(g.total <= before+goroutineSlack, "%d goroutines after the drill, %d before", g.total, before)
}

// countGoroutines counts this process's goroutines as readDump does.
func countGoroutines() int {
	buf := make([]byte, 8<<20)
	return readDump(string(buf[:runtime.Stack(buf, true)])).total
}
