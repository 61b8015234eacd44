package stepuptest

import (
	"sync"
	"time"
)

// Clock is a fake clock that tests move by hand, so that expiry is tested
// without sleeping: pass its Now method as the Now field of the Config of
// github.com/oidc-stepup/stepup/stepup (or of go-oidc's Config). It is safe
// for concurrent use.
//
// The provider itself stamps iat, exp and auth_time with the real clock. A
// test that runs real logins should therefore start the clock at
// time.Now() and only move it forward.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time. Pass the method value as a Now function.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t, forward or back.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
