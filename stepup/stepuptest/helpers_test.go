package stepuptest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

const (
	clientID     = "rp"
	clientSecret = "rp-secret"
	// redirectURI is never dialled: the browser stops at the redirect to it.
	redirectURI = "http://127.0.0.1:9/callback"
)

// rp is a provider started for one test and the [stepuptest.RP] of the test
// client, registered at it.
type rp struct {
	*stepuptest.RP
	p      *stepuptest.Provider
	client *http.Client
	ctx    context.Context // carries client, for the requests a test makes itself
}

// newRP starts a provider with cfg plus the test client and returns an RP for
// it. The provider is closed, and the RP's connections, when the test ends.
func newRP(t *testing.T, cfg stepuptest.Config) *rp {
	t.Helper()
	client := stepuptest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}
	cfg.Clients = append(cfg.Clients, client)
	p, err := stepuptest.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	r, err := stepuptest.NewRP(t.Context(), p.Issuer(), client, hc)
	if err != nil {
		t.Fatal(err)
	}
	return &rp{RP: r, p: p, client: hc, ctx: oidc.ClientContext(t.Context(), hc)}
}

// browse runs [stepuptest.RP.Browse], failing the test on an error.
func (r *rp) browse(t *testing.T, authURL string) (*url.URL, []string) {
	t.Helper()
	cb, visited, err := r.Browse(t.Context(), authURL)
	if err != nil {
		t.Fatal(err)
	}
	return cb, visited
}

// login starts a flow and follows it to the RP's callback, which must carry
// the flow's state and a code.
func (r *rp) login(t *testing.T, opts ...oauth2.AuthCodeOption) (stepuptest.Flow, *url.URL) {
	t.Helper()
	f := r.Start(opts...)
	cb, _ := r.browse(t, f.AuthURL)
	if got := cb.Query().Get("state"); got != f.State {
		t.Fatalf("state = %q, want %q", got, f.State)
	}
	if cb.Query().Get("code") == "" {
		t.Fatalf("no code in callback %s", cb)
	}
	return f, cb
}

// exchange runs [stepuptest.RP.Exchange], failing the test on an error.
func (r *rp) exchange(t *testing.T, f stepuptest.Flow, cb *url.URL) (*oidc.IDToken, string) {
	t.Helper()
	idt, raw, err := r.Exchange(t.Context(), f, cb)
	if err != nil {
		t.Fatal(err)
	}
	return idt, raw
}

// wantTokenError asserts that err is a token endpoint error with code.
func wantTokenError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a token endpoint error %q", err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("error = %q (%s), want %q", re.ErrorCode, re.ErrorDescription, code)
	}
}

// idClaims are the ID token claims the tests read through IDToken.Claims.
type idClaims struct {
	Iss           string   `json:"iss"`
	Sub           string   `json:"sub"`
	Aud           any      `json:"aud"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
	AuthTime      *int64   `json:"auth_time"`
	Nonce         string   `json:"nonce"`
	ACR           *string  `json:"acr"`
	AMR           []string `json:"amr"`
	AZP           string   `json:"azp"`
	SessionExpiry *int64   `json:"session_expiry"`
	ACRs          []string `json:"acrs"`
}
