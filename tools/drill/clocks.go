package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// clockSkew runs two replicas of the library in test servers, one whose
// clock (Config.Now) runs ClockSkew − 1s ahead of the IdP's and one
// ClockSkew − 1s behind, on one Redis behind a round-robin balancer.
// Sessions step up through the balancer, so that a challenge issued by one
// replica is answered at the other; then elevated sessions load the
// guarded route until their ID tokens have expired: some through the
// balancer, some at one replica only, so that each replica's own cut-off
// shows (through the balancer, the first replica to refuse removes the
// elevation for both).
//
// The true deadline is the ID token's exp, on the IdP's clock, which is
// the real one. A replica whose clock reads the real time plus offset
// honours an elevation while its now + ClockSkew < exp, in whole seconds:
// until the real time exp − ClockSkew − offset. With |offset| < ClockSkew
// that is before exp on every replica: no request sent at or after exp
// may be answered 200 (the must), and none sent at or after a replica's
// own cut-off may be answered 200 by that replica.
func clockSkew(ctx context.Context, e *env) (*result, error) {
	skew, lifetime := 10*time.Second, 40*time.Second
	if e.short {
		skew, lifetime = 3*time.Second, 10*time.Second
	}
	offsets := []time.Duration{skew - time.Second, -(skew - time.Second)}
	r := &result{
		load: "24 connections, closed loop: 6 elevated sessions on /admin/ping (2 through the balancer, 2 at replica A only, 2 at B only), a logged-in session and none on /admin/ping and an elevated one on /ping through the balancer; the library in two test servers on one Redis, stepuptest's provider",
		fault: fmt.Sprintf("replica A's clock %+v, B's %+v off the IdP's (ClockSkew %v); ID tokens live %v, the elevation ends with them; round-robin balancer",
			offsets[0], offsets[1], skew, lifetime),
		recovery: "none needed",
	}
	redis, err := startRedisStore(ctx, e, "clocks", false)
	if err != nil {
		return nil, err
	}
	defer redis.Kill()
	var lns [3]net.Listener // A, B, the balancer
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		defer lns[i].Close()
	}
	publicURL := "http://" + lns[2].Addr().String()
	idp, err := startIdP(publicURL, lifetime)
	if err != nil {
		return nil, err
	}
	defer idp.Close()
	before := countGoroutines()
	idpTransport := &http.Transport{}
	defer idpTransport.CloseIdleConnections()
	audit := &auditLog{}
	var replicas []*replica
	for i, off := range offsets {
		rp, err := startReplica(ctx, replicaConfig{index: int8(i), publicURL: publicURL, issuer: idp.Issuer(), redisURL: "redis://" + redis.Addr,
			offset: off, skew: skew, idp: &http.Client{Timeout: 10 * time.Second, Transport: idpTransport}, audit: audit}, lns[i])
		if err != nil {
			return nil, err
		}
		defer rp.close()
		replicas = append(replicas, rp)
	}
	bal, err := startBalancer(lns[2], []string{replicas[0].url, replicas[1].url})
	if err != nil {
		return nil, err
	}
	defer bal.close()

	// Six step-ups through the balancer. Each takes four requests there
	// (login, the challenge, the callback, /admin/ping again), so an extra
	// /ping before the third and the fifth swaps which replica challenges
	// and which one receives the callback.
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	cookies := map[string]string{}
	var stepUpErrors []string
	for i, u := range users {
		if i == 2 || i == 4 {
			if resp, err := http.Get(publicURL + "/ping"); err == nil {
				resp.Body.Close()
			}
		}
		c, err := stepUp(ctx, publicURL, u)
		if err != nil {
			stepUpErrors = append(stepUpErrors, err.Error())
			continue
		}
		cookies[u] = c
	}
	r.must(len(stepUpErrors) == 0, "step-ups failed: %s", strings.Join(stepUpErrors, "; "))
	deadlines := map[string]time.Time{}
	grantedBy := map[string]int8{}
	for _, ev := range audit.all("granted") {
		deadlines[ev.Subject], grantedBy[ev.Subject] = ev.Deadline, ev.replica
	}
	challengedBy := map[string]int8{}
	for _, ev := range audit.all("challenge") {
		challengedBy[ev.Subject] = ev.replica
	}
	pairs := map[string]int{}
	var grants [2]int
	for _, u := range users {
		if _, ok := deadlines[u]; ok {
			pairs[replicaName(challengedBy[u])+"→"+replicaName(grantedBy[u])]++
			grants[grantedBy[u]]++
		}
	}
	r.count("step-ups through the balancer: %d of %d granted (challenge → callback replica: %s); granted by A %d, by B %d; denied %d",
		len(deadlines), len(users), mapString(pairs), grants[0], grants[1], len(audit.all("denied")))
	r.must(len(deadlines) == len(users), "%d of %d step-ups granted", len(deadlines), len(users))
	r.must(grants[0] > 0 && grants[1] > 0, "grants on A: %d, on B: %d; want both", grants[0], grants[1])
	r.must(len(audit.all("denied")) == 0, "denials: %s", audit.summary())
	if len(deadlines) < len(users) {
		return r, nil
	}

	// The load, until two seconds past the last deadline.
	b, err := logIn(ctx, publicURL, "carol")
	if err != nil {
		return nil, err
	}
	loggedIn := b.Cookie(publicURL)
	b.Close()
	bases := []string{publicURL, replicas[0].url, replicas[1].url}
	var clients []client
	for i, u := range users {
		via := int8(i / 2) // u1, u2: the balancer; u3, u4: A; u5, u6: B
		for range 3 {
			clients = append(clients, client{stream: guardedElevated, base: bases[via], cookie: cookies[u], via: via, name: u})
		}
	}
	for range 2 {
		clients = append(clients,
			client{stream: guardedLoggedIn, base: publicURL, cookie: loggedIn, name: "carol"},
			client{stream: openElevated, base: publicURL, cookie: cookies["u1"], name: "u1"})
	}
	clients = append(clients, client{stream: guardedAnon, base: publicURL})
	var lastDeadline time.Time
	for _, d := range deadlines {
		if d.After(lastDeadline) {
			lastDeadline = d
		}
	}
	l := startLoad(ctx, clients)
	audit.setClock(l.now)
	r.others, err = cpuShare(func() []int { return []int{redis.Pid()} }, func() error { return sleep(ctx, time.Until(lastDeadline.Add(2*time.Second))) })
	ss := samples{clients: clients, all: l.stop()}
	if err != nil {
		return nil, err
	}

	// Per session: its true deadline, and the cut-off of the replica it
	// was sent to (through the balancer: the earlier one, A's, who then
	// removes the elevation for both).
	var past, pastOwn, early int
	for i, u := range users {
		via := int8(i / 2)
		mine := ss.filter(func(c client, _ sample) bool { return c.name == u && c.stream == guardedElevated })
		deadline := deadlines[u].Sub(l.start) // on the load's clock
		offset := offsets[0]
		if via == 2 {
			offset = offsets[1]
		}
		cutoff := deadline - skew - offset
		past += count(mine, func(x sample) bool { return x.status == 200 && x.sent >= deadline })
		// Each 200 against the cut-off of the replica that answered it.
		pastOwn += count(mine, func(x sample) bool {
			return x.status == 200 && x.replica >= 0 && x.sent >= deadline-skew-offsets[x.replica]
		})
		early += count(mine, func(x sample) bool { return x.status != 200 && x.done < cutoff })
		last200, _ := last(mine, func(x sample) bool { return x.status == 200 })
		refused, _ := first(mine, func(x sample) bool { return x.status != 200 })
		where := []string{"through the balancer", "at A", "at B"}[via]
		r.count("%s %s: exp %s, %s's cut-off %v before it; the last 200 (by %s) sent %s the cut-off, the first refusal (%s by %s) answered %s it",
			u, where, deadlines[u].UTC().Format("15:04:05"), replicaName(int8(max(0, via-1))), ms(deadline-cutoff),
			replicaName(max(0, last200.replica)), relative(last200.sent-cutoff), refused.outcome(), replicaName(max(0, refused.replica)), relative(refused.done-cutoff))
	}
	never := count(ss.stream(guardedLoggedIn), func(x sample) bool { return x.status == 200 }) +
		count(ss.stream(guardedAnon), func(x sample) bool { return x.status == 200 })
	r.wronglyGranted = past + never
	r.lostElevations = early
	r.must(past == 0, "%d guarded requests sent at or after the true deadline answered 200", past)
	r.must(pastOwn == 0, "%d guarded requests sent after their replica's own cut-off answered 200", pastOwn)
	r.must(never == 0, "%d guarded requests without elevation answered 200", never)
	r.must(early == 0, "%d guarded requests refused before their replica's cut-off", early)
	failed := count(ss.all, sample.failed)
	r.must(failed == 0, "%d requests failed", failed)
	var expired [2]int
	for _, ev := range audit.during("expired") {
		expired[ev.replica]++
	}
	r.count("expired events: A %d, B %d; audit: %s", expired[0], expired[1], audit.summary())
	r.statuses = statusCounts(ss.all)

	for _, rp := range replicas {
		rp.close()
	}
	bal.close()
	idpTransport.CloseIdleConnections()
	checkOwnGoroutines(r, before)
	return r, nil
}

// relative renders d as "12.3 ms before" or "4.5 ms after".
func relative(d time.Duration) string {
	if d < 0 {
		return ms(-d) + " before"
	}
	return ms(d) + " after"
}

func mapString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
