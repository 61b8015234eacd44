package devidp_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
)

// deleteBob is what chi-admin sends to delete bob (RFC 9396 §2).
const deleteBob = `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}]`

// approveLine is the #approve-text paragraph the pages show for deleteBob.
const approveLine = `<p id="approve-text"><strong>` + clientID + `</strong> asks you to approve: <strong>Delete user bob</strong></p>`

// TestAuthorizationDetailsAreShownAndReturned: a request with
// authorization_details shows what it asks to approve on the sign-in page
// and on the one-time code page, and the token response returns the
// details as a JSON array (RFC 9396 §7), not a string. A request without
// them shows no such line and gets none back.
func TestAuthorizationDetailsAreShownAndReturned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	f := e.start(with(strong, "authorization_details", deleteBob, "max_age", "0"))
	page := b.get(t, f.authURL)
	wantPage(t, page, signInTitle)
	if !strings.Contains(page.body, approveLine) {
		t.Errorf("the sign-in page lacks %s", approveLine)
	}
	page = b.signIn(t, page, "alice")
	wantPage(t, page, otpTitle)
	if !strings.Contains(page.body, approveLine) {
		t.Errorf("the one-time code page lacks %s", approveLine)
	}
	c, tok := e.redeem(t, f, b.enterCode(t, page, e.code(t, "alice")))
	if c.ACR != devidp.StrongACR {
		t.Errorf("acr = %q", c.ACR)
	}
	got, ok := tok.Extra("authorization_details").([]any)
	var want []any
	json.Unmarshal([]byte(deleteBob), &want)
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("token response authorization_details = %#v, want the JSON array %s", tok.Extra("authorization_details"), deleteBob)
	}

	b = newBrowser(t) // no IdP session, so that the sign-in page shows
	f = e.start(strong)
	page = b.signIn(t, b.get(t, f.authURL), "alice")
	if strings.Contains(page.body, `id="approve-text"`) {
		t.Error("a request without authorization_details shows an approval")
	}
	if _, tok := e.redeem(t, f, b.enterCode(t, page, e.code(t, "alice"))); tok.Extra("authorization_details") != nil {
		t.Errorf("a request without authorization_details got %#v back", tok.Extra("authorization_details"))
	}
}

// TestAuthorizationDetailsAreNeverApprovedBySingleSignOn: a strong IdP
// session answers a strong request alone, but not one that asks the user
// to approve something: that shows the sign-in page with the approval.
func TestAuthorizationDetailsAreNeverApprovedBySingleSignOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	b := newBrowser(t)
	e.login(t, b, strong, "alice")
	f := e.start(strong)
	if res := b.get(t, f.authURL); res.callback == nil {
		t.Fatalf("the strong session did not sign on alone: %d %s", res.status, res.url)
	}
	page := b.get(t, e.start(with(strong, "authorization_details", deleteBob)).authURL)
	wantPage(t, page, signInTitle)
	if !strings.Contains(page.body, approveLine) {
		t.Errorf("the sign-in page lacks %s", approveLine)
	}
}

// TestMalformedAuthorizationDetailsAreRefused: details that are not an
// array of objects with a type, that are larger than 4 KiB, or that would
// display as something else get invalid_authorization_details (RFC 9396
// §5) at the RP, with the state and no code, before any page.
func TestMalformedAuthorizationDetailsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, devidp.Config{})
	for _, tt := range []struct{ name, raw string }{
		{"not JSON", `[{"type":`},
		{"an object", `{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}`},
		{"empty array", `[]`},
		{"no type", `[{"actions":["delete"],"identifier":"bob"}]`},
		{"actions not strings", `[{"type":"urn:stepup:example:user","actions":[{"delete":true}],"identifier":"bob"}]`},
		{"bidi override", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"\u202eecila"}]`},
		{"oversized", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"` + strings.Repeat("b", 4096) + `"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := e.start(with(strong, "authorization_details", tt.raw))
			res := newBrowser(t).get(t, f.authURL)
			if res.callback == nil {
				t.Fatalf("status %d at %s (title %q), want a redirect to the RP", res.status, res.url, res.title())
			}
			if q := res.callback.Query(); q.Get("error") != "invalid_authorization_details" || q.Get("state") != f.state || q.Get("code") != "" {
				t.Fatalf("callback = %s, want error=invalid_authorization_details with the state", res.callback)
			}
		})
	}
}
