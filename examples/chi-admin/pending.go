package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A primary login between /login and /auth/callback is kept in a
// short-lived cookie, sealed with AES-GCM, and not in the 12-hour session:
// an anonymous /login then creates no session and costs the server no
// memory, and a login nobody finishes is forgotten by the browser after
// ten minutes (the seal carries the start time, so the server forgets it
// too, whatever the browser does).

const (
	loginCookieName = "chi_admin_login"
	loginCookiePath = "/auth/callback" // sent nowhere else
	loginTTL        = 10 * time.Minute
	// maxLoginCookie bounds what the callback decodes: four short values
	// and a return_to of at most 2 KiB (stepup.SafeReturnTo), sealed and
	// base64-encoded, stay well below it.
	maxLoginCookie = 4 << 10
)

// pendingLogin is a primary login the browser has not finished.
type pendingLogin struct {
	started  int64  // Unix seconds
	state    string // OAuth 2.0 state (RFC 6749 §10.12)
	nonce    string // OIDC Core §3.1.2.1
	verifier string // PKCE code_verifier (RFC 7636)
	returnTo string // passed stepup.SafeReturnTo
}

// loginSealer seals and opens pending logins.
type loginSealer struct {
	aead   cipher.AEAD
	secure bool // https: the cookie is Secure
}

// newLoginSealer derives the sealing key from the OAuth client secret, with
// HKDF (RFC 5869) and a label of its own, so that every replica of the
// console opens a login another one started, with no extra setting. A
// public client, with no secret, gets a random key per process: its logins
// must then finish on the replica that started them.
func newLoginSealer(clientSecret string, secure bool) (*loginSealer, error) {
	var key []byte
	if clientSecret == "" {
		key = make([]byte, 32)
		rand.Read(key)
	} else {
		var err error
		if key, err = hkdf.Key(sha256.New, []byte(clientSecret), nil, "chi-admin pending login cookie v1", 32); err != nil {
			return nil, err
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &loginSealer{aead: aead, secure: secure}, nil
}

// set writes p into the login cookie.
func (s *loginSealer) set(w http.ResponseWriter, p pendingLogin) {
	plain := strings.Join([]string{strconv.FormatInt(p.started, 10), p.state, p.nonce, p.verifier, p.returnTo}, "\n")
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	sealed := s.aead.Seal(nonce, nonce, []byte(plain), []byte(loginCookieName))
	http.SetCookie(w, s.cookie(base64.RawURLEncoding.EncodeToString(sealed), int(loginTTL/time.Second)))
}

// take reads the login cookie and deletes it: a login response is good
// once. ok is false when there is none, or it was not sealed here, or it is
// older than loginTTL at now.
func (s *loginSealer) take(w http.ResponseWriter, r *http.Request, now time.Time) (p pendingLogin, ok bool) {
	c, err := r.Cookie(loginCookieName)
	if err != nil {
		return p, false
	}
	http.SetCookie(w, s.cookie("", -1))
	if len(c.Value) > maxLoginCookie {
		return p, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) < s.aead.NonceSize() {
		return p, false
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(loginCookieName))
	if err != nil {
		return p, false
	}
	f := strings.Split(string(plain), "\n")
	if len(f) != 5 {
		return p, false
	}
	if p.started, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return p, false
	}
	if age := now.Unix() - p.started; age < -60 || age > int64(loginTTL/time.Second) {
		return p, false
	}
	p.state, p.nonce, p.verifier, p.returnTo = f[1], f[2], f[3], f[4]
	return p, true
}

func (s *loginSealer) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: loginCookieName, Value: value, Path: loginCookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	}
}
