package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/internal/testkit"
)

// TestRedisStoreURLNamesUserPasswordAndDatabase: -session-store takes a
// Redis URL as redigo's DialURL reads it, an ACL user and its password
// included; the sessions land in the URL's database; a wrong password fails
// at start with an error that does not show it.
func TestRedisStoreURLNamesUserPasswordAndDatabase(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	if reply, err := testkit.RedisCommand(addr, "ACL", "SETUSER", "console", "on", ">s3cret-pw", "~*", "+@all"); err != nil || reply != "OK" {
		t.Fatalf("ACL SETUSER: %q, %v", reply, err)
	}
	spec := "redis://console:s3cret-pw@" + addr + "/3"
	store, closeStore, err := openStore(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	if err := store.Commit("tok", []byte("v"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := store.Find("tok"); err != nil || !found || !bytes.Equal(b, []byte("v")) {
		t.Fatalf("Find: %q %v %v", b, found, err)
	}
	for db, want := range map[string]int{"3": 1, "0": 0} {
		conn, err := redis.DialURL("redis://console:s3cret-pw@" + addr + "/" + db)
		if err != nil {
			t.Fatal(err)
		}
		n, err := redis.Int(conn.Do("EXISTS", "scs:session:tok"))
		conn.Close()
		if err != nil || n != want {
			t.Errorf("database %s holds the session %d times (%v), want %d", db, n, err, want)
		}
	}

	_, _, err = openStore("redis://console:wrong-pw@" + addr + "/3")
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestStoreSpecErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, spec string }{
		{"RedisURLWithoutSlashes", "redis:s3cret@host"},
		{"UnknownScheme", "memcached://host"},
		{"DatabaseNotANumber", "redis://127.0.0.1:1/notanumber"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := openStore(tc.spec)
			if err == nil {
				t.Errorf("%q: no error", tc.spec)
			} else if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%q: the error shows the password: %v", tc.spec, err)
			}
		})
	}
}

// TestAClientThatWentAwayIsNotAStoreError: the Redis store stops reading a
// session when the request's context ends, as when the client closes its
// connection. That answer goes nowhere and is no store failure, so the
// console must not log it as a session error (a load test saw one per
// closed connection); nor may it serve the request. A real store failure,
// Redis gone, is still logged, and answered 500.
func TestAClientThatWentAwayIsNotAStoreError(t *testing.T) {
	t.Parallel()
	bin := testkit.RequireTool(t, "redis-server")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := testkit.StartRedisServer(ctx, bin, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Kill()
	store, closeStore, err := openStore("redis://" + r.Addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	c := newConsoleApp(t, appDeps{store: store})
	get := func(ctx context.Context, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, "GET", c.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "chi_admin_session", Value: "a-session-token"})
		rec := httptest.NewRecorder()
		c.routes().ServeHTTP(rec, req)
		return rec
	}

	gone, leave := context.WithCancel(context.Background())
	leave()
	for _, path := range []string{"/ping", "/admin/ping"} {
		if rec := get(gone, path); rec.Code == http.StatusOK {
			t.Errorf("GET %s after the client went away: 200 %q", path, rec.Body)
		}
	}
	if log := c.stderr.String(); strings.Contains(log, "session error") {
		t.Errorf("a client that went away was logged as a session error:\n%s", log)
	}

	r.Kill()
	if rec := get(context.Background(), "/admin/ping"); rec.Code != http.StatusInternalServerError {
		t.Errorf("GET /admin/ping with Redis gone: %d, want 500", rec.Code)
	}
	if log := c.stderr.String(); !strings.Contains(log, "session error on GET /admin/ping") {
		t.Errorf("Redis gone was not logged as a session error:\n%s", log)
	}
}
