package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Command is a program to start.
type Command struct {
	Name string // for messages
	Path string
	Args []string
	Env  []string // Default: AppEnv().
	// StdoutLine and StderrLine, when set, receive each line the process
	// writes, without its newline, as it is written.
	StdoutLine, StderrLine func(line string)
}

// Process is a process a tool started. Its context is a child of the
// tool's, so Ctrl-C (or SIGTERM to the tool) stops it too: first with
// SIGTERM, then, after 5s, with SIGKILL.
type Process struct {
	Name   string
	Pid    int
	Stdout *Log // line counts and the last few KB of output
	Stderr *Log

	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes
}

// Start starts c.
func Start(ctx context.Context, c Command) (*Process, error) {
	cctx, cancel := context.WithCancel(ctx)
	p := &Process{Name: c.Name, cancel: cancel, done: make(chan struct{}),
		Stdout: &Log{onLine: c.StdoutLine}, Stderr: &Log{onLine: c.StderrLine}}
	cmd := exec.CommandContext(cctx, c.Path, c.Args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = AppEnv()
	}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s: %w", c.Name, err)
	}
	p.cmd, p.Pid = cmd, cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		p.Stdout.flush()
		p.Stderr.flush()
		close(p.done)
	}()
	return p, nil
}

// Stop ends the process and waits for it.
func (p *Process) Stop() {
	p.cancel()
	<-p.done
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, errors.New("exited")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// DumpGoroutines ends a Go program with SIGQUIT, on which the runtime
// prints every goroutine's stack to standard error before it exits (all of
// them with GOTRACEBACK=all in its environment), and returns that dump.
func (p *Process) DumpGoroutines(timeout time.Duration) (string, error) {
	if done, err := p.Exited(); done {
		return "", fmt.Errorf("%s already %v", p.Name, err)
	}
	p.Stderr.capture()
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
		return "", fmt.Errorf("%s did not exit within %v of SIGQUIT", p.Name, timeout)
	}
	dump := p.Stderr.captured()
	if !strings.Contains(dump, "goroutine ") {
		return dump, fmt.Errorf("%s printed no goroutine dump on SIGQUIT", p.Name)
	}
	return dump, nil
}

// Log counts the lines a process writes and keeps the last few KB of them
// for error messages.
type Log struct {
	mu      sync.Mutex
	lines   int64
	tail    []byte
	partial []byte // the unfinished last line, for onLine
	onLine  func(string)
	all     *bytes.Buffer // everything since capture, when capturing
}

const logTail = 8 << 10

func (w *Log) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines += int64(bytes.Count(p, []byte{'\n'}))
	w.tail = append(w.tail, p...)
	if len(w.tail) > logTail {
		w.tail = append(w.tail[:0:0], w.tail[len(w.tail)-logTail:]...)
	}
	if w.all != nil {
		w.all.Write(p)
	}
	if w.onLine != nil {
		w.partial = append(w.partial, p...)
		for {
			i := bytes.IndexByte(w.partial, '\n')
			if i < 0 {
				break
			}
			w.onLine(string(w.partial[:i]))
			w.partial = w.partial[i+1:]
		}
	}
	return len(p), nil
}

// flush hands an unfinished last line to onLine.
func (w *Log) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.onLine != nil && len(w.partial) > 0 {
		w.onLine(string(w.partial))
		w.partial = nil
	}
}

func (w *Log) capture() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = &bytes.Buffer{}
}

func (w *Log) captured() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.all == nil {
		return ""
	}
	return w.all.String()
}

// Count is how many lines were written.
func (w *Log) Count() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lines
}

func (w *Log) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.tail)
}

// BuildApp builds the console into dst with the go command.
// It runs in the repository's workspace (go.work), which holds the example's
// module; the tools' module does not require it.
func BuildApp(ctx context.Context, goCmd, dst string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", dst, "github.com/oidc-stepup/stepup/examples/chi-admin")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build chi-admin (run the tool inside the repository, or pass -app): %w", err)
	}
	return nil
}

// AppEnv is this process's environment without its STEPUP_* variables,
// which chi-admin would read as flags.
func AppEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEPUP_") {
			env = append(env, kv)
		}
	}
	return env
}

// consoleURLRE finds the URL in the console's "admin console at URL" line,
// and devIdPRE the issuer in its "development IdP at URL" line.
var (
	consoleURLRE = regexp.MustCompile(`chi-admin: admin console at (http://\S+)`)
	devIdPRE     = regexp.MustCompile(`chi-admin: development IdP at (http://\S+)`)
)

// StartApp runs the console as c, whose Name defaults to "chi-admin" and
// whose Args should name ports it may pick itself (-addr 127.0.0.1:0), and
// waits until it says where it listens and answers /ping there. It returns
// the console's URL.
func StartApp(ctx context.Context, c Command) (*Process, string, error) {
	if c.Name == "" {
		c.Name = "chi-admin"
	}
	return startAndProbe(ctx, c, consoleURLRE, "/ping")
}

// StartDevIdP runs the console as c only for its embedded development IdP,
// and waits until the IdP serves its discovery document. It returns the
// issuer. The console's own listener is of no use: c's -base-url names the
// console the IdP serves, so that the IdP registers that console's
// redirect URIs, and -client-secret the secret they share.
func StartDevIdP(ctx context.Context, c Command) (*Process, string, error) {
	if c.Name == "" {
		c.Name = "dev IdP (chi-admin)"
	}
	return startAndProbe(ctx, c, devIdPRE, "/.well-known/openid-configuration")
}

func startAndProbe(ctx context.Context, c Command, re *regexp.Regexp, path string) (*Process, string, error) {
	p, err := Start(ctx, c)
	if err != nil {
		return nil, "", err
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if m := re.FindStringSubmatch(p.Stderr.String()); m != nil {
			if resp, err := client.Get(m[1] + path); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p, m[1], nil
				}
			}
		}
		if done, err := p.Exited(); done {
			return nil, "", fmt.Errorf("%s %v:\n%s", c.Name, err, p.Stderr)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, "", fmt.Errorf("%s did not start and answer %s:\n%s", c.Name, path, p.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ProcStats is what /proc says of a live process: its OS threads and open
// file descriptors (sockets among them). Linux only.
type ProcStats struct {
	Threads, FDs int
}

// ReadProcStats reads pid's thread and descriptor counts.
func ReadProcStats(pid int) (ProcStats, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ProcStats{}, err
	}
	var s ProcStats
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			s.Threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return ProcStats{}, err
	}
	s.FDs = len(fds)
	return s, nil
}
