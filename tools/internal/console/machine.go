package console

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a tool's numbers come from.
type Machine struct {
	Started   time.Time
	CPUModel  string // /proc/cpuinfo "model name"; empty elsewhere
	Nproc     string // nproc's output; empty without it
	NumCPU    int
	Kernel    string // /proc/sys/kernel/osrelease
	GoVersion string // of the tool; the console's is read from its binary
}

// DescribeMachine reads the machine's CPU, kernel and the tool's Go.
func DescribeMachine(ctx context.Context) Machine {
	m := Machine{
		Started:   time.Now(),
		NumCPU:    runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Nproc:     FirstLine(ctx, "nproc"),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// FirstLine runs a command and returns the first line of its output, or ""
// when there is none. (wrk -v prints its version and exits 1.)
func FirstLine(ctx context.Context, name string, args ...string) string {
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// OrUnknown is s, or "unknown" when s is empty.
func OrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
