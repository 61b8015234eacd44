package testkit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestRedisClusterServesEverySlotAndFailsOver is what the Redis Cluster
// failover drill relies on: keys in every primary's slots are served, a
// key acknowledged by its replica (WAIT 1) is still there after its
// primary's SIGKILL, served by the promoted replica, and the killed node
// started again rejoins as a replica.
func TestRedisClusterServesEverySlotAndFailsOver(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	c := StartRedisCluster(t)
	t.Logf("six nodes, cluster created and healthy in %v", time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	if len(c.Nodes) != 6 || len(c.Addrs) != 6 {
		t.Fatalf("%d nodes, %d addresses; want 6", len(c.Nodes), len(c.Addrs))
	}
	var primaries []*RedisNode
	slots := 0
	for _, n := range c.Nodes {
		if n.ID == "" {
			t.Fatalf("%s: no cluster node ID", n.Addr)
		}
		primary, err := n.IsPrimary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ranges, err := n.Slots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if primary != (len(ranges) > 0) {
			t.Fatalf("%s: primary %v, slots %v", n.Addr, primary, ranges)
		}
		if primary {
			primaries = append(primaries, n)
		}
		for _, r := range ranges {
			slots += r.Last - r.First + 1
		}
	}
	if len(primaries) != 3 || slots != 16384 {
		t.Fatalf("%d primaries serving %d slots; want 3 and 16384", len(primaries), slots)
	}

	// Write through redis-cli -c, which follows MOVED, until every primary
	// holds a key, and read each back from the primary of its slot.
	keys := map[*RedisNode]string{}
	for i := 0; len(keys) < 3; i++ {
		key := fmt.Sprintf("session:%d", i)
		if reply, err := c.Do(ctx, "SET", key, "v"+key); err != nil || reply != "OK" {
			t.Fatalf("SET %s: %q, %v", key, reply, err)
		}
		p, err := c.PrimaryFor(key)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := p.Do(ctx, "GET", key); err != nil || got != "v"+key {
			t.Fatalf("GET %s on %s: %q, %v", key, p.Addr, got, err)
		}
		if _, ok := keys[p]; !ok {
			keys[p] = key
		}
	}

	const key, value = "session:failover", "elevated"
	old, err := c.PrimaryFor(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SetAndWait(ctx, key, value, 1); err != nil {
		t.Fatal(err)
	}
	old.Kill()
	killed := time.Now()
	if err := c.WaitForFailover(ctx, old); err != nil {
		t.Fatal(err)
	}
	t.Logf("the replica took the killed primary's slots over in %v", time.Since(killed).Round(time.Millisecond))

	promoted, err := c.PrimaryFor(key)
	if err != nil {
		t.Fatal(err)
	}
	if promoted == old || slices.Contains(primaries, promoted) {
		t.Fatalf("the key's primary is %s, not the killed primary's replica", promoted.Addr)
	}
	if got, err := promoted.Do(ctx, "GET", key); err != nil || got != value {
		t.Fatalf("GET %s on the promoted %s: %q, %v; want %q", key, promoted.Addr, got, err, value)
	}
	if got, err := c.Do(ctx, "GET", key); err != nil || got != value {
		t.Fatalf("GET %s through the cluster: %q, %v; want %q", key, got, err, value)
	}

	restarted := time.Now()
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("the killed primary, started again, is a replica in sync after %v", time.Since(restarted).Round(time.Millisecond))
	if primary, err := old.IsPrimary(ctx); err != nil || primary {
		t.Fatalf("the restarted node: primary %v, %v; want a replica", primary, err)
	}
}

// TestRedisSentinelPromotesTheReplica is what the Sentinel failover drill
// relies on: a write the replica acknowledged (WAIT 1) is still there
// after the primary's SIGKILL, on the replica the sentinels promote; and
// the old primary, started again, rejoins as its replica, in sync.
func TestRedisSentinelPromotesTheReplica(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	s := StartRedisSentinel(t)
	t.Logf("primary, replica and three sentinels ready in %v", time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	if s.MasterName != "mymaster" || len(s.SentinelAddrs) != 3 {
		t.Fatalf("master name %q, sentinels %v", s.MasterName, s.SentinelAddrs)
	}
	if addr, err := s.CurrentPrimary(ctx); err != nil || addr != s.Primary().Addr {
		t.Fatalf("CurrentPrimary: %q, %v; want %s", addr, err, s.Primary().Addr)
	}
	// The value has what redis-cli's standard input must have quoted.
	const key, value = "session:failover", `elevated "acr=mfa" \ 1`
	if err := s.Primary().SetAndWait(ctx, key, value, 1); err != nil {
		t.Fatal(err)
	}
	s.Primary().Kill()
	killed := time.Now()
	if err := s.WaitForFailover(ctx, s.Primary().Addr); err != nil {
		t.Fatal(err)
	}
	t.Logf("the sentinels promoted the replica in %v", time.Since(killed).Round(time.Millisecond))

	if addr, err := s.CurrentPrimary(ctx); err != nil || addr != s.Replica().Addr {
		t.Fatalf("CurrentPrimary after the failover: %q, %v; want the replica %s", addr, err, s.Replica().Addr)
	}
	if primary, err := s.Replica().IsPrimary(ctx); err != nil || !primary {
		t.Fatalf("the replica: primary %v, %v", primary, err)
	}
	if got, err := s.Replica().Do(ctx, "GET", key); err != nil || got != value {
		t.Fatalf("GET %s on the promoted replica: %q, %v; want %q", key, got, err, value)
	}

	// The old primary, started again empty, becomes the new one's replica.
	if err := s.Rejoin(ctx, s.Primary()); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := s.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("the killed primary, started again, is a replica in sync after %v", time.Since(restarted).Round(time.Millisecond))
	if got, err := s.Primary().Do(ctx, "GET", key); err != nil || got != value {
		t.Fatalf("GET %s on the old primary, now a replica: %q, %v; want %q", key, got, err, value)
	}
}
