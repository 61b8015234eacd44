// Command loadtest measures what the step-up guard costs per request. For
// each session store it starts the chi-admin console as a separate process,
// on its embedded development IdP (and, for Redis, a throwaway
// redis-server), logs alice in and steps her up at that IdP over HTTP, as a
// browser would, then points wrk at /ping (unguarded) and /admin/ping
// (guarded by RequireStepUp("admin")) with the same elevated session
// cookie, and prints a Markdown table. From the repository's root:
//
//	go run ./tools/loadtest
//	go run ./tools/loadtest -duration 10s -stores redis -out /tmp/load.md
//
// It drives the console only over HTTP and imports none of its code: it
// measures the binary a user runs, and its module does not inherit the
// example's dependencies.
//
// Everything listens on loopback. It needs wrk and redis-server
// (apt-get install wrk redis-server) and the go command, which builds the
// console. wrk, the console and redis-server share the machine's cores, so
// the numbers compare the two routes with each other, not with production.
//
// It exits non-zero when a tool is missing, when wrk saw a non-2xx response
// or a socket error, or when the guarded route stopped answering 200: wrk
// sends no Accept header, so a request the guard refused is a 401, which wrk
// counts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// options is the command line.
type options struct {
	duration    time.Duration // of each measured wrk run
	warmup      time.Duration // of the wrk run before each measured one
	connections int
	threads     int
	stores      []string // "memory", "redis"
	out         string   // also write the report here
	app         string   // a built chi-admin; empty: go build one
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of each measured wrk run, in whole seconds")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "length of the wrk run before each measured one (0: none)")
	fs.IntVar(&o.connections, "connections", 64, "wrk -c: open HTTP connections")
	fs.IntVar(&o.threads, "threads", 2, "wrk -t: wrk threads")
	stores := fs.String("stores", "memory,redis", "comma-separated session stores to test: memory, redis")
	fs.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&o.app, "app", "", "a chi-admin binary to run (default: built with go build into a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for s := range strings.SplitSeq(*stores, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "memory", "redis":
			if !slices.Contains(o.stores, s) {
				o.stores = append(o.stores, s)
			}
		default:
			return nil, fmt.Errorf("-stores: unknown store %q (want memory or redis)", s)
		}
	}
	switch {
	case len(o.stores) == 0:
		return nil, errors.New("-stores: no store")
	case o.duration < time.Second || o.duration%time.Second != 0:
		return nil, fmt.Errorf("-duration %v: want whole seconds, at least 1s", o.duration)
	case o.warmup < 0 || o.warmup%time.Second != 0:
		return nil, fmt.Errorf("-warmup %v: want whole seconds", o.warmup)
	case o.threads < 1 || o.connections < o.threads:
		return nil, fmt.Errorf("want -threads >= 1 and -connections >= -threads, have %d and %d", o.threads, o.connections)
	}
	return o, nil
}

// tools are the external programs the load test runs.
type tools struct {
	wrk, redis, goCmd string
}

func findTools(o *options) (tools, error) {
	var t tools
	var missing []string
	look := func(name string, dst *string) {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		*dst = p
	}
	look("wrk", &t.wrk)
	if slices.Contains(o.stores, "redis") {
		look("redis-server", &t.redis)
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("%s not found on PATH: apt-get install wrk redis-server", strings.Join(missing, " and "))
	}
	if o.app == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return t, errors.New("the go command is not on PATH; build chi-admin yourself and pass -app")
		}
		t.goCmd = p
	}
	return t, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	t, err := findTools(o)
	if err != nil {
		return err
	}
	m := describeMachine(ctx, t)

	tmp, err := os.MkdirTemp("", "chi-admin-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.app == "" {
		o.app = tmp + "/chi-admin"
		logf(stderr, "building chi-admin into %s", o.app)
		if err := console.BuildApp(ctx, t.goCmd, o.app, stderr); err != nil {
			return err
		}
	}

	var results []storeResult
	var failures []string
	for _, store := range o.stores {
		r, err := measureStore(ctx, o, t, store, tmp, stderr)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("%s store: %w", store, err)
		}
		results = append(results, r)
		failures = append(failures, r.failures...)
	}

	report := renderReport(o, m, results)
	fmt.Fprint(stdout, report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d check(s) failed:\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
	return nil
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "loadtest: "+format+"\n", args...)
}
