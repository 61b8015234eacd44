package stepup

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// EventType says what happened to an elevation.
type EventType string

// The audit event types.
const (
	// EventChallenge: a guarded request was not elevated, and a step-up
	// challenge was issued (a redirect to the IdP or a 401). Reason
	// session_error means the challenge could not be saved and was not
	// issued.
	EventChallenge EventType = "challenge"
	// EventGranted: a callback passed every check and an elevation was stored.
	EventGranted EventType = "granted"
	// EventDenied: a callback failed a check, or the IdP returned an error.
	// Reason says which check.
	EventDenied EventType = "denied"
	// EventExpired: a guarded request found an elevation past its deadline
	// and removed it.
	EventExpired EventType = "expired"
	// EventRevoked: the IdP or an operator ended elevations before their
	// deadlines: a back-channel logout, a security event, or
	// [StepUp.RevokeSubject]. Reason is the cause; Subject, SID and TokenID
	// say what it named. The guard then refuses each covered elevation at
	// its next request, with a dropped event of the same reason.
	EventRevoked EventType = "revoked"
	// EventRevocationFailed: a valid revocation could not be recorded (the
	// session store failed). Elevations it should have ended live on until
	// their deadlines; an IdP does not retry. Alert on it.
	EventRevocationFailed EventType = "revocation_failed"
	// EventSignalRejected: a logout token or a security event was refused
	// (bad signature, wrong issuer or audience, replayed, stale, malformed).
	// Reason says why. Nothing was revoked.
	EventSignalRejected EventType = "signal_rejected"
	// EventSignalIgnored: a valid security event that ends nothing here: an
	// event type or a subject stepup does not act on, a raised assurance
	// level, or a push the transmitter retried. Reason says which.
	EventSignalIgnored EventType = "signal_ignored"
	// EventDropped: an elevation was removed before its deadline, by
	// [StepUp.Drop] or because it no longer matched the logged-in user or the
	// configured issuer. Reason says which. With reason corrupt and an empty
	// Scope, it was the session's list of pending challenges that did not
	// decode.
	EventDropped EventType = "dropped"
	// EventBound: a browser registered a device key for an elevation
	// (DBSC); from now on the elevation is honoured only with the bound
	// cookie that key refreshes. KeyThumbprint names the key.
	EventBound EventType = "bound"
	// EventUnbound: an elevation of a scope that prefers device binding
	// was honoured without one, after [Config.DeviceBindingGrace]: the
	// browser did not bind it. Audited once per elevation and server,
	// with DeviceBound false.
	EventUnbound EventType = "unbound"
	// EventDeviceRefused: a DBSC registration or refresh was refused, or a
	// bound elevation came without a valid bound cookie (it is then
	// challenged, not dropped), or an elevation of a scope that requires
	// binding was not bound, or (reason session_error, right after the
	// granted event) a Preferred grant could not store its registration and
	// is unbound. Reason says which.
	EventDeviceRefused EventType = "device_refused"
	// EventDeviceEnded: a refresh found the elevation ended (Reason: its
	// deadline, a revocation cause, or elevation_gone) and ended the
	// browser's DBSC session.
	EventDeviceEnded EventType = "device_ended"
	// EventConsumed: a request used up an approval of its action
	// ([StepUp.RequireStepUpFor]); Elevation names the approval, as on
	// its granted event.
	EventConsumed EventType = "consumed"
)

// Event is one audit record. It never holds a token, an authorization code,
// a nonce, a state or a cookie value.
type Event struct {
	Type      EventType `json:"type"`
	Time      time.Time `json:"time"`
	Scope     string    `json:"scope"`
	Subject   string    `json:"subject,omitempty"` // the OIDC subject concerned, when known
	Issuer    string    `json:"issuer,omitempty"`
	ACR       string    `json:"acr,omitempty"`
	AMR       []string  `json:"amr,omitempty"`
	Deadline  time.Time `json:"deadline,omitzero"`   // zero when no elevation is concerned
	Bound     Bound     `json:"bound,omitempty"`     // which bound set Deadline
	Reason    Reason    `json:"reason,omitempty"`    // why, for denied and dropped events
	IdPError  string    `json:"idp_error,omitempty"` // the IdP's OAuth error code, for ReasonIdPError and ReasonTokenRefused
	Method    string    `json:"method,omitempty"`
	Route     string    `json:"route,omitempty"`      // the matched route pattern when the router set one, else the path
	Remote    string    `json:"remote,omitempty"`     // the client address, from [Config.ClientIP]
	RequestID string    `json:"request_id,omitempty"` // from [Config.RequestID], when configured
	Elevation string    `json:"elevation,omitempty"`  // the elevation's id, linking its granted, expired and dropped events
	// ChallengeStarted is when the challenge a callback answers was issued,
	// on granted and denied events whose challenge was found: the grant's
	// Time less it is how long the user took to step up.
	ChallengeStarted time.Time `json:"challenge_started,omitzero"`
	SID              string    `json:"sid,omitempty"` // the IdP session a revocation named
	TokenID          string    `json:"jti,omitempty"` // the jti of the logout token or security event
	// NoExp is set on the events of a logout token that had no exp claim,
	// which stepup accepts unless [Config.StrictLogoutTokenExpiry] is set.
	NoExp bool `json:"no_exp,omitempty"`
	// DeviceBound is true on bound events and false on unbound events;
	// nil on every other event.
	DeviceBound *bool `json:"device_bound,omitempty"`
	// KeyThumbprint is the RFC 7638 thumbprint of the device key, on the
	// events of device binding.
	KeyThumbprint string `json:"jkt,omitempty"`
	// The action of a [StepUp.RequireStepUpFor] challenge, approval or
	// use: the RFC 9396 authorization details type, actions and
	// identifier.
	ActionType       string   `json:"action_type,omitempty"`
	Actions          []string `json:"actions,omitempty"`
	ActionIdentifier string   `json:"action_identifier,omitempty"`
}

// Auditor receives audit events. Audit is called synchronously on the
// request's goroutine, for every event, and must be safe for concurrent use.
// It should not block: a slow Auditor slows every challenge and callback.
type Auditor interface {
	Audit(ctx context.Context, e Event)
}

// AuditorFunc adapts a function to [Auditor].
type AuditorFunc func(ctx context.Context, e Event)

// Audit calls f(ctx, e).
func (f AuditorFunc) Audit(ctx context.Context, e Event) { f(ctx, e) }

// SlogAuditor writes one log line per event: revocation_failed at ERROR,
// denied, signal_rejected and device_refused at WARN, all others at INFO. Empty fields are left out. The event's own time, from
// [Config.Now], is the event_time attribute.
type SlogAuditor struct {
	Logger *slog.Logger // Default: slog.Default().
}

// Audit implements [Auditor].
func (a SlogAuditor) Audit(ctx context.Context, e Event) {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	level := slog.LevelInfo
	switch e.Type {
	case EventDenied, EventSignalRejected, EventDeviceRefused:
		level = slog.LevelWarn
	case EventRevocationFailed:
		level = slog.LevelError
	}
	if !l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("event", string(e.Type)),
		slog.Time("event_time", e.Time),
		slog.String("scope", e.Scope),
	)
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("subject", e.Subject)
	add("issuer", e.Issuer)
	add("acr", e.ACR)
	if len(e.AMR) > 0 {
		attrs = append(attrs, slog.Any("amr", e.AMR))
	}
	if !e.Deadline.IsZero() {
		attrs = append(attrs, slog.Time("deadline", e.Deadline))
	}
	add("bound", string(e.Bound))
	add("reason", string(e.Reason))
	add("idp_error", e.IdPError)
	add("elevation", e.Elevation)
	if !e.ChallengeStarted.IsZero() {
		attrs = append(attrs, slog.Time("challenge_started", e.ChallengeStarted))
	}
	add("sid", e.SID)
	add("jti", e.TokenID)
	if e.NoExp {
		attrs = append(attrs, slog.Bool("no_exp", true))
	}
	if e.DeviceBound != nil {
		attrs = append(attrs, slog.Bool("device_bound", *e.DeviceBound))
	}
	add("jkt", e.KeyThumbprint)
	add("action_type", e.ActionType)
	if len(e.Actions) > 0 {
		attrs = append(attrs, slog.Any("actions", e.Actions))
	}
	add("action_identifier", e.ActionIdentifier)
	add("method", e.Method)
	add("route", e.Route)
	add("remote", e.Remote)
	add("request_id", e.RequestID)
	l.LogAttrs(ctx, level, "stepup "+string(e.Type), attrs...)
}

// auditContext hands e, which concerns no request (a revocation made by
// the application), to the Auditor.
func (s *StepUp) auditContext(ctx context.Context, e Event) {
	e.Time = s.now().UTC()
	s.cfg.Auditor.Audit(ctx, e)
}

// audit fills in the request fields of e and hands it to the Auditor.
func (s *StepUp) audit(r *http.Request, e Event) {
	e.Time = s.now().UTC()
	e.Method = r.Method
	e.Route = r.Pattern
	if e.Route == "" {
		e.Route = r.URL.Path
	}
	e.Remote = s.cfg.ClientIP(r)
	if s.cfg.RequestID != nil {
		e.RequestID = s.cfg.RequestID(r)
	}
	s.cfg.Auditor.Audit(r.Context(), e)
}
