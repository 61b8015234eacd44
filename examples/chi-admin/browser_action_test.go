package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/oidc-stepup/stepup/stepup"
)

// Step-up for one action in chromium: each user's Delete on /admin/users
// (POST /admin/users/delete, RequireStepUpFor "delete-user") through
// stepup.js's popup. The browser helpers are in browser_test.go and
// browser_popup_test.go.

// TestBrowserDeleteUserNeedsAnApprovalOfThatDeletion: alice, in admin
// mode, clicks Delete for bob. The POST gets the RFC 9470 401, a popup
// opens at the dev IdP, which shows "chi-admin asks you to approve: Delete
// user bob" (the RFC 9396 authorization_details stepup sent), and she signs
// in with her password and one-time code there. The popup closes, the same
// POST is sent again, uses the approval up and deletes bob, and carol
// stays. Then Delete for carol: bob's approval does not cover it, so a new
// popup opens and asks to approve deleting carol; she closes it, the form
// says so, and carol is still listed. The audit log has one approval, for
// bob, and one use of it.
func TestBrowserDeleteUserNeedsAnApprovalOfThatDeletion(t *testing.T) {
	start := time.Now()
	in, b := elevatedOnUsersPage(t)
	for _, name := range []string{"bob", "carol"} {
		if b.countUser(t, name) == 0 {
			b.addUserByFetch(t, name)
		}
	}
	b.load(t, "reload /admin/users", chromedp.Navigate(in.URL+"/admin/users"))
	if b.countUser(t, "bob") != 1 || b.countUser(t, "carol") != 1 {
		t.Fatalf("want bob and carol listed once\n%s", b.describe())
	}
	posts := b.recordPosts(t, in.URL+"/admin/users/delete")
	browserRun(t, b, "mark the document", chromedp.Evaluate[bool](`window.notReloaded = true`))

	clicked := time.Now()
	pop, _ := b.clickForPopup(t, in.URL, "delete-bob")
	if got := pop.approvalText(t); got != "chi-admin asks you to approve: Delete user bob" {
		t.Errorf("the IdP's page in the popup says %q, want it to ask to approve deleting bob", got)
	}
	if seen := pop.signInAtIdP(t, in.URL, popupUser); !slices.Equal(seen, []string{"password", "otp"}) {
		t.Errorf("IdP pages in the popup = %q, want the password, then the one-time code", seen)
	}
	closed := time.Now()
	b.waitFor(t, "the page after the retried POST", `!window.notReloaded && location.pathname === "/admin/users" && document.readyState === "complete"`, browserStepTimeout)
	t.Logf("click on Delete to popup closed %s; popup closed to the users page %s", closed.Sub(clicked).Round(time.Millisecond), time.Since(closed).Round(time.Millisecond))
	if bob, carol := b.countUser(t, "bob"), b.countUser(t, "carol"); bob != 0 || carol != 1 {
		t.Fatalf("after the approved delete: bob listed %d times, carol %d; want bob gone, carol there\n%s", bob, carol, b.describe())
	}
	if got := posts(); !slices.Equal(got, []int64{401, 303}) {
		t.Errorf("POST /admin/users/delete answers = %v, want 401 then 303: the retry deletes once", got)
	}

	// The approval was for bob, and is used up: carol needs her own.
	browserRun(t, b, "mark the document", chromedp.Evaluate[bool](`window.notReloaded = true`))
	pop, closePopup := b.clickForPopup(t, in.URL, "delete-carol")
	if got := pop.approvalText(t); got != "chi-admin asks you to approve: Delete user carol" {
		t.Errorf("the second popup says %q, want it to ask to approve deleting carol", got)
	}
	closePopup()
	formError := `document.getElementById("delete-carol").closest("form").querySelector("[data-stepup-error]").textContent`
	b.waitFor(t, "the Delete form's error", formError+` !== ""`, 5*time.Second)
	if got := browserRun(t, b, "read the form's error", chromedp.Evaluate[string](formError)); got != "step-up window was closed" {
		t.Errorf("carol's Delete form says %q, want \"step-up window was closed\"", got)
	}
	if !browserRun(t, b, "check the page was not reloaded", chromedp.Evaluate[bool](`window.notReloaded === true`)) {
		t.Error("the page was reloaded after the popup was closed")
	}
	if n := b.countUser(t, "carol"); n != 1 {
		t.Errorf("carol is listed %d times without an approval of her deletion, want once", n)
	}
	if got := posts(); !slices.Equal(got, []int64{401, 303, 401}) {
		t.Errorf("POST /admin/users/delete answers = %v, want 401, 303, 401", got)
	}

	// One approval, of deleting bob, used once, by the retried POST.
	var granted, consumed []stepup.Event
	for _, e := range auditEvents(t, in, "") {
		if e.Scope != "delete-user" {
			continue
		}
		line, _ := json.Marshal(e)
		t.Logf("audit: %s", line)
		switch e.Type {
		case stepup.EventGranted:
			granted = append(granted, e)
		case stepup.EventConsumed:
			consumed = append(consumed, e)
		}
	}
	if len(granted) != 1 || !deletes(granted[0], "bob") {
		t.Errorf("granted events of delete-user: %s, want one, for deleting bob", eventsString(granted))
	}
	if len(consumed) != 1 || !deletes(consumed[0], "bob") || consumed[0].Method != "POST" || consumed[0].Route != "/admin/users/delete" ||
		len(granted) != 1 || consumed[0].Elevation != granted[0].Elevation {
		t.Errorf("consumed events: %s, want exactly one, of the approval granted for bob, by POST /admin/users/delete", eventsString(consumed))
	}
	t.Logf("the whole test took %s", time.Since(start).Round(time.Millisecond))
}

// approvalText is the line the dev IdP's page shows in #approve-text.
func (b *browser) approvalText(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(browserRun(t, b, "read #approve-text", chromedp.Text(chromedp.ID("approve-text"))))
}

// addUserByFetch adds a user as the Add-user form does, from the page, in
// admin mode.
func (b *browser) addUserByFetch(t *testing.T, name string) {
	t.Helper()
	status := browserRun(t, b, "add "+name, chromedp.Evaluate[int](fmt.Sprintf(
		`fetch("/admin/users", {method: "POST", body: new URLSearchParams({name: %q})}).then(r => r.status)`, name), chromedp.EvalAwaitPromise))
	if status != 200 {
		t.Fatalf("adding %s ended on %d", name, status)
	}
}

// deletes reports whether e is about deleting the user name.
func deletes(e stepup.Event, name string) bool {
	return e.ActionType == userActionType && slices.Equal(e.Actions, []string{"delete"}) && e.ActionIdentifier == name
}

func eventsString(es []stepup.Event) string {
	b, _ := json.Marshal(es)
	return string(b)
}
