package main

// This file is the one place that wires the embedded development IdP into
// the console. Leave it out when you copy the console into an application:
// the console then has no -dev-* flags, imports neither the development IdP
// nor stepuptest, and requires -issuer.

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

func init() { newLocalIdP = devIdPFlags }

// devIdP is the embedded development IdP's part of the command line.
type devIdP struct {
	addr          string
	idTokenTTL    time.Duration
	sessionExpiry time.Duration
}

func devIdPFlags(fs *flag.FlagSet) localIdP {
	d := &devIdP{}
	fs.StringVar(&d.addr, "dev-idp-addr", "127.0.0.1:8081", "listen address of the embedded IdP (loopback only)")
	fs.DurationVar(&d.idTokenTTL, "dev-id-token-ttl", 5*time.Minute, "lifetime of the embedded IdP's ID tokens")
	fs.DurationVar(&d.sessionExpiry, "dev-session-expiry", 0, "when set, the embedded IdP sends session_expiry = login time + this")
	return d
}

// start runs the development IdP with the console as its one client, and
// points cfg at it. The IdP sends its logout tokens ("Sign out everywhere"
// on its account page) to the console's /backchannel-logout. Unless
// -ssf-issuer names another transmitter, it is also the console's Shared
// Signals transmitter: "Reset my one-time code" and "Lock account" push
// CAEP events to /ssf/events, for the audience the console expects.
func (d *devIdP) start(cfg *config, stderr io.Writer) (func(), error) {
	if cfg.clientID == "" {
		cfg.clientID = "chi-admin"
	}
	if cfg.clientSecret == "" {
		cfg.clientSecret = rand.Text()
	}
	if cfg.acr == "" {
		cfg.acr = devidp.StrongACR
	}
	var receivers []devidp.Receiver
	if cfg.ssfIssuer == "" {
		receivers = []devidp.Receiver{{URL: cfg.baseURL + "/ssf/events", Audience: cfg.signalsAudience()}}
	}
	idp, err := devidp.Start(devidp.Config{
		Addr: d.addr,
		Clients: []stepuptest.Client{{
			ID: cfg.clientID, Secret: cfg.clientSecret,
			RedirectURIs:         []string{cfg.baseURL + "/auth/callback", cfg.baseURL + "/stepup/callback"},
			BackChannelLogoutURI: cfg.baseURL + "/backchannel-logout",
		}},
		IDTokenTTL:    d.idTokenTTL,
		SessionExpiry: d.sessionExpiry,
		Receivers:     receivers,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the development IdP: %w", err)
	}
	cfg.issuer = idp.Issuer()
	if cfg.ssfIssuer == "" {
		cfg.ssfIssuer = idp.Issuer()
	}
	cfg.idpAccountURL = idp.AccountURL()
	fmt.Fprintf(stderr, "chi-admin: development IdP at %s (ID tokens live %s", idp.Issuer(), d.idTokenTTL)
	if d.sessionExpiry > 0 {
		fmt.Fprintf(stderr, ", session_expiry %s after login", d.sessionExpiry)
	}
	fmt.Fprintln(stderr, ")")
	for _, u := range idp.Users() {
		fmt.Fprintf(stderr, "chi-admin:   demo user %q, password %q; its one-time code is shown on the IdP's page\n", u.Name, devidp.Password)
	}
	fmt.Fprintf(stderr, "chi-admin:   the IdP's account page, %s, signs a user out everywhere, resets their one-time code or locks them: each ends their admin mode in the console\n", idp.AccountURL())
	return func() { idp.Close() }, nil
}
