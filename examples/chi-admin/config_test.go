package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

// parseWithEnv parses args with env as the environment, and fails the test
// on an error.
func parseWithEnv(t *testing.T, args []string, env map[string]string) *config {
	t.Helper()
	c, err := parseConfig(args, &bytes.Buffer{}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requireHelpMentions checks that -h names each of want.
func requireHelpMentions(t *testing.T, want ...string) {
	t.Helper()
	var out bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, &out, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("-h does not mention %q", w)
		}
	}
}

func TestFlagsFallBackToEnvironment(t *testing.T) {
	t.Parallel()
	c := parseWithEnv(t, []string{"-acr", "a, b"}, map[string]string{
		"STEPUP_ADDR":          "127.0.0.1:9090",
		"STEPUP_SESSION_STORE": "redis://127.0.0.1:6379/2",
		"STEPUP_ACR":           "from-env",
	})
	if c.addr != "127.0.0.1:9090" || c.baseURL != "http://127.0.0.1:9090" || c.sessionStore != "redis://127.0.0.1:6379/2" ||
		c.skew != 30*time.Second {
		t.Errorf("config %+v", c)
	}
	if got := c.acrValues(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("the command line must win over the environment: acr %q", got)
	}
}

func TestFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"IssuerWithoutClientIDAndACR", []string{"-issuer", "https://idp.example.com"}, nil, "-client-id and -acr are required"},
		{"SkewInTheEnvironmentNotADuration", nil, map[string]string{"STEPUP_SKEW": "soon"}, "STEPUP_SKEW"},
		{"UnexpectedArgument", []string{"extra"}, nil, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(tc.args, &bytes.Buffer{}, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q %v: error %v, want %q", tc.args, tc.env, err, tc.want)
			}
		})
	}
}

func TestHelpNamesRoutesFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	requireHelpMentions(t,
		"/login", "/auth/callback", "/stepup/start", "/stepup/callback", "/admin", "/admin/users", "/admin/audit", "/logout",
		"-addr (env STEPUP_ADDR)", "-base-url", "-issuer", "-client-id", "-client-secret", "-acr", "-login-acr",
		"-max-age", "-skew", "-lifetime", "-session-store (env STEPUP_SESSION_STORE)",
		"-read-timeout", "-write-timeout", "-idle-timeout",
	)
}
