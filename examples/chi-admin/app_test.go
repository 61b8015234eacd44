package main

// Tests of app.go: its routes and handlers.

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestHeadNavigationGetsTheChallenge: chi routes no HEAD to a GET handler
// by itself; the console adds middleware.GetHead, so that a HEAD navigation
// to a guarded page gets the same 303 to the IdP as a GET (RFC 9110 §9.3.2),
// and HEAD on an open route its 200.
func TestHeadNavigationGetsTheChallenge(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	c := newClient(t, nil)
	if p := c.signIn(con.idp, c.get(con.URL+"/login"), "alice"); p.status != http.StatusOK {
		t.Fatalf("login: %d %s", p.status, p.url)
	}
	head := newClient(t, func(*http.Request) bool { return true })
	head.http.Jar = c.http.Jar

	p := head.do("HEAD", con.URL+"/admin", nil, "text/html")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), con.idp.Issuer()+"/authorize?") {
		t.Errorf("HEAD /admin: %d %q, want a 303 to the IdP", p.status, p.header.Get("Location"))
	}
	if p := head.do("HEAD", con.URL+"/ping", nil, "text/html"); p.status != http.StatusOK || p.body != "" {
		t.Errorf("HEAD /ping: %d %q, want 200 and no body", p.status, p.body)
	}
}

// TestSpoofedUserNamesAreRefused: a user name that would display as
// someone else's (a bidi override, "Trojan Source") or break lines in logs
// and pages (NUL, U+2028) is refused with a 400, as stepup.Printable
// refuses such claims; ordinary names, accents included, are added.
func TestSpoofedUserNamesAreRefused(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	var added []string // by the rows that ran, in order
	for _, tc := range []struct {
		name string
		user string // the name posted
		want int
	}{
		{"BidiOverride", "mallory\u202Eecila", http.StatusBadRequest},
		{"NUL", "eve\x00", http.StatusBadRequest},
		{"LineSeparator", "line\u2028break", http.StatusBadRequest},
		{"BidiIsolate", "\u2066isolate\u2069", http.StatusBadRequest},
		{"InvalidUTF8", "bad\xffutf8", http.StatusBadRequest},
		{"SecondAliceWithAZeroWidthSpace", "alice\u200b", http.StatusBadRequest},
		{"SecondAliceWithAHangulFiller", "alice\u3164", http.StatusBadRequest},
		{"SecondAliceWithATag", "alice\U000E0041", http.StatusBadRequest},
		{"Empty", "", http.StatusBadRequest},
		{"TooLong", strings.Repeat("a", 65), http.StatusBadRequest},
		{"Plain", "carol", http.StatusSeeOther},
		{"AccentsSpacesAndPunctuation", "Zoë Ångström-O'Brien", http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/admin/users", strings.NewReader(url.Values{"name": {tc.user}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			con.addUser(w, r)
			if w.Code != tc.want {
				t.Errorf("name %q: %d, want %d", tc.user, w.Code, tc.want)
			}
			if tc.want == http.StatusBadRequest && !strings.Contains(w.Body.String(), "A user name is 1 to 64 printable characters.") {
				t.Errorf("name %q: the page does not say what a user name is:\n%s", tc.user, w.Body)
			}
			if tc.want == http.StatusSeeOther {
				added = append(added, tc.user)
			}
		})
	}
	con.mu.Lock()
	users := slices.Clone(con.users)
	con.mu.Unlock()
	if want := append([]string{"alice", "bob"}, added...); !slices.Equal(users, want) {
		t.Errorf("users %q, want %q: alice, bob and the ordinary names only", users, want)
	}
}
