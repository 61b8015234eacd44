package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// TestOpenRedirectThroughReturnToIsRefused: return_to must stay on this
// origin whatever a browser makes of it.
func TestOpenRedirectThroughReturnToIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    string
		want bool
	}{
		{"Root", "/", true},
		{"Path", "/admin", true},
		{"PathWithQueryAndFragment", "/admin/users?page=2#x", true},
		{"EncodedSlashesInThePath", "/a/%2F%2Fevil.test", true},
		{"Empty", "", false},
		{"RelativePath", "admin", false},
		{"ProtocolRelative", "//evil.test", false},
		{"ProtocolRelativeWithAPath", "//evil.test/admin", false},
		{"SlashBackslash", "/\\evil.test", false},
		{"BackslashesInThePath", "/admin\\..\\x", false},
		{"AbsoluteURL", "https://evil.test/", false},
		{"JavaScriptURL", "javascript:alert(1)", false},
		{"TabBetweenTheSlashes", "/\t/evil.test", false},
		{"NewlineBetweenTheSlashes", "/\n/evil.test", false},
		{"NUL", "/admin\x00", false},
		{"TwoBackslashes", "\\\\evil.test", false},
		{"OverTheLengthLimit", "/" + strings.Repeat("a", maxReturnToLen), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, ok := SafeReturnTo(tc.s); ok != tc.want {
				t.Errorf("SafeReturnTo(%q) ok = %v, want %v", tc.s, ok, tc.want)
			}
		})
	}
}

func TestStartHandlerFallsBackToDefaultReturnTo(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		name       string
		target     string
		wantReturn string
	}{
		{"SafeReturnTo", "/stepup/start?scope=admin&return_to=%2Fadmin%2Fusers", "/admin/users"},
		{"ProtocolRelativeReturnTo", "/stepup/start?scope=admin&return_to=%2F%2Fevil.test", "/"},
		{"AbsoluteReturnTo", "/stepup/start?scope=admin&return_to=https%3A%2F%2Fe.test", "/"},
		{"NoReturnTo", "/stepup/start?scope=admin", "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			w := h.serve(navigation("GET", tc.target, "alice"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.su.StartHandler().ServeHTTP(w, r)
				list, _ := decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
				if len(list) == 1 {
					got = list[0].returnTo
				}
			}))
			if w.Code != http.StatusSeeOther || got != tc.wantReturn {
				t.Errorf("%s: status %d, return_to %q, want %q", tc.target, w.Code, got, tc.wantReturn)
			}
		})
	}
	w := h.serve(navigation("GET", "/stepup/start?scope=root", "alice"), nil, h.su.StartHandler())
	if w.Code != http.StatusBadRequest {
		t.Errorf("unknown scope: status %d", w.Code)
	}
	w = h.serve(navigation("GET", "/stepup/start?scope=admin", ""), nil, h.su.StartHandler())
	if w.Code != http.StatusUnauthorized {
		t.Errorf("no user: status %d", w.Code)
	}
}

// TestPendingChallengesAreCappedAndExpire: nine challenges keep the newest
// eight; a challenge older than ten minutes is swept on the next one.
func TestPendingChallengesAreCappedAndExpire(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var states []string
	var list []pending
	h.serve(navigation("GET", "/stepup/start?scope=admin", "alice"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 9 {
			rw := &discard{h: http.Header{}}
			h.su.StartHandler().ServeHTTP(rw, r.Clone(r.Context()))
			u, _ := url.Parse(rw.h.Get("Location"))
			states = append(states, u.Query().Get("state"))
			h.advance(time.Second)
		}
		list, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
		if len(list) != maxPending || list[0].state != states[1] || list[7].state != states[8] {
			t.Fatalf("kept %+v; want the newest 8 of %q", list, states)
		}
		h.advance(challengeTTL)
		rw := &discard{h: http.Header{}}
		h.su.StartHandler().ServeHTTP(rw, r.Clone(r.Context()))
		list, _ = decodePending(stringValue(h.sm.Get(r.Context(), "stepup.pending")))
		if len(list) != 1 {
			t.Errorf("after ten minutes %d challenges are still pending", len(list))
		}
	}))
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func TestParseCallbackLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("c", 3000) // some IdPs issue long, self-contained codes
	if p, ok := parseCallback("state=S&code=" + long); !ok || p.code != long || p.state != "S" {
		t.Errorf("a 3000-byte code was refused")
	}
	for _, tc := range []struct {
		name string
		q    string
	}{
		{"CodeOverTheLimit", "state=S&code=" + strings.Repeat("c", maxCodeLen+1)},
		{"StateRepeated", "state=S&state=S&code=c"},
		{"CodeWithANewline", "state=S&code=c%0a"},
		{"ErrorWithAQuote", "state=S&error=access%22denied"},
		{"MalformedEscape", "state=S&code=c&%zz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, ok := parseCallback(tc.q)
			if ok {
				t.Errorf("parseCallback(%.40q) accepted it", tc.q)
			}
			if strings.HasPrefix(tc.q, "state=S&code=c") && p.state != "S" {
				t.Errorf("parseCallback(%.40q) lost the well-formed state, so its challenge would not be consumed", tc.q)
			}
		})
	}
}

// The fuzz targets below check each parser against an independent oracle
// (net/url, encoding/json, a model of how a browser resolves a Location),
// not only that it does not panic. Plain `go test` runs their seeds and the
// regression inputs under testdata/fuzz; `go test -fuzz` explores further.

// clean reports whether s is valid UTF-8 without an ASCII control character
// (C0 or DEL): the package's meaning of printable, stated independently.
func clean(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// rfc6749ErrorChars reports whether s uses only the characters RFC 6749
// §4.1.2.1 allows in an error code: %x20-21 / %x23-5B / %x5D-7E.
func rfc6749ErrorChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// FuzzParseCallback checks parseCallback against url.ParseQuery: a field
// holds only the single, printable, bounded value the query carried, even
// when the query is refused, and an accepted query parsed cleanly, repeats no
// parameter and has an error code in RFC 6749 §4.1.2.1's characters.
func FuzzParseCallback(f *testing.F) {
	for _, q := range []string{
		"",
		"state=S&code=c",
		"state=S&code=c&iss=https%3A%2F%2Fidp.test",
		"code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&iss=https%3A%2F%2Fidp.test",
		"state=S&error=access_denied&error_description=The+user+said+no&error_uri=https%3A%2F%2Fx",
		"state=S&error=interaction_required&iss=https%3A%2F%2Fidp.test",
		"state=S&state=S&code=c",
		"state=S&code=c&iss=a&iss=b",
		"state=S&code=c&%zz",
		"state=S;code=c",
		"state=S&code=c%0a",
		"state=S&code=c%00",
		"state=S&code=%7F",
		"state=S&error=access%22denied",
		"state=S&error=a%5Cb",
		"state=S&error=%C3%A9",
		"state=S&error=a+b!",
		"state=%FF&code=c",
		"state=%E2%80%A8&code=c",
		"state=%C2%85&code=c",
		"st%61te=S&state=T",
		"iss",
		"iss=&state=",
		"state=S+T&code=a%2Bb",
		"=&&=&state",
		"state=" + strings.Repeat("s", maxStateLen),
		"state=" + strings.Repeat("s", maxStateLen+1),
		"state=S&error=" + strings.Repeat("e", maxErrorLen+1),
		// Larger seeds stall the fuzzer in minimisation; the code, iss
		// and query limits are pinned by TestParseCallbackSizeBoundaries.
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, ok := parseCallback(raw)
		q, qerr := url.ParseQuery(raw)
		fields := []struct {
			name, got string
			max       int
		}{
			{"state", p.state, maxStateLen},
			{"code", p.code, maxCodeLen},
			{"iss", p.iss, maxReturnToLen},
			{"error", p.err, maxErrorLen},
		}
		// Whatever ok says, a field holds either nothing or the single,
		// printable, bounded value ParseQuery saw: the partial result of a
		// refused query is still used to consume the challenge by state.
		for _, fl := range fields {
			if fl.got == "" {
				continue
			}
			if !clean(fl.got) || len(fl.got) > fl.max {
				t.Errorf("%s = %q (%d bytes): not printable or over its limit %d", fl.name, fl.got, len(fl.got), fl.max)
			}
			if v := q[fl.name]; len(v) != 1 || v[0] != fl.got {
				t.Errorf("%s = %q, but url.ParseQuery saw %q", fl.name, fl.got, v)
			}
		}
		if len(raw) <= maxCallbackQuery {
			if _, has := q["iss"]; p.hasIss != has {
				t.Errorf("hasIss = %v, but url.ParseQuery saw iss: %v", p.hasIss, has)
			}
		}
		if !ok {
			return
		}
		if qerr != nil {
			t.Errorf("accepted a query url.ParseQuery refuses: %v", qerr)
		}
		if len(raw) > maxCallbackQuery {
			t.Errorf("accepted a %d-byte query (limit %d)", len(raw), maxCallbackQuery)
		}
		for _, fl := range fields {
			v := q[fl.name]
			if len(v) > 1 {
				t.Errorf("accepted %d %s parameters", len(v), fl.name)
			}
			if len(v) == 1 && v[0] != fl.got {
				t.Errorf("%s = %q, want the single value %q", fl.name, fl.got, v[0])
			}
		}
		if !rfc6749ErrorChars(p.err) {
			t.Errorf("accepted error=%q outside RFC 6749 §4.1.2.1's characters", p.err)
		}
	})
}

// TestParseCallbackSizeBoundaries pins each limit at its exact boundary, with
// inputs too large to seed FuzzParseCallback with.
func TestParseCallbackSizeBoundaries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, param string
		max         int
	}{
		{"state", "state", maxStateLen},
		{"code", "code", maxCodeLen},
		{"iss", "iss", maxReturnToLen},
		{"error", "error", maxErrorLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, size := range boundary(tc.max) {
				t.Run(size.name, func(t *testing.T) {
					t.Parallel()
					q := "state=S&" + tc.param + "=" + strings.Repeat("a", size.n)
					if tc.param == "state" {
						q = "state=" + strings.Repeat("a", size.n)
					}
					if _, ok := parseCallback(q); ok != (size.n <= tc.max) {
						t.Errorf("%s of %d bytes (limit %d): ok = %v", tc.name, size.n, tc.max, ok)
					}
				})
			}
		})
	}
	t.Run("query", func(t *testing.T) {
		t.Parallel()
		base := "state=S&code=c&pad="
		for _, size := range boundary(maxCallbackQuery) {
			t.Run(size.name, func(t *testing.T) {
				t.Parallel()
				q := base + strings.Repeat("x", size.n-len(base))
				if p, ok := parseCallback(q); ok != (size.n <= maxCallbackQuery) || (ok && p.state != "S") {
					t.Errorf("query of %d bytes (limit %d): ok = %v, state %q", size.n, maxCallbackQuery, ok, p.state)
				}
			})
		}
	})
}

// boundary is the two sizes that pin a limit of limit bytes: at it, and
// one byte over it.
func boundary(limit int) []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{{"AtTheLimit", limit}, {"OneByteOver", limit + 1}}
}

// browserResolve resolves ref against base the way a browser follows a
// Location header: the WHATWG URL parser strips leading and trailing C0
// controls and spaces, removes every ASCII tab and newline, and reads a
// backslash as a slash in an http(s) URL.
func browserResolve(base, ref string) (*url.URL, error) {
	ref = strings.TrimFunc(ref, func(r rune) bool { return r <= 0x20 })
	ref = strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(ref)
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return nil, err
	}
	return b.ResolveReference(r), nil
}

// staysOnOrigin fails t if a browser at base that follows ref leaves
// https://app.example, judged both on the resolved URL and on its
// serialisation (what the browser navigates to and shows).
func staysOnOrigin(t *testing.T, what, base, ref string) {
	t.Helper()
	u, err := browserResolve(base, ref)
	if err != nil {
		t.Fatalf("%s %q does not parse after browser clean-up: %v", what, ref, err)
	}
	if u.Scheme != "https" || u.Host != "app.example" || u.User != nil {
		t.Fatalf("%s %q leaves the origin: resolves to %q", what, ref, u)
	}
	again, err := url.Parse(u.String())
	if err != nil || again.Scheme != "https" || again.Host != "app.example" || again.User != nil {
		t.Fatalf("%s %q resolves to %q, which reads back as %v (%v)", what, ref, u, again, err)
	}
}

// plainPath reports whether s is obviously a safe same-origin path, one a
// useful safeReturnTo must accept.
func plainPath(s string) bool {
	if len(s) == 0 || len(s) > maxField || s[0] != '/' || strings.HasPrefix(s, "//") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// FuzzSafeReturnTo checks that an accepted return_to keeps a browser on the
// origin (the open redirect it stops), both as stored and as http.Redirect
// sends it, and that plain paths are not refused.
func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range []string{
		"/", "/admin", "/admin/users?sort=name&page=2#top", "/a/b/../c", "/search?q=%2F%2Fevil",
		"//evil", "/\\evil", "/x\\y", "/a/..\\..\\evil", "\\\\evil", "\\/evil", "/\t/evil", "/\n/evil", "/\r\n/evil", " //evil", "/ /evil",
		"/%2F%2Fevil", "/%2f/evil", "/%5Cevil", "/%09/evil", "/.//evil", "/..//evil", "/./..//evil",
		"/a/../..//evil", "/%2e%2e//evil", "https:evil", "https://evil", "http:/evil", "/http://evil",
		"javascript:alert(1)", "/@evil", "/user@evil", "/;//evil", "/?//evil", "/#//evil", "/:evil",
		"/\u2215evil", "/\u2044evil", "/\uff0f/evil", "/\uff3cevil", "/\u3002evil", "/\u2028/evil",
		"/\u0085/evil", "/\x00", "/\x7f", "/\xff", "/a%zz", "", "evil", ".", "?x", "#x",
		"/" + strings.Repeat("a", maxField-1), "/" + strings.Repeat("a", maxField), "/" + strings.Repeat("a", maxReturnToLen),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := SafeReturnTo(s)
		if !ok {
			if got != "" {
				t.Errorf("refused %q but returned %q", s, got)
			}
			if plainPath(s) {
				t.Errorf("refused the plain same-origin path %q", s)
			}
			return
		}
		if got != s {
			t.Fatalf("accepted %q as %q: a return_to is refused, never repaired", s, got)
		}
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, `/\`) {
			t.Errorf("accepted %q: not a single leading slash", s)
		}
		if strings.Contains(s, `\`) || !clean(s) || len(s) > maxReturnToLen {
			t.Errorf("accepted %q: backslash, control character, invalid UTF-8 or over the limit", s)
		}
		// The real property: wherever it is followed, it stays on the
		// origin. First as a browser reads the stored value, then as the
		// callback actually sends it (http.Redirect cleans the path).
		staysOnOrigin(t, "return_to", "https://app.example/base/", s)
		const callback = "https://app.example/stepup/callback?state=S&code=c"
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest(http.MethodGet, callback, nil), s, http.StatusSeeOther)
		staysOnOrigin(t, "Location", callback, w.Header().Get("Location"))
	})
}

// TestCorruptPendingListIsDroppedAndAudited: a damaged list of pending
// challenges (a bad store write, a tampered store) is removed and audited,
// never silently; a new challenge still starts, and a callback that would
// have answered one of its challenges is refused.
func TestCorruptPendingListIsDroppedAndAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	corrupt := map[string]any{"stepup.pending": "p1\x1eSTATE\x1fonly-two-fields"}

	w := h.serve(navigation("GET", "/stepup/callback?state=STATE&code=c", "alice"), corrupt, h.su.CallbackHandler())
	if w.Code != http.StatusForbidden {
		t.Fatalf("callback: %d %q", w.Code, w.Body)
	}
	ev := h.audit.Events()
	if len(ev) != 2 || ev[0].Type != EventDropped || ev[0].Reason != ReasonCorrupt || ev[0].Scope != "" ||
		ev[1].Type != EventDenied || ev[1].Reason != ReasonUnknownState {
		t.Fatalf("audit %+v, want dropped/corrupt then denied/unknown_state", ev)
	}

	h.audit.Reset()
	w = h.serve(navigation("GET", "/stepup/start?scope=admin", "alice"), corrupt, h.su.StartHandler())
	if w.Code != http.StatusSeeOther {
		t.Fatalf("start: %d %q", w.Code, w.Body)
	}
	if types := h.audit.Types(); !slices.Equal(types, []EventType{EventDropped, EventChallenge}) {
		t.Fatalf("audit %v, want dropped then challenge", types)
	}
}

// TestTokenErrorTellsRefusalFromFailure: a forged or replayed code is the
// IdP refusing (token_refused, a 4xx for the user), not the IdP failing
// (token_exchange_failed, 502), so an operator alerting on the second is
// not paged by attackers sending the first.
func TestTokenErrorTellsRefusalFromFailure(t *testing.T) {
	t.Parallel()
	oauthErr := func(status int, code string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code}
	}
	for _, tc := range []struct {
		name   string
		err    error
		reason Reason
		code   string
	}{
		{"ForgedCodeInvalidGrant", oauthErr(400, "invalid_grant"), ReasonTokenRefused, "invalid_grant"},
		{"WrongClientSecret", oauthErr(401, "invalid_client"), ReasonTokenRefused, "invalid_client"},
		{"WrappedRefusal", fmt.Errorf("exchange: %w", oauthErr(400, "invalid_request")), ReasonTokenRefused, "invalid_request"},
		{"ErrorCodeWithQuoteIsNotLogged", oauthErr(400, `invalid"grant`), ReasonTokenRefused, ""},
		{"OversizedErrorCodeIsNotLogged", oauthErr(400, strings.Repeat("e", 65)), ReasonTokenRefused, ""},
		{"ServerError", oauthErr(500, "server_error"), ReasonTokenExchange, ""},
		{"BadGatewayWithoutOAuthBody", oauthErr(502, ""), ReasonTokenExchange, ""},
		{"NotFoundWithoutOAuthBody", oauthErr(404, ""), ReasonTokenExchange, ""},
		{"Timeout", context.DeadlineExceeded, ReasonTokenExchange, ""},
		{"ConnectionRefused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ReasonTokenExchange, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reason, code := tokenError(tc.err)
			if reason != tc.reason || code != tc.code {
				t.Errorf("%q %q, want %q %q", reason, code, tc.reason, tc.code)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		reason Reason
		want   int
	}{
		{"DefaultOnDeniedForARefusal", ReasonTokenRefused, http.StatusForbidden},
		{"DefaultOnDeniedForAFailure", ReasonTokenExchange, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			defaultDenied(w, httptest.NewRequest("GET", "/stepup/callback", nil), &Denial{Reason: tc.reason})
			if w.Code != tc.want {
				t.Errorf("default OnDenied for %s: %d, want %d", tc.reason, w.Code, tc.want)
			}
		})
	}
}
