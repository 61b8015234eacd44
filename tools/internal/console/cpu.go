package console

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// A tool shares the machine with whatever else runs on it. To tell a slow
// console from a busy machine, it compares the CPU time the whole
// machine spent during a run (/proc/stat) with the time its own processes
// spent (/proc/PID/stat for the console, redis-server and itself, each
// with the children it has waited for: wrk, a killed console, PostgreSQL's
// ended backends). Linux only; elsewhere the share is unknown.

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// machineCPU returns the time all CPUs spent running processes (steal
// included: the hypervisor gave it to someone else) and in total since
// boot. Interrupt and softirq time is left out of busy: it is charged to no
// process, and during a run it is mostly the loopback traffic of the run
// itself.
func machineCPU() (busy, total time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	var ticks [8]int64 // user nice system idle iowait irq softirq steal
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, false
		}
	}
	var all int64
	for _, t := range ticks {
		all += t
	}
	running := ticks[0] + ticks[1] + ticks[2] + ticks[7]
	return time.Duration(running) * clockTick, time.Duration(all) * clockTick, true
}

// processCPU returns the user and system time of a live process and of
// the children it has waited for (utime, stime, cutime, cstime); pid 0 is
// this process.
func processCPU(pid int) (time.Duration, bool) {
	p := "/proc/self/stat"
	if pid != 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 { // utime, stime, cutime, cstime are fields 14 to 17, f[11] to f[14]
		return 0, false
	}
	var ticks int64
	for _, v := range f[11:15] {
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += t
	}
	return time.Duration(ticks) * clockTick, true
}

// CPUSample is a snapshot before or after a run.
type CPUSample struct {
	busy, total, ours time.Duration
	ok                bool
}

// SampleCPU reads the machine's CPU times and those of pids and of this
// process. A pid that has ended is left out: the process that waited for
// it counts its time from then on, so a server that forks a process per
// connection is measured whole when each sample names the server and its
// live children ([ChildPids]).
func SampleCPU(pids ...int) CPUSample {
	var s CPUSample
	s.busy, s.total, s.ok = machineCPU()
	self, ok := processCPU(0)
	s.ours, s.ok = self, s.ok && ok
	for _, pid := range pids {
		d, _ := processCPU(pid)
		s.ours += d
	}
	return s
}

// OthersShare is the share of the machine's CPU capacity that processes
// other than the sampled ones used between a and b. It returns false when
// it is unknown.
func OthersShare(a, b CPUSample) (float64, bool) {
	if !a.ok || !b.ok || b.total <= a.total {
		return 0, false
	}
	others := (b.busy - a.busy) - (b.ours - a.ours)
	return max(0, float64(others)/float64(b.total-a.total)), true
}

// ChildPids returns the live processes whose parent is pid: PostgreSQL's
// backends, for one.
func ChildPids(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		// After the command name: state, then the parent's pid.
		if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
