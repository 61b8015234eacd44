package stepup

import (
	"errors"
	"fmt"
)

// Reason is the machine-readable cause of a denied callback or a dropped
// elevation. It appears in audit events and in [Denial].
type Reason string

// Reasons for denied callbacks. docs/how-it-works.md lists the order in
// which the callback checks them.
const (
	ReasonBadRequest           Reason = "bad_request"            // a callback parameter is repeated, oversized or malformed
	ReasonUnknownState         Reason = "unknown_state"          // no pending challenge of this session has this state (CSRF, replay)
	ReasonIssuerMismatch       Reason = "issuer_mismatch"        // the iss response parameter names another issuer (RFC 9207 mix-up)
	ReasonMissingIssuer        Reason = "missing_iss"            // the IdP promises iss (RFC 9207) but did not send it
	ReasonIdPError             Reason = "idp_error"              // the IdP answered with an OAuth error (Event.IdPError)
	ReasonChallengeExpired     Reason = "challenge_expired"      // the challenge is older than ten minutes
	ReasonUnauthenticated      Reason = "unauthenticated"        // nobody is logged in to the app any more
	ReasonMissingCode          Reason = "missing_code"           // no authorization code
	ReasonTokenRefused         Reason = "token_refused"          // the token endpoint answered an OAuth error (invalid_grant, invalid_client, ...; Event.IdPError)
	ReasonTokenExchange        Reason = "token_exchange_failed"  // the token endpoint could not be reached, timed out or failed (5xx, not OAuth)
	ReasonMissingIDToken       Reason = "missing_id_token"       // the token response had no id_token
	ReasonInvalidIDToken       Reason = "invalid_id_token"       // signature, iss, aud or exp failed, or the JWKS could not be fetched
	ReasonNonceMismatch        Reason = "nonce_mismatch"         // the ID token's nonce is not this challenge's (token substitution)
	ReasonAZPMismatch          Reason = "azp_mismatch"           // azp is absent with several audiences, or names another client
	ReasonInvalidIAT           Reason = "invalid_iat"            // iat is missing or more than ClockSkew in the future
	ReasonInvalidClaims        Reason = "invalid_claims"         // acr, amr or sub has the wrong type or cannot be stored safely
	ReasonACRNotSatisfied      Reason = "acr_not_satisfied"      // the acr is not one the scope accepts (downgrade)
	ReasonMissingAuthTime      Reason = "missing_auth_time"      // auth_time is absent
	ReasonInvalidAuthTime      Reason = "invalid_auth_time"      // auth_time is not a whole number of seconds
	ReasonStaleAuthTime        Reason = "stale_auth_time"        // the login predates the challenge, or is older than MaxAge
	ReasonAuthTimeInFuture     Reason = "auth_time_in_future"    // auth_time is more than ClockSkew ahead
	ReasonSubjectMismatch      Reason = "subject_mismatch"       // the IdP authenticated someone other than the logged-in user
	ReasonInvalidSessionExpiry Reason = "invalid_session_expiry" // session_expiry is not whole Unix seconds in a sane range
	ReasonCeilingInPast        Reason = "ceiling_in_past"        // the elevation would be born expired (login-time lockout)
	ReasonSessionError         Reason = "session_error"          // the session could not be renewed or saved
)

// Reasons for dropped elevations.
const (
	ReasonDropped        Reason = "drop"            // the application called [StepUp.Drop]
	ReasonDropUnrevoked  Reason = "drop_unrevoked"  // Drop removed the elevation but could not record its revocation
	ReasonRevoked        Reason = "revoked"         // a dropped elevation came back, written by a request that was in flight during Drop
	ReasonSubjectChanged Reason = "subject_changed" // the logged-in user is not the one who stepped up
	ReasonOtherIssuer    Reason = "other_issuer"    // the elevation was issued by another provider
	ReasonCorrupt        Reason = "corrupt"         // the stored elevation did not decode
)

// Denial describes a refused callback. It is what [Config.OnDenied] receives.
// It carries no token, code or IdP-supplied text, so it is safe to show.
type Denial struct {
	Scope    string // empty when the challenge could not be identified
	Reason   Reason
	IdPError string // the IdP's OAuth error code when Reason is ReasonIdPError or ReasonTokenRefused
}

func (d *Denial) Error() string {
	if d.IdPError != "" {
		return fmt.Sprintf("stepup: step-up denied: %s (%s)", d.Reason, d.IdPError)
	}
	return "stepup: step-up denied: " + string(d.Reason)
}

// Errors passed to [Config.OnError].
var (
	// ErrNoSession means the request reached stepup without scs session data
	// in its context: the SessionManager's LoadAndSave (or Load) middleware
	// is not mounted in front of it.
	ErrNoSession = errors.New("stepup: no session in request context: mount SessionManager.LoadAndSave before stepup")
	// ErrCorruptElevation means a stored elevation did not decode. The
	// request fails closed; the record is removed and audited as dropped
	// with reason corrupt. A list of pending challenges that does not decode
	// is not an error: it is removed and audited the same way (with no
	// scope), a new challenge proceeds, and a callback that would have
	// answered one of its challenges is denied as unknown_state.
	ErrCorruptElevation = errors.New("stepup: stored elevation does not decode")
	// ErrSession means the session store failed while stepup changed the
	// session. It wraps the store's error.
	ErrSession = errors.New("stepup: session store")
)

// ConfigError reports a [Config] that [New] refuses.
type ConfigError struct {
	Field   string // the offending field, e.g. `Scopes["admin"].ACR`
	Problem string
	Err     error // the underlying error, for discovery failures
}

func (e *ConfigError) Error() string {
	msg := "stepup: config: " + e.Field + ": " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ConfigError) Unwrap() error { return e.Err }
