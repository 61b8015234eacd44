package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// A stream is one kind of request the load sends: a route and a session.
type stream int8

const (
	openElevated    stream = iota // /ping, an elevated session: the session store, no guard
	guardedElevated               // /admin/ping, an elevated session: must answer 200 while the store answers
	guardedLoggedIn               // /admin/ping, a logged-in session without elevation: must never answer 200
	guardedAnon                   // /admin/ping, no session cookie: must never answer 200
	numStreams
)

var streamNames = [numStreams]string{
	openElevated:    "/ping, elevated",
	guardedElevated: "/admin/ping, elevated",
	guardedLoggedIn: "/admin/ping, logged in, not elevated",
	guardedAnon:     "/admin/ping, no session",
}

func (s stream) String() string { return streamNames[s] }

// A client is one of the load's closed-loop clients: it sends its next
// request when the last one is answered.
type client struct {
	stream stream
	base   string // the URL the client sends to: the console, a balancer or one replica
	cookie string // the session cookie's value; "" for none
	via    int8   // for the report: which route to the app (0: the only one)
	name   string // the session's name, for per-session results
}

// A sample is one request as the client saw it. Times are since the load
// started, on the monotonic clock.
type sample struct {
	client     int32
	status     int16 // 0: no response (errKind says why)
	errKind    errKind
	replica    int8 // the X-Replica header of a drill's in-process app, else -1
	sent, done time.Duration
}

type errKind int8

const (
	errNone    errKind = iota
	errTimeout         // the client's timeout or deadline
	errRefused         // connection refused: nothing listens
	errReset           // the connection was reset or closed mid-request
	errOther
)

var errKindNames = [...]string{errNone: "", errTimeout: "timeout", errRefused: "refused", errReset: "reset", errOther: "error"}

func classify(err error) errKind {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return errRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return errReset
	}
	return errOther
}

// load runs closed-loop clients until stopped and keeps every sample.
type load struct {
	start   time.Time
	clients []client
	tr      *http.Transport
	http    *http.Client
	halt    chan struct{} // closed by stop: no client sends another request
	wg      sync.WaitGroup

	mu      sync.Mutex
	samples []sample
}

// requestTimeout bounds each request of the load: a request that takes
// longer counts as a timeout error.
const requestTimeout = 10 * time.Second

// startLoad starts one goroutine per client. The clients share a
// transport with an idle connection each, so there are at most
// len(clients) connections.
func startLoad(ctx context.Context, clients []client) *load {
	tr := &http.Transport{
		MaxIdleConnsPerHost: len(clients),
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		DisableCompression:  true,
	}
	l := &load{
		start:   time.Now(),
		clients: clients,
		tr:      tr,
		http: &http.Client{Transport: tr, Timeout: requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	l.halt = make(chan struct{})
	for i := range clients {
		l.wg.Add(1)
		go l.run(ctx, int32(i))
	}
	return l
}

// now is the time since the load started.
func (l *load) now() time.Duration { return time.Since(l.start) }

func (l *load) run(ctx context.Context, i int32) {
	defer l.wg.Done()
	c := l.clients[i]
	var mine []sample
	defer func() {
		l.mu.Lock()
		l.samples = append(l.samples, mine...)
		l.mu.Unlock()
	}()
	path := "/admin/ping"
	if c.stream == openElevated {
		path = "/ping"
	}
	for {
		select {
		case <-l.halt:
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
		if c.cookie != "" {
			req.Header.Set("Cookie", console.SessionCookie+"="+c.cookie)
		}
		s := sample{client: i, replica: -1, sent: l.now()}
		resp, err := l.http.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			s.status = int16(resp.StatusCode)
			if r := resp.Header.Get("X-Replica"); r != "" {
				s.replica = int8(r[0] - 'A')
			}
		} else if ctx.Err() != nil {
			return // interrupted: not a sample
		} else {
			s.errKind = classify(err)
		}
		s.done = l.now()
		mine = append(mine, s)
		if err != nil {
			// A refused connection fails at once: do not spin.
			select {
			case <-l.halt:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// stop stops the clients, waits for the requests they have in flight (so
// that every request the app served is counted) and closes their
// connections.
func (l *load) stop() []sample {
	close(l.halt)
	l.wg.Wait()
	l.tr.CloseIdleConnections()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.samples, func(a, b sample) int { return int(a.sent - b.sent) })
	return l.samples
}

// samples is a load's result, with what the clients were.
type samples struct {
	clients []client
	all     []sample
}

func (ss samples) of(s sample) client { return ss.clients[s.client] }

// filter returns the samples that keep accepts.
func (ss samples) filter(keep func(client, sample) bool) []sample {
	var out []sample
	for _, s := range ss.all {
		if keep(ss.clients[s.client], s) {
			out = append(out, s)
		}
	}
	return out
}

func (ss samples) stream(st stream) []sample {
	return ss.filter(func(c client, _ sample) bool { return c.stream == st })
}

// sentIn keeps the samples sent in [from, to).
func sentIn(s []sample, from, to time.Duration) []sample {
	var out []sample
	for _, x := range s {
		if x.sent >= from && x.sent < to {
			out = append(out, x)
		}
	}
	return out
}

func (s sample) failed() bool { return s.status == 0 || s.status >= 500 }

func (s sample) outcome() string {
	if s.status == 0 {
		return errKindNames[s.errKind]
	}
	return fmt.Sprint(s.status)
}

// statusCounts renders how many samples had each outcome: "200: 1234,
// 500: 56, refused: 7".
func statusCounts(s []sample) string {
	counts := map[string]int{}
	for _, x := range s {
		counts[x.outcome()]++
	}
	if len(counts) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys) // statuses before the words
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, counts[k])
	}
	return b.String()
}

func count(s []sample, keep func(sample) bool) int {
	n := 0
	for _, x := range s {
		if keep(x) {
			n++
		}
	}
	return n
}

// latency returns the q-quantile (0 < q ≤ 1) of the samples' latencies,
// or 0 when there are none.
func latency(s []sample, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	d := make([]time.Duration, len(s))
	for i, x := range s {
		d[i] = x.done - x.sent
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// first returns the first sample, by sending time, that keep accepts.
func first(s []sample, keep func(sample) bool) (sample, bool) {
	for _, x := range s {
		if keep(x) {
			return x, true
		}
	}
	return sample{}, false
}

// last returns the last sample, by sending time, that keep accepts.
func last(s []sample, keep func(sample) bool) (sample, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if keep(s[i]) {
			return s[i], true
		}
	}
	return sample{}, false
}

// logw receives the drills' progress lines.
var logw io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(logw, "drill: "+format+"\n", args...)
}
