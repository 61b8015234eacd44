package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// TestDrillsShort runs every drill but the failover drill in its
// shortened form, as `go run ./tools/drill -short` does: 2s outages, 1 to
// 4 seconds of load around each fault, the same musts. It is part of the
// repository's test command. The failover drill's short form (two kills
// and two restarts of a Redis primary per mode, about 20 s) would take it
// past about 90 s; TestAcknowledgedRevocationsSurviveAFailover covers a
// failover in the suite. Outside CI it skips when redis-server, redis-cli,
// PostgreSQL or the go command is missing; under CI it fails.
func TestDrillsShort(t *testing.T) {
	goCmd := testkit.RequireTool(t, "go")
	testkit.RequireTool(t, "redis-server")
	testkit.RequireTool(t, "redis-cli")
	testkit.RequirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log testkit.SyncBuffer
	logw = &log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("progress:\n%s", &log)
		}
	})
	app := filepath.Join(t.TempDir(), "chi-admin")
	if err := console.BuildApp(ctx, goCmd, app, &log); err != nil {
		t.Fatal(err)
	}
	for _, d := range drills {
		if d.notInCI {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			var report strings.Builder
			start := time.Now()
			err := run(ctx, []string{"-short", "-app", app, "-only", d.name}, &report, &log)
			t.Logf("%s in %v:\n%s", d.name, time.Since(start).Round(time.Second), &report)
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
