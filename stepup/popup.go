package stepup

import (
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
)

// This file holds the popup step-up: a challenge started with
// display=popup (OIDC Core §3.1.2.1) ends in a small page that tells the
// window that opened the popup how it went, so that a page can step up
// without navigating away from what the user typed; and stepup.js, the
// client that drives it.

// maxRefLen bounds the opener's reference for a popup's result.
const maxRefLen = 64

// validRef reports whether ref is an opener's reference: 1 to 64
// characters of [A-Za-z0-9_-]. stepup.js sends a random UUID.
func validRef(ref string) bool {
	if ref == "" || len(ref) > maxRefLen {
		return false
	}
	for _, c := range []byte(ref) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// popupScript is the popup page's only script. It posts the result to the
// window that opened the popup, with the application's origin as the
// target origin, and closes the popup; it also posts it on the "stepup"
// BroadcastChannel, which reaches the opener when the IdP's
// Cross-Origin-Opener-Policy cut window.opener. Without an opener a grant
// goes on to return_to, as the full-page flow would; a denial stays on the
// page, which explains it. The result is read from a JSON element, so the
// script is fixed text whose hash is the page's Content-Security-Policy.
const popupScript = `(function () {
  var d = JSON.parse(document.getElementById("stepup-result").textContent);
  try { var c = new BroadcastChannel("stepup"); c.postMessage(d.message); c.close(); } catch (e) {}
  var o = null;
  try { o = window.opener; } catch (e) {}
  if (o && !o.closed) {
    try { o.postMessage(d.message, d.origin); } catch (e) {}
    window.close();
    return;
  }
  if (d.message.type === "stepup:granted") location.replace(d.returnTo);
})();`

// popupCSP allows the page's one script by its hash and nothing else: no
// other script, no inline handler, no style, image, frame or form.
var popupCSP = func() string {
	sum := sha256.Sum256([]byte(popupScript))
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// popupMessage is what the popup page posts. It holds no token, code,
// state or nonce: the opener learns the outcome and nothing else.
type popupMessage struct {
	Type   string `json:"type"` // stepup:granted or stepup:denied
	Scope  string `json:"scope,omitempty"`
	Reason Reason `json:"reason,omitempty"`
	Ref    string `json:"ref,omitempty"`
}

// appOrigin is the application's origin, the popup's target origin,
// derived from RedirectURL.
func appOrigin(redirectURL string) string {
	u, err := url.Parse(redirectURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// writePopupPage answers a popup challenge's callback with the page that
// reports msg to the opener: 200 for a grant, the status the default
// OnDenied would use for a denial. title and text are fixed texts of the
// library, escaped all the same.
func (s *StepUp) writePopupPage(w http.ResponseWriter, status int, msg popupMessage, returnTo, title, text string) {
	data, _ := json.Marshal(struct {
		Message  popupMessage `json:"message"`
		Origin   string       `json:"origin"`
		ReturnTo string       `json:"returnTo"`
	}{msg, s.origin, returnTo})
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", popupCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</title></head><body><h1 id="stepup-title">`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</h1><p id="stepup-text">`)
	b.WriteString(html.EscapeString(text))
	// json.Marshal escapes <, > and &, so the data cannot end its element.
	b.WriteString(`</p><script type="application/json" id="stepup-result">`)
	b.Write(data)
	b.WriteString(`</script><script>`)
	b.WriteString(popupScript)
	b.WriteString(`</script></body></html>`)
	w.Write([]byte(b.String()))
}

// popupGranted answers the callback of a popup challenge that granted.
func (s *StepUp) popupGranted(w http.ResponseWriter, c pending) {
	s.writePopupPage(w, http.StatusOK, popupMessage{Type: "stepup:granted", Scope: c.scope, Ref: c.ref},
		c.returnTo, "Step-up complete", "You can close this window.")
}

// popupDenied answers the callback of a popup challenge that was refused:
// the library renders the page (Config.OnDenied is for full pages), with
// the denial's text and the status the default OnDenied would use.
func (s *StepUp) popupDenied(w http.ResponseWriter, c pending, d *Denial) {
	s.writePopupPage(w, d.Status(), popupMessage{Type: "stepup:denied", Scope: c.scope, Reason: d.Reason, Ref: c.ref},
		c.returnTo, "Step-up failed", d.Text())
}

//go:embed stepup.js
var clientScript []byte

// clientScriptETag is the script's strong validator.
var clientScriptETag = func() string {
	sum := sha256.Sum256(clientScript)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
}()

// scriptIntegrity is computed once from the embedded script.
var scriptIntegrity = func() string {
	sum := sha512.Sum384(clientScript)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}()

// ScriptIntegrity returns the Subresource Integrity value (sha384-...) of
// the script [ScriptHandler] serves, for a
// <script type="module" integrity="..."> tag. It is a function, not a
// variable, so that no caller can change what every other caller reads.
func ScriptIntegrity() string { return scriptIntegrity }

// ScriptHandler serves stepup.js, an ES module with no dependencies that
// exports stepupFetch(input, init), a fetch that steps up in a popup on an
// RFC 9470 401 and retries the request once, and stepupForm(form), which
// submits a form through it. Mount it at a path of your choice, such as
// /stepup/stepup.js. Browsers revalidate it with its ETag (Cache-Control:
// no-cache), so a new version is picked up at once. docs/forms-and-spas.md
// describes both functions.
func ScriptHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("ETag", clientScriptETag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatches(r.Header.Get("If-None-Match"), clientScriptETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(clientScript)
	})
}

// etagMatches reports whether an If-None-Match header names etag
// (RFC 9110 §13.1.2, weak comparison).
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == "*" || part == etag {
			return true
		}
	}
	return false
}
