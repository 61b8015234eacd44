package devidp

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// This file holds RFC 9396 Rich Authorization Requests: an authorization
// request's authorization_details, which the IdP's pages show the user
// ("chi-admin asks you to approve: Delete user bob") and the token
// response returns (§7).

// UserDetailsType is the authorization details type of the chi-admin
// example's user actions (e.g. actions ["delete"], identifier "bob"). Its
// pages say "Delete user bob"; other types get a generic line.
const UserDetailsType = "urn:stepup:example:user"

// maxDetailsBytes bounds the authorization_details parameter. It travels
// in the authorization request's URL and is shown on the IdP's pages.
const maxDetailsBytes = 4 << 10

// errDetailsCode is the error code of a malformed authorization_details
// parameter (RFC 9396 §5), sent to the RP as the authorization response.
const errDetailsCode = "invalid_authorization_details"

var errDetails = errors.New("devidp: invalid authorization_details")

// detailsRefused answers an authorization request whose
// authorization_details are malformed, oversized or not printable.
var detailsRefused = stepuptest.Login{Error: errDetailsCode, ErrorDescription: "authorization_details is malformed, too large or not printable"}

// detail is one authorization details object as the IdP reads it. members
// keeps every member, those this IdP does not read too, for the token
// response.
type detail struct {
	typ        string
	actions    []string
	identifier string
	members    map[string]json.RawMessage
}

// authorizationDetails is an authorization request's
// authorization_details, parsed and checked: what the pages show and what
// the token response returns.
type authorizationDetails []detail

// parseDetails reads the raw authorization_details parameter (RFC 9396 §2):
// a JSON array of one or more objects, each with a non-empty string type;
// actions, when present, an array of non-empty strings; identifier, when
// present, a string. Everything shown to the user (type, actions,
// identifier) must be printable text ([stepup.Printable]: no controls, no
// bidi overrides that would make "bob" display as someone else). An empty
// parameter is no details (nil, nil). Anything else, or more than 4 KiB,
// is errDetails.
//
// Unlike a production authorization server, which refuses a type it does
// not know (§5), this development IdP accepts any type and shows it
// generically, so that any RP's details can be tried against it.
func parseDetails(raw string) (authorizationDetails, error) {
	if raw == "" {
		return nil, nil
	}
	if len(raw) > maxDetailsBytes || !utf8.ValidString(raw) {
		return nil, errDetails
	}
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &objs); err != nil || len(objs) == 0 {
		return nil, errDetails
	}
	out := make(authorizationDetails, 0, len(objs))
	for _, m := range objs {
		if m == nil { // a null element
			return nil, errDetails
		}
		d := detail{members: m}
		if json.Unmarshal(m["type"], &d.typ) != nil || !shown(d.typ) {
			return nil, errDetails
		}
		if a, ok := m["actions"]; ok {
			if json.Unmarshal(a, &d.actions) != nil || d.actions == nil {
				return nil, errDetails
			}
			for _, v := range d.actions {
				if !shown(v) {
					return nil, errDetails
				}
			}
		}
		if id, ok := m["identifier"]; ok {
			if json.Unmarshal(id, &d.identifier) != nil || !shown(d.identifier) {
				return nil, errDetails
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// shown reports whether s can be shown to the user as it is.
func shown(s string) bool { return s != "" && stepup.Printable(s) }

// tokenResponse is the authorization_details member of the token
// response (RFC 9396 §7): what the user approved, as the page showed it
// (a member the request repeated appears once, with the value that was
// read), as a JSON array. nil when the request had none.
func (ds authorizationDetails) tokenResponse() json.RawMessage {
	if len(ds) == 0 {
		return nil
	}
	objs := make([]map[string]json.RawMessage, len(ds))
	for i, d := range ds {
		objs[i] = d.members
	}
	b, err := json.Marshal(objs)
	if err != nil {
		return nil
	}
	return b
}

// text is what the pages ask the user to approve: one line per object,
// joined by "; ".
func (ds authorizationDetails) text() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.text()
	}
	return strings.Join(lines, "; ")
}

// text is one object for people: "Delete user bob" for [UserDetailsType],
// else its type, actions and identifier, e.g. "urn:other: read and write
// on x".
func (d detail) text() string {
	if d.typ == UserDetailsType && len(d.actions) > 0 && d.identifier != "" {
		return capitalize(joinAnd(d.actions)) + " user " + d.identifier
	}
	s := d.typ
	if len(d.actions) > 0 {
		s += ": " + joinAnd(d.actions)
	}
	if d.identifier != "" {
		s += " on " + d.identifier
	}
	return s
}

// joinAnd joins words as a sentence does: "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
