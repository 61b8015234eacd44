package stepuptest

import (
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client is an OAuth client registered at the provider. Every client is
// confidential, authenticates at the token endpoint with client_secret_basic
// (RFC 6749 §2.3.1), uses the authorization code flow, and may send a PKCE
// challenge (RFC 7636; S256 or plain). A redirect URI must match one of
// RedirectURIs exactly; http:// URIs are allowed, as they are for a
// confidential client in zitadel's op.
type Client struct {
	ID, Secret             string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// BackChannelLogoutURI is where [Provider.LogOut] POSTs logout tokens
	// (OIDC Back-Channel Logout §2.2). Default: "", none sent.
	BackChannelLogoutURI string
}

func (c Client) clone() Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	return c
}

// opClient adapts a [Client] to zitadel's [op.Client] for one request.
// zitadel never caches the value it gets from GetClientByClientID, so the
// per-login ID token lifetime can be baked in.
type opClient struct {
	c               Client
	loginURL        string // issuer + "/login"
	idTokenLifetime time.Duration
}

var _ op.Client = (*opClient)(nil)

func (c *opClient) GetID() string                    { return c.c.ID }
func (c *opClient) RedirectURIs() []string           { return slices.Clone(c.c.RedirectURIs) }
func (c *opClient) PostLogoutRedirectURIs() []string { return slices.Clone(c.c.PostLogoutRedirectURIs) }
func (c *opClient) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}
func (c *opClient) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodBasic }
func (c *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode}
}
func (c *opClient) LoginURL(id string) string {
	return c.loginURL + "?id=" + url.QueryEscape(id)
}
func (c *opClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *opClient) IDTokenLifetime() time.Duration       { return c.idTokenLifetime }
func (c *opClient) DevMode() bool                        { return false }
func (c *opClient) IsScopeAllowed(string) bool           { return true }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return false }

// ClockSkew is zero so that zitadel writes exp = issue time + lifetime and
// iat = issue time, with no back-dating.
func (c *opClient) ClockSkew() time.Duration { return 0 }

func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
