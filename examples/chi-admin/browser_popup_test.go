package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
)

// The popup step-up in chromium, with its popup blocker on: the Add-user
// form submitted through stepup.js's stepupForm (static/forms.js), and
// "Extend admin mode" on the elevation card (static/elevation.js). The
// browser helpers are in browser_test.go.

const popupUser = "alice"

// TestBrowserAddUserStepsUpInAPopupAndPostsOnce: admin mode ends while the
// users page is open and a name is typed. Add opens a popup within the
// click (a new target); the POST gets the RFC 9470 401, the popup goes to
// the IdP, the sign-in and the one-time code are completed in it, and its
// page reports the grant and closes. The same POST is then sent once more:
// two POSTs in all (401, then 303), the guard challenged one, and the user
// is in the list once.
func TestBrowserAddUserStepsUpInAPopupAndPostsOnce(t *testing.T) {
	const newUser = "erin-added-through-the-popup"
	in, b, posts := typedAfterAdminModeEnded(t, newUser)
	clicked := time.Now()
	pop, _ := b.clickForPopup(t, in.URL, "add-user")
	if seen := pop.signInAtIdP(t, in.URL, popupUser); !slices.Equal(seen, []string{"password", "otp"}) {
		t.Errorf("IdP pages in the popup = %q, want the password, then the one-time code", seen)
	}
	closed := time.Now()

	b.waitFor(t, "the page after the retried POST", `!window.notReloaded && location.pathname === "/admin/users" && document.readyState === "complete"`, browserStepTimeout)
	t.Logf("click to popup closed %s; popup closed to the users page %s", closed.Sub(clicked).Round(time.Millisecond), time.Since(closed).Round(time.Millisecond))
	b.requireLocation(t, in.URL+"/admin/users")
	if n := b.countUser(t, newUser); n != 1 {
		t.Errorf("%s is in the list %d times, want once", newUser, n)
	}
	if got := posts(); !slices.Equal(got, []int64{401, 303}) {
		t.Errorf("POST /admin/users answers = %v, want 401 then 303: the retry lands once", got)
	}
	if got := auditTypes(t, in, "POST", "/admin/users"); !slices.Equal(got, []string{"challenge"}) {
		t.Errorf("audit events for POST /admin/users = %q, want one challenge", got)
	}
	if n := len(auditEvents(t, in, stepup.EventGranted)); n != 2 {
		t.Errorf("%d granted events, want 2: the first step-up and the popup's", n)
	}
	if text := browserRun(t, b, "read the card", chromedp.Text(chromedp.ID("elevation-title"))); text != "Admin mode is on" {
		t.Errorf("the card says %q after the popup step-up", text)
	}
}

// TestBrowserClosingTheStepUpPopupKeepsTheForm: the user closes the
// step-up popup before finishing at the IdP. The page is not reloaded,
// the typed name stays in the input, the form's data-stepup-error element
// says that the step-up window was closed, and nothing was added. Add
// again then opens a new popup, and that step-up adds the user once.
func TestBrowserClosingTheStepUpPopupKeepsTheForm(t *testing.T) {
	const typed = "frank, typed before the popup was closed"
	in, b, posts := typedAfterAdminModeEnded(t, typed)
	pop, closePopup := b.clickForPopup(t, in.URL, "add-user")
	closed := time.Now()
	closePopup()

	b.waitFor(t, "the form's error", `document.getElementById("add-user-error").textContent !== ""`, 5*time.Second)
	t.Logf("the form showed the error %s after the popup was closed", time.Since(closed).Round(time.Millisecond))
	type state struct {
		NotReloaded             bool
		Location, Typed, Error  string
		ErrorShown, ErrorInForm bool
	}
	got := browserRun(t, b, "read the page", chromedp.Evaluate[state](`(() => {
		const e = document.getElementById("add-user-error");
		return {
			NotReloaded: window.notReloaded === true,
			Location: location.pathname,
			Typed: document.getElementById("new-user").value,
			Error: e.textContent,
			ErrorShown: e.offsetParent !== null,
			ErrorInForm: e.closest("form") === document.getElementById("add-user-form") && e.hasAttribute("data-stepup-error"),
		};
	})()`))
	if !got.NotReloaded || got.Location != "/admin/users" || got.Typed != typed {
		t.Errorf("after the popup was closed: reloaded %v, at %s, input %q; want the same page with %q", !got.NotReloaded, got.Location, got.Typed, typed)
	}
	if got.Error != "step-up window was closed" || !got.ErrorShown || !got.ErrorInForm {
		t.Errorf("the form's error = %q (shown %v, the form's data-stepup-error %v), want \"step-up window was closed\"", got.Error, got.ErrorShown, got.ErrorInForm)
	}
	if n := b.countUser(t, typed); n != 0 {
		t.Errorf("%q is in the list %d times before any step-up", typed, n)
	}
	if got := posts(); !slices.Equal(got, []int64{401}) {
		t.Errorf("POST /admin/users answers = %v, want the one 401", got)
	}

	// The form still works: Add again, this time through to the end.
	pop, _ = b.clickForPopup(t, in.URL, "add-user")
	pop.signInAtIdP(t, in.URL, popupUser)
	b.waitFor(t, "the page after the retried POST", `!window.notReloaded && location.pathname === "/admin/users" && document.readyState === "complete"`, browserStepTimeout)
	if n := b.countUser(t, typed); n != 1 {
		t.Errorf("%q is in the list %d times, want once", typed, n)
	}
	if got := posts(); !slices.Equal(got, []int64{401, 401, 303}) {
		t.Errorf("POST /admin/users answers = %v, want 401, 401, 303", got)
	}
}

// TestBrowserBlockedPopupFallsBackToTheFullPageStepUp: where window.open
// returns null (a popup blocker), Add sends the window itself to the
// step-up: the tab navigates to the IdP, and comes back to the users page.
// The typed request is lost, as without the script, and nothing is added.
func TestBrowserBlockedPopupFallsBackToTheFullPageStepUp(t *testing.T) {
	in, b := elevatedOnUsersPage(t)
	const typed = "grace, typed where popups are blocked"
	b.do(t, "block window.open", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.open = () => null;`,
		})
		return chromedp.Void{}, err
	})
	b.load(t, "reload /admin/users", chromedp.Navigate(in.URL+"/admin/users"))
	if blocked := browserRun(t, b, "try window.open", chromedp.Evaluate[bool](`window.open("about:blank") === null`)); !blocked {
		t.Fatal("window.open is not blocked")
	}
	posts := b.recordPosts(t, in.URL+"/admin/users")

	b.endAdminModeElsewhere(t)
	b.do(t, "type a new user's name", chromedp.SendKeys(chromedp.ID("new-user"), typed))
	resp := b.load(t, "click Add", chromedp.Click(chromedp.ID("add-user")))
	b.requireIdP(t, in.URL, resp)
	if got := posts(); !slices.Equal(got, []int64{401}) {
		t.Errorf("POST /admin/users answers = %v, want the one 401", got)
	}
	b.signInAtIdP(t, in.URL, popupUser)
	b.requireLocation(t, in.URL+"/admin/users") // the 401's return_to
	if n := b.countUser(t, typed); n != 0 {
		t.Errorf("%q is in the list %d times: the full-page step-up must not send the POST again", typed, n)
	}
}

// TestBrowserExtendAdminModeInAPopup: "Extend admin mode" on the elevation
// card steps up again in a popup opened within the click; the card then
// shows the later end, without a reload. After admin mode ended
// elsewhere, the same button, now "Step up again", turns the card back on.
func TestBrowserExtendAdminModeInAPopup(t *testing.T) {
	in, b := elevatedOnUsersPage(t)
	type card struct {
		Ends                                  int64
		EndsAt, Title, Countdown, Status, Cls string
		NotReloaded                           bool
	}
	readCard := func() card {
		return browserRun(t, b, "read the card", chromedp.Evaluate[card](`({
			Ends: Number(document.getElementById("countdown").dataset.ends),
			EndsAt: document.getElementById("ends-at").textContent,
			Title: document.getElementById("elevation-title").textContent,
			Countdown: document.getElementById("countdown").textContent,
			Status: document.getElementById("extend-status").textContent,
			Cls: document.getElementById("elevation").className,
			NotReloaded: window.notReloaded === true,
		})`))
	}
	extend := func(what string) {
		t.Helper()
		clicked := time.Now()
		pop, _ := b.clickForPopup(t, in.URL, "extend-admin")
		if seen := pop.signInAtIdP(t, in.URL, popupUser); !slices.Equal(seen, []string{"password", "otp"}) {
			t.Errorf("IdP pages in the popup = %q, want the password, then the one-time code", seen)
		}
		t.Logf("%s: click to popup closed %s", what, time.Since(clicked).Round(time.Millisecond))
	}

	before := readCard()
	browserRun(t, b, "mark the document", chromedp.Evaluate[bool](`window.notReloaded = true`))
	// Deadlines are whole seconds: step up again in a later second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	extend("extend")
	b.waitFor(t, "the card's new end", fmt.Sprintf(`Number(document.getElementById("countdown").dataset.ends) > %d`, before.Ends), 5*time.Second)
	after := readCard()
	if !after.NotReloaded || after.EndsAt == before.EndsAt || after.Title != "Admin mode is on" || after.Status != "" || after.Cls != "card elevated" {
		t.Errorf("the card after Extend: %+v, before: %+v; want a later end, no reload", after, before)
	}
	t.Logf("the card's end moved from %s to %s", before.EndsAt, after.EndsAt)
	if n := len(auditEvents(t, in, stepup.EventGranted)); n != 2 {
		t.Errorf("%d granted events, want 2: the first step-up and the extension", n)
	}

	b.endAdminModeElsewhere(t)
	if text := browserRun(t, b, "read the button", chromedp.Text(chromedp.ID("extend-admin"))); text != "Step up again" {
		t.Errorf("the button says %q once admin mode ended, want Step up again", text)
	}
	extend("after admin mode ended")
	b.waitFor(t, "the card turned back on", `document.getElementById("elevation").className === "card elevated"`, 5*time.Second)
	b.waitFor(t, "the countdown running", `/^(\d+ min )?\d+ s$/.test(document.getElementById("countdown").textContent)`, 3*time.Second)
	again := readCard()
	badge := browserRun(t, b, "read the badge", chromedp.Text(chromedp.ID("admin-badge")))
	button := browserRun(t, b, "read the button", chromedp.Text(chromedp.ID("extend-admin")))
	if !again.NotReloaded || again.Title != "Admin mode is on" || badge != "admin mode" || button != "Extend admin mode" || again.Ends < after.Ends {
		t.Errorf("the card after Extend once admin mode had ended: %+v, badge %q, button %q", again, badge, button)
	}
	if resp := b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin")); resp.Status != 200 || resp.URL != in.URL+"/admin" {
		t.Errorf("/admin after the extension: %d %s, want 200 without a step-up", resp.Status, resp.URL)
	}
}

// elevatedOnUsersPage starts a console on its development IdP and a
// browser, logs alice in and steps her up, and leaves the tab on
// /admin/users with the card counting down.
func elevatedOnUsersPage(t *testing.T) (*instance, *browser) {
	t.Helper()
	chromium := testkit.RequireTool(t, "chromium", "chromium-browser")
	in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0")
	b := startBrowser(t, chromium) // closed before the app stops: cleanups run last-in first-out
	resp := b.load(t, "open /admin/users", chromedp.Navigate(in.URL+"/admin/users"))
	b.requireIdP(t, in.URL, resp)
	b.signInAtIdP(t, in.URL, popupUser)
	b.requireLocation(t, in.URL+"/admin/users")
	b.waitFor(t, "the countdown", `/^(\d+ min )?\d+ s$/.test(document.getElementById("countdown").textContent)`, 5*time.Second)
	return in, b
}

// typedAfterAdminModeEnded is the users page after admin mode ended in
// another tab, with name typed into the Add-user form: elevatedOnUsersPage,
// then endAdminModeElsewhere. It marks the document (window.notReloaded),
// and records the answers to POST /admin/users from before admin mode
// ended (recordPosts).
func typedAfterAdminModeEnded(t *testing.T, name string) (*instance, *browser, func() []int64) {
	t.Helper()
	in, b := elevatedOnUsersPage(t)
	posts := b.recordPosts(t, in.URL+"/admin/users")
	b.endAdminModeElsewhere(t)
	b.do(t, "type a new user's name", chromedp.SendKeys(chromedp.ID("new-user"), name))
	browserRun(t, b, "mark the document", chromedp.Evaluate[bool](`window.notReloaded = true`))
	return in, b, posts
}

// endAdminModeElsewhere ends admin mode as "End admin mode" in another tab
// would, and waits until the page's card says so.
func (b *browser) endAdminModeElsewhere(t *testing.T) {
	t.Helper()
	if status := browserRun(t, b, "POST /stepup/drop", chromedp.Evaluate[int](`fetch("/stepup/drop", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise)); status != 200 {
		t.Fatalf("POST /stepup/drop ended on %d", status)
	}
	b.waitFor(t, "the card says admin mode ended", `document.getElementById("elevation").classList.contains("ended")`, 10*time.Second)
}

// clickForPopup clicks the element with this id, which opens the step-up
// popup (a new target), attaches to that popup and waits until it shows
// the IdP's sign-in form; it was opened blank, or at appURL's
// /stepup/start. The func it also returns closes the popup as the user
// would.
func (b *browser) clickForPopup(t *testing.T, appURL, id string) (*browser, func()) {
	t.Helper()
	ch := chromedp.WaitNewTarget(b.ctx, func(info *target.Info) bool { return info.Type == "page" })
	b.do(t, "click #"+id, chromedp.Click(chromedp.ID(id)))
	var popupID target.ID
	select {
	case popupID = <-ch:
	case <-time.After(browserStepTimeout):
	}
	if popupID == "" {
		t.Fatalf("no popup opened within %s of the click on #%s\n%s", browserStepTimeout, id, b.describe())
	}
	// The popup lives as long as the context of its first Run: this one,
	// which has no per-step timeout.
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(popupID))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("attaching to the popup: %v", err)
	}
	closed, err := chromedp.Detached(ctx)
	if err != nil {
		t.Fatalf("watching the popup: %v", err)
	}
	pop := &browser{ctx: ctx, output: b.output, closed: closed}
	if !pop.waitFor(t, "the popup at the IdP's sign-in form",
		fmt.Sprintf(`location.origin !== %q && location.pathname === "/login" && !!document.getElementById("password")`, appURL), browserStepTimeout) {
		t.Fatal("the popup closed before it reached the IdP")
	}
	return pop, func() {
		t.Helper()
		if err := chromedp.Cancel(ctx); err != nil {
			t.Fatalf("closing the popup: %v", err)
		}
	}
}

// recordPosts records the answers to the POST requests that the tab sends
// to url from now on; the func it returns lists their statuses, in order.
// A redirect counts as its 3xx status.
func (b *browser) recordPosts(t *testing.T, url string) func() []int64 {
	t.Helper()
	var mu sync.Mutex
	var ids []network.RequestID
	statuses := map[network.RequestID]int64{}
	ctx, cancel := context.WithCancel(b.ctx)
	t.Cleanup(cancel)
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if _, ok := statuses[e.RequestID]; ok && e.RedirectResponse != nil {
				statuses[e.RequestID] = e.RedirectResponse.Status
			} else if e.Request.Method == "POST" && e.Request.URL == url {
				ids = append(ids, e.RequestID)
				statuses[e.RequestID] = 0
			}
		case *network.EventResponseReceived:
			if st, ok := statuses[e.RequestID]; ok && st == 0 {
				statuses[e.RequestID] = e.Response.Status
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		out := []int64{}
		for _, id := range ids {
			out = append(out, statuses[id])
		}
		return out
	}
}

// countUser counts the entries of the users page's list that are name.
func (b *browser) countUser(t *testing.T, name string) int {
	t.Helper()
	return browserRun(t, b, "count "+name+" in the list", chromedp.Evaluate[int](fmt.Sprintf(
		`[...document.querySelectorAll("#users li .user-name")].filter(n => n.textContent === %q).length`, name)))
}

// auditTypes lists the types of alice's audit events for method and
// route, in order.
func auditTypes(t *testing.T, in *instance, method, route string) []string {
	t.Helper()
	var out []string
	for _, e := range auditEvents(t, in, "") {
		if e.Subject == popupUser && e.Method == method && e.Route == route {
			out = append(out, string(e.Type))
		}
	}
	return out
}
