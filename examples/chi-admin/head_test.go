package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/alexedwards/scs/v2/memstore"
)

// TestHeadNavigationGetsTheChallenge: chi routes no HEAD to a GET handler
// by itself; the console adds middleware.GetHead, so that a HEAD navigation
// to a guarded page gets the same 303 to the IdP as a GET (RFC 9110 §9.3.2),
// and HEAD on an open route its 200.
func TestHeadNavigationGetsTheChallenge(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{store: memstore.NewWithCleanupInterval(0)})
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
