package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the load test started. Its context is a child of the
// run's, so Ctrl-C (or SIGTERM to the load test) stops it too: first with
// SIGTERM, then, after 5s, with SIGKILL.
type child struct {
	name   string
	pid    int
	cancel context.CancelFunc
	done   chan struct{}
	err    error      // set before done closes
	stdout *logWriter // line counts and the last few KB of output
	stderr *logWriter
}

func startChild(ctx context.Context, name, path string, env []string, args ...string) (*child, error) {
	cctx, cancel := context.WithCancel(ctx)
	c := &child{name: name, cancel: cancel, done: make(chan struct{}), stdout: &logWriter{}, stderr: &logWriter{}}
	cmd := exec.CommandContext(cctx, path, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c.pid = cmd.Process.Pid
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop ends the process and waits for it.
func (c *child) stop() {
	c.cancel()
	<-c.done
}

// exited reports whether the process has ended, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		if c.err == nil {
			return true, errors.New("exited")
		}
		return true, c.err
	default:
		return false, nil
	}
}

// logWriter counts the lines a child writes and keeps the last few KB of
// them for error messages.
type logWriter struct {
	mu    sync.Mutex
	lines int64
	tail  []byte
}

const logTail = 8 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines += int64(bytes.Count(p, []byte{'\n'}))
	w.tail = append(w.tail, p...)
	if len(w.tail) > logTail {
		w.tail = append(w.tail[:0:0], w.tail[len(w.tail)-logTail:]...)
	}
	return len(p), nil
}

func (w *logWriter) count() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lines
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.tail)
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// buildApp builds the console into dst with the go command.
func buildApp(ctx context.Context, goCmd, dst string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", dst, "github.com/oidc-stepup/stepup/examples/chi-admin")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build chi-admin (run the load test from inside the module): %w", err)
	}
	return nil
}

// appEnv is this process's environment without its STEPUP_* variables,
// which chi-admin would read as flags, plus extra.
func appEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEPUP_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startApp runs the console with extraEnv and args, and waits until it
// answers /ping.
func startApp(ctx context.Context, bin, baseURL string, extraEnv []string, args ...string) (*child, error) {
	c, err := startChild(ctx, "chi-admin", bin, appEnv(extraEnv), args...)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := client.Get(baseURL + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		if done, err := c.exited(); done {
			return nil, fmt.Errorf("chi-admin %v:\n%s", err, c.stderr)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, fmt.Errorf("chi-admin did not answer at %s:\n%s", baseURL, c.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRedis runs a throwaway redis-server on a free loopback port, with
// no persistence, and waits until it answers PING.
func startRedis(ctx context.Context, bin, dir string) (*child, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	c, err := startChild(ctx, "redis-server", bin, os.Environ(),
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return nil, "", err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if reply, err := redisCommand(addr, "PING"); err == nil && reply == "PONG" {
			return c, addr, nil
		}
		if done, err := c.exited(); done {
			return nil, "", fmt.Errorf("redis-server %v:\n%s", err, c.stdout)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, "", fmt.Errorf("redis-server did not answer on %s:\n%s", addr, c.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisCommand sends one command in RESP and returns a simple-string or
// bulk-string reply.
func redisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis: bad reply %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("redis: reply %q", line)
}

// redisStats are counters from INFO stats.
type redisStats struct {
	commands, connections int64 // total_commands_processed, total_connections_received
}

func readRedisStats(addr string) (redisStats, error) {
	info, err := redisCommand(addr, "INFO", "stats")
	if err != nil {
		return redisStats{}, err
	}
	var s redisStats
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "total_commands_processed":
			s.commands, _ = strconv.ParseInt(v, 10, 64)
		case "total_connections_received":
			s.connections, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return s, nil
}
