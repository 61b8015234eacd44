package stepup

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// visit serves one navigation to target by user, from the site that
// Sec-Fetch-Site names ("" sends no header), in the session whose token is
// given ("" for a new one). It returns the response and the session's
// token afterwards; a response that wrote nothing to the session sets no
// cookie and keeps the token.
func (h *harness) visit(handler http.Handler, target, user, site, token string) (*httptest.ResponseRecorder, string) {
	r := navigation("GET", target, user)
	if site != "" {
		r.Header.Set("Sec-Fetch-Site", site)
	}
	if token != "" {
		r.AddCookie(&http.Cookie{Name: h.sm.Cookie.Name, Value: token})
	}
	w := h.serve(r, nil, handler)
	for _, c := range w.Result().Cookies() {
		if c.Name == h.sm.Cookie.Name {
			token = c.Value
		}
	}
	return w, token
}

// pendingStates returns the states of the session's pending challenges,
// oldest first.
func (h *harness) pendingStates(t *testing.T, token string) []string {
	t.Helper()
	ctx, err := h.sm.Load(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	list, err := decodePending(stringValue(h.sm.Get(ctx, "stepup.pending")))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, p := range list {
		states = append(states, p.state)
	}
	return states
}

// stateOf returns the state of the authorization request a 303 sends the
// browser to, failing the test for any other answer.
func stateOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), testIssuer+"/authorize?") {
		t.Fatalf("got %d to %q, want a 303 to the IdP", w.Code, w.Header().Get("Location"))
	}
	return loc.Query().Get("state")
}

// confirmLink checks that w is the confirmation page, with its headers,
// and returns the query of its link after checking that the link leads to
// StartPath.
func confirmLink(t *testing.T, w *httptest.ResponseRecorder) url.Values {
	t.Helper()
	if w.Code != http.StatusOK || w.Header().Get("Location") != "" {
		t.Fatalf("got %d to %q, want the 200 confirmation page", w.Code, w.Header().Get("Location"))
	}
	for k, want := range map[string]string{
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	body := w.Body.String()
	if strings.Contains(body, "<script") || strings.Contains(body, "<form") || regexp.MustCompile(`(?i)<[^>]*\son\w+\s*=`).MatchString(body) {
		t.Errorf("the page has a script, a form or an inline handler: %s", body)
	}
	m := regexp.MustCompile(`<a id="stepup-continue" href="([^"]*)">Continue</a>`).FindAllStringSubmatch(body, -1)
	if len(m) != 1 || strings.Count(body, "<a ") != 1 {
		t.Fatalf("want exactly one link, #stepup-continue: %s", body)
	}
	link, err := url.Parse(html.UnescapeString(m[0][1]))
	if err != nil || link.Scheme != "" || link.Host != "" || link.Path != "/stepup/start" {
		t.Fatalf("the link leads to %q, want StartPath", m[0][1])
	}
	return link.Query()
}

// TestCrossSiteStartsCannotEvictPendingChallenges: top-level navigations
// from another site carry the SameSite=Lax cookie. Nine of them to
// StartHandler, from another site or a sibling subdomain, would have
// evicted the user's real challenge and written nine challenge events;
// they get the confirmation page instead, and change nothing. Starts from
// this origin, from the address bar and from a browser that sends no
// Sec-Fetch-Site still go to the IdP.
func TestCrossSiteStartsCannotEvictPendingChallenges(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	start := h.su.StartHandler()
	const target = "/stepup/start?scope=admin&return_to=%2Fadmin"
	w, token := h.visit(start, target, "alice", "same-origin", "")
	real := stateOf(t, w)
	h.audit.Reset()

	for i := range maxPending + 1 {
		site := []string{"cross-site", "same-site"}[i%2]
		w, next := h.visit(start, target, "alice", site, token)
		confirmLink(t, w)
		if cookies := w.Header().Values("Set-Cookie"); len(cookies) != 0 || next != token {
			t.Fatalf("%s start %d wrote to the session: Set-Cookie %q", site, i, cookies)
		}
	}
	if got := h.pendingStates(t, token); len(got) != 1 || got[0] != real {
		t.Fatalf("pending %q after the cross-site starts, want only the real challenge %q", got, real)
	}
	if events := h.audit.Events(); len(events) != 0 {
		t.Errorf("cross-site starts were audited: %+v", events)
	}

	want := []string{real}
	for _, site := range []string{"same-origin", "none", ""} {
		w, token = h.visit(start, target, "alice", site, token)
		want = append(want, stateOf(t, w))
	}
	if got := h.pendingStates(t, token); !reflect.DeepEqual(got, want) {
		t.Errorf("pending %q, want %q", got, want)
	}
	if got := h.audit.Types(); !reflect.DeepEqual(got, []EventType{EventChallenge, EventChallenge, EventChallenge}) {
		t.Errorf("audit %v, want three challenges", got)
	}
}

// TestCrossSiteGuardedNavigationsCannotEvictPendingChallenges: the
// guard's own challenge keeps a link from an e-mail working (a cross-site
// navigation into a session with no live challenge goes to the IdP), but
// while a challenge is pending, navigations from another site get the
// confirmation page and add nothing.
func TestCrossSiteGuardedNavigationsCannotEvictPendingChallenges(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	guarded := h.su.RequireStepUp("admin")(okHandler)
	w, token := h.visit(guarded, "/admin", "alice", "cross-site", "")
	first := stateOf(t, w)
	h.audit.Reset()

	for i := range maxPending + 1 {
		site := []string{"cross-site", "same-site"}[i%2]
		w, next := h.visit(guarded, "/admin/users?page=2", "alice", site, token)
		q := confirmLink(t, w)
		if want := (url.Values{"scope": {"admin"}, "return_to": {"/admin/users?page=2"}}); !reflect.DeepEqual(q, want) {
			t.Errorf("link query %v, want %v", q, want)
		}
		if cookies := w.Header().Values("Set-Cookie"); len(cookies) != 0 || next != token {
			t.Fatalf("%s navigation %d wrote to the session: Set-Cookie %q", site, i, cookies)
		}
	}
	if events := h.audit.Events(); len(events) != 0 {
		t.Errorf("cross-site navigations were audited: %+v", events)
	}
	w, token = h.visit(guarded, "/admin", "alice", "same-origin", token)
	if got, want := h.pendingStates(t, token), []string{first, stateOf(t, w)}; !reflect.DeepEqual(got, want) {
		t.Errorf("pending %q, want %q", got, want)
	}

	// Once every challenge has expired, the list counts as empty again.
	h.advance(challengeTTL)
	w, token = h.visit(guarded, "/admin", "alice", "cross-site", token)
	if got := h.pendingStates(t, token); len(got) != 1 || got[0] != stateOf(t, w) {
		t.Errorf("pending %q after the expired ones, want the new challenge only", got)
	}
}

// TestConfirmationPageCarriesOnlyCheckedParameters: the confirmation link
// holds what StartHandler would have used (return_to after SafeReturnTo,
// display and ref only when valid), nothing else of the request; the page
// escapes the scope name; the method and parameter checks come first.
func TestConfirmationPageCarriesOnlyCheckedParameters(t *testing.T) {
	t.Parallel()
	const markup = `<img src=x onerror="alert(1)">&`
	h := newHarness(t, func(c *Config) {
		c.Scopes[markup] = Scope{ACR: []string{"urn:test:mfa"}}
	})
	for _, tc := range []struct {
		name, query string
		want        url.Values
	}{
		{"SafeReturnTo", "scope=admin&return_to=%2Fadmin%2Fusers%3Fpage%3D2", url.Values{"scope": {"admin"}, "return_to": {"/admin/users?page=2"}}},
		{"HostileReturnTo", "scope=admin&return_to=%2F%2Fevil.test&extra=%3Cb%3E", url.Values{"scope": {"admin"}, "return_to": {"/"}}},
		{"RepeatedReturnTo", "scope=admin&return_to=%2Fa&return_to=%2Fb", url.Values{"scope": {"admin"}, "return_to": {"/"}}},
		{"Popup", "scope=admin&display=popup&ref=tab-1", url.Values{"scope": {"admin"}, "return_to": {"/"}, "display": {"popup"}, "ref": {"tab-1"}}},
		{"PopupWithoutRef", "scope=admin&display=popup", url.Values{"scope": {"admin"}, "return_to": {"/"}, "display": {"popup"}}},
		{"ScopeWithMarkup", "scope=" + url.QueryEscape(markup), url.Values{"scope": {markup}, "return_to": {"/"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := h.visit(h.su.StartHandler(), "/stepup/start?"+tc.query, "alice", "cross-site", "")
			if q := confirmLink(t, w); !reflect.DeepEqual(q, tc.want) {
				t.Errorf("link query %v, want %v", q, tc.want)
			}
			text := "Continue to step up for " + tc.want.Get("scope") + "?"
			if body := w.Body.String(); !strings.Contains(body, `<p id="stepup-text">`+html.EscapeString(text)+`</p>`) || strings.Contains(body, "<img") {
				t.Errorf("the text is missing or not escaped: %s", body)
			}
		})
	}
	// The checks StartHandler makes before the page.
	for _, tc := range []struct {
		name, method, query, user string
		status                    int
	}{
		{"Post", "POST", "scope=admin", "alice", http.StatusMethodNotAllowed},
		{"UnknownScope", "GET", "scope=root", "alice", http.StatusBadRequest},
		{"BadDisplay", "GET", "scope=admin&display=page", "alice", http.StatusBadRequest},
		{"NobodyLoggedIn", "GET", "scope=admin", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := navigation(tc.method, "/stepup/start?"+tc.query, tc.user)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			if w := h.serve(r, nil, h.su.StartHandler()); w.Code != tc.status {
				t.Errorf("got %d, want %d", w.Code, tc.status)
			}
		})
	}
}
