package stepup

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// This file holds the claim rules: what stepup checks in an ID token after
// go-oidc's Verify accepted it (OIDC Core §3.1.3.7), and the texts that
// explain a refusal. The parsers are strict and pure, so that a malformed
// claim fails closed and each can be fuzzed on its own; the rules take plain
// values, so that a rule about one claim is a table row, not a round trip
// to an IdP.

var (
	errClaimType  = errors.New("stepup: claim has the wrong JSON type")
	errClaimRange = errors.New("stepup: claim is out of range")
)

// Unix seconds outside [minUnix, maxUnix) are refused. Below 2001-09-09 a
// value is a duration mistaken for an instant; at or above 2286-11-20 it is
// almost certainly milliseconds, which would otherwise silently disable a
// ceiling (nextjs-auth0 PR #2708).
const (
	minUnix = 1_000_000_000
	maxUnix = 10_000_000_000
)

// idClaims are the claims stepup reads beyond those go-oidc parses.
type idClaims struct {
	AZP           json.RawMessage `json:"azp"`
	ACR           json.RawMessage `json:"acr"`
	ACRs          json.RawMessage `json:"acrs"`
	AMR           json.RawMessage `json:"amr"`
	AuthTime      json.RawMessage `json:"auth_time"`
	SessionExpiry json.RawMessage `json:"session_expiry"`
	SID           json.RawMessage `json:"sid"` // OIDC Back-Channel Logout §2.1: the IdP session
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// parseUnixSeconds parses a NumericDate claim that must be a whole number of
// seconds (RFC 7519 §2) in [minUnix, maxUnix). It accepts only plain digits:
// a string, a fraction, an exponent, a sign or a millisecond-scale value is
// an error. present is false for an absent or null claim.
func parseUnixSeconds(raw json.RawMessage) (secs int64, present bool, err error) {
	if isNull(raw) {
		return 0, false, nil
	}
	if len(raw) > 11 {
		return 0, true, errClaimRange
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, true, errClaimType
		}
		n = n*10 + int64(c-'0')
	}
	if n < minUnix || n >= maxUnix {
		return 0, true, errClaimRange
	}
	return n, true, nil
}

// parseString parses an optional string claim.
func parseString(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", errClaimType
	}
	return s, nil
}

// parseStrings parses an optional array-of-strings claim. A null element
// is an error: encoding/json would quietly read it as "".
func parseStrings(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var l []*string
	if raw[0] != '[' || json.Unmarshal(raw, &l) != nil {
		return nil, errClaimType
	}
	out := make([]string, len(l))
	for i, s := range l {
		if s == nil {
			return nil, errClaimType
		}
		out[i] = *s
	}
	return out, nil
}

// acceptedACR returns the acr the token satisfies the scope with: its acr
// claim, or failing that the most preferred of the scope's values found in
// an acrs array (as Entra ID sends). ok is false on a downgrade. A claim of
// the wrong type is an error.
func acceptedACR(c *idClaims, acceptable []string) (acr string, ok bool, err error) {
	single, err := parseString(c.ACR)
	if err != nil {
		return "", false, err
	}
	many, err := parseStrings(c.ACRs)
	if err != nil {
		return "", false, err
	}
	if single != "" && slices.Contains(acceptable, single) {
		return single, true, nil
	}
	for _, want := range acceptable {
		if slices.Contains(many, want) {
			return want, true, nil
		}
	}
	return single, false, nil
}

// acrClaimsRequest renders an OIDC claims request (OIDC Core §5.5.1) that
// marks the acr claim essential with the given values (§5.5.1.1). claim is
// "acr", or "acrs" for Microsoft Entra ID, whose authentication contexts
// are requested in an acrs claim. The values go in "values", as §5.5.1.1
// words it; a single acrs value goes in "value", the form Entra documents.
func acrClaimsRequest(claim string, values []string) string {
	type request struct {
		Essential bool     `json:"essential"`
		Value     string   `json:"value,omitempty"`
		Values    []string `json:"values,omitempty"`
	}
	req := request{Essential: true, Values: values}
	if claim == "acrs" && len(values) == 1 {
		req.Value, req.Values = values[0], nil
	}
	b, _ := json.Marshal(map[string]map[string]request{"id_token": {claim: req}})
	return string(b)
}

// idToken is what the claim rules read from an ID token that go-oidc's
// Verify accepted: plain values, with the claims go-oidc does not parse
// left raw for the strict parsers above.
type idToken struct {
	subject  string
	audience []string
	nonce    string
	issuedAt int64 // Unix seconds; 0 when the token has no iat
	expiry   int64 // Unix seconds
	claims   idClaims
}

// newIDToken takes the values the rules need from a verified token.
func newIDToken(idt *oidc.IDToken) (idToken, error) {
	t := idToken{
		subject:  idt.Subject,
		audience: idt.Audience,
		nonce:    idt.Nonce,
		expiry:   idt.Expiry.Unix(),
	}
	if !idt.IssuedAt.IsZero() {
		t.issuedAt = idt.IssuedAt.Unix()
	}
	return t, idt.Claims(&t.claims)
}

// ruleContext is what the claim rules compare a token with besides the
// challenge and the scope's policy.
type ruleContext struct {
	clientID string
	issuer   string
	skew     int64  // Config.ClockSkew in whole seconds
	now      int64  // Unix seconds
	subject  string // the logged-in user, checked when checkSub is set
	checkSub bool
}

// checkClaims applies the checks go-oidc's Verify leaves to the caller to
// a token Verify accepted, and computes the elevation's deadline. It returns
// the elevation to grant, or the reason to deny with what to add to the
// audit event. It is pure: no I/O, no clock.
func checkClaims(t idToken, c pending, p *policy, rc ruleContext) (Elevation, Reason, Event) {
	now := rc.now
	cl := &t.claims
	// OIDC Core §3.1.3.7 (11): the nonce must be the one this challenge sent.
	if subtle.ConstantTimeCompare([]byte(t.nonce), []byte(c.nonce)) != 1 {
		return Elevation{}, ReasonNonceMismatch, Event{}
	}
	// §3.1.3.7 (4, 5): with several audiences azp must be present, and when
	// present it must be this client.
	azp, err := parseString(cl.AZP)
	if err != nil || (len(t.audience) > 1 && azp == "") || (azp != "" && azp != rc.clientID) {
		return Elevation{}, ReasonAZPMismatch, Event{}
	}
	// §3.1.3.7 (10): go-oidc does not check iat at all.
	iat := t.issuedAt
	if iat < minUnix || iat > now+rc.skew {
		return Elevation{}, ReasonInvalidIAT, Event{}
	}
	// go-oidc accepts any exp in the future; one in milliseconds would make
	// an endless elevation of a scope without Lifetime.
	if t.expiry >= maxUnix {
		return Elevation{}, ReasonInvalidClaims, Event{}
	}
	if !storable(t.subject) || t.subject == "" {
		return Elevation{}, ReasonInvalidClaims, Event{}
	}
	// Back-Channel Logout §2.1 and CAEP session-revoked name the IdP
	// session by sid: keep a digest of it, so that either can end this
	// elevation.
	sid, err := parseString(cl.SID)
	if err != nil || !storable(sid) {
		return Elevation{}, ReasonInvalidClaims, Event{}
	}
	amr, err := parseStrings(cl.AMR)
	if err != nil || len(amr) > 32 || slices.ContainsFunc(amr, func(m string) bool { return !storable(m) || len(m) > 64 }) {
		return Elevation{}, ReasonInvalidClaims, Event{}
	}
	// §3.1.3.7 (12) and RFC 9470 §4: the acr must be one the scope accepts.
	// The user can edit acr_values in the URL, so the request proves nothing.
	acr, ok, err := acceptedACR(cl, p.ACR)
	if err != nil || !storable(acr) {
		return Elevation{}, ReasonInvalidClaims, Event{AMR: amr}
	}
	e := Event{ACR: acr, AMR: amr}
	if !ok {
		return Elevation{}, ReasonACRNotSatisfied, e
	}
	// §3.1.3.7 (13): auth_time proves when the user logged in. stepup
	// requires a login after the challenge began, and within MaxAge.
	authTime, present, err := parseUnixSeconds(cl.AuthTime)
	switch {
	case !present:
		return Elevation{}, ReasonMissingAuthTime, e
	case err != nil:
		return Elevation{}, ReasonInvalidAuthTime, e
	case authTime > now+rc.skew:
		return Elevation{}, ReasonAuthTimeInFuture, e
	case authTime < c.started-rc.skew, p.maxAgeSecs > 0 && now-authTime > p.maxAgeSecs:
		return Elevation{}, ReasonStaleAuthTime, e
	}
	if rc.checkSub && t.subject != rc.subject {
		return Elevation{}, ReasonSubjectMismatch, e
	}
	// IPSIE session_expiry, read only from the verified ID token.
	sessionExpiry, _, err := parseUnixSeconds(cl.SessionExpiry)
	if err != nil {
		return Elevation{}, ReasonInvalidSessionExpiry, e
	}
	b := bounds{sessionExpiry: sessionExpiry}
	if !p.IgnoreIDTokenExpiry {
		b.exp = t.expiry
	}
	if p.lifetimeSecs > 0 {
		b.lifetime = now + p.lifetimeSecs
	}
	if p.maxAgeSecs > 0 {
		b.maxAge = authTime + p.maxAgeSecs
	}
	deadline, bound, ok := b.deadline()
	e.Deadline, e.Bound = unixOrZero(deadline), bound
	if !ok || bornExpired(deadline, now, iat, rc.skew) {
		return Elevation{}, ReasonCeilingInPast, e
	}
	el := Elevation{
		ID:            newElevationID(),
		Scope:         p.name,
		Issuer:        rc.issuer,
		Subject:       t.subject,
		ACR:           acr,
		AMR:           amr,
		AuthTime:      time.Unix(authTime, 0),
		IDTokenExpiry: time.Unix(t.expiry, 0),
		SessionExpiry: unixOrZero(sessionExpiry),
		GrantedAt:     time.Unix(now, 0),
		Deadline:      time.Unix(deadline, 0),
		Bound:         bound,
		sidTag:        sidTag(rc.issuer, sid),
		sid:           sid,
	}
	return el, "", e
}
