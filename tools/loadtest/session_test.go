package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
)

// TestElevateDrivesTheConsoleOverHTTP builds chi-admin, runs it as the
// load test does (its own process, its embedded dev IdP, each store), and
// elevates alice through HTTP alone, reading the one-time code from the
// IdP's page. The elevated cookie then passes the guard; a made-up one does
// not.
func TestElevateDrivesTheConsoleOverHTTP(t *testing.T) {
	goCmd := testkit.RequireTool(t, "go")
	redisBin := testkit.RequireTool(t, "redis-server")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "chi-admin")
	var out testkit.SyncBuffer
	if err := buildApp(ctx, goCmd, bin, &out); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			spec := "memory"
			if store == "redis" {
				redis, err := startRedis(ctx, redisBin, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer redis.Kill()
				spec = "redis://" + redis.Addr + "/0"
				defer func() {
					if s, err := readRedisStats(redis.Addr); err != nil || s.commands == 0 || s.connections == 0 {
						t.Errorf("redis stats %+v, %v: want the console's commands and connections counted", s, err)
					}
				}()
			}
			app, base, err := startApp(ctx, bin, "-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-session-store", spec)
			if err != nil {
				t.Fatal(err)
			}
			defer app.stop()
			cookie, err := elevate(ctx, base, "alice")
			if err != nil {
				t.Fatalf("%v\nchi-admin:\n%s", err, app.stderr)
			}
			for _, path := range []string{"/ping", "/admin/ping"} {
				if err := checkPong(ctx, base+path, cookie); err != nil {
					t.Error(err)
				}
			}
			if err := checkPong(ctx, base+"/admin/ping", "made-up"); err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("a made-up cookie on /admin/ping: %v, want a 401", err)
			}
		})
	}
}
