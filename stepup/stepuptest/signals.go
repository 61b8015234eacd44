package stepuptest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The provider is also a Shared Signals transmitter (OpenID SSF 1.0): it
// publishes its transmitter configuration metadata at
// /.well-known/ssf-configuration, naming its own JWKS, and mints Security
// Event Tokens (RFC 8417) with CAEP events, signed with its current key,
// for a test to push (RFC 8935) with [PushSecurityEvent].

// CAEP 1.0 event types.
const (
	CAEPSessionRevoked       = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	CAEPCredentialChange     = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	CAEPAssuranceLevelChange = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
)

// ssfConfiguration serves the transmitter configuration metadata
// (SSF 1.0 §7.1).
func (p *Provider) ssfConfiguration(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"spec_version":               "1_0",
		"issuer":                     p.issuer,
		"jwks_uri":                   p.issuer + p.op.KeysEndpoint().Relative(),
		"delivery_methods_supported": []string{"urn:ietf:rfc:8935"},
	})
}

// UserSubject is an SSF subject naming a user by issuer and subject
// (RFC 9493 §3.2.5, iss_sub).
func UserSubject(iss, sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": iss, "sub": sub}
}

// SessionSubject is an SSF complex subject (SSF 1.0 §3.3) naming a user and
// one of their provider sessions by its sid; an empty sub leaves the user
// out.
func SessionSubject(iss, sub, sid string) map[string]any {
	s := map[string]any{"format": "complex", "session": map[string]any{"format": "opaque", "id": sid}}
	if sub != "" {
		s["user"] = UserSubject(iss, sub)
	}
	return s
}

// SecurityEvent describes a Security Event Token.
type SecurityEvent struct {
	// Audience is the aud claim: the receiver's identifier. Required.
	Audience string
	// Subject is the top-level sub_id (SSF 1.0 §3.1), for example from
	// [UserSubject] or [SessionSubject]. Required.
	Subject map[string]any
	// Type is the event type URI, for example [CAEPCredentialChange].
	// Required.
	Type string
	// Event is the event's own claims. event_timestamp is set to
	// EventTime unless the map sets it. Default: none.
	Event map[string]any
	// EventTime is the event_timestamp. Default: IssuedAt.
	EventTime time.Time
	// IssuedAt is iat. Default: now.
	IssuedAt time.Time
	// TokenID is jti. Default: a fresh random id.
	TokenID string
}

// SecurityEventClaims returns the claims of the SET e describes, for a
// test to change before signing them with [Provider.SignTyped].
func (p *Provider) SecurityEventClaims(e SecurityEvent) (map[string]any, error) {
	if e.Audience == "" || e.Subject == nil || e.Type == "" {
		return nil, fmt.Errorf("stepuptest: a security event needs an audience, a subject and a type")
	}
	if e.IssuedAt.IsZero() {
		e.IssuedAt = time.Now()
	}
	if e.EventTime.IsZero() {
		e.EventTime = e.IssuedAt
	}
	if e.TokenID == "" {
		e.TokenID = rand.Text()
	}
	event := map[string]any{"event_timestamp": e.EventTime.Unix()}
	for k, v := range e.Event {
		event[k] = v
	}
	return map[string]any{
		"iss":    p.issuer,
		"aud":    e.Audience,
		"iat":    e.IssuedAt.Unix(),
		"jti":    e.TokenID,
		"sub_id": e.Subject,
		"events": map[string]any{e.Type: event},
	}, nil
}

// SecurityEventToken returns the SET e describes, typed secevent+jwt and
// signed with the provider's current key.
func (p *Provider) SecurityEventToken(e SecurityEvent) (string, error) {
	claims, err := p.SecurityEventClaims(e)
	if err != nil {
		return "", err
	}
	return p.SignTyped("secevent+jwt", claims)
}

// PushSecurityEvent delivers set to a receiver's push endpoint as RFC 8935
// §2 describes, with authorization as the Authorization header when it is
// not empty, and returns the status and body of the answer.
func PushSecurityEvent(ctx context.Context, client *http.Client, endpoint, set, authorization string) (int, string, error) {
	return post(ctx, client, endpoint, "application/secevent+jwt", set, authorization)
}
