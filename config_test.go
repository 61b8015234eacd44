package stepup_test

import (
	"errors"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidc-stepup/stepup/stepup"
)

// TestNewRefusesIssuerThatDiffersFromDiscovery: the configured issuer must
// be the discovery document's, byte for byte (OIDC Discovery §4.3), whether
// New discovers the provider itself or is handed one.
func TestNewRefusesIssuerThatDiffersFromDiscovery(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	for _, issuer := range []string{a.idp.Issuer() + "/", "https://other.test"} {
		cfg := a.cfg
		cfg.Provider, cfg.Issuer = nil, issuer
		if issuer == "https://other.test" {
			p, err := oidc.NewProvider(oidc.ClientContext(t.Context(), cfg.HTTPClient), a.idp.Issuer())
			if err != nil {
				t.Fatal(err)
			}
			cfg.Provider = p
		}
		var ce *stepup.ConfigError
		if _, err := stepup.New(cfg); !errors.As(err, &ce) || ce.Field != "Issuer" {
			t.Errorf("Issuer %q: %v, want a ConfigError on Issuer", issuer, err)
		}
	}
}
