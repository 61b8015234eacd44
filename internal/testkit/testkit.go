// Package testkit holds the helpers that the repository's test packages
// (the library's end-to-end tests, the store adapters' tests, the tools)
// share: finding an installed tool, starting a real redis-server (alone,
// as a Redis Cluster or under Sentinel, with the failover drills' helpers:
// redistopo.go says how to use them) or PostgreSQL, a free loopback port,
// a goroutine-safe buffer, and the in-process atomic update of a test
// store. Each is written once, here.
//
// It is internal: applications test with [stepuptest], not with this.
package testkit

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// InCI reports whether the tests run under CI, where a missing component
// fails a test instead of skipping it.
func InCI() bool { return os.Getenv("CI") != "" }

// RequireTool returns the path of the first of names found on PATH. When
// none is installed it skips the test, or fails it under CI: .ci/run
// installs every tool a test needs.
func RequireTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if InCI() {
		t.Fatalf("%s is not installed; .ci/run installs it", names[0])
	}
	t.Skipf("%s is not installed", names[0])
	return ""
}

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreeLoopbackAddr is [FreeAddr] for callers without a test, such as the
// drills, which restart a process on the address it had.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// SyncBuffer collects a writer's output across goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
