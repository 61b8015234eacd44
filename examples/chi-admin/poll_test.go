package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/internal/testkit"
)

// redisCommands returns the number of commands the Redis behind conn has
// processed, this INFO included.
func redisCommands(t *testing.T, conn redis.Conn) int {
	t.Helper()
	info, err := redis.String(conn.Do("INFO", "stats"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_commands_processed:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("INFO stats without total_commands_processed:\n%s", info)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestElevationPollCostsWhatAGuardedRequestCosts: the admin pages' card
// polls GET /elevation every two seconds. On a real Redis, one poll costs
// the store round trips of a guarded request (/admin/ping): the session
// and the user's revocation record, two commands; a poll after admin mode
// ended costs the session only.
func TestElevationPollCostsWhatAGuardedRequestCosts(t *testing.T) {
	addr := testkit.StartRedis(t)
	app, idp := startConsole(t, devidp.Config{}, "-session-store", "redis://"+addr+"/0")
	c := newClient(t, nil)
	c.stepUp(idp, app.URL, "alice")
	conn, err := redis.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	const n = 50
	perRequest := func(path string, want int) float64 {
		t.Helper()
		c.do("GET", app.URL+path, nil, "application/json") // warm the pool
		before := redisCommands(t, conn)
		for range n {
			if p := c.do("GET", app.URL+path, nil, "application/json"); p.status != want {
				t.Fatalf("GET %s: %d, want %d", path, p.status, want)
			}
		}
		per := float64(redisCommands(t, conn)-before-1) / n // less the second INFO
		t.Logf("GET %s: %.2f Redis commands a request", path, per)
		return per
	}
	ping, poll := perRequest("/admin/ping", http.StatusOK), perRequest("/elevation", http.StatusOK)
	if ping != 2 || poll != ping {
		t.Errorf("Redis commands a request: /admin/ping %.2f, /elevation %.2f; want 2 each", ping, poll)
	}

	c.do("POST", app.URL+"/stepup/drop", nil, "text/html")
	if ended := perRequest("/elevation", http.StatusOK); ended != 1 {
		t.Errorf("a poll without an elevation: %.2f Redis commands, want 1 (the session)", ended)
	}
}

// TestElevationJSONIsNeitherSniffedNorCached: GET /elevation answers JSON
// that a browser must not read as another type (a page that loads it as a
// script or a style) and no cache may keep: nosniff and no-store.
func TestElevationJSONIsNeitherSniffedNorCached(t *testing.T) {
	t.Parallel()
	con := newConsoleApp(t, appDeps{})
	w := httptest.NewRecorder()
	con.routes().ServeHTTP(w, httptest.NewRequest("GET", "/elevation", nil))
	h := w.Header()
	if w.Code != http.StatusOK || h.Get("Content-Type") != "application/json" ||
		h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("GET /elevation: %d %v", w.Code, h)
	}
	if got := w.Body.String(); got != "{\"elevated\":false}\n" {
		t.Errorf("body %q, want not elevated", got)
	}
}
