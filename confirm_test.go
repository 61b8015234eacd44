package stepup_test

import (
	"html"
	"net/http"
	"regexp"
	"testing"

	"github.com/oidc-stepup/stepup/stepup"
)

var confirmLink = regexp.MustCompile(`<a id="stepup-continue" href="([^"]*)">`)

// from navigates to target as a link on a page of site would (the value of
// Sec-Fetch-Site; "" sends none), and stops at the first response.
func (b *browser) from(t testing.TB, site, target string) response {
	t.Helper()
	h := http.Header{}
	if site != "" {
		h.Set("Sec-Fetch-Site", site)
	}
	return b.do(t, b.noFollow, http.MethodGet, target, nil, h)
}

// wantConfirmation asserts that r is the confirmation page and returns
// where its link leads; "" when it is not the page.
func wantConfirmation(t testing.TB, r response) string {
	t.Helper()
	m := confirmLink.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || r.header.Get("Location") != "" || m == nil {
		t.Errorf("got %v, want the confirmation page", r)
		return ""
	}
	if csp := r.header.Get("Content-Security-Policy"); csp != "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'" {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	return html.UnescapeString(m[1])
}

// TestCrossSiteNavigationsCannotEvictTheRealChallenge drives the attack
// end to end: the user starts a step-up and logs in at the IdP; before the
// callback arrives, another site sends the browser to /stepup/start and
// to /admin nine times each. Each gets the confirmation page, no challenge
// is added and nothing is audited, and the real callback is granted. The
// page's link, followed from the page itself, steps up as usual.
func TestCrossSiteNavigationsCannotEvictTheRealChallenge(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	start := b.from(t, "same-origin", "/stepup/start?scope=admin&return_to=%2Fadmin")
	wantRedirectToIdP(t, a, start)
	cb := b.authorize(t, start.header.Get("Location"))

	events := len(a.audit.all())
	for i := range 9 {
		site := []string{"cross-site", "same-site"}[i%2]
		if link := wantConfirmation(t, b.from(t, site, "/stepup/start?scope=admin&return_to=%2F%2Fevil.test")); link != "/stepup/start?return_to=%2F&scope=admin" {
			t.Errorf("start from %s: link %q", site, link)
		}
		if link := wantConfirmation(t, b.from(t, site, "/admin/users")); link != "/stepup/start?return_to=%2Fadmin%2Fusers&scope=admin" {
			t.Errorf("/admin/users from %s: link %q", site, link)
		}
	}
	if got := a.audit.all()[events:]; len(got) != 0 {
		t.Errorf("the cross-site navigations were audited: %+v", got)
	}

	wantRedirect(t, b.peek(t, cb.String()), http.StatusSeeOther, "/admin")
	a.audit.wantReason(t, stepup.EventGranted, "")
	if !b.elevated(t) {
		t.Fatal("the real challenge was not granted")
	}

	// The user follows the page's link: a same-origin navigation.
	link := wantConfirmation(t, b.from(t, "cross-site", "/stepup/start?scope=admin&return_to=%2Fadmin%2Fusers"))
	if link != "/stepup/start?return_to=%2Fadmin%2Fusers&scope=admin" {
		t.Fatalf("link %q", link)
	}
	next := b.from(t, "same-origin", link)
	wantRedirectToIdP(t, a, next)
	cb = b.authorize(t, next.header.Get("Location"))
	wantRedirect(t, b.peek(t, cb.String()), http.StatusSeeOther, "/admin/users")

	// A browser that sends no Sec-Fetch-Site starts at once, as before.
	wantRedirectToIdP(t, a, b.from(t, "", "/stepup/start?scope=admin"))
}
