// Command drill breaks what the step-up guard stands on, for real, under
// load, and counts what the clients saw and what the audit log said:
//
//  1. redis-kill: Redis killed with SIGKILL, then started again on its port
//  2. postgres-stop: PostgreSQL stopped (immediate mode), then started again
//  3. idp-slow-dead: the IdP slower than HTTPClient.Timeout, then refusing
//  4. clock-skew: two replicas whose clocks disagree, behind a balancer
//  5. restart-mid-step-up: the app killed between challenge and callback,
//     on Redis and on PostgreSQL
//  6. slow-store: Redis behind 50 ms of added latency
//  7. ten-replicas: ten replicas on a Redis Cluster behind a round-robin
//     front, users revoked under load by back-channel logout, CAEP and
//     RevokeSubject
//  8. failover: a revocation acknowledged, then the Redis primary that
//     holds it killed at once (SIGKILL), promoted replica, old primary
//     back; 200 tries with the store's wait for a replica, 200 without
//
// From the repository's root:
//
//	go run ./tools/drill                       # every drill, full length
//	go run ./tools/drill -short                # the shortened form CI runs
//	go run ./tools/drill -only redis-kill -out /tmp/drill.md
//	go run ./tools/drill -only failover -failover-tries 50 -failover-topology both
//
// Drills 1, 2, 5 and 6 run the chi-admin example as a separate process, on
// its development IdP, and read its audit log (JSON lines on its standard
// output). Drills 3, 4, 7 and 8 need what the example cannot do (reach its
// IdP through a proxy, run on a skewed clock, run ten replicas, receive
// CAEP events), so they run the library in test servers in this process,
// against stepuptest's provider. Every drill uses a real redis-server or
// PostgreSQL; drills 7 and 8 a Redis Cluster (and 8, with
// -failover-topology, Sentinel), which also needs redis-cli. Everything
// listens on loopback.
//
// It exits non-zero when a drill's must is violated (a request granted
// that should not have been, an elevation lost, errors outside the fault,
// a request still running after the load stopped, ...), or when a
// component is missing. docs/reliability.md has each drill's design, its
// musts and the numbers of a full run.
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

	"github.com/oidc-stepup/stepup/internal/testkit"
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
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
}

// options is the command line.
type options struct {
	short bool
	only  []string
	out   string
	app   string // a built chi-admin; empty: go build one
	// The failover drill: tries per mode (0: the default), and which
	// modes: "both", "on" (with the wait for a replica), "off".
	failoverTries    int
	failoverWait     string
	failoverTopology string // "cluster", "sentinel", "both"
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.short, "short", false, "the shortened form CI runs: 2s faults, fewer seconds of load")
	only := fs.String("only", "", "comma-separated drills to run (default: all): "+strings.Join(drillNames(), ", "))
	fs.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&o.app, "app", "", "a chi-admin binary to run (default: built with go build into a temporary directory)")
	fs.IntVar(&o.failoverTries, "failover-tries", 0, fmt.Sprintf("failover: tries per mode (default %d, %d with -short)", defaultFailoverTries, shortFailoverTries))
	fs.StringVar(&o.failoverTopology, "failover-topology", "cluster", "failover: cluster (three primaries, three replicas), sentinel (a primary and its replica behind three Sentinels) or both")
	fs.StringVar(&o.failoverWait, "failover-wait", "both", "failover: on (revocations wait for a replica, Redis WAIT: the store's default), off (Replicas = NoReplicas) or both, one after the other")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if !slices.Contains([]string{"cluster", "sentinel", "both"}, o.failoverTopology) {
		return nil, fmt.Errorf("-failover-topology: %q, want cluster, sentinel or both", o.failoverTopology)
	}
	if !slices.Contains([]string{"both", "on", "off"}, o.failoverWait) {
		return nil, fmt.Errorf("-failover-wait: %q, want on, off or both", o.failoverWait)
	}
	if o.failoverTries < 0 {
		return nil, fmt.Errorf("-failover-tries: %d", o.failoverTries)
	}
	for n := range strings.SplitSeq(*only, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !slices.Contains(drillNames(), n) {
			return nil, fmt.Errorf("-only: no drill %q (have %s)", n, strings.Join(drillNames(), ", "))
		}
		o.only = append(o.only, n)
	}
	return o, nil
}

// env is what every drill gets: the options and the components.
type env struct {
	*options
	goCmd    string
	redisBin string
	redisCli string // for a Redis Cluster
	pgBin    string // the directory of PostgreSQL's server binaries
	tmp      string
}

// drill is one fault.
type drill struct {
	name, title string
	needs       []string // "redis", "redis-cluster", "postgres", "app"
	run         func(ctx context.Context, e *env) (*result, error)
	// notInCI leaves the drill out of TestDrillsShort: its short form
	// alone would take the test past about 90 s.
	notInCI bool
}

var drills = []drill{
	{"redis-kill", "Redis killed (SIGKILL) and restarted", []string{"redis", "app"}, redisKill, false},
	{"postgres-stop", "PostgreSQL stopped (immediate) and started", []string{"postgres", "app"}, postgresStop, false},
	{"idp-slow-dead", "A slow, then a dead IdP during step-ups", []string{"redis"}, idpSlowDead, false},
	{"clock-skew", "Two replicas whose clocks disagree", []string{"redis"}, clockSkew, false},
	{"restart-mid-step-up", "App restarted between challenge and callback", []string{"redis", "postgres", "app"}, restartMidStepUp, false},
	{"slow-store", "Redis behind 50 ms of added latency", []string{"redis", "app"}, slowStore, false},
	{"ten-replicas", "Ten replicas on a Redis Cluster, users revoked under load", []string{"redis-cluster"}, tenReplicas, false},
	{"failover", "Revocations acknowledged, then their Redis primary killed", []string{"redis-cluster"}, failover, true},
}

func drillNames() []string {
	var n []string
	for _, d := range drills {
		n = append(n, d.name)
	}
	return n
}

func (o *options) selected() []drill {
	if len(o.only) == 0 {
		return drills
	}
	return slices.DeleteFunc(slices.Clone(drills), func(d drill) bool { return !slices.Contains(o.only, d.name) })
}

// findComponents finds what the selected drills need, and says all that
// is missing at once.
func findComponents(o *options) (*env, error) {
	e := &env{options: o}
	need := map[string]bool{}
	for _, d := range o.selected() {
		for _, n := range d.needs {
			need[n] = true
		}
	}
	var missing []string
	if need["redis"] || need["redis-cluster"] {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			missing = append(missing, "redis-server (apt-get install redis-server)")
		}
		e.redisBin = p
	}
	if need["redis-cluster"] {
		p, err := exec.LookPath("redis-cli")
		if err != nil {
			missing = append(missing, "redis-cli (apt-get install redis-tools)")
		}
		e.redisCli = p
	}
	if need["postgres"] {
		p, err := testkit.PostgresBin()
		if err != nil {
			missing = append(missing, "PostgreSQL (apt-get install postgresql)")
		}
		e.pgBin = p
	}
	if need["app"] && o.app == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			missing = append(missing, "the go command (or build chi-admin yourself and pass -app)")
		}
		e.goCmd = p
	}
	if len(missing) > 0 {
		return nil, &missingError{missing}
	}
	return e, nil
}

// missingError names the components a run lacks.
type missingError struct{ missing []string }

func (m *missingError) Error() string { return "missing: " + strings.Join(m.missing, "; ") }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	e, err := findComponents(o)
	if err != nil {
		return err
	}
	m := describeMachine(ctx, e)
	if e.tmp, err = os.MkdirTemp("", "stepup-drill-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.tmp)
	// PostgreSQL runs as the postgres user when this is root: it must be
	// able to reach its directory under tmp.
	if err := os.Chmod(e.tmp, 0o711); err != nil {
		return err
	}
	if e.goCmd != "" {
		e.app = e.tmp + "/chi-admin"
		logf("building chi-admin into %s", e.app)
		if err := console.BuildApp(ctx, e.goCmd, e.app, stderr); err != nil {
			return err
		}
	}

	var results []*result
	var failed []string
	for _, d := range o.selected() {
		logf("== %s: %s", d.name, d.title)
		start := time.Now()
		r, err := d.run(ctx, e)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		r.drill, r.took = &d, time.Since(start)
		results = append(results, r)
		for _, f := range r.failures {
			failed = append(failed, d.name+": "+f)
		}
		logf("%s: %s in %v", d.name, r.verdict(), r.took.Round(time.Second))
	}

	report := renderReport(o, m, results)
	fmt.Fprint(stdout, report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d must(s) violated:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
