package stepup

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// The callback's rules that need an OpenID Provider (state, iss, the code
// exchange, signatures and keys) are tested at the repository's root, which
// runs stepuptest's provider; these need none.

func TestHandlersRefuseOtherMethodsAndRepeatedParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		handler http.Handler
		req     *http.Request
		want    int
	}{
		{h.su.CallbackHandler(), navigation("POST", "/stepup/callback?state=x&code=y", "alice"), http.StatusMethodNotAllowed},
		{h.su.StartHandler(), navigation("POST", "/stepup/start?scope=admin", "alice"), http.StatusMethodNotAllowed},
		{h.su.StartHandler(), navigation("GET", "/stepup/start?scope=admin&scope=admin", "alice"), http.StatusBadRequest},
	} {
		if w := h.serve(tc.req, nil, tc.handler); w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.req.Method, tc.req.URL, w.Code, tc.want)
		}
	}
	var got []pending
	h.serve(navigation("GET", "/stepup/start?scope=admin&return_to=%2Fa&return_to=%2F%2Fevil.test", "alice"), nil,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.StartHandler().ServeHTTP(w, r)
			got, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
		}))
	if len(got) != 1 || got[0].returnTo != "/" {
		t.Errorf("a repeated return_to: %+v, want the default", got)
	}
}

// TestCorruptPendingListIsDroppedNotTrusted: a pending-challenge list that
// does not decode is removed, and its callback is unknown_state.
func TestCorruptPendingListIsDroppedNotTrusted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var left bool
	w := h.serve(navigation("GET", "/stepup/callback?state=S&code=C", "alice"), map[string]any{"stepup.pending": "p1\x1eS\x1fN"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.CallbackHandler().ServeHTTP(w, r)
			left = h.sm.Exists(r.Context(), "stepup.pending")
		}))
	if w.Code != http.StatusForbidden || left {
		t.Errorf("status %d, corrupt list left in the session: %v", w.Code, left)
	}
	if ev := h.audit.Events(); len(ev) != 2 || ev[0].Reason != ReasonCorrupt || ev[1].Reason != ReasonUnknownState {
		t.Errorf("audit %+v, want dropped/corrupt then denied/unknown_state", ev)
	}
}

func TestDefaultErrorResponseHidesTheError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := httptestRecorder()
	errStoreDown := errors.New("store down")
	h.su.cfg.OnError(w, navigation("GET", "/admin", "alice"), errStoreDown)
	if w.Code != 500 || strings.Contains(w.Body.String(), errStoreDown.Error()) {
		t.Errorf("default OnError: %d %q", w.Code, w.Body)
	}
}
