package stepuptest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	defaultIDTokenLifetime     = 5 * time.Minute
	defaultAccessTokenLifetime = 5 * time.Minute
)

var (
	errUnknownClient   = errors.New("stepuptest: unknown client")
	errBadSecret       = errors.New("stepuptest: wrong client secret")
	errUnknownRequest  = errors.New("stepuptest: unknown authorization request")
	errUnknownCode     = errors.New("stepuptest: unknown or used authorization code")
	errUnknownToken    = errors.New("stepuptest: unknown access token")
	errNotSupported    = errors.New("stepuptest: not supported by this provider")
	errRefreshDisabled = errors.New("stepuptest: refresh tokens are not issued")
)

// Context keys that carry what zitadel's op does not pass to the storage.
type (
	// rawAuthorizeFormKey carries the authorization request's form as sent,
	// for the parameters zitadel drops (claims) or rewrites (max_age).
	rawAuthorizeFormKey struct{}
	// idTokenLifetimeKey carries the ID token lifetime of the login behind
	// the code being exchanged, for GetClientByClientID.
	idTokenLifetimeKey struct{}
)

// record is one authorization request and, once the login is done, what
// the provider asserts about it.
type record struct {
	req          AuthRequest
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	done         bool
	login        Login // with defaults applied; valid when done
}

// authReq is a snapshot of a record handed to zitadel's op, which reads it
// outside the storage lock.
type authReq record

var _ op.AuthRequest = (*authReq)(nil)

func (a *authReq) GetID() string                      { return a.req.ID }
func (a *authReq) GetACR() string                     { return a.login.ACR }
func (a *authReq) GetAMR() []string                   { return slices.Clone(a.login.AMR) }
func (a *authReq) GetAudience() []string              { return []string{a.req.ClientID} }
func (a *authReq) GetAuthTime() time.Time             { return a.login.AuthTime }
func (a *authReq) GetClientID() string                { return a.req.ClientID }
func (a *authReq) GetNonce() string                   { return a.req.Nonce }
func (a *authReq) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authReq) GetResponseType() oidc.ResponseType { return a.responseType }
func (a *authReq) GetResponseMode() oidc.ResponseMode { return a.responseMode }
func (a *authReq) GetScopes() []string                { return slices.Clone(a.req.Scopes) }
func (a *authReq) GetState() string                   { return a.req.State }
func (a *authReq) GetSubject() string                 { return a.login.Subject }
func (a *authReq) Done() bool                         { return a.done }

func (a *authReq) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{
		Challenge: a.req.CodeChallenge,
		Method:    oidc.CodeChallengeMethod(a.req.CodeChallengeMethod),
	}
}

type accessToken struct {
	subject, clientID string
	scopes            []string
	expiry            time.Time
}

// storage is the provider's in-memory [op.Storage]. One mutex guards all of
// it; every value leaving it is a copy.
type storage struct {
	keys     *keyring
	loginURL string

	mu       sync.Mutex
	clients  map[string]Client
	pending  map[string]*record // by ID, until its code is exchanged
	codes    map[string]string  // authorization code -> request ID
	tokens   map[string]accessToken
	requests []AuthRequest // every request received, in order
	byID     map[string]int
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(keys *keyring, loginURL string) *storage {
	return &storage{
		keys:     keys,
		loginURL: loginURL,
		clients:  map[string]Client{},
		pending:  map[string]*record{},
		codes:    map[string]string{},
		tokens:   map[string]accessToken{},
		byID:     map[string]int{},
	}
}

func (s *storage) addClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c.clone()
}

// CreateAuthRequest records a request that zitadel has validated against
// its client. max_age is taken from the request as sent: zitadel replaces it
// with 0 when prompt=login, and tests want to see what the RP asked for.
func (s *storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	req := AuthRequest{
		ID:                  rand.Text(),
		ClientID:            r.ClientID,
		RedirectURI:         r.RedirectURI,
		State:               r.State,
		Nonce:               r.Nonce,
		LoginHint:           r.LoginHint,
		Scopes:              slices.Clone(r.Scopes),
		ACRValues:           slices.Clone(r.ACRValues),
		Prompt:              slices.Clone(r.Prompt),
		MaxAge:              r.MaxAge,
		CodeChallenge:       r.CodeChallenge,
		CodeChallengeMethod: string(r.CodeChallengeMethod),
	}
	if form, ok := ctx.Value(rawAuthorizeFormKey{}).(url.Values); ok {
		req.Claims = form.Get("claims")
		req.AuthorizationDetails = form.Get("authorization_details")
		req.MaxAge = nil
		if v := form.Get("max_age"); v != "" {
			n, err := strconv.ParseUint(v, 10, 0)
			if err != nil {
				return nil, oidc.ErrInvalidRequest().WithDescription("max_age is not a non-negative integer")
			}
			m := uint(n)
			req.MaxAge = &m
		}
	} else if r.MaxAge != nil {
		m := *r.MaxAge
		req.MaxAge = &m
	}
	rec := &record{req: req, responseType: r.ResponseType, responseMode: r.ResponseMode}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[req.ID] = rec
	s.byID[req.ID] = len(s.requests)
	s.requests = append(s.requests, req.clone())
	snap := authReq(*rec)
	return &snap, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pending[id]
	if !ok {
		return nil, errUnknownRequest
	}
	snap := authReq(*rec)
	return &snap, nil
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errUnknownCode
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return errUnknownRequest
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called by zitadel when a code is exchanged; deleting
// the request and its codes is what makes a code single-use (RFC 6749 §4.1.2).
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(id)
	return nil
}

func (s *storage) deleteLocked(id string) {
	delete(s.pending, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
}

// complete marks a pending request as logged in.
func (s *storage) complete(id string, l Login) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pending[id]
	if ok {
		rec.done, rec.login = true, l
	}
	return ok
}

// take removes a pending request and returns its last state.
func (s *storage) take(id string) (*authReq, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pending[id]
	if !ok {
		return nil, false
	}
	s.deleteLocked(id)
	snap := authReq(*rec)
	return &snap, true
}

func (s *storage) isPending(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pending[id]
	return ok
}

func (s *storage) idTokenLifetimeByCode(code string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pending[s.codes[code]]
	if !ok || !rec.done {
		return 0, false
	}
	return rec.login.IDTokenLifetime, true
}

// authorizationDetailsByCode is what the token response for code returns
// as authorization_details: nil for none.
func (s *storage) authorizationDetailsByCode(code string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pending[s.codes[code]]
	switch {
	case !ok || !rec.done || rec.login.OmitAuthorizationDetails:
		return nil
	case rec.login.AuthorizationDetails != nil:
		return rec.login.AuthorizationDetails
	case rec.req.AuthorizationDetails != "":
		return json.RawMessage(rec.req.AuthorizationDetails)
	}
	return nil
}

func (s *storage) request(id string) (AuthRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.byID[id]
	if !ok {
		return AuthRequest{}, false
	}
	return s.requests[i].clone(), true
}

func (s *storage) allRequests() []AuthRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AuthRequest, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

func (s *storage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	t := accessToken{
		subject: r.GetSubject(),
		scopes:  slices.Clone(r.GetScopes()),
		expiry:  time.Now().Add(defaultAccessTokenLifetime),
	}
	if c, ok := r.(interface{ GetClientID() string }); ok {
		t.clientID = c.GetClientID()
	}
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = t
	return id, t.expiry, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errRefreshDisabled
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errRefreshDisabled
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tokenOrID)
	return nil
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.keys.current(), nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{s.keys.current().alg}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) { return s.keys.public(), nil }

func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if !ok {
		return nil, errUnknownClient
	}
	lifetime, _ := ctx.Value(idTokenLifetimeKey{}).(time.Duration)
	if lifetime <= 0 {
		lifetime = defaultIDTokenLifetime
	}
	return &opClient{c: c.clone(), loginURL: s.loginURL, idTokenLifetime: lifetime}, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if !ok {
		return errUnknownClient
	}
	if subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return errBadSecret
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in zitadel in favour of
// SetUserinfoFromRequest and must stay empty.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest is where the login's extra claims and
// session_expiry enter the ID token. zitadel copies the userinfo subject over
// the token's, so it must be set here too.
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, r op.IDTokenRequest, _ []string) error {
	ui.Subject = r.GetSubject()
	a, ok := r.(*authReq)
	if !ok {
		return nil
	}
	for k, v := range a.login.Claims {
		ui.AppendClaims(k, v)
	}
	if !a.login.SessionExpiry.IsZero() {
		ui.AppendClaims("session_expiry", a.login.SessionExpiry.Unix())
	}
	if _, set := a.login.Claims["sid"]; !set && a.login.SessionID != "" {
		ui.AppendClaims("sid", a.login.SessionID)
	}
	return nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expiry) {
		return errUnknownToken
	}
	ui.Subject = t.subject
	return nil
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, ir *oidc.IntrospectionResponse, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expiry) {
		return errUnknownToken
	}
	ir.Active = true
	ir.Subject = t.subject
	ir.ClientID = t.clientID
	ir.Scope = t.scopes
	ir.Expiration = oidc.FromTime(t.expiry)
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotSupported
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotSupported
}

func (s *storage) Health(context.Context) error { return nil }

// client returns the registered client with this ID.
func (s *storage) client(id string) (Client, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	return c.clone(), ok
}
