package stepup

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file holds the Shared Signals receiver: RFC 8935 push delivery of
// RFC 8417 Security Event Tokens, profiled by the OpenID Shared Signals
// Framework 1.0 (SSF), carrying Continuous Access Evaluation Profile 1.0
// (CAEP) events.

// The CAEP event-type URIs the receiver acts on (CAEP 1.0 §3): the keys
// of a Security Event Token's events claim, not audit [EventType] values.
const (
	CAEPSessionRevoked       = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	CAEPCredentialChange     = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	CAEPAssuranceLevelChange = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
)

// SharedSignals configures [StepUp.SecurityEventHandler], the receiver of a
// Shared Signals transmitter's push stream.
type SharedSignals struct {
	// Issuer is the transmitter's issuer. New fetches its configuration
	// metadata (SSF 1.0 §7.2: /.well-known/ssf-configuration, inserted after
	// the host as in RFC 8414) and its jwks_uri. Every SET's iss must equal
	// it (SSF 1.0 §4.1.6). Required.
	Issuer string
	// Audience is the receiver's identifier in the stream: every SET's aud
	// must contain it (RFC 8417 §2.2). Required.
	Audience string
	// Authorization, when set, is the exact Authorization header value
	// every push must carry, for example "Bearer <secret>" as configured in
	// the stream's delivery (RFC 8935 §2.1). A push without it gets 401
	// authentication_failed. Default: "", not required; the SET's signature
	// is what authenticates it.
	Authorization string
}

// signals is a SharedSignals with its keys.
type signals struct {
	cfg  SharedSignals
	keys *keySet // fetched again only for an unknown kid (keys.go)
}

// Limits on pushed SETs. An honest SET is about a kilobyte.
const maxSETBody = 64 << 10

// ssfConfigurationURL is where the transmitter configuration metadata of
// issuer lives (SSF 1.0 §7.2): the well-known path is inserted between the
// host and the issuer's path.
func ssfConfigurationURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("not an absolute URL without query or fragment")
	}
	u.Path = "/.well-known/ssf-configuration" + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// discoverSignals fetches the transmitter's configuration metadata and
// prepares its key set.
func (c *Config) discoverSignals(keys func(url string) *keySet) (*signals, error) {
	ss := c.SharedSignals
	bad := func(field, problem string, err error) error {
		return &ConfigError{Field: "SharedSignals." + field, Problem: problem, Err: err}
	}
	if ss.Audience == "" || !storable(ss.Audience) {
		return nil, bad("Audience", "required", nil)
	}
	if ss.Authorization != "" && !Printable(ss.Authorization) {
		return nil, bad("Authorization", "must be printable", nil)
	}
	metaURL, err := ssfConfigurationURL(ss.Issuer)
	if err != nil {
		return nil, bad("Issuer", "must be the transmitter's issuer URL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metaURL, nil)
	if err != nil {
		return nil, bad("Issuer", "bad URL", err)
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return nil, bad("Issuer", "fetching the SSF configuration failed", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, bad("Issuer", fmt.Sprintf("the SSF configuration answered %d", resp.StatusCode), nil)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
		return nil, bad("Issuer", "the SSF configuration is not JSON", err)
	}
	if meta.Issuer != ss.Issuer {
		return nil, bad("Issuer", fmt.Sprintf("does not match the transmitter's issuer %q", meta.Issuer), nil)
	}
	if u, err := url.Parse(meta.JWKSURI); err != nil || !u.IsAbs() || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return nil, bad("Issuer", "the SSF configuration names no usable jwks_uri (https, or http on loopback)", err)
	}
	return &signals{cfg: *ss, keys: keys(meta.JWKSURI)}, nil
}

// SecurityEventHandler receives a Shared Signals transmitter's pushed
// Security Event Tokens (RFC 8935; SSF 1.0, CAEP 1.0). Mount it at the
// push endpoint registered in the stream, without the session middleware,
// CSRF protection or a login requirement. It answers 404 when
// [Config.SharedSignals] is not set.
//
// A push is a POST of application/secevent+jwt. The SET must be signed by
// a key from the transmitter's jwks_uri (never alg none or a shared
// secret), typed secevent+jwt, with iss the transmitter's issuer, aud
// holding [SharedSignals.Audience], an iat at most ClockSkew in the future
// and at most five minutes old, a jti not seen before on any replica, no
// exp and no sub (SSF 1.0 §4.1), and one event.
//
// The subject is the top-level sub_id (SSF 1.0 §3.1): iss_sub with iss
// this application's OIDC issuer (a user), or complex with such a user
// and/or a session {"format":"opaque","id":<the ID token's sid>}. The
// events acted on, each ordered by its event_timestamp (or iat) against
// the elevations' auth_time:
//
//   - session-revoked: the elevations from that IdP session when the
//     subject names one, else every elevation of the user;
//   - credential-change: every elevation of the user;
//   - assurance-level-change: every elevation of the user, unless
//     change_direction is increase (an absent direction is treated as a
//     decrease: ending an elevation is the safe side).
//
// Other events and other subject formats are accepted (202) and audited as
// signal_ignored. A bad SET gets the RFC 8935 §2.4 error JSON and a
// signal_rejected event; a store failure a 503 (the transmitter retries)
// and revocation_failed.
func (s *StepUp) SecurityEventHandler() http.Handler {
	return http.HandlerFunc(s.securityEvent)
}

// setError answers a refused push (RFC 8935 §2.3, with the error codes
// of §2.4).
func setError(w http.ResponseWriter, status int, code, description string) {
	body, _ := json.Marshal(struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}{code, description})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// setRejection is why a SET was refused: the RFC 8935 §2.4 error code, the
// audit reason, and fixed text for the transmitter.
type setRejection struct {
	code        string
	reason      Reason
	description string
}

func (e *setRejection) Error() string { return "stepup: SET refused: " + e.description }

func reject(code string, reason Reason, description string) error {
	return &setRejection{code: code, reason: reason, description: description}
}

func (s *StepUp) securityEvent(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.signals == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	ss := s.signals
	if want := ss.cfg.Authorization; want != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		s.audit(r, Event{Type: EventSignalRejected, Reason: ReasonInvalidSignal, Issuer: ss.cfg.Issuer})
		w.Header().Set("WWW-Authenticate", "Bearer")
		setError(w, http.StatusUnauthorized, "authentication_failed", "the push is not authorized")
		return
	}
	set, err := s.readSET(w, r)
	if err != nil {
		s.rejectSET(w, r, set, err)
		return
	}
	e := Event{Type: EventSignalIgnored, Reason: set.ignore, Issuer: ss.cfg.Issuer, TokenID: set.jti, Subject: set.subject, SID: set.sid}
	if set.ignore == "" {
		err = s.processOnce(r.Context(), recordKey('J', ss.cfg.Issuer, set.jti), set.iat, func() (err error) {
			e.Subject, err = s.revokeIdP(r.Context(), set.subject, set.sid, set.at, set.cause)
			return err
		})
		switch {
		case errors.Is(err, errReplayed):
			// A transmitter retries a push whose 202 it did not see
			// (RFC 8935 §2.2): answer it as delivered, do nothing again.
			e.Subject, e.Reason = set.subject, ReasonReplayedToken
		case err != nil:
			s.setRevocationFailed(w, r, set.cause, e)
			return
		default:
			e.Type, e.Reason = EventRevoked, set.cause
		}
	}
	s.audit(r, e)
	w.WriteHeader(http.StatusAccepted)
}

// rejectSET answers a push whose SET was refused: the RFC 8935 §2.4
// error and a signal_rejected event naming what could be read of it.
func (s *StepUp) rejectSET(w http.ResponseWriter, r *http.Request, set *securityEventToken, err error) {
	var rj *setRejection
	if !errors.As(err, &rj) {
		rj = &setRejection{code: "invalid_request", reason: ReasonInvalidSignal, description: "the security event is not valid"}
	}
	e := Event{Type: EventSignalRejected, Reason: rj.reason, Issuer: s.signals.cfg.Issuer}
	if set != nil {
		e.TokenID = set.jti
	}
	s.audit(r, e)
	setError(w, rj.reason.status(), rj.code, rj.description)
}

// setRevocationFailed answers a valid SET whose revocation could not be
// recorded: 503, so that the transmitter retries (RFC 8935 §2.3 leaves
// server errors to HTTP), and a revocation_failed event.
func (s *StepUp) setRevocationFailed(w http.ResponseWriter, r *http.Request, cause Reason, e Event) {
	e.Type, e.Reason = EventRevocationFailed, cause
	s.audit(r, e)
	w.Header().Set("Retry-After", "5")
	http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
}

// securityEventToken is what the receiver takes from a verified SET.
type securityEventToken struct {
	jti     string
	iat     int64
	subject string // the user, when the subject names one
	sid     string // the IdP session, when the subject names one
	at      int64  // the event's instant: event_timestamp, else iat
	cause   Reason // what the event revokes
	ignore  Reason // why the event ends nothing, when it does not
	subID   json.RawMessage
}

// readSET reads and verifies one pushed SET in four steps: read the
// body, verify its type and signature, check its claims, classify its
// event. On a failure it returns what it could read, for the audit event.
func (s *StepUp) readSET(w http.ResponseWriter, r *http.Request) (*securityEventToken, error) {
	raw, err := readSETBody(w, r)
	if err != nil {
		return nil, err
	}
	payload, err := s.signals.verifySET(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	set, ev, err := checkSETClaims(payload, s.signals.cfg, s.now().Unix(), s.skew)
	if err != nil {
		return set, err
	}
	classifySET(set, ev, s.cfg.Issuer)
	return set, nil
}

// readSETBody reads a push's body: one application/secevent+jwt
// (RFC 8935 §2), within maxSETBody.
func readSETBody(w http.ResponseWriter, r *http.Request) (string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/secevent+jwt" {
		return "", reject("invalid_request", ReasonBadRequest, "expected application/secevent+jwt")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSETBody))
	if err != nil {
		return "", reject("invalid_request", ReasonBadRequest, "the body is too large")
	}
	return string(bytes.TrimSpace(body)), nil
}

// verifySET checks the SET's typ header (RFC 8417 §2.3, against
// confusion with other JWTs) and its signature by a key of the
// transmitter's jwks_uri, and returns its payload.
func (ss *signals) verifySET(ctx context.Context, raw string) ([]byte, error) {
	if err := checkJWTType(raw, "secevent+jwt", false); err != nil {
		return nil, reject("invalid_request", ReasonInvalidSignal, "the SET must be typed secevent+jwt")
	}
	payload, err := ss.keys.VerifySignature(ctx, raw)
	if err != nil {
		return nil, reject("invalid_key", ReasonInvalidSignal, "the signature does not verify with the transmitter's keys")
	}
	return payload, nil
}

// setEvent is the one event of a SET.
type setEvent struct {
	typ             string  // the event-type URI
	changeDirection *string // assurance-level-change's change_direction
}

// checkSETClaims applies the SET rules to a verified payload (RFC 8417
// §2.2, SSF 1.0 §4.1, RFC 8935 §2.4 for the error codes): the issuer and
// audience of cfg, a usable jti, neither sub nor exp, a fresh iat, and one
// event that is a JSON object with an event_timestamp, when present, not
// after iat. now and skew are Unix seconds. It is pure.
func checkSETClaims(payload []byte, cfg SharedSignals, now, skew int64) (*securityEventToken, setEvent, error) {
	var c struct {
		Issuer   string                     `json:"iss"`
		Audience json.RawMessage            `json:"aud"`
		IssuedAt json.RawMessage            `json:"iat"`
		JTI      string                     `json:"jti"`
		Sub      json.RawMessage            `json:"sub"`
		Exp      json.RawMessage            `json:"exp"`
		SubID    json.RawMessage            `json:"sub_id"`
		Events   map[string]json.RawMessage `json:"events"`
	}
	invalid := func(description string) error { return reject("invalid_request", ReasonInvalidSignal, description) }
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, setEvent{}, invalid("the SET's claims are not a JSON object")
	}
	set := &securityEventToken{jti: c.JTI, subID: c.SubID}
	switch {
	case c.Issuer != cfg.Issuer:
		return set, setEvent{}, reject("invalid_issuer", ReasonInvalidSignal, "the SET is from another issuer")
	case !audienceContains(c.Audience, cfg.Audience):
		return set, setEvent{}, reject("invalid_audience", ReasonInvalidSignal, "the SET is for another audience")
	case c.JTI == "" || len(c.JTI) > 256 || !storable(c.JTI):
		return nil, setEvent{}, invalid("the SET has no usable jti")
	case !isNull(c.Sub) || !isNull(c.Exp):
		// SSF 1.0 §4.1.3, §4.1.5: against confusion with other JWTs.
		return set, setEvent{}, invalid("a SET has neither sub nor exp")
	}
	iat, present, err := parseUnixSeconds(c.IssuedAt)
	if err != nil || !present {
		return set, setEvent{}, invalid("the SET has no usable iat")
	}
	if !signalFresh(iat, now, skew) {
		return set, setEvent{}, reject("invalid_request", ReasonStaleToken, "the SET was issued too far from now")
	}
	set.iat, set.at = iat, iat
	// SSF 1.0 §4.2.1: one event (alternative URIs for one type aside,
	// which the CAEP types here do not have).
	if len(c.Events) != 1 {
		return set, setEvent{}, invalid("a SET carries exactly one event")
	}
	var ev setEvent
	var raw json.RawMessage
	for ev.typ, raw = range c.Events {
	}
	var body struct {
		EventTimestamp  json.RawMessage `json:"event_timestamp"`
		ChangeDirection *string         `json:"change_direction"`
	}
	if !isJSONObject(raw) || json.Unmarshal(raw, &body) != nil {
		return set, setEvent{}, invalid("the event is not a JSON object")
	}
	ev.changeDirection = body.ChangeDirection
	ts, present, err := parseUnixSeconds(body.EventTimestamp)
	switch {
	case err != nil:
		return set, setEvent{}, invalid("event_timestamp is not whole Unix seconds")
	case present && ts > iat+skew:
		// An event cannot happen after the SET that reports it was issued:
		// a later event_timestamp would end logins that follow it.
		return set, setEvent{}, invalid("event_timestamp is after the SET's iat")
	case present:
		set.at = ts
	}
	return set, ev, nil
}

// classifySET decides what a valid SET does: the revocation cause of its
// event and the user or session it names (a sub_id of issuer's users), or
// why it ends nothing here. It is pure.
func classifySET(set *securityEventToken, ev setEvent, issuer string) {
	switch ev.typ {
	case CAEPSessionRevoked:
		set.cause = ReasonSessionRevoked
	case CAEPCredentialChange:
		set.cause = ReasonCredentialChange
	case CAEPAssuranceLevelChange:
		set.cause = ReasonAssuranceLowered
		if ev.changeDirection != nil && *ev.changeDirection == "increase" {
			set.ignore = ReasonAssuranceRaised
			return
		}
	default:
		set.ignore = ReasonUnsupportedEvent
		return
	}
	if !readSubject(set, set.subID, issuer) {
		set.ignore = ReasonUnsupportedSubject
		return
	}
	// Only session-revoked is about one session; the others end every
	// elevation of the user even when a session is named.
	if set.cause != ReasonSessionRevoked && set.subject != "" {
		set.sid = ""
	}
	if set.subject == "" && set.cause != ReasonSessionRevoked {
		set.ignore = ReasonUnsupportedSubject
	}
}

// readSubject reads the SET's sub_id (SSF 1.0 §3, RFC 9493): an iss_sub
// user of issuer, this application's OIDC issuer, or a complex subject with
// such a user and/or an opaque session. It reports false for any other
// subject.
func readSubject(set *securityEventToken, raw json.RawMessage, issuer string) bool {
	var id struct {
		Format  string          `json:"format"`
		Iss     string          `json:"iss"`
		Sub     string          `json:"sub"`
		User    json.RawMessage `json:"user"`
		Session json.RawMessage `json:"session"`
	}
	if json.Unmarshal(raw, &id) != nil {
		return false
	}
	user := func(raw json.RawMessage) bool {
		var u struct{ Format, Iss, Sub string }
		if json.Unmarshal(raw, &u) != nil || u.Format != "iss_sub" || u.Iss != issuer || u.Sub == "" || !storable(u.Sub) {
			return false
		}
		set.subject = u.Sub
		return true
	}
	switch id.Format {
	case "iss_sub":
		return user(raw)
	case "complex":
		if !isNull(id.User) && !user(id.User) {
			return false
		}
		if !isNull(id.Session) {
			var sess struct {
				Format string `json:"format"`
				ID     string `json:"id"`
			}
			if json.Unmarshal(id.Session, &sess) != nil || sess.Format != "opaque" || sess.ID == "" || !storable(sess.ID) {
				return false
			}
			set.sid = sess.ID
		}
		return set.subject != "" || set.sid != ""
	}
	return false
}

// audienceContains reports whether a JWT aud claim, a string or an array
// of strings (RFC 7519 §4.1.3), contains want.
func audienceContains(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil {
		return false
	}
	for _, a := range many {
		if a == want {
			return true
		}
	}
	return false
}
