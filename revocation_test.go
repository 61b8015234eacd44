package stepup_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
)

// elevationKey is where stepup keeps the admin scope's elevation in the
// session: Config.SessionKeyPrefix's default, "stepup.", then "elevation."
// and the scope. The tests below read the store behind stepup's back to see
// that the race they need happened.
const elevationKey = "stepup.elevation.admin"

// inFlight is a guarded request, GET /admin/slow, that loads the session,
// changes it (so that scs commits its whole snapshot) and then waits until
// the test lets it finish: a request in flight across a revocation.
type inFlight struct {
	entered, release chan struct{}
}

func newInFlight() *inFlight {
	return &inFlight{entered: make(chan struct{}), release: make(chan struct{})}
}

func (f *inFlight) handler(a *app) http.Handler {
	return a.su.RequireStepUp("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.sessions.Put(r.Context(), "last_seen", "now") // any change makes scs commit the whole snapshot
		close(f.entered)
		<-f.release
		io.WriteString(w, "slow done")
	}))
}

// around runs revoke while b's slow request is in flight: the slow request
// has loaded the session before revoke, and commits its snapshot after it.
// It returns the slow request's status.
func (f *inFlight) around(t *testing.T, b *browser, revoke func()) int {
	t.Helper()
	slow := make(chan int, 1)
	go func() {
		resp, err := b.noFollow.Get(b.a.url + "/admin/slow")
		if err != nil {
			t.Error(err)
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	select {
	case <-f.entered:
	case status := <-slow:
		t.Fatalf("the slow request ended with %d before it loaded the session", status)
	}
	func() {
		defer close(f.release) // even when revoke fails the test
		revoke()
	}()
	return <-slow
}

// storedElevation reads the session named token straight from the store,
// and reports whether it holds the admin elevation.
func storedElevation(t *testing.T, a *app, token string) bool {
	t.Helper()
	ctx, err := a.sessions.Load(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return a.sessions.Exists(ctx, elevationKey)
}

// newRedisPool is a redigo pool on the Redis at addr, closed when the test
// ends: scs's own redisstore, the baseline the adapter is compared with
// and shares its keys with, runs on it.
func newRedisPool(t testing.TB, addr string) *redis.Pool {
	pool := &redis.Pool{MaxIdle: writers, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) }}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// TestDroppedElevationIsNotResurrectedByAnInFlightRequest shows the hole
// scs leaves and that the revocation record closes it: a request that
// loaded the session before Drop, and changes it, commits its stale
// snapshot after Drop and so writes the elevation back into the store. The
// guard must still refuse it. It runs on the memory store, and on a real
// Redis and a real PostgreSQL through the repository's store adapters,
// whose Update writes the revocation record.
func TestDroppedElevationIsNotResurrectedByAnInFlightRequest(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) scs.Store{
		"memory":   func(*testing.T) scs.Store { return memstore.NewWithCleanupInterval(0) },
		"redis":    func(t *testing.T) scs.Store { return newRedisStore(t, "redis://"+testkit.StartRedis(t)) },
		"postgres": func(t *testing.T) scs.Store { return postgresstore.NewWithCleanupInterval(postgresDB(t), 0) },
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			slow := newInFlight()
			a := newApp(t, appOptions{store: newStore(t), routes: func(a *app) map[string]http.Handler {
				return map[string]http.Handler{"GET /admin/slow": slow.handler(a)}
			}})
			b := a.loggedIn(t, "alice")
			b.stepUp(t, "/admin")
			g := a.audit.last(t, stepup.EventGranted)
			token := b.cookie(t)
			events := len(a.audit.all())

			status := slow.around(t, b, func() {
				wantStatus(t, b.do(t, b.noFollow, http.MethodPost, "/admin/drop", url.Values{}, nil), http.StatusNoContent)
				if storedElevation(t, a, token) {
					t.Fatal("Drop did not remove the elevation from the store")
				}
			})
			if status != http.StatusOK {
				t.Fatalf("the in-flight request got %d", status)
			}
			// The hole: the stale snapshot brought the elevation back.
			if !storedElevation(t, a, token) {
				t.Fatal("the in-flight request did not write the elevation back; the race this test needs did not happen")
			}
			// The fix: the guard refuses it, removes it and audits why.
			if r := b.do(t, b.noFollow, http.MethodGet, "/admin", nil, http.Header{"Accept": {"application/json"}}); r.status != http.StatusUnauthorized {
				t.Fatalf("the resurrected elevation was honoured: %v", r)
			}
			ev := a.audit.all()[events:]
			if len(ev) < 3 || ev[0].Reason != stepup.ReasonDropped || ev[1].Reason != stepup.ReasonRevoked || ev[1].Elevation != g.Elevation {
				t.Errorf("audit %+v, want dropped/drop, then dropped/revoked", ev)
			}
			if storedElevation(t, a, token) {
				t.Error("the guard left the resurrected elevation in the store")
			}
		})
	}
}

func TestDropUnrevokedWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{routes: func(a *app) map[string]http.Handler {
		return map[string]http.Handler{"POST /admin/drop-while-the-store-fails": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.store.failCommit.Store(true)
			a.su.Drop(r, "admin")
			a.store.failCommit.Store(false)
			fmt.Fprint(w, "left in the session: ", a.sessions.Exists(r.Context(), elevationKey))
		})}
	}})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	events := len(a.audit.all())
	if r := b.do(t, b.noFollow, http.MethodPost, "/admin/drop-while-the-store-fails", url.Values{}, nil); r.body != "left in the session: false" {
		t.Errorf("Drop left the elevation in the session: %v", r)
	}
	if ev := a.audit.all()[events:]; len(ev) != 1 || ev[0].Reason != stepup.ReasonDropUnrevoked {
		t.Errorf("audit %+v, want dropped/drop_unrevoked", ev)
	}
}

func TestRevocationLookupFailureFailsClosed(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{routes: func(a *app) map[string]http.Handler {
		guarded := a.su.RequireStepUp("admin")(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "secret admin page")
		}))
		return map[string]http.Handler{"GET /admin/while-the-store-fails": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.store.failFind.Store(true) // the session is loaded: only the revocation lookup fails
			defer a.store.failFind.Store(false)
			guarded.ServeHTTP(w, r)
		})}
	}})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	if r := b.peek(t, "/admin/while-the-store-fails"); r.status != 500 || r.body == "secret admin page" {
		t.Errorf("got %v", r)
	}
}

// TestLogoutWithDropAllStopsAResurrectedSession: logout revokes with
// DropAll and destroys the session, while a request that loaded the session
// earlier is still running; that request writes the whole session back
// under the old token. Whoever holds the old cookie must not be elevated.
func TestLogoutWithDropAllStopsAResurrectedSession(t *testing.T) {
	t.Parallel()
	slow := newInFlight()
	a := newApp(t, appOptions{
		config: func(c *stepup.Config) {
			c.Scopes = map[string]stepup.Scope{"admin": {ACR: []string{mfa}}, "billing": {ACR: []string{mfa}}}
		},
		routes: func(a *app) map[string]http.Handler {
			return map[string]http.Handler{
				"GET /admin/slow": slow.handler(a),
				"GET /billing": a.su.RequireStepUp("billing")(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					io.WriteString(w, "billing ok")
				})),
				"POST /logout": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					a.su.DropAll(r)
					if err := a.sessions.Destroy(r.Context()); err != nil {
						http.Error(w, "logout failed", http.StatusInternalServerError)
					}
				}),
			}
		},
	})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	b.stepUp(t, "/billing")
	token := b.cookie(t)

	slow.around(t, b, func() {
		wantStatus(t, b.do(t, b.noFollow, http.MethodPost, "/logout", url.Values{}, nil), http.StatusOK)
	})
	if !storedElevation(t, a, token) {
		t.Fatal("the in-flight request did not write the destroyed session back; the race did not happen")
	}
	thief := a.newBrowser(t)
	thief.setCookie(t, token)
	if r := thief.do(t, thief.noFollow, http.MethodGet, "/admin", nil, http.Header{"Accept": {"application/json"}}); r.status != http.StatusUnauthorized {
		t.Fatalf("the old cookie is still elevated after logout: %v", r)
	}
	dropped := 0
	for _, e := range a.audit.all() {
		if e.Type == stepup.EventDropped && e.Reason == stepup.ReasonDropped {
			dropped++
		}
	}
	if dropped != 2 {
		t.Errorf("DropAll audited %d drops, want one per scope", dropped)
	}
}

// TestElevationReportsNothingForARevokedElevation: StepUp.Elevation reports
// a fresh elevation, and nothing while the revocation lookup fails or once
// the elevation is revoked, even where a stale commit has written it back
// into the session.
func TestElevationReportsNothingForARevokedElevation(t *testing.T) {
	t.Parallel()
	slow := newInFlight()
	a := newApp(t, appOptions{routes: func(a *app) map[string]http.Handler {
		return map[string]http.Handler{
			"GET /admin/slow": slow.handler(a),
			// An unguarded page that shows what Elevation reports;
			// ?store=down makes the revocation lookup fail.
			"GET /elevation": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("store") == "down" {
					a.store.failFind.Store(true)
					defer a.store.failFind.Store(false)
				}
				_, ok := a.su.Elevation(r, "admin")
				fmt.Fprint(w, ok)
			}),
		}
	}})
	b := a.loggedIn(t, "alice")
	b.stepUp(t, "/admin")
	token := b.cookie(t)
	if r := b.peek(t, "/elevation"); r.body != "true" {
		t.Fatalf("a fresh elevation is not reported: %v", r)
	}
	if r := b.peek(t, "/elevation?store=down"); r.body != "false" {
		t.Errorf("reported while the revocation lookup fails: %v", r)
	}
	slow.around(t, b, func() {
		wantStatus(t, b.do(t, b.noFollow, http.MethodPost, "/admin/drop", url.Values{}, nil), http.StatusNoContent)
	})
	if !storedElevation(t, a, token) {
		t.Fatal("the in-flight request did not write the elevation back; the race this test needs did not happen")
	}
	if r := b.peek(t, "/elevation"); r.body != "false" {
		t.Errorf("a revoked elevation is reported: %v", r)
	}
}
