package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
)

// TestAnonymousLoginFloodLeavesNoSessionsAndLittleHeap: 1,000 cookieless
// GET /login, one in ten with a 900 KB return_to, must not create sessions
// (each would live 12 hours) nor keep their return_to in memory.
func TestAnonymousLoginFloodLeavesNoSessionsAndLittleHeap(t *testing.T) {
	// Not parallel: the heap is measured, and other tests would allocate.
	store := memstore.NewWithCleanupInterval(0)
	a, _ := newConsoleApp(t, appDeps{store: store})
	h := a.routes()
	hugeQuery := "return_to=" + url.QueryEscape("/admin?x="+strings.Repeat("a", 900<<10))

	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	cookies := 0
	for i := range 1000 {
		r := httptest.NewRequest("GET", "/login", nil)
		if i%10 == 0 {
			r.URL.RawQuery = hugeQuery // 900 KB
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("GET /login answered %d", w.Code)
		}
		for _, c := range w.Result().Cookies() {
			if c.Name == a.sessions.Cookie.Name {
				cookies++
			}
		}
	}
	after := heap()
	sessions, err := store.All()
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(after) - int64(before)
	t.Logf("HeapInuse before %.1f MiB, after %.1f MiB (%+.1f MiB); sessions in the store: %d",
		float64(before)/(1<<20), float64(after)/(1<<20), float64(grew)/(1<<20), len(sessions))
	if cookies != 0 {
		t.Errorf("%d anonymous logins set the session cookie, want none", cookies)
	}
	if len(sessions) != 0 {
		t.Errorf("1,000 anonymous logins left %d sessions in the store, want 0", len(sessions))
	}
	if grew > 4<<20 {
		t.Errorf("1,000 anonymous logins grew the heap by %.1f MiB, want at most 4", float64(grew)/(1<<20))
	}
}

// TestOverlongReturnToFallsBackToRoot: a return_to over stepup's 2 KiB
// bound is not carried through the login; the visitor lands on "/".
func TestOverlongReturnToFallsBackToRoot(t *testing.T) {
	t.Parallel()
	app, idp := startConsole(t, devidp.Config{})
	for _, tc := range []struct{ returnTo, want string }{
		{"/admin/users?x=" + strings.Repeat("a", 2<<10), "/"},
		{"https://evil.example/", "/"},
		{"/admin/users?sort=name", "/admin/users?sort=name"},
	} {
		c := newClient(t, func(r *http.Request) bool { return r.URL.Path == "/admin/users" })
		p := c.signIn(idp, c.get(app.URL+"/login?return_to="+url.QueryEscape(tc.returnTo)), "alice")
		got := p.url.RequestURI()
		if p.status/100 == 3 {
			got = p.header.Get("Location")
		}
		if got != tc.want {
			t.Errorf("return_to %.40q: landed on %.60q, want %q", tc.returnTo, got, tc.want)
		}
	}
}

// TestForgedOrStaleLoginCookieIsRefused: the login cookie opens only where
// it was sealed (the same client secret), unaltered, and for ten minutes.
func TestForgedOrStaleLoginCookieIsRefused(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	sealer, _ := newLoginSealer("console-secret", false)
	replica, _ := newLoginSealer("console-secret", false)
	other, _ := newLoginSealer("another-secret", false)
	p := pendingLogin{started: now.Unix(), state: "st", nonce: "no", verifier: "ve", returnTo: "/admin"}
	w := httptest.NewRecorder()
	sealer.set(w, p)
	sealed := w.Result().Cookies()[0].Value
	tampered := []byte(sealed)
	tampered[len(tampered)/2] ^= 1

	for _, tc := range []struct {
		name   string
		sealer *loginSealer
		value  string
		at     time.Time
		ok     bool
	}{
		{"as sealed", sealer, sealed, now.Add(time.Minute), true},
		{"on another replica", replica, sealed, now, true},
		{"ten minutes old", sealer, sealed, now.Add(10 * time.Minute), true},
		{"over ten minutes old", sealer, sealed, now.Add(10*time.Minute + time.Second), false},
		{"from the future", sealer, sealed, now.Add(-2 * time.Minute), false},
		{"another client secret", other, sealed, now, false},
		{"one bit flipped", sealer, string(tampered), now, false},
		{"not base64", sealer, "%%%", now, false},
		{"empty", sealer, "", now, false},
		{"oversized", sealer, strings.Repeat("A", 5<<10), now, false},
	} {
		r := httptest.NewRequest("GET", "/auth/callback", nil)
		r.AddCookie(&http.Cookie{Name: loginCookieName, Value: tc.value})
		w := httptest.NewRecorder()
		got, ok := tc.sealer.take(w, r, tc.at)
		if ok != tc.ok || (ok && got != p) {
			t.Errorf("%s: %+v, %v; want ok=%v", tc.name, got, ok, tc.ok)
		}
		if ck := w.Result().Cookies(); len(ck) != 1 || ck[0].MaxAge >= 0 {
			t.Errorf("%s: the login cookie was not deleted: %v", tc.name, ck)
		}
	}
}

// TestUnauthenticatedUsesTheGuardsNavigationRule: a visitor who is not
// logged in is redirected to /login exactly when stepup.IsNavigation says
// the request can follow a redirect; anything else gets the 401.
func TestUnauthenticatedUsesTheGuardsNavigationRule(t *testing.T) {
	t.Parallel()
	a, _ := newConsoleApp(t, appDeps{store: memstore.NewWithCleanupInterval(0)})
	h := a.routes()
	for _, tc := range []struct {
		method string
		header map[string]string
		want   int
	}{
		{"GET", map[string]string{"Accept": "text/html"}, http.StatusSeeOther},
		{"GET", map[string]string{"Accept": "application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}, http.StatusSeeOther},
		{"GET", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, http.StatusUnauthorized},
		{"GET", map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, http.StatusUnauthorized},
		{"GET", map[string]string{"Accept": "text/html;q=0"}, http.StatusUnauthorized},
		{"GET", map[string]string{"Accept": "*/*"}, http.StatusUnauthorized},
		{"POST", map[string]string{"Accept": "text/html"}, http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(tc.method, "/admin/users?sort=name", nil)
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.method, tc.header, w.Code, tc.want)
		}
		if w.Code == http.StatusSeeOther && w.Header().Get("Location") != "/login?return_to="+url.QueryEscape("/admin/users?sort=name") {
			t.Errorf("%s %v: Location %q", tc.method, tc.header, w.Header().Get("Location"))
		}
	}
}
