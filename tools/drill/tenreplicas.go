package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// tenReplicaCount is how many replicas the ten-replica drill runs.
const tenReplicaCount = 10

// The four ways the ten-replica drill revokes a user: three the IdP sends
// (through the front, as it would reach the application) and the
// operator's.
const (
	byLogoutToken      = "back-channel logout"
	bySessionRevoked   = "CAEP session-revoked"
	byCredentialChange = "CAEP credential-change"
	byOperator         = "RevokeSubject"
)

var revocationMethods = []string{byLogoutToken, bySessionRevoked, byCredentialChange, byOperator}

// aRevocation is one revocation of the ten-replica drill: planned at an
// instant of the load, sent, and acknowledged (the IdP's 200 or 202,
// RevokeSubject's nil return) or not. Times are on the load's clock.
type aRevocation struct {
	user, method string
	replica      int // RevokeSubject's replica
	at           time.Duration
	sent, acked  time.Duration
	status       int // the answer to the IdP; 0 for RevokeSubject
	err          error
}

// tenReplicas runs ten replicas of the library in test servers in this
// process behind a round-robin front, on a Redis Cluster (three
// primaries, three replicas), each with a client of its own
// (redisstore.Open on one of the nodes), with stepuptest's provider as the
// IdP and as the Shared Signals transmitter. Users step up through the
// front and load the guarded route, one connection each, while most of
// them are revoked, one by one at random instants: by a back-channel
// logout token naming the user and the IdP session, a CAEP session-revoked
// event naming the session, a CAEP credential-change event naming the user
// (each POSTed through the front, as the IdP would reach the application),
// or by the operator (RevokeSubject on a random replica).
//
// A revocation is acknowledged when the front answers the IdP 200 (logout)
// or 202 (SET), or RevokeSubject returns nil: from then on every replica
// must refuse the user's elevation. The musts: no guarded request sent
// after the acknowledgement answered 200 (each response's sending time
// against the acknowledgement's); no elevation of a user not (yet) revoked
// refused; every revocation acknowledged and audited once; no error; no
// request still served and no goroutine left once the replicas are
// closed.
func tenReplicas(ctx context.Context, e *env) (*result, error) {
	users, revoked, loadFor := 50, 40, 20*time.Second
	if e.short {
		users, revoked, loadFor = 12, 8, 4*time.Second
	}
	r := &result{
		load: fmt.Sprintf("%d users stepped up through the front, one connection each on /admin/ping, and 4 connections without elevation (2 logged in, 2 without a session), for %v; %d replicas of the library in test servers behind a round-robin front, each with its own client (redisstore.Open on one node) of a Redis Cluster of three primaries and three replicas; stepuptest's provider", users, loadFor, tenReplicaCount),
		fault: fmt.Sprintf("%d of the %d users revoked one by one at random instants between %v and %v of the load, in turn by %s (sub and sid), %s (the session), %s (the user), each POSTed through the front, and %s on a random replica",
			revoked, users, loadFor/10, loadFor*85/100, byLogoutToken, bySessionRevoked, byCredentialChange, byOperator),
		recovery: "none needed",
	}
	cluster, err := startRedisCluster(ctx, e, "ten-replicas")
	if err != nil {
		return nil, err
	}
	defer cluster.Kill()
	lns := make([]net.Listener, tenReplicaCount+1) // the replicas, the front
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		defer lns[i].Close()
	}
	front := "http://" + lns[tenReplicaCount].Addr().String()
	idp, err := startIdP(front, time.Hour)
	if err != nil {
		return nil, err
	}
	defer idp.Close()
	before := countGoroutines()
	idpTransport := &http.Transport{}
	defer idpTransport.CloseIdleConnections()
	audit := &auditLog{}
	var replicas []*replica
	var urls []string
	for i := range tenReplicaCount {
		rp, err := startReplica(ctx, replicaConfig{index: int8(i), publicURL: front, issuer: idp.Issuer(),
			redisURL: "redis://" + cluster.Addrs[i%len(cluster.Addrs)], signals: true,
			idp: &http.Client{Timeout: 10 * time.Second, Transport: idpTransport}, audit: audit}, lns[i])
		if err != nil {
			return nil, err
		}
		defer rp.close()
		replicas, urls = append(replicas, rp), append(urls, rp.url)
	}
	bal, err := startBalancer(lns[tenReplicaCount], urls)
	if err != nil {
		return nil, err
	}
	defer bal.close()

	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user%02d", i+1)
	}
	cookies, err := stepUpAll(ctx, front, names)
	if err != nil {
		return nil, err
	}
	granters := map[int8]bool{}
	for _, ev := range audit.all("granted") {
		granters[ev.replica] = true
	}
	r.count("step-ups through the front: %d of %d granted, by %d of the %d replicas", len(audit.all("granted")), users, len(granters), tenReplicaCount)
	r.must(len(audit.all("granted")) == users, "%d of %d step-ups granted", len(audit.all("granted")), users)

	// The plan: which users, when, how. The seed is in the report.
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	plan := make([]*aRevocation, revoked)
	order := rng.Perm(users)
	for i := range plan {
		plan[i] = &aRevocation{
			user:    names[order[i]],
			method:  revocationMethods[i%len(revocationMethods)],
			replica: rng.IntN(tenReplicaCount),
			at:      loadFor/10 + time.Duration(rng.Int64N(int64(loadFor*75/100))),
		}
	}
	b, err := logIn(ctx, front, "carol")
	if err != nil {
		return nil, err
	}
	loggedIn := b.Cookie(front)
	b.Close()
	var clients []client
	for _, u := range names {
		clients = append(clients, client{stream: guardedElevated, base: front, cookie: cookies[u], name: u})
	}
	for range 2 {
		clients = append(clients, client{stream: guardedLoggedIn, base: front, cookie: loggedIn, name: "carol"},
			client{stream: guardedAnon, base: front})
	}

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	l := startLoad(ctx, clients)
	audit.setClock(l.now)
	var wg sync.WaitGroup
	for _, rv := range plan {
		wg.Go(func() {
			if rv.err = sleep(ctx, rv.at-l.now()); rv.err != nil {
				return
			}
			rv.sent = l.now()
			rv.status, rv.err = revoke(ctx, rv, idp, front, replicas, hc)
			rv.acked = l.now()
		})
	}
	r.others, err = cpuShare(func() []int { return clusterPids(cluster) }, func() error { return sleep(ctx, loadFor) })
	wg.Wait()
	ss := samples{clients: clients, all: l.stop()}
	end := l.now()
	if err != nil {
		return nil, err
	}

	// Per user: 200s to requests sent after the acknowledgement (wrongly
	// granted), refusals answered before the revocation was sent (lost).
	byUser := map[string]*aRevocation{}
	var failedRevocations []string
	for _, rv := range plan {
		if rv.err != nil {
			failedRevocations = append(failedRevocations, fmt.Sprintf("%s of %s: %v", rv.method, rv.user, rv.err))
			continue
		}
		byUser[rv.user] = rv
	}
	r.must(len(failedRevocations) == 0, "%d revocations not acknowledged: %s", len(failedRevocations), strings.Join(failedRevocations, "; "))
	var granted, lost, inFlight200 int
	var untilRefused []time.Duration // from the acknowledgement to the first refusal
	for _, u := range names {
		mine := ss.filter(func(c client, _ sample) bool { return c.name == u && c.stream == guardedElevated })
		rv, isRevoked := byUser[u]
		if !isRevoked {
			lost += count(mine, func(x sample) bool { return x.status != 200 })
			continue
		}
		granted += count(mine, func(x sample) bool { return x.status == 200 && x.sent >= rv.acked })
		lost += count(mine, func(x sample) bool { return x.status != 200 && x.done < rv.sent })
		inFlight200 += count(mine, func(x sample) bool { return x.status == 200 && x.sent < rv.acked && x.done >= rv.sent })
		if x, ok := first(mine, func(x sample) bool { return x.status != 200 }); ok {
			untilRefused = append(untilRefused, x.done-rv.acked)
		}
	}
	never := count(ss.stream(guardedLoggedIn), func(x sample) bool { return x.status == 200 }) +
		count(ss.stream(guardedAnon), func(x sample) bool { return x.status == 200 })
	r.wronglyGranted = granted + never
	r.lostElevations = lost
	r.must(granted == 0, "%d guarded requests sent after their user's revocation was acknowledged answered 200", granted)
	r.must(never == 0, "%d guarded requests without elevation answered 200", never)
	r.must(lost == 0, "%d guarded requests of users not (yet) revoked refused", lost)
	failed := count(ss.all, sample.failed)
	r.must(failed == 0, "%d requests failed", failed)

	slices.Sort(untilRefused)
	r.count("revocations acknowledged: %d of %d (seed %d); %s", len(byUser), revoked, seed, revocationLatencies(plan))
	r.count("guarded requests sent after the acknowledgement answered 200: %d; answered 200 while the revocation was under way (sent before its acknowledgement, answered after it was sent): %d; the first refusal answered %s the acknowledgement (median; the latest %s it)",
		granted, inFlight200, relativeQuantile(untilRefused, .5), relativeQuantile(untilRefused, 1))
	r.count("guarded requests of users not (yet) revoked refused: %d; failed: %d", lost, failed)
	ge := ss.stream(guardedElevated)
	ok200 := slices.DeleteFunc(slices.Clone(ge), func(x sample) bool { return x.status != 200 })
	r.count("/admin/ping of the stepped-up users: %d requests, %.0f/s, p50/p99 %v/%v (the 200s: %v/%v); the slowest %v",
		len(ge), float64(len(ge))/end.Seconds(), ms(latency(ge, .5)), ms(latency(ge, .99)), ms(latency(ok200, .5)), ms(latency(ok200, .99)), ms(latency(ge, 1)))
	perReplica := make([]int, tenReplicaCount)
	for _, x := range ge {
		if x.replica >= 0 && int(x.replica) < tenReplicaCount {
			perReplica[x.replica]++
		}
	}
	r.count("guarded requests answered per replica: %v", perReplica)

	// The audit: each acknowledged revocation once, no failure; each
	// revoked user's elevation dropped once, by the first refusal.
	revokedEvents, dropped := map[string]int{}, map[string]int{}
	for _, ev := range audit.all("revoked") {
		revokedEvents[ev.Subject]++
	}
	for _, ev := range audit.all("dropped") {
		dropped[ev.Subject]++
	}
	var badAudit []string
	for u, rv := range byUser {
		if revokedEvents[u] != 1 || dropped[u] != 1 {
			badAudit = append(badAudit, fmt.Sprintf("%s (%s): %d revoked, %d dropped", u, rv.method, revokedEvents[u], dropped[u]))
		}
	}
	slices.Sort(badAudit)
	r.count("audit: %s", audit.summary())
	r.must(len(badAudit) == 0, "audit events not one revoked and one dropped per revoked user: %s", strings.Join(badAudit, "; "))
	r.must(len(audit.all("revocation_failed")) == 0, "revocation_failed audited %d times", len(audit.all("revocation_failed")))

	// Once the load has stopped, every user not revoked still passes.
	var kept []string
	for _, u := range names {
		if byUser[u] == nil {
			kept = append(kept, cookies[u])
		}
	}
	after, afterErr := lostElevations(ctx, front, kept)
	r.lostElevations += after
	r.must(after == 0, "%d of %d elevations not revoked refused after the load: %v", after, len(kept), afterErr)
	r.statuses = statusCounts(ss.all)

	for _, rp := range replicas {
		rp.close()
	}
	bal.close()
	hc.CloseIdleConnections()
	idpTransport.CloseIdleConnections()
	checkOwnGoroutines(r, before)
	return r, nil
}

// stepUpAll steps the users up through base, a few at a time, and returns
// their session cookies.
func stepUpAll(ctx context.Context, base string, users []string) (map[string]string, error) {
	var mu sync.Mutex
	cookies := map[string]string{}
	var errs []error
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for u := range work {
				c, err := stepUp(ctx, base, u)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					cookies[u] = c
				}
				mu.Unlock()
			}
		})
	}
	for _, u := range users {
		work <- u
	}
	close(work)
	wg.Wait()
	return cookies, errors.Join(errs...)
}

// revoke sends one revocation as its method says and returns the answer
// to the IdP (0 for RevokeSubject), or why it was not acknowledged.
func revoke(ctx context.Context, rv *aRevocation, idp *stepuptest.Provider, front string, replicas []*replica, hc *http.Client) (int, error) {
	if rv.method == byOperator {
		return 0, replicas[rv.replica].su.RevokeSubject(ctx, rv.user)
	}
	sids := idp.Sessions(rv.user)
	if len(sids) != 1 {
		return 0, fmt.Errorf("%d provider sessions", len(sids))
	}
	var status int
	var err error
	want := http.StatusAccepted
	switch rv.method {
	case byLogoutToken:
		var token string
		if token, err = idp.LogoutToken(drillClient, stepuptest.LogoutClaims{Subject: rv.user, SessionID: sids[0]}); err != nil {
			return 0, err
		}
		status, _, err = stepuptest.PostLogoutToken(ctx, hc, front+logoutPath, token)
		want = http.StatusOK
	case bySessionRevoked, byCredentialChange:
		ev := stepuptest.SecurityEvent{Audience: drillAudience, Type: stepuptest.CAEPSessionRevoked,
			Subject: stepuptest.SessionSubject(idp.Issuer(), rv.user, sids[0])}
		if rv.method == byCredentialChange {
			ev.Type, ev.Subject = stepuptest.CAEPCredentialChange, stepuptest.UserSubject(idp.Issuer(), rv.user)
			ev.Event = map[string]any{"credential_type": "password", "change_type": "update"}
		}
		var set string
		if set, err = idp.SecurityEventToken(ev); err != nil {
			return 0, err
		}
		status, _, err = stepuptest.PushSecurityEvent(ctx, hc, front+pushPath, set, "")
	}
	if err == nil && status != want {
		err = fmt.Errorf("answered %d", status)
	}
	return status, err
}

// revocationLatencies renders, per method, how long revocations took to
// be acknowledged: "back-channel logout 10, p50/max 3.1 ms/8.2 ms; ...".
func revocationLatencies(plan []*aRevocation) string {
	var parts []string
	for _, m := range revocationMethods {
		var d []time.Duration
		for _, rv := range plan {
			if rv.method == m && rv.err == nil {
				d = append(d, rv.acked-rv.sent)
			}
		}
		slices.Sort(d)
		parts = append(parts, fmt.Sprintf("%s %d, acknowledged in p50/max %v/%v", m, len(d), quantile(d, .5), quantile(d, 1)))
	}
	return strings.Join(parts, "; ")
}

// relativeQuantile renders the q-quantile of sorted durations as
// relative does, "none" when there are none.
func relativeQuantile(sorted []time.Duration, q float64) string {
	if len(sorted) == 0 {
		return "none"
	}
	return relative(pick(sorted, q))
}

// quantile renders the q-quantile of sorted durations, "none" when there
// are none.
func quantile(sorted []time.Duration, q float64) string {
	if len(sorted) == 0 {
		return "none"
	}
	return ms(pick(sorted, q))
}

// pick returns the q-quantile of sorted, which is not empty.
func pick(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
