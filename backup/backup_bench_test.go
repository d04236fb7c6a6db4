package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/backup"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/telemetry"
)

// BenchmarkBackupWhileIngesting backs up a large database (about 500 MB of
// message log) while 8 goroutines submit messages to the durable ingest
// pipeline, and compares their acknowledgement latency during the backup
// with the latency just before it: VACUUM INTO reads in its own
// transaction, so the writer should not wait for it. It runs once
// whatever b.N is.
func BenchmarkBackupWhileIngesting(b *testing.B) {
	const (
		messages = 250_000
		bodySize = 2000
		devices  = 100
	)
	ctx := context.Background()
	dir := b.TempDir()
	folder := backup.Folder{DB: filepath.Join(dir, "fieldhub.db"), TLSDir: filepath.Join(dir, "tls")}
	setup, err := db.Open(ctx, folder.DB, db.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%03d", i)
		if _, err := setup.CreateDevice(ctx, db.NewDevice{DeviceID: ids[i]}); err != nil {
			b.Fatal(err)
		}
	}
	// The log is filled with SQL: random bodies, which compress and dedupe
	// nowhere, as the worst case for a copy.
	if _, err := setup.Writer().ExecContext(ctx, `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)
		INSERT INTO messages (device_id, enqueued_at, auth_method, body)
		SELECT 1 + x % ?, ?, 'sas-primary', randomblob(?) FROM n`, messages, devices, time.Now().UnixMilli(), bodySize); err != nil {
		b.Fatal(err)
	}
	setup.Close()
	st, err := os.Stat(folder.DB)
	if err != nil {
		b.Fatal(err)
	}

	d, err := db.Open(ctx, folder.DB, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	p := ingest.New(dbtest.Telemetry(b, d), nil, ingest.Options{})
	defer p.Close(ctx)

	var (
		phase          atomic.Int32 // 0 before the backup, 1 during, 2 after
		mu             sync.Mutex
		before, during []time.Duration
		stop           atomic.Bool
		wg             sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				msg := telemetry.Message{DeviceID: ids[(w*31+n)%devices], AuthMethod: "sas-primary", Body: fmt.Appendf(nil, `{"n": %d, "w": %d}`, n, w)}
				ph := phase.Load()
				start := time.Now()
				if err := p.Submit(ctx, msg); err != nil {
					b.Error(err)
					return
				}
				lat := time.Since(start)
				mu.Lock()
				switch {
				case ph == 0 && phase.Load() == 0:
					before = append(before, lat)
				case ph == 1 && phase.Load() == 1:
					during = append(during, lat)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second) // the "before" sample
	b.ResetTimer()
	phase.Store(1)
	start := time.Now()
	if _, err := backup.Create(ctx, folder, filepath.Join(dir, "hub.backup"), "bench", false); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	phase.Store(2)
	stop.Store(true)
	wg.Wait()
	b.StopTimer()

	pct := func(lats []time.Duration, q float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		s := slices.Clone(lats)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(q*float64(len(s))))]) / 1e6
	}
	b.ReportMetric(float64(st.Size())/1e6, "db-MB")
	b.ReportMetric(took.Seconds(), "backup-s")
	b.ReportMetric(float64(len(during))/took.Seconds(), "msgs/s-during")
	b.ReportMetric(float64(len(before))/3, "msgs/s-before")
	b.ReportMetric(pct(before, 0.99), "ack-p99-ms-before")
	b.ReportMetric(pct(during, 0.99), "ack-p99-ms-during")
	b.ReportMetric(pct(before, 1), "ack-max-ms-before")
	b.ReportMetric(pct(during, 1), "ack-max-ms-during")
}
