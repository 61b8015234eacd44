package main

import (
	"context"
	"fmt"
	"time"
)

// storeLatency is the slow-store drill's added round-trip time: half of
// it on each direction of every Redis connection.
const storeLatency = 50 * time.Millisecond

// slowStore runs the console on Redis behind a proxy that adds
// storeLatency to every round trip, under the store drills' load, and
// compares the guarded route's latency with the proxy's latency at zero.
// Nothing may fail, nothing may be granted wrongly, and the connections
// to Redis and to the console must stay bounded by the clients.
func slowStore(ctx context.Context, e *env) (*result, error) {
	phase := 10 * time.Second
	if e.short {
		phase = 2 * time.Second
	}
	redis, err := startRedisStore(ctx, e, "slow-store", false)
	if err != nil {
		return nil, err
	}
	defer redis.Kill()
	px, err := startProxy(redis.Addr)
	if err != nil {
		return nil, err
	}
	defer px.close()
	r := &result{
		load: fmt.Sprintf("%d connections, closed loop, as in the Redis drill; chi-admin on Redis through a TCP proxy", storeConnections),
		fault: fmt.Sprintf("the proxy adds %v to every round trip (%v each way, per chunk, no throughput limit) for %v, after %v without it; then %v without it again",
			storeLatency, storeLatency/2, phase, phase, phase),
		recovery: "none needed",
	}
	c, s, clients, err := storeConsole(ctx, e, "redis://"+px.addr+"/0")
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	l := startLoad(ctx, clients)
	c.audit.setClock(l.now)
	pw := watchProc(c.Pid, redis.Addr, l.now, 250*time.Millisecond)
	r.others, err = cpuShare(func() []int { return []int{c.Pid, redis.Pid()} }, func() error { return sleep(ctx, phase) })
	slowFrom := l.now()
	px.setDelay(storeLatency / 2)
	if err == nil {
		err = sleep(ctx, phase)
	}
	slowTo := l.now()
	px.setDelay(0)
	if err == nil {
		err = sleep(ctx, phase)
	}
	ss := samples{clients: clients, all: l.stop()}
	end := l.now()
	procs := pw.stop()
	if err != nil {
		return nil, err
	}

	ge, open := ss.stream(guardedElevated), ss.stream(openElevated)
	r.wronglyGranted = count(ss.stream(guardedLoggedIn), func(x sample) bool { return x.status == 200 }) +
		count(ss.stream(guardedAnon), func(x sample) bool { return x.status == 200 })
	r.must(r.wronglyGranted == 0, "%d guarded requests without elevation answered 200", r.wronglyGranted)
	notOK := count(ge, func(x sample) bool { return x.status != 200 })
	r.must(notOK == 0, "%d guarded requests of elevated sessions not answered 200", notOK)
	failed := count(ss.all, sample.failed)
	r.must(failed == 0, "%d requests failed (5xx, reset, timeout)", failed)
	lost, lostErr := lostElevations(ctx, c.url, s.elevated)
	r.lostElevations = lost
	r.must(lost == 0, "%d of %d elevations lost: %v", lost, len(s.elevated), lostErr)
	r.statuses = statusCounts(ss.all)

	for _, ph := range []struct {
		name     string
		from, to time.Duration
	}{{"without latency", 0, slowFrom}, {fmt.Sprintf("with +%v", storeLatency), slowFrom, slowTo}, {"without it again", slowTo, end}} {
		g, o := sentIn(ge, ph.from, ph.to), sentIn(open, ph.from, ph.to)
		p := peak(procs, ph.from, ph.to)
		r.count("%s: /admin/ping (elevated) p50/p99 %v/%v, %.0f req/s; /ping p50/p99 %v/%v; peak Redis clients %d, chi-admin threads %d, descriptors %d",
			ph.name, ms(latency(g, .5)), ms(latency(g, .99)), float64(len(g))/(ph.to-ph.from).Seconds(),
			ms(latency(o, .5)), ms(latency(o, .99)), p.redisClients, p.stats.Threads, p.stats.FDs)
		// No pile-up: each client has one request in flight, so the
		// console needs at most one Redis connection per client, and one
		// descriptor per client and per Redis connection (plus its
		// listeners, its IdP's and the log pipes).
		r.must(p.redisClients <= storeConnections+4, "%s: %d Redis clients for %d load clients", ph.name, p.redisClients, storeConnections)
		r.must(p.stats.FDs <= 2*storeConnections+32, "%s: chi-admin held %d descriptors for %d load clients", ph.name, p.stats.FDs, storeConnections)
	}
	r.count("audit: %s", c.audit.summary())
	r.must(len(c.audit.all("expired"))+len(c.audit.all("dropped")) == 0, "elevations expired or dropped: %s", c.audit.summary())
	sessionErrors := checkStderr(r, c)
	r.must(sessionErrors == 0, "%d session errors logged", sessionErrors)
	if err := checkGoroutines(ctx, e, r, c); err != nil {
		return nil, err
	}
	return r, nil
}
