package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
)

// dialConsole opens a raw connection to a console started by startConsole.
func dialConsole(t *testing.T, in *instance) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(in.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads c until the server closes it and returns how long that
// took, or fails the test if it is still open after limit.
func closedWithin(t *testing.T, c net.Conn, r io.Reader, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, r)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", limit)
	}
	return took
}

// TestBodyThatNeverArrivesIsCutOff: a request that announces a body and
// never sends it holds its connection no longer than -read-timeout.
func TestBodyThatNeverArrivesIsCutOff(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	app, _ := startConsole(t, devidp.Config{}, "-read-timeout", readTimeout.String())
	c := dialConsole(t, app)
	sent := time.Now()
	io.WriteString(c, "POST /logout HTTP/1.1\r\nHost: console\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n")
	took := closedWithin(t, c, c, 3*time.Second)
	t.Logf("closed %v after the headers (read timeout %v)", time.Since(sent).Round(time.Millisecond), readTimeout)
	if took > readTimeout+time.Second {
		t.Errorf("closed after %v, want about %v", took, readTimeout)
	}
}

// TestIdleKeepAliveConnectionIsClosed: a keep-alive connection that sends
// no further request is closed after -idle-timeout.
func TestIdleKeepAliveConnectionIsClosed(t *testing.T) {
	t.Parallel()
	const idleTimeout = 300 * time.Millisecond
	app, _ := startConsole(t, devidp.Config{}, "-idle-timeout", idleTimeout.String())
	c := dialConsole(t, app)
	io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: console\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /ping: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	took := closedWithin(t, c, br, 3*time.Second)
	t.Logf("idle connection closed after %v (idle timeout %v)", took.Round(time.Millisecond), idleTimeout)
	if took > idleTimeout+time.Second {
		t.Errorf("closed after %v, want about %v", took, idleTimeout)
	}
}

// TestServerTimeoutsOutlastTheIdPClient: by default every timeout is set,
// and the write timeout leaves room for a callback's two IdP calls, so a
// slow IdP gets its 502 page instead of a reset connection.
func TestServerTimeoutsOutlastTheIdPClient(t *testing.T) {
	t.Parallel()
	c := parseWithEnv(t, []string{"-issuer", "https://idp.example.com", "-client-id", "c", "-acr", "a"}, nil)
	srv := newServer(http.NotFoundHandler(), c)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.WriteTimeout <= 2*idpTimeout {
		t.Errorf("server timeouts: header %v, read %v, write %v, idle %v; want all set, write above %v",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, 2*idpTimeout)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"WriteTimeoutWithinTwoIdPCalls", []string{"-write-timeout", "10s"}},
		{"ZeroReadTimeout", []string{"-read-timeout", "0s"}},
		{"NegativeIdleTimeout", []string{"-idle-timeout", "-1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := parseConfig(tc.args, io.Discard, func(string) string { return "" }); err == nil {
				t.Errorf("%q accepted", tc.args)
			}
		})
	}
}
