package stepup_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stores/redisstore"
)

// redisTopology is a Redis the adapter runs on, started by the test kit:
// the URL Open takes, and what the failover tests need.
type redisTopology struct {
	url string
	// killPrimaryFor kills the primary that holds key (SIGKILL) and
	// returns a function that waits until a replica took its place.
	killPrimaryFor func(t *testing.T, key string) (wait func())
}

// redisTopologies are a Redis Cluster (three primaries, three replicas)
// and a primary with a replica behind three Sentinels. Each is started on
// first use, and once per test that asks.
func redisTopologies() map[string]func(t *testing.T) redisTopology {
	return map[string]func(t *testing.T) redisTopology{
		"cluster": func(t *testing.T) redisTopology {
			c := testkit.StartRedisCluster(t)
			// Any node: the client discovers the others.
			return redisTopology{url: "redis://" + c.Addrs[0], killPrimaryFor: func(t *testing.T, key string) func() {
				n, err := c.PrimaryFor(key)
				if err != nil {
					t.Fatal(err)
				}
				n.Kill()
				return func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := c.WaitForFailover(ctx, n); err != nil {
						t.Fatal(err)
					}
				}
			}}
		},
		"sentinel": func(t *testing.T) redisTopology {
			s := testkit.StartRedisSentinel(t)
			url := "redis://" + s.SentinelAddrs[0] + "?master_set=" + s.MasterName
			for _, a := range s.SentinelAddrs[1:] {
				url += "&addr=" + a
			}
			return redisTopology{url: url, killPrimaryFor: func(t *testing.T, _ string) func() {
				old := s.Primary()
				old.Kill()
				return func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := s.WaitForFailover(ctx, old.Addr); err != nil {
						t.Fatal(err)
					}
				}
			}}
		},
	}
}

// TestRedisStoreOnClusterAndSentinel runs what every adapter must do on a
// Redis Cluster and behind Sentinel, two clients standing for two
// replicas, and then a failover with a revocation just acknowledged: it
// must survive.
func TestRedisStoreOnClusterAndSentinel(t *testing.T) {
	t.Parallel()
	for name, start := range redisTopologies() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			topo := start(t)
			stores := [2]*redisstore.RedisStore{newRedisStore(t, topo.url), newRedisStore(t, topo.url)}
			t.Run("Adapter", func(t *testing.T) {
				testAtomicStore(t, atomicStoreKit{
					replicas: [2]stepup.AtomicStore{stores[0], stores[1]},
					expiry: func(t *testing.T, token string) time.Time {
						t.Helper()
						ms, err := stores[0].Client().Do(t.Context(), stores[0].Client().B().Pexpiretime().Key("scs:session:"+token).Build()).AsInt64()
						if err != nil || ms < 0 {
							t.Fatalf("PEXPIRETIME: %d, %v", ms, err)
						}
						return time.UnixMilli(ms)
					},
				})
			})
			t.Run("AllReadsEveryNode", func(t *testing.T) {
				t.Parallel()
				want := map[string]string{}
				for range 20 { // spread over the Cluster's slots
					token := newToken()
					want[token] = "session " + token
					if err := stores[0].Commit(token, []byte(want[token]), hourFromNow()); err != nil {
						t.Fatal(err)
					}
				}
				all, err := stores[1].All()
				if err != nil {
					t.Fatal(err)
				}
				for token, v := range want {
					if string(all[token]) != v {
						t.Errorf("All()[%s] = %q, want %q", token, all[token], v)
					}
				}
			})
			t.Run("UpdateReplicatedWaitsForAReplica", func(t *testing.T) {
				t.Parallel()
				token := newToken()
				if err := stores[0].UpdateReplicated(context.Background(), token, func(cur []byte, found bool) ([]byte, time.Time, error) {
					return appendItem(cur, found, "revoked"), hourFromNow(), nil
				}); err != nil {
					t.Fatalf("UpdateReplicated with a replica: %v", err)
				}
				strict := redisstore.New(stores[0].Client())
				strict.Replicas, strict.ReplicaTimeout = 2, 100*time.Millisecond // there is one
				err := strict.UpdateReplicated(context.Background(), token, func(cur []byte, found bool) ([]byte, time.Time, error) {
					return appendItem(cur, found, "again"), hourFromNow(), nil
				})
				if !errors.Is(err, redisstore.ErrNotReplicated) {
					t.Fatalf("UpdateReplicated waiting for 2 of 1 replicas: %v, want ErrNotReplicated", err)
				}
			})
		})
	}
}

// TestAcknowledgedRevocationsSurviveAFailover: a revocation written with
// UpdateReplicated, as stepup writes revocations, is on a replica when it
// returns; the primary is killed at once (SIGKILL, no persistence), the
// replica is promoted, and the revocation is still there. A grant's plain
// Update carries no such promise (reliability.md has the counts with and
// without the wait).
func TestAcknowledgedRevocationsSurviveAFailover(t *testing.T) {
	t.Parallel()
	for name, start := range redisTopologies() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			topo := start(t)
			store := newRedisStore(t, topo.url)
			tokens := make([]string, 20)
			for i := range tokens {
				tokens[i] = newToken()
				if err := store.UpdateReplicated(context.Background(), tokens[i], func(cur []byte, found bool) ([]byte, time.Time, error) {
					return []byte("revoked " + tokens[i]), hourFromNow(), nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			wait := topo.killPrimaryFor(t, "scs:session:"+tokens[len(tokens)-1])
			wait()
			lost := 0
			for _, token := range tokens {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				b, found, err := store.FindCtx(ctx, token)
				cancel()
				if err != nil {
					t.Fatalf("after the failover: %v", err)
				}
				if !found || !strings.HasPrefix(string(b), "revoked ") {
					lost++
				}
			}
			if lost != 0 {
				t.Errorf("%d of %d acknowledged revocations lost in the failover", lost, len(tokens))
			}
		})
	}
}

// TestReplicatedUpdateFollowsASlotThatMoved: the slot of a revocation's key
// moves to another primary after the client learned the cluster's map (as
// a failover or a resharding moves it); UpdateReplicated, whose dedicated
// connection rueidis does not redirect for a write, opens a new one on the
// refreshed map instead of failing with MOVED. The failover drill found it:
// a RevokeSubject refused with MOVED 216 ms after the cluster was healthy.
func TestReplicatedUpdateFollowsASlotThatMoved(t *testing.T) {
	t.Parallel()
	c := testkit.StartRedisCluster(t)
	store := newRedisStore(t, "redis://"+c.Addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token := newToken()
	key := "scs:session:" + token
	write := func(v string) error {
		return store.UpdateReplicated(ctx, token, func([]byte, bool) ([]byte, time.Time, error) { return []byte(v), hourFromNow(), nil })
	}
	if err := write("first"); err != nil {
		t.Fatal(err)
	}
	from, err := c.PrimaryFor(key)
	if err != nil {
		t.Fatal(err)
	}
	var to *testkit.RedisNode
	var primaries []*testkit.RedisNode
	for _, n := range c.Nodes {
		if ok, err := n.IsPrimary(ctx); err != nil {
			t.Fatal(err)
		} else if ok {
			primaries = append(primaries, n)
			if n != from && to == nil {
				to = n
			}
		}
	}
	slot, err := from.Do(ctx, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(to.Addr, ":")
	for _, step := range [][]string{
		{to.Addr, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.ID},
		{from.Addr, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID},
		{from.Addr, "MIGRATE", host, port, key, "0", "5000"},
	} {
		n := from
		if step[0] == to.Addr {
			n = to
		}
		if _, err := n.Do(ctx, step[1:]...); err != nil {
			t.Fatalf("%v: %v", step[1:], err)
		}
	}
	for _, n := range primaries {
		if _, err := n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.ID); err != nil {
			t.Fatalf("SETSLOT NODE on %s: %v", n.Addr, err)
		}
	}
	if err := write("second"); err != nil {
		t.Fatalf("UpdateReplicated after the slot moved: %v", err)
	}
	b, found, err := store.FindCtx(ctx, token)
	if err != nil || !found || string(b) != "second" {
		t.Fatalf("after the move: %q %v %v", b, found, err)
	}
}
