package stepup

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestLogoutClaimRules: checkLogoutClaims, one row per rule of
// Back-Channel Logout §2.4 and §2.6 that go-oidc's Verify (signature, iss,
// aud) leaves to it, and the exp rule both ways.
func TestLogoutClaimRules(t *testing.T) {
	t.Parallel()
	const now = 1_800_000_000
	event := map[string]json.RawMessage{backChannelLogoutEvent: json.RawMessage(`{}`)}
	honest := logoutClaims{SID: "sid-1", JTI: "j-1", IssuedAt: json.RawMessage("1799999990"), Expiry: json.RawMessage("1800000120"), Events: event}
	with := func(f func(c *logoutClaims)) logoutClaims { c := honest; f(&c); return c }
	noExp := with(func(c *logoutClaims) { c.Expiry = nil })
	for _, tc := range []struct {
		name   string
		claims logoutClaims
		strict bool
		ok     bool
		stale  bool
	}{
		{"Honest", honest, false, true, false},
		{"HonestUnderStrict", honest, true, true, false},
		{"NoExpAsHydraSendsIt", noExp, false, true, false},
		{"NoExpUnderStrict", noExp, true, false, false},
		{"NullExp", with(func(c *logoutClaims) { c.Expiry = json.RawMessage("null") }), false, true, false},
		{"ExpPast", with(func(c *logoutClaims) { c.Expiry = json.RawMessage("1799999999") }), false, false, false},
		{"ExpNow", with(func(c *logoutClaims) { c.Expiry = json.RawMessage("1800000000") }), false, true, false},
		{"ExpAsString", with(func(c *logoutClaims) { c.Expiry = json.RawMessage(`"1800000120"`) }), false, false, false},
		{"NoExpAndStaleIAT", with(func(c *logoutClaims) { c.Expiry, c.IssuedAt = nil, json.RawMessage("1799999669") }), false, false, true},
		{"NoExpAndIATAhead", with(func(c *logoutClaims) { c.Expiry, c.IssuedAt = nil, json.RawMessage("1800000031") }), false, false, true},
		{"NoIAT", with(func(c *logoutClaims) { c.IssuedAt = nil }), false, false, false},
		{"NeitherSubNorSID", with(func(c *logoutClaims) { c.SID = "" }), false, false, false},
		{"SubOnly", with(func(c *logoutClaims) { c.SID, c.Subject = "", "alice" }), false, true, false},
		{"NoJTI", with(func(c *logoutClaims) { c.JTI = "" }), false, false, false},
		{"JTIOver256Bytes", with(func(c *logoutClaims) { c.JTI = strings.Repeat("j", 257) }), false, false, false},
		{"SIDWithLineBreak", with(func(c *logoutClaims) { c.SID = "a\nb" }), false, false, false},
		{"IDTokenWithNonce", with(func(c *logoutClaims) { c.Nonce = json.RawMessage(`"n"`) }), false, false, false},
		{"NoLogoutEvent", with(func(c *logoutClaims) { c.Events = nil }), false, false, false},
		{"LogoutEventNotAnObject", with(func(c *logoutClaims) {
			c.Events = map[string]json.RawMessage{backChannelLogoutEvent: json.RawMessage("true")}
		}), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := checkLogoutClaims(testIssuer, tc.claims, now, 30, tc.strict)
			if (err == nil) != tc.ok || errors.Is(err, errStaleSignal) != tc.stale {
				t.Fatalf("err = %v, want ok %v (stale %v)", err, tc.ok, tc.stale)
			}
			if tc.ok && (l.Issuer != testIssuer || l.TokenID != "j-1" || l.IssuedAt.Unix() != 1799999990 ||
				l.Expiry.IsZero() != isNull(tc.claims.Expiry)) {
				t.Errorf("accepted as %+v", l)
			}
		})
	}
}
