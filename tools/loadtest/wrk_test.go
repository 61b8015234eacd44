package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The samples in testdata are wrk 4.1.0's own reports, captured with
// --latency: a clean run against chi-admin, a run whose server answered
// some 401s and held some requests past --timeout, and a run with timeouts
// only.
func TestParseWrk(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		want wrkResult
	}{
		{"wrk-clean.txt", wrkResult{
			Requests: 36542, RequestsPerSec: 17506.83, P50: 1720 * time.Microsecond, P99: 714420 * time.Microsecond,
		}},
		{"wrk-errors.txt", wrkResult{
			Requests: 1193, RequestsPerSec: 183.26, P50: 1190 * time.Microsecond, P99: 10340 * time.Microsecond,
			Non2xx: 11, Socket: socketErrors{Timeout: 64},
		}},
		{"wrk-timeouts.txt", wrkResult{
			Requests: 4906, RequestsPerSec: 1287.09, P50: 846 * time.Microsecond, P99: 7 * time.Millisecond,
			Socket: socketErrors{Timeout: 32},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parseWrk:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestParseWrkRefusesAnIncompleteReport: without --latency there are no
// percentiles to report, and a report cut short is not a result.
func TestParseWrkRefusesAnIncompleteReport(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/wrk-errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	full := string(b)
	noLatency := full[:strings.Index(full, "  Latency Distribution")] + full[strings.Index(full, "  1193 requests"):]
	for name, out := range map[string]string{
		"no --latency": noLatency,
		"cut short":    full[:strings.Index(full, "Requests/sec")],
		"empty":        "",
		"usage":        "Usage: wrk <options> <url>\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := parseWrk(out); err == nil {
				t.Errorf("%s: parseWrk accepted\n%s", name, out)
			}
		})
	}
}

func TestSocketErrorsString(t *testing.T) {
	t.Parallel()
	if got := (socketErrors{}).String(); got != "0" {
		t.Errorf("no errors: %q", got)
	}
	if got, want := (socketErrors{Read: 2, Timeout: 3}).String(), "connect 0, read 2, write 0, timeout 3"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWrkCommandIsTheDocumentedOne(t *testing.T) {
	t.Parallel()
	o := &options{threads: 2, connections: 64}
	got := wrkCommand(o, 30*time.Second, "http://127.0.0.1:8080/admin/ping")
	want := `wrk -t2 -c64 -d30s --latency -H "Cookie: chi_admin_session=$SESSION" http://127.0.0.1:8080/admin/ping`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
