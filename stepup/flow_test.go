package stepup

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestOpenRedirectThroughReturnToIsRefused: return_to must stay on this
// origin whatever a browser makes of it.
func TestOpenRedirectThroughReturnToIsRefused(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"/":                     true,
		"/admin":                true,
		"/admin/users?page=2#x": true,
		"/a/%2F%2Fevil.test":    true,
		"":                      false,
		"admin":                 false,
		"//evil.test":           false,
		"//evil.test/admin":     false,
		"/\\evil.test":          false,
		"/admin\\..\\x":         false,
		"https://evil.test/":    false,
		"javascript:alert(1)":   false,
		"/\t/evil.test":         false,
		"/\n/evil.test":         false,
		"/admin\x00":            false,
		"\\\\evil.test":         false,
		"/" + strings.Repeat("a", maxReturnToLen): false,
	} {
		if _, ok := SafeReturnTo(s); ok != want {
			t.Errorf("SafeReturnTo(%q) ok = %v, want %v", s, ok, want)
		}
	}
}

func TestStartHandlerFallsBackToDefaultReturnTo(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for target, wantReturn := range map[string]string{
		"/stepup/start?scope=admin&return_to=%2Fadmin%2Fusers":     "/admin/users",
		"/stepup/start?scope=admin&return_to=%2F%2Fevil.test":      "/",
		"/stepup/start?scope=admin&return_to=https%3A%2F%2Fe.test": "/",
		"/stepup/start?scope=admin":                                "/",
	} {
		var got string
		w := h.serve(navigation("GET", target, "alice"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.StartHandler().ServeHTTP(w, r)
			list, _ := decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
			if len(list) == 1 {
				got = list[0].returnTo
			}
		}))
		if w.Code != http.StatusSeeOther || got != wantReturn {
			t.Errorf("%s: status %d, return_to %q, want %q", target, w.Code, got, wantReturn)
		}
	}
	w := h.serve(navigation("GET", "/stepup/start?scope=root", "alice"), nil, h.su.StartHandler())
	if w.Code != http.StatusBadRequest {
		t.Errorf("unknown scope: status %d", w.Code)
	}
	w = h.serve(navigation("GET", "/stepup/start?scope=admin", ""), nil, h.su.StartHandler())
	if w.Code != http.StatusUnauthorized {
		t.Errorf("no user: status %d", w.Code)
	}
}

// TestPendingChallengesAreCappedAndExpire: nine challenges keep the newest
// eight; a challenge older than ten minutes is swept on the next one.
func TestPendingChallengesAreCappedAndExpire(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var states []string
	var list []pending
	h.serve(navigation("GET", "/stepup/start?scope=admin", "alice"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 9 {
			rw := &discard{h: http.Header{}}
			h.su.StartHandler().ServeHTTP(rw, r.Clone(r.Context()))
			u, _ := url.Parse(rw.h.Get("Location"))
			states = append(states, u.Query().Get("state"))
			h.clock.Advance(time.Second)
		}
		list, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
		if len(list) != maxPending || list[0].state != states[1] || list[7].state != states[8] {
			t.Fatalf("kept %+v; want the newest 8 of %q", list, states)
		}
		h.clock.Advance(challengeTTL)
		rw := &discard{h: http.Header{}}
		h.su.StartHandler().ServeHTTP(rw, r.Clone(r.Context()))
		list, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
		if len(list) != 1 {
			t.Errorf("after ten minutes %d challenges are still pending", len(list))
		}
	}))
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func TestParseCallbackLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("c", 3000) // some IdPs issue long, self-contained codes
	if p, ok := parseCallback("state=S&code=" + long); !ok || p.code != long || p.state != "S" {
		t.Errorf("a 3000-byte code was refused")
	}
	for _, q := range []string{
		"state=S&code=" + strings.Repeat("c", maxCodeLen+1),
		"state=S&state=S&code=c",
		"state=S&code=c%0a",
		"state=S&error=access%22denied",
		"state=S&code=c&%zz",
	} {
		p, ok := parseCallback(q)
		if ok {
			t.Errorf("parseCallback(%.40q) accepted it", q)
		}
		if strings.HasPrefix(q, "state=S&code=c") && p.state != "S" {
			t.Errorf("parseCallback(%.40q) lost the well-formed state, so its challenge would not be consumed", q)
		}
	}
}
