package stepup

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-chi/chi/v5"
	jose "github.com/go-jose/go-jose/v4"
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
		r := chi.NewRouter()
		r.Use(h.sm.LoadAndSave)
		r.Get("/admin", admin.ServeHTTP)
		return r
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

// BenchmarkGuard measures the fast path (elevated and fresh) through
// scs.LoadAndSave and chi, against the same chain without the guard, over
// the same session contents. Decoding the session dominates both; see
// BenchmarkGuardAlone for the guard's own cost.
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

// BenchmarkGuardAlone measures the guard by itself: the session is loaded
// once, outside the loop, so only the guard's work (Subject, one scs Get,
// the record check, the revocation lookup in the memory store, the clock)
// separates the two variants.
func BenchmarkGuardAlone(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.Now = time.Now })
	el := h.elevation(time.Now().Add(time.Hour))
	ctx, err := h.sm.Load(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	h.sm.Put(ctx, "stepup.elevation.admin", encodeElevation(&el))
	req := navigation("GET", "/admin", "alice").WithContext(ctx)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"handler=bare", okHandler}, {"handler=guarded", h.su.RequireStepUp("admin")(okHandler)}} {
		b.Run(bc.name, func(b *testing.B) {
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
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

// replayStore serves a fixed session and forgets every write, so that each
// benchmark iteration sees the same session whatever the previous one
// changed (the expired path removes the elevation; a challenge adds a
// pending one).
type replayStore struct{ scs.Store }

func (replayStore) Commit(string, []byte, time.Time) error { return nil }
func (replayStore) Delete(string) error                    { return nil }

// sessionRequest stores values as a session and returns a navigation to
// target that carries its cookie; the store then forgets later writes.
func sessionRequest(b *testing.B, h *harness, target string, values map[string]any) *http.Request {
	b.Helper()
	mem := memstore.NewWithCleanupInterval(0)
	h.sm.Store = mem
	token := h.seedSession(b, values)
	h.sm.Store = replayStore{mem}
	req := navigation("GET", target, "alice")
	req.AddCookie(&http.Cookie{Name: h.sm.Cookie.Name, Value: token})
	return req
}

// BenchmarkExpiredAndChallenge measures the slow paths against the
// unguarded chain with the same session: an expired elevation (removed,
// audited to slog, challenged with a redirect to the IdP), and a session
// with no elevation (challenged).
func BenchmarkExpiredAndChallenge(b *testing.B) {
	h := newHarness(b, func(c *Config) {
		c.Now = time.Now
		c.Auditor = SlogAuditor{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	})
	expired := h.elevation(time.Now().Add(-time.Minute))
	for _, bc := range []struct {
		name    string
		values  map[string]any
		guarded bool
		want    int
	}{
		{"path=unguarded", map[string]any{"stepup.elevation.admin": encodeElevation(&expired)}, false, 200},
		{"path=expired", map[string]any{"stepup.elevation.admin": encodeElevation(&expired)}, true, 303},
		{"path=challenge", map[string]any{"user": "alice"}, true, 303},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := sessionRequest(b, h, "/admin", bc.values)
			var handler http.Handler = okHandler
			if bc.guarded {
				handler = h.su.RequireStepUp("admin")(okHandler)
			}
			chain := h.sm.LoadAndSave(handler)
			w := httptest.NewRecorder()
			chain.ServeHTTP(w, req)
			if w.Code != bc.want {
				b.Fatalf("status %d, want %d", w.Code, bc.want)
			}
			nw := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(nw.h)
				chain.ServeHTTP(nw, req)
			}
		})
	}
}

// BenchmarkCallback measures the callback's own work without the network
// (state lookup, ID-token verification, the claim checks stepup adds, the
// elevation's encoding and session write) against go-oidc's Verify alone on
// the same token.
func BenchmarkCallback(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.Now = time.Now })
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	h.su.verifier = oidc.NewVerifier(testIssuer, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&key.PublicKey}},
		&oidc.Config{ClientID: "client", Now: time.Now})
	now := time.Now().Unix()
	c := pending{state: "STATE", nonce: "NONCE", verifier: "V", scope: "admin", started: now - 5, returnTo: "/admin"}
	raw := signRS256(b, key, map[string]any{
		"iss": testIssuer, "aud": "client", "sub": "alice", "nonce": "NONCE", "iat": now, "exp": now + 600,
		"auth_time": now - 2, "acr": "urn:test:mfa", "amr": []string{"pwd", "otp"}, "session_expiry": now + 300,
		"azp": "client", "sid": "s1",
	})
	p := h.su.policies["admin"]
	ctx, err := h.sm.Load(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	pendingList := encodePending([]pending{c})
	req := httptest.NewRequest("GET", "/stepup/callback", nil).WithContext(ctx)

	b.Run("work=verify-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.su.verifier.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("work=callback", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.sm.Put(ctx, h.su.pendingKey, pendingList)
			got, ok := h.su.takePending(req, "STATE")
			if !ok {
				b.Fatal("state not found")
			}
			idt, err := h.su.verifier.Verify(ctx, raw)
			if err != nil {
				b.Fatal(err)
			}
			tok, err := newIDToken(idt)
			if err != nil {
				b.Fatal(err)
			}
			el, reason, _ := checkClaims(tok, got, p, h.su.ruleContext("alice", true))
			if reason != "" {
				b.Fatal(reason)
			}
			h.sm.Put(ctx, p.key, encodeElevation(&el))
		}
	})
}

func signRS256(b *testing.B, key *rsa.PrivateKey, claims map[string]any) string {
	b.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		b.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}
