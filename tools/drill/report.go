package main

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// result is one drill's outcome: the numbers every drill counts, the
// drill's own, and the musts it violated.
type result struct {
	drill *drill
	took  time.Duration

	load, fault string // what ran, what broke

	// Counted in every drill.
	wronglyGranted int    // guarded requests answered 200 that must not have been
	lostElevations int    // elevations that should have survived the fault and did not
	statuses       string // responses by status, all clients
	recovery       string // from the end of the fault to the first good guarded response

	counted  []string // the drill's own numbers, one line each
	failures []string // the musts it violated
	others   string   // other processes' share of the CPU during the steady phase
}

// count records one of the drill's numbers.
func (r *result) count(format string, args ...any) {
	r.counted = append(r.counted, fmt.Sprintf(format, args...))
}

// must records a violated must when ok is false.
func (r *result) must(ok bool, format string, args ...any) {
	if !ok {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
}

func (r *result) verdict() string {
	if len(r.failures) == 0 {
		return "pass"
	}
	return fmt.Sprintf("FAIL (%d)", len(r.failures))
}

// cpuShare measures the share of the CPU that processes other than the
// drill's use while fn runs, for the report: the machine may be shared.
// pids lists the drill's processes besides this one, and is called before
// and after fn.
func cpuShare(pids func() []int, fn func() error) (string, error) {
	a := console.SampleCPU(pids()...)
	err := fn()
	share, ok := console.OthersShare(a, console.SampleCPU(pids()...))
	if !ok {
		return "unknown", err
	}
	return fmt.Sprintf("%.0f%%", 100*share), err
}

// machine describes where the numbers come from.
type machine struct {
	console.Machine
	redis, postgres string
}

func describeMachine(ctx context.Context, e *env) machine {
	m := machine{Machine: console.DescribeMachine(ctx)}
	if e.redisBin != "" {
		m.redis = console.FirstLine(ctx, e.redisBin, "--version")
	}
	if e.pgBin != "" {
		m.postgres = console.FirstLine(ctx, filepath.Join(e.pgBin, "postgres"), "--version")
	}
	return m
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// renderReport is the Markdown the drill prints and writes to -out.
func renderReport(o *options, m machine, results []*result) string {
	var b strings.Builder
	b.WriteString("| drill | load | fault | counted | outcome |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		outcome := fmt.Sprintf("**%s**: wrongly granted %d, elevations lost %d, recovery %s",
			r.verdict(), r.wronglyGranted, r.lostElevations, r.recovery)
		if len(r.failures) > 0 {
			outcome += "; violated: " + strings.Join(r.failures, "; ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.drill.title), cell(r.load), cell(r.fault),
			cell(strings.Join(r.counted, "; ")), cell(outcome))
	}
	b.WriteString("\nResponses by status, all clients of each drill:\n\n")
	for _, r := range results {
		fmt.Fprintf(&b, "- %s (`%s`, %v, other processes' CPU during the steady phase %s): %s\n",
			r.drill.title, r.drill.name, r.took.Round(time.Second), r.others, r.statuses)
	}

	cmd := "go run ./tools/drill"
	if o.short {
		cmd += " -short"
	}
	if len(o.only) > 0 {
		cmd += " -only " + strings.Join(o.only, ",")
	}
	if o.failoverTries > 0 {
		cmd += fmt.Sprintf(" -failover-tries %d", o.failoverTries)
	}
	if o.failoverTopology != "cluster" {
		cmd += " -failover-topology " + o.failoverTopology
	}
	if o.failoverWait != "both" {
		cmd += " -failover-wait " + o.failoverWait
	}
	fmt.Fprintf(&b, "\nCommand: `%s`, from the repository's root.\n\nMachine:\n\n", cmd)
	fmt.Fprintf(&b, "- date: %s\n", m.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- CPU: %s; nproc %s, runtime.NumCPU %d\n", console.OrUnknown(m.CPUModel), console.OrUnknown(m.Nproc), m.NumCPU)
	fmt.Fprintf(&b, "- kernel %s\n", console.OrUnknown(m.Kernel))
	appGo := "not built"
	if o.app != "" {
		appGo = "unknown"
		if bi, err := buildinfo.ReadFile(o.app); err == nil {
			appGo = bi.GoVersion
		}
	}
	fmt.Fprintf(&b, "- Go: %s (chi-admin), %s (the drill, and the in-process apps of drills 3, 4, 7 and 8)\n", appGo, m.GoVersion)
	if m.redis != "" {
		fmt.Fprintf(&b, "- %s\n", m.redis)
	}
	if m.postgres != "" {
		fmt.Fprintf(&b, "- %s\n", m.postgres)
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- load average at the end: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
	b.WriteString("- the clients, the apps, the stores and the IdP share these cores.\n")
	return b.String()
}
