package stepup

import (
	"errors"
	"unicode"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Session values are stored as plain strings. The scs gob codec decodes a
// string after any restart or rename without gob.Register, other codecs
// (JSON, msgpack) carry it unchanged, and the guard can check a record by
// slicing it, without allocating.
//
// A record is a version tag followed by fields separated by the ASCII unit
// separator. Lists inside a field are separated by the record separator.
// Neither can occur inside a field: every string that enters a record is
// checked by storable first, and refused if it holds a control character.
const (
	fieldSep = '\x1f'
	listSep  = '\x1e'

	elevationTag = "e1"
	pendingTag   = "p1"

	// maxField bounds any single claim value stored in the session, so that a
	// hostile or broken IdP cannot bloat every later request's session load.
	maxField = 1024
)

var errCorruptRecord = errors.New("stepup: stored record is malformed")

// storable reports whether s can be stored as a record field: printable
// and at most maxField bytes.
func storable(s string) bool { return len(s) <= maxField && printable(s) }

// printable reports whether s is valid UTF-8 without control characters:
// C0, DEL and C1, and the Unicode line and paragraph separators, which some
// log viewers treat as line breaks.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
		if s[i] >= utf8.RuneSelf {
			return printableUnicode(s[i:])
		}
	}
	return true
}

func printableUnicode(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// cut splits off the first field of s.
func cut(s string) (field, rest string, ok bool) {
	i := strings.IndexByte(s, fieldSep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// record is a field-by-field reader of an encoded record. The first error
// sticks, so a decoder reads every field and checks err once.
type record struct {
	rest string
	done bool
	err  error
}

func (d *record) str() string {
	if d.err != nil {
		return ""
	}
	if d.done {
		d.err = errCorruptRecord
		return ""
	}
	f, rest, ok := cut(d.rest)
	d.rest, d.done = rest, !ok
	return f
}

func (d *record) int() int64 {
	f := d.str()
	if d.err != nil {
		return 0
	}
	if f == "" {
		return 0
	}
	n, err := strconv.ParseInt(f, 10, 64)
	if err != nil || n < 0 {
		d.err = errCorruptRecord
	}
	return n
}

// end checks that every field was read.
func (d *record) end() error {
	if d.err == nil && !d.done {
		d.err = errCorruptRecord
	}
	return d.err
}

// writer builds a record. Numbers of value 0 are written as empty fields.
type writer struct{ b []byte }

func (w *writer) str(s string) {
	if len(w.b) > 0 {
		w.b = append(w.b, fieldSep)
	}
	w.b = append(w.b, s...)
}

func (w *writer) int(n int64) {
	w.str("")
	if n != 0 {
		w.b = strconv.AppendInt(w.b, n, 10)
	}
}

func (w *writer) list(l []string) {
	w.str("")
	for i, s := range l {
		if i > 0 {
			w.b = append(w.b, listSep)
		}
		w.b = append(w.b, s...)
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, string(listSep))
}

func unixOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

func boundCode(b Bound) string {
	switch b {
	case BoundSessionExpiry:
		return "s"
	case BoundExp:
		return "e"
	case BoundLifetime:
		return "l"
	case BoundMaxAge:
		return "m"
	}
	return ""
}

func boundFromCode(c string) (Bound, bool) {
	switch c {
	case "s":
		return BoundSessionExpiry, true
	case "e":
		return BoundExp, true
	case "l":
		return BoundLifetime, true
	case "m":
		return BoundMaxAge, true
	}
	return "", false
}

// encodeElevation serialises e. The fields the guard reads on every request
// (deadline, issuer, subject, id) come first.
func encodeElevation(e *Elevation) string {
	w := writer{b: make([]byte, 0, 160+len(e.Issuer)+len(e.Subject)+len(e.ACR))}
	w.str(elevationTag)
	w.int(unixOrZeroInt(e.Deadline))
	w.str(e.Issuer)
	w.str(e.Subject)
	w.str(e.ID)
	w.str(boundCode(e.Bound))
	w.str(e.ACR)
	w.list(e.AMR)
	w.int(unixOrZeroInt(e.AuthTime))
	w.int(unixOrZeroInt(e.Expiry))
	w.int(unixOrZeroInt(e.SessionExpiry))
	w.int(unixOrZeroInt(e.GrantedAt))
	return string(w.b)
}

func unixOrZeroInt(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// elevationHead is what the guard needs from a stored elevation on every
// request. Its strings are slices of the stored record: reading it does not
// allocate.
type elevationHead struct {
	deadline int64
	issuer   string
	subject  string
	id       string
}

// readElevationHead parses a stored elevation far enough for the guard,
// and checks that the rest of it is well formed too, so that the guard and
// [StepUp.Elevation] never disagree about a damaged record. A record that
// does not parse fails closed with errCorruptRecord.
func readElevationHead(rec string) (elevationHead, error) {
	d := record{rest: rec}
	if d.str() != elevationTag {
		return elevationHead{}, errCorruptRecord
	}
	var h elevationHead
	h.deadline = d.int()
	h.issuer = d.str()
	h.subject = d.str()
	h.id = d.str()
	_, boundOK := boundFromCode(d.str())
	d.str() // acr
	d.str() // amr
	for range 4 {
		d.int() // auth_time, exp, session_expiry, granted_at
	}
	if d.end() != nil || !boundOK || h.deadline <= 0 {
		return elevationHead{}, errCorruptRecord
	}
	return h, nil
}

// decodeElevation parses a whole stored elevation for scope.
func decodeElevation(rec, scope string) (Elevation, error) {
	d := record{rest: rec}
	if d.str() != elevationTag {
		return Elevation{}, errCorruptRecord
	}
	e := Elevation{Scope: scope}
	e.Deadline = unixOrZero(d.int())
	e.Issuer = d.str()
	e.Subject = d.str()
	e.ID = d.str()
	bound, boundOK := boundFromCode(d.str())
	e.Bound = bound
	e.ACR = d.str()
	e.AMR = splitList(d.str())
	e.AuthTime = unixOrZero(d.int())
	e.Expiry = unixOrZero(d.int())
	e.SessionExpiry = unixOrZero(d.int())
	e.GrantedAt = unixOrZero(d.int())
	if err := d.end(); err != nil || !boundOK || e.Deadline.IsZero() {
		return Elevation{}, errCorruptRecord
	}
	return e, nil
}

// pending is a challenge that was sent to the IdP and has not come back yet.
type pending struct {
	state    string // the OAuth state, the challenge's key
	nonce    string // OIDC nonce, bound into the ID token
	verifier string // PKCE code_verifier (RFC 7636)
	scope    string
	started  int64 // Unix seconds when the challenge was issued
	returnTo string
}

func encodePending(list []pending) string {
	if len(list) == 0 {
		return ""
	}
	var w writer
	w.str(pendingTag)
	for _, p := range list {
		w.b = append(w.b, listSep)
		w.b = append(w.b, p.state...)
		w.str(p.nonce)
		w.str(p.verifier)
		w.str(p.scope)
		w.int(p.started)
		w.str(p.returnTo)
	}
	return string(w.b)
}

func decodePending(s string) ([]pending, error) {
	if s == "" {
		return nil, nil
	}
	head, rest, ok := strings.Cut(s, string(listSep))
	if head != pendingTag || !ok {
		return nil, errCorruptRecord
	}
	var list []pending
	for item := range strings.SplitSeq(rest, string(listSep)) {
		d := record{rest: item}
		p := pending{
			state:    d.str(),
			nonce:    d.str(),
			verifier: d.str(),
			scope:    d.str(),
			started:  d.int(),
			returnTo: d.str(),
		}
		if err := d.end(); err != nil || p.state == "" || p.started <= 0 {
			return nil, errCorruptRecord
		}
		list = append(list, p)
	}
	return list, nil
}
