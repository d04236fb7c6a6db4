// Command summary reads the output of `go test -bench` (the standard text
// lines, custom metrics included) and prints the performance figures the
// issues ask for, each beside its same-run baseline, the ratio between them,
// the target and whether the target was met. Usage:
//
//	go run ./bench/summary bench/out/bench.txt
//
// It exits 1 when a figure is missing (its benchmark failed or did not run).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// metric names one value: a benchmark, as "<package>.<Benchmark>[/sub]",
// and a unit it reported. scale converts it to the unit the table shows.
type metric struct {
	bench, unit string
	scale       float64
}

func m(bench, unit string) metric { return metric{bench: bench, unit: unit, scale: 1} }

// target is a bound from an issue: the figure (or, with ratio, the
// figure divided by its same-run baseline) must be at least (atLeast) or at
// most the value.
type target struct {
	atLeast bool
	ratio   bool
	value   float64
}

func atLeast(v float64) *target { return &target{atLeast: true, value: v} }
func atMost(v float64) *target  { return &target{value: v} }

// ratioAtLeast bounds the ratio to the baseline, which the noise of a
// shared machine moves much less than either figure alone.
func ratioAtLeast(v float64) *target { return &target{atLeast: true, ratio: true, value: v} }

func (t *target) String() string {
	op := "≤ "
	if t.atLeast {
		op = "≥ "
	}
	if t.ratio {
		return op + format(t.value) + "× baseline"
	}
	return op + format(t.value)
}

// figure is one row of the table. A zero baseline metric means the issue
// names no baseline for it and none was measured.
type figure struct {
	name     string
	unit     string
	value    metric
	baseline metric
	baseName string // what the baseline is
	target   *target
	// choose, when set, names the row and picks its value from the
	// results: a figure that is measured on one machine and projected on
	// another says which it is.
	choose func(results) (name string, value metric)
}

type section struct {
	title   string
	figures []figure
}

// sections lists the figures of the performance sections of issues 2, 3, 5, 9, 10, 11 and 13.
var sections = []section{
	{"Issue 2: fleet page", []figure{
		{name: "fleet page render, 10,000 devices", unit: "ms", value: metric{"views.BenchmarkFleetPage10k", "ns/op", 1e-6}},
	}},
	{"Issue 3: HTTPS ingest, real binary, 1,000 devices, 1,000 keep-alive HTTPS clients (bench.BenchmarkHubHTTPS)", []figure{
		{name: "single messages", unit: "msgs/s", value: m("bench.BenchmarkHubHTTPS", "msgs/s"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-req/s"), baseName: "bare Echo HTTPS 204", target: atLeast(10_000)},
		{name: "single messages", unit: "readings/s", value: m("bench.BenchmarkHubHTTPS", "readings/s"),
			baseline: m("ingest.BenchmarkIngestSingle", "naive-rows/s"), baseName: "naive SQLite layout", target: atLeast(100_000)},
		{name: "ack p50, saturated", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "ack-p50-ms"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-ack-p50-ms"), baseName: "bare Echo HTTPS 204"},
		{name: "ack p99, saturated", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "ack-p99-ms"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-ack-p99-ms"), baseName: "bare Echo HTTPS 204"},
		{name: "ack p50 at half the max rate", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "half-ack-p50-ms"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-half-ack-p50-ms"), baseName: "bare Echo, same rate"},
		{name: "ack p99 at half the max rate", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "half-ack-p99-ms"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-half-ack-p99-ms"), baseName: "bare Echo, same rate", target: atMost(50)},
		{name: "SDK batches of 50", unit: "readings/s", value: m("bench.BenchmarkHubHTTPS", "batch-readings/s"),
			baseline: m("ingest.BenchmarkIngestBatched", "naive-rows/s"), baseName: "naive SQLite layout", target: atLeast(200_000)},
		{name: "SDK batches of 50", unit: "readings/s", value: m("bench.BenchmarkHubHTTPS", "batch-readings/s"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-batch-readings/s"), baseName: "bare Echo HTTPS 204"},
		{name: "server CPU, single messages", unit: "cores", value: m("bench.BenchmarkHubHTTPS", "cpu-cores"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-cpu-cores"), baseName: "bare Echo HTTPS 204"},
		{name: "server peak RSS (VmHWM), whole run", unit: "MB", value: m("bench.BenchmarkHubHTTPS", "peak-rss-MB"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-peak-rss-MB"), baseName: "bare Echo HTTPS 204", target: atMost(150)},
		{name: "  of which during single messages", unit: "MB", value: m("bench.BenchmarkHubHTTPS", "single-peak-rss-MB")},
		{name: "  of which during SDK batches", unit: "MB", value: m("bench.BenchmarkHubHTTPS", "batch-peak-rss-MB")},
		{name: "new reading on the live stream after 204, p99", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "visible-sse-p99-ms"), target: atMost(1000)},
		{name: "new reading in the readings API after 204, p99", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "visible-api-p99-ms"), target: atMost(1000)},
		{name: "requests refused with 503 + Retry-After, all phases", unit: "", value: m("bench.BenchmarkHubHTTPS", "rejected-503")},
		{name: "database file per reading (message log included)", unit: "bytes", value: m("bench.BenchmarkHubHTTPS", "disk-bytes/reading"),
			baseline: m("telemetry.BenchmarkChart7Days", "naive-bytes/reading"), baseName: "naive layout, readings only"},
	}},
	{"Issue 3: ingest pipeline in-process, durable, 1,000 devices (ingest, telemetry)", []figure{
		{name: "single messages", unit: "readings/s", value: m("ingest.BenchmarkIngestSingle", "readings/s"),
			baseline: m("ingest.BenchmarkIngestSingle", "naive-rows/s"), baseName: "naive SQLite layout", target: atLeast(100_000)},
		{name: "batches of 50", unit: "readings/s", value: m("ingest.BenchmarkIngestBatched", "readings/s"),
			baseline: m("ingest.BenchmarkIngestBatched", "naive-rows/s"), baseName: "naive SQLite layout", target: atLeast(200_000)},
		{name: "ack p99 at half the sustained rate", unit: "ms", value: m("ingest.BenchmarkAckLatency", "p99-ms"),
			baseline: m("ingest.BenchmarkAckLatency", "commit-p50-ms"), baseName: "one durable commit", target: atMost(50)},
		{name: "stored readings, chunk data", unit: "bytes/reading", value: m("ingest.BenchmarkIngestSingle", "chunk-bytes/reading"),
			baseline: m("telemetry.BenchmarkChart7Days", "naive-bytes/reading"), baseName: "naive layout"},
		{name: "7-day 1 Hz series on disk", unit: "bytes/reading", value: m("telemetry.BenchmarkChart7Days", "bytes/reading"),
			baseline: m("telemetry.BenchmarkChart7Days", "naive-bytes/reading"), baseName: "naive layout"},
		{name: "7-day chart of a 1 Hz metric (604,800 readings)", unit: "ms", value: m("telemetry.BenchmarkChart7Days", "ms/chart"),
			baseline: m("telemetry.BenchmarkChart7Days", "naive-ms/chart"), baseName: "naive layout", target: atMost(50)},
	}},
	{"Issue 3: live streams, 100 subscribers × 1,000 events/s, stalled subscribers (live)", []figure{
		{name: "delivery p99", unit: "ms", value: metric{"live.BenchmarkFanOut", "p99-µs", 1e-3}, target: atMost(10)},
		{name: "publish p99 (ingest's cost)", unit: "ms", value: metric{"live.BenchmarkFanOut", "publish-p99-µs", 1e-3}},
	}},
	{"Issue 5: MQTT over TLS, QoS 1, 1,000 devices (mqtt.BenchmarkIngest)", []figure{
		{name: "durable PUBACK, 1 in flight per device", unit: "msgs/s", value: m("mqtt.BenchmarkIngest/fieldhub", "msgs/s"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "msgs/s"), baseName: "bare mochi", target: atLeast(20_000)},
		{name: "durable PUBACK, 1 in flight per device", unit: "readings/s", value: m("mqtt.BenchmarkIngest/fieldhub", "readings/s"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "readings/s"), baseName: "bare mochi", target: atLeast(200_000)},
		{name: "durable PUBACK, 16 in flight per device", unit: "msgs/s", value: m("mqtt.BenchmarkIngest/fieldhub-16-in-flight", "msgs/s"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi-16-in-flight", "msgs/s"), baseName: "bare mochi", target: atLeast(20_000)},
		{name: "durable PUBACK, 16 in flight per device", unit: "readings/s", value: m("mqtt.BenchmarkIngest/fieldhub-16-in-flight", "readings/s"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi-16-in-flight", "readings/s"), baseName: "bare mochi", target: atLeast(200_000)},
		{name: "PUBACK p50, saturated", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub", "puback-p50-ms"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "puback-p50-ms"), baseName: "bare mochi"},
		{name: "PUBACK p99, saturated", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub", "puback-p99-ms"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "puback-p99-ms"), baseName: "bare mochi"},
		{name: "PUBACK p99 at half the max rate", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub-half-rate", "puback-p99-ms")},
		{name: "peak RSS, broker process", unit: "MB", value: m("mqtt.BenchmarkIngest/fieldhub", "peak-rss-MB"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "peak-rss-MB"), baseName: "bare mochi"},
		{name: "broker CPU per message, 1 in flight per device", unit: "µs", value: m("mqtt.BenchmarkIngest/fieldhub", "cpu-us/msg"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "cpu-us/msg"), baseName: "bare mochi"},
		{name: "method round trip p99, 1,000 devices sending at half the max rate", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub-half-rate", "method-p99-ms"), target: atMost(20)},
		{name: "  its way out p99: the hub's write to the device's answer", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub-half-rate", "method-out-p99-ms")},
		{name: "  its way back p99: the answer to the caller", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub-half-rate", "method-back-p99-ms")},
		{name: "method round trip p99, 1,000 devices saturating the hub", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub", "method-p99-ms")},
		{name: "10,000 idle TLS connections, RSS", unit: "MB", value: m("mqtt.BenchmarkIdleConnections", "rss-MB"), target: atMost(500)},
	}},
	{"Issue 11: idle MQTT/TLS devices on one instance, SAS, keep-alive 180 s (mqtt.BenchmarkIdleConnections)", []figure{
		{name: "RSS, 5,000 idle devices", unit: "MB", value: m("mqtt.BenchmarkIdleConnections", "rss-MB-at-5000")},
		{name: "RSS, 10,000 idle devices", unit: "MB", value: m("mqtt.BenchmarkIdleConnections", "rss-MB-at-10000")},
		{unit: "MB", choose: idleLargest},
		{name: "memory per idle connection (slope from 5,000 up)", unit: "KB", value: m("mqtt.BenchmarkIdleConnections", "KB/connection")},
		{unit: "MB", choose: idleTarget, target: atMost(3072)},
		{unit: "s", choose: idleConnectTime},
		{name: "  connections per second", unit: "conn/s", value: m("mqtt.BenchmarkIdleConnections", "connects/s")},
	}},
	{"Issue 11: PostgreSQL store, durable ingest pipeline in-process, 1,000 devices, beside SQLite (ingest.BenchmarkIngestPostgres)", []figure{
		{name: "single messages", unit: "msgs/s", value: m("ingest.BenchmarkIngestPostgres", "pg-single-msgs/s"),
			baseline: m("ingest.BenchmarkIngestPostgres", "sqlite-single-msgs/s"), baseName: "SQLite store"},
		{name: "  PostgreSQL ÷ SQLite, single messages", unit: "×", value: m("ingest.BenchmarkIngestPostgres", "pg-x-sqlite-single"), target: atLeast(0.5)},
		{name: "SDK batches of 50", unit: "msgs/s", value: m("ingest.BenchmarkIngestPostgres", "pg-batched-msgs/s"),
			baseline: m("ingest.BenchmarkIngestPostgres", "sqlite-batched-msgs/s"), baseName: "SQLite store"},
		{name: "  PostgreSQL ÷ SQLite, SDK batches", unit: "×", value: m("ingest.BenchmarkIngestPostgres", "pg-x-sqlite-batched"), target: atLeast(0.5)},
		{name: "ack p99 at half the store's max rate", unit: "ms", value: m("ingest.BenchmarkIngestPostgres", "pg-ack-p99-ms"),
			baseline: m("ingest.BenchmarkIngestPostgres", "sqlite-ack-p99-ms"), baseName: "SQLite store"},
	}},
	{"Issue 11: direct method across instances, device on A, caller on B, real nats-server (bus.BenchmarkMethodAcrossInstances)", []figure{
		{name: "round trip p99 at half the max rate", unit: "ms", value: m("bus.BenchmarkMethodAcrossInstances/invoke/half-load", "p99-ms"), target: atMost(20)},
		{name: "round trip p99, 8 callers flat out", unit: "ms", value: m("bus.BenchmarkMethodAcrossInstances/invoke/callers=8", "p99-ms"),
			baseline: m("bus.BenchmarkMethodAcrossInstances/local/callers=8", "p99-ms"), baseName: "caller on A too"},
		{name: "round trip p50, 8 callers flat out", unit: "ms", value: m("bus.BenchmarkMethodAcrossInstances/invoke/callers=8", "p50-ms"),
			baseline: m("bus.BenchmarkMethodAcrossInstances/local/callers=8", "p50-ms"), baseName: "caller on A too"},
	}},
	{"Issue 10: the ingest paths beside their bare servers (bench.BenchmarkHubHTTPS, mqtt.BenchmarkIngest)", []figure{
		{name: "HTTPS single messages", unit: "msgs/s", value: m("bench.BenchmarkHubHTTPS", "msgs/s"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-req/s"), baseName: "bare Echo HTTPS 204", target: ratioAtLeast(0.7)},
		{name: "HTTPS ack p99 at half the max rate", unit: "ms", value: m("bench.BenchmarkHubHTTPS", "half-ack-p99-ms"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-half-ack-p99-ms"), baseName: "bare Echo, same rate", target: atMost(50)},
		{name: "HTTPS server peak RSS, every phase (the largest)", unit: "MB", value: m("bench.BenchmarkHubHTTPS", "peak-rss-MB"),
			baseline: m("bench.BenchmarkHubHTTPS", "bare-peak-rss-MB"), baseName: "bare Echo HTTPS 204", target: atMost(150)},
		{name: "MQTT durable PUBACK, 1 in flight per device", unit: "msgs/s", value: m("mqtt.BenchmarkIngest/fieldhub", "msgs/s"),
			baseline: m("mqtt.BenchmarkIngest/bare-mochi", "msgs/s"), baseName: "bare mochi", target: ratioAtLeast(0.7)},
		{name: "MQTT method round trip p99 at half the max rate", unit: "ms", value: m("mqtt.BenchmarkIngest/fieldhub-half-rate", "method-p99-ms"), target: atMost(20)},
	}},
	{"Issue 13: device query, 10,000 devices, tag + twin conditions (query)", []figure{
		{name: "matched in Go (Match)", unit: "ms", value: m("query.BenchmarkMatch10k", "ms/op"), target: atMost(100)},
		{name: "as SQL on SQLite, rows read", unit: "ms", value: m("query.BenchmarkSQLite10k", "ms/op"), target: atMost(100)},
	}},
	{"Issue 12: alert evaluation, durable ingest of single messages from 1,000 devices (alerting.BenchmarkIngestWithRules)", []figure{
		{name: "100 rules, values crossing their limits", unit: "msgs/s", value: m("alerting.BenchmarkIngestWithRules", "msgs/s-100-rules"),
			baseline: m("alerting.BenchmarkIngestWithRules", "msgs/s-no-rules"), baseName: "no rules, same run"},
		{name: "  ratio to no rules", unit: "×", value: m("alerting.BenchmarkIngestWithRules", "ratio"), target: atLeast(0.9)},
		{name: "alert raised after its message, p99, under load", unit: "ms", value: m("alerting.BenchmarkIngestWithRules", "raise-p99-ms"), target: atMost(1000)},
	}},
	{"Issue 12: year-long charts from rollups (handlers.BenchmarkChart1Year)", []figure{
		{name: "1-year chart of a 1 Hz metric, 1,000 buckets, hour rollups", unit: "ms", value: m("handlers.BenchmarkChart1Year", "ms/chart"),
			baseline: m("handlers.BenchmarkChart1Year", "minute-tier-ms/chart"), baseName: "minute rollups, same run", target: atMost(50)},
	}},
	{"Issue 9: backup of a 500 MB database while 8 writers ingest (backup.BenchmarkBackupWhileIngesting)", []figure{
		{name: "backup (VACUUM INTO, checked, synced)", unit: "s", value: m("backup.BenchmarkBackupWhileIngesting", "backup-s")},
		{name: "ingest rate during the backup", unit: "msgs/s", value: m("backup.BenchmarkBackupWhileIngesting", "msgs/s-during"),
			baseline: m("backup.BenchmarkBackupWhileIngesting", "msgs/s-before"), baseName: "just before it"},
		{name: "ack p99 during the backup", unit: "ms", value: m("backup.BenchmarkBackupWhileIngesting", "ack-p99-ms-during"),
			baseline: m("backup.BenchmarkBackupWhileIngesting", "ack-p99-ms-before"), baseName: "just before it"},
		{name: "longest ack during the backup", unit: "ms", value: m("backup.BenchmarkBackupWhileIngesting", "ack-max-ms-during"),
			baseline: m("backup.BenchmarkBackupWhileIngesting", "ack-max-ms-before"), baseName: "just before it"},
	}},
	{"Issue 13: fleet list at 10,000 devices (handlers.BenchmarkFleetPage10kRequest, whole request) and audit filters over 1,000,000 entries (db.BenchmarkAuditFilter1M)", []figure{
		{name: "fleet page, first page", unit: "ms", value: metric{"handlers.BenchmarkFleetPage10kRequest/first-page", "ns/op", 1e-6}, target: atMost(30)},
		{name: "fleet page 150 by last activity", unit: "ms", value: metric{"handlers.BenchmarkFleetPage10kRequest/by-last-activity-page-150", "ns/op", 1e-6}, target: atMost(30)},
		{name: "fleet tag search site=s3", unit: "ms", value: metric{"handlers.BenchmarkFleetPage10kRequest/tag-search", "ns/op", 1e-6}, target: atMost(30)},
		{name: "fleet text search", unit: "ms", value: metric{"handlers.BenchmarkFleetPage10kRequest/text-search", "ns/op", 1e-6}, target: atMost(30)},
		{name: "audit page, actor matching often", unit: "ms", value: metric{"db.BenchmarkAuditFilter1M/actor-common", "ns/op", 1e-6}, target: atMost(200)},
		{name: "audit page, actor and target matching rarely", unit: "ms", value: metric{"db.BenchmarkAuditFilter1M/actor-rare", "ns/op", 1e-6}, target: atMost(200)},
		{name: "audit page, target matching nothing", unit: "ms", value: metric{"db.BenchmarkAuditFilter1M/target-never", "ns/op", 1e-6}, target: atMost(200)},
	}},
	{"Issue 13: fleet queries at 10,000 devices, whole POST /api/v1/devices/query request (handlers.BenchmarkQuery10k)", []figure{
		{name: "tag + twin query, first page of 100", unit: "ms", value: m("handlers.BenchmarkQuery10k/tag-and-twin-first-page", "ms/op"), target: atMost(100)},
		{name: "tag + twin query, all 253 matches", unit: "ms", value: m("handlers.BenchmarkQuery10k/tag-and-twin-all", "ms/op"), target: atMost(100)},
		{name: "twin-only query, page of 1,000", unit: "ms", value: m("handlers.BenchmarkQuery10k/twin-only-all", "ms/op")},
		{name: "COUNT() GROUP BY tags.site (whole fleet read)", unit: "ms", value: m("handlers.BenchmarkQuery10k/count-group-by-site", "ms/op")},
	}},
	{"Issue 13: jobs and bulk import (mqtt.BenchmarkMethodJob1k, handlers.BenchmarkImport10k)", []figure{
		{name: "method job on 1,000 MQTT devices, request to last outcome", unit: "s", value: m("mqtt.BenchmarkMethodJob1k", "s/job"), target: atMost(10)},
		{name: "import of 10,000 CSV rows, one transaction, whole request", unit: "s", value: m("handlers.BenchmarkImport10k", "s/import"), target: atMost(5)},
		{name: "dry run of the same file", unit: "s", value: m("handlers.BenchmarkImport10k", "s/dry-run")},
	}},
}

// The rows of BenchmarkIdleConnections that depend on how many devices
// the machine's file limit let it connect.
const idleBench = "mqtt.BenchmarkIdleConnections"

func idleLargest(r results) (string, metric) {
	n, _ := r.get(m(idleBench, "connected"))
	return "RSS, " + format(n) + " idle devices (the most measured)", m(idleBench, "rss-MB-at-max")
}

// idleTarget is the RSS at 100,000 devices: measured when the benchmark
// connected them, else projected along the measured slope, and said so.
func idleTarget(r results) (string, metric) {
	if _, ok := r.get(m(idleBench, "measured-rss-MB-at-100000")); ok {
		return "RSS, 100,000 idle devices (measured at 100,000)", m(idleBench, "measured-rss-MB-at-100000")
	}
	n, _ := r.get(m(idleBench, "connected"))
	limit, _ := r.get(m(idleBench, "file-limit"))
	return "RSS, 100,000 idle devices (PROJECTED from " + format(n) + "; file limit " + format(limit) + ")",
		m(idleBench, "projected-rss-MB-at-100000")
}

func idleConnectTime(r results) (string, metric) {
	n, _ := r.get(m(idleBench, "connected"))
	return "time to connect " + format(n) + " devices (64 at a time per generator)", m(idleBench, "connect-s")
}

// results maps "<package>.<Benchmark>" to its metrics by unit.
type results map[string]map[string]float64

// gomaxprocs is the "-N" suffix go test adds to benchmark names.
var gomaxprocs = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output. A "pkg:" line names the package of
// the benchmark lines that follow.
func parse(r io.Reader) (results, error) {
	res := results{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with a benchmark's name
		}
		name := pkg + "." + gomaxprocs.ReplaceAllString(f[0], "")
		if res[name] == nil {
			res[name] = map[string]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q is not a number", line, f[i])
			}
			res[name][f[i+1]] = v
		}
	}
	return res, sc.Err()
}

func (r results) get(m metric) (float64, bool) {
	v, ok := r[m.bench][m.unit]
	return v * m.scale, ok
}

// format prints a figure with a precision that suits its size.
func format(v float64) string {
	switch a := max(v, -v); {
	case a >= 1000:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		var out []byte
		for i, c := range []byte(s) {
			if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
				out = append(out, ',')
			}
			out = append(out, c)
		}
		return string(out)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// metOrNot says whether v meets t.
func metOrNot(t *target, v float64) string {
	if t.atLeast && v >= t.value || !t.atLeast && v <= t.value {
		return "yes"
	}
	return "NO"
}

// write prints the table and returns how many figures were missing.
func write(w io.Writer, res results) int {
	missing := 0
	header := []string{"figure", "value", "baseline (same run)", "ratio", "target", "met?"}
	var rows [][]string // a row of one cell is a section title
	for _, s := range sections {
		rows = append(rows, []string{s.title})
		for _, f := range s.figures {
			if f.choose != nil {
				f.name, f.value = f.choose(res)
			}
			value, baseline, ratio, tgt, met := "missing", "—", "—", "—", "—"
			v, ok := res.get(f.value)
			if ok {
				value = format(v) + " " + f.unit
			} else {
				missing++
			}
			var bv float64
			if f.baseline.bench != "" {
				var bok bool
				if bv, bok = res.get(f.baseline); bok {
					baseline = format(bv) + " " + f.baseName
					if ok && bv != 0 {
						ratio = format(v/bv) + "×"
					}
				} else {
					baseline = "missing: " + f.baseName
					missing++
				}
			}
			if f.target != nil {
				tgt = f.target.String()
				if !f.target.ratio {
					tgt += " " + f.unit
				}
				switch {
				case !ok:
					met = "no result"
				case f.target.ratio && ratio == "—":
					met = "no result"
				case f.target.ratio:
					met = metOrNot(f.target, v/bv)
				default:
					met = metOrNot(f.target, v)
				}
			}
			rows = append(rows, []string{"  " + f.name, value, baseline, ratio, tgt, met})
		}
	}

	width := make([]int, len(header))
	for _, r := range append(rows, header) {
		if len(r) == 1 {
			continue
		}
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	for _, r := range rows {
		if len(r) == 1 {
			fmt.Fprintln(w)
			fmt.Fprintln(w, r[0])
			continue
		}
		line(r)
	}
	fmt.Fprintln(w, "\nratio = value ÷ baseline; met? compares the value with the issue's target (— where the issue sets none).")
	return missing
}

func main() {
	in := io.Reader(os.Stdin)
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "summary:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	res, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(2)
	}
	if missing := write(os.Stdout, res); missing > 0 {
		fmt.Fprintf(os.Stderr, "summary: %d figures missing: their benchmarks failed or did not run (see the log above)\n", missing)
		os.Exit(1)
	}
}
