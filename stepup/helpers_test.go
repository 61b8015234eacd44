package stepup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/coreos/go-oidc/v3/oidc"
)

const testIssuer = "https://idp.test"

// recorder is an Auditor that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Audit(_ context.Context, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func (r *recorder) Types() []EventType {
	var out []EventType
	for _, e := range r.Events() {
		out = append(out, e.Type)
	}
	return out
}

func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

// offlineProvider is a provider built from static metadata, so unit tests
// need no network.
func offlineProvider() *oidc.Provider {
	return (&oidc.ProviderConfig{
		IssuerURL:   testIssuer,
		AuthURL:     testIssuer + "/authorize",
		TokenURL:    testIssuer + "/token",
		JWKSURL:     testIssuer + "/keys",
		Algorithms:  []string{oidc.RS256},
		UserInfoURL: testIssuer + "/userinfo",
	}).NewProvider(context.Background())
}

func newSessions() *scs.SessionManager {
	sm := scs.New()
	sm.Store = memstore.NewWithCleanupInterval(0)
	return sm
}

// harness is a StepUp on an offline provider with a fake clock, a recording
// auditor and a user header for Subject.
type harness struct {
	su    *StepUp
	cfg   Config
	clock *fakeClock
	audit *recorder
	sm    *scs.SessionManager
}

var t0 = time.Unix(1_800_000_000, 0)

func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(t0), audit: &recorder{}, sm: newSessions()}
	h.cfg = Config{
		Provider:       offlineProvider(),
		Issuer:         testIssuer,
		ClientID:       "client",
		ClientSecret:   "secret",
		RedirectURL:    "https://app.test/stepup/callback",
		SessionManager: h.sm,
		Scopes: map[string]Scope{
			"admin": {ACR: []string{"urn:test:mfa", "urn:test:hw"}},
		},
		Subject: func(r *http.Request) (string, bool) {
			sub := r.Header.Get("X-Test-User")
			return sub, sub != ""
		},
		Now:     h.clock.Now,
		Auditor: h.audit,
	}
	for _, m := range mutate {
		m(&h.cfg)
	}
	su, err := New(h.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.su = su
	return h
}

// serve runs one request through LoadAndSave, first putting the given
// session values into the session.
func (h *harness) serve(r *http.Request, values map[string]any, handler http.Handler) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range values {
			h.sm.Put(r.Context(), k, v)
		}
		handler.ServeHTTP(w, r)
	})).ServeHTTP(w, r)
	return w
}

// elevation returns a valid elevation for alice with the given deadline.
func (h *harness) elevation(deadline time.Time) Elevation {
	return Elevation{
		ID:        "elev-1",
		Scope:     "admin",
		Issuer:    testIssuer,
		Subject:   "alice",
		ACR:       "urn:test:mfa",
		AMR:       []string{"pwd", "otp"},
		AuthTime:  h.clock.Now(),
		Expiry:    deadline,
		GrantedAt: h.clock.Now(),
		Deadline:  deadline,
		Bound:     BoundExp,
	}
}

func navigation(method, target, user string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if user != "" {
		r.Header.Set("X-Test-User", user)
	}
	return r
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Write([]byte("secret admin page"))
})

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
