#!/usr/bin/env bash
# connlog on a Citus cluster: build Citus from ../shared/citus (or reuse
# the cached build, scripts/build-citus), install it into the server's
# directories, and run test/citus/*.pl, which start a coordinator and two
# worker nodes on loopback with shared_preload_libraries = 'citus,connlog'
# and check the rows and counters (see the file's header).  scripts/test
# runs it (as root in CI) with the tree as $1, after installing connlog,
# under the install lock it holds: installing Citus changes the server's
# directories too.
set -euo pipefail
tree=${1:?usage: 60-citus.sh TREE}
. "$tree/scripts/lib.sh"

# Citus 13.2 supports PostgreSQL 15, 16 and 17; not 18.
case $PG_MAJOR in
	15 | 16 | 17) ;;
	*)
		echo "citus: left out on PostgreSQL $PG_MAJOR (Citus 13.2 supports 15, 16 and 17)"
		exit 77
		;;
esac

citus=$(bash "$tree/scripts/build-citus" install)
echo "citus: installed from $citus"

work=$(scratch_dir citus)
copy_tree "$work"
if run_as_pg make -C "$work" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= \
	PROVE_TESTS='test/citus/*.pl' PROVE_FLAGS=--timer; then
	rm -rf "$work"
	echo "citus suite: ok"
	exit 0
fi
for f in "$work"/tmp_check/log/*; do
	[ -f "$f" ] || continue
	echo "---- $f (last 60 lines)"
	tail -n 60 "$f"
done
echo "citus suite: failed (logs kept in $work)"
exit 1
