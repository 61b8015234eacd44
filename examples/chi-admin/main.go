// Command chi-admin is an admin console on chi whose /admin pages demand an
// OIDC step-up through stepup. With no -issuer it runs on an embedded
// development IdP, so that it needs no setup:
//
//	go run ./examples/chi-admin
//
// Run it with -h for the routes and flags.
//
// README.md ("Copying the console") says which files to copy into an
// application and which are scaffolding. devidp.go is the one file that
// wires the development IdP in: without it the console requires -issuer,
// -client-id and -acr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, nil); err != nil {
		fmt.Fprintln(os.Stderr, "chi-admin:", err)
		os.Exit(2)
	}
}

// run starts the console (and, without -issuer, the local IdP) and
// serves until ctx ends. ready, when not nil, receives the URL the console
// listens at (not -base-url, which may name a proxy in front of it) once it
// is serving.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, ready func(appURL string)) error {
	cfg, err := parseConfig(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if v := runtime.Version(); vulnerableToolchain(v) {
		fmt.Fprintf(stderr, "chi-admin: warning: built with %s, whose standard library has known vulnerabilities (net/http, crypto/tls, crypto/x509, mime/multipart); build deployments with Go 1.26.10, 1.27.3 or later\n", v)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if cfg.baseURL == "http://"+cfg.addr {
		cfg.baseURL = "http://" + ln.Addr().String() // -addr may have asked for port 0
	}

	if cfg.issuer == "" {
		stop, err := cfg.localIdP.start(cfg, stderr)
		if err != nil {
			return err
		}
		defer stop()
	}

	store, closeStore, err := openStore(cfg.sessionStore)
	if err != nil {
		return err
	}
	defer closeStore()
	a, err := newApp(cfg, appDeps{store: store, stdout: stdout, stderr: stderr})
	if err != nil {
		return err
	}
	srv := newServer(a.routes(), cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "chi-admin: admin console at %s (audit events go to standard output as JSON lines)\n", cfg.baseURL)
	if ready != nil {
		ready("http://" + ln.Addr().String())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// newServer is the console's HTTP server. Every timeout is set, so that no
// client holds a connection for long: ReadTimeout bounds a whole request,
// body included (a body that never arrives), IdleTimeout a keep-alive
// connection between requests. WriteTimeout bounds a request from its
// headers to the end of its response: it must outlast a callback's calls to
// the IdP (idpTimeout each), or a slow IdP turns the 502 page into a reset
// connection.
func newServer(h http.Handler, cfg *config) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, cfg.readTimeout),
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       cfg.idleTimeout,
	}
}
