package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/oidc-stepup/stepup/stepup"
)

// TestBrowserCrossSiteStartAsksFirst: in chromium, a link on another site
// (a page on localhost; the console is on 127.0.0.1, another site) to
// /stepup/start gets the library's confirmation page, and starts no
// challenge. Its link, clicked, is a same-origin navigation whose redirect
// to the IdP the page's Content-Security-Policy lets through (a GET form
// under form-action 'self' is stopped there), and the step-up completes.
func TestBrowserCrossSiteStartAsksFirst(t *testing.T) {
	in, b := elevatedOnUsersPage(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<a id="elsewhere" href="%s/stepup/start?scope=admin&amp;return_to=%%2Fadmin">admin</a>`, in.URL)
	}))
	t.Cleanup(other.Close)
	_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
	challenges := len(auditEvents(t, in, stepup.EventChallenge))

	b.load(t, "open a page of another site", chromedp.Navigate("http://localhost:"+port+"/"))
	resp := b.load(t, "follow its link to /stepup/start", chromedp.Click(chromedp.ID("elsewhere")))
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, in.URL+"/stepup/start?") {
		t.Fatalf("the link ended on %d %s, want the confirmation page\n%s", resp.Status, resp.URL, b.describe())
	}
	if text := browserRun(t, b, "read #stepup-text", chromedp.Text(chromedp.ID("stepup-text"))); text != "Continue to step up for admin?" {
		t.Errorf("#stepup-text = %q", text)
	}
	if n := len(auditEvents(t, in, stepup.EventChallenge)); n != challenges {
		t.Errorf("the cross-site start wrote %d challenge events, want none", n-challenges)
	}

	resp = b.load(t, "click Continue", chromedp.Click(chromedp.ID("stepup-continue")))
	b.requireIdP(t, in.URL, resp)
	b.signInAtIdP(t, in.URL, popupUser)
	b.requireAdminPage(t, in.URL+"/admin")
	if n := len(auditEvents(t, in, stepup.EventGranted)); n != 2 {
		t.Errorf("%d granted events, want 2: the first step-up and the confirmed one", n)
	}
}
