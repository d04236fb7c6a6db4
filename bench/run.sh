#!/usr/bin/env bash
# Runs the benchmarks behind the performance figures of the issues, one
# package at a time with bounded iteration counts (about 4 minutes on 2
# cores), then prints the summary table (bench/summary). The raw output is
# kept in bench/out/bench.txt. Exits non-zero when a benchmark failed.
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
out=bench/out
mkdir -p "$out"
log=$out/bench.txt
: >"$log"
failed=()

# run PACKAGE PATTERN BENCHTIME: one `go test -bench` run, its output
# shown and appended to the log.
run() {
	echo "=== $1 $2 (-benchtime $3)"
	# The benchmarks before leave gigabytes of dirty pages; their writeback
	# would slow the fsyncs of this one.
	sync
	if ! "$GO" test -run '^$' -bench "$2" -benchtime "$3" -benchmem -count 1 -timeout 15m "$1" 2>&1 | tee -a "$log"; then
		failed+=("$1 $2")
	fi
}

start=$(date +%s)
# In-process figures first: they are short and need the machine quiet.
run ./views/ '^BenchmarkFleetPage10k$' 20x
run ./handlers/ '^BenchmarkFleetPage10kRequest$' 20x
run ./db/ '^BenchmarkAuditFilter1M$' 5x
run ./telemetry/ '^BenchmarkChart7Days$' 20x
run ./handlers/ '^BenchmarkChart1Year$' 20x
run ./handlers/ '^BenchmarkQuery10k$' 10x
run ./handlers/ '^BenchmarkImport10k$' 3x
run ./query/ '^Benchmark(Match|SQLite)10k$' 20x
run ./live/ '^BenchmarkFanOut$' 3000x
# The ingest pipeline; each also measures its naive-layout baseline.
run ./ingest/ '^BenchmarkIngestSingle$' 100000x
run ./ingest/ '^BenchmarkIngestBatched$' 4000x
run ./ingest/ '^BenchmarkAckLatency$' 150000x
# The same pipeline on the PostgreSQL store beside the SQLite store.
run ./ingest/ '^BenchmarkIngestPostgres$' 1x
# A direct method across two instances (issue 11), beside the same call on one.
run ./bus/ '^BenchmarkMethodAcrossInstances$' 400x
# Alert evaluation: ingest with 100 rules against ingest without, same run.
run ./alerting/ '^BenchmarkIngestWithRules$' 6x
# MQTT: 1,000 TLS devices against bare mochi, then idle devices: 5,000,
# 10,000 and as many as the file limit allows (100,000 when it does; issue 11).
run ./mqtt/ '^BenchmarkIngest$' 1x
run ./mqtt/ '^BenchmarkIdleConnections$' 1x
# A fleet method job on 1,000 MQTT devices (issue 13).
run ./mqtt/ '^BenchmarkMethodJob1k$' 3x
# The real binary over HTTPS against a bare Echo HTTPS server.
run ./bench/ '^BenchmarkHubHTTPS$' 1x
# A backup of a 500 MB database while the pipeline ingests.
run ./backup/ '^BenchmarkBackupWhileIngesting$' 1x
echo "=== benchmarks took $(($(date +%s) - start)) s; raw output in $log"
echo

"$GO" run ./bench/summary "$log" || failed+=("summary")
if ((${#failed[@]} > 0)); then
	echo
	echo "FAILED: ${failed[*]}"
	exit 1
fi
