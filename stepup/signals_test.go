package stepup

import (
	"encoding/json"
	"errors"
	"testing"
)

// The receiver's rules that need a transmitter (signatures, keys, the SSF
// configuration) are tested at the repository's root against stepuptest's
// transmitter; these are the pure steps after the signature verified.

// TestSETClaimRules: checkSETClaims, one row per rule, each with the
// RFC 8935 §2.4 error code and the audit reason the transmitter and the
// operator see.
func TestSETClaimRules(t *testing.T) {
	t.Parallel()
	const now = 1_800_000_000
	cfg := SharedSignals{Issuer: "https://tx.test", Audience: "https://app.test"}
	base := func() map[string]any {
		return map[string]any{
			"iss": cfg.Issuer, "aud": []string{"other", cfg.Audience}, "iat": now - 10, "jti": "j-1",
			"sub_id": map[string]any{"format": "iss_sub", "iss": testIssuer, "sub": "alice"},
			"events": map[string]any{CAEPSessionRevoked: map[string]any{"event_timestamp": now - 20}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(c map[string]any)
		code   string // "" when accepted
		reason Reason
		at     int64
	}{
		{"Honest", func(map[string]any) {}, "", "", now - 20},
		{"NoEventTimestampUsesIAT", func(c map[string]any) { c["events"] = map[string]any{CAEPSessionRevoked: map[string]any{}} }, "", "", now - 10},
		{"OtherIssuer", func(c map[string]any) { c["iss"] = "https://evil.test" }, "invalid_issuer", ReasonInvalidSignal, 0},
		{"OtherAudience", func(c map[string]any) { c["aud"] = "https://other.test" }, "invalid_audience", ReasonInvalidSignal, 0},
		{"NoJTI", func(c map[string]any) { delete(c, "jti") }, "invalid_request", ReasonInvalidSignal, 0},
		{"JTIWithLineBreak", func(c map[string]any) { c["jti"] = "a\nb" }, "invalid_request", ReasonInvalidSignal, 0},
		{"AccessTokenWithSub", func(c map[string]any) { c["sub"] = "alice" }, "invalid_request", ReasonInvalidSignal, 0},
		{"TokenWithExp", func(c map[string]any) { c["exp"] = now + 60 }, "invalid_request", ReasonInvalidSignal, 0},
		{"IATAsString", func(c map[string]any) { c["iat"] = "1800000000" }, "invalid_request", ReasonInvalidSignal, 0},
		{"IATFromTheFuture", func(c map[string]any) { c["iat"] = now + 31 }, "invalid_request", ReasonStaleToken, 0},
		{"IATTooOld", func(c map[string]any) { c["iat"] = now - 331 }, "invalid_request", ReasonStaleToken, 0},
		{"TwoEvents", func(c map[string]any) {
			c["events"] = map[string]any{CAEPSessionRevoked: map[string]any{}, CAEPCredentialChange: map[string]any{}}
		}, "invalid_request", ReasonInvalidSignal, 0},
		{"EventNotAnObject", func(c map[string]any) { c["events"] = map[string]any{CAEPSessionRevoked: "x"} }, "invalid_request", ReasonInvalidSignal, 0},
		{"EventTimestampInMilliseconds", func(c map[string]any) {
			c["events"] = map[string]any{CAEPSessionRevoked: map[string]any{"event_timestamp": int64(now) * 1000}}
		}, "invalid_request", ReasonInvalidSignal, 0},
		{"EventTimestampAfterTheSETWasIssued", func(c map[string]any) {
			c["events"] = map[string]any{CAEPSessionRevoked: map[string]any{"event_timestamp": now - 10 + 31}}
		}, "invalid_request", ReasonInvalidSignal, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.change(c)
			payload, _ := json.Marshal(c)
			set, ev, err := checkSETClaims(payload, cfg, now, 30)
			if tc.code == "" {
				if err != nil || set.jti != "j-1" || set.at != tc.at || ev.typ != CAEPSessionRevoked {
					t.Fatalf("refused an honest SET: %+v %+v %v", set, ev, err)
				}
				return
			}
			var rj *setRejection
			if !errors.As(err, &rj) || rj.code != tc.code || rj.reason != tc.reason {
				t.Fatalf("err = %v, want code %q reason %q", err, tc.code, tc.reason)
			}
		})
	}
}

// TestSETClassification: what a valid SET ends, or why it ends nothing.
func TestSETClassification(t *testing.T) {
	t.Parallel()
	user := `{"format":"iss_sub","iss":"` + testIssuer + `","sub":"alice"}`
	session := `{"format":"complex","session":{"format":"opaque","id":"sid-1"}}`
	both := `{"format":"complex","user":` + user + `,"session":{"format":"opaque","id":"sid-1"}}`
	increase, decrease := "increase", "decrease"
	for _, tc := range []struct {
		name             string
		typ              string
		direction        *string
		subID            string
		cause, ignore    Reason
		wantSub, wantSID string
	}{
		{"SessionRevokedForAUser", CAEPSessionRevoked, nil, user, ReasonSessionRevoked, "", "alice", ""},
		{"SessionRevokedForASession", CAEPSessionRevoked, nil, session, ReasonSessionRevoked, "", "", "sid-1"},
		{"SessionRevokedForAUsersSession", CAEPSessionRevoked, nil, both, ReasonSessionRevoked, "", "alice", "sid-1"},
		{"CredentialChangeEndsTheUserNotOneSession", CAEPCredentialChange, nil, both, ReasonCredentialChange, "", "alice", ""},
		{"CredentialChangeForASessionOnly", CAEPCredentialChange, nil, session, ReasonCredentialChange, ReasonUnsupportedSubject, "", "sid-1"},
		{"AssuranceDecrease", CAEPAssuranceLevelChange, &decrease, user, ReasonAssuranceLowered, "", "alice", ""},
		{"AssuranceWithoutDirectionIsADecrease", CAEPAssuranceLevelChange, nil, user, ReasonAssuranceLowered, "", "alice", ""},
		{"AssuranceIncrease", CAEPAssuranceLevelChange, &increase, user, ReasonAssuranceLowered, ReasonAssuranceRaised, "", ""},
		{"OtherEventType", "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change", nil, user, "", ReasonUnsupportedEvent, "", ""},
		{"UserOfAnotherIssuer", CAEPSessionRevoked, nil, `{"format":"iss_sub","iss":"https://other.test","sub":"alice"}`, ReasonSessionRevoked, ReasonUnsupportedSubject, "", ""},
		{"EmailSubject", CAEPSessionRevoked, nil, `{"format":"email","email":"alice@example.com"}`, ReasonSessionRevoked, ReasonUnsupportedSubject, "", ""},
		{"SubjectWithLineBreak", CAEPSessionRevoked, nil, `{"format":"iss_sub","iss":"` + testIssuer + `","sub":"al\nice"}`, ReasonSessionRevoked, ReasonUnsupportedSubject, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set := &securityEventToken{subID: json.RawMessage(tc.subID)}
			classifySET(set, setEvent{typ: tc.typ, changeDirection: tc.direction}, testIssuer)
			if set.cause != tc.cause || set.ignore != tc.ignore || set.subject != tc.wantSub || set.sid != tc.wantSID {
				t.Errorf("cause %q ignore %q subject %q sid %q; want %q %q %q %q",
					set.cause, set.ignore, set.subject, set.sid, tc.cause, tc.ignore, tc.wantSub, tc.wantSID)
			}
		})
	}
}
