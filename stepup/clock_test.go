package stepup

import (
	"sync/atomic"
	"time"
)

// fakeClock is the Config.Now of this package's tests, moved by hand. The
// other modules' tests use stepuptest.Clock; the library's module does not
// require the test kit's module, which would bring zitadel with it.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.Set(t)
	return c
}

func (c *fakeClock) Now() time.Time  { return *c.t.Load() }
func (c *fakeClock) Set(t time.Time) { c.t.Store(&t) }

func (c *fakeClock) Advance(d time.Duration) {
	for {
		old := c.t.Load()
		t := old.Add(d)
		if c.t.CompareAndSwap(old, &t) {
			return
		}
	}
}
