package stepup

import (
	"html"
	"net/http"
	"net/url"
	"strings"
)

// This file holds the confirmation page: what a navigation that another
// site started gets instead of a challenge. Such a navigation carries the
// SameSite=Lax session cookie, so without the page every link on another
// site to StartHandler would add a pending challenge to the user's session,
// push out the oldest (whose callback then fails unknown_state) and write a
// challenge event to the audit log.

// confirmCSP allows nothing: no script, style, image or form, and no
// framing, so the page's one link cannot be clickjacked. The link is not a
// form: Chromium applies form-action to every redirect a submission
// follows, and the start's redirect to the IdP goes to another origin.
const confirmCSP = "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// fromAnotherSite reports whether the browser says that another site
// started r: its Sec-Fetch-Site (W3C Fetch Metadata Request Headers) is
// cross-site, or same-site, since a sibling subdomain is another origin and
// may be another party's. same-origin (a page of this application) and none
// (a typed URL, a bookmark, a link opened from another program) are not.
// Neither is a request without the header, which proceeds as before:
// browsers before Chrome 76, Firefox 90 and Safari 16.4 do not send it, and
// none sends it over plain http to a host other than loopback.
func fromAnotherSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// writeConfirmPage answers a navigation from another site with a page that
// asks the user to continue. Its link leads back to StartHandler with the
// parameters it has already checked (scope, return_to after
// [SafeReturnTo], display and ref), and is a same-origin navigation, which
// starts the challenge. The page changes nothing: no challenge, no session
// write, no audit event. The scope name is the configuration's, escaped all
// the same. Element ids: stepup-title, stepup-text, and stepup-continue for
// the link.
func (s *StepUp) writeConfirmPage(w http.ResponseWriter, scope, returnTo string, mode challengeMode) {
	q := url.Values{"scope": {scope}, "return_to": {returnTo}}
	if mode.action != "" {
		q.Set("action", mode.action)
	}
	if mode.popup {
		q.Set("display", "popup")
		if mode.ref != "" {
			q.Set("ref", mode.ref)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", confirmCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Step up</title></head><body><h1 id="stepup-title">Step up</h1><p id="stepup-text">`)
	b.WriteString(html.EscapeString("Continue to step up for " + scope + "?"))
	b.WriteString(`</p><p><a id="stepup-continue" href="`)
	b.WriteString(html.EscapeString(s.cfg.StartPath + "?" + q.Encode()))
	b.WriteString(`">Continue</a></p></body></html>`)
	w.Write([]byte(b.String()))
}
