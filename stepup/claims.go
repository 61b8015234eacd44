package stepup

import (
	"encoding/json"
	"errors"
	"slices"
)

// This file parses the ID-token claims go-oidc leaves to the caller. Each
// parser is strict and pure, so that a malformed claim fails closed and the
// parsers can be fuzzed on their own.

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

// acrClaimsRequest renders an OIDC claims request (OIDC Core §5.5.1.1) that
// marks acr essential with the given values.
func acrClaimsRequest(values []string) string {
	type acr struct {
		Essential bool     `json:"essential"`
		Values    []string `json:"values"`
	}
	b, _ := json.Marshal(map[string]map[string]acr{
		"id_token": {"acr": {Essential: true, Values: values}},
	})
	return string(b)
}
