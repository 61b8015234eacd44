package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"time"
)

// This file holds OpenID Connect Back-Channel Logout 1.0 (Final): the IdP
// POSTs a signed logout token naming an IdP session (sid), a user (sub) or
// both, and every elevation from that session, or of that user, ends.

// backChannelLogoutEvent is the events member a logout token must carry
// (Back-Channel Logout §2.4).
const backChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Limits on logout requests. An honest logout token is one or two
// kilobytes.
const (
	maxLogoutBody  = 16 << 10
	maxLogoutToken = 8 << 10
)

// Logout describes a back-channel logout stepup received and recorded. It
// is what [Config.OnLogout] receives.
type Logout struct {
	Issuer    string
	Subject   string    // the logout token's sub; empty when it named only sid
	SessionID string    // the logout token's sid; empty when it named only sub
	IssuedAt  time.Time // the token's iat, the IdP's instant of the logout
	Expiry    time.Time // the token's exp; zero when it had none (Config.StrictLogoutTokenExpiry)
	TokenID   string    // the token's jti
}

// BackChannelLogoutHandler receives OpenID Connect Back-Channel Logout 1.0
// logout tokens. Register its URL at the IdP as the client's
// backchannel_logout_uri, and mount it without the session middleware, CSRF
// protection or a login requirement: the IdP calls it directly, with no
// cookie.
//
// It accepts a POST of application/x-www-form-urlencoded holding one
// logout_token (§2.5), and validates it (§2.6): go-oidc checks the
// signature (never alg none; the IdP's keys are fetched again only for an
// unknown kid, at most every 30 s), iss and aud; stepup checks the typ
// header when present (logout+jwt, or JWT as Ory Hydra and Keycloak before
// 25 send), sub and/or sid, jti, the events member and its logout member
// being JSON objects, the absence of nonce, iat at most ClockSkew in the
// future and at most five minutes old, exp when present not past, and that
// no token with the same jti was processed before, on any replica. A token
// without exp is accepted unless [Config.StrictLogoutTokenExpiry] is set:
// its fresh iat bounds it instead, and its events carry NoExp.
//
// A valid token ends, on every replica sharing the session store, every
// elevation from the IdP session it names (sid), or, when it names only
// sub, every elevation of that user whose login was not after the token's
// iat. It is audited as a revoked event, then [Config.OnLogout] runs, and
// the answer is 200 with Cache-Control: no-store (§2.8). A bad token gets
// 400 with an OAuth error JSON body and a signal_rejected event. A token
// that could not be recorded (a store failure) gets 400 as well, because
// the logout failed, and a revocation_failed event an operator should
// alert on: IdPs do not retry.
func (s *StepUp) BackChannelLogoutHandler() http.Handler {
	return http.HandlerFunc(s.backChannelLogout)
}

func (s *StepUp) backChannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	reject := func(reason Reason, e Event, description string) {
		e.Type, e.Reason, e.Issuer = EventSignalRejected, reason, s.cfg.Issuer
		s.audit(r, e)
		logoutError(w, "invalid_request", description)
	}
	raw, ok := readLogoutToken(w, r)
	if !ok {
		reject(ReasonBadRequest, Event{}, "expected one logout_token in an application/x-www-form-urlencoded POST")
		return
	}
	ctx := r.Context()
	lt, err := s.verifyLogoutToken(ctx, raw)
	if err != nil {
		e := Event{}
		if lt != nil {
			e.Subject, e.SID, e.TokenID = lt.Subject, lt.SessionID, lt.TokenID
		}
		reason := ReasonInvalidSignal
		if errors.Is(err, errStaleSignal) {
			reason = ReasonStaleToken
		}
		reject(reason, e, "the logout token is not valid")
		return
	}
	e := Event{Subject: lt.Subject, SID: lt.SessionID, TokenID: lt.TokenID, NoExp: lt.Expiry.IsZero()}
	var sub string
	err = s.processOnce(ctx, s.tokenKey(lt.TokenID), lt.IssuedAt.Unix(), func() error {
		var err error
		sub, err = s.revokeIdP(ctx, lt.Subject, lt.SessionID, lt.IssuedAt.Unix(), ReasonBackChannelLogout)
		return err
	})
	switch {
	case errors.Is(err, errReplayed):
		reject(ReasonReplayedToken, e, "this logout token was already processed")
		return
	case err != nil:
		s.revocationFailed(r, ReasonBackChannelLogout, e, w)
		return
	}
	e.Type, e.Reason, e.Issuer, e.Subject = EventRevoked, ReasonBackChannelLogout, s.cfg.Issuer, sub
	s.audit(r, e)
	if s.cfg.OnLogout != nil {
		if err := s.cfg.OnLogout(ctx, *lt); err != nil {
			logoutError(w, "invalid_request", "the application could not end its session")
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// revocationFailed answers a valid revocation that could not be recorded.
func (s *StepUp) revocationFailed(r *http.Request, cause Reason, e Event, w http.ResponseWriter) {
	e.Type, e.Reason, e.Issuer = EventRevocationFailed, cause, s.cfg.Issuer
	s.audit(r, e)
	logoutError(w, "temporarily_unavailable", "the logout could not be recorded")
}

// logoutError writes the 400 of Back-Channel Logout §2.8: an OAuth error
// object (RFC 6749 §5.2). The description is fixed text, never an error's.
func logoutError(w http.ResponseWriter, code, description string) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	w.Write(body)
}

// readLogoutToken reads the one logout_token of a form POST (§2.5),
// within maxLogoutBody.
func readLogoutToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		return "", false
	}
	v := r.PostForm["logout_token"]
	if len(v) != 1 || v[0] == "" || len(v[0]) > maxLogoutToken {
		return "", false
	}
	return v[0], true
}

// verifyLogoutToken validates a logout token (§2.6). logoutVerifier
// checks the signature (never alg none), iss and aud; go-oidc's
// VerifyLogout would also demand exp, which some IdPs leave out (Ory
// Hydra), so checkLogoutClaims checks the rest. On failure it may still
// return what it parsed, for the audit event; nothing of it is trusted.
func (s *StepUp) verifyLogoutToken(ctx context.Context, raw string) (*Logout, error) {
	if err := checkJWTType(raw, "logout+jwt", true); err != nil {
		return nil, err
	}
	tok, err := s.logoutVerifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	var c logoutClaims
	if err := tok.Claims(&c); err != nil {
		return nil, err
	}
	return checkLogoutClaims(tok.Issuer, c, s.now().Unix(), s.skew, s.cfg.StrictLogoutTokenExpiry)
}

// logoutClaims are the claims of a logout token whose signature, iss and
// aud verified.
type logoutClaims struct {
	Subject  string                     `json:"sub"`
	SID      string                     `json:"sid"`
	JTI      string                     `json:"jti"`
	IssuedAt json.RawMessage            `json:"iat"`
	Expiry   json.RawMessage            `json:"exp"`
	Nonce    json.RawMessage            `json:"nonce"`
	Events   map[string]json.RawMessage `json:"events"`
}

// checkLogoutClaims applies Back-Channel Logout §2.4 and §2.6 to a logout
// token's claims: sub and/or sid, a jti, an events object whose logout
// member is a JSON object, no nonce (an ID token is not a logout token),
// an iat at most ClockSkew ahead and at most five minutes old, and an exp,
// when present, not past. A token without exp is accepted unless strict:
// its iat bounds its use as exp would, and bounds how long its jti is
// remembered. now and skew are Unix seconds. It is pure.
func checkLogoutClaims(issuer string, c logoutClaims, now, skew int64, strict bool) (*Logout, error) {
	if !storable(c.Subject) || !storable(c.SID) || !storable(c.JTI) || len(c.JTI) > 256 {
		return nil, errors.New("stepup: logout token claim cannot be stored")
	}
	l := &Logout{Issuer: issuer, Subject: c.Subject, SessionID: c.SID, TokenID: c.JTI}
	switch ev := c.Events[backChannelLogoutEvent]; {
	case c.Subject == "" && c.SID == "":
		return l, errors.New("stepup: logout token names neither sub nor sid")
	case c.JTI == "":
		return l, errors.New("stepup: logout token has no jti")
	case !isJSONObject(ev):
		return l, errors.New("stepup: logout event is missing or not a JSON object")
	case !isNull(c.Nonce):
		return l, errors.New("stepup: logout token has a nonce")
	}
	iat, present, err := parseUnixSeconds(c.IssuedAt)
	if err != nil || !present {
		return l, errors.New("stepup: logout token iat is missing or malformed")
	}
	l.IssuedAt = time.Unix(iat, 0)
	if !signalFresh(iat, now, skew) {
		return l, errStaleSignal
	}
	exp, present, err := parseUnixSeconds(c.Expiry)
	switch {
	case err != nil:
		return l, errors.New("stepup: logout token exp is malformed")
	case !present && strict:
		return l, errors.New("stepup: logout token has no exp (Config.StrictLogoutTokenExpiry)")
	case present && exp < now:
		return l, errors.New("stepup: logout token expired")
	case present:
		l.Expiry = time.Unix(exp, 0)
	}
	return l, nil
}
