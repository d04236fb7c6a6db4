package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// BenchmarkChart1Year: GET …/readings for a year of a 1 Hz metric in 1,000
// buckets, as the device page's "1 y" asks, timed from request to parsed
// answer over the real router (server time plus a loopback round trip). The
// range is past the raw readings kept, so the hour rollups answer it:
// 8,760 rows for 31.5 million readings. The baseline is the same chart read
// from the minute rollups (525,600 rows, tier=1m).
//
// The rollup rows are generated directly, as a checkpoint would have stored
// them for one reading a second (count 3,600 a row, or 60 for minutes, and a
// daily sine wave for min, max and sum), through the storage's AddRollups in
// one transaction, rather than by ingesting 31.5 million readings.
func BenchmarkChart1Year(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	d := dbtest.MustOpen(b)
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		b.Fatal(err)
	}
	st := sqlite.New(d)
	tel, err := telemetry.Open(ctx, st, telemetry.Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	// One reading, older than any tier keeps, creates the metric.
	first := telemetry.NewRecord(telemetry.Message{DeviceID: "dev1", EnqueuedAt: now.Add(-3 * year), Body: []byte(`{"temp":20}`), AuthMethod: "sas-primary"})
	if _, err := tel.Append(ctx, []telemetry.Record{first}); err != nil {
		b.Fatal(err)
	}
	if _, err := tel.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	metricID, err := st.MetricID(ctx, "dev1", "temp")
	if err != nil {
		b.Fatal(err)
	}
	tx, err := st.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	gen := func(tier telemetry.Tier, from time.Time) []telemetry.Rollup {
		w := tier.Width()
		per := float64(w / 1000)
		var rows []telemetry.Rollup
		for at := from.UnixMilli(); at < now.UnixMilli(); at += w {
			v := 20 + 5*math.Sin(float64(at)/float64(24*time.Hour.Milliseconds())*2*math.Pi)
			rows = append(rows, telemetry.Rollup{Bucket: at, N: int(per), Min: v - 1, Max: v + 1, Sum: v * per})
		}
		return rows
	}
	hours, minutes := gen(telemetry.TierHour, now.Add(-2*year)), gen(telemetry.TierMinute, now.Add(-year))
	for _, g := range []struct {
		tier telemetry.Tier
		rows []telemetry.Rollup
	}{{telemetry.TierHour, hours}, {telemetry.TierMinute, minutes}} {
		if _, err := tx.AddRollups(ctx, metricID, g.tier, g.rows); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	r := testkit.NewRouter(b, func(c *handlers.Config) { c.Store, c.Telemetry = d, tel })
	chart := func(b *testing.B, tier string) (readings int) {
		url := fmt.Sprintf("%s/api/v1/devices/dev1/readings?metric=temp&from=%d&to=%d&points=1000", r.URL, now.Add(-year).UnixMilli(), now.UnixMilli())
		if tier != "" {
			url += "&tier=" + tier
		}
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+r.Tokens[db.RoleViewer])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Tier    string
			Buckets []struct{ Count int }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		if want := map[string]string{"": "1h", "1m": "1m"}[tier]; body.Tier != want {
			b.Fatalf("answered from %q, want %q", body.Tier, want)
		}
		for _, bk := range body.Buckets {
			readings += bk.Count
		}
		return readings
	}
	const baselineRuns = 3
	start := time.Now()
	for range baselineRuns {
		chart(b, "1m")
	}
	minutePer := time.Since(start) / baselineRuns

	b.ResetTimer()
	n := 0
	for b.Loop() {
		n = chart(b, "")
	}
	if want := 365 * 24 * 3600; n != want {
		b.Fatalf("the chart counts %d readings, want %d", n, want)
	}
	ours := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(ours.Microseconds())/1000, "ms/chart")
	b.ReportMetric(float64(minutePer.Microseconds())/1000, "minute-tier-ms/chart")
	b.ReportMetric(float64(n), "readings/chart")
}
