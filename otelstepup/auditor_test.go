package otelstepup

import (
	"context"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/oidc-stepup/stepup/stepup"
)

// t0 is the tests' clock: events carry their own time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC)

// newTestAuditor returns an Auditor recording on a fresh MeterProvider,
// and the reader that collects what it recorded.
func newTestAuditor(t *testing.T, cfg Config) (*Auditor, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	cfg.MeterProvider = provider
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, reader
}

// point is one data point, flattened: the instrument, its attributes as
// "k=v,k=v" sorted by key, and its count (a counter's value, a
// histogram's number of measurements).
type point struct {
	metric string
	attrs  string
	count  int64
}

func (p point) String() string { return fmt.Sprintf("%s{%s} %d", p.metric, p.attrs, p.count) }

// collected is what one collection held.
type collected struct {
	points     []point
	histograms map[string]metricdata.HistogramDataPoint[float64] // by metric name and attrs, "name{attrs}"
	attrSets   []attribute.Set
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	c := collected{histograms: map[string]metricdata.HistogramDataPoint[float64]{}}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != ScopeName {
			t.Errorf("instrumentation scope %q, want %q", sm.Scope.Name, ScopeName)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if !d.IsMonotonic {
					t.Errorf("%s is not monotonic", m.Name)
				}
				for _, dp := range d.DataPoints {
					if dp.Value == 0 {
						continue
					}
					c.points = append(c.points, point{m.Name, attrString(dp.Attributes), dp.Value})
					c.attrSets = append(c.attrSets, dp.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if dp.Count == 0 {
						continue
					}
					p := point{m.Name, attrString(dp.Attributes), int64(dp.Count)}
					c.points = append(c.points, p)
					c.attrSets = append(c.attrSets, dp.Attributes)
					c.histograms[p.metric+"{"+p.attrs+"}"] = dp
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	slices.SortFunc(c.points, func(a, b point) int { return strings.Compare(a.String(), b.String()) })
	return c
}

func attrString(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() { // sorted by key
		kv = append(kv, string(a.Key)+"="+a.Value.Emit())
	}
	return strings.Join(kv, ",")
}

func pointStrings(ps []point) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// TestEachEventIsCountedOnItsInstrument: every event type stepup emits
// adds one to its own instrument, with the scope, bound, reason or cause
// it carries, and to nothing else.
func TestEachEventIsCountedOnItsInstrument(t *testing.T) {
	t.Parallel()
	grant := stepup.Event{
		Type: stepup.EventGranted, Time: t0, Scope: "admin", Bound: stepup.BoundLifetime,
		Deadline: t0.Add(15 * time.Minute), ChallengeStarted: t0.Add(-20 * time.Second),
	}
	tests := []struct {
		name string
		e    stepup.Event
		want []string
	}{
		{"challenge", stepup.Event{Type: stepup.EventChallenge, Scope: "admin"},
			[]string{"stepup_challenges{scope=admin} 1"}},
		{"challenge not saved", stepup.Event{Type: stepup.EventChallenge, Scope: "admin", Reason: stepup.ReasonSessionError},
			[]string{"stepup_challenge_failures{reason=session_error,scope=admin} 1"}},
		{"granted", grant, []string{
			"stepup_elevation_length{bound=lifetime,scope=admin} 1",
			"stepup_grants{bound=lifetime,scope=admin} 1",
			"stepup_step_up_duration{scope=admin} 1",
		}},
		{"granted without its challenge's start", stepup.Event{Type: stepup.EventGranted, Time: t0, Scope: "admin", Bound: stepup.BoundExp, Deadline: t0.Add(time.Hour)},
			[]string{"stepup_elevation_length{bound=exp,scope=admin} 1", "stepup_grants{bound=exp,scope=admin} 1"}},
		{"denied", stepup.Event{Type: stepup.EventDenied, Scope: "admin", Reason: stepup.ReasonACRNotSatisfied, ChallengeStarted: t0},
			[]string{"stepup_denials{reason=acr_not_satisfied,scope=admin} 1"}},
		{"denied token exchange", stepup.Event{Type: stepup.EventDenied, Scope: "payments", Reason: stepup.ReasonTokenExchange},
			[]string{"stepup_denials{reason=token_exchange_failed,scope=payments} 1"}},
		{"denied because a logout covered the login", stepup.Event{Type: stepup.EventDenied, Scope: "admin", Reason: stepup.ReasonBackChannelLogout},
			[]string{"stepup_denials{reason=backchannel_logout,scope=admin} 1"}},
		{"denied with no challenge found", stepup.Event{Type: stepup.EventDenied, Reason: stepup.ReasonUnknownState},
			[]string{"stepup_denials{reason=unknown_state,scope=} 1"}},
		{"expired", stepup.Event{Type: stepup.EventExpired, Scope: "admin", Bound: stepup.BoundMaxAge, Deadline: t0},
			[]string{"stepup_expiries{scope=admin} 1"}},
		{"dropped", stepup.Event{Type: stepup.EventDropped, Scope: "admin", Reason: stepup.ReasonDropped},
			[]string{"stepup_drops{reason=drop,scope=admin} 1"}},
		{"dropped unrevoked", stepup.Event{Type: stepup.EventDropped, Scope: "admin", Reason: stepup.ReasonDropUnrevoked},
			[]string{"stepup_drops{reason=drop_unrevoked,scope=admin} 1"}},
		{"dropped by a back-channel logout", stepup.Event{Type: stepup.EventDropped, Scope: "admin", Reason: stepup.ReasonBackChannelLogout},
			[]string{"stepup_drops{reason=backchannel_logout,scope=admin} 1"}},
		{"corrupt pending challenges", stepup.Event{Type: stepup.EventDropped, Reason: stepup.ReasonCorrupt},
			[]string{"stepup_drops{reason=corrupt,scope=} 1"}},
		{"revoked", stepup.Event{Type: stepup.EventRevoked, Reason: stepup.ReasonBackChannelLogout},
			[]string{"stepup_revocations{cause=backchannel_logout} 1"}},
		{"revoked by an operator", stepup.Event{Type: stepup.EventRevoked, Reason: stepup.ReasonRevokedByOperator},
			[]string{"stepup_revocations{cause=revoked_by_operator} 1"}},
		{"revocation failed", stepup.Event{Type: stepup.EventRevocationFailed, Reason: stepup.ReasonSessionRevoked},
			[]string{"stepup_revocation_failures{cause=session_revoked} 1"}},
		{"signal rejected", stepup.Event{Type: stepup.EventSignalRejected, Reason: stepup.ReasonInvalidSignal},
			[]string{"stepup_signals_rejected{reason=invalid_token} 1"}},
		{"signal ignored", stepup.Event{Type: stepup.EventSignalIgnored, Reason: stepup.ReasonAssuranceRaised},
			[]string{"stepup_signals_ignored{reason=assurance_raised} 1"}},
		{"challenge for an action", stepup.Event{Type: stepup.EventChallenge, Scope: "transfer", ActionType: "payment_initiation", Actions: []string{"initiate"}},
			[]string{"stepup_challenges{scope=transfer} 1"}},
		{"approval of an action granted", stepup.Event{Type: stepup.EventGranted, Time: t0, Scope: "transfer", Bound: stepup.BoundLifetime, Deadline: t0.Add(5 * time.Minute), ActionType: "payment_initiation"},
			[]string{"stepup_elevation_length{bound=lifetime,scope=transfer} 1", "stepup_grants{bound=lifetime,scope=transfer} 1"}},
		{"denied naming no valid action", stepup.Event{Type: stepup.EventDenied, Scope: "transfer", Reason: stepup.ReasonActionInvalid},
			[]string{"stepup_denials{reason=action_invalid,scope=transfer} 1"}},
		{"denied without authorization_details", stepup.Event{Type: stepup.EventDenied, Scope: "transfer", Reason: stepup.ReasonDetailsMissing},
			[]string{"stepup_denials{reason=authorization_details_missing,scope=transfer} 1"}},
		{"denied with other authorization_details", stepup.Event{Type: stepup.EventDenied, Scope: "transfer", Reason: stepup.ReasonDetailsMismatch},
			[]string{"stepup_denials{reason=authorization_details_mismatch,scope=transfer} 1"}},
		{"approval used", stepup.Event{Type: stepup.EventConsumed, Scope: "transfer", Deadline: t0.Add(5 * time.Minute), ActionType: "payment_initiation"},
			[]string{"stepup_approvals_used{scope=transfer} 1"}},
		{"bound", stepup.Event{Type: stepup.EventBound, Scope: "admin", DeviceBound: new(true), KeyThumbprint: "jkt", Deadline: t0},
			[]string{"stepup_device_bindings{scope=admin} 1"}},
		{"unbound", stepup.Event{Type: stepup.EventUnbound, Scope: "admin", DeviceBound: new(false), Deadline: t0},
			[]string{"stepup_unbound_elevations{scope=admin} 1"}},
		{"device refused: not bound under Required", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonDeviceNotBound},
			[]string{"stepup_device_refusals{reason=device_not_bound,scope=admin} 1"}},
		{"device refused: bound cookie missing", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonBoundCookieMissing},
			[]string{"stepup_device_refusals{reason=bound_cookie_missing,scope=admin} 1"}},
		{"device refused: bound cookie invalid", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonBoundCookieInvalid},
			[]string{"stepup_device_refusals{reason=bound_cookie_invalid,scope=admin} 1"}},
		{"device refused: registration not stored", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonSessionError},
			[]string{"stepup_device_refusals{reason=session_error,scope=admin} 1"}},
		{"device refused: too many bindings", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonTooManyBindings},
			[]string{"stepup_device_refusals{reason=too_many_bindings,scope=admin} 1"}},
		{"device refused before its session was found", stepup.Event{Type: stepup.EventDeviceRefused, Reason: stepup.ReasonDeviceProofInvalid},
			[]string{"stepup_device_refusals{reason=device_proof_invalid,scope=} 1"}},
		{"device refused: oversized body", stepup.Event{Type: stepup.EventDeviceRefused, Reason: stepup.ReasonBadRequest},
			[]string{"stepup_device_refusals{reason=bad_request,scope=} 1"}},
		{"device refused: corrupt record", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonCorrupt},
			[]string{"stepup_device_refusals{reason=corrupt,scope=admin} 1"}},
		{"device session ended: expired", stepup.Event{Type: stepup.EventDeviceEnded, Scope: "admin", Reason: stepup.ReasonExpired},
			[]string{"stepup_device_sessions_ended{reason=expired,scope=admin} 1"}},
		{"device session ended: elevation gone", stepup.Event{Type: stepup.EventDeviceEnded, Scope: "admin", Reason: stepup.ReasonElevationGone},
			[]string{"stepup_device_sessions_ended{reason=elevation_gone,scope=admin} 1"}},
		{"device session ended by a back-channel logout", stepup.Event{Type: stepup.EventDeviceEnded, Scope: "admin", Reason: stepup.ReasonBackChannelLogout},
			[]string{"stepup_device_sessions_ended{reason=backchannel_logout,scope=admin} 1"}},
		{"device session ended by a drop", stepup.Event{Type: stepup.EventDeviceEnded, Scope: "admin", Reason: stepup.ReasonRevoked},
			[]string{"stepup_device_sessions_ended{reason=revoked,scope=admin} 1"}},
		{"an event type of a newer stepup", stepup.Event{Type: "elevation_extended", Scope: "admin"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, reader := newTestAuditor(t, Config{})
			a.Audit(context.Background(), tc.e)
			if got := pointStrings(collect(t, reader).points); !slices.Equal(got, tc.want) {
				t.Errorf("recorded\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}

// TestUnknownLabelValuesAreCountedAsOther: a reason, cause or bound from a
// newer stepup, or one that does not belong to the event's type, is
// recorded as "other", so that no event can add a label value, and so a
// time series, that this version does not list.
func TestUnknownLabelValuesAreCountedAsOther(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    stepup.Event
		want string
	}{
		{"new denial reason", stepup.Event{Type: stepup.EventDenied, Scope: "admin", Reason: "dpop_mismatch"},
			"stepup_denials{reason=other,scope=admin} 1"},
		{"drop reason on a denial", stepup.Event{Type: stepup.EventDenied, Scope: "admin", Reason: stepup.ReasonDropUnrevoked},
			"stepup_denials{reason=other,scope=admin} 1"},
		{"denial with no reason", stepup.Event{Type: stepup.EventDenied, Scope: "admin"},
			"stepup_denials{reason=other,scope=admin} 1"},
		{"new drop reason", stepup.Event{Type: stepup.EventDropped, Scope: "admin", Reason: "device_changed"},
			"stepup_drops{reason=other,scope=admin} 1"},
		{"new cause", stepup.Event{Type: stepup.EventRevoked, Reason: "risk_level_change"},
			"stepup_revocations{cause=other} 1"},
		{"new cause that failed", stepup.Event{Type: stepup.EventRevocationFailed, Reason: "risk_level_change"},
			"stepup_revocation_failures{cause=other} 1"},
		{"new rejection", stepup.Event{Type: stepup.EventSignalRejected, Reason: "unknown_stream"},
			"stepup_signals_rejected{reason=other} 1"},
		{"new ignored signal", stepup.Event{Type: stepup.EventSignalIgnored, Reason: "token_claims_change"},
			"stepup_signals_ignored{reason=other} 1"},
		{"new challenge failure", stepup.Event{Type: stepup.EventChallenge, Scope: "admin", Reason: "rate_limited"},
			"stepup_challenge_failures{reason=other,scope=admin} 1"},
		{"attacker text as a reason", stepup.Event{Type: stepup.EventSignalRejected, Reason: "<script>alert(1)</script>"},
			"stepup_signals_rejected{reason=other} 1"},
		{"new device refusal", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: "device_key_revoked"},
			"stepup_device_refusals{reason=other,scope=admin} 1"},
		{"denial reason on a device refusal", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin", Reason: stepup.ReasonACRNotSatisfied},
			"stepup_device_refusals{reason=other,scope=admin} 1"},
		{"device refusal with no reason", stepup.Event{Type: stepup.EventDeviceRefused, Scope: "admin"},
			"stepup_device_refusals{reason=other,scope=admin} 1"},
		{"new end of a device session", stepup.Event{Type: stepup.EventDeviceEnded, Scope: "admin", Reason: "risk_level_change"},
			"stepup_device_sessions_ended{reason=other,scope=admin} 1"},
		{"device refusal reason on an ended device session", stepup.Event{Type: stepup.EventDeviceEnded, Scope: "admin", Reason: stepup.ReasonBoundCookieMissing},
			"stepup_device_sessions_ended{reason=other,scope=admin} 1"},
		{"new denial of an action", stepup.Event{Type: stepup.EventDenied, Scope: "transfer", Reason: "action_expired"},
			"stepup_denials{reason=other,scope=transfer} 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, reader := newTestAuditor(t, Config{})
			a.Audit(context.Background(), tc.e)
			if got := pointStrings(collect(t, reader).points); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("recorded %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("new bound", func(t *testing.T) {
		t.Parallel()
		a, reader := newTestAuditor(t, Config{})
		a.Audit(context.Background(), stepup.Event{Type: stepup.EventGranted, Time: t0, Scope: "admin", Bound: "refresh_expiry", Deadline: t0.Add(time.Minute)})
		want := []string{"stepup_elevation_length{bound=other,scope=admin} 1", "stepup_grants{bound=other,scope=admin} 1"}
		if got := pointStrings(collect(t, reader).points); !slices.Equal(got, want) {
			t.Errorf("recorded %q, want %q", got, want)
		}
	})
}

// TestScopesOutsideConfigScopesAreOther: with Config.Scopes set, a scope
// it does not list is recorded as "other"; the empty scope stays empty.
func TestScopesOutsideConfigScopesAreOther(t *testing.T) {
	t.Parallel()
	a, reader := newTestAuditor(t, Config{Scopes: []string{"admin"}})
	ctx := context.Background()
	a.Audit(ctx, stepup.Event{Type: stepup.EventChallenge, Scope: "admin"})
	a.Audit(ctx, stepup.Event{Type: stepup.EventChallenge, Scope: "tenant-4711"})
	a.Audit(ctx, stepup.Event{Type: stepup.EventChallenge, Scope: "tenant-4712"})
	a.Audit(ctx, stepup.Event{Type: stepup.EventDenied, Reason: stepup.ReasonUnknownState})
	a.Audit(ctx, stepup.Event{Type: stepup.EventBound, Scope: "tenant-4711"})
	a.Audit(ctx, stepup.Event{Type: stepup.EventDeviceRefused, Scope: "tenant-4712", Reason: stepup.ReasonBoundCookieMissing})
	a.Audit(ctx, stepup.Event{Type: stepup.EventDeviceRefused, Reason: stepup.ReasonDeviceSessionUnknown})
	a.Audit(ctx, stepup.Event{Type: stepup.EventConsumed, Scope: "admin"})
	want := []string{
		"stepup_approvals_used{scope=admin} 1",
		"stepup_challenges{scope=admin} 1",
		"stepup_challenges{scope=other} 2",
		"stepup_denials{reason=unknown_state,scope=} 1",
		"stepup_device_bindings{scope=other} 1",
		"stepup_device_refusals{reason=bound_cookie_missing,scope=other} 1",
		"stepup_device_refusals{reason=device_session_unknown,scope=} 1",
	}
	if got := pointStrings(collect(t, reader).points); !slices.Equal(got, want) {
		t.Errorf("recorded\n  %q\nwant\n  %q", got, want)
	}
}

// TestNoIdentifierBecomesAnAttribute: an event full of ids (subject,
// elevation, IdP session, token id, request id, client address, device
// key thumbprint, action identifier) and of text the IdP or a client chose
// (issuer, acr, amr, idp_error, route, action type and actions)
// records only scope, bound, reason and cause attributes, none of which
// holds any of that. An id as a label would make a time series per user
// or per request, and copy personal data into the metrics store.
func TestNoIdentifierBecomesAnAttribute(t *testing.T) {
	t.Parallel()
	a, reader := newTestAuditor(t, Config{})
	ids := map[string]string{
		"subject":    "sub-alice-7f3a",
		"issuer":     "https://idp.example/issuer-9c1d",
		"acr":        "urn:acr-2b8e",
		"amr":        "amr-5d0c",
		"idp_error":  "idp-error-8a4f",
		"method":     "METHOD-3e7b",
		"route":      "/route-6c2a",
		"remote":     "198.51.100.42",
		"request_id": "req-1f9e",
		"elevation":  "E;elevation-4b7d",
		"sid":        "sid-0a6c",
		"jti":        "jti-7e3b",
		"key":        "key-thumbprint-5f1a",
		"action":     "action-identifier-2d9c",
		"actions":    "actions-8b3e",
		"action_typ": "action-type-6a0f",
	}
	types := []stepup.EventType{
		stepup.EventChallenge, stepup.EventGranted, stepup.EventDenied, stepup.EventExpired,
		stepup.EventDropped, stepup.EventRevoked, stepup.EventRevocationFailed,
		stepup.EventSignalRejected, stepup.EventSignalIgnored,
		stepup.EventBound, stepup.EventUnbound, stepup.EventDeviceRefused, stepup.EventDeviceEnded, stepup.EventConsumed,
	}
	reasons := map[stepup.EventType]stepup.Reason{
		stepup.EventDenied: stepup.ReasonIdPError, stepup.EventDropped: stepup.ReasonSubjectChanged,
		stepup.EventRevoked: stepup.ReasonCredentialChange, stepup.EventRevocationFailed: stepup.ReasonBackChannelLogout,
		stepup.EventSignalRejected: stepup.ReasonReplayedToken, stepup.EventSignalIgnored: stepup.ReasonUnsupportedSubject,
		stepup.EventDeviceRefused: stepup.ReasonBoundCookieInvalid, stepup.EventDeviceEnded: stepup.ReasonElevationGone,
	}
	for _, typ := range types {
		a.Audit(context.Background(), stepup.Event{
			Type: typ, Time: t0, Scope: "admin", Reason: reasons[typ],
			Subject: ids["subject"], Issuer: ids["issuer"], ACR: ids["acr"], AMR: []string{ids["amr"]},
			Deadline: t0.Add(time.Minute), Bound: stepup.BoundExp, IdPError: ids["idp_error"],
			Method: ids["method"], Route: ids["route"], Remote: ids["remote"], RequestID: ids["request_id"],
			Elevation: ids["elevation"], ChallengeStarted: t0.Add(-time.Second), SID: ids["sid"], TokenID: ids["jti"],
			KeyThumbprint: ids["key"], ActionType: ids["action_typ"], Actions: []string{ids["actions"]},
			ActionIdentifier: ids["action"],
		})
	}
	c := collect(t, reader)
	if len(c.points) != len(types)+2 { // and the grant's two histograms
		t.Errorf("recorded %d points, want %d: %q", len(c.points), len(types)+2, pointStrings(c.points))
	}
	allowed := map[attribute.Key]bool{keyScope: true, keyBound: true, keyReason: true, keyCause: true}
	for _, set := range c.attrSets {
		for _, kv := range set.ToSlice() {
			if !allowed[kv.Key] {
				t.Errorf("attribute %s=%q: only scope, bound, reason and cause may label a metric", kv.Key, kv.Value.Emit())
			}
			for name, id := range ids {
				if strings.Contains(kv.Value.Emit(), id) {
					t.Errorf("attribute %s=%q holds the event's %s", kv.Key, kv.Value.Emit(), name)
				}
			}
		}
	}
}

// TestHistogramsRecordElevationLengthAndStepUpDuration: a grant records
// its deadline less its time as the elevation's length, and its time less
// its challenge's start as the step-up's duration, in seconds, in the
// bucket of the setting that bound it.
func TestHistogramsRecordElevationLengthAndStepUpDuration(t *testing.T) {
	t.Parallel()
	a, reader := newTestAuditor(t, Config{})
	ctx := context.Background()
	// A 15-minute Lifetime counted from the grant's whole second: the
	// deadline is 899.75s after the event's time, in the le=900 bucket.
	granted := t0
	deadline := time.Unix(t0.Unix()+900, 0)
	started := time.Unix(t0.Unix()-37, 0)
	a.Audit(ctx, stepup.Event{Type: stepup.EventGranted, Time: granted, Scope: "admin", Bound: stepup.BoundLifetime, Deadline: deadline, ChallengeStarted: started})
	a.Audit(ctx, stepup.Event{Type: stepup.EventGranted, Time: granted, Scope: "admin", Bound: stepup.BoundLifetime, Deadline: deadline.Add(-300 * time.Second), ChallengeStarted: started.Add(30 * time.Second)})
	// A challenge stamped by a replica whose clock is ahead: 0, not a
	// negative duration.
	a.Audit(ctx, stepup.Event{Type: stepup.EventGranted, Time: granted, Scope: "admin", Bound: stepup.BoundLifetime, Deadline: deadline, ChallengeStarted: granted.Add(2 * time.Second)})
	c := collect(t, reader)

	length := c.histograms["stepup_elevation_length{bound=lifetime,scope=admin}"]
	checkHistogram(t, "stepup_elevation_length", length, elevationLengthBoundaries, []float64{899.75, 599.75, 899.75})
	duration := c.histograms["stepup_step_up_duration{scope=admin}"]
	checkHistogram(t, "stepup_step_up_duration", duration, stepUpDurationBoundaries, []float64{37.25, 7.25, 0})
}

// checkHistogram compares dp with the histogram of values on bounds.
func checkHistogram(t *testing.T, name string, dp metricdata.HistogramDataPoint[float64], bounds, values []float64) {
	t.Helper()
	if !slices.Equal(dp.Bounds, bounds) {
		t.Errorf("%s: bounds %v, want %v", name, dp.Bounds, bounds)
	}
	wantCounts := make([]uint64, len(bounds)+1)
	var sum float64
	for _, v := range values {
		i, _ := slices.BinarySearch(bounds, v) // the first bound >= v: le is inclusive
		wantCounts[i]++
		sum += v
	}
	if dp.Count != uint64(len(values)) || math.Abs(dp.Sum-sum) > 1e-6 || !slices.Equal(dp.BucketCounts, wantCounts) {
		t.Errorf("%s: count %d, sum %v, buckets %v; want %d, %v, %v", name, dp.Count, dp.Sum, dp.BucketCounts, len(values), sum, wantCounts)
	}
	if lo, ok := dp.Min.Value(); !ok || lo != slices.Min(values) {
		t.Errorf("%s: min %v, want %v", name, lo, slices.Min(values))
	}
}

// TestBucketBoundariesAreIncreasing: the SDK refuses nothing here, it
// just buckets wrongly, so the lists are checked.
func TestBucketBoundariesAreIncreasing(t *testing.T) {
	t.Parallel()
	for name, b := range map[string][]float64{"elevation length": elevationLengthBoundaries, "step-up duration": stepUpDurationBoundaries} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !slices.IsSorted(b) || len(slices.Compact(slices.Clone(b))) != len(b) || b[0] <= 0 {
				t.Errorf("%s: %v is not strictly increasing from above zero", name, b)
			}
		})
	}
	// stepup denies a challenge older than ten minutes, so no grant takes
	// longer: the last bucket ends there.
	if last := stepUpDurationBoundaries[len(stepUpDurationBoundaries)-1]; last != 600 {
		t.Errorf("step-up duration's last bound %v, want 600 (the challenge's ten minutes)", last)
	}
}

// TestNextReceivesEveryEventUnchanged: the chained Auditor sees each event
// as stepup sent it, ids included, after it was counted, also events of
// a type this version does not count.
func TestNextReceivesEveryEventUnchanged(t *testing.T) {
	t.Parallel()
	var got []stepup.Event
	var counted []string
	var reader *sdkmetric.ManualReader
	next := stepup.AuditorFunc(func(_ context.Context, e stepup.Event) {
		got = append(got, e)
		counted = append(counted, strings.Join(pointStrings(collect(t, reader).points), " "))
	})
	a, r := newTestAuditor(t, Config{Next: next})
	reader = r
	sent := []stepup.Event{
		{Type: stepup.EventDenied, Time: t0, Scope: "admin", Reason: stepup.ReasonTokenRefused, IdPError: "invalid_grant", Subject: "alice", RequestID: "r1"},
		{Type: stepup.EventRevoked, Time: t0, Reason: stepup.ReasonBackChannelLogout, Subject: "alice", SID: "s1", TokenID: "j1"},
		{Type: "elevation_extended", Time: t0, Scope: "admin"},
	}
	for _, e := range sent {
		a.Audit(context.Background(), e)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("Next received\n  %+v\nwant\n  %+v", got, sent)
	}
	if len(counted) != 3 || counted[0] != "stepup_denials{reason=token_refused,scope=admin} 1" {
		t.Errorf("the denial was not counted before Next saw it: %q", counted)
	}
}

// TestNewRequiresAMeterProvider: a missing MeterProvider fails at New,
// not at the first event.
func TestNewRequiresAMeterProvider(t *testing.T) {
	t.Parallel()
	if a, err := New(Config{}); err == nil || a != nil || !strings.HasPrefix(err.Error(), "otelstepup: ") {
		t.Errorf("New(Config{}) = %v, %v; want an otelstepup: error", a, err)
	}
}

// TestAuditIsSafeForConcurrentUse: stepup calls Audit on every request's
// goroutine. Many goroutines auditing while the reader collects lose no
// count (and -race finds no race).
func TestAuditIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	nexts := 0
	a, reader := newTestAuditor(t, Config{Next: stepup.AuditorFunc(func(context.Context, stepup.Event) {
		mu.Lock()
		nexts++
		mu.Unlock()
	})})
	const goroutines, each = 16, 200
	scopes := []string{"admin", "payments"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			scope := scopes[g%len(scopes)]
			for i := range each {
				ctx := context.Background()
				a.Audit(ctx, stepup.Event{Type: stepup.EventChallenge, Scope: scope})
				a.Audit(ctx, stepup.Event{Type: stepup.EventGranted, Time: t0, Scope: scope, Bound: stepup.BoundExp,
					Deadline: t0.Add(time.Duration(i) * time.Second), ChallengeStarted: t0.Add(-time.Second)})
				a.Audit(ctx, stepup.Event{Type: stepup.EventDenied, Scope: scope, Reason: stepup.ReasonACRNotSatisfied})
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			collect(t, reader)
		}
	})
	wg.Wait()
	total := int64(goroutines / len(scopes) * each)
	var want []string
	for _, s := range scopes {
		want = append(want,
			fmt.Sprintf("stepup_challenges{scope=%s} %d", s, total),
			fmt.Sprintf("stepup_denials{reason=acr_not_satisfied,scope=%s} %d", s, total),
			fmt.Sprintf("stepup_elevation_length{bound=exp,scope=%s} %d", s, total),
			fmt.Sprintf("stepup_grants{bound=exp,scope=%s} %d", s, total),
			fmt.Sprintf("stepup_step_up_duration{scope=%s} %d", s, total),
		)
	}
	slices.Sort(want)
	if got := pointStrings(collect(t, reader).points); !slices.Equal(got, want) {
		t.Errorf("recorded\n  %q\nwant\n  %q", got, want)
	}
	if nexts != goroutines*each*3 {
		t.Errorf("Next received %d events, want %d", nexts, goroutines*each*3)
	}
}

// knownUnion is every label value some event type accepts.
func knownUnion() map[string]bool {
	u := map[string]bool{}
	for _, k := range []known{
		knownChallengeFailures, knownDenials, knownDrops, knownCauses, knownRejections, knownIgnored,
		knownDeviceRefusals, knownDeviceEnded,
	} {
		maps.Copy(u, k)
	}
	return u
}

// TestScopeFreeSeriesStartAtZero: before any event, every revocation,
// revocation failure, rejected and ignored signal series exists at 0, so
// that an alert on increase() fires on the very first revocation failure;
// no other series exists yet.
func TestScopeFreeSeriesStartAtZero(t *testing.T) {
	t.Parallel()
	_, reader := newTestAuditor(t, Config{})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Errorf("%s exists before any event", m.Name)
				continue
			}
			for _, dp := range sum.DataPoints {
				if dp.Value != 0 {
					t.Errorf("%s{%s} = %d before any event", m.Name, attrString(dp.Attributes), dp.Value)
				}
				got[m.Name]++
			}
		}
	}
	want := map[string]int{
		"stepup_revocations":         len(knownCauses),
		"stepup_revocation_failures": len(knownCauses),
		"stepup_signals_rejected":    len(knownRejections),
		"stepup_signals_ignored":     len(knownIgnored),
	}
	if !maps.Equal(got, want) {
		t.Errorf("series before any event: %v, want %v", got, want)
	}
}
