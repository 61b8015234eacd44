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
// a token Verify accepted, and computes the elevation's deadline: first
// the token's own claims, then the login it asserts, then the deadline. It
// returns the elevation to grant, or the reason to deny with what to add
// to the audit event. It is pure: no I/O, no clock.
func checkClaims(t idToken, c pending, p *policy, rc ruleContext) (Elevation, Reason, Event) {
	tok, reason := checkToken(t, c.nonce, rc)
	if reason != "" {
		return Elevation{}, reason, Event{}
	}
	acr, authTime, reason := checkLogin(t, c, p, rc)
	e := Event{ACR: acr, AMR: tok.amr}
	if reason != "" {
		return Elevation{}, reason, e
	}
	// IPSIE session_expiry, read only from the verified ID token.
	sessionExpiry, _, err := parseUnixSeconds(t.claims.SessionExpiry)
	if err != nil {
		return Elevation{}, ReasonInvalidSessionExpiry, e
	}
	b := bounds{sessionExpiry: sessionExpiry}
	if !p.IgnoreIDTokenExpiry {
		b.exp = t.expiry
	}
	if p.lifetimeSecs > 0 {
		b.lifetime = rc.now + p.lifetimeSecs
	}
	if p.maxAgeSecs > 0 {
		b.maxAge = authTime + p.maxAgeSecs
	}
	deadline, bound, ok := b.deadline()
	e.Deadline, e.Bound = unixOrZero(deadline), bound
	if !ok || bornExpired(deadline, rc.now, t.issuedAt, rc.skew) {
		return Elevation{}, ReasonCeilingInPast, e
	}
	return Elevation{
		ID:            newElevationID(),
		Scope:         p.name,
		Issuer:        rc.issuer,
		Subject:       t.subject,
		ACR:           acr,
		AMR:           tok.amr,
		AuthTime:      time.Unix(authTime, 0),
		IDTokenExpiry: time.Unix(t.expiry, 0),
		SessionExpiry: unixOrZero(sessionExpiry),
		GrantedAt:     time.Unix(rc.now, 0),
		Deadline:      time.Unix(deadline, 0),
		Bound:         bound,
		sidTag:        sidTag(rc.issuer, tok.sid),
		sid:           tok.sid,
	}, "", e
}

// tokenClaims are what checkToken reads from a token it accepts.
type tokenClaims struct {
	sid string
	amr []string
}

// checkToken checks the token's own claims: that it was issued for this
// challenge and this client, when, to whom, and that every value stepup
// stores can be stored.
func checkToken(t idToken, nonce string, rc ruleContext) (tokenClaims, Reason) {
	cl := &t.claims
	// OIDC Core §3.1.3.7 (11): the nonce must be the one this challenge sent.
	if subtle.ConstantTimeCompare([]byte(t.nonce), []byte(nonce)) != 1 {
		return tokenClaims{}, ReasonNonceMismatch
	}
	// §3.1.3.7 (4, 5): with several audiences azp must be present, and when
	// present it must be this client.
	azp, err := parseString(cl.AZP)
	if err != nil || (len(t.audience) > 1 && azp == "") || (azp != "" && azp != rc.clientID) {
		return tokenClaims{}, ReasonAZPMismatch
	}
	// §3.1.3.7 (10): go-oidc does not check iat at all.
	if t.issuedAt < minUnix || t.issuedAt > rc.now+rc.skew {
		return tokenClaims{}, ReasonInvalidIAT
	}
	// go-oidc accepts any exp in the future; one in milliseconds would make
	// an endless elevation of a scope without Lifetime.
	if t.expiry >= maxUnix || !storable(t.subject) || t.subject == "" {
		return tokenClaims{}, ReasonInvalidClaims
	}
	// Back-Channel Logout §2.1 and CAEP session-revoked name the IdP
	// session by sid: keep a digest of it, so that either can end this
	// elevation.
	sid, err := parseString(cl.SID)
	if err != nil || !storable(sid) {
		return tokenClaims{}, ReasonInvalidClaims
	}
	amr, err := parseStrings(cl.AMR)
	if err != nil || len(amr) > 32 || slices.ContainsFunc(amr, func(m string) bool { return !storable(m) || len(m) > 64 }) {
		return tokenClaims{}, ReasonInvalidClaims
	}
	return tokenClaims{sid: sid, amr: amr}, ""
}

// checkLogin checks the login the token asserts: strong enough for the
// scope (acr), fresh enough for the challenge (auth_time), and by the
// logged-in user. It returns the accepted acr (the asserted one on a
// downgrade, for the audit event) and auth_time.
func checkLogin(t idToken, c pending, p *policy, rc ruleContext) (string, int64, Reason) {
	// §3.1.3.7 (12) and RFC 9470 §4: the acr must be one the scope accepts.
	// The user can edit acr_values in the URL, so the request proves nothing.
	acr, ok, err := acceptedACR(&t.claims, p.ACR)
	if err != nil || !storable(acr) {
		return "", 0, ReasonInvalidClaims
	}
	if !ok {
		return acr, 0, ReasonACRNotSatisfied
	}
	// §3.1.3.7 (13): auth_time proves when the user logged in. stepup
	// requires a login after the challenge began, and within MaxAge.
	authTime, present, err := parseUnixSeconds(t.claims.AuthTime)
	switch {
	case !present:
		return acr, 0, ReasonMissingAuthTime
	case err != nil:
		return acr, 0, ReasonInvalidAuthTime
	case authTime > rc.now+rc.skew:
		return acr, 0, ReasonAuthTimeInFuture
	case authTime < c.started-rc.skew, p.maxAgeSecs > 0 && rc.now-authTime > p.maxAgeSecs:
		return acr, 0, ReasonStaleAuthTime
	case rc.checkSub && t.subject != rc.subject:
		return acr, 0, ReasonSubjectMismatch
	}
	return acr, authTime, ""
}
