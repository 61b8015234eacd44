package main

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"sync"

	"github.com/oidc-stepup/stepup/stepup"
)

// auditLog prints each event as a JSON line and keeps the newest ones for
// /admin/audit.
type auditLog struct {
	mu     sync.Mutex
	out    *json.Encoder
	events []stepup.Event // oldest first, at most keep
	keep   int
}

func newAuditLog(w io.Writer, keep int) *auditLog {
	return &auditLog{out: json.NewEncoder(w), keep: keep}
}

func (l *auditLog) Audit(_ context.Context, e stepup.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.out.Encode(e)
	if len(l.events) == l.keep {
		l.events = slices.Delete(l.events, 0, 1)
	}
	l.events = append(l.events, e)
}

// recent returns the kept events, newest first.
func (l *auditLog) recent() []stepup.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.events)
	slices.Reverse(out)
	return out
}
