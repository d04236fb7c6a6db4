#!/usr/bin/env bash
# A throwaway three-instance Fieldhub cluster on this machine (loopback only):
# a PostgreSQL server (initdb/pg_ctl of Debian's postgresql-15), a
# nats-server and three `fieldhub serve` instances sharing them, the first
# running the demo's devices. Prints the dashboards' URLs and the admin
# login; Ctrl-C stops everything and deletes the folder it all lived in.
#
#   scripts/cluster.sh            # or: make cluster
#
# Environment: FIELDHUB_BIN (default ./fieldhub, built by `make build`),
# CLUSTER_PORT_BASE (default 8000: dashboards on base+81..83, device HTTPS on
# base+444..446, MQTT on base+884..886, PostgreSQL on base+432, NATS on
# base+222), CLUSTER_KEEP=1 keeps the folder (logs, data) after the stop.
set -euo pipefail

bin=${FIELDHUB_BIN:-./fieldhub}
base=${CLUSTER_PORT_BASE:-8000}
pgbin=/usr/lib/postgresql/15/bin

die() { echo "cluster.sh: $*" >&2; exit 1; }
[[ -x $bin ]] || die "no fieldhub binary at $bin; run make build (or make cluster), or set FIELDHUB_BIN"
[[ -x $pgbin/initdb ]] || die "PostgreSQL 15 is not installed (no $pgbin/initdb); run make postgres"
command -v nats-server >/dev/null || die "nats-server is not installed; run make nats-server"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

dir=$(mktemp -d "${TMPDIR:-/tmp}/fieldhub-cluster.XXXXXX")
chmod 755 "$dir"
pgdata=$dir/postgres
pgport=$((base + 432))
natsport=$((base + 222))
store="postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
pids=()

# The server refuses to run as root: as root, it runs as postgres.
as_pg=()
if [[ $(id -u) == 0 ]]; then
	id postgres >/dev/null 2>&1 || die "running as root, and there is no postgres user to run PostgreSQL as (make postgres creates it)"
	mkdir -p "$pgdata"
	chown postgres: "$pgdata"
	as_pg=(runuser -u postgres --)
fi

stop() {
	trap - INT TERM EXIT
	echo
	echo "Stopping the cluster…"
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ -f $pgdata/postmaster.pid ]]; then
		"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
	fi
	if [[ ${CLUSTER_KEEP:-} == 1 ]]; then
		echo "Kept $dir (logs: $dir/hub-*.log)"
	else
		rm -rf "$dir"
	fi
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

echo "Starting PostgreSQL on 127.0.0.1:$pgport…"
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" ||
	die "initdb failed: $(cat "$dir/initdb.log")"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 \
	-o "-p $pgport -k $pgdata -c listen_addresses=127.0.0.1" start >/dev/null ||
	die "PostgreSQL did not start: $(tail -5 "$pgdata/server.log")"

echo "Starting nats-server on 127.0.0.1:$natsport…"
nats-server -a 127.0.0.1 -p "$natsport" >"$dir/nats.log" 2>&1 &
pids+=($!)

# wait_healthy URL LOG: until the dashboard answers /healthz.
wait_healthy() {
	for _ in $(seq 300); do
		curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || die "an instance exited while starting: $(tail -20 "$2")"
		sleep 0.1
	done
	die "an instance did not answer $1/healthz within 30 s: $(tail -20 "$2")"
}

for i in 1 2 3; do
	data=$dir/hub-$i
	mkdir -p "$data"
	# One CA for the cluster: devices trust it whichever instance they reach.
	[[ $i == 1 ]] || cp -r "$dir/hub-1/tls" "$data/tls"
	demo=()
	[[ $i == 1 ]] && demo=(--demo)
	"$bin" serve "${demo[@]}" --data "$data" --store "$store" --bus "nats://127.0.0.1:$natsport" --node "hub-$i" \
		--addr "127.0.0.1:$((base + 80 + i))" --device-addr "127.0.0.1:$((base + 443 + i))" \
		--mqtt-addr "127.0.0.1:$((base + 883 + i))" >"$dir/hub-$i.log" 2>&1 &
	pids+=($!)
	echo "Starting instance hub-$i (pid $!)…"
	wait_healthy "http://127.0.0.1:$((base + 80 + i))" "$dir/hub-$i.log"
done

password=$(grep -o 'admin password: [^ "]*' "$dir/hub-1.log" | head -1 | cut -d' ' -f3)
cat <<EOF

  Fieldhub cluster: 3 instances on PostgreSQL $store
  and NATS nats://127.0.0.1:$natsport. The demo's devices run in hub-1.

    hub-1  http://127.0.0.1:$((base + 81))   (pid ${pids[1]})  devices: https://localhost:$((base + 444)), mqtts://localhost:$((base + 884))
    hub-2  http://127.0.0.1:$((base + 82))   (pid ${pids[2]})  devices: https://localhost:$((base + 445)), mqtts://localhost:$((base + 885))
    hub-3  http://127.0.0.1:$((base + 83))   (pid ${pids[3]})  devices: https://localhost:$((base + 446)), mqtts://localhost:$((base + 886))

  Sign in to any of them as admin with password $password
  Devices trust $dir/hub-1/tls/ca.pem. Logs: $dir/hub-*.log
  Try: kill -9 ${pids[1]} (hub-1): hub-2 and hub-3 show its demo devices offline within 20 s,
  and fold its last messages into the charts.

  Ctrl-C stops everything.
EOF

# Until Ctrl-C (the trap stops everything).
while :; do sleep 1; done
