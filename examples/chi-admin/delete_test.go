package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oidc-stepup/stepup/stepup"
)

// TestDeleteUserWithoutJavaScriptNeedsItsOwnApproval: POST
// /admin/users/delete as a plain form posts it, no popup. A name that is
// not listed is refused (400). Deleting bob gets the RFC 9470 401 naming a
// step-up for that deletion; the IdP asks to approve "Delete user bob",
// and the full-page step-up comes back to the list without deleting
// anyone (the return uses nothing up). The approval does not delete alice;
// it deletes bob once, and a bob added again needs a new one.
func TestDeleteUserWithoutJavaScriptNeedsItsOwnApproval(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	c := newClient(t, nil)
	c.stepUp(con.idp, con.URL, "alice")
	del := func(name string) result {
		t.Helper()
		return c.do("POST", con.URL+"/admin/users/delete", url.Values{"name": {name}}, "text/html")
	}
	listed := func(p result, name string) bool {
		return strings.Contains(p.body, `<span class="user-name">`+name+`</span>`)
	}

	for _, name := range []string{"", "nobody", "bob\u202e"} {
		if p := del(name); p.status != http.StatusBadRequest {
			t.Errorf("delete %q: %d, want 400", name, p.status)
		}
	}

	p := del("bob")
	var challenge struct {
		Description string `json:"error_description"`
		StepUpURL   string `json:"step_up_url"`
	}
	if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), "insufficient_user_authentication") ||
		json.Unmarshal([]byte(p.body), &challenge) != nil || !strings.Contains(challenge.StepUpURL, "action=") {
		t.Fatalf("delete bob without an approval: %d %q %s, want the 401 naming an action step-up", p.status, p.header.Get("WWW-Authenticate"), p.body)
	}
	if !strings.HasSuffix(challenge.Description, "Delete user bob") {
		t.Errorf("error_description = %q", challenge.Description)
	}
	p = c.get(con.URL + challenge.StepUpURL)
	if want := `<p id="approve-text"><strong>console</strong> asks you to approve: <strong>Delete user bob</strong></p>`; !strings.Contains(p.body, want) {
		t.Fatalf("the IdP's page lacks %s: %d %s", want, p.status, p.url)
	}
	p = c.signIn(con.idp, p, "alice")
	if p.status != http.StatusOK || p.url.String() != con.URL+"/admin/users" || !listed(p, "bob") {
		t.Fatalf("after the approval: %d %s, bob listed %v; want the list, bob still there", p.status, p.url, listed(p, "bob"))
	}

	if p := del("alice"); p.status != http.StatusUnauthorized {
		t.Errorf("delete alice with bob's approval: %d, want 401", p.status)
	}
	p = del("bob")
	if p.status != http.StatusOK || p.url.Path != "/admin/users" || listed(p, "bob") || !listed(p, "alice") {
		t.Fatalf("delete bob with the approval: %d %s, want the list without bob, with alice", p.status, p.url)
	}
	if p := c.do("POST", con.URL+"/admin/users", url.Values{"name": {"bob"}}, "text/html"); !listed(p, "bob") {
		t.Fatalf("adding bob again: %d %s", p.status, p.url)
	}
	if p := del("bob"); p.status != http.StatusUnauthorized {
		t.Errorf("a second delete of bob with one approval: %d, want 401", p.status)
	}

	granted, consumed := 0, 0
	for _, e := range con.audit.recent() {
		if e.Scope == "delete-user" && e.Type == stepup.EventGranted && e.ActionIdentifier == "bob" {
			granted++
		}
		if e.Type == stepup.EventConsumed && e.ActionIdentifier == "bob" {
			consumed++
		}
	}
	if granted != 1 || consumed != 1 {
		t.Errorf("%d granted and %d consumed events for deleting bob, want 1 and 1", granted, consumed)
	}
}
