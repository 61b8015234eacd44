package stepup

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// flowHarness is an app using stepup against a real in-process OpenID
// Provider, and a browser with a cookie jar that stops at the callback so
// that tests can tamper with it.
type flowHarness struct {
	t        *testing.T
	idp      *stepuptest.Provider
	app      *httptest.Server
	su       *StepUp
	clock    *stepuptest.Clock
	audit    *recorder
	store    *flakyStore
	browser  *http.Client
	sessions *scs.SessionManager
}

func newFlowHarness(t *testing.T, idpCfg stepuptest.Config, mutate ...func(*Config)) *flowHarness {
	t.Helper()
	idp, err := stepuptest.New(idpCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	h := &flowHarness{t: t, idp: idp, clock: stepuptest.NewClock(time.Now().Truncate(time.Second)), audit: &recorder{}}
	h.store = &flakyStore{Store: memstore.NewWithCleanupInterval(0)}
	h.sessions = scs.New()
	h.sessions.Store = h.store
	var handler http.Handler
	h.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.app.Close)
	idp.AddClient(stepuptest.Client{ID: "app", Secret: "app-secret", RedirectURIs: []string{h.app.URL + "/stepup/callback"}})

	cfg := Config{
		Issuer:         idp.Issuer(),
		ClientID:       "app",
		ClientSecret:   "app-secret",
		RedirectURL:    h.app.URL + "/stepup/callback",
		SessionManager: h.sessions,
		Scopes:         map[string]Scope{"admin": {ACR: []string{"urn:test:mfa"}}},
		Subject: func(r *http.Request) (string, bool) {
			sub := h.sessions.GetString(r.Context(), "sub")
			return sub, sub != ""
		},
		Now:     h.clock.Now,
		Auditor: h.audit,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	h.su, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login-as", func(w http.ResponseWriter, r *http.Request) {
		h.sessions.Put(r.Context(), "sub", r.URL.Query().Get("user"))
	})
	mux.Handle("GET /stepup/start", h.su.StartHandler())
	mux.Handle("GET /stepup/callback", h.su.CallbackHandler())
	mux.Handle("GET /admin", h.su.RequireStepUp("admin")(okHandler))
	handler = h.sessions.LoadAndSave(mux)

	jar, _ := cookiejar.New(nil)
	h.browser = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/stepup/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	t.Cleanup(h.browser.CloseIdleConnections)
	h.get("/login-as?user=alice")
	return h
}

func (h *flowHarness) get(target string) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest("GET", target, nil)
	if !strings.HasPrefix(target, "http") {
		req, _ = http.NewRequest("GET", h.app.URL+target, nil)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := h.browser.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// callbackURL starts a challenge and returns the IdP's redirect back to the
// app, not yet delivered.
func (h *flowHarness) callbackURL() *url.URL {
	h.t.Helper()
	resp := h.get("/stepup/start?scope=admin&return_to=%2Fadmin")
	loc, err := resp.Location()
	if err != nil || loc.Path != "/stepup/callback" {
		h.t.Fatalf("the flow did not reach the callback: %d %v", resp.StatusCode, err)
	}
	return loc
}

// deliver sends the callback, without following its redirect, and returns
// status and body.
func (h *flowHarness) deliver(u *url.URL) (int, string) {
	h.t.Helper()
	c := &http.Client{Jar: h.browser.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer c.CloseIdleConnections()
	resp, err := c.Get(u.String())
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// elevated reports whether /admin now answers 200 without a challenge.
func (h *flowHarness) elevated() bool {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.app.URL+"/admin", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := h.browser.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (h *flowHarness) lastEvent() Event {
	ev := h.audit.Events()
	if len(ev) == 0 {
		return Event{}
	}
	return ev[len(ev)-1]
}

// rewrite makes the IdP's next ID token carry mutated claims, re-signed
// with the IdP's own key.
func (h *flowHarness) rewrite(mutate func(c map[string]any)) {
	h.idp.RewriteNextIDToken(func(c map[string]any) (string, error) {
		mutate(c)
		return h.idp.Sign(c)
	})
}

// flakyStore is a real memstore whose operations can be made to fail.
type flakyStore struct {
	scs.Store
	failFind, failCommit, failDelete atomic.Bool
	mu                               sync.Mutex // serialises Update
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
	return s.Store.Commit(token, b, expiry)
}

// Update makes flakyStore an AtomicStore for the process it lives in, as
// stepup treats memstore; it fails as Find and Commit do.
func (s *flakyStore) Update(ctx context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, found, err := s.Find(token)
	if err != nil {
		return err
	}
	next, expiry, err := update(b, found)
	if err != nil {
		return err
	}
	return s.Commit(token, next, expiry)
}

func (s *flakyStore) Delete(token string) error {
	if s.failDelete.Load() {
		return errStoreDown
	}
	return s.Store.Delete(token)
}

func unsignedJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}

// hmacWithPublicKey signs claims with HS256 using the IdP's RSA public key
// as the HMAC secret: the classic algorithm-confusion forgery.
func hmacWithPublicKey(t *testing.T, idp *stepuptest.Provider, claims map[string]any) string {
	der, err := x509.MarshalPKIXPublicKey(idp.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", idp.KeyID()))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}
