package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/internal/pgtest"
	"fieldhub/telemetry"
	"fieldhub/telemetry/postgres"
)

// BenchmarkInsertMessages is the log's part of a group commit alone: a
// transaction that logs 600 messages of 100 devices (an SDK batch's
// commit in ingest.BenchmarkIngestPostgres) and commits, one after the
// other. It reports the server's CPU time a message (every process of the
// postmaster, from /proc) and WAL bytes a message, which a loaded machine
// moves much less than it moves rates; full=N makes N messages of each
// commit carry optional system properties (the full row layout).
func BenchmarkInsertMessages(b *testing.B) {
	srv := pgtest.Start(b, pgtest.Options{})
	for _, full := range []int{0, 1, 300} {
		b.Run(fmt.Sprintf("full=%d", full), func(b *testing.B) {
			ctx := context.Background()
			d, err := dbpostgres.Open(ctx, srv.Database(b))
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			var devs []int64
			for i := range 100 {
				dev, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("dev-%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				devs = append(devs, dev.ID)
			}
			st, err := postgres.New(ctx, d.Pool(), "")
			if err != nil {
				b.Fatal(err)
			}
			msgs := make([]telemetry.Message, 600)
			rows := make([]telemetry.MessageRow, len(msgs))
			for i := range msgs {
				msgs[i] = telemetry.Message{DeviceID: fmt.Sprintf("dev-%d", i%100), AuthMethod: "sas-primary", EnqueuedAt: time.Now(),
					Body: fmt.Appendf(nil, `{"temperature":%d.25,"humidity":41.5,"pressure":1013.2,"battery":87.5,"rssi":-67.0}`, i)}
				if i < full {
					msgs[i].MessageID, msgs[i].Properties = fmt.Sprint(i), map[string]string{"alert": "no"}
				}
				rows[i] = telemetry.MessageRow{Device: devs[i%100], Message: &msgs[i]}
			}
			cpu0, wal0 := serverCost(b, d)
			b.ResetTimer()
			for range b.N {
				tx, err := st.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.InsertMessages(ctx, rows); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu1, wal1 := serverCost(b, d)
			n := float64(b.N * len(rows))
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/n, "server-cpu-us/msg")
			b.ReportMetric(float64(wal1-wal0)/n, "wal-B/msg")
		})
	}
}

// serverCost is the server's CPU time so far (utime + stime of the
// postmaster and its children) and its WAL position in bytes.
func serverCost(b *testing.B, d *dbpostgres.Store) (time.Duration, int64) {
	b.Helper()
	var dir string
	var wal int64
	if err := d.Pool().QueryRow(context.Background(), `SELECT current_setting('data_directory'), pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&dir, &wal); err != nil {
		b.Fatal(err)
	}
	pid, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	postmaster, _ := strconv.Atoi(strings.SplitN(string(pid), "\n", 2)[0])
	ents, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range ents {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid … utime(14) stime(15).
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 || (e.Name() != strconv.Itoa(postmaster) && f[1] != strconv.Itoa(postmaster)) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * time.Second / 100, wal // USER_HZ
}
