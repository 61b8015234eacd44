package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"
	"github.com/oidc-stepup/stepup/internal/testkit"
)

// slowStore is a memory store with a network store's latency, which widens
// the window in which requests of one session overlap.
type slowStore struct{ *memstore.MemStore }

func (s slowStore) Find(token string) ([]byte, bool, error) {
	time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
	return s.MemStore.Find(token)
}

func (s slowStore) Commit(token string, b []byte, expiry time.Time) error {
	time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
	return s.MemStore.Commit(token, b, expiry)
}

// slowStoreUpdates serialises slowStore's Update: like the memstore it
// wraps, it lives in this process, so a lock makes the update atomic.
var slowStoreUpdates sync.Mutex

// Update makes slowStore a stepup.AtomicStore, as stepup takes memstore
// to be one.
func (s slowStore) Update(_ context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	return testkit.UpdateLocked(&slowStoreUpdates, s, token, update)
}

// TestLogoutSticksDespiteRequestsInFlight: 40 concurrent GET /stepup/start
// and a POST /logout on one elevated cookie. Without serialising a
// session's requests, a start that loaded the session before the logout
// commits it after, and the old cookie is logged in again.
func TestLogoutSticksDespiteRequestsInFlight(t *testing.T) {
	t.Parallel()
	store := slowStore{memstore.NewWithCleanupInterval(0)}
	con := newConsoleApp(t, appDeps{store: store})
	for round := range 3 {
		c := newClient(t, nil)
		c.signIn(con.idp, c.get(con.URL+"/login"), "alice")
		if p := c.signIn(con.idp, c.get(con.URL+"/admin"), "alice"); p.status != http.StatusOK || p.url.Path != "/admin" {
			t.Fatalf("step-up: %d %s", p.status, p.url)
		}
		u, _ := url.Parse(con.URL)
		var cookie string
		for _, ck := range c.http.Jar.Cookies(u) {
			if ck.Name == con.sessions.Cookie.Name {
				cookie = ck.Value
			}
		}

		raw := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		send := func(method, path string) {
			req, _ := http.NewRequest(method, con.URL+path, nil)
			req.Header.Set("Cookie", con.sessions.Cookie.Name+"="+cookie)
			req.Header.Set("Accept", "text/html")
			if resp, err := raw.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 40 {
			wg.Go(func() {
				<-start
				if i == 20 {
					send("POST", "/logout")
				}
				send("GET", "/stepup/start?scope=admin&return_to=%2Fadmin")
			})
		}
		close(start)
		wg.Wait()
		raw.CloseIdleConnections()

		req, _ := http.NewRequest("GET", con.URL+"/admin/ping", nil)
		req.Header.Set("Cookie", con.sessions.Cookie.Name+"="+cookie)
		req.Header.Set("Accept", "application/json")
		p := newClient(t, nil)
		resp, err := p.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body[:n]), "login_required") {
			t.Errorf("round %d: after logout the old cookie got %d %s, want 401 login_required", round, resp.StatusCode, body[:n])
		}
		if _, found, _ := store.MemStore.Find(cookie); found {
			t.Errorf("round %d: the logged-out session is back in the store", round)
		}
	}
}

// lockHarness is sessionLocks in front of a handler whose /hold requests
// block until release is closed. Requests that are not GET are exclusive.
type lockHarness struct {
	t       *testing.T
	locks   *sessionLocks
	h       http.Handler
	entered chan struct{}
	release chan struct{}
}

func newLockHarness(t *testing.T, wait time.Duration) *lockHarness {
	x := &lockHarness{t: t, entered: make(chan struct{}, 8), release: make(chan struct{})}
	busy := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	x.locks = newSessionLocks("s", wait, func(r *http.Request) bool { return r.Method != http.MethodGet }, busy)
	x.h = x.locks.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			x.entered <- struct{}{}
			<-x.release
		}
	}))
	return x
}

// serve sends method path with the session cookie (none when empty) and
// returns the status and how long it took.
func (x *lockHarness) serve(method, path, cookie string) (int, time.Duration) {
	r := httptest.NewRequest(method, path, nil)
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: "s", Value: cookie})
	}
	w := httptest.NewRecorder()
	start := time.Now()
	x.h.ServeHTTP(w, r)
	return w.Code, time.Since(start)
}

// hold starts a request that blocks in the handler until x.release closes,
// and returns once it is in the handler.
func (x *lockHarness) hold(method, cookie string) <-chan int {
	done := make(chan int, 1)
	go func() { code, _ := x.serve(method, "/hold", cookie); done <- code }()
	<-x.entered
	return done
}

// TestSessionLockWaitIsBounded: while a request that may end the session's
// token runs, any other request of that session waits at most the bound,
// then gets the busy answer; while an ordinary request runs, other ordinary
// ones go ahead and one that may end the token waits. Other sessions and
// cookieless requests never wait, and no lock outlives its requests.
func TestSessionLockWaitIsBounded(t *testing.T) {
	t.Parallel()
	const wait = 100 * time.Millisecond
	for _, tc := range []struct {
		name       string
		holder     string // the method of the request that runs
		method     string // of the one that arrives meanwhile
		cookie     string
		wantBlocks bool
	}{
		{"GETWaitsForPOST", "POST", "GET", "A", true},
		{"POSTWaitsForPOST", "POST", "POST", "A", true},
		{"POSTWaitsForGET", "GET", "POST", "A", true},
		{"GETGoesAlongsideGET", "GET", "GET", "A", false},
		{"OtherSessionGoesAhead", "POST", "POST", "B", false},
		{"CookielessGoesAhead", "POST", "POST", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := newLockHarness(t, wait)
			done := x.hold(tc.holder, "A")
			code, took := x.serve(tc.method, "/", tc.cookie)
			if tc.wantBlocks && (code != http.StatusServiceUnavailable || took < wait || took > wait+time.Second) {
				t.Errorf("%s on %q while a %s on A runs: %d after %v, want 503 after about %v", tc.method, tc.cookie, tc.holder, code, took, wait)
			}
			if !tc.wantBlocks && (code != http.StatusOK || took >= wait) {
				t.Errorf("%s on %q while a %s on A runs: %d after %v, want 200 at once", tc.method, tc.cookie, tc.holder, code, took)
			}
			close(x.release)
			if code := <-done; code != http.StatusOK {
				t.Errorf("the %s that held A: %d", tc.holder, code)
			}
			if code, took := x.serve(tc.method, "/", "A"); code != http.StatusOK || took >= wait {
				t.Errorf("%s on A once free: %d after %v, want 200 at once", tc.method, code, took)
			}
			if n := x.locks.inUse(); n != 0 {
				t.Errorf("%d session locks outlived their requests", n)
			}
		})
	}
}

// TestQueuedLogoutHoldsNewRequestsOff: a request that may end the token
// and waits for running ordinary requests is not starved by new ordinary
// ones, which wait behind it.
func TestQueuedLogoutHoldsNewRequestsOff(t *testing.T) {
	t.Parallel()
	x := newLockHarness(t, time.Second)
	held := x.hold("GET", "A")
	logout := make(chan int, 1)
	go func() { code, _ := x.serve("POST", "/logout", "A"); logout <- code }()
	for queued := false; !queued; time.Sleep(time.Millisecond) {
		x.locks.mu.Lock()
		queued = x.locks.held["A"].queued == 1
		x.locks.mu.Unlock()
	}
	later := make(chan int, 1)
	go func() { code, _ := x.serve("GET", "/", "A"); later <- code }()
	select {
	case code := <-later:
		t.Fatalf("a new GET went ahead of the waiting logout: %d", code)
	case <-time.After(50 * time.Millisecond):
	}
	close(x.release)
	if code := <-held; code != http.StatusOK {
		t.Errorf("the running GET: %d", code)
	}
	if code := <-logout; code != http.StatusOK {
		t.Errorf("the logout: %d", code)
	}
	if code := <-later; code != http.StatusOK {
		t.Errorf("the GET after the logout: %d", code)
	}
}
