package stepuptest

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// AuthRequest is what a relying party asked for in one authorization request
// (OIDC Core §3.1.2.1), as the provider parsed it. Only requests that passed
// zitadel's validation (known client, registered redirect_uri, scope present,
// response_type=code, supported code_challenge_method) are recorded.
type AuthRequest struct {
	ID, ClientID, RedirectURI, State, Nonce, LoginHint string
	Scopes, ACRValues, Prompt                          []string
	// MaxAge is max_age as sent; nil when it was absent. Unlike zitadel's own
	// parsed request, it is not forced to 0 by prompt=login.
	MaxAge                             *uint
	CodeChallenge, CodeChallengeMethod string
	// Claims is the raw `claims` parameter JSON (OIDC Core §5.5), "" if
	// absent. zitadel does not parse it; neither does this provider.
	Claims string
	// AuthorizationDetails is the raw RFC 9396 authorization_details
	// parameter JSON, "" if absent.
	AuthorizationDetails string
}

func (r AuthRequest) clone() AuthRequest {
	r.Scopes = slices.Clone(r.Scopes)
	r.ACRValues = slices.Clone(r.ACRValues)
	r.Prompt = slices.Clone(r.Prompt)
	if r.MaxAge != nil {
		m := *r.MaxAge
		r.MaxAge = &m
	}
	return r
}

// Login is what the provider asserts for one authentication. Its zero value
// is a successful login by "alice" with every default below.
type Login struct {
	// Subject is the sub claim. Default: "alice".
	Subject string
	// ACR is the acr claim (OIDC Core §2). The acr claim is omitted when this
	// and the request's acr_values are both empty. Default: the first value
	// of the request's acr_values.
	ACR string
	// AMR is the amr claim. Default: ["pwd"].
	AMR []string
	// AuthTime is the auth_time claim, which is always emitted, in whole
	// Unix seconds. Default: the moment the login completes.
	AuthTime time.Time
	// IDTokenLifetime sets exp = iat + IDTokenLifetime. zitadel reads the
	// clock separately for iat and exp, so across a second boundary exp - iat
	// can be one second more than the lifetime. Default: 5m.
	IDTokenLifetime time.Duration
	// SessionExpiry, when set, is emitted as the integer Unix seconds claim
	// "session_expiry" in the ID token. Default: zero, no claim.
	SessionExpiry time.Time
	// SessionID is the sid claim (OIDC Back-Channel Logout §2.1): the
	// provider session this login belongs to. [Provider.LogOut] ends it and
	// sends logout tokens naming it. Default: a fresh random id for each
	// login.
	SessionID string
	// Claims are extra claims merged into the ID token, e.g.
	// "acrs": []string{"c2", "c3"}. A name that zitadel already sets (iss,
	// sub, aud, exp, iat, auth_time, nonce, acr, amr, azp, client_id,
	// at_hash, c_hash) keeps zitadel's value; use
	// [Provider.RewriteNextIDToken] to change those. Default: none.
	Claims map[string]any
	// Error, when not empty, answers the authorization request with this
	// OAuth error code (RFC 6749 §4.1.2.1; e.g. access_denied, login_required,
	// unmet_authentication_requirements from RFC 9470 §3) and
	// ErrorDescription, redirected to the redirect_uri with state, and with
	// iss when [Config.IssParameter] is set. Default: "", success.
	Error, ErrorDescription string
	// AuthorizationDetails is what the token response returns as
	// authorization_details (RFC 9396 §7), as raw JSON. Default: nil, the
	// request's authorization_details unchanged (the user approved what was
	// asked), and none when the request had none. OmitAuthorizationDetails
	// returns none whatever was asked, as an IdP without RAR does.
	AuthorizationDetails     json.RawMessage
	OmitAuthorizationDetails bool
}

// withDefaults fills the zero fields of l for request r, with now as the
// completion time, and copies what the caller could still mutate.
func (l Login) withDefaults(r AuthRequest, now time.Time) Login {
	if l.Subject == "" {
		l.Subject = "alice"
	}
	if l.ACR == "" && len(r.ACRValues) > 0 {
		l.ACR = r.ACRValues[0]
	}
	if l.AMR == nil {
		l.AMR = []string{"pwd"}
	} else {
		l.AMR = slices.Clone(l.AMR)
	}
	if l.AuthTime.IsZero() {
		l.AuthTime = now
	}
	if l.SessionID == "" {
		l.SessionID = rand.Text()
	}
	if l.IDTokenLifetime <= 0 {
		l.IDTokenLifetime = defaultIDTokenLifetime
	}
	l.Claims = maps.Clone(l.Claims)
	return l
}

// DefaultAuthenticate is the [Config.Authenticate] used when none is set: a
// fresh password login by "alice" at the first requested acr_values value,
// or no acr when none was requested. It ignores prompt, max_age and
// login_hint; as every login is fresh, max_age is always satisfied.
func DefaultAuthenticate(r AuthRequest) Login {
	return Login{}.withDefaults(r, time.Time{})
}

// SetAuthenticate replaces [Config.Authenticate] for the logins that start
// after it returns. A nil fn restores [DefaultAuthenticate]. It is safe to
// call while requests are being served.
func (p *Provider) SetAuthenticate(fn func(AuthRequest) Login) {
	if fn == nil {
		fn = DefaultAuthenticate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authenticate = fn
}

func (p *Provider) authenticateFunc() func(AuthRequest) Login {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authenticate
}

// AuthRequest returns the authorization request with this ID, for an
// interactive [Config.LoginHandler] that receives ?id=. It reports false for
// an ID the provider never issued.
func (p *Provider) AuthRequest(id string) (AuthRequest, bool) { return p.store.request(id) }

// Requests returns a copy of every authorization request received so far,
// oldest first.
func (p *Provider) Requests() []AuthRequest { return p.store.allRequests() }

// Finish completes the pending authorization request authRequestID with
// login l, applying l's defaults. On success it marks the request done and
// redirects the browser to zitadel's authorize callback, which creates the
// code and redirects on to the RP's redirect_uri. When l.Error is set it
// drops the request and redirects to the RP with the error instead. An
// unknown or already exchanged ID gets a 400 page.
func (p *Provider) Finish(w http.ResponseWriter, r *http.Request, authRequestID string, l Login) {
	req, ok := p.store.request(authRequestID)
	if !ok || !p.store.isPending(authRequestID) {
		http.Error(w, "stepuptest: unknown or finished authorization request", http.StatusBadRequest)
		return
	}
	if l.Error != "" {
		snap, ok := p.store.take(authRequestID)
		if !ok {
			http.Error(w, "stepuptest: unknown or finished authorization request", http.StatusBadRequest)
			return
		}
		op.AuthRequestError(p.withIssWriter(w), r, snap, oauthError(l.Error, l.ErrorDescription), p.op)
		return
	}
	l = l.withDefaults(req, time.Now())
	if !p.store.complete(authRequestID, l) {
		http.Error(w, "stepuptest: unknown or finished authorization request", http.StatusBadRequest)
		return
	}
	p.sessions.add(l.SessionID, l.Subject, req.ClientID)
	ctx := op.ContextWithIssuer(r.Context(), p.issuer)
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(ctx, authRequestID), http.StatusFound)
}

// defaultLogin is the login page used when [Config.LoginHandler] is nil: no
// page at all, just the Authenticate decision and [Provider.Finish].
func (p *Provider) defaultLogin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	req, ok := p.store.request(id)
	if !ok {
		http.Error(w, "stepuptest: unknown authorization request", http.StatusBadRequest)
		return
	}
	p.Finish(w, r, id, p.authenticateFunc()(req))
}

// oauthError builds a zitadel error with an arbitrary error code. zitadel's
// error code type is unexported and only has constructors for the codes it
// uses itself, so the exported field is set by reflection.
func oauthError(code, description string) *oidc.Error {
	e := &oidc.Error{Description: description}
	reflect.ValueOf(e).Elem().FieldByName("ErrorType").SetString(code)
	return e
}
