package stepup_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// deleteUserAction derives the action of POST /admin/users/delete: delete
// the user named by the form field name.
func deleteUserAction(r *http.Request) (stepup.Action, bool) {
	name := r.PostFormValue("name")
	if name == "" {
		return stepup.Action{}, false
	}
	return stepup.Action{Type: "urn:stepup:example:user", Actions: []string{"delete"}, Identifier: name, Text: "Delete user " + name}, true
}

// actionApp is an app whose scope "delete" approves one action at a time,
// sent to the IdP as authorization details, guarding POST /admin/users/delete.
func actionApp(t *testing.T, opts appOptions) *app {
	t.Helper()
	cfg := opts.config
	opts.config = func(c *stepup.Config) {
		c.Scopes["delete"] = stepup.Scope{ACR: []string{mfa}, AuthorizationDetails: true}
		if cfg != nil {
			cfg(c)
		}
	}
	opts.routes = func(a *app) map[string]http.Handler {
		return map[string]http.Handler{
			"POST /admin/users/delete": a.su.RequireStepUpFor("delete", deleteUserAction)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("deleted " + r.PostFormValue("name")))
			})),
		}
	}
	return newApp(t, opts)
}

// deleteUser posts the delete form as a script would (not a navigation).
func (b *browser) deleteUser(t *testing.T, name string) response {
	t.Helper()
	return b.do(t, b.noFollow, http.MethodPost, "/admin/users/delete", url.Values{"name": {name}}, http.Header{"Accept": {"application/json"}})
}

// approve takes a 401 challenge's step_up_url through the IdP and the
// callback, as stepup.js's popup does, and returns the callback's answer.
func (b *browser) approve(t *testing.T, challenge response) response {
	t.Helper()
	var body struct {
		StepUpURL string `json:"step_up_url"`
	}
	if challenge.status != http.StatusUnauthorized || json.Unmarshal([]byte(challenge.body), &body) != nil || !strings.Contains(body.StepUpURL, "action=") {
		t.Fatalf("want the RFC 9470 401 naming an action challenge, got %v", challenge)
	}
	start := b.peek(t, body.StepUpURL)
	wantRedirectToIdP(t, b.a, start)
	cb := b.authorize(t, start.header.Get("Location"))
	return b.peek(t, cb.String())
}

func TestApprovalAuthorizesExactlyOneRequestForExactlyItsAction(t *testing.T) {
	t.Parallel()
	a := actionApp(t, appOptions{})
	b := a.loggedIn(t, "alice")

	cb := b.approve(t, b.deleteUser(t, "bob"))
	wantRedirect(t, cb, http.StatusSeeOther, "/admin/users/delete")
	reqs := a.idp.Requests()
	last := reqs[len(reqs)-1]
	if last.MaxAge == nil || *last.MaxAge != 0 {
		t.Errorf("max_age = %v, want 0", last.MaxAge)
	}
	var details []map[string]any
	if err := json.Unmarshal([]byte(last.AuthorizationDetails), &details); err != nil || len(details) != 1 ||
		details[0]["type"] != "urn:stepup:example:user" || details[0]["identifier"] != "bob" {
		t.Fatalf("authorization_details sent: %q", last.AuthorizationDetails)
	}
	granted := a.audit.last(t, stepup.EventGranted)
	if granted.ActionType != "urn:stepup:example:user" || granted.ActionIdentifier != "bob" || len(granted.Actions) != 1 || granted.Actions[0] != "delete" {
		t.Errorf("granted event: %+v", granted)
	}

	// The approval for bob does not delete alice, and stays unused.
	if r := b.deleteUser(t, "alice"); r.status != http.StatusUnauthorized {
		t.Fatalf("delete alice with bob's approval: %v", r)
	}
	if r := b.deleteUser(t, "bob"); r.status != http.StatusOK || r.body != "deleted bob" {
		t.Fatalf("delete bob: %v", r)
	}
	consumed := a.audit.last(t, stepup.EventConsumed)
	if consumed.Elevation != granted.Elevation || consumed.ActionIdentifier != "bob" {
		t.Errorf("consumed event %+v does not name the approval %s", consumed, granted.Elevation)
	}
	// Used up: the same request again is challenged.
	if r := b.deleteUser(t, "bob"); r.status != http.StatusUnauthorized {
		t.Fatalf("a second delete of bob with one approval: %v", r)
	}
	// A request that names no action is refused.
	if r := b.deleteUser(t, ""); r.status != http.StatusBadRequest {
		t.Fatalf("no name: %v", r)
	}
	a.audit.wantReason(t, stepup.EventDenied, stepup.ReasonActionInvalid)
}

func TestApprovalExpiresAndIsRevoked(t *testing.T) {
	t.Parallel()
	a := actionApp(t, appOptions{})
	b := a.loggedIn(t, "alice")
	b.approve(t, b.deleteUser(t, "bob"))
	a.clock.Advance(stepup.DefaultActionWindow)
	if r := b.deleteUser(t, "bob"); r.status != http.StatusUnauthorized {
		t.Fatalf("after the window: %v", r)
	}
	b.approve(t, b.deleteUser(t, "bob"))
	if err := a.su.RevokeSubject(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if r := b.deleteUser(t, "bob"); r.status != http.StatusUnauthorized {
		t.Fatalf("after RevokeSubject: %v", r)
	}
}

// TestIdPThatChangesTheApprovedActionIsDenied: an IdP that returns no
// authorization details, or details that differ by one field, grants
// nothing; actions in another order are the same set.
func TestIdPThatChangesTheApprovedActionIsDenied(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		login  stepuptest.Login
		reason stepup.Reason
	}{
		{"dropped", stepuptest.Login{OmitAuthorizationDetails: true}, stepup.ReasonDetailsMissing},
		{"another identifier", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"alice"}]`)}, stepup.ReasonDetailsMismatch},
		{"another action", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":"urn:stepup:example:user","actions":["read"],"identifier":"bob"}]`)}, stepup.ReasonDetailsMismatch},
		{"another type", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":"urn:other","actions":["delete"],"identifier":"bob"}]`)}, stepup.ReasonDetailsMismatch},
		{"a field added", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob","locations":["https://x"]}]`)}, stepup.ReasonDetailsMismatch},
		{"a second object", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"},{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"carol"}]`)}, stepup.ReasonDetailsMismatch},
		{"not an array", stepuptest.Login{AuthorizationDetails: json.RawMessage(`{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}`)}, stepup.ReasonDetailsMismatch},
		{"malformed", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":`)}, stepup.ReasonDetailsMismatch},
		{"oversized", stepuptest.Login{AuthorizationDetails: json.RawMessage(`[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"` + strings.Repeat("b", 5000) + `"}]`)}, stepup.ReasonDetailsMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := actionApp(t, appOptions{})
			login := tc.login
			login.AMR = []string{"pwd", "otp"}
			a.setLogin(login)
			b := a.loggedIn(t, "alice")
			cb := b.approve(t, b.deleteUser(t, "bob"))
			if cb.status != http.StatusForbidden {
				t.Fatalf("callback: %v, want 403", cb)
			}
			a.audit.wantReason(t, stepup.EventDenied, tc.reason)
			if r := b.deleteUser(t, "bob"); r.status != http.StatusUnauthorized {
				t.Fatalf("delete after a denied approval: %v", r)
			}
		})
	}
	t.Run("actions in another order", func(t *testing.T) {
		t.Parallel()
		a := newApp(t, appOptions{
			config: func(c *stepup.Config) { c.Scopes["two"] = stepup.Scope{ACR: []string{mfa}, AuthorizationDetails: true} },
			routes: func(a *app) map[string]http.Handler {
				derive := func(*http.Request) (stepup.Action, bool) {
					return stepup.Action{Type: "urn:t", Actions: []string{"read", "write"}, Identifier: "x", Text: "Read and write x"}, true
				}
				return map[string]http.Handler{"POST /two": a.su.RequireStepUpFor("two", derive)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))}
			},
		})
		a.setLogin(stepuptest.Login{AMR: []string{"pwd", "otp"}, AuthorizationDetails: json.RawMessage(`[{"type":"urn:t","actions":["write","read"],"identifier":"x"}]`)})
		b := a.loggedIn(t, "alice")
		r := b.do(t, b.noFollow, http.MethodPost, "/two", url.Values{}, http.Header{"Accept": {"application/json"}})
		if cb := b.approve(t, r); cb.status != http.StatusSeeOther {
			t.Fatalf("callback: %v", cb)
		}
		if r := b.do(t, b.noFollow, http.MethodPost, "/two", url.Values{}, http.Header{"Accept": {"application/json"}}); r.status != http.StatusOK {
			t.Fatalf("request: %v", r)
		}
	})
}

// TestOneApprovalCannotBeUsedTwiceAcrossReplicas: one approval, then 16
// requests for its action at once, half at each replica, on every shared
// store: exactly one is served.
func TestOneApprovalCannotBeUsedTwiceAcrossReplicas(t *testing.T) {
	t.Parallel()
	for name, stores := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := stores(t)
			a := actionApp(t, appOptions{store: s[0]})
			r := a.replica(t, s[1])
			b := a.loggedIn(t, "alice")
			b.approve(t, b.deleteUser(t, "bob"))
			var mu sync.Mutex
			served := 0
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Go(func() {
					br := b
					if i%2 == 1 {
						br = b.on(r)
					}
					if res := br.deleteUser(t, "bob"); res.status == http.StatusOK {
						mu.Lock()
						served++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if served != 1 {
				t.Fatalf("%d requests used one approval", served)
			}
			if n := a.audit.count(stepup.EventConsumed); n != 1 {
				t.Fatalf("%d consumed events", n)
			}
		})
	}
}

// TestFullPageStepUpForAnActionUsesTheApprovalAtReturnTo: a navigation (GET)
// to an action-guarded URL goes to the IdP; the callback's 303 to
// return_to, that same URL, is the request that uses the approval.
func TestFullPageStepUpForAnActionUsesTheApprovalAtReturnTo(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOptions{
		config: func(c *stepup.Config) {
			c.Scopes["export"] = stepup.Scope{ACR: []string{mfa}, AuthorizationDetails: true}
		},
		routes: func(a *app) map[string]http.Handler {
			derive := func(r *http.Request) (stepup.Action, bool) {
				report := r.URL.Query().Get("report")
				return stepup.Action{Type: "urn:example:report", Actions: []string{"export"}, Identifier: report, Text: "Export report " + report}, report != ""
			}
			return map[string]http.Handler{"GET /reports/export": a.su.RequireStepUpFor("export", derive)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("exported " + r.URL.Query().Get("report")))
			}))}
		},
	})
	b := a.loggedIn(t, "alice")
	cb := b.authorize(t, b.challenge(t, "/reports/export?report=q3"))
	wantRedirect(t, b.peek(t, cb.String()), http.StatusSeeOther, "/reports/export?report=q3")
	if r := b.peek(t, "/reports/export?report=q3"); r.status != http.StatusOK || r.body != "exported q3" {
		t.Fatalf("the navigation back to return_to: %v", r)
	}
	if r := b.peek(t, "/reports/export?report=q3"); r.status != http.StatusSeeOther {
		t.Fatalf("a second export with one approval: %v, want a new challenge", r)
	}
	if n := a.audit.count(stepup.EventConsumed); n != 1 {
		t.Fatalf("%d consumed events", n)
	}
}
