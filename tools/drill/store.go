package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// storeUnderTest is a real session store a drill breaks and mends.
type storeUnderTest struct {
	kind      string // "Redis", "PostgreSQL"
	spec      string // chi-admin's -session-store
	redisAddr string // for Redis: read its clients; else ""
	fault     string // what break does, for the report
	brk       func() error
	mend      func(ctx context.Context) error
	pids      func() []int // the store's processes, for the CPU share
	// connections, when set, returns how many connections the store has
	// accepted so far.
	connections func() (int64, error)
}

// startRedisStore runs redis-server in a directory of its own under the
// drill's, persisting every write (appendonly, fsync always) when
// persist is set.
func startRedisStore(ctx context.Context, e *env, name string, persist bool) (*testkit.Redis, error) {
	dir := filepath.Join(e.tmp, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	var opts []testkit.RedisOption
	if persist {
		opts = append(opts, testkit.RedisAppendOnly())
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return testkit.StartRedisServer(ctx, e.redisBin, dir, "", opts...)
}

// startRedisCluster runs a Redis Cluster (three primaries, three
// replicas) in a directory of its own under the drill's, ready: every slot
// served, every replica in sync. Its nodes do not persist.
func startRedisCluster(ctx context.Context, e *env, name string) (*testkit.RedisCluster, error) {
	dir := filepath.Join(e.tmp, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return testkit.StartRedisClusterServers(ctx, e.redisBin, e.redisCli, dir)
}

// clusterPids are the cluster's redis-server processes now, for the CPU
// share: a node killed and started again has a new one.
func clusterPids(c *testkit.RedisCluster) []int {
	var pids []int
	for _, n := range c.Nodes {
		pids = append(pids, n.Pid())
	}
	return pids
}

// startPostgresStore runs a PostgreSQL cluster in a directory of its own
// under the drill's.
func startPostgresStore(ctx context.Context, e *env, name string) (*testkit.Postgres, error) {
	dir := filepath.Join(e.tmp, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return testkit.StartPostgresServer(ctx, e.pgBin, dir, "")
}

func redisKill(ctx context.Context, e *env) (*result, error) {
	redis, err := startRedisStore(ctx, e, "redis-kill", true)
	if err != nil {
		return nil, err
	}
	defer redis.Kill()
	return storeOutage(ctx, e, storeUnderTest{
		kind: "Redis", spec: "redis://" + redis.Addr + "/0", redisAddr: redis.Addr,
		fault: "redis-server killed with SIGKILL, started again on the same port and append-only file (appendfsync always)",
		brk:   func() error { redis.Kill(); return nil },
		mend: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return redis.Start(ctx)
		},
		pids: func() []int { return []int{redis.Pid()} },
	})
}

func postgresStop(ctx context.Context, e *env) (*result, error) {
	pg, err := startPostgresStore(ctx, e, "postgres-stop")
	if err != nil {
		return nil, err
	}
	defer pg.Stop()
	return storeOutage(ctx, e, storeUnderTest{
		kind: "PostgreSQL", spec: pg.DSN,
		fault: "PostgreSQL stopped in immediate mode (pg_ctl stop -m immediate: every backend killed, no checkpoint), started again on the same port and data",
		brk:   pg.Stop,
		mend: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			return pg.Start(ctx)
		},
		pids:        func() []int { return append([]int{pg.Pid()}, console.ChildPids(pg.Pid())...) },
		connections: func() (int64, error) { return postgresSessions(ctx, e, pg) },
	})
}

// postgresSessions is how many sessions (connections) the server has had
// since it started, from pg_stat_database, through psql.
func postgresSessions(ctx context.Context, e *env, pg *testkit.Postgres) (int64, error) {
	host, port, _ := net.SplitHostPort(pg.Addr)
	out, err := exec.CommandContext(ctx, filepath.Join(e.pgBin, "psql"), "-h", host, "-p", port, "-U", "postgres", "-d", "postgres",
		"-Atc", "SELECT sum(sessions) FROM pg_stat_database").Output()
	if err != nil {
		return 0, fmt.Errorf("psql: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// storeTiming is how long a store drill loads before, during and after
// the outage.
func storeTiming(short bool) (before, outage, after time.Duration) {
	if short {
		return 2 * time.Second, 2 * time.Second, 3 * time.Second
	}
	return 10 * time.Second, 10 * time.Second, 15 * time.Second
}

// storeConnections is the store drills' load: 64 connections, as many as
// the Redis pool keeps idle ones and more than a PostgreSQL pool opens at
// once by default.
const storeConnections = 64

// storeConsole starts the console on the session store spec, elevates
// four sessions and logs one in, and returns the store drills' clients.
func storeConsole(ctx context.Context, e *env, spec string) (*consoleRun, sessions, []client, error) {
	c, err := startConsole(ctx, e, consoleArgs(spec)...)
	if err != nil {
		return nil, sessions{}, nil, err
	}
	s, err := newSessions(ctx, c.url, 4)
	if err != nil {
		c.Stop()
		return nil, s, nil, err
	}
	return c, s, mixedClients(storeConnections, c.url, s), nil
}

// storeOutage runs the console on st under load, breaks st for a while,
// mends it, and counts.
func storeOutage(ctx context.Context, e *env, st storeUnderTest) (*result, error) {
	before, outage, after := storeTiming(e.short)
	r := &result{
		load:  fmt.Sprintf("%d connections, closed loop, spread over /ping and /admin/ping with 4 elevated sessions, /admin/ping with a logged-in session and with none; chi-admin on %s", storeConnections, st.kind),
		fault: fmt.Sprintf("%s, for %v after %v of load; %v of load after", st.fault, outage, before, after),
	}
	c, s, clients, err := storeConsole(ctx, e, st.spec)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	idle, _ := console.ReadProcStats(c.Pid)

	l := startLoad(ctx, clients)
	c.audit.setClock(l.now)
	pw := watchProc(c.Pid, st.redisAddr, l.now, 250*time.Millisecond)
	r.others, err = cpuShare(func() []int { return append([]int{c.Pid}, st.pids()...) }, func() error { return sleep(ctx, before) })
	if err != nil {
		l.stop()
		pw.stop()
		return nil, err
	}
	var storeConns int64 = -1
	if st.connections != nil {
		if storeConns, err = st.connections(); err != nil {
			l.stop()
			pw.stop()
			return nil, err
		}
	}
	breakStart := l.now()
	if err := st.brk(); err != nil {
		l.stop()
		pw.stop()
		return nil, fmt.Errorf("breaking %s: %w", st.kind, err)
	}
	broken := l.now()
	logf("%s is down", st.kind)
	sleep(ctx, outage)
	mendStart := l.now()
	if err := st.mend(ctx); err != nil {
		l.stop()
		pw.stop()
		return nil, fmt.Errorf("starting %s again: %w", st.kind, err)
	}
	mended := l.now()
	logf("%s answers again after %v", st.kind, (mended - mendStart).Round(time.Millisecond))
	sleep(ctx, after)
	ss := samples{clients: clients, all: l.stop()}
	end := l.now()
	quiet := quiesce(c.Pid)
	procs := pw.stop()

	// Wrongly granted: the sessions without elevation never pass the
	// guard, and the elevated ones not while the store cannot answer: a
	// 200 for a request sent after the store was gone and answered
	// before it was even started again was served without the checks.
	ge := ss.stream(guardedElevated)
	blind := count(ge, func(x sample) bool { return x.status == 200 && x.sent >= broken && x.done < mendStart })
	never := count(ss.stream(guardedLoggedIn), func(x sample) bool { return x.status == 200 }) +
		count(ss.stream(guardedAnon), func(x sample) bool { return x.status == 200 })
	r.wronglyGranted = blind + never
	r.must(r.wronglyGranted == 0, "%d guarded requests answered 200 without a valid elevation (%d while %s was down)", r.wronglyGranted, blind, st.kind)

	// Errors only during the outage: none answered before it began, none
	// sent later than errorGrace after the store answered again.
	errBefore := count(ss.all, func(x sample) bool { return x.failed() && x.done < breakStart })
	errAfter := count(ss.all, func(x sample) bool { return x.failed() && x.sent >= mended+errorGrace })
	errDuring := count(ss.all, func(x sample) bool { return x.failed() })
	firstErr, _ := first(ss.all, func(x sample) bool { return x.failed() })
	lastErr, _ := last(ss.all, func(x sample) bool { return x.failed() })
	r.count("errors (5xx, reset, refused, timeout): %d, the first answered %s the %s, the last sent %s %s answered again (before the fault: %d; sent %v or more after it answered: %d)",
		errDuring, relative(firstErr.done-breakStart), verbOf(st.kind), relative(lastErr.sent-mended), st.kind, errBefore, errorGrace, errAfter)
	r.must(errBefore == 0, "%d errors before the fault", errBefore)
	r.must(errAfter == 0, "%d errors for requests sent more than %v after %s answered again", errAfter, errorGrace, st.kind)
	timeouts := count(ss.all, func(x sample) bool { return x.errKind == errTimeout })
	r.must(timeouts == 0, "%d requests timed out (%v)", timeouts, requestTimeout)

	// Recovery, without restarting the app.
	if good, ok := first(ge, func(x sample) bool { return x.status == 200 && x.sent >= mendStart }); ok {
		r.recovery = fmt.Sprintf("%v from starting %s again to the first 200 on /admin/ping (%s the drill saw %s answer)",
			ms(good.done-mendStart), st.kind, relative(good.done-mended), st.kind)
	} else {
		r.recovery = "never"
		r.must(false, "no guarded request succeeded after %s came back", st.kind)
	}
	// During the steady phases every elevated guarded request passes.
	steadyBad := count(ge, func(x sample) bool {
		return x.status != 200 && (x.done < breakStart || x.sent >= mended+errorGrace)
	})
	r.must(steadyBad == 0, "%d elevated guarded requests outside the fault were not answered 200", steadyBad)
	r.count("/admin/ping for the elevated sessions: before %s; during %s; after %s",
		statusCounts(sentIn(ge, 0, breakStart)), statusCounts(sentIn(ge, breakStart, mended)), statusCounts(sentIn(ge, mended, end)))
	r.count("p50/p99 of /admin/ping, elevated, before the fault: %v/%v; after it: %v/%v",
		ms(latency(sentIn(ge, 0, breakStart), .5)), ms(latency(sentIn(ge, 0, breakStart), .99)),
		ms(latency(sentIn(ge, mended+errorGrace, end), .5)), ms(latency(sentIn(ge, mended+errorGrace, end), .99)))

	// Elevations that should have survived: every elevated session passes
	// the guard once the store is back.
	lost, lostErr := lostElevations(ctx, c.url, s.elevated)
	r.lostElevations = lost
	r.must(lost == 0, "%d of %d elevations lost across the outage: %v", lost, len(s.elevated), lostErr)

	// What the audit log said: a challenge for each 401 the logged-in
	// session got under load (the step-ups before it were challenged too),
	// and no elevation expired or dropped.
	r.statuses = statusCounts(ss.all)
	challenges := len(c.audit.during("challenge"))
	loggedIn401 := count(ss.stream(guardedLoggedIn), func(x sample) bool { return x.status == 401 })
	r.count("audit: %s; the logged-in session's 401s: %d", c.audit.summary(), loggedIn401)
	r.must(challenges == loggedIn401, "%d challenge events for %d 401s to the logged-in session", challenges, loggedIn401)
	r.must(len(c.audit.all("expired"))+len(c.audit.all("dropped")) == 0, "elevations expired or dropped: %s", c.audit.summary())

	sessionErrors := checkStderr(r, c)
	p := peak(procs, 0, breakStart)
	pf := peak(procs, breakStart, mended+errorGrace)
	pa := peak(procs, mended+errorGrace, end)
	r.count("chi-admin threads/descriptors, peak: before the fault %d/%d, during %d/%d, after %d/%d; idle before the load %d/%d, after it %d/%d; session errors logged: %d",
		p.stats.Threads, p.stats.FDs, pf.stats.Threads, pf.stats.FDs, pa.stats.Threads, pa.stats.FDs,
		idle.Threads, idle.FDs, quiet.Threads, quiet.FDs, sessionErrors)
	if st.redisAddr != "" {
		r.count("Redis clients, peak: before %d, after %d", p.redisClients, pa.redisClients)
	}
	if storeConns >= 0 {
		withSession := count(ss.all, func(x sample) bool { return x.sent < breakStart && ss.of(x).cookie != "" })
		r.count("%s connections opened before the fault: %d, for %d requests with a session cookie", st.kind, storeConns, withSession)
	}
	if err := checkGoroutines(ctx, e, r, c); err != nil {
		return nil, err
	}
	return r, nil
}

// errorGrace is how long after the store answers again a request may
// still fail: it may have been queued behind the outage, or drawn a pooled
// connection that died with the old server.
const errorGrace = time.Second

func verbOf(kind string) string {
	if kind == "Redis" {
		return "kill"
	}
	return "stop"
}

// ms renders d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
