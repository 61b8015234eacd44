package stepup

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode"
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

	// The tags of the records a session holds. Each record kind has one
	// format; pre-release formats (e1, p1) are refused as corrupt, which
	// fails closed: the elevation or the pending challenges are dropped.
	elevationTag = "e2"
	pendingTag   = "p2"

	// maxField bounds any single claim value stored in the session, so that a
	// hostile or broken IdP cannot bloat every later request's session load.
	maxField = 1024
)

// storable reports whether s can be stored as a record field: printable
// and at most maxField bytes.
func storable(s string) bool { return len(s) <= maxField && Printable(s) }

// Printable reports whether s is valid UTF-8 free of the characters that
// let a value rewrite how a log line or a page reads: C0 and C1 controls,
// DEL, the Unicode line and paragraph separators (which some log viewers
// treat as line breaks), the bidirectional formatting characters
// (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C), which can make
// "alice\u202Eecila" display as someone else ("Trojan Source",
// CVE-2021-42574), and every other character that shows as nothing: the
// format characters (general category Cf: U+200B zero width space, U+200D
// zero width joiner, U+FEFF, U+00AD soft hyphen, U+180E, U+FFF9, the tags
// U+E0000–U+E007F) and the default-ignorable code points (U+034F, the
// Hangul fillers U+115F and U+3164, the variation selectors), with which
// "alice\u200b" is a second user who reads as alice (UTS #39 §3.3 and
// Unicode §5.21). Names in scripts that need U+200C or U+200D (some Indic
// and Arabic-script names) are refused too: an identifier that can hide a
// character cannot be told apart from another.
//
// stepup applies it to every callback parameter, claim and return_to it
// stores or logs. Applications can apply it to their own inputs that reach
// audit logs or pages, such as user names.
func Printable(s string) bool {
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
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || invisible(r) {
			return false
		}
	}
	return true
}

// invisible reports whether r shows as nothing, or changes how its
// neighbours show, without being seen: a format character (Cf, which
// holds the bidirectional controls), a default-ignorable code point or a
// variation selector.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Bidi_Control, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
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
		d.err = ErrCorruptRecord
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
		d.err = ErrCorruptRecord
	}
	return n
}

// delta reads an instant stored as signed seconds from base; an empty
// field is the zero time.
func (d *record) delta(base int64) time.Time {
	f := d.str()
	if d.err != nil || f == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(f, 10, 64)
	t := time.Unix(base+n, 0)
	if err != nil || t.IsZero() {
		d.err = ErrCorruptRecord
		return time.Time{}
	}
	return t
}

// end checks that every field was read.
func (d *record) end() error {
	if d.err == nil && !d.done {
		d.err = ErrCorruptRecord
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

// delta writes t as signed seconds from base, or an empty field for the
// zero time.
func (w *writer) delta(t time.Time, base int64) {
	w.str("")
	if !t.IsZero() {
		w.b = strconv.AppendInt(w.b, t.Unix()-base, 10)
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

// issuerTag is what a stored elevation keeps of its issuer: 66 bits of the
// issuer URL's SHA-256. The guard only needs to tell the configured issuer
// from any other; an issuer URL can be 80 bytes long (Entra ID's are), and
// every byte of the record is loaded with every request.
func issuerTag(issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return base64.RawURLEncoding.EncodeToString(sum[:9])[:11]
}

// acrTag is what a stored elevation keeps of its acr: 36 bits of its
// SHA-256. The acr is always one of the scope's configured values, so the
// tag names it among them; an acr URN can be 60 bytes long (the PAPE
// multi-factor policy), and every byte of the record is loaded with every
// request.
func acrTag(acr string) string {
	sum := sha256.Sum256([]byte(acr))
	return base64.RawURLEncoding.EncodeToString(sum[:6])[:6]
}

// sidTag is what a stored elevation keeps of the IdP session it came
// from: 96 bits of SHA-256 over the issuer and the ID token's sid, so that
// a back-channel logout or a CAEP session-revoked event naming that sid can
// find it. It is fixed-size whatever the IdP's sid looks like (Entra's and
// Keycloak's are 36-character GUIDs).
func sidTag(issuer, sid string) string {
	if sid == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(issuer + "\x00" + sid))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// encodeElevation serialises e. The fields the guard reads on every request
// (deadline, issuer tag, subject, id, generation, sid tag) come first. The
// other instants are stored as seconds from the deadline, which keeps them
// short.
func encodeElevation(e *Elevation) string {
	tag, acr := e.issuerTag, e.acrTag
	if tag == "" {
		tag = issuerTag(e.Issuer)
	}
	if acr == "" {
		acr = acrTag(e.ACR)
	}
	deadline := unixOrZeroInt(e.Deadline)
	w := writer{b: make([]byte, 0, 96+len(e.Subject)+len(e.ACR))}
	w.str(elevationTag)
	w.int(deadline)
	w.str(tag)
	w.str(e.Subject)
	w.str(e.ID)
	w.int(e.generation)
	w.str(e.sidTag)
	w.str(boundCode(e.Bound))
	w.str(acr)
	w.list(e.AMR)
	for _, t := range [...]time.Time{e.AuthTime, e.IDTokenExpiry, e.SessionExpiry, e.GrantedAt} {
		w.delta(t, deadline)
	}
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
	deadline   int64
	issuerTag  string
	subject    string
	id         string
	generation int64  // the subject's revocation generation at the grant
	sidTag     string // the IdP session, when the ID token named one
	authTime   int64
	grantedAt  int64
}

// readElevationHead parses a stored elevation far enough for the guard,
// and checks that the rest of it is well formed too, so that the guard and
// [StepUp.Elevation] never disagree about a damaged record. A record that
// does not parse fails closed with ErrCorruptRecord.
func readElevationHead(rec string) (elevationHead, error) {
	d := record{rest: rec}
	if d.str() != elevationTag {
		return elevationHead{}, ErrCorruptRecord
	}
	var h elevationHead
	h.deadline = d.int()
	h.issuerTag = d.str()
	h.subject = d.str()
	h.id = d.str()
	h.generation = d.int()
	h.sidTag = d.str()
	_, boundOK := boundFromCode(d.str())
	acrOK := d.str() != "" // acr tag
	d.str()                // amr
	h.authTime = d.delta(h.deadline).Unix()
	d.delta(h.deadline) // exp
	d.delta(h.deadline) // session_expiry
	h.grantedAt = d.delta(h.deadline).Unix()
	if d.end() != nil || !boundOK || !acrOK || h.deadline <= 0 || h.issuerTag == "" {
		return elevationHead{}, ErrCorruptRecord
	}
	return h, nil
}

// decodeElevation parses a whole stored elevation for scope. Its Issuer and
// ACR are left empty: the record holds only their tags, which the caller
// resolves against the configuration.
func decodeElevation(rec, scope string) (Elevation, error) {
	d := record{rest: rec}
	if d.str() != elevationTag {
		return Elevation{}, ErrCorruptRecord
	}
	e := Elevation{Scope: scope}
	deadline := d.int()
	e.Deadline = unixOrZero(deadline)
	e.issuerTag = d.str()
	e.Subject = d.str()
	e.ID = d.str()
	e.generation = d.int()
	e.sidTag = d.str()
	bound, boundOK := boundFromCode(d.str())
	e.Bound = bound
	e.acrTag = d.str()
	e.AMR = splitList(d.str())
	e.AuthTime = d.delta(deadline)
	e.IDTokenExpiry = d.delta(deadline)
	e.SessionExpiry = d.delta(deadline)
	e.GrantedAt = d.delta(deadline)
	if err := d.end(); err != nil || !boundOK || e.Deadline.IsZero() || e.issuerTag == "" || e.acrTag == "" {
		return Elevation{}, ErrCorruptRecord
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
	popup    bool   // started with display=popup: the callback answers with the popup page
	ref      string // the opener's reference for the popup's result message, when popup
	// action is the action a RequireStepUpFor challenge asks to approve
	// (encodeAction); empty for an elevation. Written as a last field only
	// when set, so that elevation challenges are stored as v0.1.0 stored
	// them.
	action string
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
		mode := ""
		if p.popup {
			mode = "p"
		}
		w.str(mode)
		w.str(p.ref)
		if p.action != "" {
			w.str(p.action)
		}
	}
	return string(w.b)
}

// validStoredAction reports whether s is an action as encodeAction
// writes it, and a valid one.
func validStoredAction(s string) bool {
	a, ok := decodeAction(s)
	return ok && encodeAction(a) == s
}

func decodePending(s string) ([]pending, error) {
	if s == "" {
		return nil, nil
	}
	head, rest, ok := strings.Cut(s, string(listSep))
	if head != pendingTag || !ok {
		return nil, ErrCorruptRecord
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
		mode := d.str()
		p.popup = mode == "p"
		p.ref = d.str()
		hasAction := !d.done
		if hasAction {
			p.action = d.str()
		}
		modeOK := (mode == "" || p.popup) && (p.popup || p.ref == "")
		if err := d.end(); err != nil || p.state == "" || p.started <= 0 || !modeOK || (hasAction && !validStoredAction(p.action)) {
			return nil, ErrCorruptRecord
		}
		list = append(list, p)
	}
	return list, nil
}
