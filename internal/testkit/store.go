package testkit

import (
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
)

// UpdateLocked is the atomic update of a store that lives in this
// process, as stepup.AtomicStore asks for (and as stepup treats scs's
// memstore): mu serialises every update of the store. Test stores that
// wrap a memstore implement Update with it.
func UpdateLocked(mu *sync.Mutex, s scs.Store, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	mu.Lock()
	defer mu.Unlock()
	b, found, err := s.Find(token)
	if err != nil {
		return err
	}
	next, expiry, err := update(b, found)
	if err != nil {
		return err
	}
	return s.Commit(token, next, expiry)
}
