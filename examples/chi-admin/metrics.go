package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/oidc-stepup/stepup/otelstepup"
	"github.com/oidc-stepup/stepup/stepup"
)

// minMetricsToken is the shortest -metrics-token accepted: a token is the
// endpoint's only protection, so it must be a random string, not a word.
const minMetricsToken = 16

// metrics counts stepup's audit events (otelstepup) and serves them at
// GET /metrics in the Prometheus text format.
//
// The endpoint is on the console's own listener, so it needs its own
// protection: it answers only requests that carry -metrics-token as a
// bearer token (Prometheus's authorization.credentials_file), and does not
// exist (404) when no token is set. A check on the client's address
// (loopback only) would not do: behind a reverse proxy on the same host
// every request comes from loopback, and /metrics would be public. The
// counts are not personal data (no subject, no id is ever a label), but
// they tell an outsider how often admins step up, fail, or are revoked.
// In production, serve it on a listener of its own or keep it off the
// public path at the proxy as well (docs/operations.md).
type metrics struct {
	auditor  *otelstepup.Auditor // the stepup.Auditor: counts, then logs
	tokenSum [sha256.Size]byte
	enabled  bool
	scrape   http.Handler
}

// newMetrics returns the metrics of one console: a MeterProvider of its
// own that exports into a Prometheus registry of its own (not the global
// one, so that consoles in one process, as in the tests, keep apart),
// and an Auditor that counts each event and then hands it to next.
func newMetrics(token string, next stepup.Auditor) (*metrics, error) {
	if token != "" && len(token) < minMetricsToken {
		return nil, fmt.Errorf("-metrics-token must be at least %d characters: it is all that guards /metrics", minMetricsToken)
	}
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes), // stepup_grants_total, stepup_elevation_length_seconds
		otelprom.WithoutScopeInfo(), // no otel_scope_* labels: the names say stepup_
	)
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	auditor, err := otelstepup.New(otelstepup.Config{MeterProvider: provider, Next: next})
	if err != nil {
		return nil, err
	}
	return &metrics{
		auditor:  auditor,
		tokenSum: sha256.Sum256([]byte(token)),
		enabled:  token != "",
		scrape:   promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// endpoint serves GET /metrics in front of console, and so outside its
// session middleware, its per-session lock and its CSRF protection: a
// scraper has no session. Every other request goes to console.
func (m *metrics) endpoint(console http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			console.ServeHTTP(w, r)
			return
		}
		m.ServeHTTP(w, r)
	})
}

// ServeHTTP answers /metrics: 404 without a token configured, 401 without
// the right bearer token, the metrics otherwise.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !m.enabled {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !m.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	m.scrape.ServeHTTP(w, r)
}

// authorized reports whether r carries the token as a bearer token
// (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1). The
// comparison is of SHA-256 sums in constant time, so that neither the
// token's bytes nor its length leak through timing.
func (m *metrics) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], m.tokenSum[:]) == 1
}
