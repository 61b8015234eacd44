package stepup

import (
	"context"
	"crypto"
	"crypto/elliptic"
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
	jose "github.com/go-jose/go-jose/v4"
)

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// The guarded chain through scs and chi against the unguarded one,
// BenchmarkGuard, is at the repository's root: chi is not a dependency of
// the library's module.

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

	// The same elevation bound to a device key (DBSC), with its bound
	// cookie: the subject's record now exists and holds the binding, and
	// the guard checks the cookie's MAC.
	hb := newHarness(b, func(c *Config) {
		c.Now = time.Now
		c.Scopes["admin"] = Scope{ACR: c.Scopes["admin"].ACR, DeviceBinding: DeviceBindingRequired, DevicePaths: []string{"/admin"}}
	})
	_, values, cookie, _, _ := hb.bound(b, newECKey(b, elliptic.P256()))
	bctx := hb.loaded(b, values)
	breq := navigation("GET", "/admin", "alice").WithContext(bctx)
	breq.AddCookie(cookie)

	for _, bc := range []struct {
		name string
		h    http.Handler
		r    *http.Request
	}{
		{"handler=bare", okHandler, req},
		{"handler=guarded", h.su.RequireStepUp("admin")(okHandler), req},
		{"handler=guarded-device-bound", hb.su.RequireStepUp("admin")(okHandler), breq},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, bc.r)
			}
			if rec := httptest.NewRecorder(); true {
				bc.h.ServeHTTP(rec, bc.r)
				if rec.Code != http.StatusOK {
					b.Fatalf("the benchmarked request got %d", rec.Code)
				}
			}
		})
	}
}

// replayStore serves a fixed session and forgets every write, so that each
// benchmark iteration sees the same session whatever the previous one
// changed (the expired path removes the elevation; a challenge adds a
// pending one).
type replayStore struct{ scs.Store }

func (replayStore) Commit(string, []byte, time.Time) error { return nil }
func (replayStore) Delete(string) error                    { return nil }

// seedSession stores a session holding values and returns its token.
func (h *harness) seedSession(t testing.TB, values map[string]any) string {
	t.Helper()
	ctx, err := h.sm.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		h.sm.Put(ctx, k, v)
	}
	token, _, err := h.sm.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

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
