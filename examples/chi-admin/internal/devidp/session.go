package devidp

import (
	"crypto/rand"
	"slices"
	"sync"
	"time"
)

// sessionCookie names the IdP session cookie. Cookies are not isolated by
// port (RFC 6265 §8.5), so an app on another loopback port sees it too; it
// must not collide with the app's own cookie names.
const sessionCookie = "devidp_session"

// session is one browser's IdP login session.
type session struct {
	user User
	// loginTime is the first password login of this session; session_expiry
	// counts from it.
	loginTime time.Time
	// authTime is the latest interactive authentication, the auth_time of
	// every ID token issued from the session until the next one; acr and amr
	// are what that authentication achieved.
	authTime time.Time
	acr      string
	amr      []string
	// sid identifies the session in ID tokens (OIDC Front-Channel Logout
	// §2). It survives re-authentication of the same user and cookie
	// rotation.
	sid string
}

func (s *session) clone() *session {
	c := *s
	c.amr = slices.Clone(s.amr)
	return &c
}

// sessionStore maps cookie values to sessions.
type sessionStore struct {
	expiry time.Duration // Config.SessionExpiry; 0 means sessions never end

	mu   sync.Mutex
	byID map[string]*session
}

func newSessionStore(expiry time.Duration) *sessionStore {
	return &sessionStore{expiry: expiry, byID: map[string]*session{}}
}

// ended reports whether s is past its session expiry at now.
func (st *sessionStore) ended(s *session, now time.Time) bool {
	return st.expiry > 0 && !now.Before(s.loginTime.Add(st.expiry))
}

// get returns a copy of the live session with cookie value id, or nil. An
// ended session is removed.
func (st *sessionStore) get(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byID[id]
	if !ok {
		return nil
	}
	if st.ended(s, now) {
		delete(st.byID, id)
		return nil
	}
	return s.clone()
}

// login records an interactive authentication of user at now that achieved
// acr and amr, by the browser holding cookie value oldID (possibly ""). A
// live session of the same user keeps its loginTime and sid; anything else
// starts a new session. The session always moves to a fresh cookie value, so
// a value planted in the browser before the login is worthless after it
// (session fixation).
func (st *sessionStore) login(oldID string, user User, acr string, amr []string, now time.Time) (string, *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byID[oldID]
	if ok {
		delete(st.byID, oldID)
	}
	if !ok || s.user != user || st.ended(s, now) {
		s = &session{user: user, loginTime: now, sid: rand.Text()}
	}
	s.authTime, s.acr, s.amr = now, acr, slices.Clone(amr)
	id := rand.Text()
	st.byID[id] = s
	for k, v := range st.byID {
		if st.ended(v, now) {
			delete(st.byID, k)
		}
	}
	return id, s.clone()
}

// pendingTTL is how long a password-verified login waits for its TOTP code.
const pendingTTL = 5 * time.Minute

// maxOTPAttempts is how many wrong codes one pending login may take before
// the password has to be entered again.
const maxOTPAttempts = 5

// pending is a login whose password was right and whose TOTP code is due.
type pending struct {
	authRequestID string
	user          User
	expires       time.Time
	attempts      int // wrong codes so far
}

// pendingStore maps the random token in the OTP form's hidden field to its
// pending login.
type pendingStore struct {
	mu      sync.Mutex
	byToken map[string]*pending
}

func newPendingStore() *pendingStore { return &pendingStore{byToken: map[string]*pending{}} }

// add starts a pending login for authRequestID and returns its token.
func (ps *pendingStore) add(authRequestID string, user User, now time.Time) string {
	token := rand.Text()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k, v := range ps.byToken {
		if !now.Before(v.expires) {
			delete(ps.byToken, k)
		}
	}
	ps.byToken[token] = &pending{authRequestID: authRequestID, user: user, expires: now.Add(pendingTTL)}
	return token
}

// get returns the pending login with token if it belongs to authRequestID
// and has not expired. A token presented with another request's ID is
// refused and left alone.
func (ps *pendingStore) get(token, authRequestID string, now time.Time) (pending, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.byToken[token]
	if !ok || p.authRequestID != authRequestID {
		return pending{}, false
	}
	if !now.Before(p.expires) {
		delete(ps.byToken, token)
		return pending{}, false
	}
	return *p, true
}

// fail counts a wrong code against token and reports whether the pending
// login may still be tried; after maxOTPAttempts it is removed.
func (ps *pendingStore) fail(token string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.byToken[token]
	if !ok {
		return false
	}
	p.attempts++
	if p.attempts >= maxOTPAttempts {
		delete(ps.byToken, token)
		return false
	}
	return true
}

// remove ends a pending login, once it succeeded or was cancelled, and
// reports whether it was still there: of two concurrent right codes, only
// one completes the login.
func (ps *pendingStore) remove(token string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, ok := ps.byToken[token]
	delete(ps.byToken, token)
	return ok
}

// endUser ends every session of user, in every browser: "Sign out
// everywhere".
func (st *sessionStore) endUser(user User) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, v := range st.byID {
		if v.user == user {
			delete(st.byID, k)
		}
	}
}
