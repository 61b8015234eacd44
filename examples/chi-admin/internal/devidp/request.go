package devidp

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// wantsStrong reports whether r asks for [StrongACR]: in acr_values (OIDC
// Core §3.1.2.1), or as an essential acr claim of the ID token in the claims
// parameter (OIDC Core §5.5.1.1), with "value" or "values". Anything else,
// including acr values this IdP does not know, gets [BasicACR]; the RP checks
// the acr it receives. A claims parameter that is not valid JSON is ignored.
func wantsStrong(r stepuptest.AuthRequest) bool {
	if slices.Contains(r.ACRValues, StrongACR) {
		return true
	}
	if r.Claims == "" {
		return false
	}
	var claims struct {
		IDToken struct {
			ACR *struct {
				Essential bool     `json:"essential"`
				Value     string   `json:"value"`
				Values    []string `json:"values"`
			} `json:"acr"`
		} `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(r.Claims), &claims); err != nil {
		return false
	}
	acr := claims.IDToken.ACR
	return acr != nil && acr.Essential && (acr.Value == StrongACR || slices.Contains(acr.Values, StrongACR))
}

// canSSO decides whether request r may be answered from the IdP session s at
// now without showing a page. It fails closed: no session, or any doubt,
// means the login form.
func canSSO(s *session, r stepuptest.AuthRequest, now time.Time) bool {
	switch {
	case s == nil:
		return false
	case slices.Contains(r.Prompt, "login"):
		// OIDC Core §3.1.2.1: the OP SHOULD prompt for reauthentication.
		return false
	case r.MaxAge != nil && !withinMaxAge(s.authTime, *r.MaxAge, now):
		return false
	case r.LoginHint != "" && r.LoginHint != s.user.Subject:
		// The RP wants someone else, or names an unknown user.
		return false
	case wantsStrong(r) && s.acr != StrongACR:
		return false
	case r.AuthorizationDetails != "":
		// RFC 9396: the user approves what the details describe, on a page
		// that shows them; a session alone approves nothing.
		return false
	}
	return true
}

// withinMaxAge reports whether an authentication at authTime is recent
// enough for max_age at now, in whole Unix seconds as auth_time is. OIDC
// Core §3.1.2.1: past max_age the OP MUST actively re-authenticate, and
// max_age=0 is equivalent to prompt=login.
func withinMaxAge(authTime time.Time, maxAge uint, now time.Time) bool {
	if maxAge == 0 {
		return false
	}
	elapsed := max(now.Unix()-authTime.Unix(), 0) // a clock set back counts as no time
	return uint64(elapsed) <= uint64(maxAge)
}

// loginFor is what the provider asserts for a login from session s in
// answer to req: auth_time is the session's latest authentication, not
// now; the token response returns the authorization details the pages
// showed (RFC 9396 §7). Details that do not parse, which begin refused
// before any page, fail closed: the RP gets invalid_authorization_details
// (§5) and no code.
func (i *IdP) loginFor(s *session, req stepuptest.AuthRequest) stepuptest.Login {
	details, err := parseDetails(req.AuthorizationDetails)
	if err != nil {
		return detailsRefused
	}
	l := stepuptest.Login{
		Subject:         s.user.Subject,
		ACR:             s.acr,
		AMR:             slices.Clone(s.amr),
		AuthTime:        s.authTime,
		IDTokenLifetime: i.cfg.IDTokenTTL,
		// The provider names the session in the ID token's sid claim and
		// in the logout tokens of Provider.LogOut ("Sign out everywhere").
		SessionID: s.sid,
	}
	if i.cfg.SessionExpiry > 0 {
		l.SessionExpiry = s.loginTime.Add(i.cfg.SessionExpiry)
	}
	if details != nil {
		l.AuthorizationDetails = details.tokenResponse()
	}
	return l
}
