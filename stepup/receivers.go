package stepup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// This file holds what the two receivers of revocations share: the
// back-channel logout endpoint (backchannel.go) and the Shared Signals
// endpoint (signals.go). Both take a signed JWT from the IdP, check its
// type and its age, and act on each token once.

// maxSignalAge is how old a logout token or a security event token may be
// by its iat: IdPs send them as the logout happens and do not retry
// (Back-Channel Logout §2.7). It also bounds how long a token's jti must be
// remembered to refuse a replay.
const maxSignalAge = 5 * time.Minute

var (
	errStaleSignal = errors.New("stepup: token issued too far from now")
	errReplayed    = errors.New("stepup: token already processed")
)

// checkSignalAge applies the freshness rule to a logout token's or SET's
// iat: at most ClockSkew in the future, and at most maxSignalAge (plus
// ClockSkew) in the past. A token a few seconds old is fresh.
func (s *StepUp) checkSignalAge(iat int64) error {
	if !signalFresh(iat, s.now().Unix(), s.skew) {
		return errStaleSignal
	}
	return nil
}

// signalFresh is the freshness rule on Unix seconds.
func signalFresh(iat, now, skew int64) bool {
	return iat <= now+skew && iat >= now-int64(maxSignalAge/time.Second)-skew
}

// processOnce runs revoke for a logout token or SET unless one with the
// same jti (stored under key) was processed before, on any replica; then
// it records the jti for as long as a token issued at iat can be accepted.
// The jti is recorded after the revocation, so that a revocation the store
// failed to write can be retried by the sender (a SET transmitter does)
// instead of being taken for a replay. Two copies processed at once both
// revoke, which is harmless: a revocation ends only elevations whose login
// was not after the token's instant.
func (s *StepUp) processOnce(ctx context.Context, key string, iat int64, revoke func() error) error {
	if _, seen, err := s.findRecord(ctx, key); err != nil || seen {
		if err == nil {
			err = errReplayed
		}
		return err
	}
	if err := revoke(); err != nil {
		return err
	}
	until := iat + int64(maxSignalAge/time.Second) + 2*s.skew + 1
	// The revocation is recorded; failing to remember the jti only lets a
	// replay revoke again, to the same effect.
	_ = s.updateRecord(ctx, key, asWritten, func(cur string) (string, int64, error) {
		if cur != "" {
			return "", 0, nil
		}
		return encodeSeen(), until, nil
	})
	return nil
}

// encodeSeen is the value of a processed token's record.
func encodeSeen() string { return "j1" }

// checkJWTType refuses a JWT whose typ header names another kind of token
// (RFC 8725 §3.11: cross-JWT confusion), such as an access token (at+jwt)
// or a security event (secevent+jwt) presented as a logout token. want is
// the explicit type, without "application/". lenient also accepts no typ
// and typ JWT, which Ory Hydra and Keycloak before 25 send on logout
// tokens; otherwise typ must be want.
func checkJWTType(raw, want string, lenient bool) error {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return errors.New("stepup: not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return errors.New("stepup: JWT header is not base64url")
	}
	var h struct {
		Typ *string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return errors.New("stepup: JWT header is not JSON")
	}
	if h.Typ == nil {
		if lenient {
			return nil
		}
		return errors.New("stepup: JWT has no typ")
	}
	typ := strings.TrimPrefix(strings.ToLower(*h.Typ), "application/")
	if typ == want || (lenient && typ == "jwt") {
		return nil
	}
	return errors.New("stepup: JWT typ names another kind of token")
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil
}
