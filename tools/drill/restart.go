package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// restartClients is the restart drill's load: 16 connections, four per
// stream.
const restartClients = 16

// restartMidStepUp kills the console (SIGKILL) after it challenged a
// session and before the callback, starts a new process on the same
// address and store, and completes the step-up there: the pending
// challenge lives in the shared session store, so the callback must be
// granted. It runs on Redis, then on PostgreSQL.
//
// The console's embedded IdP would die with it, so the IdP runs in a
// console process of its own that serves nothing else (-base-url names
// the console under test, whose redirect URIs it then registers), and the
// consoles under test use it with -issuer and the same client secret.
func restartMidStepUp(ctx context.Context, e *env) (*result, error) {
	r := &result{
		load:  fmt.Sprintf("%d connections, closed loop, over /ping and /admin/ping with 2 elevated sessions, /admin/ping with a logged-in session and with none; chi-admin on Redis, then on PostgreSQL, its dev IdP in a process of its own", restartClients),
		fault: "chi-admin killed (SIGKILL) once it has challenged a session and redirected it to the IdP; the user signs in at the IdP meanwhile; a new chi-admin on the same address and store receives the callback",
	}
	var statuses, recoveries []string
	for _, kind := range []string{"Redis", "PostgreSQL"} {
		var spec string
		var pids func() []int
		if kind == "Redis" {
			redis, err := startRedisStore(ctx, e, "restart-redis", false)
			if err != nil {
				return nil, err
			}
			defer redis.Kill()
			spec, pids = "redis://"+redis.Addr+"/0", func() []int { return []int{redis.Pid()} }
		} else {
			pg, err := startPostgresStore(ctx, e, "restart-postgres")
			if err != nil {
				return nil, err
			}
			defer pg.Stop()
			spec, pids = pg.DSN, func() []int { return append([]int{pg.Pid()}, console.ChildPids(pg.Pid())...) }
		}
		st, rec, err := restartOn(ctx, e, r, kind, spec, pids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		statuses = append(statuses, kind+": "+st)
		recoveries = append(recoveries, kind+": "+rec)
	}
	r.statuses = strings.Join(statuses, "; ")
	r.recovery = strings.Join(recoveries, "; ")
	return r, nil
}

func restartOn(ctx context.Context, e *env, r *result, kind, spec string, storePids func() []int) (statuses, recovery string, err error) {
	phase := 4 * time.Second
	if e.short {
		phase = time.Second
	}
	appAddr, err := testkit.FreeLoopbackAddr()
	if err != nil {
		return "", "", err
	}
	secret := rand.Text()
	idp, issuer, err := console.StartDevIdP(ctx, console.Command{Path: e.app, Args: []string{
		"-addr", "127.0.0.1:0", "-base-url", "http://" + appAddr, "-dev-idp-addr", "127.0.0.1:0",
		"-client-secret", secret, "-dev-id-token-ttl", "2h", "-session-store", "memory"}})
	if err != nil {
		return "", "", err
	}
	defer idp.Stop()
	args := []string{"-addr", appAddr, "-issuer", issuer, "-client-id", "chi-admin", "-client-secret", secret,
		"-acr", console.StrongACR, "-session-store", spec}

	p1, err := startConsole(ctx, e, args...)
	if err != nil {
		return "", "", err
	}
	defer p1.Stop()
	s, err := newSessions(ctx, p1.url, 2)
	if err != nil {
		return "", "", err
	}
	clients := mixedClients(restartClients, p1.url, s)
	l := startLoad(ctx, clients)
	p1.audit.setClock(l.now)
	others, err := cpuShare(func() []int { return append([]int{p1.Pid}, storePids()...) }, func() error { return sleep(ctx, phase) })
	if err != nil {
		l.stop()
		return "", "", err
	}
	if r.others == "" {
		r.others = kind + " " + others
	} else {
		r.others += ", " + kind + " " + others
	}

	// The challenge, on process 1.
	b := console.NewBrowser()
	defer b.Close()
	if err := b.LogIn(ctx, p1.url, "alice"); err != nil {
		l.stop()
		return "", "", err
	}
	signIn, err := b.StartStepUp(ctx, p1.url)
	if err != nil {
		l.stop()
		return "", "", err
	}
	challenged := len(auditFor(p1.audit.during("challenge"), "alice"))
	killed := l.now()
	p1.Kill()
	logf("%s: process 1 challenged alice (%d challenge event) and was killed", kind, challenged)

	// The IdP, while no console runs; the browser stops at the redirect
	// to the callback.
	b.Hold = func(u *url.URL) bool { return u.Host == appAddr && u.Path == "/stepup/callback" }
	held, err := b.SignIn(ctx, signIn, "alice")
	b.Hold = nil
	if err != nil || held.Location == nil {
		l.stop()
		return "", "", fmt.Errorf("signing in at the IdP: %v (ended at %d %s)", err, held.Status, held.URL)
	}

	started := l.now()
	p2, err := startConsole(ctx, e, args...)
	if err != nil {
		l.stop()
		return "", "", err
	}
	defer p2.Stop()
	p2.audit.setClock(l.now)
	ready := l.now()
	logf("%s: process 2 serves after %v", kind, (ready - started).Round(time.Millisecond))
	page, err := b.Do(ctx, http.MethodGet, held.Location.String(), nil)
	if err != nil {
		l.stop()
		return "", "", fmt.Errorf("the callback on process 2: %w", err)
	}
	granted := page.Status == http.StatusOK && page.URL.Path == "/admin" && strings.Contains(page.Body, `id="admin-title"`)
	grants := len(auditFor(p2.audit.during("granted"), "alice"))
	stepped := console.CheckPong(ctx, p2.url+"/admin/ping", b.Cookie(p2.url))
	sleep(ctx, phase)
	ss := samples{clients: clients, all: l.stop()}
	end := l.now()

	r.must(challenged == 1, "%s: process 1 audited %d challenges for alice, want 1", kind, challenged)
	r.must(granted, "%s: the callback on process 2 ended at %d %s, not on the admin page", kind, page.Status, page.URL)
	r.must(grants == 1, "%s: process 2 audited %d grants for alice, want 1 (%s)", kind, grants, p2.audit.summary())
	r.must(stepped == nil, "%s: alice's session after the callback: %v", kind, stepped)
	r.count("%s: challenge audited by process 1: %d; process 1 killed as soon as it had answered; process 2 serving %v after the kill; callback on process 2: %d %s, granted audited by process 2: %d; /admin/ping with the new session: %s",
		kind, challenged, ms(ready-killed), page.Status, page.URL.Path, grants, errString(stepped))

	ge := ss.stream(guardedElevated)
	wrong := count(ss.stream(guardedLoggedIn), func(x sample) bool { return x.status == 200 }) +
		count(ss.stream(guardedAnon), func(x sample) bool { return x.status == 200 })
	r.wronglyGranted += wrong
	r.must(wrong == 0, "%s: %d guarded requests without elevation answered 200", kind, wrong)
	lost, lostErr := lostElevations(ctx, p2.url, s.elevated)
	r.lostElevations += lost
	r.must(lost == 0, "%s: %d of %d elevations granted by process 1 lost on process 2: %v", kind, lost, len(s.elevated), lostErr)
	outside := count(ss.all, func(x sample) bool { return x.failed() && (x.done < killed || x.sent >= ready+errorGrace) })
	r.must(outside == 0, "%s: %d errors outside the restart", kind, outside)
	r.count("%s: /admin/ping for the elevated sessions: before the kill %s; until process 2 served %s; after %s",
		kind, statusCounts(sentIn(ge, 0, killed)), statusCounts(sentIn(ge, killed, ready)), statusCounts(sentIn(ge, ready, end)))
	recovery = "never"
	if good, ok := first(ge, func(x sample) bool { return x.status == 200 && x.sent >= started }); ok {
		recovery = fmt.Sprintf("%v from starting process 2 to its first 200 on /admin/ping (%v of which it took to start)",
			ms(good.done-started), ms(ready-started))
	} else {
		r.must(false, "%s: no guarded request succeeded on process 2", kind)
	}
	checkStderr(r, p1)
	checkStderr(r, p2)
	if err := checkGoroutines(ctx, e, r, p2); err != nil {
		return "", "", err
	}
	return statusCounts(ss.all), recovery, nil
}

// auditFor keeps the events about subject.
func auditFor(events []auditEvent, subject string) []auditEvent {
	var out []auditEvent
	for _, e := range events {
		if e.Subject == subject {
			out = append(out, e)
		}
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "200 pong"
	}
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err.Error()
	}
	return err.Error()
}
