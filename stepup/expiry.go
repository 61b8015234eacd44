package stepup

// This file holds the deadline arithmetic and nothing else: no I/O, no clock.
// Every instant is a whole number of Unix seconds, as the claims are
// (RFC 7519 §2 NumericDate), so the comparisons here are exact.

// Bound names the limit that set an elevation's deadline.
type Bound string

// The bounds an elevation's deadline can come from. When two bounds fall on
// the same second, the one listed first here is reported.
const (
	// BoundSessionExpiry is the IPSIE session_expiry claim of the ID token:
	// the instant at which the IdP says the relying party's session must end.
	BoundSessionExpiry Bound = "session_expiry"
	// BoundExp is the ID token's exp claim.
	BoundExp Bound = "exp"
	// BoundLifetime is [Scope.Lifetime] counted from the grant.
	BoundLifetime Bound = "lifetime"
	// BoundMaxAge is [Scope.MaxAge] counted from auth_time.
	BoundMaxAge Bound = "max_age"
)

// bounds holds the instants an elevation's deadline is the earliest of.
// A zero field is absent.
type bounds struct {
	exp           int64 // ID token exp; zero when the scope ignores it
	sessionExpiry int64 // IPSIE session_expiry; zero when the IdP sent none
	lifetime      int64 // granted_at + Scope.Lifetime; zero when no cap is set
	maxAge        int64 // auth_time + Scope.MaxAge; zero when MaxAge is 0
}

// deadline returns the earliest present bound and which one it was.
// ok is false when no bound is present: such an elevation would never end,
// and [New] refuses every scope that could produce one.
func (b bounds) deadline() (deadline int64, bound Bound, ok bool) {
	for _, c := range [...]struct {
		at    int64
		bound Bound
	}{
		{b.sessionExpiry, BoundSessionExpiry},
		{b.exp, BoundExp},
		{b.lifetime, BoundLifetime},
		{b.maxAge, BoundMaxAge},
	} {
		if c.at == 0 {
			continue
		}
		if !ok || c.at < deadline {
			deadline, bound, ok = c.at, c.bound, true
		}
	}
	return deadline, bound, ok
}

// fresh reports whether an elevation with this deadline is still honoured at
// now. The skew is applied on the safe side: the elevation ends skew seconds
// before its deadline, never after it. An ID-token validator may be lenient
// on exp because a token is only being accepted; a ceiling is the IdP's
// instruction to stop, and a clock that runs slow must not stretch it.
func fresh(now, skew, deadline int64) bool {
	return now+skew < deadline
}

// bornExpired reports whether an elevation would be expired by the time it is
// granted: its deadline is not beyond the later of now and the token's iat,
// plus the skew. Granting it would lock the user into a challenge loop, or
// honour a ceiling the IdP has already passed (the Auth0 SDKs' "login-time
// lockout").
func bornExpired(deadline, now, iat, skew int64) bool {
	return deadline <= max(now, iat)+skew
}
