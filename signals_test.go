package stepup_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// pushEvent pushes a SET to the application's receiver and returns the
// answer.
func pushEvent(t *testing.T, a *app, set, authorization string) (int, string) {
	t.Helper()
	status, body, err := stepuptest.PushSecurityEvent(t.Context(), &http.Client{Transport: a.tr}, a.url+ssfEventsPath, set, authorization)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

func securityEvent(t *testing.T, a *app, e stepuptest.SecurityEvent) string {
	t.Helper()
	if e.Audience == "" {
		e.Audience = a.url
	}
	if e.IssuedAt.IsZero() {
		e.IssuedAt = a.clock.Now()
	}
	set, err := a.idp.SecurityEventToken(e)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestCredentialChangeEndsEveryElevationOfTheUser: the user resets their
// one-time code at the IdP; the transmitter pushes CAEP credential-change;
// every elevation of the user ends, nobody else's, and a step-up with the
// new credential works.
func TestCredentialChangeEndsEveryElevationOfTheUser(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{signals: true})
	laptop, _ := elevatedAs(t, a, "alice")
	phone, _ := elevatedAs(t, a, "alice")
	bob, _ := elevatedAs(t, a, "bob")
	set := securityEvent(t, a, stepuptest.SecurityEvent{
		Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"),
		Type:    stepuptest.CAEPCredentialChange,
		Event:   map[string]any{"credential_type": "app", "change_type": "update"},
	})
	if status, body := pushEvent(t, a, set, ""); status != http.StatusAccepted {
		t.Fatalf("push: %d %s", status, body)
	}
	e := a.audit.wantReason(t, stepup.EventRevoked, stepup.ReasonCredentialChange)
	if e.Subject != "alice" || e.TokenID == "" {
		t.Errorf("revoked event %+v", e)
	}
	if laptop.elevated(t) || phone.elevated(t) {
		t.Fatal("an elevation of alice survived the credential change")
	}
	a.audit.wantReason(t, stepup.EventDropped, stepup.ReasonCredentialChange)
	if !bob.elevated(t) {
		t.Fatal("alice's credential change ended bob's elevation")
	}
	a.clock.Advance(time.Second)
	a.setLogin(stepuptest.Login{Subject: "alice", AMR: []string{"pwd", "otp"}})
	laptop.stepUp(t, "/admin")
	if !laptop.elevated(t) {
		t.Fatal("a step-up after the credential change is not honoured")
	}
}

// TestSessionRevokedEndsThatSessionOnly: a CAEP session-revoked event
// naming an IdP session (with or without the user) ends the elevations
// from it, and not those from the user's other sessions.
func TestSessionRevokedEndsThatSessionOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		withUser bool // the subject names the user as well as the session
	}{
		{name: "SessionAndUser", withUser: true},
		{name: "SessionOnly", withUser: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, appOptions{signals: true})
			laptop, laptopSID := elevatedAs(t, a, "alice")
			phone, _ := elevatedAs(t, a, "alice")
			sub := ""
			if tc.withUser {
				sub = "alice"
			}
			set := securityEvent(t, a, stepuptest.SecurityEvent{
				Subject: stepuptest.SessionSubject(a.idp.Issuer(), sub, laptopSID),
				Type:    stepuptest.CAEPSessionRevoked,
			})
			if status, body := pushEvent(t, a, set, ""); status != http.StatusAccepted {
				t.Fatalf("push (user %v): %d %s", tc.withUser, status, body)
			}
			if laptop.elevated(t) || !phone.elevated(t) {
				t.Errorf("user %v: laptop elevated %v, phone elevated %v; want false, true", tc.withUser, laptop.elevated(t), phone.elevated(t))
			}
		})
	}
	// Without a session, session-revoked is about every session of the
	// user.
	a := newApp(t, appOptions{signals: true})
	b, _ := elevatedAs(t, a, "alice")
	set := securityEvent(t, a, stepuptest.SecurityEvent{Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"), Type: stepuptest.CAEPSessionRevoked})
	if status, _ := pushEvent(t, a, set, ""); status != http.StatusAccepted || b.elevated(t) {
		t.Errorf("session-revoked for the user: %d, still elevated %v", status, b.elevated(t))
	}
}

// TestAssuranceLevelChange: a decrease (or a change without a direction)
// ends the user's elevations; an increase ends nothing.
func TestAssuranceLevelChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		direction string
		ends      bool
	}{{"Decrease", "decrease", true}, {"NoDirection", "", true}, {"Increase", "increase", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, appOptions{signals: true})
			b, _ := elevatedAs(t, a, "alice")
			event := map[string]any{"namespace": "NIST-AAL", "current_level": "nist-aal1", "previous_level": "nist-aal2"}
			if tc.direction != "" {
				event["change_direction"] = tc.direction
			}
			set := securityEvent(t, a, stepuptest.SecurityEvent{
				Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"), Type: stepuptest.CAEPAssuranceLevelChange, Event: event,
			})
			if status, body := pushEvent(t, a, set, ""); status != http.StatusAccepted {
				t.Fatalf("push: %d %s", status, body)
			}
			if b.elevated(t) == tc.ends {
				t.Errorf("elevated %v after an assurance change %q", b.elevated(t), tc.direction)
			}
			if !tc.ends {
				a.audit.wantReason(t, stepup.EventSignalIgnored, stepup.ReasonAssuranceRaised)
			}
		})
	}
}

// TestSecurityEventRules: every way a pushed SET can be wrong is refused
// with the RFC 8935 error JSON and a signal_rejected event, or, for a
// valid event stepup does not act on, accepted and audited as
// signal_ignored; either way the elevation stands.
func TestSecurityEventRules(t *testing.T) {
	t.Parallel()
	other, err := stepuptest.New(stepuptest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	credentialChange := func(a *app) stepuptest.SecurityEvent {
		return stepuptest.SecurityEvent{Audience: a.url, IssuedAt: a.clock.Now(), Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange}
	}
	for _, tc := range []struct {
		name        string
		event       func(a *app, e *stepuptest.SecurityEvent)
		claims      func(a *app, c map[string]any)
		typ         string // default secevent+jwt
		token       func(t *testing.T, a *app, c map[string]any) string
		contentType string
		body        func(set string) string
		auth        string // the Authorization header sent
		requireAuth string // SharedSignals.Authorization
		status      int    // default 400
		code        string // RFC 8935 err; empty for a 202
		reason      stepup.Reason
		ignored     bool // accepted and audited as signal_ignored
	}{
		{name: "BadSignature", token: func(t *testing.T, a *app, c map[string]any) string {
			set, _ := a.idp.SignTyped("secevent+jwt", c)
			parts := strings.Split(set, ".")
			return parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		}, code: "invalid_key", reason: stepup.ReasonInvalidSignal},
		{name: "AlgNone", token: func(t *testing.T, a *app, c map[string]any) string {
			b, _ := json.Marshal(c)
			enc := base64.RawURLEncoding.EncodeToString
			return enc([]byte(`{"alg":"none","typ":"secevent+jwt"}`)) + "." + enc(b) + "."
		}, code: "invalid_key", reason: stepup.ReasonInvalidSignal},
		{name: "AlgConfusionHS256WithThePublicKey", token: func(t *testing.T, a *app, c map[string]any) string {
			der, _ := x509.MarshalPKIXPublicKey(a.idp.PublicKey())
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithType("secevent+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(c)
			jws, err := signer.Sign(b)
			if err != nil {
				t.Fatal(err)
			}
			set, _ := jws.CompactSerialize()
			return set
		}, code: "invalid_key", reason: stepup.ReasonInvalidSignal},
		{name: "SignedByAnUnknownKey", token: func(t *testing.T, a *app, c map[string]any) string {
			set, _ := other.SignTyped("secevent+jwt", c)
			return set
		}, code: "invalid_key", reason: stepup.ReasonInvalidSignal},
		{name: "FromAnotherIssuer", claims: func(_ *app, c map[string]any) { c["iss"] = "https://evil.test" }, code: "invalid_issuer", reason: stepup.ReasonInvalidSignal},
		{name: "ForAnotherAudience", event: func(_ *app, e *stepuptest.SecurityEvent) { e.Audience = "https://other.test" }, code: "invalid_audience", reason: stepup.ReasonInvalidSignal},
		{name: "Untyped", typ: "-", code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "TypedJWT", typ: "JWT", code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "LogoutTokenTyp", typ: "logout+jwt", code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "IDTokenLikeWithSub", claims: func(_ *app, c map[string]any) { c["sub"] = "alice" }, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "WithExp", claims: func(a *app, c map[string]any) { c["exp"] = a.clock.Now().Add(time.Hour).Unix() }, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "MissingJTI", claims: func(_ *app, c map[string]any) { delete(c, "jti") }, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "MissingIAT", claims: func(_ *app, c map[string]any) { delete(c, "iat") }, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "IATFarInTheFuture", event: func(a *app, e *stepuptest.SecurityEvent) { e.IssuedAt = a.clock.Now().Add(time.Hour) }, code: "invalid_request", reason: stepup.ReasonStaleToken},
		{name: "IATTooOld", event: func(a *app, e *stepuptest.SecurityEvent) { e.IssuedAt = a.clock.Now().Add(-10 * time.Minute) }, code: "invalid_request", reason: stepup.ReasonStaleToken},
		{name: "TwoEvents", claims: func(_ *app, c map[string]any) {
			c["events"].(map[string]any)[stepuptest.CAEPSessionRevoked] = map[string]any{}
		}, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "EventNotAnObject", claims: func(_ *app, c map[string]any) {
			c["events"] = map[string]any{stepuptest.CAEPCredentialChange: "now"}
		}, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "EventTimestampAfterTheSETWasIssued", event: func(a *app, e *stepuptest.SecurityEvent) {
			e.EventTime = a.clock.Now().Add(time.Hour)
		}, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "EventTimestampAsString", event: func(_ *app, e *stepuptest.SecurityEvent) {
			e.Event = map[string]any{"event_timestamp": "1800000000"}
		}, code: "invalid_request", reason: stepup.ReasonInvalidSignal},
		{name: "WrongContentType", contentType: "application/jwt", code: "invalid_request", reason: stepup.ReasonBadRequest},
		{name: "OversizedBody", body: func(set string) string { return set + strings.Repeat(" ", 70<<10) }, code: "invalid_request", reason: stepup.ReasonBadRequest},
		{name: "MissingAuthorization", requireAuth: "Bearer s3cret-push", status: http.StatusUnauthorized, code: "authentication_failed", reason: stepup.ReasonInvalidSignal},
		{name: "WrongAuthorization", requireAuth: "Bearer s3cret-push", auth: "Bearer guess", status: http.StatusUnauthorized, code: "authentication_failed", reason: stepup.ReasonInvalidSignal},
		{name: "UnknownEventIsIgnored", event: func(_ *app, e *stepuptest.SecurityEvent) {
			e.Type = "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change"
		}, status: http.StatusAccepted, ignored: true, reason: stepup.ReasonUnsupportedEvent},
		{name: "EmailSubjectIsIgnored", event: func(_ *app, e *stepuptest.SecurityEvent) {
			e.Subject = map[string]any{"format": "email", "email": "alice@example.com"}
		}, status: http.StatusAccepted, ignored: true, reason: stepup.ReasonUnsupportedSubject},
		{name: "SubjectOfAnotherIssuerIsIgnored", event: func(_ *app, e *stepuptest.SecurityEvent) {
			e.Subject = stepuptest.UserSubject("https://other-idp.test", "alice")
		}, status: http.StatusAccepted, ignored: true, reason: stepup.ReasonUnsupportedSubject},
		{name: "AnotherUserLeavesAliceAlone", event: func(a *app, e *stepuptest.SecurityEvent) {
			e.Subject = stepuptest.UserSubject(a.idp.Issuer(), "bob")
		}, status: http.StatusAccepted, reason: stepup.ReasonCredentialChange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, appOptions{signals: true, config: func(c *stepup.Config) {
				if tc.requireAuth != "" {
					c.SharedSignals.Authorization = tc.requireAuth
				}
			}})
			b, _ := elevatedAs(t, a, "alice")
			e := credentialChange(a)
			if tc.event != nil {
				tc.event(a, &e)
			}
			c, err := a.idp.SecurityEventClaims(e)
			if err != nil {
				t.Fatal(err)
			}
			if tc.claims != nil {
				tc.claims(a, c)
			}
			var set string
			switch {
			case tc.token != nil:
				set = tc.token(t, a, c)
			default:
				typ := tc.typ
				switch typ {
				case "":
					typ = "secevent+jwt"
				case "-":
					typ = ""
				}
				if set, err = a.idp.SignTyped(typ, c); err != nil {
					t.Fatal(err)
				}
			}
			body := set
			if tc.body != nil {
				body = tc.body(set)
			}
			req, err := http.NewRequest(http.MethodPost, a.url+ssfEventsPath, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/secevent+jwt"
			}
			req.Header.Set("Content-Type", ct)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := (&http.Client{Transport: a.tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			status := tc.status
			if status == 0 {
				status = http.StatusBadRequest
			}
			var answer struct {
				Err         string `json:"err"`
				Description string `json:"description"`
			}
			if resp.StatusCode != status {
				t.Fatalf("status %d, want %d", resp.StatusCode, status)
			}
			if tc.code != "" {
				if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Err != tc.code {
					t.Errorf("answer %+v (%v), want err %q", answer, err, tc.code)
				}
			}
			switch {
			case tc.ignored:
				a.audit.wantReason(t, stepup.EventSignalIgnored, tc.reason)
			case tc.code != "":
				a.audit.wantReason(t, stepup.EventSignalRejected, tc.reason)
			default:
				a.audit.wantReason(t, stepup.EventRevoked, tc.reason)
			}
			if !b.elevated(t) {
				t.Error("the event ended alice's elevation")
			}
		})
	}
}

// TestReplayedSecurityEventIsAcceptedAndDoesNothing: a transmitter retries
// a push it thinks was lost, or an attacker replays one, after the user
// stepped up again; the retry is answered 202 (delivered) and ends nothing.
func TestReplayedSecurityEventIsAcceptedAndDoesNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{signals: true})
	b, _ := elevatedAs(t, a, "alice")
	set := securityEvent(t, a, stepuptest.SecurityEvent{Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange})
	if status, _ := pushEvent(t, a, set, ""); status != http.StatusAccepted || b.elevated(t) {
		t.Fatalf("first push: %d", status)
	}
	a.clock.Advance(2 * time.Second)
	b.stepUp(t, "/admin")
	if status, body := pushEvent(t, a, set, ""); status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", status, body)
	}
	a.audit.wantReason(t, stepup.EventSignalIgnored, stepup.ReasonReplayedToken)
	if !b.elevated(t) {
		t.Fatal("a replayed event ended an elevation granted after it")
	}
}

// TestSecurityEventStoreFailureAsksForARetry: the revocation could not be
// recorded; the transmitter is told to retry (503), and revocation_failed
// is audited.
func TestSecurityEventStoreFailureAsksForARetry(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{signals: true})
	elevatedAs(t, a, "alice")
	a.store.failCommit.Store(true)
	set := securityEvent(t, a, stepuptest.SecurityEvent{Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange})
	status, body := pushEvent(t, a, set, "")
	a.store.failCommit.Store(false)
	if status != http.StatusServiceUnavailable || strings.Contains(body, "store down") {
		t.Errorf("answer %d %s", status, body)
	}
	a.audit.wantReason(t, stepup.EventRevocationFailed, stepup.ReasonCredentialChange)
	if status, _ := pushEvent(t, a, set, ""); status != http.StatusAccepted {
		t.Errorf("the transmitter's retry: %d", status)
	}
}

func TestSecurityEventHandlerWithoutSharedSignalsIsNotFound(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	if status, _ := pushEvent(t, a, "x.y.z", ""); status != http.StatusNotFound {
		t.Errorf("status %d, want 404", status)
	}
}

func TestNewRefusesAnUnusableTransmitter(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	for name, ss := range map[string]stepup.SharedSignals{
		"NoAudience":       {Issuer: a.idp.Issuer()},
		"IssuerMismatch":   {Issuer: a.idp.Issuer() + "/", Audience: a.url},
		"NoTransmitter":    {Issuer: "http://127.0.0.1:9", Audience: a.url},
		"NotAnIssuerURL":   {Issuer: "transmitter", Audience: a.url},
		"BadAuthorization": {Issuer: a.idp.Issuer(), Audience: a.url, Authorization: "Bearer x\n"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := a.cfg
			cfg.SharedSignals = &ss
			cfg.HTTPClient = &http.Client{Timeout: 2 * time.Second}
			var ce *stepup.ConfigError
			if _, err := stepup.New(cfg); !errors.As(err, &ce) || !strings.HasPrefix(ce.Field, "SharedSignals.") {
				t.Errorf("%s: New = %v", name, err)
			}
		})
	}
}

// TestASecurityEventWhoseRevocationFailedIsRetried: as for logout tokens,
// a SET whose revocation failed is not remembered as processed, so the
// transmitter's retry takes effect.
func TestASecurityEventWhoseRevocationFailedIsRetried(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{signals: true})
	b, _ := elevatedAs(t, a, "alice")
	revocations := "R;"
	a.store.failCommitPrefix.Store(&revocations)
	set := securityEvent(t, a, stepuptest.SecurityEvent{Subject: stepuptest.UserSubject(a.idp.Issuer(), "alice"), Type: stepuptest.CAEPCredentialChange})
	if status, _ := pushEvent(t, a, set, ""); status != http.StatusServiceUnavailable {
		t.Fatalf("with the revocation record failing: %d", status)
	}
	a.store.failCommitPrefix.Store(nil)
	if status, _ := pushEvent(t, a, set, ""); status != http.StatusAccepted {
		t.Fatalf("the retry: %d", status)
	}
	if a.audit.count(stepup.EventSignalIgnored) != 0 || b.elevated(t) {
		t.Fatal("the retry was taken for a replay, and the elevation survived")
	}
}
