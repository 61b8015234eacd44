// Command stranger is an application as a stranger writes it against a
// release: .ci/release-check builds it in a module of its own that requires
// the library, stepuptest, otelstepup and both store adapters at the
// candidate version, with the workspace off, so every import below comes
// from the module zips a user will download, and runs it.
//
// It starts stepuptest's OpenID Provider in-process, guards /admin with
// stepup over an scs memory store, counts the audit events with otelstepup
// on an OpenTelemetry SDK reader, steps alice up as a browser with a cookie
// jar would, and prints one line that starts with "ok:". It exits non-zero
// on anything else.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/oidc-stepup/stepup/otelstepup"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// Both adapters are what stepup.New asks of a store shared by replicas.
var (
	_ stepup.AtomicStore = (*redisstore.RedisStore)(nil)
	_ stepup.AtomicStore = (*postgresstore.PostgresStore)(nil)
)

const mfa = "urn:example:mfa"

func main() {
	line, err := run(context.Background())
	if err != nil {
		log.Fatal("stranger: ", err)
	}
	fmt.Println(line)
}

func run(ctx context.Context) (string, error) {
	app := httptest.NewUnstartedServer(nil)
	defer app.Close()
	client := stepuptest.Client{
		ID: "app", Secret: "s3cret",
		RedirectURIs: []string{"http://" + app.Listener.Addr().String() + "/stepup/callback"},
	}
	idp, err := stepuptest.New(stepuptest.Config{Clients: []stepuptest.Client{client}}) // logs in alice, at the acr asked for
	if err != nil {
		return "", err
	}
	defer idp.Close()

	reader := sdkmetric.NewManualReader()
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer meters.Shutdown(ctx)
	metrics, err := otelstepup.New(otelstepup.Config{MeterProvider: meters})
	if err != nil {
		return "", err
	}

	sessions := scs.New()
	sessions.Store = memstore.New()
	sessions.Cookie.Name = "app_session" // cookies do not separate ports, and the provider shares the host
	su, err := stepup.New(stepup.Config{
		Issuer:         idp.Issuer(),
		ClientID:       client.ID,
		ClientSecret:   client.Secret,
		RedirectURL:    client.RedirectURIs[0],
		SessionManager: sessions,
		Subject:        func(*http.Request) (string, bool) { return "alice", true }, // the primary login's user
		Scopes:         map[string]stepup.Scope{"admin": {ACR: []string{mfa}, Lifetime: 15 * time.Minute}},
		Auditor:        metrics,
	})
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/start", su.StartHandler())
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("GET /admin", su.RequireStepUp("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, _ := su.Elevation(r, "admin")
		fmt.Fprintf(w, "admin (acr %s, amr %v)", e.ACR, e.AMR)
	})))
	app.Config.Handler = sessions.LoadAndSave(mux)
	app.Start()

	// The browser asks for /admin, is sent to the provider, logs in, comes
	// back through the callback and is sent on to /admin.
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, app.URL+"/admin", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	resp, err := browser.Do(req)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if want := "admin (acr " + mfa + ", amr [pwd])"; resp.StatusCode != http.StatusOK || string(body) != want {
		return "", fmt.Errorf("GET /admin after the step-up: %d %q, want 200 %q", resp.StatusCode, body, want)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return "", err
	}
	grants, err := sum(rm, "stepup_grants")
	if err != nil {
		return "", err
	}
	if grants != 1 {
		return "", fmt.Errorf("stepup_grants = %d, want 1", grants)
	}
	return fmt.Sprintf("ok: GET /admin stepped up at the provider and answered %q; stepup_grants %d", body, grants), nil
}

// sum adds up the data points of the int64 counter named name.
func sum(rm metricdata.ResourceMetrics, name string) (int64, error) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			data, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				return 0, fmt.Errorf("%s is a %T, not an int64 counter", name, m.Data)
			}
			var n int64
			for _, dp := range data.DataPoints {
				n += dp.Value
			}
			return n, nil
		}
	}
	return 0, errors.New("no metric " + name)
}
