package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// routes are measured in this order, each after its own warm-up, with the
// same elevated session.
var routes = []struct {
	path    string
	guarded bool
}{
	{"/ping", false},      // LoadAndSave, then the handler
	{"/admin/ping", true}, // LoadAndSave, RequireStepUp("admin"), then the same handler
}

// routeResult is one measured wrk run.
type routeResult struct {
	path    string
	guarded bool
	wrk     wrkResult
	// auditEvents and logLines are what the console printed during the run:
	// an elevated request prints nothing, a challenge or a dropped elevation
	// prints an audit event, a session error a log line.
	auditEvents, logLines int64
	redis                 *console.RedisStats // deltas during the run; nil for the memory store
	// othersCPU is the share of the machine's CPU that processes other than
	// the load test's used during the run; valid when othersKnown.
	othersCPU   float64
	othersKnown bool
}

// storeResult is one session store's runs.
type storeResult struct {
	store    string
	routes   []routeResult
	failures []string // checks that failed; the run goes on
}

func (s storeResult) ratio() float64 {
	var guarded, open float64
	for _, r := range s.routes {
		if r.guarded {
			guarded = r.wrk.RequestsPerSec
		} else {
			open = r.wrk.RequestsPerSec
		}
	}
	if open == 0 {
		return 0
	}
	return guarded / open
}

// measureStore starts the console on store (and redis-server for "redis")
// with its embedded dev IdP, elevates a session and runs wrk against each
// route. Every process it starts is stopped before it returns.
func measureStore(ctx context.Context, o *options, t tools, store, tmp string, stderr io.Writer) (storeResult, error) {
	res := storeResult{store: store}
	spec, redisAddr := "memory", ""
	var pids []int // of the processes that serve the requests
	if store == "redis" {
		dir := tmp + "/redis"
		if err := os.Mkdir(dir, 0o700); err != nil {
			return res, err
		}
		redis, err := startRedis(ctx, t.redis, dir)
		if err != nil {
			return res, err
		}
		defer redis.Kill()
		pids = append(pids, redis.Pid())
		spec, redisAddr = "redis://"+redis.Addr+"/0", redis.Addr
		logf(stderr, "%s: redis-server on %s", store, redis.Addr)
	}

	// Both on ports the console picks: it prints its URL, and its IdP
	// registers the console's redirect URIs itself. The elevation ends
	// with the ID token: it must outlive every run.
	ttl := max(10*time.Minute, 2*(o.warmup+o.duration)+5*time.Minute)
	app, base, err := console.StartApp(ctx, console.Command{Path: o.app, Args: []string{
		"-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-dev-id-token-ttl", ttl.String(), "-session-store", spec}})
	if err != nil {
		return res, err
	}
	defer app.Stop()
	pids = append(pids, app.Pid)
	logf(stderr, "%s: chi-admin (a separate process, with its dev IdP) at %s", store, base)

	cookie, err := console.Elevate(ctx, base, "alice")
	if err != nil {
		return res, err
	}
	for _, r := range routes {
		if err := console.CheckPong(ctx, base+r.path, cookie); err != nil {
			return res, fmt.Errorf("before the runs: %w", err)
		}
	}
	logf(stderr, "%s: alice is elevated; /ping and /admin/ping answer 200 pong", store)

	for _, r := range routes {
		target := base + r.path
		if o.warmup > 0 {
			logf(stderr, "%s: warm-up %s for %v", store, r.path, o.warmup)
			w, err := runWrk(ctx, t.wrk, o, o.warmup, cookie, target)
			if err != nil {
				return res, err
			}
			logf(stderr, "%s: warm-up %s: %.0f req/s, non-2xx %d, socket errors %s", store, r.path, w.RequestsPerSec, w.Non2xx, w.Socket)
		}

		rr := routeResult{path: r.path, guarded: r.guarded}
		audit0, log0 := app.Stdout.Count(), app.Stderr.Count()
		var redis0 console.RedisStats
		if redisAddr != "" {
			if redis0, err = console.ReadRedisStats(redisAddr); err != nil {
				return res, err
			}
		}
		logf(stderr, "%s: %s", store, wrkCommand(o, o.duration, target))
		cpu0 := console.SampleCPU(pids...)
		w, err := runWrk(ctx, t.wrk, o, o.duration, cookie, target)
		if err != nil {
			return res, err
		}
		rr.wrk = w
		rr.othersCPU, rr.othersKnown = console.OthersShare(cpu0, console.SampleCPU(pids...))
		rr.auditEvents, rr.logLines = app.Stdout.Count()-audit0, app.Stderr.Count()-log0
		if redisAddr != "" {
			redis1, err := console.ReadRedisStats(redisAddr)
			if err != nil {
				return res, err
			}
			// Less this INFO's own connection and command.
			rr.redis = &console.RedisStats{Commands: redis1.Commands - redis0.Commands - 1, Connections: redis1.Connections - redis0.Connections - 1}
		}
		logf(stderr, "%s: %s: %.0f req/s, p50 %v, p99 %v, non-2xx %d, socket errors %s; other processes' CPU %s",
			store, r.path, rr.wrk.RequestsPerSec, rr.wrk.P50, rr.wrk.P99, rr.wrk.Non2xx, rr.wrk.Socket, rr.othersString())
		res.routes = append(res.routes, rr)

		fail := func(format string, args ...any) {
			res.failures = append(res.failures, fmt.Sprintf("%s %s: ", store, r.path)+fmt.Sprintf(format, args...))
		}
		if rr.wrk.Requests == 0 {
			fail("wrk completed no request")
		}
		if rr.wrk.Non2xx > 0 {
			fail("%d responses with a status above 399", rr.wrk.Non2xx)
		}
		if n := rr.wrk.Socket.total(); n > 0 {
			fail("%d socket errors (%s)", n, rr.wrk.Socket)
		}
		if rr.auditEvents > 0 {
			fail("the console printed %d audit events during the run (a challenge or a dropped elevation)", rr.auditEvents)
		}
		if rr.logLines > 0 {
			fail("the console logged %d lines during the run:\n%s", rr.logLines, lastLines(app.Stderr.String(), 5))
		}
		if err := console.CheckPong(ctx, target, cookie); err != nil {
			fail("after the run: %v", err)
		}
	}
	if done, err := app.Exited(); done {
		res.failures = append(res.failures, fmt.Sprintf("%s: chi-admin %v:\n%s", store, err, app.Stderr))
	}
	return res, nil
}

func (r routeResult) othersString() string {
	if !r.othersKnown {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%%", 100*r.othersCPU)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startRedis runs a throwaway redis-server on a free loopback port, with
// no persistence, through the repository's one redis starter.
func startRedis(ctx context.Context, bin, dir string) (*testkit.Redis, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return testkit.StartRedisServer(ctx, bin, dir, "")
}
