package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
)

// The device-binding tests run Debian's chromium with Device Bound Session
// Credentials on a software key, as ../../../shared/context/dbsc.md
// describes: both features are required, DevTools events need the third,
// and proactive refresh is off so that every refresh is one the test
// causes. chromedp's Flag replaces a flag's value, so the disable list
// repeats chromedp's own.
var dbscFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("enable-features", "DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting,DeviceBoundSessionsDevTools"),
	chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,DeviceBoundSessionProactiveRefresh"),
}

// dbscChromium returns a chromium that speaks DBSC with the flags above:
// $STEPUP_DBSC_CHROMIUM, else Debian's chromium 150 (bookworm's main
// archive) unpacked into /opt/chromium-dbsc by .ci/run. Debian's security
// update, chromium 156, ignores Secure-Session-Registration with the same
// flags (checked: no registration request, no DevTools event), so these
// tests do not use the system's chromium. Outside CI a missing one skips
// the test; under CI it fails it.
func dbscChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("STEPUP_DBSC_CHROMIUM")
	if path == "" {
		path = "/opt/chromium-dbsc/usr/lib/chromium/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no DBSC-capable chromium at %s (.ci/run unpacks Debian's chromium 150 there): %v", path, err)
		}
		t.Skipf("no DBSC-capable chromium at %s; set STEPUP_DBSC_CHROMIUM", path)
	}
	return path
}

// dbscEvents records the browser's DBSC events (DevTools).
type dbscEvents struct {
	mu  sync.Mutex
	all []*network.EventDeviceBoundSessionEventOccurred
}

func (b *browser) recordDBSC(t *testing.T) *dbscEvents {
	t.Helper()
	ev := &dbscEvents{}
	ctx, cancel := context.WithCancel(b.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Listen(ctx, func(e any) {
		if e, ok := e.(*network.EventDeviceBoundSessionEventOccurred); ok {
			ev.mu.Lock()
			ev.all = append(ev.all, e)
			ev.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.do(t, "enable DBSC events", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.EnableDeviceBoundSessions, network.EnableDeviceBoundSessionsParams{Enable: true})
		return chromedp.Void{}, err
	})
	return ev
}

// wait waits for an event that match accepts, and returns it.
func (ev *dbscEvents) wait(t *testing.T, what string, match func(*network.EventDeviceBoundSessionEventOccurred) bool) *network.EventDeviceBoundSessionEventOccurred {
	t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	for time.Now().Before(deadline) {
		ev.mu.Lock()
		for _, e := range ev.all {
			if match(e) {
				ev.mu.Unlock()
				return e
			}
		}
		ev.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var got []string
	for _, e := range ev.all {
		got = append(got, describeDBSC(e))
	}
	t.Fatalf("no DBSC event %s within %s; got %q", what, browserStepTimeout, got)
	return nil
}

func (ev *dbscEvents) count(match func(*network.EventDeviceBoundSessionEventOccurred) bool) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, e := range ev.all {
		if match(e) {
			n++
		}
	}
	return n
}

func describeDBSC(e *network.EventDeviceBoundSessionEventOccurred) string {
	switch {
	case e.CreationEventDetails != nil:
		return "creation:" + string(e.CreationEventDetails.FetchResult)
	case e.RefreshEventDetails != nil:
		return "refresh:" + string(e.RefreshEventDetails.RefreshResult)
	case e.TerminationEventDetails != nil:
		return "termination:" + string(e.TerminationEventDetails.DeletionReason)
	case e.ChallengeEventDetails != nil:
		return "challenge:" + string(e.ChallengeEventDetails.ChallengeResult)
	}
	return "?"
}

func registered(e *network.EventDeviceBoundSessionEventOccurred) bool {
	return e.CreationEventDetails != nil && e.CreationEventDetails.FetchResult == network.DeviceBoundSessionFetchResultSuccess
}

func refreshed(e *network.EventDeviceBoundSessionEventOccurred) bool {
	return e.RefreshEventDetails != nil && e.RefreshEventDetails.RefreshResult == network.RefreshEventDetailsRefreshResultRefreshed
}

// cookies returns the browser's cookies for appURL.
func (b *browser) cookies(t *testing.T, appURL string) []*network.Cookie {
	t.Helper()
	return browserRun(t, b, "read the cookies", func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{appURL}})
		if err != nil {
			return nil, err
		}
		return res.Cookies, nil
	})
}

// boundCookieIn returns the bound cookie among cookies, or nil.
func boundCookieIn(cookies []*network.Cookie) *network.Cookie {
	for _, c := range cookies {
		if strings.HasPrefix(c.Name, "stepup-bound-") {
			return c
		}
	}
	return nil
}

// stepUpBound logs alice in and steps her up in b, then waits until the
// browser registered its key for the elevation.
func stepUpBound(t *testing.T, in *instance, b *browser, ev *dbscEvents) {
	t.Helper()
	resp := b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
	b.requireIdP(t, in.URL, resp)
	b.signInAtIdP(t, in.URL, "alice")
	b.requireAdminPage(t, in.URL+"/admin")
	ev.wait(t, "creation:Success", registered)
}

// TestBrowserDeviceBoundAdminModeRefreshesALostCookieWithTheKey: with
// -device-binding required, and again with preferred, the step-up's answer makes chromium register
// a key; the admin pages carry the bound cookie; once that cookie is gone
// (deleted through DevTools), the next admin navigation is held by the
// browser, refreshed with a proof of the key, and served.
func TestBrowserDeviceBoundAdminModeRefreshesALostCookieWithTheKey(t *testing.T) {
	chromium := dbscChromium(t)
	for _, mode := range []string{"required", "preferred"} {
		t.Run(mode, func(t *testing.T) {
			in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-device-binding", mode)
			b := startBrowser(t, chromium, dbscFlags...)
			ev := b.recordDBSC(t)
			stepUpBound(t, in, b, ev)

			b.load(t, "reload /admin", chromedp.Navigate(in.URL+"/admin"))
			b.requireAdminPage(t, in.URL+"/admin")
			if got := browserRun(t, b, "read #device-bound", chromedp.Evaluate[string](`document.getElementById("device-bound").dataset.bound`)); got != "true" {
				t.Fatalf("#device-bound data-bound = %q, want true", got)
			}
			bound := requireAudited(t, in, stepup.EventBound, "", "alice")
			if bound.KeyThumbprint == "" || bound.DeviceBound == nil || !*bound.DeviceBound {
				t.Errorf("bound event: %+v", bound)
			}
			c := boundCookieIn(b.cookies(t, in.URL))
			if c == nil || !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" {
				t.Fatalf("bound cookie: %+v", c)
			}

			// A plain admin navigation, for comparison, then one whose cookie is gone.
			start := time.Now()
			b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
			plain := time.Since(start)
			b.do(t, "delete the bound cookie", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
				_, err := cdp.Call(ctx, tg, network.DeleteCookies, network.DeleteCookiesParams{Name: c.Name, URL: in.URL})
				return chromedp.Void{}, err
			})
			if boundCookieIn(b.cookies(t, in.URL)) != nil {
				t.Fatal("the bound cookie is still there")
			}
			before := ev.count(refreshed)
			start = time.Now()
			b.load(t, "open /admin without the bound cookie", chromedp.Navigate(in.URL+"/admin"))
			held := time.Since(start)
			b.requireAdminPage(t, in.URL+"/admin")
			if ev.count(refreshed) != before+1 {
				t.Errorf("refreshes: %d, want one more than %d", ev.count(refreshed), before)
			}
			if boundCookieIn(b.cookies(t, in.URL)) == nil {
				t.Error("no bound cookie after the refresh")
			}
			if refused := auditEvents(t, in, stepup.EventDeviceRefused); len(refused) > 0 {
				t.Errorf("the guard refused a request: %+v", refused)
			}
			t.Logf("admin navigation: %s; held for a refresh: %s (the refresh added %s)", plain.Round(time.Millisecond), held.Round(time.Millisecond), (held - plain).Round(time.Millisecond))
		})
	}
}

// TestBrowserStolenCookiesWorkOnlyUntilTheBoundCookieExpires: every cookie
// of the console (the session's and the bound one) copied into a second
// browser, which has no key: its admin requests are served at most until
// the bound cookie expires (-bound-cookie-ttl 10s), then challenged; the
// real browser stays in admin mode.
func TestBrowserStolenCookiesWorkOnlyUntilTheBoundCookieExpires(t *testing.T) {
	chromium := dbscChromium(t)
	const ttl = 10 * time.Second
	in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-device-binding", "required", "-bound-cookie-ttl", ttl.String())
	victim := startBrowser(t, chromium, dbscFlags...)
	ev := victim.recordDBSC(t)
	stepUpBound(t, in, victim, ev)

	stolen := victim.cookies(t, in.URL)
	theft := time.Now()
	bc := boundCookieIn(stolen)
	if bc == nil {
		t.Fatal("no bound cookie to steal")
	}
	exp, _ := strconv.ParseInt(bc.Value[:strings.IndexByte(bc.Value, '.')], 10, 64)

	thief := startBrowser(t, chromium)
	thief.do(t, "plant the stolen cookies", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		for _, c := range stolen {
			httpOnly := c.HTTPOnly
			if _, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
				Name: c.Name, Value: c.Value, URL: in.URL, Path: c.Path, HTTPOnly: &httpOnly, SameSite: c.SameSite,
			}); err != nil {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, nil
	})
	var served int
	var lastServed, refusedAt time.Time
	for time.Since(theft) < ttl+5*time.Second {
		resp := thief.load(t, "the thief opens /admin", chromedp.Navigate(in.URL+"/admin"))
		if sameOrigin(resp.URL, in.URL) && resp.Status == 200 && strings.HasSuffix(resp.URL, "/admin") {
			served++
			lastServed = time.Now()
		} else {
			refusedAt = time.Now()
			thief.requireIdP(t, in.URL, resp)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if refusedAt.IsZero() {
		t.Fatalf("the thief was still served %s after the theft", time.Since(theft).Round(time.Millisecond))
	}
	if served == 0 {
		t.Fatal("the stolen cookies never worked: the window was not measured")
	}
	window := refusedAt.Sub(theft)
	if window > ttl+time.Second {
		t.Errorf("the thief was served for %s, more than the bound cookie's %s", window, ttl)
	}
	if lastServed.After(time.Unix(exp, 0).Add(time.Second)) {
		t.Errorf("served at %s, after the bound cookie's expiry %s", lastServed, time.Unix(exp, 0))
	}
	// The thief's copies of the cookies never expire in its browser (the
	// attacker sets them so): the guard sees an expired bound cookie.
	if refused := auditEvents(t, in, stepup.EventDeviceRefused); len(refused) == 0 ||
		refused[0].Reason != stepup.ReasonBoundCookieInvalid || refused[0].Elevation == "" || refused[0].Subject != "alice" {
		t.Errorf("device_refused events: %+v, want bound_cookie_invalid naming alice's elevation", refused)
	}
	t.Logf("stolen cookies served %d requests for %s after the theft, refused at %s (bound cookie expiry %s after the theft)",
		served, lastServed.Sub(theft).Round(time.Millisecond), window.Round(time.Millisecond), time.Unix(exp, 0).Sub(theft).Round(time.Second))

	// The thief's refusals did not end the real user's admin mode.
	victim.load(t, "the victim opens /admin", chromedp.Navigate(in.URL+"/admin"))
	victim.requireAdminPage(t, in.URL+"/admin")
	if dropped := auditEvents(t, in, stepup.EventDropped); len(dropped) > 0 {
		t.Errorf("the elevation was dropped: %+v", dropped)
	}
}

// TestBrowserRevokedAdminModeEndsTheDeviceSession: an operator revokes
// alice; the next refresh answers continue:false, chromium reports the DBSC
// session ended by the server, and the guard refuses the held request.
func TestBrowserRevokedAdminModeEndsTheDeviceSession(t *testing.T) {
	chromium := dbscChromium(t)
	in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-device-binding", "required")
	b := startBrowser(t, chromium, dbscFlags...)
	ev := b.recordDBSC(t)
	stepUpBound(t, in, b, ev)

	b.do(t, "fill in the revoke form", chromedp.SetValue(chromedp.ID("revoke-subject"), "alice"))
	b.load(t, "revoke alice", chromedp.Click(chromedp.ID("revoke")))
	requireAudited(t, in, stepup.EventRevoked, stepup.ReasonRevokedByOperator, "alice")

	c := boundCookieIn(b.cookies(t, in.URL))
	if c != nil {
		b.do(t, "delete the bound cookie", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, network.DeleteCookies, network.DeleteCookiesParams{Name: c.Name, URL: in.URL})
			return chromedp.Void{}, err
		})
	}
	resp := b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
	b.requireIdP(t, in.URL, resp)
	ev.wait(t, "termination:ServerRequested", func(e *network.EventDeviceBoundSessionEventOccurred) bool {
		return e.TerminationEventDetails != nil && e.TerminationEventDetails.DeletionReason == network.TerminationEventDetailsDeletionReasonServerRequested
	})
	requireAudited(t, in, stepup.EventDeviceEnded, stepup.ReasonRevokedByOperator, "alice")
}

// TestBrowserWithoutDBSC: a chromium without the DBSC features. With
// -device-binding preferred the step-up works unbound, audited once as
// unbound after the grace; with required the guard refuses with the page
// that says why.
func TestBrowserWithoutDBSC(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium", "chromium-browser")
	t.Run("preferred", func(t *testing.T) {
		in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-device-binding", "preferred")
		b := startBrowser(t, chromium)
		resp := b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
		b.requireIdP(t, in.URL, resp)
		b.signInAtIdP(t, in.URL, "alice")
		b.requireAdminPage(t, in.URL+"/admin")
		if got := browserRun(t, b, "read #device-bound", chromedp.Text(chromedp.ID("device-bound"))); got != "not bound to this device" {
			t.Errorf("#device-bound = %q", got)
		}
		time.Sleep(stepup.DefaultDeviceBindingGrace)
		for range 2 {
			b.load(t, "open /admin after the grace", chromedp.Navigate(in.URL+"/admin"))
			b.requireAdminPage(t, in.URL+"/admin")
		}
		unbound := auditEvents(t, in, stepup.EventUnbound)
		if len(unbound) != 1 || unbound[0].DeviceBound == nil || *unbound[0].DeviceBound || unbound[0].Subject != "alice" {
			t.Errorf("unbound events: %+v, want one with device_bound false", unbound)
		}
	})
	t.Run("required", func(t *testing.T) {
		in := startApp(t, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-device-binding", "required")
		b := startBrowser(t, chromium)
		resp := b.load(t, "open /admin", chromedp.Navigate(in.URL+"/admin"))
		b.requireIdP(t, in.URL, resp)
		b.signInAtIdP(t, in.URL, "alice")
		b.do(t, "wait for the refusal", chromedp.WaitVisible(chromedp.ID("reason")))
		if got := browserRun(t, b, "read #reason", chromedp.Text(chromedp.ID("reason"))); got != string(stepup.ReasonDeviceNotBound) {
			t.Errorf("#reason = %q, want %s\n%s", got, stepup.ReasonDeviceNotBound, b.describe())
		}
		requireAudited(t, in, stepup.EventDeviceRefused, stepup.ReasonDeviceNotBound, "alice")
	})
}
