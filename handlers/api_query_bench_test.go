package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/internal/testkit"
)

// fillQueryFleet writes n devices with a real fleet's tags and twins (20
// sites, 4 firmware versions, a few hundred bytes of twin) straight into
// the tables, in one transaction: the benchmark measures queries, not
// registration.
func fillQueryFleet(b testing.TB, d *db.DB, n int) {
	b.Helper()
	r := rand.New(rand.NewPCG(42, 42))
	sites := []string{"berlin", "paris", "rome", "madrid", "lisbon", "vienna", "prague", "warsaw", "oslo", "helsinki",
		"dublin", "london", "amsterdam", "brussels", "zurich", "milan", "munich", "hamburg", "lyon", "porto"}
	firmware := []string{"1.9.4", "2.0.1", "2.1.0", "2.2.3"}
	tx, err := d.Writer().Begin()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	for i := range n {
		tags := fmt.Sprintf(`{"site": %q, "floor": "%d", "line": "L%d", "owner": "ops-team-%d"}`,
			sites[r.IntN(len(sites))], r.IntN(12), r.IntN(40), r.IntN(5))
		res, err := tx.Exec(`INSERT INTO devices (device_id, name, tags, primary_key, secondary_key, auth_type,
			primary_thumbprint, secondary_thumbprint, enabled, created_at, updated_at, last_activity_at)
			VALUES (?, ?, ?, ?, ?, 'sas', '', '', 1, 0, 0, ?)`,
			fmt.Sprintf("device-%05d", i), fmt.Sprintf("Pump %d", i), tags, db.NewDeviceKey(), db.NewDeviceKey(), 1714521600000+int64(r.IntN(1e9)))
		if err != nil {
			b.Fatal(err)
		}
		id, _ := res.LastInsertId()
		desired := fmt.Sprintf(`{"intervalSeconds": %d, "mode": "eco", "thresholds": {"temp": %d, "pressure": %.1f}}`,
			[]int{5, 10, 30, 60}[r.IntN(4)], 60+r.IntN(30), 1+r.Float64()*3)
		reported := fmt.Sprintf(`{"firmware": %q, "intervalSeconds": %d, "mode": "eco", "uptime": %d, "battery": %.2f,`+
			`"network": {"type": "cellular", "rssi": %d, "operator": "op-%d"}, "telemetryConfig": {"status": %q}}`,
			firmware[r.IntN(len(firmware))], []int{5, 10, 30, 60}[r.IntN(4)], r.IntN(1e7), r.Float64(),
			-50-r.IntN(60), r.IntN(9), []string{"Success", "Pending", "Error"}[r.IntN(3)])
		if _, err := tx.Exec(`INSERT INTO twins (device_id, desired, desired_version, reported, reported_version, updated_at)
			VALUES (?, ?, ?, ?, ?, 0)`, id, desired, 1+r.IntN(5), reported, 1+r.IntN(20)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Writer().ExecContext(context.Background(), "ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQuery10k is issue 13's fleet query figure: a whole POST
// /api/v1/devices/query request over 10,000 devices, through the real
// router and a real SQLite file.
func BenchmarkQuery10k(b *testing.B) {
	r := testkit.NewRouter(b)
	fillQueryFleet(b, r.DB, 10_000)
	const tagAndTwin = "SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'"
	for _, bc := range []struct {
		name, query string
		pageSize    int
	}{
		{"tag-and-twin-first-page", tagAndTwin, 100},
		{"tag-and-twin-all", tagAndTwin, 1000},
		{"count-group-by-site", "SELECT tags.site, COUNT() AS n FROM devices GROUP BY tags.site", 100},
		{"twin-only-all", "SELECT * FROM devices WHERE properties.reported.network.rssi < -100 AND properties.desired.mode = 'eco'", 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := fmt.Sprintf(`{"query": %q, "pageSize": %d}`, bc.query, bc.pageSize)
			items := 0
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, r.URL+"/api/v1/devices/query", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+r.Tokens[db.RoleViewer])
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var page struct {
					Items []json.RawMessage `json:"items"`
				}
				err = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d, %v", resp.StatusCode, err)
				}
				items = len(page.Items)
			}
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/op")
			b.ReportMetric(float64(items), "items")
		})
	}
}
