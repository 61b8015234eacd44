package stepup_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

var popupResult = regexp.MustCompile(`<script type="application/json" id="stepup-result">(.*?)</script>`)

// popupStepUp runs a popup challenge through the IdP and returns the
// callback's answer and the result it carries.
func popupStepUp(t *testing.T, a *app, b *browser) (response, map[string]any) {
	t.Helper()
	r := b.peek(t, "/stepup/start?scope=admin&return_to=/admin&display=popup&ref=tab-7")
	loc, err := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || err != nil || loc.Query().Get("display") != "popup" {
		t.Fatalf("start: %v (display=%q)", r, loc.Query().Get("display"))
	}
	res := b.peek(t, b.authorize(t, loc.String()).String())
	m := popupResult.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("callback: no popup page: %v", res)
	}
	var result map[string]any
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatal(err)
	}
	return res, result
}

// TestPopupStepUpReportsToTheOpener: a step-up started with display=popup
// asks the IdP for a popup, and its callback answers 200 with the page
// that posts stepup:granted to the application's origin, instead of a 303;
// the session is elevated.
func TestPopupStepUpReportsToTheOpener(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	res, result := popupStepUp(t, a, b)
	msg, _ := result["message"].(map[string]any)
	if res.status != http.StatusOK || msg["type"] != "stepup:granted" || msg["scope"] != "admin" || msg["ref"] != "tab-7" ||
		result["origin"] != a.url || result["returnTo"] != "/admin" {
		t.Fatalf("callback %d, result %v", res.status, result)
	}
	if res.header.Get("Content-Security-Policy") == "" || res.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers %v", res.header)
	}
	if e := a.audit.wantReason(t, stepup.EventGranted, ""); e.ChallengeStarted.IsZero() || e.ChallengeStarted.After(e.Time) {
		t.Errorf("granted event: challenge started %v, granted %v", e.ChallengeStarted, e.Time)
	}
	if !b.elevated(t) {
		t.Fatal("the popup step-up did not elevate the session")
	}
}

// TestPopupStepUpReportsADenialWithoutOnDenied: a refused popup step-up is
// reported to the opener by the library's page; the application's
// OnDenied, which renders full pages, is not called.
func TestPopupStepUpReportsADenialWithoutOnDenied(t *testing.T) {
	t.Parallel()
	calls := 0
	a := newApp(t, appOptions{config: func(c *stepup.Config) {
		c.OnDenied = func(w http.ResponseWriter, r *http.Request, d *stepup.Denial) {
			calls++
			http.Error(w, "full page", http.StatusForbidden)
		}
	}})
	a.setLogin(stepuptest.Login{ACR: pwd})
	b := a.loggedIn(t, "alice")
	res, result := popupStepUp(t, a, b)
	msg, _ := result["message"].(map[string]any)
	if res.status != http.StatusForbidden || msg["type"] != "stepup:denied" || msg["reason"] != string(stepup.ReasonACRNotSatisfied) || calls != 0 {
		t.Fatalf("callback %d, message %v, OnDenied called %d times", res.status, msg, calls)
	}
	a.audit.wantReason(t, stepup.EventDenied, stepup.ReasonACRNotSatisfied)
	if b.elevated(t) {
		t.Fatal("elevated after a refused popup step-up")
	}
}

// TestPopupStepUpReportsAStoreFailure: the session store fails at the
// grant; a full-page callback would go to OnError, a popup's reports
// session_error to its opener, so that the page that opened it does not
// wait for the user to close it.
func TestPopupStepUpReportsAStoreFailure(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	r := b.peek(t, "/stepup/start?scope=admin&return_to=/admin&display=popup&ref=tab-9")
	cb := b.authorize(t, r.header.Get("Location"))
	a.store.failCommit.Store(true)
	res := b.peek(t, cb.String())
	a.store.failCommit.Store(false)
	m := popupResult.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("no popup page: %v", res)
	}
	var result map[string]any
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatal(err)
	}
	msg, _ := result["message"].(map[string]any)
	if res.status != http.StatusInternalServerError || msg["type"] != "stepup:denied" || msg["reason"] != string(stepup.ReasonSessionError) || msg["ref"] != "tab-9" {
		t.Fatalf("callback %d, message %v", res.status, msg)
	}
	a.audit.wantReason(t, stepup.EventDenied, stepup.ReasonSessionError)
}
