package testkit

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

func TestStartPostgresAcceptsConnections(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("postgres", StartPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
	var addr string
	if err := db.QueryRow("SELECT inet_server_addr()::text").Scan(&addr); err != nil || addr != "127.0.0.1/32" {
		t.Fatalf("the server listens on %q (%v), want loopback only", addr, err)
	}
}

// TestPostgresStopsAndStartsOnTheSameAddressAndData is what a drill does:
// stop the server as a crash would, see clients fail, start it again on the
// same port, and find what was committed before.
func TestPostgresStopsAndStartsOnTheSameAddressAndData(t *testing.T) {
	t.Parallel()
	p := startPostgres(t)
	t.Cleanup(func() { p.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := sql.Open("postgres", p.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE drill (v TEXT); INSERT INTO drill VALUES ('before the stop')"); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	if pid == 0 {
		t.Fatal("no postmaster.pid while the server runs")
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() != 0 {
		t.Fatal("postmaster.pid is still there after Stop")
	}
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("the stopped server still answers")
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop of a stopped server: %v", err)
	}

	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == 0 || p.Pid() == pid {
		t.Fatalf("postmaster pid %d after the restart, %d before", p.Pid(), pid)
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM drill").Scan(&v); err != nil || v != "before the stop" {
		t.Fatalf("after the restart: %q, %v", v, err)
	}
}
