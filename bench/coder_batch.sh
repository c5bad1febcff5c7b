# bench/coder_batch.sh: coder's batch upsert against connlog_enqueue_batch,
# and connlog_enqueue_batch against the same arrays through SQL.  Sourced
# by bench/run for BENCH_ONLY=batch, after its cluster, scripts and helpers
# (pgb, pgbw, prep, flush, q, cpu_snap, ...) exist; defines batch_run,
# which sets BATCH_MD.
#
# Each statement carries one batch as coder's DBBatcher sends it to
# BatchUpsertConnectionLogs: seventeen arrays of 1000 elements, one per
# connection, in the batcher's map order (random).  An element is a
# connect (disconnect_time Go's zero time) or a standalone disconnect
# (disconnect_time = connect_time, code 0 valid, a reason); empty strings
# and zero UUIDs where coder sends no value.  The connection ids overlap
# between clients: statement k (a sequence) draws its 1000 ids at random
# from a window of BENCH_BATCH_POOL (2000) ids starting at (k / 2) * 1000,
# connects in the window's upper half and disconnects in its lower half,
# so the two statements sharing a window, and their neighbours, name about
# half of each other's connections, and each connection's connect and
# disconnect usually come from different clients (each id is drawn about
# twice in all, so rows do not pile up versions as a fixed pool would).
#
# The arrays are built in SQL from generate_series, as pgbench cannot send
# arrays; that work is the same in every variant, so it cancels in the
# ratios (the "arrays only" floor shows what it costs).
#
# Variants, BENCH_CLIENTS clients, one statement per transaction:
#   coder    coder's statement: INSERT ... SELECT FROM (SELECT unnest(...),
#            ...) ON CONFLICT (connection_id, workspace_id, agent_name) DO
#            UPDATE with its merge rules (connect_time the earliest real one,
#            disconnect_time, disconnect_reason and code kept when set),
#            into the extension's connection_logs (the same unique key);
#            a deadlock is retried (pgbench --max-tries), as coder's retry
#            queue would
#   dropin   SELECT connlog_enqueue_batch(the same arrays); the run ends
#            with connlog_flush(), so "end to end" counts the worker's
#            writing too
# first unpaced (each as fast as it goes: rows/s), then both paced
# (pgbench -R, runs twice as long) at BENCH_BATCH_RATE rows/s, default
# 80 % of coder's median unpaced rate, for server CPU and lock waits at the
# same rate.  Each run:
# server CPU per row (utime + stime of every postgres process, /proc, from
# before pgbench to after the flush), deadlocks (pg_stat_database), lock
# waits logged by log_lock_waits (deadlock_timeout = 100ms, so waits of
# 100 ms and more), and the mean number of backends waiting for a
# heavyweight lock (pg_stat_activity sampled every 10 ms in the measured
# window; pg_locks would take the lock manager's locks itself; the
# sampler's own CPU time is not counted).
#
# Then one session, BATCH_TXNS executions of a prepared statement per run:
# the arrays only, the drop-in, and the same arrays through SELECT
# count(connlog_enqueue(...)) FROM unnest(...) (a connect and/or a
# disconnect per element, as the function makes them): the backend's CPU
# time per statement (prepared_cpu in bench/run), and the part of it
# beyond building the arrays.

BATCH_POOL=${BENCH_BATCH_POOL:-2000}
BATCH_ROWS=1000
BATCH_TXNS=100
BATCH_DEADLOCK_TIMEOUT=100ms
if [ "$BATCH_POOL" -lt "$BATCH_ROWS" ] || [ $((BATCH_POOL % 2)) -ne 0 ]; then
	die "BENCH_BATCH_POOL must be even and at least $BATCH_ROWS"
fi
# Go's zero time.Time; written without a colon, which pgbench would read
# as a variable
ZERO_TIME="'0001-01-01 UTC'::timestamptz"
ZERO_UUID="'00000000-0000-0000-0000-000000000000'::uuid"
B_COLS="id, connect_time, organization_id, workspace_owner_id, workspace_id, workspace_name, agent_name, type, code, code_valid, ip, user_agent, user_id, slug_or_port, connection_id, disconnect_reason, disconnect_time"

batch_setup() {
	local half=$((BATCH_POOL / 2)) cte
	q "CREATE SEQUENCE bench_batch_k" >/dev/null
	q "CREATE UNLOGGED TABLE bench_lockwaits (t timestamptz, waiting int, backends int)" >/dev/null
	q "CREATE UNLOGGED TABLE bench_sampler_stop (stop boolean)" >/dev/null
	cte="WITH k AS MATERIALIZED (SELECT nextval('bench_batch_k') AS k),
e AS (SELECT k.k, p.c, p.ord, (k.k / 2) * $half + p.c AS conn, p.c < $half AS disc, clock_timestamp() AS t
  FROM k, LATERAL (SELECT c, row_number() OVER (ORDER BY random()) AS ord
                   FROM generate_series(0, $BATCH_POOL - 1) AS c) AS p
  WHERE p.ord <= $BATCH_ROWS
  ORDER BY p.ord),
a AS MATERIALIZED (SELECT
  array_agg(('00000000-0000-0000-0000-' || lpad((k * $BATCH_ROWS + ord)::text, 12, '0'))::uuid) AS id,
  array_agg(t) AS connect_time,
  array_fill($ORG::uuid, ARRAY[$BATCH_ROWS]) AS organization_id,
  array_fill($OWNER::uuid, ARRAY[$BATCH_ROWS]) AS workspace_owner_id,
  array_fill($WS::uuid, ARRAY[$BATCH_ROWS]) AS workspace_id,
  array_fill($WS_NAME::text, ARRAY[$BATCH_ROWS]) AS workspace_name,
  array_fill($AGENT::text, ARRAY[$BATCH_ROWS]) AS agent_name,
  array_fill('ssh'::text, ARRAY[$BATCH_ROWS]) AS type,
  array_fill(0, ARRAY[$BATCH_ROWS]) AS code,
  array_agg(disc) AS code_valid,
  array_fill($IP::inet, ARRAY[$BATCH_ROWS]) AS ip,
  array_fill(''::text, ARRAY[$BATCH_ROWS]) AS user_agent,
  array_fill($ZERO_UUID, ARRAY[$BATCH_ROWS]) AS user_id,
  array_fill(''::text, ARRAY[$BATCH_ROWS]) AS slug_or_port,
  array_agg(('00000000-0000-0000-0001-' || lpad(conn::text, 12, '0'))::uuid) AS connection_id,
  array_agg(CASE WHEN disc THEN 'client closed' ELSE '' END) AS disconnect_reason,
  array_agg(CASE WHEN disc THEN t ELSE $ZERO_TIME END) AS disconnect_time
  FROM e)"
	printf '%s\nSELECT cardinality(a.id) FROM a;\n' "$cte" >"$SCRIPTS/b_arrays.sql"
	# coder's BatchUpsertConnectionLogs, its merge rules written out
	cat >"$SCRIPTS/b_coder.sql" <<EOF
$cte
INSERT INTO connection_logs AS c (id, connect_time, organization_id, workspace_owner_id,
  workspace_id, workspace_name, agent_name, type, code, ip, user_agent, user_id,
  slug_or_port, connection_id, disconnect_reason, disconnect_time)
SELECT u.id, u.connect_time, u.organization_id, u.workspace_owner_id,
  u.workspace_id, u.workspace_name, u.agent_name, u.type,
  CASE WHEN u.code_valid THEN u.code END, u.ip, NULLIF(u.user_agent, ''),
  NULLIF(u.user_id, $ZERO_UUID), NULLIF(u.slug_or_port, ''),
  NULLIF(u.connection_id, $ZERO_UUID), NULLIF(u.disconnect_reason, ''),
  NULLIF(u.disconnect_time, $ZERO_TIME)
FROM (SELECT unnest(a.id) AS id, unnest(a.connect_time) AS connect_time,
  unnest(a.organization_id) AS organization_id, unnest(a.workspace_owner_id) AS workspace_owner_id,
  unnest(a.workspace_id) AS workspace_id, unnest(a.workspace_name) AS workspace_name,
  unnest(a.agent_name) AS agent_name, unnest(a.type) AS type, unnest(a.code) AS code,
  unnest(a.code_valid) AS code_valid, unnest(a.ip) AS ip, unnest(a.user_agent) AS user_agent,
  unnest(a.user_id) AS user_id, unnest(a.slug_or_port) AS slug_or_port,
  unnest(a.connection_id) AS connection_id, unnest(a.disconnect_reason) AS disconnect_reason,
  unnest(a.disconnect_time) AS disconnect_time FROM a) AS u
ON CONFLICT (connection_id, workspace_id, agent_name) DO UPDATE SET
  connect_time = CASE WHEN excluded.connect_time = $ZERO_TIME THEN c.connect_time
                      WHEN c.connect_time = $ZERO_TIME THEN excluded.connect_time
                      ELSE LEAST(c.connect_time, excluded.connect_time) END,
  disconnect_time = COALESCE(c.disconnect_time, excluded.disconnect_time),
  disconnect_reason = COALESCE(c.disconnect_reason, excluded.disconnect_reason),
  code = COALESCE(c.code, excluded.code);
EOF
	printf '%s\nSELECT connlog_enqueue_batch(%s) FROM a;\n' "$cte" "$(echo "$B_COLS" | sed -E 's/([a-z_]+)/a.\1/g')" >"$SCRIPTS/b_dropin.sql"
	# the same arrays as SQL over unnest: a connect unless the element is a
	# standalone disconnect, a disconnect if it has a disconnect_time
	# (connlog_enqueue itself reads zero UUIDs and empty strings as none)
	cat >"$SCRIPTS/b_sqlunnest.sql" <<EOF
$cte
SELECT count(connlog_enqueue(u.id, ev.t, u.organization_id, u.workspace_owner_id,
  u.workspace_id, u.workspace_name, u.agent_name, u.type, ev.status, u.connection_id, u.ip,
  CASE WHEN ev.status = 'disconnected' AND u.code_valid THEN u.code END,
  u.user_agent, u.user_id, u.slug_or_port,
  CASE WHEN ev.status = 'disconnected' THEN u.disconnect_reason END))
FROM a, unnest($(echo "$B_COLS" | sed -E 's/([a-z_]+)/a.\1/g')) AS u($B_COLS),
  LATERAL (VALUES ('connected'::connection_status, NULLIF(u.connect_time, $ZERO_TIME)),
                  ('disconnected'::connection_status, NULLIF(u.disconnect_time, $ZERO_TIME))) AS ev(status, t)
WHERE ev.t IS NOT NULL
  AND (ev.status = 'disconnected' OR u.disconnect_time IS DISTINCT FROM u.connect_time);
EOF
	if [ "$(id -u)" -eq 0 ]; then chown -R "$PG_USER" "$SCRIPTS"; fi
	q "ALTER SYSTEM SET log_lock_waits = on" >/dev/null
	q "ALTER SYSTEM SET deadlock_timeout = '$BATCH_DEADLOCK_TIMEOUT'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}

batch_teardown() {
	q "ALTER SYSTEM RESET log_lock_waits" >/dev/null
	q "ALTER SYSTEM RESET deadlock_timeout" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}

# batch_one NAME ROUND RATE(rows/s, empty: unpaced): one run; appends a
# line to batch.tsv
batch_one() {
	local name=$1 round=$2 rate=$3 tag=$1-$2${3:+-paced} a b d0 d1 o0 o1 t0 t1 fl tps wtps txns retries failed ev secs rows lost s0 s2 spid="" sns i
	prep
	q "TRUNCATE bench_lockwaits" >/dev/null
	read -r -a s0 <<<"$(stats)"
	d0=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")
	o0=$(stat -c %s "$SCRATCH/server.log")
	read -r -a a <<<"$(cpu_snap)"
	# the sampler: every 10 ms, how many of the bench's backends (pgbench's
	# and the worker) wait for a heavyweight lock, until bench_sampler_stop
	# has a row (a new snapshot each statement sees it); its own CPU time is
	# taken out of the server's
	q "TRUNCATE bench_sampler_stop" >/dev/null
	psql_ -d bench -c "SET application_name = 'bench_sampler'" -c "DO \$\$
	BEGIN
	  LOOP
	    INSERT INTO bench_lockwaits
	      SELECT clock_timestamp(), count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*)
	      FROM pg_stat_activity
	      WHERE datname = 'bench' AND pid <> pg_backend_pid()
	        AND (application_name = 'pgbench' OR backend_type = 'connlog worker');
	    EXIT WHEN EXISTS (SELECT FROM bench_sampler_stop);
	    -- a transaction keeps the list of backends it read first (their
	    -- wait events are read live): pgbench's connect after it started
	    PERFORM pg_stat_clear_snapshot();
	    PERFORM pg_sleep(0.01);
	  END LOOP;
	END \$\$" >"$LOGS/lockwaits-$tag.log" 2>&1 &
	POLLER_PID=$!
	for i in $(seq 1 300); do
		spid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'bench_sampler'")
		[ -n "$spid" ] && break
		sleep 0.01
	done
	[ -n "$spid" ] || die "the lock-wait sampler did not start: see $LOGS/lockwaits-$tag.log"
	t0=$(date +%s.%N)
	if [ -z "$rate" ]; then
		read -r tps wtps <<<"$(PGB_OPTIONS="" pgbw "batch-$tag" "$CLIENTS" --max-tries=1000 -f "$SCRIPTS/b_$name.sql")"
	else
		# pgbench -R skips progress lines while its clients sleep: the rate
		# of the whole run, which a paced run holds from its start.  Its
		# arrivals are random (Poisson), so a paced run is twice as long:
		# a few statements a second vary by a fifth over BENCH_SECONDS.
		tps=$(PGB_OPTIONS="" pgb "batch-$tag" "$CLIENTS" --max-tries=1000 -R "$(calc "$rate / $BATCH_ROWS" 3)" \
			-T "$((WARMUP + 2 * SECONDS_RUN))" -f "$SCRIPTS/b_$name.sql")
	fi
	sns=$(awk '{print $1}' "/proc/$spid/schedstat")
	q "INSERT INTO bench_sampler_stop VALUES (true)" >/dev/null
	wait "$POLLER_PID" || die "the lock-wait sampler failed: see $LOGS/lockwaits-$tag.log"
	POLLER_PID=""
	flush
	t1=$(date +%s.%N)
	sleep 0.3 # let the backends exit, so the postmaster has counted their CPU
	read -r -a b <<<"$(cpu_snap)"
	read -r -a s2 <<<"$(stats)"
	d1=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")
	o1=$(stat -c %s "$SCRATCH/server.log")
	secs=$(calc "$t1 - $t0" 3)
	txns=$(awk '/number of transactions actually processed/{split($NF, x, "/"); print x[1]; exit}' "$LOGS/batch-$tag.log")
	retries=$(awk '/total number of retries:/{print $NF; exit}' "$LOGS/batch-$tag.log")
	failed=$(awk '/number of failed transactions:/{print $5; exit}' "$LOGS/batch-$tag.log")
	ev=$((txns * BATCH_ROWS))
	rows=$(q "SELECT count(*) FROM connection_logs")
	lost=$(((s2[3] + s2[4]) - (s0[3] + s0[4])))
	fl=$(calc "$t1 - $t0 - $WARMUP - ${rate:+2 *} $SECONDS_RUN" 2)
	# rows/s client side (after the warm-up), end to end (every row of the
	# run over the run plus the flush), server CPU us per row, deadlocks,
	# lock waits logged, mean backends waiting for a lock, retries, failed,
	# rows sent, rows in the table, events lost, flush seconds, and the
	# share of the machine's CPU that processes outside the run took
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "${rate:-max}" \
		"$(calc "$tps * $BATCH_ROWS" 1)" "$(calc "$ev / $secs" 1)" \
		"$(calc "(($((b[2] - a[2] + b[4] - a[4] + b[5] - a[5]))) * 1000000 / $CLK_TCK - $sns / 1000) / $ev" 2)" \
		"$(calc "($((b[5] - a[5]))) * 1000000 / $CLK_TCK / $ev" 2)" \
		"$((d1 - d0))" "$(tail -c +$((o0 + 1)) "$SCRATCH/server.log" | head -c $((o1 - o0)) | grep -c 'still waiting for' || true)" \
		"$(q "SELECT round(coalesce(avg(waiting), 0), 3) FROM bench_lockwaits WHERE t >= (SELECT min(t) FROM bench_lockwaits) + interval '$WARMUP s'")" \
		"${retries:-0}" "${failed:-0}" "$ev" "$rows" "$lost" "$fl" \
		"$(awk -v db="$((b[0] - a[0]))" -v di="$((b[1] - a[1]))" -v own="$((b[2] - a[2] + b[4] - a[4] + b[5] - a[5] + b[6] - a[6]))" \
			'BEGIN{f = db - own; if (f < 0) f = 0; printf "%.1f", 100 * f / (db + di > 0 ? db + di : 1)}')" >>"$OUT/batch.tsv"
	log "  $tag: $(tail -1 "$OUT/batch.tsv" | awk -F'\t' '{printf "%s rows/s (end to end %s), server CPU %s us/row (worker %s), deadlocks %s, waits logged %s, mean waiting %s, retries %s, failed %s; %s rows, flush %s s", $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $16}')"
	[ "$lost" -eq 0 ] || die "connlog lost $lost events in run $tag"
}

# b_med NAME PACED(max|paced) COLUMN: median of a column of batch.tsv;
# b_pair A B PACED COLUMN: median of the per-round ratios A / B as
# "median (min–max)", over the rounds where B is not 0
b_med() { awk -F'\t' -v w="$1" -v p="$2" -v c="$3" 'NR>1 && $1==w && (($3=="max") == (p=="max")){print $c}' "$OUT/batch.tsv" | median; }
b_pair() {
	awk -F'\t' -v a="$1" -v b="$2" -v p="$3" -v c="$4" 'NR>1 && (($3=="max") == (p=="max")) {if ($1==a) x[$2]=$c; if ($1==b) y[$2]=$c}
		END{for (r in x) if (r in y && y[r] > 0) printf "%.4f\n", x[r] / y[r]}' "$OUT/batch.tsv" | ratio_summary
}
b_sum() { awk -F'\t' -v w="$1" -v p="$2" -v c="$3" 'NR>1 && $1==w && (($3=="max") == (p=="max")){s+=$c} END{print s+0}' "$OUT/batch.tsv"; }

batch_run() {
	local r rate name i1 i2 arr dropin sqlun v
	batch_setup
	printf 'workload\tround\trate\trows_per_s\trows_per_s_end_to_end\tserver_us_per_row\tworker_us_per_row\tdeadlocks\tlock_waits_logged\tmean_waiting\tretries\tfailed\trows_sent\trows_in_table\tlost\tflush_s\tforeign_pct\n' >"$OUT/batch.tsv"
	log "batch: coder's upsert against connlog_enqueue_batch, $CLIENTS clients, $BATCH_ROWS rows per statement, ids from windows of $BATCH_POOL; $RUNS rounds unpaced, then $RUNS paced"
	for r in $(seq 1 "$RUNS"); do
		for name in $(alternate "$r" coder dropin); do batch_one "$name" "$r" ""; done
	done
	rate=${BENCH_BATCH_RATE:-$(calc "0.8 * $(b_med coder max 4)" 0)}
	log "batch, paced at $(fmt "$rate") rows/s"
	for r in $(seq 1 "$RUNS"); do
		for name in $(alternate "$r" coder dropin); do batch_one "$name" "$r" "$rate"; done
	done
	batch_teardown

	# one client: the drop-in against the same arrays through SQL
	local brounds=$((RUNS > 5 ? RUNS : 5))
	log "batch, one client: the arrays only, connlog_enqueue_batch, SQL over unnest; $BATCH_TXNS statements per run, $brounds rounds"
	prepared_rounds "$OUT/batch_sql.tsv" "$BATCH_TXNS" "$brounds" arrays:"$SCRIPTS/b_arrays.sql" \
		dropin:"$SCRIPTS/b_dropin.sql" sqlunnest:"$SCRIPTS/b_sqlunnest.sql"
	flush
	# the SQL variant must enqueue what the function does: both on one batch
	q "TRUNCATE connection_logs" >/dev/null
	v=$(q "SELECT (SELECT enqueued FROM connlog_stats)")
	pgb batch-sql-check-dropin 1 -t 1 -f "$SCRIPTS/b_dropin.sql" >/dev/null
	i1=$(($(q "SELECT enqueued FROM connlog_stats") - v))
	pgb batch-sql-check-sqlunnest 1 -t 1 -f "$SCRIPTS/b_sqlunnest.sql" >/dev/null
	i2=$(($(q "SELECT enqueued FROM connlog_stats") - v - i1))
	[ "$i1" -eq "$i2" ] || die "connlog_enqueue_batch enqueued $i1 events, the SQL over unnest $i2"
	sq_med() { awk -F'\t' -v a="$1" -v c="${2:-3}" 'NR>1 && $2==a{print $c}' "$OUT/batch_sql.tsv" | median; }
	# per-round ratio of the CPU time (A - arrays) / (B - arrays), or of A / B
	sq_pair() {
		awk -F'\t' -v a="$1" -v b="$2" -v net="$3" 'NR>1{v[$1, $2]=$3; r[$1]=1}
			END{for (k in r) {f = net ? v[k, "arrays"] : 0; if (v[k, b] - f > 0) printf "%.4f\n", (v[k, a] - f) / (v[k, b] - f)}}' "$OUT/batch_sql.tsv" |
			ratio_summary 2
	}
	arr=$(sq_med arrays)
	dropin=$(sq_med dropin)
	sqlun=$(sq_med sqlunnest)

	BATCH_MD=$(
		echo
		echo "### coder's batch upsert against connlog_enqueue_batch"
		echo
		echo "pgbench \`-M prepared -c $CLIENTS -j $THREADS --max-tries=1000\`, one statement of $BATCH_ROWS rows (coder's seventeen arrays) per transaction, connection ids from windows of $BATCH_POOL shared by neighbouring statements; ${WARMUP} s warm-up + ${SECONDS_RUN} s measured per run, $RUNS interleaved rounds (order alternated); \`deadlock_timeout\` $BATCH_DEADLOCK_TIMEOUT, \`log_lock_waits\` on.  Ratios: medians of the per-round ratios (min–max).  A row is one element of coder's batch (here one event each)."
		echo
		echo "| | coder's upsert | connlog_enqueue_batch | drop-in ÷ coder |"
		echo "|---|---:|---:|---:|"
		echo "| unpaced: rows/s, client side | $(fmt "$(b_med coder max 4)") | $(fmt "$(b_med dropin max 4)") | $(b_pair dropin coder max 4) |"
		echo "| unpaced: rows/s end to end (drop-in: until connlog_flush returns) | $(fmt "$(b_med coder max 5)") | $(fmt "$(b_med dropin max 5)") | $(b_pair dropin coder max 5) |"
		echo "| unpaced: server CPU µs per row (of it the worker) | $(b_med coder max 6) | $(b_med dropin max 6) ($(b_med dropin max 7)) | $(b_pair dropin coder max 6) |"
		echo "| unpaced: deadlocks / lock waits ≥ $BATCH_DEADLOCK_TIMEOUT logged / retries, all runs | $(b_sum coder max 8) / $(b_sum coder max 9) / $(b_sum coder max 11) | $(b_sum dropin max 8) / $(b_sum dropin max 9) / $(b_sum dropin max 11) | |"
		echo "| unpaced: mean backends waiting for a lock | $(b_med coder max 10) | $(b_med dropin max 10) | $(b_pair dropin coder max 10) |"
		echo "| paced at $(fmt "$rate") rows/s (${WARMUP} s + $((2 * SECONDS_RUN)) s, Poisson arrivals): rows/s reached | $(fmt "$(b_med coder paced 4)") | $(fmt "$(b_med dropin paced 4)") | $(b_pair dropin coder paced 4) |"
		echo "| paced: server CPU µs per row (of it the worker) | $(b_med coder paced 6) | $(b_med dropin paced 6) ($(b_med dropin paced 7)) | $(b_pair dropin coder paced 6) |"
		echo "| paced: deadlocks / lock waits ≥ $BATCH_DEADLOCK_TIMEOUT logged / retries, all runs | $(b_sum coder paced 8) / $(b_sum coder paced 9) / $(b_sum coder paced 11) | $(b_sum dropin paced 8) / $(b_sum dropin paced 9) / $(b_sum dropin paced 11) | |"
		echo "| paced: mean backends waiting for a lock | $(b_med coder paced 10) | $(b_med dropin paced 10) | $(b_pair dropin coder paced 10) |"
		echo
		echo "Failed transactions (after 1000 tries): coder $(($(b_sum coder max 12) + $(b_sum coder paced 12))), drop-in $(($(b_sum dropin max 12) + $(b_sum dropin paced 12))); connlog lost no event (checked per run)."
		echo
		echo "One session, $BATCH_TXNS executions of the prepared statement ($BATCH_ROWS elements) per run, $brounds rounds after a warm-up round; the backend's CPU time (\`/proc/PID/schedstat\`) and the wall time, medians; ratios per round.  Both enqueue the same $i1 events from one batch:"
		echo
		echo "| statement | CPU ms per statement | beyond building the arrays | wall ms per statement |"
		echo "|---|---:|---:|---:|"
		echo "| the arrays only (\`SELECT cardinality(…)\`) | $arr | | $(sq_med arrays 4) |"
		echo "| \`SELECT connlog_enqueue_batch(…)\` | $dropin | $(calc "$dropin - $arr" 3) | $(sq_med dropin 4) |"
		echo "| \`SELECT count(connlog_enqueue(…)) FROM unnest(…)\` | $sqlun | $(calc "$sqlun - $arr" 3) | $(sq_med sqlunnest 4) |"
		echo
		echo "SQL over unnest ÷ connlog_enqueue_batch, CPU: $(sq_pair sqlunnest dropin 0) × per statement, $(sq_pair sqlunnest dropin 1) × beyond the arrays ($(ratio "$(calc "$sqlun - $arr" 4)" "$(calc "$dropin - $arr" 4)") × of the medians)."
	)
}
