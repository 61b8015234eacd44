package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
)

func TestVulnerableToolchain(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"go1.24.3":            true,
		"go1.25.9":            true,
		"go1.26":              true,
		"go1.26rc2":           true,
		"go1.26.0":            true,
		"go1.26.8":            true,
		"go1.26.9":            true,
		"go1.26.8 X:nodwarf5": true,
		"go1.26.10":           false,
		"go1.26.11":           false,
		"go1.27rc1":           true,
		"go1.27.0":            true,
		"go1.27.2":            true,
		"go1.27.3":            false,
		"go1.27.10":           false,
		"go1.28.0":            false,
		"go1.28rc1":           false,
		"devel go1.28-1a2b3c4d Mon Jan 1 00:00:00 2027 +0000": false, // unknown: no warning
		"": false,
	} {
		name := v
		if name == "" {
			name = "empty"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := vulnerableToolchain(v); got != want {
				t.Errorf("vulnerableToolchain(%q) = %v, want %v", v, got, want)
			}
		})
	}
}

// TestStartupWarnsOfAVulnerableToolchain: the console says at start when
// the Go it was built with has the standard-library vulnerabilities the
// README names, and says nothing otherwise.
func TestStartupWarnsOfAVulnerableToolchain(t *testing.T) {
	t.Parallel()
	app, _ := startConsole(t, devidp.Config{})
	warned := strings.Contains(app.stderr.String(), "chi-admin: warning: built with "+runtime.Version())
	if want := vulnerableToolchain(runtime.Version()); warned != want {
		t.Errorf("built with %s: warned %v, want %v\n%s", runtime.Version(), warned, want, app.stderr)
	}
}
