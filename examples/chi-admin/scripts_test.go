package main

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/stepup"
)

// serve sends one request to the console's handler, in process.
func (c *console) serve(method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, c.URL+target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	c.routes().ServeHTTP(rec, req)
	return rec
}

// TestStepUpScriptIsServedAndRevalidatedByItsETag: GET /stepup/stepup.js
// answers 200 with the library's script, byte for byte (its SRI value), as
// JavaScript, with an ETag and Cache-Control: no-cache; the ETag gets a 304
// without a body. It is outside the session middleware and lock: a
// session whose lock is held gets it at once, and no cookie is set.
func TestStepUpScriptIsServedAndRevalidatedByItsETag(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	unlock, ok := con.locks.lock(context.Background(), "held-session", true)
	if !ok {
		t.Fatal("could not take the session lock")
	}
	defer unlock()
	locked := http.Header{"Cookie": {"chi_admin_session=held-session"}}

	start := time.Now()
	res := con.serve("GET", "/stepup/stepup.js", locked)
	took := time.Since(start)
	h := res.Header()
	sum := sha512.Sum384(res.Body.Bytes())
	if res.Code != http.StatusOK || took >= sessionLockWait {
		t.Fatalf("GET /stepup/stepup.js: %d after %s, want 200 at once", res.Code, took)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type = %q, want text/javascript", ct)
	}
	if "sha384-"+base64.StdEncoding.EncodeToString(sum[:]) != stepup.ScriptIntegrity() {
		t.Errorf("the body is not the library's stepup.js (its SRI value differs)")
	}
	etag := h.Get("ETag")
	if !regexp.MustCompile(`^"[A-Za-z0-9_-]+"$`).MatchString(etag) || h.Get("Cache-Control") != "no-cache" ||
		h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Set-Cookie") != "" {
		t.Errorf("headers %v: want a strong ETag, Cache-Control: no-cache, nosniff, and no cookie", h)
	}

	res = con.serve("GET", "/stepup/stepup.js", http.Header{"If-None-Match": {etag}})
	if res.Code != http.StatusNotModified || res.Body.Len() != 0 || res.Header().Get("ETag") != etag {
		t.Errorf("GET with If-None-Match %s: %d, %d bytes, ETag %q; want 304, no body, the same ETag", etag, res.Code, res.Body.Len(), res.Header().Get("ETag"))
	}
	res = con.serve("GET", "/stepup/stepup.js", http.Header{"If-None-Match": {`"stale"`}})
	if res.Code != http.StatusOK || res.Body.Len() == 0 {
		t.Errorf("GET with a stale If-None-Match: %d, %d bytes; want 200 and the script", res.Code, res.Body.Len())
	}
	res = con.serve("HEAD", "/stepup/stepup.js", nil)
	if res.Code != http.StatusOK || res.Body.Len() != 0 || res.Header().Get("ETag") != etag {
		t.Errorf("HEAD: %d, %d bytes, ETag %q", res.Code, res.Body.Len(), res.Header().Get("ETag"))
	}
}

var (
	scriptTagRE   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	inlineEventRE = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	errorInFormRE = regexp.MustCompile(`(?s)<form [^>]*id="add-user-form"[^>]*>.*?\sdata-stepup-error[\s>].*?</form>`)
	extendLinkRE  = regexp.MustCompile(`<a [^>]*id="extend-admin" href="([^"]+)"`)
)

// TestUsersPageLoadsTheFormModuleWithoutInlineScript: /admin/users loads
// static/forms.js as a module, which imports /stepup/stepup.js, and has no
// inline script or event handler, under script-src 'self'. The Add-user
// form keeps its ids and field, and holds the data-stepup-error element;
// so does each user's Delete form, posting the name to /admin/users/delete.
// The card's "Extend admin mode" is a link to the full-page step-up that
// comes back to the page, for a browser without JavaScript.
func TestUsersPageLoadsTheFormModuleWithoutInlineScript(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	c := newClient(t, nil)
	c.stepUp(con.idp, con.URL, "alice")

	p := c.get(con.URL + "/admin/users")
	if p.status != http.StatusOK || p.header.Get("Content-Security-Policy") != pageCSP {
		t.Fatalf("GET /admin/users: %d, CSP %q", p.status, p.header.Get("Content-Security-Policy"))
	}
	var srcs []string
	for _, m := range scriptTagRE.FindAllStringSubmatch(p.body, -1) {
		src := regexp.MustCompile(`\ssrc="([^"]+)"`).FindStringSubmatch(m[1])
		if src == nil || strings.TrimSpace(m[2]) != "" {
			t.Errorf("an inline script: %s", m[0])
			continue
		}
		srcs = append(srcs, strings.TrimSpace(m[1]))
	}
	if want := `type="module" src="/static/forms.js"`; !strings.Contains(strings.Join(srcs, "\n"), want) {
		t.Errorf("scripts %q, want %s", srcs, want)
	}
	if m := inlineEventRE.FindString(p.body); m != "" {
		t.Errorf("an inline event handler: %s", m)
	}
	for _, want := range []string{`id="new-user" name="name"`, `id="add-user"`, `action="/admin/users"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the users page lacks %s", want)
		}
	}
	if !errorInFormRE.MatchString(p.body) {
		t.Error("no data-stepup-error element inside #add-user-form")
	}
	for _, user := range []string{"alice", "bob"} {
		deleteForm := regexp.MustCompile(`<form [^>]*action="/admin/users/delete"[^>]*\sdata-stepup-form[^>]*><input type="hidden" name="name" value="` +
			user + `"><button [^>]*id="delete-` + user + `"[^>]*>Delete</button><span [^>]*data-stepup-error[^>]*></span></form>`)
		if !deleteForm.MatchString(p.body) {
			t.Errorf("no Delete form for %s: method post, its name hidden, #delete-%s, a data-stepup-error element", user, user)
		}
	}
	m := extendLinkRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no Extend admin mode link")
	}
	link, err := url.Parse(htmlUnescape(m[1]))
	if err != nil || link.Path != "/stepup/start" || link.Query().Get("scope") != "admin" || link.Query().Get("return_to") != "/admin/users" {
		t.Errorf("Extend admin mode links to %s, want /stepup/start?scope=admin&return_to=/admin/users", m[1])
	}

	f := c.get(con.URL + "/static/forms.js")
	if f.status != http.StatusOK || !strings.HasPrefix(f.header.Get("Content-Type"), "text/javascript") ||
		!strings.Contains(f.body, `import { stepupForm } from "/stepup/stepup.js";`) {
		t.Errorf("GET /static/forms.js: %d %q\n%s", f.status, f.header.Get("Content-Type"), f.body)
	}
}
