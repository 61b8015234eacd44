package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
)

// The tests of devidp.go, and of the console without it.

func TestDevIdPFlagsFallBackToEnvironment(t *testing.T) {
	t.Parallel()
	c := parseWithEnv(t, []string{"-dev-idp-addr", "127.0.0.1:0"}, map[string]string{
		"STEPUP_DEV_ID_TOKEN_TTL":   "5s",
		"STEPUP_DEV_SESSION_EXPIRY": "2m",
	})
	d, ok := c.localIdP.(*devIdP)
	if !ok {
		t.Fatalf("local IdP %T, want the development IdP", c.localIdP)
	}
	if d.addr != "127.0.0.1:0" || d.idTokenTTL != 5*time.Second || d.sessionExpiry != 2*time.Minute {
		t.Errorf("dev IdP flags %+v", d)
	}
}

func TestHelpNamesDevIdPFlags(t *testing.T) {
	t.Parallel()
	requireHelpMentions(t, "-dev-idp-addr", "-dev-id-token-ttl (env STEPUP_DEV_ID_TOKEN_TTL)", "-dev-session-expiry")
}

// TestConsoleWithoutDevIdPRequiresIssuer builds the console as a user who
// copies it does, without devidp.go, and checks that it depends on neither
// the development IdP nor stepuptest, has no -dev-* flags, and refuses to
// start without -issuer.
func TestConsoleWithoutDevIdPRequiresIssuer(t *testing.T) {
	t.Parallel()
	goCmd := testkit.RequireTool(t, "go")
	self, err := filepath.Abs("devidp.go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.json")
	b, _ := json.Marshal(map[string]any{"Replace": map[string]string{self: ""}}) // "": the file is deleted
	if err := os.WriteFile(overlay, b, 0o600); err != nil {
		t.Fatal(err)
	}

	deps, err := exec.Command(goCmd, "list", "-overlay", overlay, "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list without devidp.go: %v\n%s", err, deps)
	}
	for _, pkg := range []string{"/internal/devidp", "/stepuptest", "zitadel", "pquerna"} {
		if strings.Contains(string(deps), pkg) {
			t.Errorf("without devidp.go the console still depends on %s", pkg)
		}
	}

	bin := filepath.Join(dir, "chi-admin")
	if out, err := exec.Command(goCmd, "build", "-overlay", overlay, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build without devidp.go: %v\n%s", err, out)
	}
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	if strings.Contains(string(help), "-dev-") || !strings.Contains(string(help), "-issuer") {
		t.Errorf("-h without devidp.go:\n%s", help)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	cmd.Env = []string{} // no STEPUP_* from the test's environment
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "-issuer, -client-id and -acr are required") {
		t.Errorf("without devidp.go and -issuer: %v\n%s", err, out)
	}
}
