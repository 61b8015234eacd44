package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestFlagsFallBackToEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"STEPUP_ADDR":          "127.0.0.1:9090",
		"STEPUP_SESSION_STORE": "redis://127.0.0.1:6379/2",
		"STEPUP_ACR":           "from-env",
	}
	c, err := parseConfig([]string{"-acr", "a, b"}, &bytes.Buffer{}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
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
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-issuer", "https://idp.example.com"}, nil, "-client-id and -acr are required"},
		{nil, map[string]string{"STEPUP_SKEW": "soon"}, "STEPUP_SKEW"},
		{[]string{"extra"}, nil, "unexpected arguments"},
	} {
		_, err := parseConfig(tc.args, &bytes.Buffer{}, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestHelpNamesRoutesFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, &out, func(string) string { return "" })
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{
		"/login", "/auth/callback", "/stepup/start", "/stepup/callback", "/admin", "/admin/users", "/admin/audit", "/logout",
		"-addr (env STEPUP_ADDR)", "-base-url", "-issuer", "-client-id", "-client-secret", "-acr", "-login-acr",
		"-max-age", "-skew", "-lifetime", "-session-store (env STEPUP_SESSION_STORE)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h does not mention %q", want)
		}
	}
}
