package query

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchQuery is issue 13's example: a tag and a twin property.
const benchQuery = "SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'"

// benchFleet makes n devices as a real fleet looks: a few tags, a desired
// and a reported twin of a few hundred bytes, 20 sites, 4 firmware versions.
func benchFleet(b *testing.B, n int) []testDevice {
	r := rand.New(rand.NewPCG(42, 42))
	sites := []string{"berlin", "paris", "rome", "madrid", "lisbon", "vienna", "prague", "warsaw", "oslo", "helsinki",
		"dublin", "london", "amsterdam", "brussels", "zurich", "milan", "munich", "hamburg", "lyon", "porto"}
	firmware := []string{"1.9.4", "2.0.1", "2.1.0", "2.2.3"}
	fleet := make([]testDevice, n)
	for i := range fleet {
		d := &fleet[i]
		d.id = fmt.Sprintf("device-%05d", i)
		d.name = fmt.Sprintf("Pump %d", i)
		d.status = "enabled"
		d.conn = []string{"Connected", "Disconnected"}[r.IntN(2)]
		online := d.conn == "Connected"
		d.online = &online
		last := time.Date(2024, 5, 1, 0, 0, r.IntN(86400*30), 0, time.UTC).Format("2006-01-02T15:04:05.000Z")
		d.lastActivity = &last
		tags := fmt.Sprintf(`{"site": %q, "floor": %d, "line": "L%d", "owner": "ops-team-%d"}`,
			sites[r.IntN(len(sites))], r.IntN(12), r.IntN(40), r.IntN(5))
		desired := fmt.Sprintf(`{"intervalSeconds": %d, "mode": "eco", "thresholds": {"temp": %d, "pressure": %.1f}}`,
			[]int{5, 10, 30, 60}[r.IntN(4)], 60+r.IntN(30), 1+r.Float64()*3)
		reported := fmt.Sprintf(`{"firmware": %q, "intervalSeconds": %d, "mode": "eco", "uptime": %d, "battery": %.2f,`+
			`"network": {"type": "cellular", "rssi": %d, "operator": "op-%d"}, "telemetryConfig": {"status": %q}}`,
			firmware[r.IntN(len(firmware))], []int{5, 10, 30, 60}[r.IntN(4)], r.IntN(1e7), r.Float64(),
			-50-r.IntN(60), r.IntN(9), []string{"Success", "Pending", "Error"}[r.IntN(3)])
		version := int64(1 + r.IntN(20))
		d.tags, d.desired, d.reported, d.version = &tags, &desired, &reported, &version
		d.doc = d.document(b)
	}
	return fleet
}

func BenchmarkMatch10k(b *testing.B) {
	fleet := benchFleet(b, 10_000)
	q, err := Parse(benchQuery)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var n int
	for b.Loop() {
		n = 0
		for _, d := range fleet {
			if q.Match(d.doc) {
				n++
			}
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/op")
	b.ReportMetric(float64(n), "matches")
}

func BenchmarkSQLite10k(b *testing.B) {
	fleet := benchFleet(b, 10_000)
	db := sqliteFleet(b, fleet)
	q, err := Parse(benchQuery)
	if err != nil {
		b.Fatal(err)
	}
	where, args, err := q.SQL(SQLite, testMapper)
	if err != nil {
		b.Fatal(err)
	}
	want := 0
	for _, d := range fleet {
		if q.Match(d.doc) {
			want++
		}
	}
	// The rows a store would read to answer the query: the devices' columns.
	stmt, err := db.Prepare("SELECT id, name, status, conn, online, last_activity, version, tags, desired, reported FROM devs WHERE " + where)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	b.ResetTimer()
	for b.Loop() {
		rows, err := stmt.Query(args...)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id, name, status, conn string
			var online sql.NullBool
			var last, tags, desired, reported sql.NullString
			var version sql.NullInt64
			if err := rows.Scan(&id, &name, &status, &conn, &online, &last, &version, &tags, &desired, &reported); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := rows.Close(); err != nil {
			b.Fatal(err)
		}
		if n != want {
			b.Fatalf("SQL selects %d devices, Match %d", n, want)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/op")
	b.ReportMetric(float64(want), "matches")
}

func BenchmarkParseAndCompile(b *testing.B) {
	for b.Loop() {
		q, err := Parse(benchQuery)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := q.SQL(SQLite, testMapper); err != nil {
			b.Fatal(err)
		}
	}
}
