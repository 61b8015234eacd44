package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/oidc-stepup/stepup/tools/internal/console"
)

// wrkResult is what the load test reads from wrk's report.
type wrkResult struct {
	Requests       int64 // "N requests in 30.00s"
	RequestsPerSec float64
	P50, P99       time.Duration // from the --latency distribution
	// Non2xx is wrk's "Non-2xx or 3xx responses". Despite the label, wrk
	// counts only statuses above 399 there: a redirect is a success to it.
	Non2xx int64
	Socket socketErrors
}

// socketErrors is wrk's "Socket errors" line; wrk omits it when all are 0.
type socketErrors struct {
	Connect, Read, Write, Timeout int64
}

func (s socketErrors) total() int64 { return s.Connect + s.Read + s.Write + s.Timeout }

func (s socketErrors) String() string {
	if s.total() == 0 {
		return "0"
	}
	return fmt.Sprintf("connect %d, read %d, write %d, timeout %d", s.Connect, s.Read, s.Write, s.Timeout)
}

var (
	wrkRequestsRE = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkRateRE     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)\s*$`)
	wrkP50RE      = regexp.MustCompile(`(?m)^\s*50(?:\.000)?%\s+([0-9.]+(?:us|ms|s|m|h))\s*$`)
	wrkP99RE      = regexp.MustCompile(`(?m)^\s*99(?:\.000)?%\s+([0-9.]+(?:us|ms|s|m|h))\s*$`)
	wrkNon2xxRE   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$`)
	wrkSocketRE   = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$`)
)

// parseWrk reads wrk's report, as printed with --latency. A report without
// the request count, the rate or the 50% and 99% latencies is an error.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var err error
	m := wrkRequestsRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk's report has no request count")
	}
	if r.Requests, err = strconv.ParseInt(m[1], 10, 64); err != nil {
		return r, fmt.Errorf("wrk's request count: %w", err)
	}
	if m = wrkRateRE.FindStringSubmatch(out); m == nil {
		return r, fmt.Errorf("wrk's report has no Requests/sec")
	}
	if r.RequestsPerSec, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, fmt.Errorf("wrk's Requests/sec: %w", err)
	}
	for _, q := range []struct {
		re   *regexp.Regexp
		name string
		dst  *time.Duration
	}{{wrkP50RE, "50%", &r.P50}, {wrkP99RE, "99%", &r.P99}} {
		if m = q.re.FindStringSubmatch(out); m == nil {
			return r, fmt.Errorf("wrk's report has no %s latency (was --latency given?)", q.name)
		}
		// wrk prints latencies as "512.00us", "1.23ms", "2.00s", "1.00m":
		// time.ParseDuration's own units.
		if *q.dst, err = time.ParseDuration(m[1]); err != nil {
			return r, fmt.Errorf("wrk's %s latency: %w", q.name, err)
		}
	}
	if m = wrkNon2xxRE.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = wrkSocketRE.FindStringSubmatch(out); m != nil {
		for i, dst := range []*int64{&r.Socket.Connect, &r.Socket.Read, &r.Socket.Write, &r.Socket.Timeout} {
			*dst, _ = strconv.ParseInt(m[i+1], 10, 64)
		}
	}
	return r, nil
}

// wrkArgs is wrk's command line for one run against target with the
// elevated session cookie.
func wrkArgs(o *options, d time.Duration, cookie, target string) []string {
	return []string{
		"-t" + strconv.Itoa(o.threads),
		"-c" + strconv.Itoa(o.connections),
		"-d" + strconv.Itoa(int(d/time.Second)) + "s",
		"--latency",
		"-H", "Cookie: " + console.SessionCookie + "=" + cookie,
		target,
	}
}

// wrkCommand is the command line as a person would type it, with the
// session token left out.
func wrkCommand(o *options, d time.Duration, target string) string {
	args := wrkArgs(o, d, "$SESSION", target)
	args[5] = `"` + args[5] + `"`
	return "wrk " + strings.Join(args, " ")
}

// runWrk runs wrk for d and returns its parsed report. (Its CPU time
// counts as this process's once it has been waited for.)
func runWrk(ctx context.Context, wrk string, o *options, d time.Duration, cookie, target string) (wrkResult, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, wrk, wrkArgs(o, d, cookie, target)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s%s", err, out.String(), errOut.String())
	}
	r, err := parseWrk(out.String())
	if err != nil {
		return r, fmt.Errorf("%w:\n%s", err, out.String())
	}
	return r, nil
}
