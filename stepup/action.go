package stepup

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
)

// This file holds step-up for one action: an approval of exactly "delete
// user bob", granted by a fresh login and used up by the one request it
// authorizes (action_guard.go), described to the IdP as RFC 9396
// authorization details.

// Action is what a request does, as the application derives it from the
// request for [StepUp.RequireStepUpFor]. Type, Actions and Identifier are
// the RFC 9396 authorization details object's type, actions and identifier
// fields (§2.1); two requests with the same three (Actions compared as a
// set) are the same action. Text is one line for people, the
// error_description of the 401 challenge; it is not part of the comparison
// and not sent to the IdP, which renders the details itself.
type Action struct {
	Type       string   // e.g. "urn:stepup:example:user"
	Actions    []string // e.g. ["delete"]
	Identifier string   // the target, e.g. "bob"; may be empty
	Text       string   // e.g. "Delete user bob"
}

// Bounds of an Action's fields: they travel to the IdP in the
// authorization request's URL, live in the session and the store, and are
// logged.
const (
	maxActionType     = 256
	maxActionValue    = 64
	maxActionCount    = 8
	maxActionIdent    = 256
	maxActionText     = 200
	maxDetailsLen     = 4096 // the token response's authorization_details, re-encoded
	actionDetailsKind = "stepup-action"
)

// validAction reports whether a can be requested: every field printable,
// non-empty where required, and within its bound; no repeated action.
func validAction(a Action) bool {
	if a.Type == "" || len(a.Type) > maxActionType || !Printable(a.Type) ||
		len(a.Identifier) > maxActionIdent || !Printable(a.Identifier) ||
		a.Text == "" || len(a.Text) > maxActionText || !Printable(a.Text) ||
		len(a.Actions) == 0 || len(a.Actions) > maxActionCount {
		return false
	}
	for i, v := range a.Actions {
		if v == "" || len(v) > maxActionValue || !Printable(v) || slices.Contains(a.Actions[:i], v) {
			return false
		}
	}
	return true
}

// digest identifies the action: SHA-256 over the type, the sorted actions
// and the identifier, 16 bytes in base64url. The text is left out.
func (a Action) digest() string {
	acts := slices.Clone(a.Actions)
	slices.Sort(acts)
	sum := sha256.Sum256([]byte(a.Type + "\x00" + strings.Join(acts, "\x1e") + "\x00" + a.Identifier))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// detailsObject is an RFC 9396 authorization details object of an Action.
type detailsObject struct {
	Type       string   `json:"type"`
	Actions    []string `json:"actions"`
	Identifier string   `json:"identifier,omitempty"`
}

// authorizationDetails is the authorization_details request parameter
// (RFC 9396 §2): a JSON array of one object.
func (a Action) authorizationDetails() string {
	b, _ := json.Marshal([]detailsObject{{Type: a.Type, Actions: a.Actions, Identifier: a.Identifier}})
	return string(b)
}

// storedAction is how an action is kept in a pending challenge and an
// approval record: JSON, whose escapes keep it free of the record
// separators (every field is printable).
type storedAction struct {
	Type       string   `json:"t"`
	Actions    []string `json:"a"`
	Identifier string   `json:"i,omitempty"`
	Text       string   `json:"x"`
}

func encodeAction(a Action) string {
	b, _ := json.Marshal(storedAction{a.Type, a.Actions, a.Identifier, a.Text})
	return string(b)
}

func decodeAction(s string) (Action, bool) {
	var st storedAction
	if json.Unmarshal([]byte(s), &st) != nil {
		return Action{}, false
	}
	a := Action{Type: st.Type, Actions: st.Actions, Identifier: st.Identifier, Text: st.Text}
	return a, validAction(a)
}

// grantedDetailsMatch reports whether the authorization_details of a token
// response (as encoding/json decoded it; nil when absent) are what was
// requested for a: an array of exactly one object whose members are
// exactly type, actions and identifier (identifier absent when a has
// none), equal to a's, actions compared as a set (RFC 9396 §2 defines
// them as an array of kinds, whose order carries no meaning). An IdP that
// drops, narrows, widens or adds to them does not approve a.
func grantedDetailsMatch(a Action, granted any) (present, ok bool) {
	if granted == nil {
		return false, false
	}
	raw, err := json.Marshal(granted)
	if err != nil || len(raw) > maxDetailsLen {
		return true, false
	}
	var list []map[string]json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) != 1 {
		return true, false
	}
	obj := list[0]
	want := 2
	if a.Identifier != "" {
		want = 3
	}
	if len(obj) != want {
		return true, false
	}
	var typ, ident string
	var acts []string
	if json.Unmarshal(obj["type"], &typ) != nil || json.Unmarshal(obj["actions"], &acts) != nil {
		return true, false
	}
	if a.Identifier != "" && json.Unmarshal(obj["identifier"], &ident) != nil {
		return true, false
	}
	if typ != a.Type || ident != a.Identifier || len(acts) != len(a.Actions) {
		return true, false
	}
	for _, v := range a.Actions {
		if !slices.Contains(acts, v) {
			return true, false
		}
	}
	for i, v := range acts {
		if slices.Contains(acts[:i], v) {
			return true, false
		}
	}
	return true, true
}
