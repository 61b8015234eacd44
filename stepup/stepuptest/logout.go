package stepuptest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// BackChannelLogoutEvent is the events member of a logout token (OIDC
// Back-Channel Logout §2.4).
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// sessions are the provider sessions logins created: sid → subject and the
// clients that received an ID token naming it.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
}

type session struct {
	subject string
	clients []string
}

func (s *sessions) add(sid, sub, clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]*session{}
	}
	ss, ok := s.byID[sid]
	if !ok {
		ss = &session{subject: sub}
		s.byID[sid] = ss
	}
	if !slices.Contains(ss.clients, clientID) {
		ss.clients = append(ss.clients, clientID)
	}
}

// take removes and returns the sessions of sub.
func (s *sessions) take(sub string) map[string]*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*session{}
	for sid, ss := range s.byID {
		if ss.subject == sub {
			out[sid] = ss
			delete(s.byID, sid)
		}
	}
	return out
}

// Sessions returns the sids of the provider sessions of sub that are still
// open, in no particular order.
func (p *Provider) Sessions(sub string) []string {
	p.sessions.mu.Lock()
	defer p.sessions.mu.Unlock()
	var out []string
	for sid, ss := range p.sessions.byID {
		if ss.subject == sub {
			out = append(out, sid)
		}
	}
	return out
}

// LogoutClaims are the claims of a logout token (Back-Channel Logout §2.4).
type LogoutClaims struct {
	// Subject and SessionID are the sub and sid claims; at least one is
	// required.
	Subject, SessionID string
	// IssuedAt is iat. Default: now.
	IssuedAt time.Time
	// Lifetime sets exp = iat + Lifetime. Default: 2m.
	Lifetime time.Duration
	// TokenID is jti. Default: a fresh random id.
	TokenID string
}

// LogoutToken returns an honest logout token for the client clientID:
// signed with the provider's current key, typ logout+jwt, with iss, aud,
// iat, exp, jti, the back-channel logout event as an empty object, and sid
// and/or sub.
func (p *Provider) LogoutToken(clientID string, c LogoutClaims) (string, error) {
	claims, err := p.LogoutTokenClaims(clientID, c)
	if err != nil {
		return "", err
	}
	return p.SignTyped("logout+jwt", claims)
}

// LogoutTokenClaims returns the claims [Provider.LogoutToken] would sign,
// for a test to change before signing them with [Provider.SignTyped].
func (p *Provider) LogoutTokenClaims(clientID string, c LogoutClaims) (map[string]any, error) {
	if c.Subject == "" && c.SessionID == "" {
		return nil, fmt.Errorf("stepuptest: a logout token names sub, sid or both")
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 2 * time.Minute
	}
	if c.TokenID == "" {
		c.TokenID = rand.Text()
	}
	claims := map[string]any{
		"iss":    p.issuer,
		"aud":    clientID,
		"iat":    c.IssuedAt.Unix(),
		"exp":    c.IssuedAt.Add(c.Lifetime).Unix(),
		"jti":    c.TokenID,
		"events": map[string]any{BackChannelLogoutEvent: map[string]any{}},
	}
	if c.Subject != "" {
		claims["sub"] = c.Subject
	}
	if c.SessionID != "" {
		claims["sid"] = c.SessionID
	}
	return claims, nil
}

// SignTyped signs claims as [Provider.Sign] does, with typ in the header
// instead of JWT; an empty typ leaves the header without one.
func (p *Provider) SignTyped(typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("stepuptest: encode claims: %w", err)
	}
	k := p.keys.current()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}}, opts)
	if err != nil {
		return "", fmt.Errorf("stepuptest: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("stepuptest: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// PostLogoutToken POSTs token to a back-channel logout URI as an OP does
// (§2.5) and returns the status and body of the answer.
func PostLogoutToken(ctx context.Context, client *http.Client, uri, token string) (int, string, error) {
	return post(ctx, client, uri, "application/x-www-form-urlencoded", url.Values{"logout_token": {token}}.Encode(), "")
}

// post sends body to uri as contentType, with authorization as the
// Authorization header when it is not empty, and returns the answer's
// status and (up to 64 KiB of) body. A nil client is one with a 10s
// timeout.
func post(ctx context.Context, client *http.Client, uri, contentType, body, authorization string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", contentType)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(answer), nil
}

// LogoutDelivery is one logout token [Provider.LogOut] sent.
type LogoutDelivery struct {
	ClientID, SessionID string
	Status              int   // the RP's answer; 0 when it could not be reached
	Err                 error // why it could not be reached
}

// LogOut ends every provider session of sub, as a user signing out
// everywhere at the IdP, and sends a logout token naming each session (sid
// and sub) to every client that received an ID token from it and has a
// [Client.BackChannelLogoutURI]. Like a real OP it does not retry; it
// returns what each delivery got.
func (p *Provider) LogOut(ctx context.Context, sub string) []LogoutDelivery {
	var out []LogoutDelivery
	for sid, ss := range p.sessions.take(sub) {
		for _, clientID := range ss.clients {
			c, ok := p.store.client(clientID)
			if !ok || c.BackChannelLogoutURI == "" {
				continue
			}
			d := LogoutDelivery{ClientID: clientID, SessionID: sid}
			token, err := p.LogoutToken(clientID, LogoutClaims{Subject: sub, SessionID: sid})
			if err == nil {
				d.Status, _, err = PostLogoutToken(ctx, nil, c.BackChannelLogoutURI, token)
			}
			d.Err = err
			out = append(out, d)
		}
	}
	return out
}
