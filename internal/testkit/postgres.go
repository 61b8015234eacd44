package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Postgres is a throwaway PostgreSQL server on a loopback port: its own
// cluster in a directory of its own, started and stopped with pg_ctl,
// without fsync: what it commits survives a stop, even an immediate one,
// but not a crash of the machine, which no test needs.
// Drills stop and start it again on the same address and data.
//
// PostgreSQL refuses to run as root. When this process is root, the
// binaries run as the "postgres" user (runuser -u postgres --), which owns
// the directory; otherwise they run as this process's user.
type Postgres struct {
	Addr string // 127.0.0.1:port
	DSN  string // postgres://postgres@Addr/postgres?sslmode=disable: the superuser, trust authentication

	bin    string // the directory holding initdb, pg_ctl and postgres
	dir    string // the cluster (data/), the socket and the server's log
	asUser string // "postgres" when this process is root, else ""
}

// PostgresBin returns the directory of PostgreSQL's server binaries:
// Debian's postgresql package installs them, one directory per major
// version, under /usr/lib/postgresql/*/bin (the newest is chosen);
// elsewhere pg_ctl may be on PATH.
func PostgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "pg_ctl")) && isFile(filepath.Join(d, "postgres")) && isFile(filepath.Join(d, "pg_isready")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed (no initdb, pg_ctl and postgres under /usr/lib/postgresql/*/bin or on PATH)")
}

func pgMajor(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// StartPostgresServer creates a cluster in dir/data with bin's initdb and
// starts it on addr, or on a free loopback port when addr is empty, with
// its Unix socket and log in dir. It returns once the server accepts
// connections. When this process is root, dir is handed to the postgres
// user, which must be able to reach it (every parent searchable).
func StartPostgresServer(ctx context.Context, bin, dir, addr string) (*Postgres, error) {
	if addr == "" {
		var err error
		if addr, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	// A Unix socket path is at most 107 bytes on Linux.
	if sock := filepath.Join(dir, ".s.PGSQL."+port+".lock"); len(sock) > 107 {
		return nil, fmt.Errorf("postgres: socket path %s is too long for a Unix socket", sock)
	}
	p := &Postgres{
		Addr: addr,
		DSN:  "postgres://postgres@" + addr + "/postgres?sslmode=disable",
		bin:  bin,
		dir:  dir,
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres: running as root needs a postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		p.asUser = "postgres"
	}
	if out, err := p.command(ctx, "initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	// The settings go into the cluster's configuration, so that Start
	// after Stop serves the same port and socket.
	conf := fmt.Sprintf("\n# testkit\nlisten_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n"+
		"fsync = off\nfull_page_writes = off\nmax_connections = 200\n", port, strings.ReplaceAll(dir, "'", "''"))
	f, err := os.OpenFile(filepath.Join(p.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return p, p.Start(ctx)
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

// command runs one of the server binaries, as the postgres user when this
// process is root.
func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if p.asUser == "" {
		return exec.CommandContext(ctx, path, args...)
	}
	runuser := "runuser"
	if lp, err := exec.LookPath(runuser); err == nil {
		runuser = lp
	} else if isFile("/usr/sbin/runuser") {
		runuser = "/usr/sbin/runuser"
	}
	return exec.CommandContext(ctx, runuser, append([]string{"-u", p.asUser, "--", path}, args...)...)
}

// Start starts the server (again, after [Postgres.Stop]) on its address
// and data, and waits until it accepts connections on its TCP port.
func (p *Postgres) Start(ctx context.Context) error {
	var out bytes.Buffer
	start := p.command(ctx, "pg_ctl", "start", "-D", p.data(), "-l", p.logFile(), "-s", "-w", "-t", "60")
	start.Stdout, start.Stderr = &out, &out
	if err := start.Run(); err != nil {
		p.Stop() // pg_ctl may have been killed by ctx after the server started
		return fmt.Errorf("postgres: pg_ctl start: %w\n%s\n%s", err, out.String(), p.Output())
	}
	host, port, _ := net.SplitHostPort(p.Addr)
	for {
		// pg_isready is a client: it needs no user switch.
		if exec.CommandContext(ctx, filepath.Join(p.bin, "pg_isready"), "-q", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres").Run() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			p.Stop()
			return fmt.Errorf("postgres: not accepting connections on %s: %w\n%s", p.Addr, ctx.Err(), p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the server in immediate mode, as a crash would: no
// checkpoint, every connection cut; the next Start recovers from the WAL.
// It waits until the server has exited. Stopping a stopped server does
// nothing.
func (p *Postgres) Stop() error {
	if p.Pid() == 0 {
		return nil
	}
	out, err := p.command(context.Background(), "pg_ctl", "stop", "-D", p.data(), "-m", "immediate", "-s", "-w", "-t", "60").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postgres: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Pid is the postmaster's process id, or 0 when the server is not running.
func (p *Postgres) Pid() int {
	b, err := os.ReadFile(filepath.Join(p.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func (p *Postgres) logFile() string { return filepath.Join(p.dir, "postgres.log") }

// Output is what the server logged.
func (p *Postgres) Output() string {
	b, _ := os.ReadFile(p.logFile())
	return string(b)
}

// RequirePostgres returns the directory of PostgreSQL's server binaries
// (see [PostgresBin]). When PostgreSQL is not installed it skips the test,
// or fails it under CI: .ci/run installs Debian's postgresql package. As
// root it also needs runuser and a postgres user, which the package
// creates.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	bin, err := PostgresBin()
	if err == nil && os.Geteuid() == 0 {
		if _, uerr := user.Lookup("postgres"); uerr != nil {
			err = fmt.Errorf("PostgreSQL must run as a postgres user, and there is none: %w", uerr)
		}
	}
	if err != nil {
		if InCI() {
			t.Fatalf("%v; .ci/run installs it", err)
		}
		t.Skip(err)
	}
	return bin
}

// StartPostgres runs a throwaway PostgreSQL server for the test, on a free
// loopback port with its cluster in a temporary directory, and returns its
// DSN (the superuser "postgres", database "postgres", no password, no
// TLS). The server is stopped when the test ends. Outside CI a missing
// PostgreSQL skips the test; under CI it fails it.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	p := startPostgres(t)
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p.DSN
}

// startPostgres starts the server StartPostgres describes and returns it;
// the caller stops it.
func startPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := RequirePostgres(t)
	dir := t.TempDir()
	if err := chmodTempParent(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := StartPostgresServer(ctx, bin, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// chmodTempParent lets the postgres user pass through the parent of dir, a
// t.TempDir: testing creates it private to this user (0700). Only root
// needs this; otherwise the server runs as this user.
func chmodTempParent(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Chmod(filepath.Dir(dir), 0o711)
}
