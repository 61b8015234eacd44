package stepup

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestNewRefusesBadConfigNamingTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		field  string
		mutate func(*Config)
	}{
		{"IssuerAndProviderMissing", "Issuer", func(c *Config) { c.Issuer, c.Provider = "", nil }},
		{"ClientIDMissing", "ClientID", func(c *Config) { c.ClientID = "" }},
		{"RedirectURLMissing", "RedirectURL", func(c *Config) { c.RedirectURL = "" }},
		{"RedirectURLRelative", "RedirectURL", func(c *Config) { c.RedirectURL = "/stepup/callback" }},
		{"RedirectURLJavaScript", "RedirectURL", func(c *Config) { c.RedirectURL = "javascript:alert(1)" }},
		{"AuthStyleUnknown", "AuthStyle", func(c *Config) { c.AuthStyle = oauth2.AuthStyle(7) }},
		{"SessionManagerMissing", "SessionManager", func(c *Config) { c.SessionManager = nil }},
		{"ClockSkewNegative", "ClockSkew", func(c *Config) { c.ClockSkew = -time.Second }},
		{"ClockSkewNotWholeSeconds", "ClockSkew", func(c *Config) { c.ClockSkew = 1500 * time.Millisecond }},
		{"ClockSkewOverFiveMinutes", "ClockSkew", func(c *Config) { c.ClockSkew = 6 * time.Minute }},
		{"LoginHintWithoutSubject", "LoginHint", func(c *Config) { c.LoginHint, c.Subject = true, nil }},
		{"HTTPClientWithoutTimeout", "HTTPClient", func(c *Config) { c.HTTPClient = &http.Client{} }},
		{"StartPathRelative", "StartPath", func(c *Config) { c.StartPath = "stepup/start" }},
		{"DefaultReturnToOffOrigin", "DefaultReturnTo", func(c *Config) { c.DefaultReturnTo = "//evil.test" }},
		{"ScopesMissing", "Scopes", func(c *Config) { c.Scopes = nil }},
		{"ScopeWithoutName", `Scopes[""]`, func(c *Config) { c.Scopes = map[string]Scope{"": {ACR: []string{"a"}}} }},
		{"ScopeWithoutACR", `Scopes["admin"].ACR`, func(c *Config) { c.Scopes = map[string]Scope{"admin": {}} }},
		{"ACRWithSpace", `Scopes["admin"].ACR`, func(c *Config) { c.Scopes = map[string]Scope{"admin": {ACR: []string{"a b"}}} }},
		{"MaxAgeNegative", `Scopes["admin"].MaxAge`, func(c *Config) {
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, MaxAge: -time.Second}}
		}},
		{"MaxAgeNotWholeSeconds", `Scopes["admin"].MaxAge`, func(c *Config) {
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, MaxAge: 1500 * time.Millisecond, PromptLogin: true}}
		}},
		{"MaxAgeWithoutPromptLogin", `Scopes["admin"].MaxAge`, func(c *Config) {
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, MaxAge: time.Minute}}
		}},
		{"LifetimeNegative", `Scopes["admin"].Lifetime`, func(c *Config) {
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, Lifetime: -time.Minute}}
		}},
		{"LifetimeNotLongerThanClockSkew", `Scopes["admin"].Lifetime`, func(c *Config) {
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, Lifetime: 30 * time.Second}}
		}},
		{"MaxAgeNotLongerThanClockSkew", `Scopes["admin"].MaxAge`, func(c *Config) {
			c.ClockSkew = time.Minute
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, MaxAge: time.Minute, PromptLogin: true}}
		}},
		{"IgnoreIDTokenExpiryWithoutLifetimeOrMaxAge", `Scopes["admin"].IgnoreIDTokenExpiry`, func(c *Config) {
			c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, IgnoreIDTokenExpiry: true}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			cfg := h.cfg
			tc.mutate(&cfg)
			_, err := New(cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("want a ConfigError on %s, got %v", tc.field, err)
			}
			if !strings.HasPrefix(err.Error(), "stepup: config: "+tc.field+": ") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

func TestNewAcceptsAFiniteIgnoreIDTokenExpiryScope(t *testing.T) {
	t.Parallel()
	newHarness(t, func(c *Config) {
		c.Scopes = map[string]Scope{"admin": {ACR: []string{"a"}, IgnoreIDTokenExpiry: true, Lifetime: time.Hour}}
	})
}

// TestProviderWithoutDiscoveryTakesTheConfiguredIssuer: a Provider built
// from static metadata has no discovery document to compare the issuer
// with. The provider-backed refusal of an issuer that differs from
// discovery is TestNewRefusesIssuerThatDiffersFromDiscovery at the
// repository's root.
func TestProviderWithoutDiscoveryTakesTheConfiguredIssuer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if h.su.cfg.Issuer != testIssuer {
		t.Errorf("issuer %q", h.su.cfg.Issuer)
	}
}

func TestRedirectURLMustBeHTTPSUnlessLoopback(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		url  string
		ok   bool
	}{
		{"HTTPS", "https://app.example.com/stepup/callback", true},
		{"HTTPOnLoopbackIPv4", "http://127.0.0.1:8080/stepup/callback", true},
		{"HTTPOnLocalhost", "http://localhost:8080/stepup/callback", true},
		{"HTTPOnLoopbackIPv6", "http://[::1]:8080/stepup/callback", true},
		{"HTTPOnAnotherHost", "http://app.example.com/stepup/callback", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.cfg
			cfg.RedirectURL = tc.url
			if _, err := New(cfg); (err == nil) != tc.ok {
				t.Errorf("RedirectURL %s: %v", tc.url, err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auditor = nil; c.Now = nil })
	c := h.su.cfg
	if c.ClockSkew != 30*time.Second || h.su.skew != 30 || c.AuthStyle != oauth2.AuthStyleInHeader ||
		c.StartPath != "/stepup/start" || c.DefaultReturnTo != "/" || c.SessionKeyPrefix != "stepup." ||
		c.HTTPClient == nil || c.HTTPClient.Timeout == 0 || c.Auditor == nil || c.Now == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if h.su.oauth.Endpoint.AuthStyle != oauth2.AuthStyleInHeader {
		t.Error("the token endpoint's auth style is left to auto-detection")
	}
	public := newHarness(t, func(c *Config) { c.ClientSecret = "" })
	if public.su.oauth.Endpoint.AuthStyle != oauth2.AuthStyleInParams {
		t.Error("a public client would send HTTP Basic with an empty password")
	}
	h0 := newHarness(t, func(c *Config) { c.ClockSkew = NoClockSkew })
	if h0.su.skew != 0 {
		t.Errorf("NoClockSkew gave %ds", h0.su.skew)
	}
}

func TestNewRefusesACRClaimWithoutItsRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		scope Scope
	}{
		{"ClaimOtherThanACROrACRS", Scope{ACR: []string{"c1"}, ACRClaim: "amr", RequestACRClaim: true}},
		{"ACRSWithoutRequestACRClaim", Scope{ACR: []string{"c1"}, ACRClaim: "acrs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			cfg := h.cfg
			cfg.Scopes = map[string]Scope{"admin": tc.scope}
			var ce *ConfigError
			if _, err := New(cfg); !errors.As(err, &ce) || ce.Field != `Scopes["admin"].ACRClaim` {
				t.Errorf("%+v: New = %v", tc.scope, err)
			}
		})
	}
}
