package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/alexedwards/scs/v2/memstore"
)

// TestSpoofedUserNamesAreRefused: a user name that would display as
// someone else's (a bidi override, "Trojan Source") or break lines in logs
// and pages (NUL, U+2028) is refused with a 400, as stepup.Printable
// refuses such claims; ordinary names, accents included, are added.
func TestSpoofedUserNamesAreRefused(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{store: memstore.NewWithCleanupInterval(0)})
	for name, want := range map[string]int{
		"mallory\u202Eecila":    http.StatusBadRequest,
		"eve\x00":               http.StatusBadRequest,
		"line\u2028break":       http.StatusBadRequest,
		"\u2066isolate\u2069":   http.StatusBadRequest,
		"bad\xffutf8":           http.StatusBadRequest,
		"":                      http.StatusBadRequest,
		strings.Repeat("a", 65): http.StatusBadRequest,
		"carol":                 http.StatusSeeOther,
		"Zoë Ångström-O'Brien":  http.StatusSeeOther,
	} {
		r := httptest.NewRequest("POST", "/admin/users", strings.NewReader(url.Values{"name": {name}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		con.addUser(w, r)
		if w.Code != want {
			t.Errorf("name %q: %d, want %d", name, w.Code, want)
		}
		if want == http.StatusBadRequest && !strings.Contains(w.Body.String(), "A user name is 1 to 64 printable characters.") {
			t.Errorf("name %q: the page does not say what a user name is:\n%s", name, w.Body)
		}
	}
	con.mu.Lock()
	users := slices.Clone(con.users)
	con.mu.Unlock()
	if !slices.Equal(users, []string{"alice", "bob", "carol", "Zoë Ångström-O'Brien"}) && !slices.Equal(users, []string{"alice", "bob", "Zoë Ångström-O'Brien", "carol"}) {
		t.Errorf("users %q, want alice, bob and the two ordinary names only", users)
	}
}
