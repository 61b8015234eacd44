package stepup

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// popupPage is a rendered popup page, taken apart.
type popupPage struct {
	status  int
	header  http.Header
	body    string
	result  map[string]any // the JSON element
	message map[string]any
	script  string // the one executable script
}

var (
	resultElement = regexp.MustCompile(`<script type="application/json" id="stepup-result">(.*?)</script>`)
	scriptElement = regexp.MustCompile(`<script>(.*?)</script>`)
)

func readPopupPage(t *testing.T, w *httptest.ResponseRecorder) popupPage {
	t.Helper()
	p := popupPage{status: w.Code, header: w.Header(), body: w.Body.String()}
	m := resultElement.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no result element in %s", p.body)
	}
	if err := json.Unmarshal([]byte(m[1]), &p.result); err != nil {
		t.Fatalf("result %s: %v", m[1], err)
	}
	p.message, _ = p.result["message"].(map[string]any)
	scripts := scriptElement.FindAllStringSubmatch(strings.ReplaceAll(p.body, "\n", "\x00"), -1)
	if len(scripts) != 1 {
		t.Fatalf("%d executable scripts, want 1", len(scripts))
	}
	p.script = strings.ReplaceAll(scripts[0][1], "\x00", "\n")
	return p
}

// TestPopupPageReportsTheGrantToItsOpenerOnly: the page posts to the
// application's origin only, says granted, the scope and the opener's
// ref, and nothing else: no token, code, state or nonce. Its one script is
// allowed by hash, no other script or handler can run, and the callback
// URL (which holds the code) is not sent as a Referer.
func TestPopupPageReportsTheGrantToItsOpenerOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := httptest.NewRecorder()
	h.su.popupGranted(w, pending{state: "STATE", nonce: "NONCE", verifier: "VERIFIER", scope: "admin", returnTo: "/admin/users", popup: true, ref: "r-1"})
	p := readPopupPage(t, w)
	if p.status != http.StatusOK {
		t.Errorf("status %d", p.status)
	}
	if got, want := p.result["origin"], "https://app.test"; got != want {
		t.Errorf("target origin %v, want %s (from RedirectURL)", got, want)
	}
	if p.result["returnTo"] != "/admin/users" {
		t.Errorf("returnTo %v", p.result["returnTo"])
	}
	keys := make([]string, 0, len(p.message))
	for k := range p.message {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"ref", "scope", "type"}) || p.message["type"] != "stepup:granted" || p.message["scope"] != "admin" || p.message["ref"] != "r-1" {
		t.Errorf("message %v", p.message)
	}
	for _, secret := range []string{"STATE", "NONCE", "VERIFIER"} {
		if strings.Contains(p.body, secret) {
			t.Errorf("the page holds %s", secret)
		}
	}
	sum := sha256.Sum256([]byte(p.script))
	wantCSP := "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	for k, want := range map[string]string{
		"Content-Security-Policy": wantCSP,
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if strings.Contains(p.body, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(p.body) {
		t.Error("the page has an inline event handler")
	}
	if !strings.Contains(p.script, "postMessage(d.message, d.origin)") || !strings.Contains(p.script, `BroadcastChannel("stepup")`) ||
		!strings.Contains(p.script, "location.replace(d.returnTo)") {
		t.Errorf("the script does not post to the opener's origin, broadcast, and fall back to return_to:\n%s", p.script)
	}
}

// TestPopupPageReportsADenial: the library renders the denial page (not
// OnDenied), with the reason for the opener, the denial's text for the
// user, and the status the default OnDenied would use.
func TestPopupPageReportsADenial(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		reason Reason
		status int
	}{
		{ReasonACRNotSatisfied, http.StatusForbidden},
		{ReasonTokenExchange, http.StatusBadGateway},
		{ReasonTokenRefused, http.StatusForbidden},
		{ReasonUnauthenticated, http.StatusUnauthorized},
		{ReasonBadRequest, http.StatusBadRequest},
		{ReasonSessionError, http.StatusInternalServerError},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			w := httptest.NewRecorder()
			d := &Denial{Scope: "admin", Reason: tc.reason}
			h.su.popupDenied(w, pending{scope: "admin", returnTo: "/admin", popup: true, ref: "r-2"}, d)
			p := readPopupPage(t, w)
			if p.status != tc.status || p.message["type"] != "stepup:denied" || p.message["reason"] != string(tc.reason) || p.message["ref"] != "r-2" {
				t.Errorf("%d %v", p.status, p.message)
			}
			if !strings.Contains(p.body, `<p id="stepup-text">`+strings.ReplaceAll(d.Text(), "'", "&#39;")) {
				t.Errorf("the page does not explain the denial: %s", p.body)
			}
		})
	}
}

// TestPopupResultCannotEndItsElement: a return_to holding "</script>" (a
// path SafeReturnTo accepts) stays data.
func TestPopupResultCannotEndItsElement(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := httptest.NewRecorder()
	h.su.popupGranted(w, pending{scope: "admin", returnTo: "/x</script><script>alert(1)</script>", popup: true, ref: "r"})
	p := readPopupPage(t, w)
	if p.result["returnTo"] != "/x</script><script>alert(1)</script>" || strings.Contains(p.body, "<script>alert") {
		t.Errorf("returnTo %v; body %s", p.result["returnTo"], p.body)
	}
}

// TestStartHandlerPopupMode: display=popup is remembered with the opener's
// ref and sent to the IdP; anything else in display or ref is refused.
func TestStartHandlerPopupMode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var list []pending
	start := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.su.StartHandler().ServeHTTP(w, r)
		list, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
	})
	w := h.serve(navigation("GET", "/stepup/start?scope=admin&return_to=/admin&display=popup&ref=abc-123", "alice"), nil, start)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || loc.Query().Get("display") != "popup" {
		t.Fatalf("start: %d %s", w.Code, loc)
	}
	if len(list) != 1 || !list[0].popup || list[0].ref != "abc-123" || list[0].returnTo != "/admin" {
		t.Errorf("pending %+v", list)
	}
	w = h.serve(navigation("GET", "/stepup/start?scope=admin", "alice"), nil, start)
	if loc, _ := url.Parse(w.Header().Get("Location")); loc.Query().Has("display") || len(list) != 1 || list[0].popup {
		t.Errorf("a full-page start became a popup: %s %+v", loc, list)
	}
	for _, tc := range []struct {
		name string
		q    string
	}{
		{"DisplayOtherThanPopup", "display=page"},
		{"DisplayRepeated", "display=popup&display=popup"},
		{"RefWithASpace", "display=popup&ref=a%20b"},
		{"RefOver64Bytes", "display=popup&ref=" + strings.Repeat("r", 65)},
		{"RefWithoutPopup", "ref=abc"},
		{"RefRepeated", "display=popup&ref=a&ref=b"},
		{"RefWithMarkup", "display=popup&ref=%3Cscript%3E"},
	} {
		// The rows share the harness: not parallel.
		t.Run(tc.name, func(t *testing.T) {
			w := h.serve(navigation("GET", "/stepup/start?scope=admin&"+tc.q, "alice"), nil, start)
			if w.Code != http.StatusBadRequest {
				t.Errorf("%s: %d", tc.q, w.Code)
			}
		})
	}
}

// TestScriptHandlerServesASmallSelfContainedModule: stepup.js is under
// 3,072 bytes, imports nothing, exports the two functions, and is
// revalidated with its ETag.
func TestScriptHandlerServesASmallSelfContainedModule(t *testing.T) {
	t.Parallel()
	if n := len(clientScript); n >= 3072 {
		t.Errorf("stepup.js is %d bytes, over the 3,072-byte budget", n)
	}
	if regexp.MustCompile(`(?m)^\s*import\b|\bimport\s*\(|\brequire\s*\(`).Match(clientScript) {
		t.Error("stepup.js imports something")
	}
	for _, export := range []string{"export async function stepupFetch(input, init)", "export function stepupForm(form)"} {
		if !strings.Contains(string(clientScript), export) {
			t.Errorf("stepup.js does not %s", export)
		}
	}
	h := ScriptHandler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/stepup/stepup.js", nil))
	etag := w.Header().Get("ETag")
	if w.Code != 200 || w.Body.String() != string(clientScript) || etag == "" || w.Header().Get("Cache-Control") != "no-cache" ||
		w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET: %d %v", w.Code, w.Header())
	}
	for _, tc := range []struct {
		name string
		inm  string
	}{
		{"IfNoneMatchTheETag", etag},
		{"IfNoneMatchTheWeakETag", "W/" + etag},
		{"IfNoneMatchAListWithTheETag", `"other", ` + etag},
		{"IfNoneMatchAny", "*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/stepup/stepup.js", nil)
			r.Header.Set("If-None-Match", tc.inm)
			h.ServeHTTP(w, r)
			if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Errorf("If-None-Match %s: %d", tc.inm, w.Code)
			}
		})
	}
	w = httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/stepup/stepup.js", nil)
	r.Header.Set("If-None-Match", `"stale"`)
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("a stale ETag: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/stepup/stepup.js", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/stepup/stepup.js", nil))
	sum := sha512.Sum384(w.Body.Bytes())
	if want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); ScriptIntegrity() != want {
		t.Errorf("ScriptIntegrity() %q, but the served script hashes to %q", ScriptIntegrity(), want)
	}
}
