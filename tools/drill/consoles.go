package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// consoleRun is a chi-admin process under a drill, with what it says
// watched.
type consoleRun struct {
	*console.Process
	url    string
	args   []string
	audit  *auditLog
	stderr *stderrWatch
}

// startConsole runs chi-admin with args (and GOTRACEBACK=all, so that
// SIGQUIT dumps every goroutine).
func startConsole(ctx context.Context, e *env, args ...string) (*consoleRun, error) {
	c := &consoleRun{args: args, audit: &auditLog{}, stderr: &stderrWatch{}}
	p, url, err := console.StartApp(ctx, console.Command{
		Path: e.app, Args: args, Env: append(console.AppEnv(), "GOTRACEBACK=all"),
		StdoutLine: c.audit.line, StderrLine: c.stderr.line,
	})
	if err != nil {
		return nil, err
	}
	c.Process, c.url = p, url
	return c, nil
}

// consoleArgs are the flags of a console on its embedded dev IdP, both on
// ports they pick, with ID tokens that outlive any drill.
func consoleArgs(store string) []string {
	return []string{"-addr", "127.0.0.1:0", "-dev-idp-addr", "127.0.0.1:0", "-dev-id-token-ttl", "2h", "-session-store", store}
}

// sessions are the cookies a drill's load uses.
type sessions struct {
	elevated []string // stepped up for the admin scope
	loggedIn string   // logged in, not stepped up
}

// newSessions elevates n sessions (alice and bob in turn) and logs one in
// (bob) without elevating it.
func newSessions(ctx context.Context, baseURL string, n int) (sessions, error) {
	var s sessions
	for i := range n {
		c, err := console.Elevate(ctx, baseURL, []string{"alice", "bob"}[i%2])
		if err != nil {
			return s, err
		}
		s.elevated = append(s.elevated, c)
	}
	var err error
	s.loggedIn, err = console.LoggedIn(ctx, baseURL, "bob")
	return s, err
}

// mixedClients are n clients spread evenly over the four streams, the
// elevated ones over the elevated sessions.
func mixedClients(n int, base string, s sessions) []client {
	var out []client
	for i := range n {
		c := client{stream: stream(i % int(numStreams)), base: base}
		switch c.stream {
		case openElevated, guardedElevated:
			k := (i / int(numStreams)) % len(s.elevated)
			c.cookie, c.name = s.elevated[k], fmt.Sprintf("elevated #%d", k+1)
		case guardedLoggedIn:
			c.cookie, c.name = s.loggedIn, "logged in"
		}
		out = append(out, c)
	}
	return out
}

// lostElevations checks each elevated session on the guarded route, after
// a fault it should have survived, and returns how many fail.
func lostElevations(ctx context.Context, baseURL string, elevated []string) (lost int, first error) {
	for _, c := range elevated {
		if err := console.CheckPong(ctx, baseURL+"/admin/ping", c); err != nil {
			lost++
			if first == nil {
				first = err
			}
		}
	}
	return lost, first
}

// quiesce waits, after the load stopped and closed its connections, until
// the console's descriptor count holds still for 300ms (at most 3s), and
// returns its /proc counts then. What remains open beyond the idle
// console's are its pool's idle store connections.
func quiesce(pid int) console.ProcStats {
	s, _ := console.ReadProcStats(pid)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		next, _ := console.ReadProcStats(pid)
		if next.FDs == s.FDs {
			break
		}
		s = next
	}
	return s
}

// checkGoroutines ends c with SIGQUIT once the load has stopped, reads its
// goroutines, and compares their number with an idle console's: one
// started on the same flags (its own ports) that served nothing. A request
// still being served, or many more goroutines than the idle console has,
// is a leak.
func checkGoroutines(ctx context.Context, e *env, r *result, c *consoleRun) error {
	dump, err := c.DumpGoroutines(10 * time.Second)
	if err != nil {
		return err
	}
	g := readDump(dump)
	args := slices.Clone(c.args)
	if i := slices.Index(args, "-addr"); i >= 0 {
		args[i+1] = "127.0.0.1:0"
	}
	twin, err := startConsole(ctx, e, args...)
	if err != nil {
		return fmt.Errorf("the idle console: %w", err)
	}
	tdump, err := twin.DumpGoroutines(10 * time.Second)
	if err != nil {
		return fmt.Errorf("the idle console: %w", err)
	}
	idle := readDump(tdump)
	r.count("goroutines after the load: %d, of which serving a request %d (an idle console on the same flags: %d)",
		g.total, g.inRequests, idle.total)
	r.must(g.inRequests == 0, "%d goroutines still serving a request after the load stopped; the first:\n%s", g.inRequests, g.first)
	r.must(g.total <= idle.total+goroutineSlack, "%d goroutines after the load, %d in an idle console", g.total, idle.total)
	return nil
}

// goroutineSlack is how many more goroutines than an idle console's a
// console may have once the load stopped: the keep-alive connections to
// its IdP (three goroutines each, two on the client's side and one on the
// IdP's) that step-ups left open.
const goroutineSlack = 9

// checkStderr records the console's panics and session errors.
func checkStderr(r *result, c *consoleRun) (sessionErrors int) {
	panics, sessionErrors, lines := c.stderr.counts()
	r.must(panics == 0, "%d panic lines on the console's standard error, e.g. %q", panics, lines)
	return sessionErrors
}
