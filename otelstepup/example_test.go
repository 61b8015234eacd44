package otelstepup_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/oidc-stepup/stepup/otelstepup"
	"github.com/oidc-stepup/stepup/stepup"
)

// The metrics Auditor counts each event, then hands it to the slog
// Auditor, so the audit log keeps its lines. In an application, the
// MeterProvider's reader is an exporter (Prometheus, OTLP) and the
// Auditor goes into stepup.Config.Auditor; here a ManualReader shows what
// was recorded.
func ExampleNew() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // the log record's own time, which varies
			}
			return a
		},
	}))
	metrics, err := otelstepup.New(otelstepup.Config{
		MeterProvider: provider,
		Next:          stepup.SlogAuditor{Logger: logger},
	})
	if err != nil {
		panic(err)
	}
	// su, err := stepup.New(stepup.Config{ /* ... */ Auditor: metrics})

	// What stepup audits when alice steps up in 20 seconds and is granted
	// 15 minutes, then when a callback is refused for a weak acr.
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	metrics.Audit(ctx, stepup.Event{
		Type: stepup.EventGranted, Time: now, Scope: "admin", Subject: "alice",
		Deadline: now.Add(15 * time.Minute), Bound: stepup.BoundLifetime, ChallengeStarted: now.Add(-20 * time.Second),
	})
	metrics.Audit(ctx, stepup.Event{Type: stepup.EventDenied, Time: now, Scope: "admin", Subject: "bob", Reason: stepup.ReasonACRNotSatisfied})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, dp := range d.DataPoints {
				if dp.Value == 0 {
					continue // a series New starts at zero (revocations, signals)
				}
				lines = append(lines, fmt.Sprintf("%s%s %d", m.Name, labels(dp.Attributes), dp.Value))
			}
		case metricdata.Histogram[float64]:
			for _, dp := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s%s count=%d sum=%v%s", m.Name, labels(dp.Attributes), dp.Count, dp.Sum, m.Unit))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// level=INFO msg="stepup granted" event=granted event_time=2026-03-01T12:00:00.000Z scope=admin subject=alice deadline=2026-03-01T12:15:00.000Z bound=lifetime challenge_started=2026-03-01T11:59:40.000Z
	// level=WARN msg="stepup denied" event=denied event_time=2026-03-01T12:00:00.000Z scope=admin subject=bob reason=acr_not_satisfied
	// stepup_denials{reason="acr_not_satisfied",scope="admin"} 1
	// stepup_elevation_length{bound="lifetime",scope="admin"} count=1 sum=900s
	// stepup_grants{bound="lifetime",scope="admin"} 1
	// stepup_step_up_duration{scope="admin"} count=1 sum=20s
}

// labels formats an attribute set as Prometheus writes labels.
func labels(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, fmt.Sprintf("%s=%q", a.Key, a.Value.Emit()))
	}
	return "{" + strings.Join(kv, ",") + "}"
}
