package stepup

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
)

// This file holds the records revocations are kept in, their encodings and
// their store keys: a user's revocation record (what the guard reads), a
// sid's index record, and a user's lifetime record. revocation.go merges
// revocations into them; revocation_store.go reads and updates them.

const revocationTag = "r1"

// revocations is a subject's revocation record.
type revocations struct {
	opCut    int64  // elevations of an earlier generation were revoked by an operator
	opTime   int64  // when (this server's clock) the last operator revocation was written
	idpCut   int64  // elevations with auth_time up to this IdP instant were revoked by the IdP
	idpCause Reason // why, for idpCut
	sids     []sidRevocation
	drops    []dropRevocation
	// bindings are the user's elevations bound to a device key (DBSC):
	// not revocations, but kept here because the guard reads this record
	// on every request (device_record.go).
	bindings []deviceBinding
	until    int64 // Unix seconds: no elevation this record covers lives beyond it
}

// sidRevocation ends the elevations from one IdP session whose auth_time
// is not after cut.
type sidRevocation struct {
	sidTag string
	cut    int64
	cause  Reason
	until  int64
}

// dropRevocation ends one elevation, dropped by the application.
type dropRevocation struct {
	id    string
	until int64
}

// covers reports whether the record ends the elevation h, and why.
func (rv *revocations) covers(h elevationHead) (Reason, bool) {
	for _, d := range rv.drops {
		if d.id == h.id {
			return ReasonRevoked, true
		}
	}
	if h.generation < rv.opCut {
		return ReasonRevokedByOperator, true
	}
	if h.authTime <= rv.idpCut {
		return rv.idpCause, true
	}
	if h.sidTag != "" {
		for _, s := range rv.sids {
			if s.sidTag == h.sidTag && h.authTime <= s.cut {
				return s.cause, true
			}
		}
	}
	return "", false
}

// prune drops the entries whose elevations have all ended by now.
func (rv *revocations) prune(now int64) {
	rv.sids = slices.DeleteFunc(rv.sids, func(s sidRevocation) bool { return s.until <= now })
	rv.drops = slices.DeleteFunc(rv.drops, func(d dropRevocation) bool { return d.until <= now })
	rv.bindings = slices.DeleteFunc(rv.bindings, func(b deviceBinding) bool { return b.until <= now })
}

// extend makes the record last at least until t.
func (rv *revocations) extend(t int64) { rv.until = max(rv.until, t) }

// The record's causes are stored as one-letter codes.
var causeCodes = map[Reason]string{
	ReasonBackChannelLogout: "b",
	ReasonRevokedByOperator: "o",
	ReasonSessionRevoked:    "s",
	ReasonCredentialChange:  "c",
	ReasonAssuranceLowered:  "a",
}

func causeCode(r Reason) string { return causeCodes[r] }

func causeFromCode(c string) (Reason, bool) {
	for r, code := range causeCodes {
		if code == c {
			return r, true
		}
	}
	return "", c == ""
}

// encodeRevocations serialises rv: the scalars, then the sid entries and
// the drops as lists of sub-records separated by the list separator, their
// fields by a colon (tags and ids are base64url, with no colon), then the
// device bindings, a last field written only when there is one: a record
// without bindings is what v0.1.0 wrote and reads.
func encodeRevocations(rv *revocations) string {
	var w writer
	w.str(revocationTag)
	w.int(rv.until)
	w.int(rv.opCut)
	w.int(rv.opTime)
	w.int(rv.idpCut)
	w.str(causeCode(rv.idpCause))
	sids := make([]string, len(rv.sids))
	for i, s := range rv.sids {
		sids[i] = s.sidTag + ":" + strconv.FormatInt(s.cut, 10) + ":" + causeCode(s.cause) + ":" + strconv.FormatInt(s.until, 10)
	}
	w.list(sids)
	drops := make([]string, len(rv.drops))
	for i, d := range rv.drops {
		drops[i] = d.id + ":" + strconv.FormatInt(d.until, 10)
	}
	w.list(drops)
	if len(rv.bindings) > 0 {
		bs := make([]string, len(rv.bindings))
		for i, b := range rv.bindings {
			bs[i] = encodeBinding(b)
		}
		w.list(bs)
	}
	return string(w.b)
}

func decodeRevocations(s string) (*revocations, error) {
	d := record{rest: s}
	if d.str() != revocationTag {
		return nil, ErrCorruptRecord
	}
	rv := &revocations{}
	rv.until = d.int()
	rv.opCut = d.int()
	rv.opTime = d.int()
	rv.idpCut = d.int()
	cause, causeOK := causeFromCode(d.str())
	rv.idpCause = cause
	sids, drops := d.str(), d.str()
	bindings := ""
	if !d.done {
		bindings = d.str()
	}
	if err := d.end(); err != nil || !causeOK || (rv.idpCut != 0) != (cause != "") {
		return nil, ErrCorruptRecord
	}
	for _, item := range splitList(sids) {
		f := strings.Split(item, ":")
		if len(f) != 4 || f[0] == "" {
			return nil, ErrCorruptRecord
		}
		cut, err1 := strconv.ParseInt(f[1], 10, 64)
		c, ok := causeFromCode(f[2])
		until, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || !ok || c == "" || cut <= 0 {
			return nil, ErrCorruptRecord
		}
		rv.sids = append(rv.sids, sidRevocation{sidTag: f[0], cut: cut, cause: c, until: until})
	}
	for _, item := range splitList(drops) {
		id, u, ok := strings.Cut(item, ":")
		until, err := strconv.ParseInt(u, 10, 64)
		if !ok || id == "" || err != nil {
			return nil, ErrCorruptRecord
		}
		rv.drops = append(rv.drops, dropRevocation{id: id, until: until})
	}
	for _, item := range splitList(bindings) {
		b, ok := decodeBinding(item)
		if !ok {
			return nil, ErrCorruptRecord
		}
		rv.bindings = append(rv.bindings, b)
	}
	return rv, nil
}

// A sid's index record maps an IdP session to its subject, for logout
// tokens that name only sid (Back-Channel Logout §2.4 allows that). It
// also remembers a logout that arrived before any grant from that session,
// so that such a grant is refused.
type sidIndex struct {
	subject string
	cut     int64  // the IdP's instant of a logout of this session, or 0
	cause   Reason // why, for cut
	until   int64
}

const sidIndexTag = "s1"

func encodeSidIndex(x *sidIndex) string {
	var w writer
	w.str(sidIndexTag)
	w.int(x.until)
	w.str(x.subject)
	w.int(x.cut)
	w.str(causeCode(x.cause))
	return string(w.b)
}

func decodeSidIndex(s string) (*sidIndex, error) {
	d := record{rest: s}
	if d.str() != sidIndexTag {
		return nil, ErrCorruptRecord
	}
	x := &sidIndex{until: d.int(), subject: d.str(), cut: d.int()}
	cause, ok := causeFromCode(d.str())
	x.cause = cause
	if d.end() != nil || !ok || (x.cut != 0) != (cause != "") {
		return nil, ErrCorruptRecord
	}
	return x, nil
}

// Store keys. Each starts with a letter and a semicolon: a semicolon never
// occurs in a cookie value, so no client can present one as its session
// token, load the record as its session and overwrite it. Each names its
// issuer, so that two IdPs' subjects and sessions never share a record.
func recordKey(kind byte, issuer, value string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + value))
	return string([]byte{kind, ';'}) + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// subjectKey is the key of sub's revocation record. The guard needs it on
// every request, so keys are cached: a map lookup by subject allocates
// nothing, a SHA-256 and a new string would. The cache is emptied when it
// holds maxSubjectKeys subjects.
func (s *StepUp) subjectKey(sub string) string {
	if k, ok := s.subjectKeys.Load(sub); ok {
		return k.(string)
	}
	k := recordKey('R', s.cfg.Issuer, sub)
	if s.subjectKeyCount.Add(1) > maxSubjectKeys {
		s.subjectKeys.Clear()
		s.subjectKeyCount.Store(1)
	}
	s.subjectKeys.Store(strings.Clone(sub), k)
	return k
}

const maxSubjectKeys = 100_000

func (s *StepUp) sidKey(sid string) string { return recordKey('S', s.cfg.Issuer, sid) }

func (s *StepUp) tokenKey(jti string) string { return recordKey('J', s.cfg.Issuer, jti) }

// A subject's lifetime record holds the latest deadline of the user's
// elevations granted so far, and the user's revocation generation. Grants
// raise the deadline and read the generation; operator revocations raise
// the generation; every revocation reads the deadline to keep its record
// as long as an elevation it covers can live. It is a separate record so
// that the revocation record, which the guard reads on every request,
// exists only for users something was revoked for: for everyone else the
// guard's lookup finds nothing and decodes nothing.
//
// The lifetime record outlives the revocation record (every revocation
// raises it to at least the revocation record's end), so the generation
// never starts over while an elevation or a revocation that carries it
// is alive.
const lifetimeTag = "d1"

type lifetime struct {
	until      int64 // Unix seconds: the latest deadline, and at least the revocation record's end
	generation int64 // the generation grants record; RevokeSubject raises it
}

func (s *StepUp) lifetimeKey(sub string) string { return recordKey('D', s.cfg.Issuer, sub) }

func encodeLifetime(l lifetime) string {
	var w writer
	w.str(lifetimeTag)
	w.int(l.until)
	w.int(l.generation)
	return string(w.b)
}

func decodeLifetime(cur string) (lifetime, error) {
	d := record{rest: cur}
	if d.str() != lifetimeTag {
		return lifetime{}, ErrCorruptRecord
	}
	l := lifetime{until: d.int(), generation: d.int()}
	if d.end() != nil {
		return lifetime{}, ErrCorruptRecord
	}
	return l, nil
}
