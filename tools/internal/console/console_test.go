package console

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
)

// TestElevateDrivesTheConsoleOverHTTP builds chi-admin, runs it as the
// tools do (its own process, its embedded dev IdP, each store), and
// elevates alice through HTTP alone, reading the one-time code from the
// IdP's page. The elevated cookie then passes the guard; a made-up one does
// not, nor does a session that is only logged in. SIGQUIT then ends it with
// its goroutines' stacks.
func TestElevateDrivesTheConsoleOverHTTP(t *testing.T) {
	goCmd := testkit.RequireTool(t, "go")
	redisBin := testkit.RequireTool(t, "redis-server")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "chi-admin")
	var out testkit.SyncBuffer
	if err := BuildApp(ctx, goCmd, bin, &out); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			spec := "memory"
			if store == "redis" {
				redis, err := testkit.StartRedisServer(ctx, redisBin, t.TempDir(), "")
				if err != nil {
					t.Fatal(err)
				}
				defer redis.Kill()
				spec = "redis://" + redis.Addr + "/0"
				defer func() {
					if s, err := ReadRedisStats(redis.Addr); err != nil || s.Commands == 0 || s.Connections == 0 || s.Clients == 0 {
						t.Errorf("redis stats %+v, %v: want the console's commands and connections counted", s, err)
					}
				}()
			}
			var audit testkit.SyncBuffer
			app, base, err := StartApp(ctx, Command{Path: bin, Env: append(AppEnv(), "GOTRACEBACK=all"),
				Args:       []string{"-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-session-store", spec},
				StdoutLine: func(line string) { audit.Write([]byte(line + "\n")) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer app.Stop()
			cookie, err := Elevate(ctx, base, "alice")
			if err != nil {
				t.Fatalf("%v\nchi-admin:\n%s", err, app.Stderr)
			}
			for _, path := range []string{"/ping", "/admin/ping"} {
				if err := CheckPong(ctx, base+path, cookie); err != nil {
					t.Error(err)
				}
			}
			loggedIn, err := LoggedIn(ctx, base, "bob")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"made-up", loggedIn} {
				if err := CheckPong(ctx, base+"/admin/ping", c); err == nil || !strings.Contains(err.Error(), "401") {
					t.Errorf("cookie %.8s… on /admin/ping: %v, want a 401", c, err)
				}
			}
			if s, err := ReadProcStats(app.Pid); err != nil || s.Threads == 0 || s.FDs == 0 {
				t.Errorf("/proc of chi-admin: %+v, %v", s, err)
			}
			if !strings.Contains(audit.String(), `"type":"granted"`) {
				t.Errorf("no granted event among the audit lines:\n%s", &audit)
			}
			// SIGQUIT makes the Go runtime print every goroutine, which the
			// drills read to find requests still running after a fault.
			dump, err := app.DumpGoroutines(10 * time.Second)
			if err != nil || !strings.Contains(dump, "net/http.(*Server).Serve") {
				t.Errorf("goroutine dump: %v\n%s", err, dump)
			}
		})
	}
}
