package stepuptest_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// TestLogOutSendsVerifiableLogoutTokens: a login's ID token names its
// provider session (sid); LogOut ends the user's sessions and POSTs one
// logout token per session to the client's back-channel logout URI, and
// go-oidc verifies it as a logout token.
func TestLogOutSendsVerifiableLogoutTokens(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var tokens []string
	rpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		tokens = append(tokens, r.PostFormValue("logout_token"))
		mu.Unlock()
	}))
	defer rpSrv.Close()
	r := newRP(t, stepuptest.Config{})
	r.p.AddClient(stepuptest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, BackChannelLogoutURI: rpSrv.URL + "/backchannel-logout"})

	idt, err := r.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("ID token without sid: %v", err)
	}
	if got := r.p.Sessions("alice"); !slices.Equal(got, []string{c.SID}) {
		t.Fatalf("Sessions(alice) = %v, want [%s]", got, c.SID)
	}

	deliveries := r.p.LogOut(t.Context(), "alice")
	if len(deliveries) != 1 || deliveries[0].Status != http.StatusOK || deliveries[0].SessionID != c.SID {
		t.Fatalf("deliveries %+v", deliveries)
	}
	if len(r.p.Sessions("alice")) != 0 {
		t.Error("LogOut left the session open")
	}
	mu.Lock()
	defer mu.Unlock()
	lt, err := r.Verifier.VerifyLogout(r.ctx, tokens[0])
	if err != nil {
		t.Fatalf("VerifyLogout: %v", err)
	}
	if lt.Subject != "alice" || lt.SessionID != c.SID || lt.TokenID == "" {
		t.Errorf("logout token %+v", lt)
	}
	if again := r.p.LogOut(t.Context(), "alice"); len(again) != 0 {
		t.Errorf("a second LogOut sent %+v", again)
	}
}

func TestLogoutTokenNeedsSubOrSid(t *testing.T) {
	t.Parallel()
	r := newRP(t, stepuptest.Config{})
	if _, err := r.p.LogoutToken(clientID, stepuptest.LogoutClaims{}); err == nil {
		t.Error("a logout token naming neither sub nor sid was minted")
	}
	status, _, err := stepuptest.PostLogoutToken(t.Context(), r.client, (&url.URL{Scheme: "http", Host: "127.0.0.1:9"}).String(), "x")
	if err == nil || status != 0 {
		t.Errorf("PostLogoutToken to a closed port: %d %v", status, err)
	}
}
