package stepup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/alexedwards/scs/v2"
)

// scs has no locking across requests: each request commits its whole
// snapshot of the session, and the last commit wins. A request that loaded
// the session before [StepUp.Drop] and commits after it writes the dropped
// elevation back. So Drop also leaves a revocation record in the session
// store, keyed by the elevation's id and kept until the elevation's
// deadline, and the guard refuses an elevation whose id has one. The store
// is the SessionManager's own, so revocations reach every replica that
// shares sessions, in memory, Redis or Postgres alike.

// newElevationID returns a random elevation id: 128 bits, base64url. It
// starts with "E;": a semicolon never occurs in a cookie value, so no client
// can present an id as its session token, load the revocation record as a
// session and destroy it.
func newElevationID() string {
	var b [16]byte
	rand.Read(b[:])
	return "E;" + base64.RawURLEncoding.EncodeToString(b[:])
}

// revoke records that the elevation id must not be honoured again before
// until. The record is an empty session in the store's codec, so that
// SessionManager.Iterate can still decode everything in the store.
func (s *StepUp) revoke(ctx context.Context, id string, until time.Time) error {
	b, err := s.sm.Codec.Encode(until, map[string]interface{}{})
	if err != nil {
		return err
	}
	if cs, ok := s.sm.Store.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, id, b, until)
	}
	return s.sm.Store.Commit(id, b, until)
}

// revoked reports whether the elevation id has a revocation record. A store
// error is returned, and the caller fails closed.
func (s *StepUp) revoked(ctx context.Context, id string) (bool, error) {
	var found bool
	var err error
	if cs, ok := s.sm.Store.(scs.CtxStore); ok {
		_, found, err = cs.FindCtx(ctx, id)
	} else {
		_, found, err = s.sm.Store.Find(id)
	}
	return found, err
}
