package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup"
)

// testMetricsToken is the -metrics-token of the tests.
const testMetricsToken = "test-metrics-token-0123456789"

// scrape fetches /metrics as Prometheus would, with the bearer token.
func scrape(t *testing.T, appURL, token string) result {
	t.Helper()
	c := newClient(t, nil)
	return c.doWith("GET", appURL+"/metrics", nil, http.Header{"Authorization": {"Bearer " + token}})
}

// metricLine matches one sample of the Prometheus text format: the name,
// its labels, and the value.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)

// labelPair matches one label of a sample.
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// TestMetricsCountAStepUpARevocationAndADenialWithoutNamingAnyone: alice
// steps up, revokes her own elevations with the revoke form, is refused
// at her next admin request, and has a second step-up refused by the IdP.
// /metrics shows the grant, the revocation with its cause, the drop and
// the denial with their reasons, all with their scope, and the step-up's
// duration; the JSON audit lines keep flowing to standard output with her
// subject, and no subject, elevation, request id, address or issuer from
// them appears in the metrics, nor any label other than scope, bound,
// reason and cause.
func TestMetricsCountAStepUpARevocationAndADenialWithoutNamingAnyone(t *testing.T) {
	app, idp := startConsole(t, devidp.Config{}, "-metrics-token", testMetricsToken)
	c := newClient(t, nil)
	c.signIn(idp, c.get(app.URL+"/login"), "alice")
	if p := c.signIn(idp, c.get(app.URL+"/admin/users"), "alice"); p.status != http.StatusOK || p.url.Path != "/admin/users" {
		t.Fatalf("step-up: %d %s", p.status, p.url)
	}
	stop := newClient(t, func(*http.Request) bool { return true })
	stop.http.Jar = c.http.Jar
	if p := stop.do("POST", app.URL+"/admin/elevations/revoke", url.Values{"subject": {"alice"}}, "text/html"); p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", p.status, p.body)
	}
	if p := stop.do("GET", app.URL+"/admin", nil, "application/json"); p.status != http.StatusUnauthorized {
		t.Fatalf("/admin after the revocation: %d, want 401", p.status)
	}
	// A second step-up, which the IdP refuses: the callback carries the
	// challenge's state and the IdP's error.
	p := stop.get(app.URL + "/stepup/start?scope=admin&return_to=/admin")
	state := p.location().Query().Get("state")
	if p.status != http.StatusSeeOther || state == "" {
		t.Fatalf("/stepup/start: %d %q", p.status, p.header.Get("Location"))
	}
	q := url.Values{"state": {state}, "error": {"access_denied"}, "iss": {idp.Issuer()}}
	if p := stop.get(app.URL + "/stepup/callback?" + q.Encode()); p.status != http.StatusForbidden {
		t.Fatalf("the refused step-up's callback: %d, want 403", p.status)
	}

	m := scrape(t, app.URL, testMetricsToken)
	if m.status != http.StatusOK || !strings.HasPrefix(m.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q\n%s", m.status, m.header.Get("Content-Type"), m.body)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^stepup_grants_total\{bound="[a-z_]+",scope="admin"\} 1$`),
		regexp.MustCompile(`(?m)^stepup_challenges_total\{scope="admin"\} [1-9]`),
		regexp.MustCompile(`(?m)^stepup_revocations_total\{cause="revoked_by_operator"\} 1$`),
		regexp.MustCompile(`(?m)^stepup_drops_total\{reason="revoked_by_operator",scope="admin"\} 1$`),
		regexp.MustCompile(`(?m)^stepup_denials_total\{reason="idp_error",scope="admin"\} 1$`),
		regexp.MustCompile(`(?m)^stepup_step_up_duration_seconds_count\{scope="admin"\} 1$`),
		regexp.MustCompile(`(?m)^stepup_elevation_length_seconds_bucket\{bound="[a-z_]+",scope="admin",le="\+Inf"\} 1$`),
		regexp.MustCompile(`(?m)^# TYPE stepup_elevation_length_seconds histogram$`),
	} {
		if !want.MatchString(m.body) {
			t.Errorf("/metrics lacks %s\n%s", want, m.body)
		}
	}

	// The audit log still has its lines, with the ids the metrics leave out.
	var ids []string
	for _, typ := range []stepup.EventType{stepup.EventChallenge, stepup.EventGranted, stepup.EventRevoked, stepup.EventDropped, stepup.EventDenied} {
		events := auditEvents(t, app, typ)
		if len(events) == 0 {
			t.Errorf("no %s event on standard output", typ)
		}
		for _, e := range events {
			ids = append(ids, e.Subject, e.Elevation, e.RequestID, e.Remote, e.Issuer, e.IdPError)
		}
	}
	if g := auditEvents(t, app, stepup.EventGranted); len(g) != 1 || g[0].Subject != "alice" {
		t.Errorf("granted events on standard output: %+v, want alice's", g)
	}
	sc := bufio.NewScanner(strings.NewReader(m.body))
	for sc.Scan() {
		line := sc.Text()
		for _, id := range ids {
			if id != "" && strings.Contains(line, id) {
				t.Errorf("/metrics holds %q, from the audit log: %s", id, line)
			}
		}
		s := metricLine.FindStringSubmatch(line)
		if s == nil || !strings.HasPrefix(s[1], "stepup_") {
			continue
		}
		for _, l := range labelPair.FindAllStringSubmatch(s[2], -1) {
			switch l[1] {
			case "scope", "bound", "reason", "cause", "le":
			default:
				t.Errorf("label %s=%q: only scope, bound, reason and cause label stepup's metrics: %s", l[1], l[2], line)
			}
		}
	}
}

// TestMetricsEndpointDemandsTheToken: /metrics answers only GET and HEAD
// with the configured bearer token; without a configured token it does
// not exist. A token in the query, another scheme or a token that is a
// prefix of the right one is refused, and the refusal names no reason.
func TestMetricsEndpointDemandsTheToken(t *testing.T) {
	t.Parallel()
	on, err := newMetrics(testMetricsToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	off, err := newMetrics("", nil)
	if err != nil {
		t.Fatal(err)
	}
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("console")) })
	tests := []struct {
		name   string
		m      *metrics
		method string
		target string
		auth   string
		want   int
	}{
		{"no token configured", off, "GET", "/metrics", "Bearer " + testMetricsToken, http.StatusNotFound},
		{"no token configured, none sent", off, "GET", "/metrics", "", http.StatusNotFound},
		{"no Authorization", on, "GET", "/metrics", "", http.StatusUnauthorized},
		{"wrong token", on, "GET", "/metrics", "Bearer not-the-metrics-token-at-all", http.StatusUnauthorized},
		{"prefix of the token", on, "GET", "/metrics", "Bearer " + testMetricsToken[:minMetricsToken], http.StatusUnauthorized},
		{"empty bearer", on, "GET", "/metrics", "Bearer ", http.StatusUnauthorized},
		{"basic scheme", on, "GET", "/metrics", "Basic " + testMetricsToken, http.StatusUnauthorized},
		{"token in the query", on, "GET", "/metrics?access_token=" + testMetricsToken, "", http.StatusUnauthorized},
		{"post", on, "POST", "/metrics", "Bearer " + testMetricsToken, http.StatusMethodNotAllowed},
		{"right token", on, "GET", "/metrics", "Bearer " + testMetricsToken, http.StatusOK},
		{"scheme in lower case", on, "GET", "/metrics", "bearer " + testMetricsToken, http.StatusOK},
		{"head", on, "HEAD", "/metrics", "Bearer " + testMetricsToken, http.StatusOK},
		{"other paths reach the console", on, "GET", "/metrics/x", "", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			tc.m.endpoint(console).ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.target, w.Code, tc.want)
			}
			if tc.want == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != `Bearer realm="metrics"` {
				t.Errorf("401 without the Bearer challenge: %q", w.Header().Get("WWW-Authenticate"))
			}
			if w.Code != http.StatusOK && strings.Contains(w.Body.String(), "stepup_") {
				t.Errorf("a refused request got metrics: %s", w.Body)
			}
		})
	}
}

// TestShortMetricsTokenIsRefused: the token is all that guards /metrics,
// so a short one fails at startup, not in production.
func TestShortMetricsTokenIsRefused(t *testing.T) {
	t.Parallel()
	if _, err := newMetrics("password", nil); err == nil || !strings.Contains(err.Error(), "-metrics-token") {
		t.Errorf("newMetrics with an 8-character token: %v, want an error naming -metrics-token", err)
	}
}
