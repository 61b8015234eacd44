// Package otelstepup records stepup's audit events as OpenTelemetry
// metrics, so that an operator can alert on revocations that failed, on a
// wave of denials or on a failing token endpoint without parsing logs.
//
// It uses the OpenTelemetry metrics API only: any MeterProvider and any
// exporter (Prometheus, OTLP) work. It lives in its own module so that the
// library's go.mod keeps its three dependencies.
//
//	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
//	metrics, err := otelstepup.New(otelstepup.Config{
//		MeterProvider: provider,
//		Next:          stepup.SlogAuditor{}, // the audit log keeps flowing
//	})
//	if err != nil {
//		return err
//	}
//	su, err := stepup.New(stepup.Config{
//		// ...
//		Auditor: metrics,
//	})
//
// The metrics, all starting with stepup_ (a Prometheus exporter adds
// _total to counters and _seconds to the histograms):
//
//	stepup_challenges             counter    scope
//	stepup_challenge_failures     counter    scope, reason
//	stepup_grants                 counter    scope, bound
//	stepup_denials                counter    scope, reason
//	stepup_expiries               counter    scope
//	stepup_drops                  counter    scope, reason
//	stepup_revocations            counter    cause
//	stepup_revocation_failures    counter    cause
//	stepup_signals_rejected       counter    reason
//	stepup_signals_ignored        counter    reason
//	stepup_device_bindings        counter    scope
//	stepup_unbound_elevations     counter    scope
//	stepup_device_refusals        counter    scope, reason
//	stepup_device_sessions_ended  counter    scope, reason
//	stepup_approvals_used         counter    scope
//	stepup_elevation_length       histogram  scope, bound   seconds, deadline less grant
//	stepup_step_up_duration       histogram  scope          seconds, grant less challenge
//
// docs/operations.md describes each, and the alerts to set first.
//
// What it does not do: it counts events, and stepup audits the slow paths
// only (challenges, callbacks, expiries, drops, revocations), so it does
// not count guarded requests served on a valid elevation: an HTTP
// middleware's metrics do that. It never labels a metric with a subject,
// an elevation, an IdP session, a token id, a request id, an address or
// any text the IdP chose: those stay in the audit log, where they can be
// protected and retained as personal data. A reason, cause or bound that
// this version does not know (from a newer stepup) is counted as "other".
package otelstepup
