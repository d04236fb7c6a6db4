package ingest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgCost reads what a phase of the PostgreSQL store cost, to divide by its
// messages: WAL bytes written (pg_current_wal_lsn), the server's CPU time
// (every process of the postmaster, from /proc) and the hub's own (this
// process, getrusage). CPU time and bytes do not depend on how loaded the
// machine is, unlike the rates.
type pgCost struct {
	pool      *pgxpool.Pool
	dataDir   string
	postmastr int
}

type pgCostAt struct {
	lsn    string
	wal    int64
	server time.Duration
	// backends is the part of server spent by the client connections'
	// backends (not the WAL writer, checkpointer or autovacuum, whose work
	// comes in bursts that a short phase may or may not catch).
	backends time.Duration
	hub      time.Duration
}

func newPGCost(b *testing.B, pool *pgxpool.Pool) *pgCost {
	b.Helper()
	c := &pgCost{pool: pool}
	if err := pool.QueryRow(context.Background(), `SELECT current_setting('data_directory')`).Scan(&c.dataDir); err != nil {
		b.Fatal(err)
	}
	pid, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err == nil {
		c.postmastr, _ = strconv.Atoi(strings.SplitN(string(pid), "\n", 2)[0])
	}
	return c
}

func (c *pgCost) at(b *testing.B) pgCostAt {
	b.Helper()
	var a pgCostAt
	if err := c.pool.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text, pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&a.lsn, &a.wal); err != nil {
		b.Fatal(err)
	}
	a.server, a.backends = c.serverCPU()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	a.hub = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return a
}

// serverCPU sums utime and stime of the postmaster and its children
// (backends, WAL writer, checkpointer), and of the client backends alone;
// 0 when /proc cannot tell.
func (c *pgCost) serverCPU() (server, backends time.Duration) {
	if c.postmastr == 0 {
		return 0, 0
	}
	ents, _ := os.ReadDir("/proc")
	var ticks, backendTicks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid … utime(14) stime(15).
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != c.postmastr && ppid != c.postmastr {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
		// A client backend's title is "postgres: user database host ...".
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), "127.0.0.1") {
			backendTicks += ut + st
		}
	}
	const hz = 100 // USER_HZ
	return time.Duration(ticks) * time.Second / hz, time.Duration(backendTicks) * time.Second / hz
}

// walStats writes pg_waldump's summary of the WAL between two points, by
// kind of record, into the file FIELDHUB_PG_WALSTATS names (with the phase's name appended), when set (a profile of what a phase
// wrote: heap rows, index entries, full-page images).
func (c *pgCost) walStats(from, to pgCostAt, phase string) string {
	if os.Getenv("FIELDHUB_PG_WALSTATS") == "" {
		return ""
	}
	out, err := exec.Command("/usr/lib/postgresql/15/bin/pg_waldump", "--stats=record", "-p", filepath.Join(c.dataDir, "pg_wal"),
		"-s", from.lsn, "-e", to.lsn).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("pg_waldump: %v\n%s", err, out)
	}
	name := os.Getenv("FIELDHUB_PG_WALSTATS") + "." + phase
	if err := os.WriteFile(name, out, 0o644); err != nil {
		return err.Error()
	}
	return "written to " + name
}
