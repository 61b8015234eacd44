package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultActionWindow is how long an approval of one action waits for its
// request when [Scope.ActionWindow] is zero.
const DefaultActionWindow = 5 * time.Minute

// maxApprovals bounds the unused approvals one session keeps; the oldest
// is evicted beyond it.
const maxApprovals = 8

// RequireStepUpFor returns middleware that lets a request through only
// with an approval of exactly the action derive reads from it, and uses
// the approval up: each approval authorizes one request. derive returns
// false when the request names no valid action; the request is then
// refused through [Config.OnDenied] (by default 400), audited denied
// action_invalid.
//
// A request without a matching approval is challenged as [RequireStepUp]
// challenges (a redirect to the IdP for a navigation, the RFC 9470 401 with
// step_up_url otherwise), with max_age=0, so that the user proves a factor
// now; when the scope sets [Scope.AuthorizationDetails], the action is
// sent to the IdP as RFC 9396 authorization_details and must come back
// unchanged in the token response. The callback stores an approval valid
// for [Scope.ActionWindow] (never past the deadline an elevation from that
// login would have), and answers with the usual 303 to return_to or the
// popup page, neither of which uses it; for a request that was not a GET,
// return_to is still its URL, so mount a GET there (the page with the
// form) for browsers that step up in the whole window. The request whose
// derived action is equal (type, identifier, the actions as a set) uses it
// up, before next runs, with an atomic update of its record in the session
// store, so that two tabs, two
// replicas or a replayed request cannot both use it; a revocation of the
// user (back-channel logout, Shared Signals, RevokeSubject) ends unused
// approvals too. Audit: challenge, granted and consumed events carry the
// action's type, actions and identifier.
//
// It panics if scope is not in [Config.Scopes].
func (s *StepUp) RequireStepUpFor(scope string, derive func(r *http.Request) (Action, bool)) func(http.Handler) http.Handler {
	p, ok := s.policies[scope]
	if !ok {
		panic(fmt.Sprintf("stepup: RequireStepUpFor(%q): scope not in Config.Scopes", scope))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.actionGuard(w, r, p, derive, next)
		})
	}
}

func (s *StepUp) actionGuard(w http.ResponseWriter, r *http.Request, p *policy, derive func(*http.Request) (Action, bool), next http.Handler) {
	_, sub, checkSub, ok := s.sessionUser(w, r, s.approvalsKey)
	if !ok {
		return
	}
	a, ok := derive(r)
	if !ok || !validAction(a) {
		s.audit(r, Event{Type: EventDenied, Scope: p.name, Subject: sub, Issuer: s.cfg.Issuer, Reason: ReasonActionInvalid})
		s.cfg.OnDenied(w, r, &Denial{Scope: p.name, Reason: ReasonActionInvalid})
		return
	}
	used, err := s.useApproval(r, p, a, sub, checkSub)
	if err != nil {
		s.cfg.OnError(w, r, fmt.Errorf("%w: %w", ErrSession, err))
		return
	}
	if used {
		next.ServeHTTP(w, r)
		return
	}
	s.challengeAction(w, r, p, sub, a)
}

// approval is an unused approval the session holds: the key of its record
// in the store, what it approves, until when.
type approval struct {
	id     string // the approval's id, as an elevation's: its record's key and its audit events' link
	digest string // the approved action's digest
	scope  string
	until  int64
}

const approvalsTag = "g1"

func encodeApprovals(list []approval) string {
	if len(list) == 0 {
		return ""
	}
	var w writer
	w.str(approvalsTag)
	for _, a := range list {
		w.b = append(w.b, listSep)
		w.b = append(w.b, a.id...)
		w.str(a.digest)
		w.str(a.scope)
		w.int(a.until)
	}
	return string(w.b)
}

func decodeApprovals(s string) ([]approval, error) {
	if s == "" {
		return nil, nil
	}
	head, rest, ok := strings.Cut(s, string(listSep))
	if head != approvalsTag || !ok {
		return nil, ErrCorruptRecord
	}
	var list []approval
	for _, item := range splitList(rest) {
		d := record{rest: item}
		a := approval{id: d.str(), digest: d.str(), scope: d.str(), until: d.int()}
		if d.end() != nil || a.id == "" || a.digest == "" || a.until <= 0 {
			return nil, ErrCorruptRecord
		}
		list = append(list, a)
	}
	return list, nil
}

// approvalRecord is an approval's record in the store, written by the
// callback and used up by the one request it authorizes.
type approvalRecord struct {
	until      int64
	digest     string
	scope      string
	subject    string
	generation int64
	sidTag     string
	authTime   int64
	used       bool
	action     string // encodeAction
}

const approvalRecordTag = "a1"

func encodeApprovalRecord(a *approvalRecord) string {
	var w writer
	w.str(approvalRecordTag)
	w.int(a.until)
	w.str(a.digest)
	w.str(a.scope)
	w.str(a.subject)
	w.int(a.generation)
	w.str(a.sidTag)
	w.int(a.authTime)
	used := ""
	if a.used {
		used = "u"
	}
	w.str(used)
	w.str(a.action)
	return string(w.b)
}

func decodeApprovalRecord(s string) (*approvalRecord, error) {
	d := record{rest: s}
	if d.str() != approvalRecordTag {
		return nil, ErrCorruptRecord
	}
	a := &approvalRecord{until: d.int(), digest: d.str(), scope: d.str(), subject: d.str(), generation: d.int(),
		sidTag: d.str(), authTime: d.int()}
	used := d.str()
	a.used = used == "u"
	a.action = d.str()
	if d.end() != nil || a.until <= 0 || a.digest == "" || (used != "" && !a.used) {
		return nil, ErrCorruptRecord
	}
	return a, nil
}

func (s *StepUp) approvalKey(id string) string { return recordKey('A', s.cfg.Issuer, id) }

var errApprovalUnusable = errors.New("stepup: approval used, expired or revoked")

// useApproval looks for an approval of a in the session and uses it up.
// It reports whether one was used; an approval found used, expired or
// revoked is removed from the session and the search goes on.
func (s *StepUp) useApproval(r *http.Request, p *policy, a Action, sub string, checkSub bool) (bool, error) {
	ctx := r.Context()
	list, err := decodeApprovals(stringValue(s.sm.Get(ctx, s.approvalsKey)))
	if err != nil {
		s.sm.Remove(ctx, s.approvalsKey)
		s.audit(r, Event{Type: EventDropped, Scope: p.name, Reason: ReasonCorrupt, Issuer: s.cfg.Issuer})
		return false, nil
	}
	now := s.now().Unix()
	digest := a.digest()
	kept := list[:0:0]
	used := false
	var usedID string
	var rec *approvalRecord
	for _, ap := range list {
		if used || ap.until <= now || ap.scope != p.name || ap.digest != digest {
			if ap.until > now {
				kept = append(kept, ap)
			}
			continue
		}
		rec, err = s.consumeApproval(ctx, ap, digest, sub, checkSub, now)
		switch {
		case err == nil:
			used, usedID = true, ap.id
		case errors.Is(err, errApprovalUnusable):
		default:
			return false, err
		}
	}
	if len(kept) != len(list) {
		if len(kept) == 0 {
			s.sm.Remove(ctx, s.approvalsKey)
		} else {
			s.sm.Put(ctx, s.approvalsKey, encodeApprovals(kept))
		}
	}
	if used {
		e := Event{Type: EventConsumed, Scope: p.name, Subject: rec.subject, Issuer: s.cfg.Issuer, Elevation: usedID,
			Deadline: time.Unix(rec.until, 0).UTC()}
		e.setAction(a)
		s.audit(r, e)
	}
	return used, nil
}

// consumeApproval marks the approval's record used, atomically: it
// succeeds for one request only, on every replica. It fails with
// errApprovalUnusable when the record is gone, used, expired, for another
// action, scope or user, or covered by a revocation.
func (s *StepUp) consumeApproval(ctx context.Context, ap approval, digest, sub string, checkSub bool, now int64) (*approvalRecord, error) {
	var rec *approvalRecord
	err := s.updateRecord(ctx, s.approvalKey(ap.id), replicated, func(cur string) (string, int64, error) {
		if cur == "" {
			return "", 0, errApprovalUnusable
		}
		a, err := decodeApprovalRecord(cur)
		if err != nil {
			return "", 0, errApprovalUnusable
		}
		if a.used || a.until <= now || a.digest != digest || a.scope != ap.scope || (checkSub && a.subject != sub) {
			return "", 0, errApprovalUnusable
		}
		h := elevationHead{id: ap.id, subject: a.subject, generation: a.generation, sidTag: a.sidTag, authTime: a.authTime, deadline: a.until}
		if _, _, revoked, err := s.revokedBy(ctx, h); err != nil {
			return "", 0, err
		} else if revoked {
			return "", 0, errApprovalUnusable
		}
		a.used = true
		rec = a
		return encodeApprovalRecord(a), a.until, nil
	})
	return rec, err
}

// challengeAction challenges a request for an action: a pending challenge
// that carries it, then a redirect to the IdP for a navigation, or the RFC
// 9470 401 whose step_up_url starts that very challenge.
func (s *StepUp) challengeAction(w http.ResponseWriter, r *http.Request, p *policy, sub string, a Action) {
	returnTo, ok := SafeReturnTo(r.URL.RequestURI())
	if !ok {
		returnTo = s.cfg.DefaultReturnTo
	}
	c := s.newPending(p, returnTo, challengeMode{})
	c.action = encodeAction(a)
	if IsNavigation(r) {
		s.startChallenge(w, r, p, sub, c)
		return
	}
	if !s.savePending(w, r, p, sub, c, &a) {
		return
	}
	e := Event{Type: EventChallenge, Scope: p.name, Subject: sub, Issuer: s.cfg.Issuer}
	e.setAction(a)
	s.audit(r, e)
	q := url.Values{"scope": {p.name}, "action": {c.state}, "return_to": {returnTo}}
	body, _ := json.Marshal(challengeBody{
		Error:       "insufficient_user_authentication",
		Description: "This action needs a fresh approval: " + a.Text,
		ACRValues:   p.acrValues,
		MaxAge:      0,
		StepUpURL:   s.cfg.StartPath + "?" + q.Encode(),
	})
	h := w.Header()
	h.Set("WWW-Authenticate", `Bearer error="insufficient_user_authentication", `+
		`error_description="A stronger or more recent authentication is required", `+
		`acr_values="`+p.acrValues+`", max_age=0`)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(body)
}

// setAction puts a's fields on an audit event.
func (e *Event) setAction(a Action) {
	e.ActionType, e.Actions, e.ActionIdentifier = a.Type, a.Actions, a.Identifier
}

// grantApproval stores an approval of the challenge's action for the login
// el describes: its record in the store, then its entry in the session,
// saved before the response.
func (s *StepUp) grantApproval(ctx context.Context, el *Elevation, c pending) (Reason, error) {
	a, ok := decodeAction(c.action)
	if !ok {
		return ReasonActionInvalid, nil
	}
	p := s.policies[c.scope]
	window := int64(DefaultActionWindow / time.Second)
	if p.ActionWindow > 0 {
		window = int64(p.ActionWindow / time.Second)
	}
	now := s.now().Unix()
	until := min(now+window, el.Deadline.Unix()-s.skew)
	el.Deadline = time.Unix(until, 0)
	rec := &approvalRecord{until: until, digest: a.digest(), scope: c.scope, subject: el.Subject,
		generation: el.generation, sidTag: el.sidTag, authTime: el.AuthTime.Unix(), action: c.action}
	err := s.updateRecord(ctx, s.approvalKey(el.ID), asWritten, func(cur string) (string, int64, error) {
		if cur != "" {
			return "", 0, errors.New("stepup: approval id collision")
		}
		return encodeApprovalRecord(rec), until, nil
	})
	if err != nil {
		return ReasonSessionError, err
	}
	if err := s.sm.RenewToken(ctx); err != nil {
		return ReasonSessionError, err
	}
	list, err := decodeApprovals(stringValue(s.sm.Get(ctx, s.approvalsKey)))
	if err != nil {
		list = nil
	}
	list = slices.DeleteFunc(list, func(ap approval) bool { return ap.until <= now })
	if len(list) >= maxApprovals {
		list = list[len(list)-maxApprovals+1:]
	}
	list = append(list, approval{id: el.ID, digest: rec.digest, scope: c.scope, until: until})
	s.sm.Put(ctx, s.approvalsKey, encodeApprovals(list))
	if _, _, err := s.sm.Commit(ctx); err != nil {
		return ReasonSessionError, err
	}
	return "", nil
}
