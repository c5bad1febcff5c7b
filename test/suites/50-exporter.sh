#!/usr/bin/env bash
# Monitoring: run Debian's prometheus-postgres-exporter with
# monitoring/postgres_exporter.yml against a throwaway server and check the
# connlog metrics it serves on loopback, once before any event (last_flush
# is NULL), once while three events wait (lag), and once after they were
# flushed.  scripts/test runs it
# (as root in CI) with the tree as $1, after installing the extension.
set -euo pipefail
tree=${1:?usage: 50-exporter.sh TREE}
. "$tree/scripts/lib.sh"

exporter_bin=/usr/bin/prometheus-postgres-exporter
work=
exporter_pid=
server_started=
own_policy=
ok=

cleanup() {
	if [ -n "$exporter_pid" ]; then
		kill "$exporter_pid" 2>/dev/null || true
	fi
	if [ -n "$server_started" ]; then
		run_as_pg "$PGBIN/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null || true
	fi
	if [ -n "$own_policy" ]; then
		as_root rm -f /usr/sbin/policy-rc.d
	fi
	if [ -n "$work" ] && [ -z "$ok" ]; then
		for f in "$work/exporter.log" "$work/server.log"; do
			[ -f "$f" ] || continue
			echo "---- $f (last 40 lines)"
			tail -n 40 "$f"
		done
	fi
	[ -n "$work" ] && rm -rf "$work"
	return 0
}
trap cleanup EXIT

fail() {
	echo "exporter suite: $*" >&2
	exit 1
}

# The package's maintainer scripts start its daemon (port 9187, the DSN of
# /etc/default/prometheus-postgres-exporter).  Nothing of that belongs to
# this test, so forbid service starts while installing, through
# policy-rc.d (which invoke-rc.d and deb-systemd-invoke both obey), unless
# the machine already has a policy.  An exporter that was installed and
# running before is left alone: ours listens on a port of its own.
if ! dpkg-query -W -f='${Status}' prometheus-postgres-exporter 2>/dev/null |
	grep -q "install ok installed" && [ ! -e /usr/sbin/policy-rc.d ]; then
	own_policy=1
	printf '#!/bin/sh\n# connlog test/suites/50-exporter.sh: no service starts\nexit 101\n' |
		as_root tee /usr/sbin/policy-rc.d >/dev/null
	as_root chmod 755 /usr/sbin/policy-rc.d
fi
need_packages prometheus-postgres-exporter curl
if [ -n "$own_policy" ]; then
	as_root rm -f /usr/sbin/policy-rc.d
	own_policy=
fi
echo "exporter: $("$exporter_bin" --version 2>&1 | head -n 1)"

# A server on a Unix socket only, in a directory only the server user can
# enter, so trust authentication lets no one else in.  flush_interval is
# long: batches are written only when the test calls connlog_flush(), so
# the connect and its disconnect meet in one batch and the counters are
# exact.
work=$(scratch_dir exporter)
chmod 700 "$work"
# the server's user runs the tools below and may not enter our directory
cd "$work"
cp "$tree/monitoring/postgres_exporter.yml" "$work/queries.yml"
[ "$(id -u)" = 0 ] && chown postgres: "$work/queries.yml"
run_as_pg "$PGBIN/initdb" -D "$work/data" -A trust --no-sync >/dev/null
cat >>"$work/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$work'
unix_socket_permissions = 0700
port = 5432
fsync = off
shared_preload_libraries = 'connlog'
connlog.database = 'postgres'
connlog.ring_size = '1MB'
connlog.flush_interval = '1h'
EOF
run_as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
server_started=1

sql() {
	run_as_pg "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "$work" -p 5432 -d postgres -c "$1"
}

sql "CREATE EXTENSION connlog"
sql "CREATE ROLE connlog_monitor LOGIN IN ROLE pg_monitor"
[ "$(sql "SELECT last_flush IS NULL FROM connlog_stats")" = t ] ||
	fail "last_flush is not NULL before any event was written"

# Start the exporter as the server's user (not root) on a free loopback
# port: the kernel picks one that is free now; should another process take
# it before the exporter binds it, the exporter exits and we try another.
# Sets exporter_pid and port.
# Debian's exporter (0.11.1) reads the checkpoint columns of
# pg_stat_bgwriter, which 17 moved to pg_stat_checkpointer: from 17 its
# bgwriter collector fails at every scrape.  That collector is not
# connlog's, so it is left out there.
exporter_flags=
[ "$PG_MAJOR" -ge 17 ] && exporter_flags=--no-collector.bgwriter
start_exporter() {
	for _ in 1 2 3 4 5; do
		port=$(perl -MIO::Socket::INET -e \
			'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport')
		# shellcheck disable=SC2016 # the inner shell expands them
		run_as_pg env \
			DATA_SOURCE_NAME="host=$work port=5432 user=connlog_monitor dbname=postgres sslmode=disable" \
			PG_EXPORTER_EXTEND_QUERY_PATH="$work/queries.yml" \
			sh -c 'echo $$ > "$1"; exec "$2" --web.listen-address="127.0.0.1:$3" $4' \
			sh "$work/exporter.pid" "$exporter_bin" "$port" "$exporter_flags" \
			>>"$work/exporter.log" 2>&1 &
		for _ in $(seq 1 50); do
			[ -s "$work/exporter.pid" ] && break
			sleep 0.1
		done
		[ -s "$work/exporter.pid" ] || fail "the exporter's shell did not start"
		exporter_pid=$(cat "$work/exporter.pid")
		rm -f "$work/exporter.pid"
		# bounded wait for the listener: 20 s, or until the exporter exits
		for _ in $(seq 1 200); do
			kill -0 "$exporter_pid" 2>/dev/null || break
			if curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null; then
				return 0
			fi
			sleep 0.1
		done
		if kill -0 "$exporter_pid" 2>/dev/null; then
			fail "exporter on 127.0.0.1:$port did not answer within 20 s"
		fi
		exporter_pid=
		echo "exporter: could not serve on 127.0.0.1:$port, trying another port"
	done
	fail "exporter did not start (see its log)"
}

# scrape into $work/metrics, checking the answer came from our exporter
scrape() {
	curl -fsS --max-time 10 -o "$work/metrics" "http://127.0.0.1:$port/metrics" ||
		fail "GET /metrics failed"
	kill -0 "$exporter_pid" 2>/dev/null || fail "exporter exited"
	{ grep '^connlog' "$work/metrics" || true; } | sed 's/^/  /'
}

# the value of the one series of metric $1 (any labels)
value() {
	local lines
	lines=$(grep -E "^$1(\{[^}]*\})? " "$work/metrics" || true)
	[ -n "$lines" ] || fail "no metric $1"
	[ "$(printf '%s\n' "$lines" | wc -l)" = 1 ] || fail "several series of $1: $lines"
	printf '%s\n' "${lines##* }"
}

# metric $1 is a number equal to $2
expect() {
	local v
	v=$(value "$1")
	awk -v v="$v" -v e="$2" 'BEGIN { exit !(v ~ /^[-+0-9.e]+$/ && v + 0 == e + 0) }' ||
		fail "$1 is $v, expected $2"
}

# metric $1 is a finite number from $2 to $3
expect_between() {
	local v
	v=$(value "$1")
	awk -v v="$v" -v lo="$2" -v hi="$3" \
		'BEGIN { exit !(v ~ /^[-+0-9.e]+$/ && v + 0 >= lo + 0 && v + 0 <= hi + 0) }' ||
		fail "$1 is $v, expected a number from $2 to $3"
}

counters="enqueued merged written rejected dropped batches write_errors retries purged"
gauges="pending ring_used_bytes ring_size_bytes last_flush_age_seconds lag_seconds worker_up"

start_exporter
echo "exporter: pid $exporter_pid on 127.0.0.1:$port"

echo "scrape 1, before any event:"
scrape
expect pg_up 1
for c in $counters; do
	grep -qx "# TYPE connlog_$c counter" "$work/metrics" || fail "connlog_$c is not a counter"
	expect "connlog_$c" 0
done
for g in $gauges; do
	grep -qx "# TYPE connlog_$g gauge" "$work/metrics" || fail "connlog_$g is not a gauge"
done
grep -qx "# TYPE connlog_worker_state_info gauge" "$work/metrics" ||
	fail "connlog_worker_state_info is not a gauge"
expect connlog_pending 0
expect connlog_ring_used_bytes 0
expect connlog_ring_size_bytes 1048576
expect connlog_worker_up 1
# nothing pending: lag is NULL, exported as 0, not NaN
expect connlog_lag_seconds 0
# last_flush is NULL: the age counts from the server's start, not NaN
uptime=$(sql "SELECT ceil(extract(epoch FROM now() - pg_postmaster_start_time()))")
expect_between connlog_last_flush_age_seconds 0 "$uptime"
# connlog_* are all the exporter made of our queries: nothing untyped
if grep -E '^connlog' "$work/metrics" | grep -vqE \
	"^connlog_(${counters// /|}|${gauges// /|}|worker_state_info)(\{[^}]*\})? "; then
	fail "unexpected connlog metrics"
fi

# a connection (connect and disconnect: one row) and a web event (one row)
sql "SELECT connlog_enqueue(id => ('00000000-0000-0000-0000-00000000000' || n)::uuid,
		event_time => '2024-01-01 00:00:00+00'::timestamptz + n * interval '1 min',
		organization_id => '10000000-0000-0000-0000-000000000000',
		workspace_owner_id => '11000000-0000-0000-0000-000000000000',
		workspace_id => '12000000-0000-0000-0000-000000000000',
		workspace_name => 'dev', agent_name => 'main',
		type => CASE WHEN n < 3 THEN 'ssh' ELSE 'workspace_app' END::connection_type,
		status => CASE n WHEN 2 THEN 'disconnected' ELSE 'connected' END::connection_status,
		connection_id => CASE WHEN n < 3 THEN '20000000-0000-0000-0000-000000000001'::uuid END,
		slug_or_port => CASE n WHEN 3 THEN 'code-server' END)
	FROM generate_series(1, 3) AS n" >/dev/null

# Not written yet (flush_interval is 1h): the exported lag is the
# oldest event's age, which grows from what connlog_stats said before the
# scrape to what it says after it.
lag_before=$(sql "SELECT extract(epoch FROM lag) FROM connlog_stats")
echo "scrape 2, 3 events pending:"
scrape
lag_after=$(sql "SELECT extract(epoch FROM lag) FROM connlog_stats")
expect connlog_pending 3
expect_between connlog_lag_seconds "$lag_before" "$lag_after"
awk -v v="$lag_before" 'BEGIN { exit !(v > 0) }' ||
	fail "connlog_stats.lag is $lag_before with 3 events pending"

sql "SELECT connlog_flush()" >/dev/null
[ "$(sql "SELECT count(*) FROM connection_logs")" = 2 ] ||
	fail "connection_logs does not hold the 2 rows the metrics should count"

echo "scrape 3, after 3 events and connlog_flush():"
scrape
state=$(sql "SELECT worker_state FROM connlog_stats")
expect connlog_enqueued 3
expect connlog_merged 1
expect connlog_written 2
expect connlog_rejected 0
expect connlog_dropped 0
expect connlog_batches 1
expect connlog_write_errors 0
expect connlog_retries 0
expect connlog_purged 0
expect connlog_pending 0
expect connlog_lag_seconds 0
expect connlog_ring_used_bytes 0
expect connlog_worker_up 1
# the age now counts from the flush
[ "$(sql "SELECT last_flush > pg_postmaster_start_time() FROM connlog_stats")" = t ] ||
	fail "last_flush is not after the server's start"
flush_age=$(sql "SELECT ceil(extract(epoch FROM now() - last_flush)) FROM connlog_stats")
expect_between connlog_last_flush_age_seconds 0 "$flush_age"
# one state series, labelled with what connlog_stats says
[ -n "$state" ] || fail "connlog_stats.worker_state is empty"
[ "$(grep -c '^connlog_worker_state_info{' "$work/metrics")" = 1 ] ||
	fail "not exactly one connlog_worker_state_info series"
grep -qE "^connlog_worker_state_info\{(.*,)?state=\"$state\"(,.*)?\} 1$" "$work/metrics" ||
	fail "connlog_worker_state_info does not say state=\"$state\""

# a query that fails is logged, and its metrics are left out
if grep -E 'err=' "$work/exporter.log"; then
	fail "the exporter logged errors"
fi

ok=1
echo "exporter suite: ok"
