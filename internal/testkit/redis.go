package testkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server child process on a loopback port, without
// persistence unless [RedisAppendOnly] asks for it. Drills kill and
// restart it on the same address.
type Redis struct {
	Addr       string
	bin        string
	dir        string
	appendOnly bool
	conf       string   // a configuration file, redis-server's first argument; "" for none
	args       []string // arguments after the ones Start always passes
	cmd        *exec.Cmd
	out        *SyncBuffer
}

// A RedisOption changes how [StartRedisServer] runs redis-server.
type RedisOption func(*Redis)

// RedisAppendOnly makes the server write every change to its append-only
// file and fsync it before it answers (appendonly yes, appendfsync always),
// so that whatever a client saw stored survives SIGKILL: [Redis.Start]
// reloads it from the file in the server's directory.
func RedisAppendOnly() RedisOption { return func(r *Redis) { r.appendOnly = true } }

// StartRedisServer starts bin (a redis-server) on addr, or on a free
// loopback port when addr is empty, keeping its files in dir, and waits
// until it answers PING.
func StartRedisServer(ctx context.Context, bin, dir, addr string, opts ...RedisOption) (*Redis, error) {
	if addr == "" {
		var err error
		if addr, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	r := &Redis{Addr: addr, bin: bin, dir: dir}
	for _, o := range opts {
		o(r)
	}
	return r, r.Start(ctx)
}

// Start starts the server again after [Redis.Kill], on the same address
// and directory.
func (r *Redis) Start(ctx context.Context) error {
	_, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return err
	}
	r.out = &SyncBuffer{}
	persist := []string{"--appendonly", "no"}
	if r.appendOnly {
		persist = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	var args []string
	if r.conf != "" {
		args = append(args, r.conf)
	}
	args = append(args, "--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", r.dir)
	args = append(append(args, persist...), r.args...)
	r.cmd = exec.Command(r.bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		return err
	}
	for {
		reply, err := RedisCommand(r.Addr, "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		select {
		case <-ctx.Done():
			r.Kill()
			return fmt.Errorf("redis-server did not answer on %s: %w\n%s", r.Addr, ctx.Err(), r.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (r *Redis) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// Pid is the server's process id.
func (r *Redis) Pid() int { return r.cmd.Process.Pid }

// Output is what the server printed.
func (r *Redis) Output() string { return r.out.String() }

// StartRedis runs a throwaway redis-server for the test and returns its
// address; it is killed when the test ends. Outside CI a missing
// redis-server skips the test; under CI it fails it.
func StartRedis(t testing.TB) string {
	t.Helper()
	bin := RequireTool(t, "redis-server")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := StartRedisServer(ctx, bin, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return r.Addr
}

// RedisCommand sends one command in RESP and returns a simple-string or
// integer reply, without a client library.
func RedisCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, ":"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New("redis: " + line[1:])
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}
