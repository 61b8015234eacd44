package stepup

import (
	"errors"
)

// Errors passed to [Config.OnError].
var (
	// ErrNoSession means the request reached stepup without scs session data
	// in its context: the SessionManager's LoadAndSave (or Load) middleware
	// is not mounted in front of it.
	ErrNoSession = errors.New("stepup: no session in request context: mount SessionManager.LoadAndSave before stepup")
	// ErrCorruptRecord means a record stepup stored did not decode: an
	// elevation in the session, or a user's revocation record in the
	// store. The request fails closed. A corrupt elevation is removed and
	// audited as dropped with reason corrupt; a corrupt revocation record
	// stays, and the user's guarded requests fail closed until it expires
	// or is removed. A list of pending challenges that does not decode is
	// not an error: it is removed and audited the same way (with no scope),
	// a new challenge proceeds, and a callback that would have answered one
	// of its challenges is denied as unknown_state.
	ErrCorruptRecord = errors.New("stepup: stored record does not decode")
	// ErrSession means the session store failed while stepup changed the
	// session. It wraps the store's error.
	ErrSession = errors.New("stepup: session store")
)

// ConfigError reports a [Config] that [New] refuses.
type ConfigError struct {
	Field   string // the offending field, e.g. `Scopes["admin"].ACR`
	Problem string
	Err     error // the underlying error, for discovery failures
}

func (e *ConfigError) Error() string {
	msg := "stepup: config: " + e.Field + ": " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ConfigError) Unwrap() error { return e.Err }
