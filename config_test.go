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
	for _, tc := range []struct {
		name     string
		issuer   string
		provider bool // hand New the provider discovered at the real issuer
	}{
		{name: "TrailingSlashDiscoveredByNew", issuer: a.idp.Issuer() + "/"},
		{name: "OtherIssuerWithAProvider", issuer: "https://other.test", provider: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := a.cfg
			cfg.Provider, cfg.Issuer = nil, tc.issuer
			if tc.provider {
				p, err := oidc.NewProvider(oidc.ClientContext(t.Context(), cfg.HTTPClient), a.idp.Issuer())
				if err != nil {
					t.Fatal(err)
				}
				cfg.Provider = p
			}
			var ce *stepup.ConfigError
			if _, err := stepup.New(cfg); !errors.As(err, &ce) || ce.Field != "Issuer" {
				t.Errorf("Issuer %q: %v, want a ConfigError on Issuer", tc.issuer, err)
			}
		})
	}
}
