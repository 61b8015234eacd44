package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// The failover drill's default number of tries per mode, and with -short.
const (
	defaultFailoverTries = 200
	shortFailoverTries   = 2
)

// failoverMode is one pass of the failover drill: with the store's wait
// for a replica (Replicas 1, the default on a Cluster) or without it
// (Replicas = NoReplicas).
type failoverMode struct {
	name string // "with the wait", "without the wait"
	tag  string // in user names: "wait", "nowait"
	wait bool
}

// aTry is one try of the failover drill.
type aTry struct {
	user, method string
	node         string // the killed primary
	promoted     string // the primary of the record's slots after the failover
	slots        []testkit.SlotRange
	// On the drill's clock (time.Now): the revocation's acknowledgement,
	// the SIGKILL, the promoted replica serving the slots, the old
	// primary started again, the cluster healthy again.
	acked, killed, failedOver, restarted, healthy time.Time
	revokeErr                                     error    // the revocation was not acknowledged: no kill
	found                                         bool     // the record, read after the failover
	after                                         int      // the untouched session's guarded request after the failover: its status
	falseGrants                                   int      // 200s to the loaded session, sent after the acknowledgement
	loaded                                        []sample // the loaded session's requests sent after the acknowledgement
}

// lost reports whether the try's acknowledged revocation did not survive
// the failover: its record is gone, or the untouched session passes.
func (t *aTry) lost() bool { return t.revokeErr == nil && (!t.found || t.after == http.StatusOK) }

// failoverTopology is a Redis the failover drill breaks: a Redis Cluster,
// or a primary and its replica behind three Sentinels.
type failoverTopology struct {
	name string
	// url is redisstore.Open's URL for replica i.
	url func(i int) string
	// primaryFor returns the primary that holds key now, and the hash
	// slots it serves: those a kill leaves without a primary.
	primaryFor func(ctx context.Context, key string) (*testkit.RedisNode, []testkit.SlotRange, error)
	// slot is key's hash slot; shards are the primaries' slots.
	slot   func(key string) (int, error)
	shards func(ctx context.Context) ([][]testkit.SlotRange, error)
	// waitFailover waits until a replica serves killed's slots; rejoin
	// starts killed again, as a replica; waitHealthy waits until every
	// primary has a replica in sync, ready for the next kill.
	waitFailover func(ctx context.Context, killed *testkit.RedisNode) error
	rejoin       func(ctx context.Context, killed *testkit.RedisNode) error
	waitHealthy  func(ctx context.Context) error
	pids         func() []int
}

// allSlots is every hash slot: a Sentinel topology's one primary serves
// them all.
var allSlots = []testkit.SlotRange{{First: 0, Last: 16383}}

func clusterTopology(c *testkit.RedisCluster) *failoverTopology {
	return &failoverTopology{
		name: "Redis Cluster",
		// Any node: the client discovers the others.
		url: func(i int) string { return "redis://" + c.Addrs[i%len(c.Addrs)] },
		primaryFor: func(ctx context.Context, key string) (*testkit.RedisNode, []testkit.SlotRange, error) {
			n, err := c.PrimaryFor(key)
			if err != nil {
				return nil, nil, err
			}
			slots, err := n.Slots(ctx)
			return n, slots, err
		},
		slot: func(key string) (int, error) {
			var reply string
			var err error
			for _, addr := range c.Addrs {
				if reply, err = testkit.RedisCommand(addr, "CLUSTER", "KEYSLOT", key); err == nil {
					return strconv.Atoi(reply)
				}
			}
			return 0, err
		},
		shards: func(ctx context.Context) ([][]testkit.SlotRange, error) {
			var shards [][]testkit.SlotRange
			for _, n := range c.Nodes {
				s, err := n.Slots(ctx)
				if err != nil {
					return nil, err
				}
				if len(s) > 0 {
					shards = append(shards, s)
				}
			}
			return shards, nil
		},
		waitFailover: c.WaitForFailover,
		rejoin:       func(ctx context.Context, n *testkit.RedisNode) error { return n.Start(ctx) },
		waitHealthy:  c.WaitHealthy,
		pids:         func() []int { return clusterPids(c) },
	}
}

func sentinelTopology(s *testkit.RedisSentinel) *failoverTopology {
	url := "redis://" + s.SentinelAddrs[0] + "?master_set=" + s.MasterName
	for _, a := range s.SentinelAddrs[1:] {
		url += "&addr=" + a
	}
	return &failoverTopology{
		name: "Sentinel",
		url:  func(int) string { return url },
		primaryFor: func(ctx context.Context, _ string) (*testkit.RedisNode, []testkit.SlotRange, error) {
			addr, err := s.CurrentPrimary(ctx)
			if err != nil {
				return nil, nil, err
			}
			n := s.Node(addr)
			if n == nil {
				return nil, nil, fmt.Errorf("the sentinels name %s, not a data node", addr)
			}
			return n, allSlots, nil
		},
		slot:         func(string) (int, error) { return 0, nil },
		shards:       func(context.Context) ([][]testkit.SlotRange, error) { return [][]testkit.SlotRange{allSlots}, nil },
		waitFailover: func(ctx context.Context, n *testkit.RedisNode) error { return s.WaitForFailover(ctx, n.Addr) },
		rejoin:       s.Rejoin,
		waitHealthy:  s.WaitHealthy,
		pids: func() []int {
			pids := []int{s.Primary().Pid(), s.Replica().Pid()}
			for _, n := range s.Sentinels {
				pids = append(pids, n.Pid())
			}
			return pids
		},
	}
}

// failover kills, again and again, the Redis primary that holds a
// revocation the library has just acknowledged, and counts the
// revocations the failover lost.
//
// Two replicas of the library run in test servers in this process behind
// a round-robin front, on a Redis Cluster (three primaries, three
// replicas) or, with -failover-topology, on a primary and its replica
// behind three Sentinels, whose data nodes keep no file (no append-only
// file, no snapshot: the point is replication, not disk); each replica
// has its own client (redisstore.Open). Each try: a fresh user steps up
// twice through the front (two sessions, through the library's callback,
// which registers the grant); the drill finds the primary of the user's
// revocation record (its key computed as stepup computes it, see
// [revocationRecordKey]); it starts loading the guarded route with the
// first session; it revokes the user (RevokeSubject on a replica, or a
// back-channel logout token naming the user POSTed through the front, in
// turn), and as soon as the revocation is acknowledged (nil, or 200),
// from the same goroutine, kills that primary with SIGKILL. It waits
// until the replica was promoted, starts the old primary again (it
// rejoins as a replica, empty, and copies the new primary), and waits
// until every primary has a replica in sync. Then it reads the record,
// and sends one guarded request with the second session, which no request
// touched since the step-up: the revocation survived when the record is
// there and the request is refused.
//
// It runs every try with the store's wait for a replica (Redis WAIT,
// Replicas 1, the default on a Cluster and behind Sentinel), then every
// try without it (Replicas = NoReplicas), on new replicas of the library.
// Meanwhile elevated sessions that are never revoked load the guarded
// route: the time from each kill until those whose session is on the
// killed primary's slots are answered 200 again is the recovery.
//
// Musts: with the wait, no revocation lost; in either mode, no guarded
// request sent after the acknowledgement answered 200 unless that
// revocation was lost; every revocation acknowledged; the sessions never
// revoked never refused, and still elevated at the end; no error answered
// to them for a request sent before a kill or more than a second after
// the topology was healthy again.
func failover(ctx context.Context, e *env) (*result, error) {
	tries := e.failoverTries
	if tries <= 0 {
		tries = defaultFailoverTries
		if e.short {
			tries = shortFailoverTries
		}
	}
	var modes []failoverMode
	if e.failoverWait != "off" {
		modes = append(modes, failoverMode{"with the wait", "wait", true})
	}
	if e.failoverWait != "on" {
		modes = append(modes, failoverMode{"without the wait", "nowait", false})
	}
	var modeNames []string
	for _, m := range modes {
		modeNames = append(modeNames, m.name)
	}
	var topologies []string
	switch e.failoverTopology {
	case "both":
		topologies = []string{"cluster", "sentinel"}
	default:
		topologies = []string{e.failoverTopology}
	}
	r := &result{
		load: fmt.Sprintf("2 replicas of the library in test servers behind a round-robin front, each with its own client (redisstore.Open) of a %s whose data nodes keep no file; a connection per never-revoked elevated session on /admin/ping (2 or more on each primary's slots); each try, a fresh user stepped up on two sessions, one of them loading /admin/ping from before the revocation until the topology is healthy again",
			strings.Join(topologyNames(topologies), ", then of a ")),
		fault: fmt.Sprintf("%d tries %s: the user revoked (RevokeSubject on a replica, or a back-channel logout token POSTed through the front, in turn), and as soon as it is acknowledged the primary holding the user's revocation record killed with SIGKILL; its replica promoted (after 1s without an answer: cluster-node-timeout, down-after-milliseconds); the old primary started again, empty, rejoining as a replica",
			tries, strings.Join(modeNames, ", then ")),
	}
	before := countGoroutines()
	var statuses, recoveries []string
	var others []string
	for _, name := range topologies {
		topo, stop, err := startFailoverTopology(ctx, e, name)
		if err != nil {
			return nil, err
		}
		share, err := cpuShare(topo.pids, func() error {
			for _, m := range modes {
				label := m.name
				if len(topologies) > 1 || name != "cluster" {
					label = topo.name + ", " + m.name
				}
				st, rec, err := failoverMode1(ctx, r, topo, m, label, tries)
				if err != nil {
					return fmt.Errorf("%s: %w", label, err)
				}
				statuses = append(statuses, label+": "+st)
				recoveries = append(recoveries, label+": "+rec)
			}
			return nil
		})
		stop()
		if err != nil {
			return nil, err
		}
		others = append(others, topo.name+" "+share)
	}
	r.others = strings.Join(others, ", ")
	r.statuses = strings.Join(statuses, "; ")
	r.recovery = strings.Join(recoveries, "; ")
	checkOwnGoroutines(r, before)
	return r, nil
}

func topologyNames(names []string) []string {
	var out []string
	for _, n := range names {
		if n == "sentinel" {
			out = append(out, "primary and its replica behind three Sentinels")
		} else {
			out = append(out, "Redis Cluster of three primaries and three replicas")
		}
	}
	return out
}

// startFailoverTopology starts the Redis a failover drill breaks, ready,
// and returns how to stop it.
func startFailoverTopology(ctx context.Context, e *env, name string) (*failoverTopology, func(), error) {
	if name == "cluster" {
		c, err := startRedisCluster(ctx, e, "failover-cluster")
		if err != nil {
			return nil, nil, err
		}
		return clusterTopology(c), c.Kill, nil
	}
	dir := filepath.Join(e.tmp, "failover-sentinel")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := testkit.StartRedisSentinelServers(sctx, e.redisBin, e.redisCli, dir)
	if err != nil {
		return nil, nil, err
	}
	return sentinelTopology(s), s.Kill, nil
}

// failoverMode1 runs the tries of one mode on new replicas of the library
// and adds what it counted to r.
func failoverMode1(ctx context.Context, r *result, topo *failoverTopology, m failoverMode, label string, tries int) (statuses, recovery string, err error) {
	var lns [3]net.Listener // A, B, the front
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", "", err
		}
		defer lns[i].Close()
	}
	front := "http://" + lns[2].Addr().String()
	idp, err := startIdP(front, time.Hour)
	if err != nil {
		return "", "", err
	}
	defer idp.Close()
	idpTransport := &http.Transport{}
	defer idpTransport.CloseIdleConnections()
	audit := &auditLog{}
	var replicas []*replica
	for i := range 2 {
		rp, err := startReplica(ctx, replicaConfig{index: int8(i), publicURL: front, issuer: idp.Issuer(),
			redisURL: topo.url(i), noWait: !m.wait,
			idp: &http.Client{Timeout: 10 * time.Second, Transport: idpTransport}, audit: audit}, lns[i])
		if err != nil {
			return "", "", err
		}
		defer rp.close()
		replicas = append(replicas, rp)
	}
	bal, err := startBalancer(lns[2], []string{replicas[0].url, replicas[1].url})
	if err != nil {
		return "", "", err
	}
	defer bal.close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()

	probes, err := failoverProbes(ctx, topo, front, m.tag)
	if err != nil {
		return "", "", err
	}
	var clients []client
	for _, p := range probes {
		clients = append(clients, client{stream: guardedElevated, base: front, cookie: p.cookie, name: p.user})
	}
	l := startLoad(ctx, clients)
	var done []*aTry
	var failedAcks []string
	for i := range tries {
		t, err := failoverTry(ctx, topo, idp, replicas, front, hc, fmt.Sprintf("%s-%03d", m.tag, i+1), i)
		if err != nil {
			l.stop()
			return "", "", fmt.Errorf("try %d: %w", i+1, err)
		}
		done = append(done, t)
		if t.revokeErr != nil {
			msg := fmt.Sprintf("try %d, %s: not acknowledged: %v", i+1, t.method, t.revokeErr)
			if i > 0 {
				p := done[i-1]
				msg += fmt.Sprintf("; the try before killed %s, and %s serves its slots now, %v after the topology was healthy again",
					p.node, p.promoted, t.acked.Sub(p.healthy).Round(time.Millisecond))
			}
			logf("failover, %s: %s", label, msg)
			failedAcks = append(failedAcks, msg)
		}
		if (i+1)%20 == 0 || i+1 == tries {
			logf("failover, %s: %d of %d tries, %d lost", label, i+1, tries, countTries(done, (*aTry).lost))
		}
	}
	ss := samples{clients: clients, all: l.stop()}
	at := func(t time.Time) time.Duration { return t.Sub(l.start) }

	// The revocations.
	notAcked := countTries(done, func(t *aTry) bool { return t.revokeErr != nil })
	lost := countTries(done, (*aTry).lost)
	gone := countTries(done, func(t *aTry) bool { return t.revokeErr == nil && !t.found })
	passed := countTries(done, func(t *aTry) bool { return t.revokeErr == nil && t.after == http.StatusOK })
	odd := countTries(done, func(t *aTry) bool {
		return t.revokeErr == nil && t.after != http.StatusOK && t.after != http.StatusUnauthorized
	})
	falseGrants, unexplained := 0, 0
	for _, t := range done {
		falseGrants += t.falseGrants
		if !t.lost() {
			unexplained += t.falseGrants
		}
	}
	r.count("%s: revocations lost %d of %d acknowledged (record gone %d, untouched session passing %d), not acknowledged %d, the untouched session answered neither 200 nor 401 %d; guarded 200s sent after the acknowledgement %d (in tries whose revocation survived: %d); %s",
		label, lost, len(done)-notAcked, gone, passed, notAcked, odd, falseGrants, unexplained, tryMethods(done))
	if m.wait {
		r.must(lost == 0, "%s: %d of %d acknowledged revocations lost in a failover", label, lost, len(done)-notAcked)
		r.wronglyGranted += falseGrants
	}
	r.must(unexplained == 0, "%s: %d guarded requests sent after an acknowledged revocation that survived answered 200", label, unexplained)
	r.must(notAcked == 0, "%s: %d revocations not acknowledged: %s", label, notAcked, strings.Join(failedAcks, "; "))
	r.must(odd == 0, "%s: %d untouched sessions answered neither 200 nor 401 after the failover", label, odd)
	var loaded []sample
	withErrors := 0
	for _, t := range done {
		loaded = append(loaded, t.loaded...)
		if count(t.loaded, sample.failed) > 0 {
			withErrors++
		}
	}
	r.count("%s: the revoked user's loaded session, requests sent after the acknowledgement: %s (tries with an error among them: %d)", label, statusCounts(loaded), withErrors)

	// Recovery: from each kill until the never-revoked sessions on the
	// killed primary's slots are answered 200 again; and the failover
	// itself, from the kill until every other node sees the promoted
	// replica serve the slots.
	var recoveries, failovers, rejoins, toKill []time.Duration
	unmeasured, lagging, afterFailover := 0, 0, 0
	var maxLag time.Duration
	var errsOutside int
	windows := make([][2]time.Duration, 0, len(done))
	for _, t := range done {
		if t.revokeErr != nil {
			continue
		}
		killed := at(t.killed)
		windows = append(windows, [2]time.Duration{killed, at(t.healthy) + errorGrace})
		failovers = append(failovers, t.failedOver.Sub(t.killed))
		toKill = append(toKill, t.killed.Sub(t.acked))
		rejoins = append(rejoins, t.healthy.Sub(t.restarted))
		var worst time.Duration = -1
		for _, p := range probes {
			if !inSlots(p.slot, t.slots) {
				continue
			}
			mine := ss.filter(func(c client, x sample) bool { return c.name == p.user && x.sent >= killed })
			if x, ok := first(mine, func(x sample) bool { return x.status == 200 }); ok {
				worst = max(worst, x.done-killed)
			}
		}
		if worst < 0 {
			unmeasured++
			continue
		}
		recoveries = append(recoveries, worst)
		lag := worst - (at(t.failedOver) - killed)
		maxLag = max(maxLag, lag)
		if lag > time.Second {
			lagging++
		}
		afterFailover += count(ss.all, func(x sample) bool {
			return x.failed() && x.sent >= at(t.failedOver) && x.sent < at(t.healthy)+errorGrace
		})
	}
	for _, x := range ss.all {
		if !x.failed() {
			continue
		}
		inside := false
		for _, w := range windows {
			if x.done >= w[0] && x.sent < w[1] {
				inside = true
				break
			}
		}
		if !inside {
			errsOutside++
		}
	}
	slices.Sort(recoveries)
	slices.Sort(failovers)
	slices.Sort(rejoins)
	slices.Sort(toKill)
	if len(toKill) > 0 {
		r.count("%s: from the acknowledgement to the SIGKILL p50/max %v/%v", label, pick(toKill, .5).Round(time.Microsecond), pick(toKill, 1).Round(time.Microsecond))
	}
	refused := count(ss.all, func(x sample) bool { return x.status != 0 && x.status < 500 && x.status != 200 })
	r.count("%s: the never-revoked sessions served 200 again after a kill in p50/p99/max %s/%s/%s (%d kills; %d with no such session on the killed slots); the promoted replica serving (every other Cluster node, or every sentinel, says so) p50/p99/max %s/%s/%s after the kill; the old primary back as a replica and in sync %s (p50) after it was started; never-revoked sessions: %d requests, %d errors (outside a failover: %d), %d refused; p50/p99 %v/%v, the slowest %v",
		label, quantile(recoveries, .5), quantile(recoveries, .99), quantile(recoveries, 1), len(recoveries)+unmeasured, unmeasured,
		quantile(failovers, .5), quantile(failovers, .99), quantile(failovers, 1), quantile(rejoins, .5),
		len(ss.all), count(ss.all, sample.failed), errsOutside, refused,
		ms(latency(ss.all, .5)), ms(latency(ss.all, .99)), ms(latency(ss.all, 1)))
	r.count("%s: kills after which the never-revoked sessions on the killed slots were served again more than 1 s after the failover had completed: %d of %d (the longest %v after it); their requests sent after the failover had completed that failed: %d",
		label, lagging, len(recoveries), ms(maxLag), afterFailover)
	r.must(errsOutside == 0, "%s: %d requests of never-revoked sessions failed outside a failover", label, errsOutside)
	r.must(refused == 0, "%s: %d guarded requests of never-revoked sessions refused", label, refused)
	var kept []string
	for _, p := range probes {
		kept = append(kept, p.cookie)
	}
	lostProbes, lostErr := lostElevations(ctx, front, kept)
	r.lostElevations += lostProbes + refused
	r.must(lostProbes == 0, "%s: %d of %d never-revoked elevations refused after the last failover: %v", label, lostProbes, len(kept), lostErr)
	r.count("%s: audit: %s", label, audit.summary())
	recovery = fmt.Sprintf("p50/p99/max %s/%s/%s from the kill to the first 200 for a never-revoked session on the killed primary's slots",
		quantile(recoveries, .5), quantile(recoveries, .99), quantile(recoveries, 1))
	return statusCounts(ss.all), recovery, nil
}

// aProbe is a never-revoked elevated session of the failover drill, and
// the hash slot of its session's key.
type aProbe struct {
	user, cookie string
	slot         int
}

// failoverProbes steps up sessions that are never revoked until each of
// the topology's primaries serves the slots of two of them.
func failoverProbes(ctx context.Context, topo *failoverTopology, front, tag string) ([]aProbe, error) {
	shards, err := topo.shards(ctx)
	if err != nil {
		return nil, err
	}
	var probes []aProbe
	perShard := make([]int, len(shards))
	for i := 0; slices.Min(perShard) < 2; i++ {
		if i == 30 {
			return nil, fmt.Errorf("30 sessions and a primary serves fewer than two: %v", perShard)
		}
		user := fmt.Sprintf("%s-probe%d", tag, i+1)
		cookie, err := stepUp(ctx, front, user)
		if err != nil {
			return nil, err
		}
		slot, err := topo.slot("scs:session:" + cookie)
		if err != nil {
			return nil, err
		}
		probes = append(probes, aProbe{user: user, cookie: cookie, slot: slot})
		for j, s := range shards {
			if inSlots(slot, s) {
				perShard[j]++
			}
		}
	}
	return probes, nil
}

// failoverTry is one try: a step-up on two sessions, the revocation, the
// kill at once, the failover, the restart, and what survived.
func failoverTry(ctx context.Context, topo *failoverTopology, idp *stepuptest.Provider, replicas []*replica, front string, hc *http.Client, user string, i int) (*aTry, error) {
	t := &aTry{user: user, method: byOperator}
	if i%2 == 1 {
		t.method = byLogoutToken
	}
	var cookies [2]string
	for j := range cookies {
		c, err := stepUp(ctx, front, user)
		if err != nil {
			return nil, err
		}
		cookies[j] = c
	}
	key := revocationRecordKey('R', idp.Issuer(), user)
	// The grant wrote the user's lifetime record, whose key is computed
	// the same way: that it is there shows the computation is stepup's.
	if _, found, err := replicas[0].store.FindCtx(ctx, revocationRecordKey('D', idp.Issuer(), user)); err != nil || !found {
		return nil, fmt.Errorf("the lifetime record of %s is not where the drill computes it (%v)", user, err)
	}
	node, slots, err := topo.primaryFor(ctx, "scs:session:"+key)
	if err != nil {
		return nil, err
	}
	t.slots = slots
	t.node = node.Addr
	var token string
	if t.method == byLogoutToken {
		if token, err = idp.LogoutToken(drillClient, stepuptest.LogoutClaims{Subject: user}); err != nil {
			return nil, err
		}
	}
	hammer := startLoad(ctx, []client{{stream: guardedElevated, base: front, cookie: cookies[0], name: user}})

	// The revocation, and the kill as soon as it is acknowledged.
	if t.method == byOperator {
		t.revokeErr = replicas[i/2%2].su.RevokeSubject(ctx, user)
	} else {
		var status int
		status, _, t.revokeErr = stepuptest.PostLogoutToken(ctx, hc, front+logoutPath, token)
		if t.revokeErr == nil && status != http.StatusOK {
			t.revokeErr = fmt.Errorf("the logout answered %d", status)
		}
	}
	t.acked = time.Now()
	if t.revokeErr != nil {
		hammer.stop()
		return t, nil
	}
	t.killed = time.Now()
	node.Kill()

	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = topo.waitFailover(wait, node)
	t.failedOver = time.Now()
	if err == nil {
		err = topo.rejoin(wait, node)
	}
	t.restarted = time.Now()
	if err == nil {
		err = topo.waitHealthy(wait)
	}
	t.healthy = time.Now()
	hs := hammer.stop()
	if err != nil {
		return nil, err
	}
	if n, _, err := topo.primaryFor(wait, "scs:session:"+key); err == nil {
		t.promoted = n.Addr
	}
	acked := t.acked.Sub(hammer.start)
	t.falseGrants = count(hs, func(x sample) bool { return x.status == 200 && x.sent >= acked })
	t.loaded = sentIn(hs, acked, time.Duration(1<<62))

	// What survived: the record, and the untouched session's elevation.
	read, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, t.found, err = replicas[0].store.FindCtx(read, key); err != nil {
		return nil, fmt.Errorf("reading the record after the failover: %w", err)
	}
	req, _ := http.NewRequestWithContext(read, http.MethodGet, front+"/admin/ping", nil)
	req.Header.Set("Cookie", console.SessionCookie+"="+cookies[1])
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the untouched session after the failover: %w", err)
	}
	resp.Body.Close()
	t.after = resp.StatusCode
	return t, nil
}

// revocationRecordKey is the session-store key of a record of stepup's
// for sub: kind 'R' for the user's revocation record, 'D' for the
// lifetime record. The drill computes it as stepup does (recordKey in
// stepup/revocation_record.go): the kind, a semicolon, and the first 16
// bytes of SHA-256(issuer NUL sub) in unpadded base64url. The store adds
// its prefix ("scs:session:").
func revocationRecordKey(kind byte, issuer, sub string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + sub))
	return string([]byte{kind, ';'}) + base64.RawURLEncoding.EncodeToString(sum[:16])
}

func inSlots(slot int, ranges []testkit.SlotRange) bool {
	for _, r := range ranges {
		if r.First <= slot && slot <= r.Last {
			return true
		}
	}
	return false
}

func countTries(ts []*aTry, keep func(*aTry) bool) int {
	n := 0
	for _, t := range ts {
		if keep(t) {
			n++
		}
	}
	return n
}

// tryMethods renders how many tries revoked each way, and how many of
// them were lost.
func tryMethods(ts []*aTry) string {
	var parts []string
	for _, m := range []string{byOperator, byLogoutToken} {
		n := countTries(ts, func(t *aTry) bool { return t.method == m })
		l := countTries(ts, func(t *aTry) bool { return t.method == m && t.lost() })
		parts = append(parts, fmt.Sprintf("%s %d (lost %d)", m, n, l))
	}
	return strings.Join(parts, ", ")
}
