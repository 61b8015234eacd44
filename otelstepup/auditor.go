package otelstepup

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/oidc-stepup/stepup/stepup"
)

// ScopeName is the instrumentation scope of the meter the instruments
// belong to.
const ScopeName = "github.com/oidc-stepup/stepup/otelstepup"

// Config configures [New].
type Config struct {
	// MeterProvider provides the meter the instruments are created on.
	// Pass otel.GetMeterProvider() to record on the global provider.
	// Required.
	MeterProvider metric.MeterProvider

	// Next receives every event after it has been counted, unchanged: set
	// it to the Auditor the application had (a [stepup.SlogAuditor], a
	// JSON log), so that the audit lines keep flowing. stepup.Config holds
	// one Auditor, and counting never fails or blocks, so the counter is
	// the natural outer link; counting first means a Next that panics or
	// stalls does not lose the count. Default: nil, events are counted
	// only.
	Next stepup.Auditor

	// Scopes, when set, lists the scope names recorded as they are; any
	// other non-empty scope is recorded as "other". Set it when the
	// application builds stepup's Config.Scopes from data (a scope per
	// tenant) rather than from a short list in code. Default: nil, every
	// scope as the event names it: stepup names only the scopes of its
	// Config.Scopes, a set fixed at stepup.New.
	Scopes []string
}

// elevationLengthBoundaries are the bucket boundaries, in seconds, of
// stepup_elevation_length: how long an elevation is granted
// for, from the grant to its deadline. An elevation's deadline is the
// earliest of its bounds, and each bound is usually a round setting:
// Scope.Lifetime and Scope.MaxAge (5, 10, 15, 30 minutes, an hour), the
// ID token's lifetime at the IdP (5 minutes at Keycloak, an hour at Okta
// and Entra ID, 10 hours at Auth0), an IPSIE session_expiry (hours). A
// boundary sits on each such setting, and a grant lands a fraction of a
// second (Lifetime) to a few seconds (exp, MaxAge, counted from before the
// grant) below it, so each bucket names the setting that bound it: a
// 15-minute Lifetime fills le="900". 30 and 60 seconds catch elevations
// that are over almost at once: an IdP whose tokens or session_expiry are
// about to run out.
var elevationLengthBoundaries = []float64{30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400}

// stepUpDurationBoundaries are the bucket boundaries, in seconds, of
// stepup_step_up_duration: from the challenge to the grant, the user's
// round trip through the IdP (its login page, a password typed again when
// max_age or prompt=login asks for it, the second factor, the redirect
// back). The challenge's start is stored in whole seconds, so nothing
// below a second is meaningful. Under 2 seconds the IdP did not make the
// user do anything (an SSO session was reused: the step-up proved
// nothing new); a passkey or a push takes 5 to 15 seconds, a typed one-time
// code 15 to 45; past 2 minutes the user went looking for a device or
// struggled. 600 is where stepup stops: a challenge older than ten minutes
// is denied as challenge_expired.
var stepUpDurationBoundaries = []float64{2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600}

// Auditor is a [stepup.Auditor] that records each event in OpenTelemetry
// metrics, then hands it to [Config.Next]. Labels are low-cardinality by
// construction: the scope, the bound, and the reason or cause, each from
// a fixed set with [Other] for anything else. No id (subject, elevation,
// sid, jti, request id, remote address) nor IdP-supplied text (acr, amr,
// idp_error) ever becomes an attribute: they are unbounded, and some are
// personal data. They stay in the audit log.
//
// The series whose labels do not depend on a scope (revocations, their
// failures, rejected and ignored signals) exist from [New] on, at 0.
//
// It is safe for concurrent use, and it does not block: the instruments
// aggregate in memory, and exporting is the MeterProvider's business. The
// histograms' buckets are chosen for what they measure (see
// elevationLengthBoundaries and stepUpDurationBoundaries in the source); an
// SDK View can replace them.
type Auditor struct {
	next   stepup.Auditor
	scopes known // nil: every scope as it is

	challenges, challengeFailures metric.Int64Counter
	grants, denials               metric.Int64Counter
	expiries, drops               metric.Int64Counter
	revocations, revocationFails  metric.Int64Counter
	rejected, ignored             metric.Int64Counter
	bindings, unbound             metric.Int64Counter
	deviceRefusals, deviceEnded   metric.Int64Counter
	approvalsUsed                 metric.Int64Counter
	elevationLength, stepUp       metric.Float64Histogram
}

var _ stepup.Auditor = (*Auditor)(nil)

// New creates the instruments on cfg.MeterProvider. It fails when the
// MeterProvider is missing or refuses an instrument.
func New(cfg Config) (*Auditor, error) {
	if cfg.MeterProvider == nil {
		return nil, errors.New("otelstepup: Config.MeterProvider is required (otel.GetMeterProvider() for the global one)")
	}
	a := &Auditor{next: cfg.Next}
	if cfg.Scopes != nil {
		a.scopes = knownOf(append(slices.Clone(cfg.Scopes), "")...)
	}
	m := cfg.MeterProvider.Meter(ScopeName)
	var errs []error
	counter := func(c *metric.Int64Counter, name, unit, desc string) {
		var err error
		*c, err = m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
	}
	counter(&a.challenges, "stepup_challenges", "{challenge}",
		"Step-up challenges issued (a redirect to the IdP or a 401), by scope.")
	counter(&a.challengeFailures, "stepup_challenge_failures", "{challenge}",
		"Step-up challenges that could not be saved in the session, and so were not issued, by scope and reason.")
	counter(&a.grants, "stepup_grants", "{elevation}",
		"Elevations granted, by scope and the bound that set the deadline.")
	counter(&a.denials, "stepup_denials", "{callback}",
		"Step-up callbacks denied, by scope and reason.")
	counter(&a.expiries, "stepup_expiries", "{elevation}",
		"Elevations found past their deadline and removed, by scope.")
	counter(&a.drops, "stepup_drops", "{elevation}",
		"Elevations removed before their deadline, by scope and reason.")
	counter(&a.revocations, "stepup_revocations", "{revocation}",
		"Revocations recorded (back-channel logout, security event, RevokeSubject), by cause.")
	counter(&a.revocationFails, "stepup_revocation_failures", "{revocation}",
		"Valid revocations that could not be recorded: elevations they should end live on until their deadlines. By cause.")
	counter(&a.rejected, "stepup_signals_rejected", "{signal}",
		"Logout tokens and security events refused, by reason.")
	counter(&a.ignored, "stepup_signals_ignored", "{signal}",
		"Valid security events that end nothing here, by reason.")
	counter(&a.bindings, "stepup_device_bindings", "{binding}",
		"Device keys registered for elevations (DBSC): elevations bound to the browser's key, by scope.")
	counter(&a.unbound, "stepup_unbound_elevations", "{elevation}",
		"Elevations of a scope that prefers device binding used unbound after the grace, by scope.")
	counter(&a.deviceRefusals, "stepup_device_refusals", "{request}",
		"DBSC registrations and refreshes refused, bound elevations without a valid bound cookie, and unbound elevations of a scope that requires binding, by scope and reason.")
	counter(&a.deviceEnded, "stepup_device_sessions_ended", "{session}",
		"DBSC sessions ended at a refresh because their elevation had ended, by scope and reason.")
	counter(&a.approvalsUsed, "stepup_approvals_used", "{approval}",
		"Approvals of one action used up by their request, by scope.")
	var err error
	a.elevationLength, err = m.Float64Histogram("stepup_elevation_length", metric.WithUnit("s"),
		metric.WithDescription("How long elevations are granted for: the deadline less the grant's time, by scope and bound."),
		metric.WithExplicitBucketBoundaries(elevationLengthBoundaries...))
	errs = append(errs, err)
	a.stepUp, err = m.Float64Histogram("stepup_step_up_duration", metric.WithUnit("s"),
		metric.WithDescription("How long users take to step up: the grant's time less the challenge's, by scope."),
		metric.WithExplicitBucketBoundaries(stepUpDurationBoundaries...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a.startAtZero()
	return a, nil
}

// startAtZero records 0 on every series whose labels do not depend on
// the scope, so that they exist before their first event: Prometheus's
// increase() and rate() need a sample before an increment to see it, and
// the first revocation failure is the one an alert must not miss.
func (a *Auditor) startAtZero() {
	ctx := context.Background()
	for _, c := range []struct {
		counter metric.Int64Counter
		key     string
		values  known
	}{
		{a.revocations, keyCause, knownCauses},
		{a.revocationFails, keyCause, knownCauses},
		{a.rejected, keyReason, knownRejections},
		{a.ignored, keyReason, knownIgnored},
	} {
		for v := range c.values {
			c.counter.Add(ctx, 0, metric.WithAttributes(attribute.String(c.key, v)))
		}
	}
}

// Audit implements [stepup.Auditor]: it counts e, then passes it to
// [Config.Next]. An event type it does not know (from a newer stepup) is
// passed on uncounted.
func (a *Auditor) Audit(ctx context.Context, e stepup.Event) {
	a.record(ctx, e)
	if a.next != nil {
		a.next.Audit(ctx, e)
	}
}

func (a *Auditor) record(ctx context.Context, e stepup.Event) {
	scope := attribute.String(keyScope, a.scope(e.Scope))
	reason := string(e.Reason)
	switch e.Type {
	case stepup.EventChallenge:
		if e.Reason == "" {
			a.challenges.Add(ctx, 1, metric.WithAttributes(scope))
			return
		}
		a.challengeFailures.Add(ctx, 1, metric.WithAttributes(scope, attribute.String(keyReason, knownChallengeFailures.label(reason))))
	case stepup.EventGranted:
		attrs := metric.WithAttributes(scope, attribute.String(keyBound, knownBounds.label(string(e.Bound))))
		a.grants.Add(ctx, 1, attrs)
		if !e.Deadline.IsZero() && !e.Time.IsZero() {
			a.elevationLength.Record(ctx, seconds(e.Deadline.Sub(e.Time)), attrs)
		}
		if !e.ChallengeStarted.IsZero() && !e.Time.IsZero() {
			a.stepUp.Record(ctx, seconds(e.Time.Sub(e.ChallengeStarted)), metric.WithAttributes(scope))
		}
	case stepup.EventDenied:
		a.denials.Add(ctx, 1, metric.WithAttributes(scope, attribute.String(keyReason, knownDenials.label(reason))))
	case stepup.EventExpired:
		a.expiries.Add(ctx, 1, metric.WithAttributes(scope))
	case stepup.EventDropped:
		a.drops.Add(ctx, 1, metric.WithAttributes(scope, attribute.String(keyReason, knownDrops.label(reason))))
	case stepup.EventRevoked:
		a.revocations.Add(ctx, 1, metric.WithAttributes(attribute.String(keyCause, knownCauses.label(reason))))
	case stepup.EventRevocationFailed:
		a.revocationFails.Add(ctx, 1, metric.WithAttributes(attribute.String(keyCause, knownCauses.label(reason))))
	case stepup.EventSignalRejected:
		a.rejected.Add(ctx, 1, metric.WithAttributes(attribute.String(keyReason, knownRejections.label(reason))))
	case stepup.EventSignalIgnored:
		a.ignored.Add(ctx, 1, metric.WithAttributes(attribute.String(keyReason, knownIgnored.label(reason))))
	case stepup.EventBound:
		a.bindings.Add(ctx, 1, metric.WithAttributes(scope))
	case stepup.EventUnbound:
		a.unbound.Add(ctx, 1, metric.WithAttributes(scope))
	case stepup.EventDeviceRefused:
		a.deviceRefusals.Add(ctx, 1, metric.WithAttributes(scope, attribute.String(keyReason, knownDeviceRefusals.label(reason))))
	case stepup.EventDeviceEnded:
		a.deviceEnded.Add(ctx, 1, metric.WithAttributes(scope, attribute.String(keyReason, knownDeviceEnded.label(reason))))
	case stepup.EventConsumed:
		a.approvalsUsed.Add(ctx, 1, metric.WithAttributes(scope))
	}
}

// scope is the label of a scope name: as it is, unless Config.Scopes is
// set and does not list it. The empty scope (a denial whose challenge was
// not found, a corrupt list of pending challenges, a DBSC registration or
// refresh refused before its session was found) stays empty.
func (a *Auditor) scope(s string) string {
	if a.scopes == nil {
		return s
	}
	return a.scopes.label(s)
}

// seconds converts d to seconds, as 0 when it is negative: the
// challenge's start comes from the clock of the replica that issued it,
// which may be ahead of the one granting.
func seconds(d time.Duration) float64 {
	return max(d, 0).Seconds()
}
