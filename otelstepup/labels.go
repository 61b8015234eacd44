package otelstepup

import "github.com/oidc-stepup/stepup/stepup"

// Other is the label value of a reason, a cause, a bound or (with
// [Config.Scopes]) a scope that is not in the known set: a value a newer
// version of stepup added, or one no version emits for that event type. It
// keeps the number of time series fixed whatever the events carry.
const Other = "other"

// The attribute keys. They are the label names in Prometheus.
const (
	keyScope  = "scope"
	keyBound  = "bound"
	keyReason = "reason"
	keyCause  = "cause"
)

// known is a closed set of label values.
type known map[string]bool

func knownOf[T ~string](vs ...T) known {
	k := make(known, len(vs))
	for _, v := range vs {
		k[string(v)] = true
	}
	return k
}

// label returns v when the set holds it, else [Other].
func (k known) label(v string) string {
	if k[v] {
		return v
	}
	return Other
}

// causes are why elevations were revoked: the reason of a revoked or
// revocation_failed event (stepup/revocation.go).
var causes = []stepup.Reason{
	stepup.ReasonBackChannelLogout,
	stepup.ReasonRevokedByOperator,
	stepup.ReasonSessionRevoked,
	stepup.ReasonCredentialChange,
	stepup.ReasonAssuranceLowered,
}

// The label values each event type can carry, as stepup emits them. A test
// checks that every Reason and Bound the library declares is in one of
// these sets, so that a new one is added here before it can become
// "other".
var (
	knownBounds = knownOf(stepup.BoundSessionExpiry, stepup.BoundExp, stepup.BoundLifetime, stepup.BoundMaxAge)

	// A challenge that could not be saved, and so was not issued.
	knownChallengeFailures = knownOf(stepup.ReasonSessionError)

	// A denied callback: a failed check, a session that could not be
	// saved, or a revocation (its cause) that covered the login while the
	// user was at the IdP.
	knownDenials = knownOf(append([]stepup.Reason{
		stepup.ReasonBadRequest, stepup.ReasonUnknownState, stepup.ReasonIssuerMismatch,
		stepup.ReasonMissingIssuer, stepup.ReasonIdPError, stepup.ReasonChallengeExpired,
		stepup.ReasonUnauthenticated, stepup.ReasonMissingCode, stepup.ReasonTokenRefused,
		stepup.ReasonTokenExchange, stepup.ReasonMissingIDToken, stepup.ReasonInvalidIDToken,
		stepup.ReasonNonceMismatch, stepup.ReasonAZPMismatch, stepup.ReasonInvalidIAT,
		stepup.ReasonInvalidClaims, stepup.ReasonACRNotSatisfied, stepup.ReasonMissingAuthTime,
		stepup.ReasonInvalidAuthTime, stepup.ReasonStaleAuthTime, stepup.ReasonAuthTimeInFuture,
		stepup.ReasonSubjectMismatch, stepup.ReasonInvalidSessionExpiry, stepup.ReasonCeilingInPast,
		stepup.ReasonSessionError, stepup.ReasonRevoked,
		stepup.ReasonActionInvalid, stepup.ReasonDetailsMissing, stepup.ReasonDetailsMismatch,
	}, causes...)...)

	// A refused device binding (a device_refused event): a registration
	// or a refresh refused or failed on the store, a bound elevation
	// without a valid bound cookie, or an unbound elevation of a scope
	// that requires binding.
	knownDeviceRefusals = knownOf(
		stepup.ReasonDeviceNotBound, stepup.ReasonBoundCookieMissing, stepup.ReasonBoundCookieInvalid,
		stepup.ReasonDeviceProofInvalid, stepup.ReasonDeviceChallengeUnknown, stepup.ReasonDeviceSessionUnknown,
		stepup.ReasonDeviceAuthorization, stepup.ReasonDeviceSessionMismatch, stepup.ReasonTooManyBindings,
		stepup.ReasonBadRequest, stepup.ReasonSessionError, stepup.ReasonCorrupt,
	)

	// An ended DBSC session (a device_ended event): its elevation reached
	// its deadline, is no longer in the session, or was revoked (a
	// revocation's cause, or revoked for a Drop).
	knownDeviceEnded = knownOf(append([]stepup.Reason{
		stepup.ReasonExpired, stepup.ReasonElevationGone, stepup.ReasonRevoked,
	}, causes...)...)

	// A dropped elevation: by Drop, by a revocation (with its cause), or
	// because it no longer fits the session.
	knownDrops = knownOf(append([]stepup.Reason{
		stepup.ReasonDropped, stepup.ReasonDropUnrevoked, stepup.ReasonRevoked,
		stepup.ReasonSubjectChanged, stepup.ReasonOtherIssuer, stepup.ReasonCorrupt,
	}, causes...)...)

	knownCauses = knownOf(causes...)

	knownRejections = knownOf(
		stepup.ReasonBadRequest, stepup.ReasonInvalidSignal, stepup.ReasonReplayedToken, stepup.ReasonStaleToken,
	)

	knownIgnored = knownOf(
		stepup.ReasonUnsupportedEvent, stepup.ReasonUnsupportedSubject, stepup.ReasonAssuranceRaised,
		stepup.ReasonReplayedToken,
	)
)
