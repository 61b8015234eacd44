package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// auditEvent is what a drill reads of one audit event: the console's JSON
// line on standard output, or an in-process app's stepup.Event.
type auditEvent struct {
	Type      string        `json:"type"`
	Reason    string        `json:"reason"`
	Subject   string        `json:"subject"`
	Time      time.Time     `json:"time"`
	Deadline  time.Time     `json:"deadline"`
	Elevation string        `json:"elevation"`
	replica   int8          // which in-process replica emitted it; 0 for the console
	at        time.Duration // when it arrived, on the load's clock; -1 before the load started
}

// auditLog collects the audit events of one app, the console's from its
// standard output, stamped with the load's clock when they arrived.
type auditLog struct {
	mu     sync.Mutex
	clock  func() time.Duration // the load's; nil before it starts
	events []auditEvent
	bad    int // lines that were not audit events
}

func (a *auditLog) setClock(c func() time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock = c
}

// line is a console.Command's StdoutLine.
func (a *auditLog) line(s string) {
	var e auditEvent
	if err := json.Unmarshal([]byte(s), &e); err != nil || e.Type == "" {
		a.mu.Lock()
		a.bad++
		a.mu.Unlock()
		return
	}
	a.add(e)
}

func (a *auditLog) add(e auditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e.at = -1 // before the load
	if a.clock != nil {
		e.at = a.clock()
	}
	a.events = append(a.events, e)
}

// during returns the events of the given type that arrived once the load
// had started.
func (a *auditLog) during(typ string) []auditEvent {
	return slices.DeleteFunc(a.all(typ), func(e auditEvent) bool { return e.at < 0 })
}

// all returns the events of the given type ("" for all), in order.
func (a *auditLog) all(typ string) []auditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []auditEvent
	for _, e := range a.events {
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// summary renders the events by type and reason: "challenge: 12034,
// denied/token_exchange_failed: 9".
func (a *auditLog) summary() string {
	counts := map[string]int{}
	for _, e := range a.all("") {
		k := e.Type
		if e.Reason != "" {
			k += "/" + e.Reason
		}
		counts[k]++
	}
	if len(counts) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, counts[k])
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bad > 0 {
		fmt.Fprintf(&b, "; %d lines that are not audit events", a.bad)
	}
	return b.String()
}

// stderrWatch counts what a console's standard error says that matters to
// a drill: panics, and session store errors.
type stderrWatch struct {
	mu                    sync.Mutex
	panics, sessionErrors int
	panicLines            []string
}

// panicRE matches the runtime's "panic: " and chi's Recoverer, which
// prints "panic: ..." too, and net/http's "http: panic serving".
var panicRE = regexp.MustCompile(`(^|\s)panic[: ]|http: panic serving`)

func (w *stderrWatch) line(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if panicRE.MatchString(s) && !strings.HasPrefix(s, "SIGQUIT") {
		w.panics++
		if len(w.panicLines) < 3 {
			w.panicLines = append(w.panicLines, s)
		}
	}
	if strings.Contains(s, "session error") {
		w.sessionErrors++
	}
}

func (w *stderrWatch) counts() (panics, sessionErrors int, lines []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.panics, w.sessionErrors, slices.Clone(w.panicLines)
}

// procSample is one reading of a process's /proc counts, and of Redis's
// connected clients when a drill watches a Redis.
type procSample struct {
	at           time.Duration
	stats        console.ProcStats
	redisClients int64 // -1 when not read
}

// procWatch samples a process every interval until stopped.
type procWatch struct {
	mu      sync.Mutex
	samples []procSample
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchProc(pid int, redisAddr string, clock func() time.Duration, every time.Duration) *procWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &procWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s := procSample{at: clock(), redisClients: -1}
			if st, err := console.ReadProcStats(pid); err == nil {
				s.stats = st
				if redisAddr != "" {
					if r, err := console.ReadRedisStats(redisAddr); err == nil {
						s.redisClients = r.Clients - 1 // less this INFO's own
					}
				}
				w.mu.Lock()
				w.samples = append(w.samples, s)
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *procWatch) stop() []procSample {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples
}

// peak returns the largest threads, descriptors and Redis clients among
// the samples taken in [from, to).
func peak(ss []procSample, from, to time.Duration) (p procSample) {
	p.redisClients = -1
	for _, s := range ss {
		if s.at < from || s.at >= to {
			continue
		}
		p.stats.Threads = max(p.stats.Threads, s.stats.Threads)
		p.stats.FDs = max(p.stats.FDs, s.stats.FDs)
		p.redisClients = max(p.redisClients, s.redisClients)
	}
	return p
}

// goroutines is what a goroutine dump says of the program's goroutines,
// the runtime's own (garbage collection, finalizers, the signal handler's
// stack) left out: their number depends on whether the collector ran.
type goroutines struct {
	total int
	// inRequests are the goroutines with an HTTP handler on their stack:
	// requests still being served. After the load has stopped and its
	// connections are closed there must be none.
	inRequests int
	first      string // the first such goroutine's stack, for the report
}

// goroutineHeaderRE matches "goroutine 7 [select]:" and, with
// GOTRACEBACK=all since Go 1.25, "goroutine 7 gp=0x… m=nil [select]:".
var goroutineHeaderRE = regexp.MustCompile(`^goroutine (\d+) [^\n]*\[`)

func readDump(dump string) goroutines {
	var g goroutines
	for _, block := range strings.Split(dump, "\n\n") {
		m := goroutineHeaderRE.FindStringSubmatch(block)
		if m == nil || m[1] == "0" || strings.Contains(block, "\ncreated by runtime.") {
			continue
		}
		if strings.Contains(block, "memstore.(*MemStore).startCleanup(") {
			// scs.New starts a memstore with a cleanup goroutine for
			// good, even when the application replaces the store: one
			// per SessionManager, the same in an idle process. Its
			// StopCleanup cannot be called safely right after New (the
			// goroutine sets the channel it reads).
			continue
		}
		g.total++
		if strings.Contains(block, ".ServeHTTP(") {
			g.inRequests++
			if g.first == "" {
				g.first = block
			}
		}
	}
	return g
}
