package stepup_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oidc-stepup/stepup/stepup"
)

// deviceRoutes mounts the DBSC endpoints.
func deviceRoutes(a *app) map[string]http.Handler {
	return map[string]http.Handler{
		"POST /stepup/device/register": a.su.DeviceRegisterHandler(),
		"POST /stepup/device/refresh":  a.su.DeviceRefreshHandler(),
	}
}

func requireDeviceBinding(c *stepup.Config) {
	c.Scopes = map[string]stepup.Scope{"admin": {ACR: []string{mfa}, DeviceBinding: stepup.DeviceBindingRequired, DevicePaths: []string{"/admin"}}}
}

// dbscProof signs a dbsc+jwt as chromium does, with the key in the header
// for a registration.
func dbscProof(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any, embed bool) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("dbsc+jwt")
	if embed {
		opts.WithHeader("jwk", jose.JSONWebKey{Key: key.Public()})
	}
	return signCompact(t, jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts, claims)
}

// sfParam reads a quoted parameter of a structured header value.
func sfParam(t *testing.T, header, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(header, name+`="`)
	v, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatalf("no %s in %q", name, header)
	}
	return v
}

// challengeIn reads the challenge of a Secure-Session-Challenge value,
// "<challenge>";id="<session id>".
func challengeIn(t *testing.T, header string) string {
	t.Helper()
	c, _, ok := strings.Cut(strings.TrimPrefix(header, `"`), `"`)
	if !ok || c == "" {
		t.Fatalf("no challenge in %q", header)
	}
	return c
}

// TestDeviceBindingWorksAcrossReplicas: on each shared store, the step-up
// is granted by replica A, the browser registers its key with replica B,
// its bound cookie is honoured by A, its refresh is answered by B and the
// refreshed cookie honoured by A; a copy of the session cookie alone is
// challenged by both; RevokeSubject at A ends the next refresh at B.
func TestDeviceBindingWorksAcrossReplicas(t *testing.T) {
	t.Parallel()
	for name, stores := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := stores(t)
			a := newApp(t, appOptions{store: s[0], config: requireDeviceBinding, routes: deviceRoutes})
			b := a.replica(t, s[1])
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			br := a.loggedIn(t, "alice")
			cb := br.authorize(t, br.challenge(t, "/admin"))
			grant := br.peek(t, cb.String())
			reg := grant.header.Get("Secure-Session-Registration")
			if grant.status != http.StatusSeeOther || !strings.HasPrefix(reg, "(ES256 RS256);") {
				t.Fatalf("grant: %v, registration %q", grant, reg)
			}
			// A copy of the session cookie, taken now.
			thief := a.newBrowser(t)
			thief.setCookie(t, br.cookie(t))

			r := br.on(b).do(t, br.noFollow, http.MethodPost, "/stepup/device/register", nil, http.Header{
				"Secure-Session-Response": {dbscProof(t, key, map[string]any{"jti": sfParam(t, reg, "challenge"), "authorization": sfParam(t, reg, "authorization")}, true)},
			})
			if r.status != http.StatusOK {
				t.Fatalf("registration at B: %v", r)
			}
			var cfg struct {
				SessionIdentifier string `json:"session_identifier"`
			}
			if err := json.Unmarshal([]byte(r.body), &cfg); err != nil || cfg.SessionIdentifier == "" {
				t.Fatalf("session config %q", r.body)
			}
			ahead := challengeIn(t, r.header.Get("Secure-Session-Challenge"))
			if !br.elevated(t) {
				t.Fatal("A does not honour the elevation bound at B")
			}
			a.clock.Advance(stepup.DefaultDeviceBindingGrace)
			for _, rep := range []*app{a, b} {
				if thief.on(rep).elevated(t) {
					t.Fatalf("the session cookie alone is honoured at %s", rep.url)
				}
			}

			// The bound cookie expires; B refreshes it with the challenge sent ahead.
			a.clock.Advance(stepup.DefaultBoundCookieTTL)
			if br.elevated(t) {
				t.Fatal("an expired bound cookie is honoured")
			}
			refresh := func(rep *app, proof string) response {
				h := http.Header{"Sec-Secure-Session-Id": {cfg.SessionIdentifier}}
				if proof != "" {
					h.Set("Secure-Session-Response", proof)
				}
				return br.on(rep).do(t, br.noFollow, http.MethodPost, "/stepup/device/refresh", nil, h)
			}
			r = refresh(b, dbscProof(t, key, map[string]any{"jti": ahead}, false))
			if r.status != http.StatusOK {
				t.Fatalf("refresh at B: %v", r)
			}
			if !br.elevated(t) {
				t.Fatal("A does not honour the cookie B refreshed")
			}
			next := challengeIn(t, r.header.Get("Secure-Session-Challenge"))

			if err := a.su.RevokeSubject(t.Context(), "alice"); err != nil {
				t.Fatal(err)
			}
			r = refresh(b, dbscProof(t, key, map[string]any{"jti": next}, false))
			if r.status != http.StatusOK || !strings.Contains(r.body, `"continue":false`) {
				t.Fatalf("refresh after the revocation: %v", r)
			}
			a.audit.wantReason(t, stepup.EventDeviceEnded, stepup.ReasonRevokedByOperator)
		})
	}
}
