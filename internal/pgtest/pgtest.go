// Package pgtest starts throwaway PostgreSQL 15 servers for tests: initdb
// and pg_ctl into a temporary folder, on a free loopback port, stopped when
// the test ends. A test starts one server and takes a fresh database of it
// for each case (Server.Database), which is much cheaper than a server each.
//
// When PostgreSQL is not installed the test is skipped, unless
// FIELDHUB_REQUIRE_PG=1 (make test sets it): then it fails and says how to
// install it, so that CI never passes by skipping the PostgreSQL suites.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bin is where Debian's postgresql-15 package puts the server's programs.
const Bin = "/usr/lib/postgresql/15/bin"

// Install is the command that installs them.
const Install = "apt-get install -y --no-install-recommends postgresql-15"

// Server is a running throwaway PostgreSQL server.
type Server struct {
	// URL reaches its postgres database as the superuser postgres.
	URL  string
	dbs  atomic.Int64
	port int
}

// Options tune Start.
type Options struct {
	// ICU makes the databases' default collation ICU's en-US, which sorts
	// strings unlike bytes (as many production servers do), so that SQL that
	// needs byte order must ask for it. The default is C.UTF-8.
	ICU bool
	// Fsync keeps PostgreSQL's fsync on, for tests that kill the server or
	// measure commits; off by default, since tests never lose power.
	Fsync bool
}

// Start starts a server that stops when t ends, or skips t (fails it when
// FIELDHUB_REQUIRE_PG=1) when PostgreSQL is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(Bin, "initdb")); err != nil {
		msg := fmt.Sprintf("PostgreSQL 15 is not installed (no %s/initdb); install it with: %s", Bin, Install)
		if os.Getenv("FIELDHUB_REQUIRE_PG") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// t.TempDir is root's alone; the server may run as another user.
	dir, err := os.MkdirTemp("", "fieldhub-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var asUser []string
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and there is no postgres user to run PostgreSQL as (%s creates one)", Install)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Fatal("running as root, and there is no runuser to run PostgreSQL as postgres")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		argv := append(append(asUser[:len(asUser):len(asUser)], filepath.Join(Bin, name)), args...)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}

	data := filepath.Join(dir, "data")
	initdb := []string{"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"}
	icu := false
	if opts.ICU {
		err := run("initdb", append(initdb, "--locale-provider=icu", "--icu-locale=en-US")...)
		if icu = err == nil; !icu {
			t.Logf("initdb with ICU failed, falling back to the C.UTF-8 collation: %v", err)
			os.RemoveAll(data)
		}
	}
	if !icu {
		if err := run("initdb", initdb...); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	fsync := "off"
	if opts.Fsync {
		fsync = "on"
	}
	o := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=%s -c max_connections=200", port, dir, fsync)
	if err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", o, "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Error(err)
		}
	})
	return &Server{URL: dbURL(port, "postgres"), port: port}
}

func dbURL(port int, name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, url.PathEscape(name))
}

// Database creates a fresh, empty database and returns its URL. It is
// dropped when t ends.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	s.exec(t, `CREATE DATABASE `+name+` TEMPLATE template0`)
	t.Cleanup(func() { s.exec(t, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	return dbURL(s.port, name)
}

func (s *Server) exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
