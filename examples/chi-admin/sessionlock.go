package main

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// sessionLocks keeps a request that ends a session token from overlapping
// any other request of that session, in front of scs's LoadAndSave (scs's
// README suggests a lock there). LoadAndSave loads a snapshot of the
// session and, if the handler changed it, commits the whole snapshot after
// the handler: a request that loaded the session before a concurrent
// logout would commit it after, and the logged-out cookie would work again
// (docs/limits.md). The same holds for the callbacks, which renew the token
// (a new login is a change of privilege) and delete the old one.
//
// So a request whose exclusive func says true (logout, the callbacks, any
// unsafe method) waits until no other request of its session runs, and
// holds every other one off until it ends; the rest share the session with
// each other, so that concurrent reads, which commit nothing, never wait
// for one another. A waiting exclusive request holds new shared ones off
// too, so that it is not starved.
//
// Locks are per session cookie value, in this process only: replicas behind
// a load balancer need sticky sessions for the same guarantee. A request
// holds its lock for its own duration and nothing longer; the console has
// no long-lived requests (no streams, no websockets), and its longest, the
// callbacks, make at most two IdP calls of idpTimeout each. A request that
// cannot get its lock within wait is answered by busy, never queued for
// good, so a step-up callback never waits behind another request
// indefinitely. Requests without a session cookie take no lock.
type sessionLocks struct {
	cookie    string                   // the session cookie's name
	wait      time.Duration            // the longest a request waits for its session
	exclusive func(*http.Request) bool // requests that may end the session's token
	busy      http.Handler             // answers a request that waited too long

	mu   sync.Mutex
	held map[string]*sessionLock // by cookie value; only while in use
}

// sessionLock is one session's lock. Its fields are guarded by
// sessionLocks.mu.
type sessionLock struct {
	refs     int           // requests holding or waiting
	shared   int           // shared holders
	owned    bool          // an exclusive holder
	queued   int           // exclusive requests waiting
	released chan struct{} // closed, and replaced, whenever the lock changes hands
}

func newSessionLocks(cookie string, wait time.Duration, exclusive func(*http.Request) bool, busy http.Handler) *sessionLocks {
	return &sessionLocks{cookie: cookie, wait: wait, exclusive: exclusive, busy: busy, held: map[string]*sessionLock{}}
}

// Handler runs next with the request's session locked.
func (l *sessionLocks) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(l.cookie)
		if err != nil || c.Value == "" {
			next.ServeHTTP(w, r)
			return
		}
		unlock, ok := l.lock(r.Context(), c.Value, l.exclusive(r))
		if !ok {
			l.busy.ServeHTTP(w, r)
			return
		}
		defer unlock()
		next.ServeHTTP(w, r)
	})
}

// lock waits up to l.wait, or until ctx ends, for token's lock.
func (l *sessionLocks) lock(ctx context.Context, token string, exclusive bool) (unlock func(), ok bool) {
	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	l.mu.Lock()
	s := l.held[token]
	if s == nil {
		s = &sessionLock{released: make(chan struct{})}
		l.held[token] = s
	}
	s.refs++
	if exclusive {
		s.queued++
	}
	for {
		if exclusive && !s.owned && s.shared == 0 {
			s.queued--
			s.owned = true
			l.mu.Unlock()
			return func() { l.release(token, s, func() { s.owned = false }) }, true
		}
		if !exclusive && !s.owned && s.queued == 0 {
			s.shared++
			l.mu.Unlock()
			return func() { l.release(token, s, func() { s.shared-- }) }, true
		}
		changed := s.released
		l.mu.Unlock()
		select {
		case <-changed:
			l.mu.Lock()
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		l.release(token, s, func() {
			if exclusive {
				s.queued-- // may let shared requests in
			}
		})
		return nil, false
	}
}

// release applies change to s under l.mu, wakes its waiters and forgets s
// when nobody holds or waits for it.
func (l *sessionLocks) release(token string, s *sessionLock, change func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	change()
	close(s.released)
	s.released = make(chan struct{})
	if s.refs--; s.refs == 0 {
		delete(l.held, token)
	}
}

// inUse is the number of sessions with a request holding or waiting.
func (l *sessionLocks) inUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}
