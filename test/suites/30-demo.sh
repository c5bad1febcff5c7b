#!/usr/bin/env bash
# scripts/demo as a new user runs it: from a clone in a directory only its
# owner may enter (mode 0700, like a home directory), as root, so the
# server's user cannot enter the directory the demo was started from.  The
# demo must finish, print no "could not change directory" (the client
# tools run from the demo's scratch directory), and show its rows.
#
#   test/suites/30-demo.sh TREE     (scripts/test runs it as root, under
#                                    the install lock)
set -euo pipefail
tree=$(cd "${1:?usage: 30-demo.sh TREE}" && pwd)
. "$tree/scripts/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "30-demo: skipped: needs root to make a directory the server user cannot enter"
	exit 0
fi
private=$(mktemp -d "${TMPDIR:-/tmp}/connlog-private.XXXXXX")
trap 'rm -rf "$private"' EXIT
chmod 700 "$private"
tar -C "$tree" -cf - --exclude=.git --exclude=tmp_check --exclude=tmp_regress \
	--exclude=results --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
	--exclude=bench/out --exclude=fuzz/corpus . | tar -C "$private" -xf -

out=$private.out
(cd "$private" && bash scripts/demo) >"$out" 2>&1 || {
	cat "$out"
	echo "30-demo: scripts/demo failed"
	exit 1
}
trap 'rm -rf "$private" "$out"' EXIT
fail=0
if grep -n "could not change directory\|Permission denied" "$out"; then
	echo "30-demo: the demo's output has the lines above"
	fail=1
fi
# 8000 connections and 800 web events: 16800 events, 8800 rows (the sum
# of the per-type table's rows column), none dropped or pending
rows=$(awk -F'|' '/^ *(ssh|vscode|workspace_app|port_forwarding) *\|/ && NF == 4 { n += $2 } END { print n + 0 }' "$out")
if [ "$rows" != 8800 ] || ! grep -Eq "^enqueued +\| 16800$" "$out" ||
	! grep -Eq "^dropped +\| 0$" "$out" || ! grep -Eq "^pending +\| 0$" "$out"; then
	cat "$out"
	echo "30-demo: the demo did not show 16800 events written as 8800 rows"
	fail=1
fi
[ "$fail" = 0 ] && echo "30-demo: passed"
exit "$fail"
