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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oidc-stepup/stepup/internal/testkit"
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

// buildApp builds the console into dst with the go command.
// It runs in the repository's workspace (go.work), which holds the example's
// module; this module does not require it.
func buildApp(ctx context.Context, goCmd, dst string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", dst, "github.com/oidc-stepup/stepup/examples/chi-admin")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build chi-admin (run the load test inside the repository, or pass -app): %w", err)
	}
	return nil
}

// appEnv is this process's environment without its STEPUP_* variables,
// which chi-admin would read as flags.
func appEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEPUP_") {
			env = append(env, kv)
		}
	}
	return env
}

// consoleURLRE finds the URL in the console's "admin console at URL" line.
var consoleURLRE = regexp.MustCompile(`chi-admin: admin console at (http://\S+)`)

// startApp runs the console with args, on ports it picks itself, and waits
// until it says where it listens and answers /ping there. It returns the
// console's URL.
func startApp(ctx context.Context, bin string, args ...string) (*child, string, error) {
	c, err := startChild(ctx, "chi-admin", bin, appEnv(), args...)
	if err != nil {
		return nil, "", err
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if m := consoleURLRE.FindStringSubmatch(c.stderr.String()); m != nil {
			if resp, err := client.Get(m[1] + "/ping"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return c, m[1], nil
				}
			}
		}
		if done, err := c.exited(); done {
			return nil, "", fmt.Errorf("chi-admin %v:\n%s", err, c.stderr)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, "", fmt.Errorf("chi-admin did not start and answer /ping:\n%s", c.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRedis runs a throwaway redis-server on a free loopback port, with
// no persistence, through the repository's one redis starter.
func startRedis(ctx context.Context, bin, dir string) (*testkit.Redis, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return testkit.StartRedisServer(ctx, bin, dir, "")
}

// redisStats are counters from INFO stats.
type redisStats struct {
	commands, connections int64 // total_commands_processed, total_connections_received
}

func readRedisStats(addr string) (redisStats, error) {
	info, err := redisInfo(addr, "stats")
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

// redisInfo returns INFO section's text. INFO answers with a bulk string,
// which testkit.RedisCommand does not read, so this sends it as an inline
// command and reads the bulk reply itself.
func redisInfo(addr, section string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "INFO "+section+"\r\n"); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimRight(line, "\r\n"), "$"))
	if !strings.HasPrefix(line, "$") || err != nil || n < 0 {
		return "", fmt.Errorf("redis: INFO answered %q", line)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}
