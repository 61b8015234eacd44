package stepup_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// forger signs tokens with a key the IdP never published, under any kid.
type forger struct{ key *rsa.PrivateKey }

func newForger(t *testing.T) forger {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return forger{key}
}

func (f forger) sign(t *testing.T, claims map[string]any, kid, typ string) string {
	t.Helper()
	return signCompact(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: f.key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)), claims)
}

// signCompact signs claims as a compact JWS with go-jose.
func signCompact(t *testing.T, key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestForgedTokensDoNotMakeTheAppFetchTheIdPsKeys: an anonymous caller
// posts forged logout tokens and SETs, and a forged ID token reaches the
// callback. A forgery under the published kid never fetches the key list
// again; forgeries under unknown kids fetch it at most once per 30 s, so
// that nobody can make the application hammer its IdP (which may
// rate-limit or block it, breaking step-ups and losing logout tokens).
// Before, go-oidc's key set fetched again for every token no cached key
// verified: 200 forged SETs made 200 fetches.
func TestForgedTokensDoNotMakeTheAppFetchTheIdPsKeys(t *testing.T) {
	t.Parallel()
	a, ft := newFaultAppWith(t, appOptions{signals: true})
	b, sid := elevatedAs(t, a, "alice") // fetches the IdP's keys once
	f := newForger(t)
	fetches := func() int { return ft.count(ft.jwksPath) }
	primed := fetches()

	knownKID := a.idp.KeyID()
	logout := func(kid string) string {
		c, err := a.idp.LogoutTokenClaims("admin-console", stepuptest.LogoutClaims{Subject: "alice", SessionID: sid, IssuedAt: a.clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return f.sign(t, c, kid, "logout+jwt")
	}
	set := func(kid string) string {
		c, err := a.idp.SecurityEventClaims(stepuptest.SecurityEvent{
			Audience: a.url, Type: stepuptest.CAEPCredentialChange, IssuedAt: a.clock.Now(),
			Subject: map[string]any{"format": "iss_sub", "iss": a.idp.Issuer(), "sub": "alice"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return f.sign(t, c, kid, "secevent+jwt")
	}
	for range 100 {
		if status, _ := postLogout(t, a, logout(knownKID)); status != http.StatusBadRequest {
			t.Fatalf("a forged logout token under the published kid: %d, want 400", status)
		}
		if status, _ := pushEvent(t, a, set(knownKID), ""); status != http.StatusBadRequest {
			t.Fatalf("a forged SET under the published kid: %d, want 400", status)
		}
	}
	if n := fetches() - primed; n != 0 {
		t.Errorf("200 forgeries under the published kid fetched the keys %d times, want 0", n)
	}
	a.audit.wantReason(t, stepup.EventSignalRejected, stepup.ReasonInvalidSignal)

	// The callback's ID tokens share the IdP's key set.
	a.idp.RewriteNextIDToken(func(c map[string]any) (string, error) { return f.sign(t, c, knownKID, "JWT"), nil })
	b2 := a.loggedIn(t, "alice")
	if r := b2.peek(t, b2.callback(t).String()); r.status != http.StatusForbidden {
		t.Errorf("a forged ID token under the published kid: %d, want 403", r.status)
	}
	a.audit.wantReason(t, stepup.EventDenied, stepup.ReasonInvalidIDToken)
	if n := fetches() - primed; n != 0 {
		t.Errorf("a forged ID token under the published kid fetched the keys %d times, want 0", n)
	}

	// Unknown kids: one fetch, then none for 30 s, then one again.
	for i := range 100 {
		if status, _ := postLogout(t, a, logout(rand.Text())); status != http.StatusBadRequest {
			t.Fatalf("forgery %d under an unknown kid: %d, want 400", i, status)
		}
	}
	if n := fetches() - primed; n != 1 {
		t.Errorf("100 forgeries under unknown kids fetched the keys %d times, want 1", n)
	}
	advanceTo(t, a.clock, a.clock.Now().Add(29*time.Second))
	postLogout(t, a, logout(rand.Text()))
	if n := fetches() - primed; n != 1 {
		t.Errorf("29 s later: %d fetches in all, want still 1", n)
	}
	advanceTo(t, a.clock, a.clock.Now().Add(time.Second))
	postLogout(t, a, logout(rand.Text()))
	if n := fetches() - primed; n != 2 {
		t.Errorf("30 s later: %d fetches in all, want 2", n)
	}
	if !b.elevated(t) {
		t.Error("a forgery ended the elevation")
	}
	// The honest IdP is still heard.
	if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{SessionID: sid, IssuedAt: a.clock.Now()})); status != http.StatusOK {
		t.Fatalf("the IdP's own logout token: %d %s", status, body)
	}
}
