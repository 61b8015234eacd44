package testkit

import (
	"context"
	"testing"
	"time"
)

func TestStartRedisAnswersAndRestarts(t *testing.T) {
	addr := StartRedis(t)
	if reply, err := RedisCommand(addr, "SET", "k", "v"); err != nil || reply != "OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	if reply, err := RedisCommand(addr, "DBSIZE"); err != nil || reply != "1" {
		t.Fatalf("DBSIZE: %q, %v", reply, err)
	}
}

// TestRedisAppendOnlyKeepsWritesAcrossSIGKILL is what the Redis drill
// relies on: a write Redis acknowledged is there after SIGKILL and a
// restart on the same address.
func TestRedisAppendOnlyKeepsWritesAcrossSIGKILL(t *testing.T) {
	bin := RequireTool(t, "redis-server")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := StartRedisServer(ctx, bin, t.TempDir(), "", RedisAppendOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Kill()
	if reply, err := RedisCommand(r.Addr, "SET", "k", "v"); err != nil || reply != "OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	pid := r.Pid()
	r.Kill()
	if _, err := RedisCommand(r.Addr, "PING"); err == nil {
		t.Fatal("the killed server still answers")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Pid() == pid {
		t.Fatal("the same process after Start")
	}
	if reply, err := RedisCommand(r.Addr, "EXISTS", "k"); err != nil || reply != "1" {
		t.Fatalf("EXISTS k after the restart: %q, %v; want 1\n%s", reply, err, r.Output())
	}
}
