package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/stepup"
)

// config is the command line. Every flag can also be set with an
// environment variable STEPUP_<NAME> (upper case, "-" as "_"); a flag given
// on the command line wins.
type config struct {
	addr         string
	baseURL      string
	issuer       string
	clientID     string
	clientSecret string
	acr          string
	loginACR     string
	maxAge       time.Duration
	skew         time.Duration
	lifetime     time.Duration
	sessionStore string

	// Device binding of admin mode (DBSC): off, preferred or required, and
	// how long a bound cookie lives.
	deviceBinding  stepup.DeviceBinding
	boundCookieTTL time.Duration

	// The Shared Signals receiver, /ssf/events: the transmitter's issuer
	// (none: no receiver) and the audience its events must name (see
	// signalsAudience).
	ssfIssuer, ssfAudience string

	// The server's timeouts (see newServer).
	readTimeout, writeTimeout, idleTimeout time.Duration
	// metricsToken is the bearer token GET /metrics demands; none: no
	// /metrics (metrics.go).
	metricsToken string

	// localIdP starts an identity provider in this process when -issuer is
	// empty; nil when none is compiled in (see devidp.go).
	localIdP localIdP
	// idpAccountURL is the local IdP's account page, linked from every page
	// of the console; empty with an external IdP.
	idpAccountURL string
}

// A localIdP is an identity provider the console starts itself, for a run
// without -issuer. start fills in what cfg leaves empty (issuer, client,
// secret, acr, the Shared Signals transmitter) and returns a function that
// stops the provider.
type localIdP interface {
	start(cfg *config, stderr io.Writer) (stop func(), err error)
}

// newLocalIdP, when not nil, registers the local identity provider's flags
// on fs and returns it. devidp.go, the one file that wires the development
// IdP into the console, sets it; without that file the console requires
// -issuer.
var newLocalIdP func(fs *flag.FlagSet) localIdP

const usageHeader = `chi-admin: an admin console whose /admin pages demand an OIDC step-up.

With no -issuer it starts an embedded development IdP, when one is compiled
in (demo users alice and bob, password "password"; the admin scope needs a
one-time code, which the dev IdP's page shows). Its account page ends admin
mode the ways an IdP does: Sign out everywhere (a back-channel logout),
Reset my one-time code and Lock account (CAEP events to /ssf/events).

Routes:
  /                   dashboard (any logged-in user)
  /login              primary login (OIDC code flow, normal strength)
  /auth/callback      primary login callback
  /metrics            stepup's metrics (Prometheus text format), with the
                      bearer token -metrics-token; 404 without one
  /stepup/start       starts a step-up: ?scope=admin&return_to=/admin
  /stepup/callback    step-up callback
  /stepup/drop        POST: ends admin mode
  /stepup/device/register, /stepup/device/refresh
                      POST from the browser: Device Bound Session
                      Credentials registration and refresh of admin mode's
                      bound cookie (-device-binding)
  /elevation          the session's admin mode as JSON; the admin pages poll it
  /admin              guarded by RequireStepUp("admin")
  /admin/users        guarded; POST adds a user (guarded too)
  /admin/users/delete POST name=<user>, guarded, and needs an approval of
                      exactly that deletion (RequireStepUpFor "delete-user"):
                      the IdP shows "Delete user <name>" (RFC 9396
                      authorization_details) and the approval deletes once
  /admin/elevations/revoke
                      POST subject=<sub>, guarded: ends that user's admin mode
                      on every session and replica
  /admin/audit        guarded; the recent audit events
  /ping, /admin/ping  the same tiny response, unguarded and guarded (load tests)
  /logout             POST: ends the session
  /backchannel-logout POST from the IdP: OIDC Back-Channel Logout; a logout
                      token ends admin mode for that IdP session (the
                      console's own login stays)
  /ssf/events         POST from -ssf-issuer: Shared Signals (CAEP) events
                      that end admin mode; 404 when there is no transmitter

Flags (each also read from STEPUP_<NAME>, e.g. STEPUP_SESSION_STORE):
`

func parseConfig(args []string, stderr io.Writer, getenv func(string) string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("chi-admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&c.baseURL, "base-url", "", "external URL of the app, used for redirect URIs (default http://<addr>)")
	fs.StringVar(&c.issuer, "issuer", "", "issuer URL of an external IdP; when set, no embedded IdP starts")
	fs.StringVar(&c.clientID, "client-id", "", `OAuth client id (default "chi-admin" with the embedded IdP)`)
	fs.StringVar(&c.clientSecret, "client-secret", "", "OAuth client secret (a generated one with the embedded IdP)")
	fs.StringVar(&c.acr, "acr", "", "comma-separated acr values that satisfy the admin scope, most preferred first (default: the embedded IdP's strong value)")
	fs.StringVar(&c.loginACR, "login-acr", "", "acr_values for the primary login (optional)")
	fs.DurationVar(&c.maxAge, "max-age", 0, "max_age for the admin step-up; non-zero also sends prompt=login and bounds the elevation by auth_time + max-age")
	fs.DurationVar(&c.skew, "skew", 30*time.Second, "clock skew tolerance; an elevation ends this much early (0: none)")
	fs.DurationVar(&c.lifetime, "lifetime", 0, "cap on an elevation's lifetime (0: no cap beyond the IdP's)")
	fs.StringVar(&c.sessionStore, "session-store", "memory", "memory; redis://[user:password@]host:port[/db] (a standalone server or any node of a Redis Cluster; rediss:// for TLS); redis://host:port?master_set=NAME (Sentinels and the primary of NAME); or postgres://...")
	fs.Func("device-binding", `bind admin mode to the browser's key with Device Bound Session Credentials: off, preferred (bind where the browser can; an unbound elevation still works and is audited "unbound") or required (a browser that cannot bind is refused) (default "preferred")`, func(v string) (err error) {
		c.deviceBinding, err = stepup.ParseDeviceBinding(v)
		return err
	})
	c.deviceBinding = stepup.DeviceBindingPreferred
	fs.DurationVar(&c.boundCookieTTL, "bound-cookie-ttl", stepup.DefaultBoundCookieTTL, "lifetime of the device-bound cookie, 10s to 10m: how long a stolen one works, and how often the browser proves its key")
	fs.StringVar(&c.ssfIssuer, "ssf-issuer", "", "issuer URL of a Shared Signals transmitter whose CAEP events end admin mode at /ssf/events; its /.well-known/ssf-configuration names jwks_uri (default: the embedded IdP when it runs, else none)")
	fs.StringVar(&c.ssfAudience, "ssf-audience", "", "the audience every security event must name: the console's identifier in the transmitter's stream (default: the -base-url)")
	fs.DurationVar(&c.readTimeout, "read-timeout", 15*time.Second, "how long a client may take to send a whole request, body included")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 30*time.Second, "how long a request may take from its headers to the end of the response; must exceed twice the 10s given to each IdP call")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", time.Minute, "how long a keep-alive connection may wait for its next request")
	fs.StringVar(&c.metricsToken, "metrics-token", "", "bearer token (16 characters or more) that GET /metrics demands; set it with STEPUP_METRICS_TOKEN, not on the command line (default: none, no /metrics)")
	if newLocalIdP != nil {
		c.localIdP = newLocalIdP(fs)
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(fs.Output(), "  -%s (env %s)\n    \t%s", f.Name, envName(f.Name), f.Usage)
			if f.DefValue != "" && f.DefValue != "0s" {
				fmt.Fprintf(fs.Output(), " (default %q)", f.DefValue)
			}
			fmt.Fprintln(fs.Output())
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: %w", envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if c.baseURL == "" {
		c.baseURL = "http://" + c.addr
	}
	c.baseURL = strings.TrimSuffix(c.baseURL, "/")
	if c.readTimeout <= 0 || c.idleTimeout <= 0 {
		return nil, fmt.Errorf("-read-timeout and -idle-timeout must be positive")
	}
	if c.writeTimeout <= 2*idpTimeout {
		return nil, fmt.Errorf("-write-timeout %v: must exceed %v, or a slow IdP turns a callback's answer into a reset connection", c.writeTimeout, 2*idpTimeout)
	}
	if c.boundCookieTTL < 10*time.Second || c.boundCookieTTL > 10*time.Minute || c.boundCookieTTL%time.Second != 0 {
		return nil, fmt.Errorf("-bound-cookie-ttl %v: must be whole seconds from 10s to 10m", c.boundCookieTTL)
	}
	if c.issuer == "" && c.localIdP == nil {
		return nil, fmt.Errorf("-issuer, -client-id and -acr are required")
	}
	if c.issuer != "" && (c.clientID == "" || c.acr == "") {
		return nil, fmt.Errorf("with -issuer, -client-id and -acr are required")
	}
	return c, nil
}

// signalsAudience is the Shared Signals audience: -ssf-audience, else the
// base URL.
func (c *config) signalsAudience() string {
	if c.ssfAudience != "" {
		return c.ssfAudience
	}
	return c.baseURL
}

func envName(flagName string) string {
	return "STEPUP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *config) acrValues() []string {
	var out []string
	for v := range strings.SplitSeq(c.acr, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
