package testkit

import "testing"

func TestStartRedisAnswersAndRestarts(t *testing.T) {
	addr := StartRedis(t)
	if reply, err := RedisCommand(addr, "SET", "k", "v"); err != nil || reply != "OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	if reply, err := RedisCommand(addr, "DBSIZE"); err != nil || reply != "1" {
		t.Fatalf("DBSIZE: %q, %v", reply, err)
	}
}
