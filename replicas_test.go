package stepup_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
	"github.com/oidc-stepup/stepup/stores/postgresstore"
)

// sharedStores are the session stores two replicas can share, each as two
// store values standing for the replicas' own connections: one memstore
// (replicas in one process), two clients on one real redis-server, on a
// real Redis Cluster and behind real Sentinels, two pools on one real
// PostgreSQL.
func sharedStores(t *testing.T) map[string]func(t *testing.T) [2]scs.Store {
	return map[string]func(t *testing.T) [2]scs.Store{
		"memory": func(t *testing.T) [2]scs.Store {
			m := memstore.NewWithCleanupInterval(0)
			return [2]scs.Store{m, m}
		},
		"redis": func(t *testing.T) [2]scs.Store {
			addr := testkit.StartRedis(t)
			return [2]scs.Store{newRedisStore(t, "redis://"+addr), newRedisStore(t, "redis://"+addr)}
		},
		"redis-cluster": func(t *testing.T) [2]scs.Store {
			url := redisTopologies()["cluster"](t).url
			return [2]scs.Store{newRedisStore(t, url), newRedisStore(t, url)}
		},
		"redis-sentinel": func(t *testing.T) [2]scs.Store {
			url := redisTopologies()["sentinel"](t).url
			return [2]scs.Store{newRedisStore(t, url), newRedisStore(t, url)}
		},
		"postgres": func(t *testing.T) [2]scs.Store {
			dsn := testkit.StartPostgres(t)
			a, b := openDB(t, dsn), openDB(t, dsn)
			if _, err := a.Exec(sessionsSchema("sessions")); err != nil {
				t.Fatal(err)
			}
			return [2]scs.Store{postgresstore.NewWithCleanupInterval(a, 0), postgresstore.NewWithCleanupInterval(b, 0)}
		},
	}
}

// onTwoReplicas runs test, in parallel, once for each kind of shared
// store, with an application and a second replica of it on that store.
func onTwoReplicas(t *testing.T, test func(t *testing.T, name string, a, b *app)) {
	for name, stores := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := stores(t)
			a := newApp(t, appOptions{store: s[0]})
			test(t, name, a, a.replica(t, s[1]))
		})
	}
}

// TestLogoutReceivedByOneReplicaEndsTheElevationOnAnother: the IdP's
// logout token reaches replica A; the browser's next request goes to
// replica B, which refuses the elevation.
func TestLogoutReceivedByOneReplicaEndsTheElevationOnAnother(t *testing.T) {
	t.Parallel()
	onTwoReplicas(t, func(t *testing.T, name string, a, b *app) {
		browser, sid := elevatedAs(t, a, "alice")
		if !browser.on(b).elevated(t) {
			t.Fatal("replica B does not honour the elevation granted on A")
		}
		if status, body := postLogout(t, a, logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", SessionID: sid})); status != http.StatusOK {
			t.Fatalf("logout at A: %d %s", status, body)
		}
		if browser.on(b).elevated(t) {
			t.Fatal("replica B honours an elevation the IdP logged out at A")
		}
		a.audit.wantReason(t, stepup.EventDropped, stepup.ReasonBackChannelLogout)
	})
}

// TestConcurrentRevocationsOnTwoReplicasLoseNothing: one user is elevated
// from eight IdP sessions; the IdP logs each session out, the tokens
// arriving at once, half at each replica, while an operator revokes
// another user on both. Every revocation lands: none of the eight
// elevations survives, and none of the other user's. A lost update of the
// user's revocation record would leave one elevation standing.
func TestConcurrentRevocationsOnTwoReplicasLoseNothing(t *testing.T) {
	t.Parallel()
	const sessions = 8
	onTwoReplicas(t, func(t *testing.T, name string, a, b *app) {
		browsers := make([]*browser, sessions)
		sids := make([]string, sessions)
		for i := range browsers {
			browsers[i], sids[i] = elevatedAs(t, a, "alice")
		}
		bobs := []*browser{}
		for range 2 {
			bob, _ := elevatedAs(t, a, "bob")
			bobs = append(bobs, bob)
		}
		var wg sync.WaitGroup
		for i, sid := range sids {
			wg.Go(func() {
				target := []*app{a, b}[i%2]
				token := logoutToken(t, a, stepuptest.LogoutClaims{SessionID: sid})
				if status, body := postLogout(t, target, token); status != http.StatusOK {
					t.Errorf("logout %d: %d %s", i, status, body)
				}
			})
		}
		for _, r := range []*app{a, b} {
			wg.Go(func() {
				if err := r.su.RevokeSubject(t.Context(), "bob"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i, br := range browsers {
			if br.on([]*app{a, b}[i%2]).elevated(t) {
				t.Errorf("session %d of alice survives its logout", i)
			}
		}
		for _, bob := range bobs {
			if bob.on(b).elevated(t) {
				t.Error("an elevation of bob survives his revocation")
			}
		}
	})
}

// TestGrantsRacingALogoutOnTwoReplicasDoNotSurviveIt: eight step-ups of one
// user complete, half on each replica, while logout tokens naming the
// user, issued after every one of those logins, arrive at both replicas.
// Whatever the order, no elevation survives: a grant either sees the
// logout and is refused, or the logout sees it.
func TestGrantsRacingALogoutOnTwoReplicasDoNotSurviveIt(t *testing.T) {
	t.Parallel()
	const grants = 8
	onTwoReplicas(t, func(t *testing.T, name string, a, b *app) {
		browsers := make([]*browser, grants)
		callbacks := make([]*url.URL, grants)
		for i := range browsers {
			browsers[i] = a.loggedIn(t, "alice")
			callbacks[i] = browsers[i].callback(t)
		}
		var wg sync.WaitGroup
		granted := make([]bool, grants)
		for i := range browsers {
			wg.Go(func() {
				r := []*app{a, b}[i%2]
				cb := *callbacks[i]
				u, _ := url.Parse(r.url)
				cb.Host = u.Host
				granted[i] = browsers[i].on(r).peek(t, cb.String()).status == http.StatusSeeOther
			})
		}
		for i, r := range []*app{a, b} {
			wg.Go(func() {
				token := logoutToken(t, a, stepuptest.LogoutClaims{Subject: "alice", TokenID: fmt.Sprintf("race-%d", i)})
				if status, body := postLogout(t, r, token); status != http.StatusOK {
					t.Errorf("logout at replica %d: %d %s", i, status, body)
				}
			})
		}
		wg.Wait()
		refused := 0
		for i, br := range browsers {
			if !granted[i] {
				refused++
			}
			for _, r := range []*app{a, b} {
				if br.on(r).elevated(t) {
					t.Errorf("grant %d (granted %v) survives the logout on %s", i, granted[i], r.url)
				}
			}
		}
		t.Logf("%s: %d of %d grants were refused at the callback, the rest ended at their next request", name, refused, grants)
	})
}
