package stepup

import (
	"fmt"
	"net/http"
)

// This file holds every Reason stepup reports, with the HTTP status of
// stepup's default answer and the text a person is shown, and nowhere else.
// A test fails if another file declares a Reason or if one lacks its row.

// Reason is the machine-readable cause of a denied callback, a dropped or
// revoked elevation, or a rejected or ignored logout token or security
// event. It appears in audit events and in [Denial].
type Reason string

// Reasons for denied callbacks. docs/how-it-works.md lists the order in
// which the callback checks them.
const (
	ReasonBadRequest           Reason = "bad_request"            // a callback parameter, or a logout or security event request, is repeated, oversized or malformed
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

// Revocation causes: the reason of a revoked event, of the dropped event
// the guard writes when it refuses an elevation a revocation covers, and
// of a denied callback whose login a revocation already covers.
const (
	ReasonBackChannelLogout Reason = "backchannel_logout"  // OIDC Back-Channel Logout 1.0: the IdP ended the session (sid) or the user's sessions (sub)
	ReasonRevokedByOperator Reason = "revoked_by_operator" // StepUp.RevokeSubject
	ReasonSessionRevoked    Reason = "session_revoked"     // CAEP session-revoked
	ReasonCredentialChange  Reason = "credential_change"   // CAEP credential-change
	ReasonAssuranceLowered  Reason = "assurance_lowered"   // CAEP assurance-level-change with change_direction decrease
)

// Reasons for rejected logout tokens and security events (the reason of a
// signal_rejected event), besides [ReasonBadRequest].
const (
	ReasonInvalidSignal Reason = "invalid_token"  // signature, iss, aud, exp, events, nonce, typ or a claim is wrong
	ReasonReplayedToken Reason = "replayed_token" // a token with this jti was already processed
	ReasonStaleToken    Reason = "stale_token"    // iat is more than ClockSkew in the future, or older than five minutes
)

// Reasons of a signal_ignored event: a valid security event that ends
// nothing here (and [ReasonReplayedToken], a push the transmitter retried).
const (
	ReasonUnsupportedEvent   Reason = "unsupported_event"   // an event type the receiver does not act on
	ReasonUnsupportedSubject Reason = "unsupported_subject" // a subject format or issuer that names no user of this application
	ReasonAssuranceRaised    Reason = "assurance_raised"    // an assurance-level-change with change_direction increase
)

// Reasons of device binding (DBSC): why a registration or a refresh was
// refused, or a bound elevation not honoured (a device_refused event), and
// why a DBSC session was ended (device_ended, besides the revocation
// causes).
const (
	ReasonDeviceNotBound         Reason = "device_not_bound"              // the scope requires device binding, and this browser did not bind the elevation
	ReasonBoundCookieMissing     Reason = "bound_cookie_missing"          // a bound elevation came without its bound cookie: challenged, not dropped
	ReasonBoundCookieInvalid     Reason = "bound_cookie_invalid"          // a bound elevation came with an expired or forged bound cookie: challenged, not dropped
	ReasonDeviceProofInvalid     Reason = "device_proof_invalid"          // the dbsc+jwt is malformed, oversized, of another type or algorithm, its key weak or not its signer
	ReasonDeviceChallengeUnknown Reason = "device_challenge_unknown"      // the proof answers no live challenge: replayed, expired, or the session is registered already
	ReasonDeviceSessionUnknown   Reason = "device_session_unknown"        // no DBSC session has this id
	ReasonDeviceAuthorization    Reason = "device_authorization_mismatch" // the registration's authorization is not the one its challenge was issued with
	ReasonDeviceSessionMismatch  Reason = "device_session_mismatch"       // the request's session does not hold the elevation the DBSC session binds
	ReasonTooManyBindings        Reason = "too_many_bindings"             // the user has too many live bound elevations
	ReasonExpired                Reason = "expired"                       // the elevation reached its deadline
	ReasonElevationGone          Reason = "elevation_gone"                // the session no longer holds the elevation (dropped, replaced, logged out)
)

// Reasons of step-up for one action ([StepUp.RequireStepUpFor]).
const (
	ReasonActionInvalid   Reason = "action_invalid"                 // the request names no valid action, or a stored one does not decode
	ReasonDetailsMissing  Reason = "authorization_details_missing"  // the scope sends RFC 9396 authorization_details and the token response returned none
	ReasonDetailsMismatch Reason = "authorization_details_mismatch" // the token response's authorization_details differ from the action requested
)

// reasonDefault is what stepup answers for a reason when the application
// does not answer itself.
type reasonDefault struct {
	// status is the status of stepup's default answer: the default
	// [Config.OnDenied] and the popup page for a denied callback, the 400
	// of a rejected logout token or security event, the 202 of an ignored
	// one. 0 for a reason that has no answer of its own: the guard then
	// challenges again.
	status int
	// text explains the reason to the person whose browser sees it,
	// without internal detail. Empty for reasons no person sees.
	text string
}

// reasonDefaults holds every Reason's default answer.
var reasonDefaults = map[Reason]reasonDefault{
	ReasonBadRequest:           {http.StatusBadRequest, "The step-up response was malformed."},
	ReasonUnknownState:         {http.StatusForbidden, "This step-up response does not belong to a step-up started in this browser session. Start again."},
	ReasonIssuerMismatch:       {http.StatusForbidden, "The step-up response came from an unexpected identity provider."},
	ReasonMissingIssuer:        {http.StatusForbidden, "The step-up response did not name its identity provider."},
	ReasonIdPError:             {http.StatusForbidden, "The identity provider did not complete the step-up."},
	ReasonChallengeExpired:     {http.StatusForbidden, "The step-up took too long. Start again."},
	ReasonUnauthenticated:      {http.StatusUnauthorized, "Log in first."},
	ReasonMissingCode:          {http.StatusForbidden, "The step-up response had no authorization code."},
	ReasonTokenRefused:         {http.StatusForbidden, "The identity provider refused this step-up response. Start again."},
	ReasonTokenExchange:        {http.StatusBadGateway, "The identity provider could not be reached. Try again in a moment."},
	ReasonMissingIDToken:       {http.StatusForbidden, "The identity provider returned no ID token."},
	ReasonInvalidIDToken:       {http.StatusForbidden, "The identity provider's ID token was not valid."},
	ReasonNonceMismatch:        {http.StatusForbidden, "The ID token was not issued for this step-up."},
	ReasonAZPMismatch:          {http.StatusForbidden, "The ID token was issued to another application."},
	ReasonInvalidIAT:           {http.StatusForbidden, "The ID token's issue time is not valid."},
	ReasonInvalidClaims:        {http.StatusForbidden, "The ID token's claims are malformed."},
	ReasonACRNotSatisfied:      {http.StatusForbidden, "The login was not strong enough for this action."},
	ReasonMissingAuthTime:      {http.StatusForbidden, "The identity provider did not say when you logged in."},
	ReasonInvalidAuthTime:      {http.StatusForbidden, "The identity provider's login time is malformed."},
	ReasonStaleAuthTime:        {http.StatusForbidden, "The identity provider did not ask you to log in again."},
	ReasonAuthTimeInFuture:     {http.StatusForbidden, "The identity provider's login time is in the future."},
	ReasonSubjectMismatch:      {http.StatusForbidden, "You stepped up as a different user than the one logged in."},
	ReasonInvalidSessionExpiry: {http.StatusForbidden, "The identity provider's session expiry is malformed."},
	ReasonCeilingInPast:        {http.StatusForbidden, "The identity provider's session has already ended. Log in to the identity provider again."},
	// A full page's session failure goes to Config.OnError; only the popup
	// page answers it with this.
	ReasonSessionError: {http.StatusInternalServerError, "Your session could not be saved."},

	ReasonDropped:        {0, ""},
	ReasonDropUnrevoked:  {0, ""},
	ReasonRevoked:        {http.StatusForbidden, "This step-up was ended. Start again."},
	ReasonSubjectChanged: {0, ""},
	ReasonOtherIssuer:    {0, ""},
	ReasonCorrupt:        {0, ""},

	// A revocation that already covers the login denies its callback.
	ReasonBackChannelLogout: {http.StatusForbidden, "You were signed out at the identity provider. Log in again."},
	ReasonRevokedByOperator: {http.StatusForbidden, "An administrator ended your elevated access. Step up again later."},
	ReasonSessionRevoked:    {http.StatusForbidden, "Your identity provider session was ended. Log in again."},
	ReasonCredentialChange:  {http.StatusForbidden, "Your credentials changed at the identity provider. Step up again."},
	ReasonAssuranceLowered:  {http.StatusForbidden, "The identity provider lowered your assurance level. Step up again."},

	// Back-Channel Logout §2.8 and RFC 8935 §2.3 answer a refused token
	// with a 400 and an error object for the sender, not a person.
	ReasonInvalidSignal: {http.StatusBadRequest, ""},
	ReasonReplayedToken: {http.StatusBadRequest, ""},
	ReasonStaleToken:    {http.StatusBadRequest, ""},

	// Device binding. The registration and refresh endpoints answer the
	// browser, which acts on the status (401 deletes its DBSC session);
	// only device_not_bound is a page a person sees.
	ReasonDeviceNotBound:         {http.StatusForbidden, "This action needs a browser that binds your elevated access to this device (Device Bound Session Credentials), and this browser did not. Use a browser that supports it, such as Chrome 146 or later on Windows."},
	ReasonBoundCookieMissing:     {0, ""},
	ReasonBoundCookieInvalid:     {0, ""},
	ReasonDeviceProofInvalid:     {http.StatusUnauthorized, "Bad proof of possession."},
	ReasonDeviceChallengeUnknown: {http.StatusBadRequest, "Unknown or used challenge."},
	ReasonDeviceSessionUnknown:   {http.StatusUnauthorized, "Unknown session."},
	ReasonDeviceAuthorization:    {http.StatusBadRequest, "Wrong authorization."},
	ReasonDeviceSessionMismatch:  {http.StatusBadRequest, "This session does not hold that elevation."},
	ReasonTooManyBindings:        {http.StatusBadRequest, "Too many bound elevations."},
	ReasonExpired:                {0, ""},
	ReasonElevationGone:          {0, ""},

	ReasonActionInvalid:   {http.StatusBadRequest, "This request does not name an action that can be approved."},
	ReasonDetailsMissing:  {http.StatusForbidden, "The identity provider did not say which action you approved. Try again."},
	ReasonDetailsMismatch: {http.StatusForbidden, "The identity provider approved a different action than the one requested."},

	// RFC 8935 §2.2: a valid SET is acknowledged whatever it leads to.
	ReasonUnsupportedEvent:   {http.StatusAccepted, ""},
	ReasonUnsupportedSubject: {http.StatusAccepted, ""},
	ReasonAssuranceRaised:    {http.StatusAccepted, ""},
}

// text is the text of stepup's default answer for r.
func (r Reason) text() string {
	if t := reasonDefaults[r].text; t != "" {
		return t
	}
	return string(r)
}

// status is the status of stepup's default answer for r; 403 for a reason
// it does not know.
func (r Reason) status() int {
	if d, ok := reasonDefaults[r]; ok && d.status != 0 {
		return d.status
	}
	return http.StatusForbidden
}

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

// Text returns a short explanation of d for the user. It holds nothing the
// IdP or the request supplied.
func (d *Denial) Text() string {
	if t := reasonDefaults[d.Reason].text; t != "" {
		return t
	}
	return "Step-up authentication failed."
}

// Status returns the HTTP status of the default answer to d: 400 for a
// malformed callback, 401 when nobody is logged in, 500 when the session
// could not be saved, 502 when the token endpoint could not answer, and
// 403 for every other refusal. An [Config.OnDenied] of the application's
// own can answer with it.
func (d *Denial) Status() int { return d.Reason.status() }
