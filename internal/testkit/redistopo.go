package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis Cluster and Sentinel on loopback ports, from the Debian packages
// redis-server and redis-tools (redis-cli) alone: the cluster is created
// with redis-cli --cluster create, and a sentinel is redis-server CONF
// --sentinel (Debian's redis-sentinel package only adds a name for the
// same binary). Both fail over within about three seconds instead of the
// defaults' tens: a node or a primary is held down after one second
// without an answer (cluster-node-timeout, down-after-milliseconds), and a
// primary hands a new replica its data at once ([redisDataArgs]).
//
// In a test, a cluster client gets every node as its seeds, a Sentinel
// client the sentinels and the master name; with rueidis:
//
//	c := testkit.StartRedisCluster(t) // ready: every slot served, every replica in sync
//	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs})
//	...
//	n, err := c.PrimaryFor(key)        // the primary of key's slot
//	err = n.SetAndWait(ctx, key, v, 1) // on its replica too
//	n.Kill()
//	err = c.WaitForFailover(ctx, n) // its replica serves the slots now
//	err = n.Start(ctx)              // it rejoins as a replica
//	err = c.WaitHealthy(ctx)
//
//	s := testkit.StartRedisSentinel(t)
//	client, err := rueidis.NewClient(rueidis.ClientOption{
//		InitAddress: s.SentinelAddrs,
//		Sentinel:    rueidis.SentinelOption{MasterSet: s.MasterName},
//	})
//	...
//	err = s.Primary().SetAndWait(ctx, key, v, 1)
//	s.Primary().Kill()
//	err = s.WaitForFailover(ctx, s.Primary().Addr)
//	addr, err := s.CurrentPrimary(ctx) // s.Replica().Addr
//	err = s.Rejoin(ctx, s.Primary())   // started again as its replica
//	err = s.WaitHealthy(ctx)
//
// The drills, which have no testing.T, call [StartRedisClusterServers] and
// [StartRedisSentinelServers] with the binaries' paths and a directory of
// their own, and Kill the topology when done.
//
// Nodes do not persist by default: a failover keeps what the replica
// acknowledged (WAIT), which is what Redis promises. [RedisAppendOnly]
// makes every data node fsync each write before it answers, for a drill
// that kills a primary and its replica both; here it costs about 1 ms a
// write (0.3 ms without), and start-up and failover take as long.

const (
	// redisDownAfter is how long a cluster node (cluster-node-timeout) or
	// a sentinel (down-after-milliseconds) waits for an answer before it
	// holds a node down.
	redisDownAfter = "1000"
	// sentinelFailoverTimeout bounds one failover attempt; a failed one is
	// retried after twice this.
	sentinelFailoverTimeout = "3000"
	// redisPoll is how often the waits ask again.
	redisPoll = 50 * time.Millisecond
)

// redisDataArgs are the arguments of every redis-server that holds data in
// a topology, where a replica may become a primary. A primary streams its
// data to a new replica at once instead of waiting five seconds for others
// (repl-diskless-sync-delay), and pings its replicas every second instead
// of every ten (repl-ping-replica-period): until a replica's replication
// offset has moved, which an idle primary's ping does, Redis 7.0's CLUSTER
// SHARDS reports it "loading" although it is in sync.
var redisDataArgs = []string{"--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"}

// redisArgs makes [StartRedisServer] start redis-server with conf as its
// configuration file (when not "") and args after its usual arguments.
func redisArgs(conf string, args ...string) RedisOption {
	return func(r *Redis) { r.conf, r.args = conf, args }
}

// RedisNode is one redis-server of a [RedisCluster] or a [RedisSentinel]:
// Kill stops it with SIGKILL and Start starts it again with the same
// address, directory and arguments. A cluster node rejoins as what its
// nodes file says; a data node of a Sentinel topology starts as what it
// was started as at first, and the sentinels reconfigure it.
//
// Start a killed primary again only after the failover (WaitForFailover),
// or with [RedisAppendOnly]: a primary without persistence that is back
// before it is held down (one second) is an empty primary, and its replica
// copies it, as the Redis replication documentation warns.
type RedisNode struct {
	*Redis
	// ID is the node's cluster node ID, kept in its nodes file across Kill
	// and Start; "" outside a cluster.
	ID  string
	cli string
}

// Do runs one command on the node through redis-cli and returns the reply
// as redis-cli prints it to a pipe: a string or number as is, an array
// one element a line, nil as "". An error reply is an error.
func (n *RedisNode) Do(ctx context.Context, args ...string) (string, error) {
	return redisCLI(ctx, n.cli, n.Addr, "", args...)
}

// IsPrimary reports whether the node holds itself a primary (ROLE).
func (n *RedisNode) IsPrimary(ctx context.Context) (bool, error) {
	role, err := n.Do(ctx, "ROLE")
	if err != nil {
		return false, err
	}
	first, _, _ := strings.Cut(role, "\n")
	return first == "master", nil
}

// SetAndWait sets key to value on the node, which must be the key's
// primary, and waits (WAIT, on the same connection) until replicas replicas
// have acknowledged it, so that a failover keeps it. It fails when fewer
// do within two seconds.
func (n *RedisNode) SetAndWait(ctx context.Context, key, value string, replicas int) error {
	script := fmt.Sprintf("SET %s %s\nWAIT %d 2000\n", redisQuote(key), redisQuote(value), replicas)
	out, err := redisCLI(ctx, n.cli, n.Addr, script)
	if err != nil {
		return err
	}
	set, acked, _ := strings.Cut(out, "\n")
	if set != "OK" {
		return fmt.Errorf("redis: SET on %s: %q", n.Addr, set)
	}
	if got, err := strconv.Atoi(acked); err != nil || got < replicas {
		return fmt.Errorf("redis: WAIT on %s: %q replicas acknowledged, want %d", n.Addr, acked, replicas)
	}
	return nil
}

// Slots returns the slots the node serves as a primary, as it sees the
// cluster itself; none when it is a replica.
func (n *RedisNode) Slots(ctx context.Context) ([]SlotRange, error) {
	shards, err := clusterShards(ctx, n)
	if err != nil {
		return nil, err
	}
	for _, s := range shards {
		if m := s.primary(); m != nil && m.ID == n.ID && m.Health == "online" {
			return s.Slots, nil
		}
	}
	return nil, nil
}

// SlotRange is the hash slots First to Last, both included.
type SlotRange struct{ First, Last int }

// RedisCluster is a Redis Cluster of six nodes on loopback ports: three
// primaries sharing the 16384 hash slots, each with one replica. With
// cluster-node-timeout at one second, a killed primary's replica takes
// over within about three.
type RedisCluster struct {
	Addrs []string // every node's address, in Nodes' order
	Nodes []*RedisNode
	cli   string
}

// StartRedisClusterServers starts six redis-server (bin) nodes with their
// files under dir, joins them into a cluster with redis-cli (cli) and
// waits until every node holds every slot served and every replica in
// sync. opts apply to every node: [RedisAppendOnly] makes each persist
// every write before it answers.
func StartRedisClusterServers(ctx context.Context, bin, cli, dir string, opts ...RedisOption) (*RedisCluster, error) {
	c := &RedisCluster{cli: cli}
	if err := c.start(ctx, bin, dir, opts); err != nil {
		c.Kill()
		return nil, err
	}
	return c, nil
}

func (c *RedisCluster) start(ctx context.Context, bin, dir string, opts []RedisOption) error {
	ports, err := freeLoopbackPorts(12) // six clients' and six cluster buses'
	if err != nil {
		return err
	}
	for i := range 6 {
		port, bus := ports[2*i], ports[2*i+1]
		ndir := filepath.Join(dir, "node-"+port)
		if err := os.Mkdir(ndir, 0o700); err != nil {
			return err
		}
		args := append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(ndir, "nodes-"+port+".conf"),
			"--cluster-node-timeout", redisDownAfter,
			"--cluster-port", bus,
		}, redisDataArgs...)
		r, err := StartRedisServer(ctx, bin, ndir, net.JoinHostPort("127.0.0.1", port), append(slices.Clone(opts), redisArgs("", args...))...)
		if err != nil {
			return err
		}
		n := &RedisNode{Redis: r, cli: c.cli}
		c.Nodes, c.Addrs = append(c.Nodes, n), append(c.Addrs, r.Addr)
		if n.ID, err = n.Do(ctx, "CLUSTER", "MYID"); err != nil {
			return err
		}
	}
	create := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, c.cli, create...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return c.WaitHealthy(ctx)
}

// StartRedisCluster runs a [RedisCluster] for the test, ready, and kills
// it when the test ends. opts apply to every node. Outside CI a missing
// redis-server or redis-cli skips the test; under CI it fails it.
func StartRedisCluster(t testing.TB, opts ...RedisOption) *RedisCluster {
	t.Helper()
	bin, cli := RequireTool(t, "redis-server"), RequireTool(t, "redis-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := StartRedisClusterServers(ctx, bin, cli, t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

// Kill kills every node.
func (c *RedisCluster) Kill() {
	for _, n := range c.Nodes {
		n.Kill()
	}
}

// Do runs one command on the cluster through redis-cli -c, which follows
// MOVED and ASK redirections, and returns the reply as [RedisNode.Do] does.
func (c *RedisCluster) Do(ctx context.Context, args ...string) (string, error) {
	var err error
	for _, n := range c.Nodes {
		var out string
		if out, err = redisCLI(ctx, c.cli, n.Addr, "", append([]string{"-c"}, args...)...); !isConnRefused(err) {
			return out, err
		}
	}
	return "", err
}

// PrimaryFor returns the node that serves key's hash slot as a primary, as
// the first node that answers sees the cluster.
func (c *RedisCluster) PrimaryFor(key string) (*RedisNode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var lastErr error
	for _, n := range c.Nodes {
		reply, err := RedisCommand(n.Addr, "CLUSTER", "KEYSLOT", key)
		if err != nil {
			lastErr = err
			continue
		}
		slot, err := strconv.Atoi(reply)
		if err != nil {
			return nil, fmt.Errorf("redis: CLUSTER KEYSLOT answered %q", reply)
		}
		shards, err := clusterShards(ctx, n)
		if err != nil {
			lastErr = err
			continue
		}
		for _, s := range shards {
			if !s.serves(slot) {
				continue
			}
			if m := s.primary(); m != nil && m.Health == "online" {
				if p := c.node(m.ID); p != nil {
					return p, nil
				}
			}
			return nil, fmt.Errorf("redis: no primary online serves slot %d, as %s sees it", slot, n.Addr)
		}
		return nil, fmt.Errorf("redis: slot %d is not served, as %s sees it", slot, n.Addr)
	}
	return nil, fmt.Errorf("redis: no cluster node answers: %w", lastErr)
}

// WaitHealthy waits until every node answers and holds the cluster ok
// (CLUSTER INFO), every slot served by a primary online and every
// primary's replica online, in sync (CLUSTER SHARDS). A drill that
// started a killed node again waits for this before its next fault.
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	return waitFor(ctx, "the cluster to be healthy", func(ctx context.Context) error { return c.check(ctx, nil) })
}

// WaitForFailover waits until every node but killed holds the cluster ok
// again, with killed serving no slot and every slot served by a primary
// online: for a killed primary, until its replica has taken its slots
// over. It does not wait for killed's own view, nor for replicas.
func (c *RedisCluster) WaitForFailover(ctx context.Context, killed *RedisNode) error {
	return waitFor(ctx, "a failover from "+killed.Addr, func(ctx context.Context) error { return c.check(ctx, killed) })
}

// waitFor calls check until it returns nil or ctx ends; the error then
// says what check said last.
func waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis: waiting for %s: %w; last: %v", what, ctx.Err(), err)
		case <-time.After(redisPoll):
		}
	}
}

// check returns why the cluster is not settled, as each node but down sees
// it: settled is cluster_state ok, down (when not nil) serving no slot and
// every slot served by a primary online, and, when down is nil, every node
// online and every primary with a replica online.
func (c *RedisCluster) check(ctx context.Context, down *RedisNode) error {
	for _, n := range c.Nodes {
		if n == down {
			continue
		}
		info, err := n.Do(ctx, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if state, ok := infoField(info, "cluster_state"), infoField(info, "cluster_slots_ok"); state != "ok" || ok != "16384" {
			return fmt.Errorf("%s: cluster_state %s, %s slots ok", n.Addr, state, ok)
		}
		if down == nil {
			if err := replicaInSync(ctx, n); err != nil {
				return err
			}
		}
		shards, err := clusterShards(ctx, n)
		if err != nil {
			return err
		}
		served := 0
		for _, s := range shards {
			for _, r := range s.Slots {
				served += r.Last - r.First + 1
			}
			if len(s.Slots) == 0 {
				continue
			}
			m := s.primary()
			switch {
			case m == nil || m.Health != "online":
				return fmt.Errorf("%s: no primary online for slots %v", n.Addr, s.Slots)
			case down != nil && m.ID == down.ID:
				return fmt.Errorf("%s: %s still serves slots %v", n.Addr, down.Addr, s.Slots)
			case down == nil && !s.hasReplicaOnline():
				return fmt.Errorf("%s: no replica online for slots %v", n.Addr, s.Slots)
			}
		}
		if served != 16384 {
			return fmt.Errorf("%s: %d slots served", n.Addr, served)
		}
		if down == nil {
			for _, s := range shards {
				for _, sn := range s.Nodes {
					if sn.Health != "online" {
						return fmt.Errorf("%s: %s:%d is %s", n.Addr, sn.IP, sn.Port, sn.Health)
					}
				}
			}
		}
	}
	return nil
}

func (c *RedisCluster) node(id string) *RedisNode {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// clusterShard is one entry of CLUSTER SHARDS.
type clusterShard struct {
	Slots []SlotRange
	Nodes []clusterShardNode
}

type clusterShardNode struct {
	ID     string `json:"id"`
	IP     string `json:"ip"`
	Port   int    `json:"port"`
	Role   string `json:"role"`   // master, replica
	Health string `json:"health"` // online, loading, fail
}

func (s clusterShard) primary() *clusterShardNode {
	for i, n := range s.Nodes {
		if n.Role == "master" {
			return &s.Nodes[i]
		}
	}
	return nil
}

func (s clusterShard) hasReplicaOnline() bool {
	for _, n := range s.Nodes {
		if n.Role == "replica" && n.Health == "online" {
			return true
		}
	}
	return false
}

func (s clusterShard) serves(slot int) bool {
	for _, r := range s.Slots {
		if r.First <= slot && slot <= r.Last {
			return true
		}
	}
	return false
}

// clusterShards returns CLUSTER SHARDS as n sees it. redis-cli's --json
// prints the RESP3 reply's maps as JSON objects; slots are a flat list of
// first and last slots.
func clusterShards(ctx context.Context, n *RedisNode) ([]clusterShard, error) {
	out, err := redisCLI(ctx, n.cli, n.Addr, "", "--json", "CLUSTER", "SHARDS")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Slots []int              `json:"slots"`
		Nodes []clusterShardNode `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("redis: CLUSTER SHARDS on %s: %w", n.Addr, err)
	}
	shards := make([]clusterShard, len(raw))
	for i, r := range raw {
		if len(r.Slots)%2 != 0 {
			return nil, fmt.Errorf("redis: CLUSTER SHARDS on %s: slots %v", n.Addr, r.Slots)
		}
		for j := 0; j < len(r.Slots); j += 2 {
			shards[i].Slots = append(shards[i].Slots, SlotRange{r.Slots[j], r.Slots[j+1]})
		}
		shards[i].Nodes = r.Nodes
	}
	return shards, nil
}

// RedisSentinel is a primary and its replica, watched by three sentinels
// under the master name "mymaster" with a quorum of two. With
// down-after-milliseconds at one second, the sentinels promote the
// replica within about three seconds of the primary's death.
type RedisSentinel struct {
	MasterName    string   // "mymaster"
	SentinelAddrs []string // the sentinels' addresses
	// Sentinels are the sentinel processes, which drills may kill too.
	Sentinels        []*RedisNode
	primary, replica *RedisNode
	cli              string
}

// Primary is the node started as the primary; after a failover it may be
// a replica, or down.
func (s *RedisSentinel) Primary() *RedisNode { return s.primary }

// Replica is the node started as the replica; after a failover it may be
// the primary.
func (s *RedisSentinel) Replica() *RedisNode { return s.replica }

// StartRedisSentinelServers starts a primary, its replica and three
// sentinels, all redis-server (bin), with their files under dir, and waits
// until the replica is in sync and every sentinel knows it and the two
// other sentinels. opts apply to the primary and the replica:
// [RedisAppendOnly] makes each persist every write before it answers.
func StartRedisSentinelServers(ctx context.Context, bin, cli, dir string, opts ...RedisOption) (*RedisSentinel, error) {
	s := &RedisSentinel{MasterName: "mymaster", cli: cli}
	if err := s.start(ctx, bin, dir, opts); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

func (s *RedisSentinel) start(ctx context.Context, bin, dir string, opts []RedisOption) error {
	ports, err := freeLoopbackPorts(5)
	if err != nil {
		return err
	}
	start := func(name, port string, opts ...RedisOption) (*RedisNode, error) {
		ndir := filepath.Join(dir, name)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return nil, err
		}
		r, err := StartRedisServer(ctx, bin, ndir, net.JoinHostPort("127.0.0.1", port), opts...)
		if err != nil {
			return nil, err
		}
		return &RedisNode{Redis: r, cli: s.cli}, nil
	}
	data := func(args ...string) []RedisOption {
		return append(slices.Clone(opts), redisArgs("", append(slices.Clone(redisDataArgs), args...)...))
	}
	if s.primary, err = start("primary", ports[0], data()...); err != nil {
		return err
	}
	if s.replica, err = start("replica", ports[1], data("--replicaof", "127.0.0.1", ports[0])...); err != nil {
		return err
	}
	for i, port := range ports[2:] {
		// A sentinel rewrites its configuration file with what it learns,
		// through a temporary file beside it: the file is its own, in a
		// directory of its own.
		name := fmt.Sprintf("sentinel-%d", i+1)
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			return err
		}
		conf := filepath.Join(dir, name, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]s 2\n"+
			"sentinel down-after-milliseconds %[1]s %[3]s\n"+
			"sentinel failover-timeout %[1]s %[4]s\n",
			s.MasterName, ports[0], redisDownAfter, sentinelFailoverTimeout)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return err
		}
		n, err := start(name, port, redisArgs(conf, "--sentinel"))
		if err != nil {
			return err
		}
		s.Sentinels, s.SentinelAddrs = append(s.Sentinels, n), append(s.SentinelAddrs, n.Addr)
	}
	return s.WaitHealthy(ctx)
}

// StartRedisSentinel runs a [RedisSentinel] for the test, ready, and kills
// it when the test ends. opts apply to the primary and the replica.
// Outside CI a missing redis-server or redis-cli skips the test; under CI
// it fails it.
func StartRedisSentinel(t testing.TB, opts ...RedisOption) *RedisSentinel {
	t.Helper()
	bin, cli := RequireTool(t, "redis-server"), RequireTool(t, "redis-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartRedisSentinelServers(ctx, bin, cli, t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Kill kills the sentinels, the primary and the replica.
func (s *RedisSentinel) Kill() {
	for _, n := range append([]*RedisNode{s.primary, s.replica}, s.Sentinels...) {
		if n != nil {
			n.Kill()
		}
	}
}

// WaitHealthy waits until the sentinels name a primary, the other data
// node is its replica with its link up and in sync, and every sentinel
// sees that replica up (SENTINEL REPLICAS) and the two other sentinels
// (SENTINEL SENTINELS), whichever node is the primary: a drill that
// started a killed node again waits for this before its next fault, so
// that the sentinels have a replica to promote.
func (s *RedisSentinel) WaitHealthy(ctx context.Context) error {
	return waitFor(ctx, "the sentinels to know the replica and each other", s.ready)
}

// Rejoin starts n, a data node killed before a failover, again and makes
// it a replica of the current primary at once (REPLICAOF), as the
// sentinels would only ten to twenty seconds later: they convert a node
// that reports itself a primary once it has done so for eight seconds,
// and ask a replica for INFO every ten. Until then it would be an empty
// primary that no client following the sentinels reaches.
func (s *RedisSentinel) Rejoin(ctx context.Context, n *RedisNode) error {
	primary, err := s.CurrentPrimary(ctx)
	if err != nil {
		return err
	}
	if primary == n.Addr {
		return fmt.Errorf("redis: %s is still the primary", n.Addr)
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(primary)
	_, err = n.Do(ctx, "REPLICAOF", host, port)
	return err
}

// Node returns the data node at addr, nil when neither is.
func (s *RedisSentinel) Node(addr string) *RedisNode {
	for _, n := range []*RedisNode{s.primary, s.replica} {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// ready returns why the topology is not healthy yet (WaitHealthy).
func (s *RedisSentinel) ready(ctx context.Context) error {
	primary, err := s.CurrentPrimary(ctx)
	if err != nil {
		return err
	}
	replica := s.replica
	if primary == s.replica.Addr {
		replica = s.primary
	}
	if err := replicaInSync(ctx, replica); err != nil {
		return err
	}
	if isPrimary, err := replica.IsPrimary(ctx); err != nil || isPrimary {
		return fmt.Errorf("%s: not a replica yet (%v)", replica.Addr, err)
	}
	for _, n := range s.Sentinels {
		var replicas, sentinels []map[string]string
		if err := sentinelJSON(ctx, n, &replicas, "SENTINEL", "REPLICAS", s.MasterName); err != nil {
			return err
		}
		if err := sentinelJSON(ctx, n, &sentinels, "SENTINEL", "SENTINELS", s.MasterName); err != nil {
			return err
		}
		if len(replicas) != 1 || replicas[0]["name"] != replica.Addr || replicas[0]["flags"] != "slave" || replicas[0]["master-link-status"] != "ok" {
			return fmt.Errorf("sentinel %s: replicas %v", n.Addr, replicas)
		}
		if len(sentinels) != len(s.Sentinels)-1 {
			return fmt.Errorf("sentinel %s: %d other sentinels", n.Addr, len(sentinels))
		}
	}
	return nil
}

// CurrentPrimary returns the primary's address as the first sentinel that
// answers has it (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (s *RedisSentinel) CurrentPrimary(ctx context.Context) (string, error) {
	var err error
	for _, n := range s.Sentinels {
		var addr string
		if addr, err = s.primaryAddr(ctx, n); err == nil {
			return addr, nil
		}
	}
	return "", err
}

func (s *RedisSentinel) primaryAddr(ctx context.Context, sentinel *RedisNode) (string, error) {
	out, err := sentinel.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
	if err != nil {
		return "", err
	}
	host, port, ok := strings.Cut(out, "\n")
	if !ok {
		return "", fmt.Errorf("redis: sentinel %s: GET-MASTER-ADDR-BY-NAME %s answered %q", sentinel.Addr, s.MasterName, out)
	}
	return net.JoinHostPort(host, port), nil
}

// WaitForFailover waits until every sentinel that answers names the same
// primary, not oldPrimary, and that node holds itself a primary (ROLE).
func (s *RedisSentinel) WaitForFailover(ctx context.Context, oldPrimary string) error {
	return waitFor(ctx, "a failover from "+oldPrimary, func(ctx context.Context) error {
		var primary string
		for _, n := range s.Sentinels {
			addr, err := s.primaryAddr(ctx, n)
			if isConnRefused(err) {
				continue // a sentinel the drill killed
			}
			switch {
			case err != nil:
				return err
			case addr == oldPrimary:
				return fmt.Errorf("sentinel %s: the primary is still %s", n.Addr, addr)
			case primary != "" && addr != primary:
				return fmt.Errorf("sentinels disagree: %s and %s", primary, addr)
			}
			primary = addr
		}
		if primary == "" {
			return errors.New("no sentinel answers")
		}
		role, err := redisCLI(ctx, s.cli, primary, "", "ROLE")
		if err != nil {
			return err
		}
		if first, _, _ := strings.Cut(role, "\n"); first != "master" {
			return fmt.Errorf("%s: ROLE %q", primary, first)
		}
		return nil
	})
}

// sentinelJSON decodes a sentinel's reply, which redis-cli --json prints
// with RESP3's maps as JSON objects.
func sentinelJSON(ctx context.Context, n *RedisNode, v any, args ...string) error {
	out, err := redisCLI(ctx, n.cli, n.Addr, "", append([]string{"--json"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("redis: %s on %s: %w", strings.Join(args, " "), n.Addr, err)
	}
	return nil
}

// replicaInSync returns an error when n is a replica whose link to its
// primary is not up or still loading the primary's data (INFO
// replication), nil when it is in sync or a primary.
func replicaInSync(ctx context.Context, n *RedisNode) error {
	info, err := n.Do(ctx, "INFO", "replication")
	if err != nil {
		return err
	}
	if infoField(info, "role") == "slave" && (infoField(info, "master_link_status") != "up" || infoField(info, "master_sync_in_progress") != "0") {
		return fmt.Errorf("%s: a replica not in sync with its primary", n.Addr)
	}
	return nil
}

// infoField returns the value of field in INFO's or CLUSTER INFO's text,
// "" when it is not there.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// errConnRefused is redisCLI's error when nothing listens on the address.
var errConnRefused = errors.New("connection refused")

func isConnRefused(err error) bool { return errors.Is(err, errConnRefused) }

// redisCLI runs redis-cli (cli) against addr with args, or, when script is
// not "", with script's commands on its standard input, one a line, all
// on one connection. With -e, an error reply is an error.
func redisCLI(ctx context.Context, cli, addr, script string, args ...string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, cli, append([]string{"-e", "-h", host, "-p", port}, args...)...)
	if script != "" {
		cmd.Stdin = strings.NewReader(script)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + stdout.String())
		if strings.Contains(msg, "Connection refused") {
			return "", fmt.Errorf("redis: %s: %w", addr, errConnRefused)
		}
		return "", fmt.Errorf("redis: %s %s: %w: %s", addr, commandName(args), err, msg)
	}
	return strings.TrimSuffix(stdout.String(), "\n"), nil
}

// commandName is the command in redis-cli's arguments, for an error
// message that does not repeat the arguments, a key or a value.
func commandName(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

// redisQuote quotes s for redis-cli's standard input, which splits a line
// into arguments as redis-server's configuration files are split.
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// freeLoopbackPorts returns n distinct loopback ports nobody listens on
// now: all are held open together, so none is handed out twice.
func freeLoopbackPorts(n int) ([]string, error) {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, port)
	}
	return ports, nil
}
