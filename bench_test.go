package stepup_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/oidc-stepup/stepup/stepup"
)

// benchChain steps alice up for the admin scope in a real app, then returns
// a request carrying the cookie of her stored session (her user and a fresh
// elevation), and three handlers over the same session middleware and chi
// router: one guarded, one not, and one that is not guarded but reads one
// session value, as the guard must. The application reads the user from a
// header, so that the guard's only session read is the elevation's, and
// uses the real clock.
//
// Every scs accessor (Get, GetString, ...) allocates 16 bytes: it boxes the
// manager's string-typed context key to call ctx.Value. That allocation is
// scs's; the guard itself adds none, which the scsRead baseline shows.
func benchChain(tb testing.TB) (req *http.Request, guarded, baseline, scsRead http.Handler) {
	a := newApp(tb, appOptions{config: func(c *stepup.Config) {
		c.Now = time.Now
		c.Subject = func(r *http.Request) (string, bool) {
			sub := r.Header.Get("X-Test-User")
			return sub, sub != ""
		}
	}})
	user := http.Header{"X-Test-User": {"alice"}}
	b := a.loggedIn(tb, "alice")
	start := b.do(tb, b.noFollow, http.MethodGet, "/stepup/start?scope=admin&return_to=%2Fadmin", nil, user)
	wantRedirectToIdP(tb, a, start)
	cb := b.authorize(tb, start.header.Get("Location"))
	wantRedirect(tb, b.do(tb, b.noFollow, http.MethodGet, cb.String(), nil, user), http.StatusSeeOther, "/admin")

	req = httptest.NewRequest(http.MethodGet, "/admin", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("X-Test-User", "alice")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: b.cookie(tb)})

	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("secret admin page"))
	})
	mux := func(admin http.Handler) http.Handler {
		r := chi.NewRouter()
		r.Use(a.sessions.LoadAndSave)
		r.Get("/admin", admin.ServeHTTP)
		return r
	}
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = a.sessions.Get(r.Context(), elevationKey)
		ok(w, r)
	})
	return req, mux(a.su.RequireStepUp("admin")(ok)), mux(ok), mux(read)
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkGuard measures the fast path (elevated and fresh) through
// scs.LoadAndSave and chi, against the same chain without the guard, over
// the same session contents. Decoding the session dominates both; see the
// library's BenchmarkGuardAlone for the guard's own cost.
func BenchmarkGuard(b *testing.B) {
	req, guarded, baseline, _ := benchChain(b)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"chain=unguarded", baseline}, {"chain=guarded", guarded}} {
		b.Run(bc.name, func(b *testing.B) {
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

// TestGuardFastPathAddsNoAllocations holds the fast path to the promise the
// benchmark measures: no allocation beyond what scs and the mux make.
func TestGuardFastPathAddsNoAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	req, guarded, baseline, scsRead := benchChain(t)
	count := func(h http.Handler) float64 {
		w := &nopWriter{h: http.Header{}}
		return testing.AllocsPerRun(200, func() { clear(w.h); h.ServeHTTP(w, req) })
	}
	base, read, got := count(baseline), count(scsRead), count(guarded)
	if got > read {
		t.Errorf("guarded chain allocates %v times per request; baseline %v, baseline with one scs read %v", got, base, read)
	}
	w := httptest.NewRecorder()
	guarded.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("fast path answered %d", w.Code)
	}
}
