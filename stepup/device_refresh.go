package stepup

import (
	"encoding/json"
	"errors"
	"net/http"
)

// DeviceRefreshHandler returns the DBSC refresh endpoint, to mount at
// [Config.DeviceRefreshPath] (POST) behind the SessionManager's LoadAndSave.
// The browser calls it, holding a request in the session's scope, when the
// bound cookie is missing or expired:
//
//   - without a proof, it answers 403 with a fresh single-use challenge
//     (Secure-Session-Challenge);
//   - with a proof (Secure-Session-Response), it checks it with the key
//     stored at registration and consumes the challenge, then applies the
//     guard's rules to the elevation: its deadline, the revocations of its
//     user (back-channel logout, Shared Signals, RevokeSubject, Drop), its
//     binding, and that the request's session still holds it. While the
//     elevation is honoured it sets a new bound cookie and sends the next
//     challenge ahead; once it has ended it answers
//     {"session_identifier": ..., "continue": false}, which ends the DBSC
//     session in the browser, audited device_ended.
//
// An unknown session id answers 401 (the browser deletes the session), a
// bad proof 401, an oversized request 400, a challenge that is unknown or
// used 403 with a new one; each audited device_refused, and nothing is
// stored. A challenge sent ahead that expired gets a new one, unaudited.
// A store failure, or a handler mounted without LoadAndSave, answers
// through [Config.OnError] (500), which chromium treats as "try later". It
// works on every replica that shares the session store.
func (s *StepUp) DeviceRefreshHandler() http.Handler {
	return http.HandlerFunc(s.refresh)
}

func (s *StepUp) refresh(w http.ResponseWriter, r *http.Request) {
	e, refuse, ok := s.deviceRequest(w, r)
	if !ok {
		return
	}
	id := r.Header.Get("Sec-Secure-Session-Id")
	if !validToken(id) {
		refuse(ReasonDeviceSessionUnknown)
		return
	}
	key := s.deviceSessionKey(id)
	cur, found, err := s.findRecord(r.Context(), key)
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	if !found {
		refuse(ReasonDeviceSessionUnknown)
		return
	}
	ds, err := decodeDeviceSession(cur)
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	e.Scope, e.Subject, e.Elevation, e.KeyThumbprint = ds.scope, ds.subject, ds.elevation, ds.jkt
	p := s.policies[ds.scope]
	if p == nil || ds.jwk == "" {
		refuse(ReasonDeviceSessionUnknown) // a scope no longer configured, or never registered
		return
	}
	// The session is read last, but a handler without LoadAndSave must fail
	// before it uses up a challenge.
	if _, err := s.get(r.Context(), p.key); err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	proof := r.Header.Get("Secure-Session-Response")
	if proof == "" {
		s.refreshChallenge(w, r, *e, key, id)
		return
	}
	claims, err := verifyRefresh(proof, ds)
	if errors.Is(err, ErrCorruptRecord) {
		s.deviceError(w, r, *e, err)
		return
	}
	if err != nil {
		refuse(ReasonDeviceProofInvalid)
		return
	}
	now := s.now().Unix()
	var next string
	expired := false
	err = s.updateRecord(r.Context(), key, asWritten, func(cur string) (string, int64, error) {
		d, err := decodeDeviceSession(cur)
		if err != nil {
			return "", 0, err
		}
		var taken bool
		if taken, expired = d.takeChallenge(claims.JTI, now); d.jkt != ds.jkt || !taken {
			return "", 0, errChallengeTaken
		}
		next = d.addChallenge(id, now, s.challengeTTL())
		return encodeDeviceSession(d), d.until, nil
	})
	if errors.Is(err, errChallengeTaken) {
		// A challenge sent ahead that expired while the browser had no
		// need to refresh is the normal course; a used or unknown one is
		// a replay, audited.
		if !expired {
			e.Reason = ReasonDeviceChallengeUnknown
			s.audit(r, *e)
		}
		s.refreshChallenge(w, r, *e, key, id)
		return
	}
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	b, cause, err := s.stillBound(r, p, ds, now)
	if err != nil {
		s.deviceError(w, r, *e, err)
		return
	}
	if cause != "" {
		s.endDeviceSession(w, r, *e, id, cause)
		return
	}
	s.setBoundCookie(w, b, ds.scope, now)
	w.Header().Set("Secure-Session-Challenge", `"`+next+`";id="`+id+`"`)
	s.writeSessionConfig(w, id, p, ds.elevation)
}

// refreshChallenge answers 403 with a new challenge for session id, or 500
// when it cannot be stored.
func (s *StepUp) refreshChallenge(w http.ResponseWriter, r *http.Request, e Event, key, id string) {
	var c string
	err := s.updateRecord(r.Context(), key, asWritten, func(cur string) (string, int64, error) {
		d, err := decodeDeviceSession(cur)
		if err != nil {
			return "", 0, err
		}
		c = d.addChallenge(id, s.now().Unix(), s.challengeTTL())
		return encodeDeviceSession(d), d.until, nil
	})
	if err != nil {
		s.deviceError(w, r, e, err)
		return
	}
	w.Header().Set("Secure-Session-Challenge", `"`+c+`";id="`+id+`"`)
	w.WriteHeader(http.StatusForbidden)
}

// stillBound applies the guard's rules to the elevation of a DBSC session:
// it returns its binding when the elevation is still honoured, or why not.
func (s *StepUp) stillBound(r *http.Request, p *policy, ds *deviceSession, now int64) (deviceBinding, Reason, error) {
	h := ds.head()
	if !fresh(now, s.skew, h.deadline) {
		return deviceBinding{}, ReasonExpired, nil
	}
	rv, cause, covered, err := s.revokedBy(r.Context(), h)
	if err != nil {
		return deviceBinding{}, "", err
	}
	if covered {
		return deviceBinding{}, cause, nil
	}
	b, ok := rv.binding(ds.elevation)
	if !ok || b.jkt != ds.jkt {
		return deviceBinding{}, ReasonElevationGone, nil
	}
	if reason, err := s.sessionHolds(r, p, ds.elevation); err != nil {
		return deviceBinding{}, "", err
	} else if reason != "" {
		return deviceBinding{}, ReasonElevationGone, nil
	}
	return b, "", nil
}

// endDeviceSession answers a refresh whose elevation has ended: the DBSC
// session ends in the browser, and its cookie is cleared.
func (s *StepUp) endDeviceSession(w http.ResponseWriter, r *http.Request, e Event, id string, cause Reason) {
	s.clearBoundCookie(w, e.Elevation)
	body, _ := json.Marshal(struct {
		SessionIdentifier string `json:"session_identifier"`
		Continue          bool   `json:"continue"`
	}{id, false})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	e.Type, e.Reason = EventDeviceEnded, cause
	s.audit(r, e)
}
