package stepup

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/maphash"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	jose "github.com/go-jose/go-jose/v4"
)

// deviceKey is a browser's DBSC key, in software.
type deviceKey struct {
	key crypto.Signer
	alg jose.SignatureAlgorithm
}

func newECKey(t testing.TB, curve elliptic.Curve) deviceKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return deviceKey{key: k, alg: jose.ES256}
}

func newRSAKey(t testing.TB, bits int) deviceKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return deviceKey{key: k, alg: jose.RS256}
}

// proofOpts shape a proof, for the forgeries.
type proofOpts struct {
	typ      string        // default dbsc+jwt
	embed    bool          // put the key in the header, as a registration does
	embedKey crypto.Signer // embed this key's public part instead of the signer's
	private  bool          // embed the private key
	alg      jose.SignatureAlgorithm
}

// proof signs claims as chromium does: {"alg":"ES256","jwk":{...},"typ":"dbsc+jwt"}.
func (k deviceKey) proof(t testing.TB, claims map[string]any, o proofOpts) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	typ := o.typ
	if typ == "" {
		typ = "dbsc+jwt"
	}
	opts.WithType(jose.ContentType(typ))
	if o.embed {
		var jwk jose.JSONWebKey
		switch {
		case o.private:
			jwk = jose.JSONWebKey{Key: k.key}
		case o.embedKey != nil:
			jwk = jose.JSONWebKey{Key: o.embedKey.Public()}
		default:
			jwk = jose.JSONWebKey{Key: k.key.Public()}
		}
		opts.WithHeader("jwk", jwk)
	}
	alg := k.alg
	if o.alg != "" {
		alg = o.alg
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newDeviceHarness is a harness whose scope "admin" binds elevations.
func newDeviceHarness(t testing.TB, mode DeviceBinding) *harness {
	return newHarness(t, func(c *Config) {
		sc := c.Scopes["admin"]
		sc.DeviceBinding, sc.DevicePaths = mode, []string{"/admin"}
		c.Scopes["admin"] = sc
	})
}

// grantWithRegistration stores the registration the callback would start
// for el, and returns it with el's session values.
func (h *harness) grantWithRegistration(t testing.TB, el *Elevation) (registration, map[string]any) {
	t.Helper()
	reg, err := h.su.startRegistration(context.Background(), el)
	if err != nil {
		t.Fatal(err)
	}
	return reg, map[string]any{"stepup.elevation.admin": encodeElevation(el)}
}

func sessionIDOf(challenge string) string {
	id, _, _ := strings.Cut(challenge, ".")
	return id
}

func (h *harness) register(values map[string]any, proof string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/stepup/device/register", nil)
	if proof != "" {
		r.Header.Set("Secure-Session-Response", proof)
	}
	return h.serve(r, values, h.su.DeviceRegisterHandler())
}

func (h *harness) refreshReq(values map[string]any, id, proof string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/stepup/device/refresh", nil)
	r.Header.Set("Sec-Secure-Session-Id", id)
	if proof != "" {
		r.Header.Set("Secure-Session-Response", proof)
	}
	return h.serve(r, values, h.su.DeviceRefreshHandler())
}

// challengeOf reads the challenge of a Secure-Session-Challenge header.
func challengeOf(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	v := w.Header().Get("Secure-Session-Challenge")
	c, _, ok := strings.Cut(strings.TrimPrefix(v, `"`), `"`)
	if !ok || c == "" {
		t.Fatalf("no Secure-Session-Challenge in %q", v)
	}
	return c
}

// boundCookies returns the bound cookies a response sets or clears.
func boundCookies(w *httptest.ResponseRecorder) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range w.Result().Cookies() {
		if strings.Contains(c.Name, "stepup-bound-") {
			out = append(out, c)
		}
	}
	return out
}

func boundCookie(t testing.TB, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if strings.HasPrefix(c.Name, "__Host-stepup-bound-") && c.MaxAge > 0 {
			return c
		}
	}
	t.Fatalf("no bound cookie in %v", w.Header()["Set-Cookie"])
	return nil
}

// bindings returns the bindings in alice's record.
func (h *harness) bindings(t testing.TB) []deviceBinding {
	t.Helper()
	cur, found, err := h.su.findRecord(context.Background(), h.su.subjectKey("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return nil
	}
	rv, err := decodeRevocations(cur)
	if err != nil {
		t.Fatal(err)
	}
	return rv.bindings
}

// bound steps alice's elevation through a registration with key k.
func (h *harness) bound(t testing.TB, k deviceKey) (el Elevation, values map[string]any, cookie *http.Cookie, id, next string) {
	t.Helper()
	el = h.elevation(h.Now().Add(time.Hour))
	reg, values := h.grantWithRegistration(t, &el)
	w := h.register(values, k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true}))
	if w.Code != http.StatusOK {
		t.Fatalf("registration: %d %s", w.Code, w.Body)
	}
	return el, values, boundCookie(t, w), sessionIDOf(reg.challenge), challengeOf(t, w)
}

func TestDeviceRegistrationBindsTheElevation(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	k := newECKey(t, elliptic.P256())
	el := h.elevation(h.Now().Add(time.Hour))
	reg, values := h.grantWithRegistration(t, &el)
	if got := h.su.registrationHeader(reg); !strings.HasPrefix(got, `(ES256 RS256);path="/stepup/device/register";challenge="`) {
		t.Fatalf("Secure-Session-Registration = %s", got)
	}
	w := h.register(values, k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true}))
	if w.Code != http.StatusOK {
		t.Fatalf("registration: %d %s", w.Code, w.Body)
	}
	var cfg sessionConfig
	if err := json.Unmarshal(w.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	c := boundCookie(t, w)
	if cfg.SessionIdentifier != sessionIDOf(reg.challenge) || cfg.RefreshURL != "/stepup/device/refresh" ||
		cfg.Scope.Origin != "https://app.test" || len(cfg.Scope.ScopeSpecification) != 2 ||
		cfg.Scope.ScopeSpecification[0] != (scopeRule{"exclude", "app.test", "/"}) ||
		cfg.Scope.ScopeSpecification[1] != (scopeRule{"include", "app.test", "/admin"}) ||
		len(cfg.Credentials) != 1 || cfg.Credentials[0].Name != c.Name ||
		cfg.Credentials[0].Attributes != "Path=/; HttpOnly; SameSite=Lax; Secure" {
		t.Fatalf("session config: %s", w.Body)
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 59 {
		t.Fatalf("bound cookie attributes: %+v", c)
	}
	pub := jose.JSONWebKey{Key: k.key.Public()}
	sum, _ := pub.Thumbprint(crypto.SHA256)
	bs := h.bindings(t)
	if len(bs) != 1 || bs[0].id != el.ID || bs[0].until != el.Deadline.Unix() {
		t.Fatalf("bindings = %+v", bs)
	}
	ev := h.audit.Events()
	if last := ev[len(ev)-1]; last.Type != EventBound || last.DeviceBound == nil || !*last.DeviceBound ||
		last.Elevation != el.ID || last.KeyThumbprint != base64.RawURLEncoding.EncodeToString(sum) || last.Subject != "alice" {
		t.Fatalf("audit: %+v", last)
	}

	guard := h.su.RequireStepUp("admin")(okHandler)
	r := navigation("GET", "/admin", "alice")
	r.AddCookie(c)
	if w := h.serve(r, values, guard); w.Code != http.StatusOK {
		t.Fatalf("with the bound cookie: %d", w.Code)
	}
	if e, ok := h.su.Elevation(r.WithContext(h.loaded(t, values)), "admin"); !ok || !e.DeviceBound {
		t.Fatalf("Elevation: %v %+v", ok, e)
	}
}

// loaded returns a context whose session holds values.
func (h *harness) loaded(t testing.TB, values map[string]any) context.Context {
	ctx, err := h.sm.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		h.sm.Put(ctx, k, v)
	}
	return ctx
}

func TestStolenSessionCookieWithoutBoundCookieIsChallengedNotDropped(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	_, values, c, _, _ := h.bound(t, newECKey(t, elliptic.P256()))
	guard := h.su.RequireStepUp("admin")(okHandler)
	h.advance(DefaultDeviceBindingGrace) // past the first page's race with its registration
	for _, tc := range []struct {
		name   string
		cookie *http.Cookie
		reason Reason
	}{
		{"no bound cookie", nil, ReasonBoundCookieMissing},
		{"forged MAC", &http.Cookie{Name: c.Name, Value: c.Value[:len(c.Value)-2] + "AA"}, ReasonBoundCookieInvalid},
		{"expiry moved", &http.Cookie{Name: c.Name, Value: "9" + c.Value}, ReasonBoundCookieInvalid},
		{"garbage", &http.Cookie{Name: c.Name, Value: "x"}, ReasonBoundCookieInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.audit.Reset()
			ctx := h.loaded(t, values)
			r := navigation("GET", "/admin", "alice").WithContext(ctx)
			if tc.cookie != nil {
				r.AddCookie(tc.cookie)
			}
			w := httptest.NewRecorder()
			guard.ServeHTTP(w, r)
			if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "https://idp.test/") {
				t.Fatalf("got %d %s, want the challenge", w.Code, w.Header().Get("Location"))
			}
			if h.sm.GetString(ctx, "stepup.elevation.admin") == "" {
				t.Fatal("the elevation was dropped: a cookie thief could end the real user's elevation")
			}
			ev := h.audit.Events()
			if len(ev) == 0 || ev[0].Type != EventDeviceRefused || ev[0].Reason != tc.reason {
				t.Fatalf("audit: %+v", ev)
			}
		})
	}
	// The real browser, with its cookie, still passes.
	r := navigation("GET", "/admin", "alice")
	r.AddCookie(c)
	if w := h.serve(r, values, guard); w.Code != http.StatusOK {
		t.Fatalf("the real browser: %d", w.Code)
	}
}

func TestStolenBoundCookieDiesAtItsExpiry(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	_, values, c, _, _ := h.bound(t, newECKey(t, elliptic.P256()))
	guard := h.su.RequireStepUp("admin")(okHandler)
	h.advance(59 * time.Second)
	r := navigation("GET", "/admin", "alice")
	r.AddCookie(c)
	if w := h.serve(r, values, guard); w.Code != http.StatusOK {
		t.Fatalf("at 59s: %d", w.Code)
	}
	h.advance(time.Second)
	r = navigation("GET", "/admin", "alice")
	r.AddCookie(c)
	if w := h.serve(r, values, guard); w.Code != http.StatusSeeOther {
		t.Fatalf("at 60s: %d, want the challenge", w.Code)
	}
}

func TestForgedRegistrationsAreRefusedAndStoreNothing(t *testing.T) {
	k := newECKey(t, elliptic.P256())
	other := newECKey(t, elliptic.P256())
	p384 := newECKey(t, elliptic.P384())
	rsa1024 := newRSAKey(t, 1024)
	for _, tc := range []struct {
		name   string
		proof  func(t *testing.T, h *harness, reg registration) string
		values func(h *harness, values map[string]any) map[string]any
		status int
		reason Reason
	}{
		{"no proof", func(*testing.T, *harness, registration) string { return "" }, nil, 401, ReasonDeviceProofInvalid},
		{"not a JWT", func(*testing.T, *harness, registration) string { return "a.b.c" }, nil, 401, ReasonDeviceProofInvalid},
		{"oversized", func(*testing.T, *harness, registration) string { return strings.Repeat("a", maxProofLen+1) }, nil, 401, ReasonDeviceProofInvalid},
		{"typ JWT", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true, typ: "JWT"})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"no jwk", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"jwk of another key", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true, embedKey: other.key})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"private jwk", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true, private: true})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"jwk off the curve", func(t *testing.T, h *harness, reg registration) string {
			return offCurveProof(t, k, map[string]any{"jti": reg.challenge, "authorization": reg.authorization})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"alg none", func(t *testing.T, h *harness, reg registration) string {
			hdr, _ := json.Marshal(map[string]any{"alg": "none", "typ": "dbsc+jwt", "jwk": jose.JSONWebKey{Key: k.key.Public()}})
			pl, _ := json.Marshal(map[string]any{"jti": reg.challenge, "authorization": reg.authorization})
			return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(pl) + "."
		}, nil, 401, ReasonDeviceProofInvalid},
		{"ES384 on P-384", func(t *testing.T, h *harness, reg registration) string {
			return p384.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true, alg: jose.ES384})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"RS256 with 1024 bits", func(t *testing.T, h *harness, reg registration) string {
			return rsa1024.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"PS256", func(t *testing.T, h *harness, reg registration) string {
			return newRSAKey(t, 2048).proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true, alg: jose.PS256})
		}, nil, 401, ReasonDeviceProofInvalid},
		{"unknown challenge", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": randomToken() + "." + randomToken(), "authorization": reg.authorization}, proofOpts{embed: true})
		}, nil, 400, ReasonDeviceChallengeUnknown},
		{"challenge of this session, tampered", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge + "x", "authorization": reg.authorization}, proofOpts{embed: true})
		}, nil, 400, ReasonDeviceChallengeUnknown},
		{"expired challenge", func(t *testing.T, h *harness, reg registration) string {
			h.advance(time.Duration(h.su.challengeTTL()) * time.Second)
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})
		}, nil, 400, ReasonDeviceChallengeUnknown},
		{"wrong authorization", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": randomToken()}, proofOpts{embed: true})
		}, nil, 400, ReasonDeviceAuthorization},
		{"another session's registration", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})
		}, func(h *harness, values map[string]any) map[string]any {
			other := h.elevation(h.Now().Add(time.Hour))
			other.ID = "elev-2"
			return map[string]any{"stepup.elevation.admin": encodeElevation(&other)}
		}, 400, ReasonDeviceSessionMismatch},
		{"a session without elevation", func(t *testing.T, h *harness, reg registration) string {
			return k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})
		}, func(*harness, map[string]any) map[string]any { return nil }, 400, ReasonDeviceSessionMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newDeviceHarness(t, DeviceBindingPreferred)
			el := h.elevation(h.Now().Add(time.Hour))
			reg, values := h.grantWithRegistration(t, &el)
			proof := tc.proof(t, h, reg)
			if tc.values != nil {
				values = tc.values(h, values)
			}
			w := h.register(values, proof)
			if w.Code != tc.status || len(boundCookies(w)) != 0 {
				t.Fatalf("got %d %s, cookies %v; want %d", w.Code, w.Body, boundCookies(w), tc.status)
			}
			ev := h.audit.Events()
			if len(ev) != 1 || ev[0].Type != EventDeviceRefused || ev[0].Reason != tc.reason {
				t.Fatalf("audit: %+v, want device_refused %s", ev, tc.reason)
			}
			if bs := h.bindings(t); len(bs) != 0 {
				t.Fatalf("stored bindings %+v", bs)
			}
		})
	}
}

// offCurveProof is a registration proof whose jwk's y is moved off the
// P-256 curve, signed with ES256 by k over exactly that header.
func offCurveProof(t *testing.T, k deviceKey, claims map[string]any) string {
	t.Helper()
	pub := k.key.Public().(*ecdsa.PublicKey)
	x, y := make([]byte, 32), make([]byte, 32)
	pub.X.FillBytes(x)
	pub.Y.FillBytes(y)
	y[31] ^= 1
	hdr, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "dbsc+jwt", "jwk": map[string]string{
		"kty": "EC", "crv": "P-256", "x": base64.RawURLEncoding.EncodeToString(x), "y": base64.RawURLEncoding.EncodeToString(y)}})
	pl, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(pl)
	sum := sha256.Sum256([]byte(input))
	r, sg, err := ecdsa.Sign(rand.Reader, k.key.(*ecdsa.PrivateKey), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestReplayedRegistrationIsRefused(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	k := newECKey(t, elliptic.P256())
	el := h.elevation(h.Now().Add(time.Hour))
	reg, values := h.grantWithRegistration(t, &el)
	proof := k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})
	if w := h.register(values, proof); w.Code != http.StatusOK {
		t.Fatalf("first: %d", w.Code)
	}
	// The same proof again, and a new key answering the same challenge.
	attacker := newECKey(t, elliptic.P256())
	for _, p := range []string{proof, attacker.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})} {
		h.audit.Reset()
		if w := h.register(values, p); w.Code != http.StatusBadRequest {
			t.Fatalf("replay: %d", w.Code)
		}
		if ev := h.audit.Events(); len(ev) != 1 || ev[0].Reason != ReasonDeviceChallengeUnknown {
			t.Fatalf("audit: %+v", ev)
		}
	}
	if bs := h.bindings(t); len(bs) != 1 {
		t.Fatalf("bindings %+v", bs)
	}
}

func TestRegistrationWithRS256Works(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingRequired)
	_, values, c, _, _ := h.bound(t, newRSAKey(t, 2048))
	r := navigation("GET", "/admin", "alice")
	r.AddCookie(c)
	if w := h.serve(r, values, h.su.RequireStepUp("admin")(okHandler)); w.Code != http.StatusOK {
		t.Fatalf("%d", w.Code)
	}
}

func TestRefreshProvesTheKeyAndChallengesAreSingleUse(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	k := newECKey(t, elliptic.P256())
	_, values, _, id, next := h.bound(t, k)
	guard := h.su.RequireStepUp("admin")(okHandler)

	// The challenge sent ahead on the registration's 200 is answered at once.
	h.advance(time.Duration(h.su.challengeTTL()) * time.Second)
	proof := k.proof(t, map[string]any{"jti": next}, proofOpts{})
	// Sent ahead a cookie's lifetime and a minute ago: expired, so the
	// browser gets a new one, and that is no replay: nothing is audited.
	h.audit.Reset()
	if w := h.refreshReq(values, id, proof); w.Code != http.StatusForbidden || w.Header().Get("Secure-Session-Challenge") == "" {
		t.Fatalf("expired challenge: %d", w.Code)
	}
	if ev := h.audit.Events(); len(ev) != 0 {
		t.Fatalf("an expired challenge sent ahead was audited: %+v", ev)
	}
	w := h.refreshReq(values, id, "")
	if w.Code != http.StatusForbidden || !strings.HasSuffix(w.Header().Get("Secure-Session-Challenge"), `;id="`+id+`"`) {
		t.Fatalf("no proof: %d %v", w.Code, w.Header())
	}
	c := challengeOf(t, w)
	proof = k.proof(t, map[string]any{"jti": c}, proofOpts{})
	w = h.refreshReq(values, id, proof)
	if w.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", w.Code, w.Body)
	}
	cookie := boundCookie(t, w)
	ahead := challengeOf(t, w)
	r := navigation("GET", "/admin", "alice")
	r.AddCookie(cookie)
	if w := h.serve(r, values, guard); w.Code != http.StatusOK {
		t.Fatalf("with the refreshed cookie: %d", w.Code)
	}
	// The same proof again: its challenge is used.
	h.audit.Reset()
	if w := h.refreshReq(values, id, proof); w.Code != http.StatusForbidden || len(boundCookies(w)) != 0 {
		t.Fatalf("replayed proof: %d", w.Code)
	}
	if ev := h.audit.Events(); len(ev) != 1 || ev[0].Reason != ReasonDeviceChallengeUnknown {
		t.Fatalf("audit: %+v", ev)
	}
	// Another key answering a live challenge.
	h.audit.Reset()
	if w := h.refreshReq(values, id, newECKey(t, elliptic.P256()).proof(t, map[string]any{"jti": ahead}, proofOpts{})); w.Code != http.StatusUnauthorized || len(boundCookies(w)) != 0 {
		t.Fatalf("another key: %d", w.Code)
	}
	if ev := h.audit.Events(); len(ev) != 1 || ev[0].Reason != ReasonDeviceProofInvalid {
		t.Fatalf("audit: %+v", ev)
	}
	// RS256 signed by nobody's key, claiming the registered ES256 key's algorithm is not enough either.
	if w := h.refreshReq(values, id, newRSAKey(t, 2048).proof(t, map[string]any{"jti": ahead}, proofOpts{})); w.Code != http.StatusUnauthorized {
		t.Fatalf("RS256 proof for an ES256 key: %d", w.Code)
	}
	// The challenge sent ahead still works for the real key.
	if w := h.refreshReq(values, id, k.proof(t, map[string]any{"jti": ahead}, proofOpts{})); w.Code != http.StatusOK {
		t.Fatalf("challenge sent ahead: %d", w.Code)
	}
	// Unknown and malformed session ids.
	for _, bad := range []string{randomToken(), "", "../../etc", strings.Repeat("a", 200)} {
		h.audit.Reset()
		if w := h.refreshReq(values, bad, ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("session id %q: %d", bad, w.Code)
		}
		if ev := h.audit.Events(); len(ev) != 1 || ev[0].Reason != ReasonDeviceSessionUnknown {
			t.Fatalf("audit: %+v", ev)
		}
	}
}

// refreshEnds refreshes with a valid proof and expects continue:false.
func refreshEnds(t *testing.T, h *harness, k deviceKey, values map[string]any, id string, cause Reason) {
	t.Helper()
	w := h.refreshReq(values, id, "")
	c := challengeOf(t, w)
	h.audit.Reset()
	w = h.refreshReq(values, id, k.proof(t, map[string]any{"jti": c}, proofOpts{}))
	var body map[string]any
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &body) != nil ||
		body["continue"] != false || body["session_identifier"] != id {
		t.Fatalf("refresh: %d %s, want continue:false", w.Code, w.Body)
	}
	ck := boundCookies(w)
	if len(ck) != 1 || ck[0].MaxAge >= 0 {
		t.Fatalf("the bound cookie is not cleared: %v", ck)
	}
	if ev := h.audit.Events(); len(ev) != 1 || ev[0].Type != EventDeviceEnded || ev[0].Reason != cause {
		t.Fatalf("audit: %+v, want device_ended %s", ev, cause)
	}
}

func TestRefreshEndsTheDeviceSessionOnceTheElevationEnded(t *testing.T) {
	k := newECKey(t, elliptic.P256())
	t.Run("revoked by an operator", func(t *testing.T) {
		h := newDeviceHarness(t, DeviceBindingPreferred)
		_, values, _, id, _ := h.bound(t, k)
		if err := h.su.RevokeSubject(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		refreshEnds(t, h, k, values, id, ReasonRevokedByOperator)
	})
	t.Run("dropped", func(t *testing.T) {
		h := newDeviceHarness(t, DeviceBindingPreferred)
		_, values, _, id, _ := h.bound(t, k)
		h.serve(navigation("GET", "/logout", "alice"), values, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.Drop(r, "admin")
		}))
		refreshEnds(t, h, k, values, id, ReasonRevoked)
	})
	t.Run("expired", func(t *testing.T) {
		h := newDeviceHarness(t, DeviceBindingPreferred)
		_, values, _, id, _ := h.bound(t, k)
		h.advance(time.Hour - DefaultClockSkew)
		refreshEnds(t, h, k, values, id, ReasonExpired)
	})
	t.Run("replaced in the session", func(t *testing.T) {
		h := newDeviceHarness(t, DeviceBindingPreferred)
		_, _, _, id, _ := h.bound(t, k)
		other := h.elevation(h.Now().Add(time.Hour))
		other.ID = "elev-2"
		refreshEnds(t, h, k, map[string]any{"stepup.elevation.admin": encodeElevation(&other)}, id, ReasonElevationGone)
	})
}

func TestPreferredHonoursAnUnboundElevationAndAuditsItOnce(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	el := h.elevation(h.Now().Add(time.Hour))
	values := map[string]any{"stepup.elevation.admin": encodeElevation(&el)}
	guard := h.su.RequireStepUp("admin")(okHandler)
	if w := h.serve(navigation("GET", "/admin", "alice"), values, guard); w.Code != http.StatusOK || len(h.audit.Events()) != 0 {
		t.Fatalf("within the grace: %d %+v", w.Code, h.audit.Events())
	}
	h.advance(DefaultDeviceBindingGrace)
	for range 3 {
		if w := h.serve(navigation("GET", "/admin", "alice"), values, guard); w.Code != http.StatusOK {
			t.Fatalf("after the grace: %d", w.Code)
		}
	}
	ev := h.audit.Events()
	if len(ev) != 1 || ev[0].Type != EventUnbound || ev[0].DeviceBound == nil || *ev[0].DeviceBound || ev[0].Elevation != el.ID {
		t.Fatalf("audit: %+v", ev)
	}
}

func TestRequiredRefusesAnElevationTheBrowserDidNotBind(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingRequired)
	el := h.elevation(h.Now().Add(time.Hour))
	values := map[string]any{"stepup.elevation.admin": encodeElevation(&el)}
	guard := h.su.RequireStepUp("admin")(okHandler)
	h.advance(DefaultDeviceBindingGrace)
	w := h.serve(navigation("GET", "/admin", "alice"), values, guard)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Device Bound Session Credentials") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if ev := h.audit.Events(); len(ev) != 1 || ev[0].Type != EventDeviceRefused || ev[0].Reason != ReasonDeviceNotBound {
		t.Fatalf("audit: %+v", ev)
	}
}

func TestRequiredHoldsTheFirstPageUntilTheRegistrationLands(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingRequired)
	k := newECKey(t, elliptic.P256())
	el := h.elevation(h.Now().Add(time.Hour))
	reg, values := h.grantWithRegistration(t, &el)
	guard := h.su.RequireStepUp("admin")(okHandler)
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- h.serve(navigation("GET", "/admin?x=1", "alice"), values, guard) }()
	time.Sleep(100 * time.Millisecond)
	if w := h.register(values, k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})); w.Code != http.StatusOK {
		t.Fatalf("registration: %d", w.Code)
	}
	w := <-done
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/admin?x=1" {
		t.Fatalf("the held page: %d %v", w.Code, w.Header())
	}
}

// TestFirstPageRacingItsRegistrationIsNotChallenged: the request the
// callback redirected to can arrive after the binding was stored but
// before the browser took in the registration's cookie. Within the grace,
// Preferred serves it and Required sends it back for the same URL; after
// the grace both challenge it.
func TestFirstPageRacingItsRegistrationIsNotChallenged(t *testing.T) {
	for _, tc := range []struct {
		mode       DeviceBinding
		inGrace    int
		afterGrace int
	}{
		{DeviceBindingPreferred, http.StatusOK, http.StatusSeeOther},
		{DeviceBindingRequired, http.StatusTemporaryRedirect, http.StatusSeeOther},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			h := newDeviceHarness(t, tc.mode)
			_, values, _, _, _ := h.bound(t, newECKey(t, elliptic.P256()))
			guard := h.su.RequireStepUp("admin")(okHandler)
			w := h.serve(navigation("GET", "/admin/users?page=2", "alice"), values, guard)
			if w.Code != tc.inGrace || (w.Code == http.StatusTemporaryRedirect && w.Header().Get("Location") != "/admin/users?page=2") {
				t.Fatalf("in the grace: %d %v, want %d", w.Code, w.Header(), tc.inGrace)
			}
			h.advance(DefaultDeviceBindingGrace)
			if w := h.serve(navigation("GET", "/admin", "alice"), values, guard); w.Code != tc.afterGrace {
				t.Fatalf("after the grace: %d, want %d", w.Code, tc.afterGrace)
			}
		})
	}
}

func TestBindingsRideInTheSubjectRecord(t *testing.T) {
	rv := &revocations{until: 100, drops: []dropRevocation{{id: "E;x", until: 90}}}
	if got := encodeRevocations(rv); strings.Count(got, string(fieldSep)) != 7 {
		t.Fatalf("a record without bindings must be v0.1.0's: %q", got)
	}
	rv.bindings = []deviceBinding{{id: "E;a", jkt: "j", secret: "s", until: 100}, {id: "E;b", jkt: "k", secret: "t", until: 50}}
	back, err := decodeRevocations(encodeRevocations(rv))
	if err != nil || len(back.bindings) != 2 || back.bindings[1] != rv.bindings[1] {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	back.prune(60)
	if len(back.bindings) != 1 || back.bindings[0].id != "E;a" {
		t.Fatalf("prune: %+v", back.bindings)
	}
	for _, bad := range []string{"E;a:j:s", "E;a:j:s:x", ":j:s:1", "E;a::s:1", "E;a:j:s:0"} {
		if _, err := decodeRevocations(encodeRevocations(&revocations{until: 1}) + string(fieldSep) + bad); err == nil {
			t.Fatalf("%q decoded", bad)
		}
	}
}

func TestDeviceBindingConfigIsValidated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scope func(*Scope)
		cfg   func(*Config)
		field string
	}{
		{"paths without binding", func(s *Scope) { s.DevicePaths = []string{"/admin"} }, nil, `Scopes["admin"].DevicePaths`},
		{"binding without paths", func(s *Scope) { s.DeviceBinding = DeviceBindingRequired }, nil, `Scopes["admin"].DevicePaths`},
		{"relative path", func(s *Scope) { s.DeviceBinding, s.DevicePaths = DeviceBindingPreferred, []string{"admin"} }, nil, `Scopes["admin"].DevicePaths`},
		{"quote in path", func(s *Scope) { s.DeviceBinding, s.DevicePaths = DeviceBindingPreferred, []string{`/a"b`} }, nil, `Scopes["admin"].DevicePaths`},
		{"unknown mode", func(s *Scope) { s.DeviceBinding, s.DevicePaths = 7, []string{"/admin"} }, nil, `Scopes["admin"].DeviceBinding`},
		{"cookie TTL too short", nil, func(c *Config) { c.BoundCookieTTL = 5 * time.Second }, "BoundCookieTTL"},
		{"cookie TTL fractional", nil, func(c *Config) { c.BoundCookieTTL = 15500 * time.Millisecond }, "BoundCookieTTL"},
		{"grace too long", nil, func(c *Config) { c.DeviceBindingGrace = 2 * time.Minute }, "DeviceBindingGrace"},
		{"register path", nil, func(c *Config) { c.DeviceRegisterPath = "register" }, "DeviceRegisterPath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Provider: offlineProvider(), Issuer: testIssuer, ClientID: "c", RedirectURL: "https://app.test/cb",
				SessionManager: newSessions(), Scopes: map[string]Scope{}}
			sc := Scope{ACR: []string{"urn:test:mfa"}}
			if tc.scope != nil {
				tc.scope(&sc)
			}
			cfg.Scopes["admin"] = sc
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			_, err := New(cfg)
			ce, ok := err.(*ConfigError)
			if !ok || ce.Field != tc.field {
				t.Fatalf("err = %v, want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

func TestBoundCookieCacheIsExact(t *testing.T) {
	c := &cookieCache{seed: maphash.MakeSeed()}
	b := deviceBinding{id: "E;a", jkt: "j", secret: randomToken(), until: 1000}
	v := boundCookieValue(b, "admin", 500)
	for _, tc := range []struct {
		name  string
		b     deviceBinding
		scope string
		now   int64
		want  bool
	}{
		{"valid", b, "admin", 100, true},
		{"valid, cached", b, "admin", 100, true},
		{"another scope", b, "billing", 100, false},
		{"another secret (bound again)", deviceBinding{id: b.id, jkt: b.jkt, secret: randomToken(), until: b.until}, "admin", 100, false},
		{"another key", deviceBinding{id: b.id, jkt: "k", secret: b.secret, until: b.until}, "admin", 100, false},
		{"another elevation", deviceBinding{id: "E;b", jkt: b.jkt, secret: b.secret, until: b.until}, "admin", 100, false},
		{"expired, cached", b, "admin", 500, false},
		{"elevation ends first", deviceBinding{id: b.id, jkt: b.jkt, secret: b.secret, until: 400}, "admin", 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.check(v, tc.b, tc.scope, tc.now); got != tc.want {
				t.Fatalf("check = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBoundCookieIsFoundAmongOthers(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	for _, tc := range []struct {
		header []string
		want   string
		ok     bool
	}{
		{[]string{"a=1; __Host-stepup-bound-abc=v1; b=2"}, "v1", true},
		{[]string{"a=1", "__Host-stepup-bound-abc=v2"}, "v2", true},
		{[]string{"__Host-stepup-bound-abcd=x; __Host-stepup-bound-ab=y"}, "", false},
		{[]string{"stepup-bound-abc=plain"}, "", false}, // the https app wants __Host-
		{[]string{"__Host-stepup-bound-abc="}, "", true},
		{nil, "", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Cookie"] = tc.header
		got, ok := h.su.boundCookieOf(r, "E;abc")
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %q %v, want %q %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTooManyBindingsIsRefusedBeforeTheChallengeIsUsed(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	ctx := context.Background()
	err := h.su.updateRecord(ctx, h.su.subjectKey("alice"), replicated, func(cur string) (string, int64, error) {
		rv := &revocations{}
		for i := range maxBindings {
			rv.bindings = append(rv.bindings, deviceBinding{id: "E;old" + strconv.Itoa(i), jkt: "j", secret: randomToken(), until: h.Now().Add(time.Hour).Unix()})
		}
		// and one whose elevation has ended, which does not count
		rv.bindings = append(rv.bindings, deviceBinding{id: "E;ended", jkt: "j", secret: randomToken(), until: h.Now().Unix()})
		rv.extend(h.Now().Add(time.Hour).Unix())
		return encodeRevocations(rv), rv.until, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	k := newECKey(t, elliptic.P256())
	el := h.elevation(h.Now().Add(time.Hour))
	reg, values := h.grantWithRegistration(t, &el)
	proof := k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true})
	if w := h.register(values, proof); w.Code != http.StatusBadRequest || len(boundCookies(w)) != 0 {
		t.Fatalf("at the cap: %d", w.Code)
	}
	if ev := h.audit.Events(); len(ev) != 1 || ev[0].Reason != ReasonTooManyBindings {
		t.Fatalf("audit: %+v", ev)
	}
	// One of the old elevations is dropped: its binding goes, and the same
	// registration, whose challenge was not used, now succeeds.
	old := elevationHead{id: "E;old0", subject: "alice", deadline: h.Now().Add(time.Hour).Unix()}
	if err := h.su.recordDrop(ctx, old); err != nil {
		t.Fatal(err)
	}
	if n := len(h.bindings(t)); n != maxBindings-1 {
		t.Fatalf("bindings after the drop: %d", n)
	}
	if w := h.register(values, proof); w.Code != http.StatusOK {
		t.Fatalf("after the drop: %d %s", w.Code, w.Body)
	}
}

func TestDeviceEndpointsWithoutLoadAndSaveFailLoudly(t *testing.T) {
	h := newDeviceHarness(t, DeviceBindingPreferred)
	k := newECKey(t, elliptic.P256())
	el := h.elevation(h.Now().Add(time.Hour))
	reg, _ := h.grantWithRegistration(t, &el)
	r := httptest.NewRequest(http.MethodPost, "/stepup/device/register", nil)
	r.Header.Set("Secure-Session-Response", k.proof(t, map[string]any{"jti": reg.challenge, "authorization": reg.authorization}, proofOpts{embed: true}))
	w := httptest.NewRecorder()
	h.su.DeviceRegisterHandler().ServeHTTP(w, r) // no LoadAndSave
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("got %d, want the OnError 500", w.Code)
	}
	if ev := h.audit.Events(); len(ev) != 1 || ev[0].Type != EventDeviceRefused || ev[0].Reason != ReasonSessionError {
		t.Fatalf("audit: %+v", ev)
	}

	// The refresh of a registered session: it fails before it uses up the
	// challenge sent ahead, which still works through LoadAndSave.
	_, values, _, id, next := h.bound(t, k)
	r = httptest.NewRequest(http.MethodPost, "/stepup/device/refresh", nil)
	r.Header.Set("Sec-Secure-Session-Id", id)
	proof := k.proof(t, map[string]any{"jti": next}, proofOpts{})
	r.Header.Set("Secure-Session-Response", proof)
	w = httptest.NewRecorder()
	h.su.DeviceRefreshHandler().ServeHTTP(w, r)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("refresh without LoadAndSave: %d", w.Code)
	}
	if w := h.refreshReq(values, id, proof); w.Code != http.StatusOK {
		t.Fatalf("the challenge was used up by the failed refresh: %d", w.Code)
	}
}

// failingDeviceStore fails every write of a DBSC session record.
type failingDeviceStore struct{ scs.Store }

func (s failingDeviceStore) Commit(token string, b []byte, expiry time.Time) error {
	if strings.HasPrefix(token, "B;") {
		return errors.New("store down")
	}
	return s.Store.Commit(token, b, expiry)
}

func TestRegistrationThatCannotBeStoredGrantsUnboundOnlyWhenPreferred(t *testing.T) {
	for _, tc := range []struct {
		mode   DeviceBinding
		reason Reason
	}{{DeviceBindingPreferred, ""}, {DeviceBindingRequired, ReasonSessionError}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.SessionManager.Store = failingDeviceStore{c.SessionManager.Store}
				c.InsecureNonAtomicRevocations = true
				c.Scopes["admin"] = Scope{ACR: c.Scopes["admin"].ACR, DeviceBinding: tc.mode, DevicePaths: []string{"/admin"}}
			})
			ctx := h.loaded(t, nil)
			el := h.elevation(h.Now().Add(time.Hour))
			el.ID = newElevationID()
			reg, reason, err := h.su.grant(ctx, &el, pending{scope: "admin"})
			if reason != tc.reason || (reason == "") != (err == nil) {
				t.Fatalf("grant: %q %v, want %q", reason, err, tc.reason)
			}
			if reason == "" && (!reg.failed || reg.challenge != "") {
				t.Fatalf("registration: %+v, want failed", reg)
			}
			if reason == "" {
				h.su.auditCallback(httptest.NewRequest("GET", "/stepup/callback", nil),
					callbackOutcome{c: pending{scope: "admin"}, found: true, el: el, reg: reg})
				ev := h.audit.Events()
				if len(ev) != 2 || ev[0].Type != EventGranted || ev[1].Type != EventDeviceRefused || ev[1].Reason != ReasonSessionError || ev[1].Elevation != el.ID {
					t.Fatalf("audit: %+v, want granted then device_refused session_error", ev)
				}
			}
		})
	}
}
