# bench/hotpath.sh: connlog_enqueue's hot path with and without extra, and
# against 1.2's declaration.  Sourced by bench/run for BENCH_ONLY=hotpath,
# after its cluster, scripts and helpers (run_one, pgb, prep, q, ...) exist;
# defines hotpath_run, which sets HOTPATH_MD.
#
# extra counts toward an event's size, and a NULL extra must leave the hot
# path as cheap as without it.  Measured side by side, interleaved:
#   select1        SELECT 1
#   enqueue12      connlog_enqueue as 1.2 declared it (16 arguments, C
#                  symbol connlog_enqueue_1_2): the declaration is taken
#                  from a CREATE EXTENSION connlog VERSION '1.2' in a
#                  scratch database with pg_get_functiondef and created
#                  here under another name, so both run in one database,
#                  against one worker and one table
#   enqueue        1.3's connlog_enqueue with 16 arguments (extra defaults
#                  to NULL)
#   enqueue_null   the same with extra => NULL written out
#   enqueue_extra  the same with a small extra object
# each in two ways: pgbench, one call per statement, BENCH_CLIENTS clients,
# with the worker writing meanwhile (as bench/run's enqueue_c8): events/s
# and the backends' CPU per event, as ratios to SELECT 1 and to 1.2; and
# one session making 1000 calls per prepared statement (the round trip
# paid once per 1000 calls), against the no-op function with the same 16
# arguments: the backend's CPU time per call from /proc/PID/schedstat
# (nanoseconds, and what other processes on this shared machine disturb
# least), whose difference from the no-op's is connlog's own work.  The
# order of the variants is reversed every other round.  The 1000-call runs
# enqueue 60,000 events each, which fit the default ring with extra.

HP_EXTRA="'{\"client_session_id\": \"3f9c2a71-5d4e-4b8a-9c1f-6e2d7a8b0c94\"}'"

hotpath_setup() {
	local def
	# 1.2's connlog_enqueue, as CREATE EXTENSION VERSION '1.2' declares it
	psql_ -d postgres -c "CREATE DATABASE bench12" >/dev/null
	psql_ -d bench12 -c "CREATE EXTENSION connlog VERSION '1.2'" >/dev/null 2>"$LOGS/bench12.log" ||
		die "CREATE EXTENSION connlog VERSION '1.2' failed: see $LOGS/bench12.log"
	def=$(psql_ -d bench12 -c "SELECT pg_get_functiondef(oid) FROM pg_proc
		WHERE proname = 'connlog_enqueue' AND prosrc = 'connlog_enqueue_1_2'")
	psql_ -d postgres -c "DROP DATABASE bench12" >/dev/null
	case $def in
	*"public.connlog_enqueue("*) ;;
	*) die "1.2's connlog_enqueue not found: $def" ;;
	esac
	q "${def/public.connlog_enqueue(/public.connlog_bench_enqueue_1_2(}" >/dev/null
	printf '%s\nSELECT connlog_bench_enqueue_1_2(%s);\n' "$SETN" "$EVENT_ARGS" >"$SCRIPTS/enqueue12.sql"
	printf '%s\nSELECT connlog_enqueue(%s, extra => NULL);\n' "$SETN" "$EVENT_ARGS" >"$SCRIPTS/enqueue_null.sql"
	printf '%s\nSELECT connlog_enqueue(%s, extra => %s);\n' "$SETN" "$EVENT_ARGS" "$HP_EXTRA" >"$SCRIPTS/enqueue_extra.sql"
	printf 'SELECT count(connlog_bench_enqueue_1_2(%s)) %s;\n' "$BULK_ARGS" "$BULK_FROM" >"$SCRIPTS/bulk12.sql"
	printf 'SELECT count(connlog_enqueue(%s, extra => NULL)) %s;\n' "$BULK_ARGS" "$BULK_FROM" >"$SCRIPTS/bulk_null.sql"
	printf 'SELECT count(connlog_enqueue(%s, extra => %s)) %s;\n' "$BULK_ARGS" "$HP_EXTRA" "$BULK_FROM" >"$SCRIPTS/bulk_extra.sql"
	if [ "$(id -u)" -eq 0 ]; then chown -R "$PG_USER" "$SCRIPTS"; fi
}

# hp_col NAME COLUMN: median of a column of runs.tsv for a workload
hp_col() { awk -F'\t' -v w="$1" -v c="$2" 'NR>1 && $1==w{print $c}' "$OUT/runs.tsv" | median; }
# hp_pair A B [COLUMN]: the per-round ratios A / B of a column of runs.tsv
# (default 5, events/s; 12 is the backends' CPU per event)
hp_pair() {
	awk -F'\t' -v a="$1" -v b="$2" -v c="${3:-5}" 'NR>1 && $1==a{x[$2]=$c} NR>1 && $1==b{y[$2]=$c}
		END{for (r in x) if (r in y && y[r] > 0) printf "%.4f\n", x[r] / y[r]}' "$OUT/runs.tsv" | ratio_summary
}
# bulk_pair A B COLUMN: the same for the 1000-calls-per-statement runs
# (bulk13.tsv: 3 CPU, 4 wall); own_pair A B COLUMN: of connlog's own cost
# per call, (A - noop) / (B - noop)
bulk_pair() {
	awk -F'\t' -v a="$1" -v b="$2" -v c="$3" 'NR>1 && $2==a{x[$1]=$c} NR>1 && $2==b{y[$1]=$c}
		END{for (r in x) if (r in y && y[r] > 0) printf "%.4f\n", x[r] / y[r]}' "$OUT/bulk13.tsv" | ratio_summary
}
own_pair() {
	awk -F'\t' -v a="$1" -v b="$2" -v c="$3" 'NR>1 && $2==a{x[$1]=$c} NR>1 && $2==b{y[$1]=$c} NR>1 && $2=="noop"{n[$1]=$c}
		END{for (r in x) if (r in y && r in n && y[r] > n[r]) printf "%.4f\n", (x[r] - n[r]) / (y[r] - n[r])}' "$OUT/bulk13.tsv" | ratio_summary
}
bulk_med() { awk -F'\t' -v a="$1" -v c="$2" 'NR>1 && $2==a{print $c}' "$OUT/bulk13.tsv" | median; }

hp_desc() {
	case $1 in
	select1) echo "SELECT 1" ;;
	noop) echo "no-op C function, same 16 arguments" ;;
	enqueue12) echo "1.2: connlog_enqueue(16 arguments)" ;;
	enqueue) echo "1.3: connlog_enqueue(16 arguments), extra defaulted" ;;
	enqueue_null) echo "1.3: connlog_enqueue(16 arguments, extra => NULL)" ;;
	enqueue_extra) echo "1.3: connlog_enqueue(16 arguments, extra => a 1-key object)" ;;
	esac
}

hotpath_run() {
	local specs r spec name d
	hotpath_setup
	specs=(
		"select1|select1.sql|$CLIENTS|on|1"
		"enqueue12|enqueue12.sql|$CLIENTS|on|1"
		"enqueue|enqueue.sql|$CLIENTS|on|1"
		"enqueue_null|enqueue_null.sql|$CLIENTS|on|1"
		"enqueue_extra|enqueue_extra.sql|$CLIENTS|on|1"
	)
	log "hot path: ${specs[*]%%|*}; $RUNS rounds of ${WARMUP}s warm-up + ${SECONDS_RUN}s, $CLIENTS clients"
	for r in $(seq 1 "$RUNS"); do
		for spec in $(alternate "$r" "${specs[@]}"); do run_one "$spec" "$r"; done
	done

	# one client, 1000 calls per statement; round 0 is a warm-up
	local brounds=$((RUNS > 7 ? RUNS : 7)) txns=60
	log "hot path, 1000 calls per statement: $txns statements per run, 1 client, $brounds rounds"
	prepared_rounds "$OUT/bulk13.tsv" "$txns" "$brounds" noop:"$SCRIPTS/bulk_noop.sql" \
		enqueue12:"$SCRIPTS/bulk12.sql" enqueue:"$SCRIPTS/bulk.sql" \
		enqueue_null:"$SCRIPTS/bulk_null.sql" enqueue_extra:"$SCRIPTS/bulk_extra.sql"

	HOTPATH_MD=$(
		echo
		echo "### connlog_enqueue's hot path: extra NULL, extra set, 1.2"
		echo
		echo "pgbench \`-M prepared -c $CLIENTS -j $THREADS\`, one call per statement, the worker writing meanwhile; ${WARMUP} s warm-up + ${SECONDS_RUN} s measured per run, $RUNS interleaved rounds (order reversed every other round); ratios are medians of the per-round ratios (min–max).  1.2 is 1.2's declaration of connlog_enqueue (from \`CREATE EXTENSION connlog VERSION '1.2'\`) on the same library.  extra: \`$HP_EXTRA\`."
		echo
		echo "| workload | events/s (median) | × SELECT 1 | × 1.2 | backends' CPU µs/event | × 1.2 | worker µs/event |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for name in select1 enqueue12 enqueue enqueue_null enqueue_extra; do
			d=$(hp_desc "$name")
			if [ "$name" = select1 ]; then
				echo "| $d | $(fmt "$(hp_col "$name" 5)") | 1 | | $(hp_col "$name" 12) | | |"
			else
				echo "| $d | $(fmt "$(hp_col "$name" 5)") | $(hp_pair "$name" select1) | $(hp_pair "$name" enqueue12) | $(hp_col "$name" 12) | $(hp_pair "$name" enqueue12 12) | $(hp_col "$name" 13) |" | sed 's/1\.000 (1\.000–1\.000)/1/g'
			fi
		done
		echo
		echo "One client, $txns prepared statements of 1000 calls each per run (the round trip paid once per 1000 calls), $brounds rounds after a warm-up round; the backend's CPU time (\`/proc/PID/schedstat\`) and the wall time per call, medians; ratios per round:"
		echo
		echo "| function | CPU µs per call | × 1.2 | connlog's own CPU (− no-op), µs | × 1.2's | wall µs per call | × 1.2 |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for name in noop enqueue12 enqueue enqueue_null enqueue_extra; do
			d=$(hp_desc "$name")
			if [ "$name" = noop ]; then
				echo "| $d | $(bulk_med noop 3) | | | | $(bulk_med noop 4) | |"
			else
				echo "| $d | $(bulk_med "$name" 3) | $(bulk_pair "$name" enqueue12 3) | $(calc "$(bulk_med "$name" 3) - $(bulk_med noop 3)" 3) | $(own_pair "$name" enqueue12 3) | $(bulk_med "$name" 4) | $(bulk_pair "$name" enqueue12 4) |" | sed 's/1\.000 (1\.000–1\.000)/1/g'
			fi
		done
	)
}

# hotpath_callgrind: with the cluster stopped, each call's instructions
# under callgrind in a single-user backend (no worker: the events only
# fill the ring): the whole statement SELECT count(call) FROM
# generate_series(1, N) for N = 2,000 and 22,000, so that everything but
# the 20,000 extra calls (start, parse, plan) cancels in the difference.
# Deterministic, so other processes on the machine do not move it.
# Appends to HOTPATH_MD.
hotpath_callgrind() {
	local name call n ir args
	command -v valgrind >/dev/null 2>&1 || return 0
	args=$(echo "$EVENT_ARGS" | sed 's/:n::text/n::text/g')
	log "hot path: callgrind instructions per call (single-user backend)"
	printf 'workload\tcalls\tinstructions\n' >"$OUT/callgrind13.tsv"
	for name in noop enqueue12 enqueue enqueue_null enqueue_extra; do
		case $name in
		noop) call="connlog_bench_noop($args)" ;;
		enqueue12) call="connlog_bench_enqueue_1_2($args)" ;;
		enqueue) call="connlog_enqueue($args)" ;;
		enqueue_null) call="connlog_enqueue($args, extra => NULL)" ;;
		enqueue_extra) call="connlog_enqueue($args, extra => $HP_EXTRA)" ;;
		esac
		for n in 2000 22000; do
			printf 'SELECT count(%s) FROM generate_series(1, %s) AS n\n' "$call" "$n" >"$SCRIPTS/cg13-$name-$n.sql"
			chmod 644 "$SCRIPTS/cg13-$name-$n.sql"
			"${AS_PG[@]}" valgrind --tool=callgrind --callgrind-out-file="$SCRATCH/cg13-$name-$n.out" \
				"$PG_BIN/postgres" --single -D "$DATA" bench <"$SCRIPTS/cg13-$name-$n.sql" \
				>"$LOGS/callgrind13-$name-$n.log" 2>&1 || die "callgrind of $name failed: see $LOGS/callgrind13-$name-$n.log"
			ir=$(awk '/^summary:/{print $2}' "$SCRATCH/cg13-$name-$n.out")
			[ -n "$ir" ] || die "no instruction count for $name: see $LOGS/callgrind13-$name-$n.log"
			printf '%s\t%s\t%s\n' "$name" "$n" "$ir" >>"$OUT/callgrind13.tsv"
		done
	done
	cg() { awk -F'\t' -v w="$1" '$1==w && $2==2000{a=$3} $1==w && $2==22000{b=$3} END{printf "%.1f", (b - a) / 20000}' "$OUT/callgrind13.tsv"; }
	HOTPATH_MD+=$(
		echo
		echo
		echo "callgrind, instructions per call (the whole statement at 22,000 calls minus at 2,000, ÷ 20,000; one backend, no worker):"
		echo
		echo "| function | instructions per call | − 1.2's | connlog's own (− no-op) | × 1.2's |"
		echo "|---|---:|---:|---:|---:|"
		echo "| $(hp_desc noop) | $(cg noop) | | | |"
		for name in enqueue12 enqueue enqueue_null enqueue_extra; do
			echo "| $(hp_desc "$name") | $(cg "$name") | $(calc "$(cg "$name") - $(cg enqueue12)" 1) | $(calc "$(cg "$name") - $(cg noop)" 1) | $(ratio "$(calc "$(cg "$name") - $(cg noop)" 1)" "$(calc "$(cg enqueue12) - $(cg noop)" 1)") |"
		done
	)
	log "  $(awk -F'\t' 'NR>1{printf "%s/%s %s  ", $1, $2, $3}' "$OUT/callgrind13.tsv")"
}
