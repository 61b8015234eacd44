package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
)

// The bounds of the browser test. Every chromedp call runs under one of them,
// so that a hung browser fails the test instead of hanging it.
const (
	browserStartTimeout = 30 * time.Second // chromium up and its first tab open
	browserStepTimeout  = 20 * time.Second // one navigation, form or read
	browserLifetime     = 3 * time.Minute  // the whole browser, whatever happens
	browserCloseTimeout = 10 * time.Second // graceful close, then the leftovers check
	elevationEndTimeout = 15 * time.Second // waiting for a 5 s ID token to run out
)

// screenshotPath is where STEPUP_UPDATE_SCREENSHOT=1 writes the admin console
// screenshot for the docs, relative to the test's directory.
var screenshotPath = filepath.Join("..", "..", "docs", "admin-console.png")

// TestBrowserStepUpWithOneTimeCode drives Debian's chromium through the
// console with the embedded dev IdP, on the real clock: the primary login,
// the step-up with the one-time code the IdP's page shows, the elevation
// running out with the ID token (exp, 5 s, minus 1 s of skew), the
// re-challenge, and a form POST after expiry, which must end on the RFC 9470
// 401 and not be lost to a redirect.
//
// The admin scope has no -max-age, so each step-up sends max_age=0, which
// the dev IdP treats as prompt=login (OIDC Core §3.1.2.1): every step-up
// shows the sign-in form and then the one-time code, even with a strong
// IdP session. signInAtIdP also copes with an IdP that skips a form.
func TestBrowserStepUpWithOneTimeCode(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium", "chromium-browser")
	in := startApp(t,
		"-addr", "127.0.0.1:0",
		"-dev-idp-addr", "127.0.0.1:0",
		"-dev-id-token-ttl", "5s",
		"-skew", "1s",
	)
	b := startBrowser(t, chromium) // closed before the app stops: cleanups run last-in first-out
	b.do(t, "set the viewport to 1200x800", chromedp.EmulateViewport(1200, 800))
	const user = "alice"

	ok := t.Run("login and step-up with the one-time code", func(t *testing.T) {
		resp := b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
		b.requireIdP(t, in.URL, resp)
		// The primary login asks for the password only; the step-up that
		// /admin starts then ends with the one-time code.
		seen := b.signInAtIdP(t, in.URL, user)
		if len(seen) < 2 || seen[0] != "password" || seen[len(seen)-1] != "otp" {
			t.Errorf("IdP pages = %q, want the password, then the step-up ending with the one-time code", seen)
		}
		b.requireAdminPage(t, in.URL+"/admin")
	})
	if !ok {
		return
	}

	ok = t.Run("screenshot of the admin console", func(t *testing.T) {
		if text := browserRun(t, b, "read the countdown", chromedp.Text(chromedp.ID("countdown"))); strings.HasPrefix(text, "ended") {
			t.Fatalf("the elevation ended before the screenshot (countdown %q): the page took too long", text)
		}
		shot := browserRun(t, b, "take a full-page screenshot", chromedp.FullScreenshot(100))
		cfg, err := png.DecodeConfig(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("the screenshot is not a PNG: %v", err)
		}
		if cfg.Width != 1200 || cfg.Height < 800 {
			t.Errorf("screenshot is %dx%d, want 1200 wide and at least 800 high", cfg.Width, cfg.Height)
		}
		path := filepath.Join(t.TempDir(), "admin-console.png")
		if os.Getenv("STEPUP_UPDATE_SCREENSHOT") == "1" {
			path = screenshotPath
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%dx%d, %d bytes)", path, cfg.Width, cfg.Height, len(shot))
	})
	if !ok {
		return
	}

	ok = t.Run("re-challenge after the elevation expired", func(t *testing.T) {
		b.waitElevationEnded(t)
		resp := b.load(t, "open /admin after expiry", chromedp.Navigate(in.URL+"/admin"))
		b.requireIdP(t, in.URL, resp)
		if seen := b.signInAtIdP(t, in.URL, user); !slices.Contains(seen, "otp") {
			t.Errorf("IdP pages = %q, want the one-time code again", seen)
		}
		b.requireAdminPage(t, in.URL+"/admin")
	})
	if !ok {
		return
	}

	// With JavaScript the Add-user form steps up in a popup and sends the
	// POST again (browser_popup_test.go); without it, the form is a plain
	// form, and this is what the browser gets.
	const newUser = "carol-after-expiry"
	ok = t.Run("POST after expiry gets the RFC 9470 challenge with JavaScript off", func(t *testing.T) {
		resp := b.load(t, "open /admin/users", chromedp.Navigate(in.URL+"/admin/users"))
		if !sameOrigin(resp.URL, in.URL) { // the last elevation ran out on the way
			b.signInAtIdP(t, in.URL, user)
		}
		b.requireLocation(t, in.URL+"/admin/users")
		b.do(t, "type a new user's name", chromedp.SendKeys(chromedp.ID("new-user"), newUser))
		b.waitElevationEnded(t)

		b.setJavaScript(t, false) // the form's submit listener no longer runs
		resp = b.load(t, "submit the add-user form", chromedp.Click(chromedp.ID("add-user")))
		b.setJavaScript(t, true)
		if resp.Status != 401 || resp.URL != in.URL+"/admin/users" {
			t.Fatalf("the POST ended on %d %s, want 401 %s/admin/users\n%s", resp.Status, resp.URL, in.URL, b.describe())
		}
		if h := headerValue(resp.Headers, "WWW-Authenticate"); !strings.Contains(h, `error="insufficient_user_authentication"`) {
			t.Errorf("WWW-Authenticate = %q, want the RFC 9470 challenge", h)
		}
		body := browserRun(t, b, "read the response body", chromedp.Text(chromedp.CSS("body")))
		for _, want := range []string{`"error":"insufficient_user_authentication"`, `"step_up_url":"/stepup/start?`} {
			if !strings.Contains(body, want) {
				t.Errorf("the 401 body does not contain %s:\n%s", want, body)
			}
		}

		// The refused POST changed nothing: step up again and look.
		resp = b.load(t, "open /admin/users again", chromedp.Navigate(in.URL+"/admin/users"))
		b.requireIdP(t, in.URL, resp)
		b.signInAtIdP(t, in.URL, user)
		b.requireLocation(t, in.URL+"/admin/users")
		users := browserRun(t, b, "read the user list", chromedp.Text(chromedp.ID("users")))
		if !strings.Contains(users, user) || strings.Contains(users, newUser) {
			t.Errorf("user list after the refused POST = %q, want %s and not %s", users, user, newUser)
		}
	})
	if !ok {
		return
	}

	t.Run("audit events", func(t *testing.T) {
		count := map[string]int{}
		var postEvents []string // what the guard did with alice's POST
		sc := bufio.NewScanner(strings.NewReader(in.stdout.String()))
		for sc.Scan() {
			var e struct{ Type, Scope, Subject, Method, Route string }
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("audit line %q: %v", sc.Text(), err)
			}
			if e.Scope != "admin" || e.Subject != user {
				continue
			}
			count[e.Type]++
			if e.Method == "POST" && e.Route == "/admin/users" {
				postEvents = append(postEvents, e.Type)
			}
		}
		// At least three step-ups, two expiries seen by the guard (the GET
		// of /admin, the POST), and the POST's 401 challenge.
		if count["granted"] < 3 || count["expired"] < 2 || count["challenge"] < 1 {
			t.Errorf("audit events for the admin scope = %v, want at least 3 granted, 2 expired, 1 challenge\n%s", count, in.stdout)
		}
		if want := []string{"expired", "challenge"}; !slices.Equal(postEvents, want) {
			t.Errorf("audit events for alice's POST /admin/users = %q, want %q\n%s", postEvents, want, in.stdout)
		}
	})
	if !ok {
		return
	}

	t.Run("the audit table fits its card at 1280px", func(t *testing.T) {
		b.do(t, "set the viewport to 1280x800", chromedp.EmulateViewport(1280, 800))
		resp := b.load(t, "open /admin/audit", chromedp.Navigate(in.URL+"/admin/audit"))
		if !sameOrigin(resp.URL, in.URL) { // the elevation ran out: step up again
			b.signInAtIdP(t, in.URL, user)
		}
		b.requireLocation(t, in.URL+"/admin/audit")
		b.do(t, "wait for the audit table", chromedp.WaitVisible(chromedp.ID("audit")))
		type box struct{ Card, Table, Cells, Page, Viewport float64 }
		got := browserRun(t, b, "measure the audit table", chromedp.Evaluate[box](`(() => {
			const table = document.getElementById("audit");
			const card = table.closest(".card");
			const cells = [...table.querySelectorAll("th, td")].map(c => c.getBoundingClientRect().right);
			return {
				// The card's content edge: inside its padding.
				Card: card.getBoundingClientRect().right - parseFloat(getComputedStyle(card).paddingRight),
				Table: table.getBoundingClientRect().right,
				Cells: Math.max(...cells),
				Page: document.documentElement.scrollWidth,
				Viewport: window.innerWidth,
			};
		})()`))
		t.Logf("right edges at 1280px: card content %.0f, table %.0f, rightmost cell %.0f; page %.0f wide", got.Card, got.Table, got.Cells, got.Page)
		if got.Table > got.Card || got.Cells > got.Card {
			t.Errorf("the audit table (right edge %.0f, its cells %.0f) is wider than its card (%.0f)", got.Table, got.Cells, got.Card)
		}
		if got.Page > got.Viewport {
			t.Errorf("the audit page scrolls sideways: %.0f wide in a %.0f viewport", got.Page, got.Viewport)
		}
	})
}

// TestBrowserSignOutEverywhereEndsAdminModeInTheOpenConsole: with the
// users page open and a name typed into its Add-user form, "Sign out
// everywhere" on the dev IdP's account page, in a second tab, makes the
// first tab's elevation card say within a few seconds that admin mode
// ended: the page polls GET /elevation (static/elevation.js, under the
// page's script-src 'self' CSP), and is not reloaded, so the typed name is
// still in the input. The next admin navigation goes to the IdP.
func TestBrowserSignOutEverywhereEndsAdminModeInTheOpenConsole(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium", "chromium-browser")
	in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0")
	b := startBrowser(t, chromium) // closed before the app stops: cleanups run last-in first-out
	const user, typed = "alice", "dave, typed before the logout"

	resp := b.load(t, "open /admin/users", chromedp.Navigate(in.URL+"/admin/users"))
	b.requireIdP(t, in.URL, resp)
	b.signInAtIdP(t, in.URL, user)
	resp = b.load(t, "open /admin/users, elevated", chromedp.Navigate(in.URL+"/admin/users"))
	if resp.Status != 200 || resp.URL != in.URL+"/admin/users" {
		t.Fatalf("the users page after the step-up: %d %s\n%s", resp.Status, resp.URL, b.describe())
	}
	if csp := headerValue(resp.Headers, "Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want script-src 'self'", csp)
	}
	b.do(t, "type a new user's name", chromedp.SendKeys(chromedp.ID("new-user"), typed))
	browserRun(t, b, "mark the document", chromedp.Evaluate[bool](`window.notReloaded = true`))
	if text := browserRun(t, b, "read the countdown", chromedp.Text(chromedp.ID("countdown"))); strings.HasPrefix(text, "ended") || text == "…" {
		t.Fatalf("the countdown says %q, want it running", text)
	}
	account := browserRun(t, b, "read the IdP account link", chromedp.Evaluate[string](`document.getElementById("idp-account").href`))

	// A second tab of the same browser. Its first Run opens it, with no
	// per-step timeout: the context of that Run owns the tab.
	tabCtx, closeTab := chromedp.NewContext(b.ctx)
	defer closeTab()
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("opening a second tab: %v", err)
	}
	tab := &browser{ctx: tabCtx, output: b.output}
	tab.load(t, "open the IdP's account page", chromedp.Navigate(account))
	tab.do(t, "wait for Sign out everywhere", chromedp.WaitVisible(chromedp.ID("sign-out-everywhere")))
	clicked := time.Now()
	tab.load(t, "click Sign out everywhere", chromedp.Click(chromedp.ID("sign-out-everywhere")))
	if notice := browserRun(t, tab, "read the IdP's notice", chromedp.Text(chromedp.ID("notice"))); !strings.Contains(notice, "Logout token to chi-admin: 200 OK.") {
		t.Fatalf("the IdP's notice after Sign out everywhere: %q", notice)
	}

	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("elevation").classList.contains("ended")`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	took := time.Since(clicked)
	if err != nil {
		t.Fatalf("the card did not say that admin mode ended within 10s of the click: %v\n%s", err, b.describe())
	}
	t.Logf("the card said admin mode ended %s after the click on Sign out everywhere", took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Errorf("the card took %s, want a few seconds (one 2s poll, and the logout)", took)
	}
	type state struct {
		NotReloaded                         bool
		Typed, Title, Countdown, Visibility string
	}
	got := browserRun(t, b, "read the page", chromedp.Evaluate[state](`({
		NotReloaded: window.notReloaded === true,
		Typed: document.getElementById("new-user").value,
		Title: document.getElementById("elevation-title").textContent,
		Countdown: document.getElementById("countdown").textContent,
		Visibility: document.visibilityState,
	})`))
	t.Logf("the console's tab was %s while the other tab signed out", got.Visibility)
	if !got.NotReloaded || got.Typed != typed {
		t.Errorf("the page was reloaded (%v) or lost the typed name: input %q, want %q", !got.NotReloaded, got.Typed, typed)
	}
	if got.Title != "Admin mode ended" || !strings.HasPrefix(got.Countdown, "ended: admin mode was ended elsewhere") {
		t.Errorf("the card says %q / %q", got.Title, got.Countdown)
	}

	// The next admin navigation is challenged, and the IdP, whose session
	// ended too, asks for the password again.
	resp = b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
	b.requireIdP(t, in.URL, resp)
	requireAudited(t, in, stepup.EventRevoked, stepup.ReasonBackChannelLogout, user)
	requireAudited(t, in, stepup.EventDropped, stepup.ReasonBackChannelLogout, user)
}

// browser is one tab, or one popup, of a chromium driven by chromedp.
type browser struct {
	ctx    context.Context     // a chromedp context whose browser is running
	output *testkit.SyncBuffer // chromium's stdout and stderr
	// closed, for a popup only, closes when the popup has closed. The
	// popup page of stepup's callback closes itself.
	closed <-chan struct{}
}

// gone reports whether b is a popup that has closed.
func (b *browser) gone() bool {
	select {
	case <-b.closed: // a nil channel, a tab's, is never ready
		return true
	default:
		return false
	}
}

// startBrowser starts chromium at execPath, headless, with a fresh profile,
// and closes it when the test ends, failing the test if any of its
// processes is left behind.
func startBrowser(t *testing.T, execPath string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	profile := t.TempDir() // removed after the browser closes: cleanups run last-in first-out
	b := &browser{output: &testkit.SyncBuffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Block popups as a browser does by default, unlike chromedp's
		// defaults: window.open works only within a click, which is what
		// stepup.js and "Extend admin mode" must cope with.
		chromedp.Flag("disable-popup-blocking", false),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(b.output),
	)
	opts = append(opts, extra...)
	// The browser lives as long as the context of its first Run, so that
	// one has no per-step timeout; browserLifetime bounds it instead.
	life, cancelLife := context.WithTimeout(context.Background(), browserLifetime)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	b.ctx = ctx
	root := 0 // the browser's pid once it started
	t.Cleanup(func() {
		procs := chromiumProcesses(root, profile)
		closeCtx, cancel := context.WithTimeout(ctx, browserCloseTimeout)
		defer cancel()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancelCtx()
		cancelAlloc() // waits for the browser process to exit
		cancelLife()
		if left := waitProcessesGone(procs, profile, browserCloseTimeout); len(left) > 0 {
			t.Errorf("chromium processes %v outlived the browser; killed them", left)
		}
	})

	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // starts chromium and opens its tab
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v\n%s", execPath, err, b.output)
		}
	case <-time.After(browserStartTimeout):
		cancelCtx()
		t.Fatalf("%s did not start in %s\n%s", execPath, browserStartTimeout, b.output)
	}
	root = chromedp.FromContext(ctx).Browser.Process().Pid
	return b
}

// proc is a live process as /proc shows it.
type proc struct {
	ppid      int
	startTime string // in clock ticks since boot: tells a reused pid apart
	cmdline   []byte
}

// readProc reads /proc/<pid>; ok is false for a process that is gone or a
// zombie, which has exited.
func readProc(pid int) (p proc, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	// pid (comm) state ppid ... starttime is the 22nd field; comm may hold
	// spaces and parentheses, so count from the last ")".
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return p, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return p, false
	}
	p.ppid, _ = strconv.Atoi(f[1])
	p.startTime = f[19]
	p.cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return p, true
}

// allProcs lists the live processes.
func allProcs() map[int]proc {
	out := map[int]proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if p, ok := readProc(pid); ok {
				out[pid] = p
			}
		}
	}
	return out
}

// chromiumProcesses returns the browser's processes: root (0 if it never
// started) and its descendants, and any process whose command line names
// the test's own user data directory profile. The GPU and utility processes
// do not carry --user-data-dir, hence the tree.
func chromiumProcesses(root int, profile string) map[int]proc {
	all := allProcs()
	mine := map[int]proc{}
	for pid, p := range all {
		if bytes.Contains(p.cmdline, []byte("--user-data-dir="+profile)) {
			mine[pid] = p
		}
	}
	if p, ok := all[root]; ok && root != 0 {
		mine[root] = p
	}
	for grew := true; grew; {
		grew = false
		for pid, p := range all {
			if _, ok := mine[pid]; !ok {
				if _, parent := mine[p.ppid]; parent {
					mine[pid], grew = p, true
				}
			}
		}
	}
	return mine
}

// waitProcessesGone waits up to timeout until none of procs is alive and
// no process names profile, then kills and returns the pids that are left.
// Only processes this test started match: the same pid and start time, or
// the test's own, fresh, profile directory.
func waitProcessesGone(procs map[int]proc, profile string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for pid := range chromiumProcesses(0, profile) {
			left = append(left, pid)
		}
		for pid, was := range procs {
			if p, ok := readProc(pid); ok && p.startTime == was.startTime && !slices.Contains(left, pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(left)
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browserRun runs one action that returns a value, within browserStepTimeout.
func browserRun[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b.describe())
	}
	return v
}

// do runs actions that return nothing, within browserStepTimeout.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	browserRun(t, b, what, chromedp.Steps(steps...))
}

// load runs actions that navigate, such as a click on a submit button, and
// returns the response of the document that finally loads, after redirects.
func (b *browser) load(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b.describe())
	}
	if resp == nil {
		t.Fatalf("%s: no document loaded\n%s", what, b.describe())
	}
	return resp
}

// setJavaScript turns the page's scripts on or off, as a browser's setting
// does. chromedp's own evaluations still run.
func (b *browser) setJavaScript(t *testing.T, on bool) {
	t.Helper()
	b.do(t, fmt.Sprintf("turn JavaScript on: %t", on), func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
		return chromedp.Void{}, err
	})
}

// submit clicks the submit button with this id and waits for the page it
// leads to. In a popup, which stepup's callback page closes, it also
// returns when the popup has closed.
func (b *browser) submit(t *testing.T, what, id string) {
	t.Helper()
	if b.closed == nil {
		b.load(t, what, chromedp.Click(chromedp.ID(id)))
		return
	}
	browserRun(t, b, "mark the page", chromedp.Evaluate[bool](`window.beforeSubmit = true`))
	b.do(t, what, chromedp.Click(chromedp.ID(id)))
	b.waitFor(t, what+": the next page", `!window.beforeSubmit && document.readyState === "complete"`, browserStepTimeout)
}

// waitFor evaluates expr in the page until it is true, across navigations,
// and fails the test after timeout. It returns false, at once, when b is a
// popup that has closed.
func (b *browser) waitFor(t *testing.T, what, expr string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b.gone() {
			return false
		}
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return true
		}
		if time.Now().After(deadline) {
			if b.gone() {
				return false
			}
			t.Fatalf("%s: %s not true within %s (%v)\n%s", what, expr, timeout, err, b.describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// describe is the browser's location and page text, for failure messages.
func (b *browser) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return fmt.Sprintf("(the browser does not answer: %v)\nchromium output:\n%s", err, b.output)
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return fmt.Sprintf("browser at %s:\n%s", loc, text)
}

func (b *browser) requireLocation(t *testing.T, want string) {
	t.Helper()
	if loc := browserRun(t, b, "read the location", chromedp.Location()); loc != want {
		t.Fatalf("browser at %s, want %s\n%s", loc, want, b.describe())
	}
}

// requireIdP checks that resp is a page of the dev IdP: the IdP and the
// app are both on 127.0.0.1, on different ports.
func (b *browser) requireIdP(t *testing.T, appURL string, resp *network.Response) {
	t.Helper()
	u, err := url.Parse(resp.URL)
	if err != nil || sameOrigin(resp.URL, appURL) || u.Hostname() != "127.0.0.1" || u.Path != "/login" || resp.Status != 200 {
		t.Fatalf("got %d %s, want the dev IdP's /login page\n%s", resp.Status, resp.URL, b.describe())
	}
}

// requireAdminPage checks that the browser shows an elevated admin page at
// want: the strong acr, a deadline set by the ID token's exp, a countdown.
func (b *browser) requireAdminPage(t *testing.T, want string) {
	t.Helper()
	b.requireLocation(t, want)
	b.do(t, "wait for the admin page", chromedp.WaitVisible(chromedp.ID("admin-title")))
	if acr := browserRun(t, b, "read #acr", chromedp.Text(chromedp.ID("acr"))); acr != devidp.StrongACR {
		t.Errorf("#acr = %q, want %q", acr, devidp.StrongACR)
	}
	if bound := browserRun(t, b, "read #bound", chromedp.Text(chromedp.ID("bound"))); bound != "exp" {
		t.Errorf("#bound = %q, want exp", bound)
	}
	b.do(t, "find #countdown", chromedp.WaitReady(chromedp.ID("countdown")))
}

var devCodeRE = regexp.MustCompile(`^Current code for (\S+): (\d{6})$`)

// signInAtIdP fills in the dev IdP's forms, the sign-in form and the
// one-time code form, as a person would, until the browser is back at
// appURL's origin; a popup, until stepup's callback page has closed it. It
// returns the forms it went through, in order.
func (b *browser) signInAtIdP(t *testing.T, appURL, user string) []string {
	t.Helper()
	var seen []string
	for range 4 {
		if b.gone() {
			return seen
		}
		ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		cancel()
		switch {
		case err != nil && b.gone():
			return seen
		case err != nil:
			t.Fatalf("read the location: %v\n%s", err, b.describe())
		case sameOrigin(loc, appURL) && b.closed != nil:
			select { // the callback's popup page reports and closes itself
			case <-b.closed:
				return seen
			case <-time.After(browserStepTimeout):
				t.Fatalf("the popup stayed open at %s\n%s", loc, b.describe())
			}
		case sameOrigin(loc, appURL):
			return seen
		}
		form := browserRun(t, b, "identify the IdP page", chromedp.Evaluate[string](`
			document.getElementById("error") ? "error" :
			document.getElementById("otp") ? "otp" :
			document.getElementById("password") ? "password" : ""`))
		seen = append(seen, form)
		switch form {
		case "password":
			b.do(t, "fill in the sign-in form",
				chromedp.SetValue(chromedp.ID("username"), user),
				chromedp.SendKeys(chromedp.ID("password"), devidp.Password),
			)
			b.submit(t, "submit the sign-in form", "login")
		case "otp":
			hint := browserRun(t, b, "read the current code", chromedp.Text(chromedp.ID("dev-code")))
			m := devCodeRE.FindStringSubmatch(strings.TrimSpace(hint))
			if m == nil || m[1] != user {
				t.Fatalf("#dev-code = %q, want %q and six digits", hint, "Current code for "+user+":")
			}
			b.do(t, "type the one-time code", chromedp.SendKeys(chromedp.ID("otp"), m[2]))
			b.submit(t, "submit the one-time code", "verify")
		default:
			t.Fatalf("not a sign-in or one-time code form at the IdP (%q)\n%s", form, b.describe())
		}
	}
	t.Fatalf("still at the IdP after %q\n%s", seen, b.describe())
	return nil
}

// waitElevationEnded waits, on the real clock, until the page's countdown
// says the elevation ended and the instant it counts down to (the deadline
// minus the skew, data-ends) has passed, so that the guard refuses the
// elevation by then.
func (b *browser) waitElevationEnded(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, elevationEndTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.getElementById("countdown").textContent.startsWith("ended")`,
		chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(elevationEndTimeout),
	))
	if err != nil {
		t.Fatalf("the countdown did not say ended within %s: %v\n%s", elevationEndTimeout, err, b.describe())
	}
	ends := browserRun(t, b, "read the countdown's end", chromedp.Evaluate[int64](`Number(document.getElementById("countdown").dataset.ends)`))
	// The countdown rounds the time left down, so it says "ended" up to a
	// second before the guard stops honouring the elevation.
	early := time.Until(time.Unix(ends, 0))
	if early > 2*time.Second {
		t.Fatalf("the countdown said ended %s before its end %d", early, ends)
	}
	if early > 0 {
		t.Logf("the countdown said ended %s early; waiting for the end", early.Round(time.Millisecond))
		time.Sleep(early)
	}
}

// sameOrigin reports whether the URLs a and b have the same scheme, host
// and port.
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && ua.Host == ub.Host
}

// headerValue returns a response header from the DevTools protocol, whose
// names may come in any case.
func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}
