package stepup

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"hash/maphash"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// This file holds what device binding (DBSC) stores: a binding entry in the
// subject's record, which the guard reads on every request anyway, and a
// record per DBSC session, which only the registration and refresh
// endpoints read; and the bound cookie, whose MAC key is the binding's own
// secret.

// deviceBinding says that an elevation is bound to a device key. It lives
// in the subject's record (see revocations), beside the revocations, so
// that the guard learns it from the lookup it already makes, and so that a
// concurrent session save (scs's last write wins) cannot erase it.
type deviceBinding struct {
	id     string // the elevation's id
	jkt    string // the RFC 7638 SHA-256 thumbprint of the key, base64url
	secret string // the bound cookie's MAC key, 16 random bytes in base64url
	until  int64  // the elevation's deadline
}

// maxBindings bounds the live bindings one user may have, so that
// registrations cannot grow the record the guard reads on every request.
const maxBindings = 32

func (rv *revocations) binding(id string) (deviceBinding, bool) {
	if rv == nil {
		return deviceBinding{}, false
	}
	for _, b := range rv.bindings {
		if b.id == id {
			return b, true
		}
	}
	return deviceBinding{}, false
}

func encodeBinding(b deviceBinding) string {
	return b.id + ":" + b.jkt + ":" + b.secret + ":" + strconv.FormatInt(b.until, 10)
}

func decodeBinding(item string) (deviceBinding, bool) {
	f := strings.Split(item, ":")
	if len(f) != 4 || f[0] == "" || f[1] == "" || f[2] == "" {
		return deviceBinding{}, false
	}
	until, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || until <= 0 {
		return deviceBinding{}, false
	}
	return deviceBinding{id: f[0], jkt: f[1], secret: f[2], until: until}, true
}

// deviceSession is the record of one DBSC session, keyed by its
// session_identifier: the elevation it binds (what the refresh endpoint
// needs to apply the guard's rules without the session), the key, and the
// challenges handed out and not yet answered.
type deviceSession struct {
	until      int64 // the elevation's deadline
	subject    string
	scope      string
	elevation  string // the elevation's id
	generation int64
	sidTag     string
	authTime   int64
	// authorization is set while the registration is pending: what the
	// registration's JWT must echo. Empty once registered.
	authorization string
	alg           string // ES256 or RS256, once registered
	jwk           string // the public key's JWK, base64url of its JSON, once registered
	jkt           string // its RFC 7638 thumbprint, base64url
	challenges    []deviceChallenge
}

type deviceChallenge struct {
	value string
	exp   int64
}

const deviceSessionTag = "b1"

// maxDeviceChallenges bounds the live challenges of one DBSC session:
// concurrent refreshes each get their own, and the oldest is evicted.
const maxDeviceChallenges = 4

// deviceChallengeTTL is how long a registration or refresh challenge can
// be answered beyond the bound cookie's lifetime: a challenge sent ahead
// is answered when the cookie it was sent with has expired
// ([StepUp.challengeTTL]).
const deviceChallengeTTL = 60

// challengeTTL is the lifetime of the challenges handed out, in seconds.
func (s *StepUp) challengeTTL() int64 {
	return deviceChallengeTTL + int64(s.cfg.BoundCookieTTL/time.Second)
}

func (ds *deviceSession) head() elevationHead {
	return elevationHead{deadline: ds.until, subject: ds.subject, id: ds.elevation,
		generation: ds.generation, sidTag: ds.sidTag, authTime: ds.authTime}
}

// addChallenge hands out a new challenge for session id, valid for ttl
// seconds from now, and prunes the expired ones.
func (ds *deviceSession) addChallenge(id string, now, ttl int64) string {
	c := id + "." + randomToken()
	// Expired challenges stay until the cap evicts them, so that an answer
	// to one is told apart from a replay (takeChallenge).
	ds.challenges = append(ds.challenges, deviceChallenge{value: c, exp: now + ttl})
	if n := len(ds.challenges); n > maxDeviceChallenges {
		ds.challenges = ds.challenges[n-maxDeviceChallenges:]
	}
	return c
}

// takeChallenge consumes the live challenge c, if there is one. expired
// says that c was handed out here but has expired: the browser answered a
// challenge sent ahead long ago, which is no attack.
func (ds *deviceSession) takeChallenge(c string, now int64) (taken, expired bool) {
	for i, ch := range ds.challenges {
		if hmac.Equal([]byte(ch.value), []byte(c)) {
			if ch.exp <= now {
				return false, true
			}
			ds.challenges = append(ds.challenges[:i], ds.challenges[i+1:]...)
			return true, false
		}
	}
	return false, false
}

func (ds *deviceSession) prune(now int64) {
	live := ds.challenges[:0]
	for _, ch := range ds.challenges {
		if ch.exp > now {
			live = append(live, ch)
		}
	}
	ds.challenges = live
}

func encodeDeviceSession(ds *deviceSession) string {
	var w writer
	w.str(deviceSessionTag)
	w.int(ds.until)
	w.str(ds.subject)
	w.str(ds.scope)
	w.str(ds.elevation)
	w.int(ds.generation)
	w.str(ds.sidTag)
	w.int(ds.authTime)
	w.str(ds.authorization)
	w.str(ds.alg)
	w.str(ds.jwk)
	w.str(ds.jkt)
	cs := make([]string, len(ds.challenges))
	for i, c := range ds.challenges {
		cs[i] = c.value + ":" + strconv.FormatInt(c.exp, 10)
	}
	w.list(cs)
	return string(w.b)
}

func decodeDeviceSession(s string) (*deviceSession, error) {
	d := record{rest: s}
	if d.str() != deviceSessionTag {
		return nil, ErrCorruptRecord
	}
	ds := &deviceSession{until: d.int(), subject: d.str(), scope: d.str(), elevation: d.str(),
		generation: d.int(), sidTag: d.str(), authTime: d.int(), authorization: d.str(),
		alg: d.str(), jwk: d.str(), jkt: d.str()}
	cs := d.str()
	if d.end() != nil || ds.until <= 0 || ds.elevation == "" || ds.scope == "" {
		return nil, ErrCorruptRecord
	}
	if (ds.authorization == "") == (ds.jwk == "") || (ds.jwk == "") != (ds.jkt == "") || (ds.jwk == "") != (ds.alg == "") {
		return nil, ErrCorruptRecord
	}
	for _, item := range splitList(cs) {
		v, e, ok := strings.Cut(item, ":")
		exp, err := strconv.ParseInt(e, 10, 64)
		if !ok || v == "" || err != nil {
			return nil, ErrCorruptRecord
		}
		ds.challenges = append(ds.challenges, deviceChallenge{value: v, exp: exp})
	}
	return ds, nil
}

func (s *StepUp) deviceSessionKey(id string) string { return recordKey('B', s.cfg.Issuer, id) }

// randomToken returns 128 random bits in base64url.
func randomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validToken reports whether t looks like a randomToken: 22 base64url
// characters.
func validToken(t string) bool {
	if len(t) != 22 {
		return false
	}
	for _, c := range []byte(t) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// The bound cookie. Its value is "<expiry>.<mac>": the expiry in Unix
// seconds, and the first 16 bytes of HMAC-SHA256, keyed with the binding's
// secret, over the elevation's id, the scope, the key's thumbprint and the
// expiry. Only the server that holds the subject's record can make one;
// any replica can check one with what the guard reads anyway; and none is
// stored, so a refresh writes nothing but its challenge.
//
// Its name names the elevation: a user who steps up again gets a new
// elevation, a new DBSC session and a new cookie, and the old session's
// refreshes (which end it) never touch the new cookie.

const boundMACLen = 16

// boundCookieName is the bound cookie's name for the elevation id.
func (s *StepUp) boundCookieName(id string) string {
	return s.boundCookiePrefix() + strings.TrimPrefix(id, "E;")
}

func (s *StepUp) boundCookiePrefix() string {
	if s.secureCookies {
		return "__Host-stepup-bound-"
	}
	return "stepup-bound-"
}

// boundCookieOf returns the value of the request's bound cookie for the
// elevation id, without allocating: it is read on every guarded request.
// Cookie values stepup sets are plain (no quotes, no spaces).
func (s *StepUp) boundCookieOf(r *http.Request, id string) (string, bool) {
	prefix, tail := s.boundCookiePrefix(), strings.TrimPrefix(id, "E;")
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if len(part) > len(prefix)+len(tail) && part[:len(prefix)] == prefix &&
				part[len(prefix):len(prefix)+len(tail)] == tail && part[len(prefix)+len(tail)] == '=' {
				return part[len(prefix)+len(tail)+1:], true
			}
		}
	}
	return "", false
}

// cookieCache remembers bound cookies whose MAC was checked, so that the
// guard computes one HMAC per cookie (a minute) instead of one per
// request. An entry holds everything the MAC covers and the binding's
// secret: a hit is exact, and the expiry is still compared each time.
type cookieCache struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[checkedCookie]
}

type checkedCookie struct {
	value, id, jkt, secret, scope string
	exp                           int64
}

func (c *cookieCache) index(v string) int {
	return int(maphash.String(c.seed, v) % uint64(len(c.slots)))
}

// check reports whether v is a valid bound cookie for binding b of scope
// at now, as checkBoundCookie does.
func (c *cookieCache) check(v string, b deviceBinding, scope string, now int64) bool {
	slot := &c.slots[c.index(v)]
	if e := slot.Load(); e != nil && e.value == v && e.id == b.id && e.jkt == b.jkt &&
		e.secret == b.secret && e.scope == scope && e.exp <= b.until {
		return e.exp > now
	}
	if !checkBoundCookie(v, b, scope, now) {
		return false
	}
	exp, _ := strconv.ParseInt(v[:strings.IndexByte(v, '.')], 10, 64)
	slot.Store(&checkedCookie{value: strings.Clone(v), id: b.id, jkt: b.jkt, secret: b.secret, scope: scope, exp: exp})
	return true
}

func boundMAC(b deviceBinding, scope string, exp int64) []byte {
	key, _ := base64.RawURLEncoding.DecodeString(b.secret)
	m := hmac.New(sha256.New, key)
	var buf [20]byte
	m.Write([]byte("stepup bound cookie v1\x00"))
	m.Write([]byte(b.id))
	m.Write([]byte{0})
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(b.jkt))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(buf[:0], exp, 10))
	return m.Sum(nil)[:boundMACLen]
}

func boundCookieValue(b deviceBinding, scope string, exp int64) string {
	return strconv.FormatInt(exp, 10) + "." + base64.RawURLEncoding.EncodeToString(boundMAC(b, scope, exp))
}

// checkBoundCookie reports whether v is a bound cookie for binding b of
// scope that has not expired at now.
func checkBoundCookie(v string, b deviceBinding, scope string, now int64) bool {
	e, m, ok := strings.Cut(v, ".")
	if !ok || len(m) != base64.RawURLEncoding.EncodedLen(boundMACLen) {
		return false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || exp <= now || exp > b.until {
		return false
	}
	var got [boundMACLen]byte
	if n, err := base64.RawURLEncoding.Decode(got[:], []byte(m)); err != nil || n != boundMACLen {
		return false
	}
	return hmac.Equal(got[:], boundMAC(b, scope, exp))
}
