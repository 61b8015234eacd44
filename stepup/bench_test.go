package stepup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchChain returns a request carrying the cookie of a stored session that
// holds a fresh elevation for alice, and three handlers over the same
// session middleware and mux: one guarded, one not, and one that is not
// guarded but reads one session value, as the guard must.
//
// Every scs accessor (Get, GetString, ...) allocates 16 bytes: it boxes the
// manager's string-typed context key to call ctx.Value. That allocation is
// scs's; the guard itself adds none, which the scsRead baseline shows.
func benchChain(b testing.TB) (req *http.Request, guarded, baseline, scsRead http.Handler) {
	h := newHarness(b, func(c *Config) { c.Now = time.Now })
	el := h.elevation(time.Now().Add(time.Hour))
	ctx, err := h.sm.Load(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	h.sm.Put(ctx, "stepup.elevation.admin", encodeElevation(&el))
	h.sm.Put(ctx, "user", "alice")
	token, _, err := h.sm.Commit(ctx)
	if err != nil {
		b.Fatal(err)
	}
	req = navigation("GET", "/admin", "alice")
	req.AddCookie(&http.Cookie{Name: h.sm.Cookie.Name, Value: token})

	mux := func(admin http.Handler) http.Handler {
		m := http.NewServeMux()
		m.Handle("GET /admin", admin)
		return h.sm.LoadAndSave(m)
	}
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.sm.Get(r.Context(), "stepup.elevation.admin")
		okHandler(w, r)
	})
	return req, mux(h.su.RequireStepUp("admin")(okHandler)), mux(okHandler), mux(read)
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkGuard measures the fast path (elevated and fresh) against the
// same chain without the guard, over the same session contents.
func BenchmarkGuard(b *testing.B) {
	req, guarded, baseline, scsRead := benchChain(b)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"baseline", baseline}, {"baseline+scs-read", scsRead}, {"elevated", guarded}} {
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
