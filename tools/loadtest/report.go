package main

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// machine describes where the numbers come from.
type machine struct {
	console.Machine
	wrk   string
	redis string
}

func describeMachine(ctx context.Context, t tools) machine {
	m := machine{Machine: console.DescribeMachine(ctx), wrk: console.FirstLine(ctx, t.wrk, "-v")}
	if t.redis != "" {
		m.redis = console.FirstLine(ctx, t.redis, "--version")
	}
	return m
}

// busyMachine is the share of the CPU that other processes may use during a
// run before the report warns.
const busyMachine = 0.05

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// renderReport is the Markdown the load test prints and writes to -out.
func renderReport(o *options, m machine, results []storeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| store | route | req/s | p50 | p99 | non-2xx | socket errors |\n")
	fmt.Fprintf(&b, "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range results {
		for _, r := range s.routes {
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %d | %s |\n",
				s.store, r.path, r.wrk.RequestsPerSec, ms(r.wrk.P50), ms(r.wrk.P99), r.wrk.Non2xx, r.wrk.Socket)
		}
	}
	b.WriteString("\nGuarded/unguarded req/s (/admin/ping ÷ /ping):")
	for i, s := range results {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %.2f", sep, s.store, s.ratio())
	}
	b.WriteString(".\n")
	var failures []string
	for _, s := range results {
		failures = append(failures, s.failures...)
	}
	if len(failures) > 0 {
		b.WriteString("\n**Failed checks:**\n\n")
		for _, f := range failures {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(f, "\n", " / "))
		}
	}

	b.WriteString("\nPer measured run:\n\n")
	b.WriteString("| store | route | requests | other processes' CPU | Redis commands per request | Redis connections opened |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: |\n")
	var busy []string
	for _, s := range results {
		for _, r := range s.routes {
			perReq, opened := "-", "-"
			if r.redis != nil && r.wrk.Requests > 0 {
				perReq = fmt.Sprintf("%.2f", float64(r.redis.Commands)/float64(r.wrk.Requests))
				opened = fmt.Sprint(r.redis.Connections)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", s.store, r.path, r.wrk.Requests, r.othersString(), perReq, opened)
			if r.othersKnown && r.othersCPU > busyMachine {
				busy = append(busy, s.store+" "+r.path)
			}
		}
	}
	b.WriteString("\n\"Other processes' CPU\" is the share of the machine's CPU time that processes other than wrk, " +
		"chi-admin, redis-server and the load test used during the run (/proc/stat less /proc/PID/stat).\n")
	if len(busy) > 0 {
		fmt.Fprintf(&b, "\n**Warning:** other processes used more than %.0f%% of the CPU during %s: "+
			"those numbers understate the console; rerun on a quiet machine.\n", 100*busyMachine, strings.Join(busy, ", "))
	}

	fmt.Fprintf(&b, "\nEach route: `%s` after a %v warm-up of the same route, both routes with the same session cookie, "+
		"alice's, stepped up to acr %s at the dev IdP. wrk sends no Accept header, so a refused request would be a 401, which wrk counts as non-2xx.\n",
		wrkCommand(o, o.duration, "http://127.0.0.1:$PORT/$ROUTE"), o.warmup, "`urn:stepup:dev:mfa`")

	b.WriteString("\nMachine:\n\n")
	fmt.Fprintf(&b, "- date: %s\n", m.Started.UTC().Format(time.RFC3339))
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown model"
	}
	fmt.Fprintf(&b, "- CPU: %s; nproc %s, runtime.NumCPU %d\n", cpu, console.OrUnknown(m.Nproc), m.NumCPU)
	fmt.Fprintf(&b, "- OS: %s/%s, kernel %s\n", runtime.GOOS, runtime.GOARCH, console.OrUnknown(m.Kernel))
	appGo := "unknown"
	if bi, err := buildinfo.ReadFile(o.app); err == nil {
		appGo = bi.GoVersion
	}
	fmt.Fprintf(&b, "- Go: %s (chi-admin), %s (load test)\n", appGo, m.GoVersion)
	fmt.Fprintf(&b, "- wrk: %s\n", console.OrUnknown(m.wrk))
	if m.redis != "" {
		fmt.Fprintf(&b, "- redis-server: %s (no persistence)\n", m.redis)
	}
	b.WriteString("- wrk, chi-admin (its own process, default GOMAXPROCS) and redis-server share these cores; " +
		"the dev IdP runs inside chi-admin and is idle during the runs.\n")
	return b.String()
}
