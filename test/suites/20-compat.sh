#!/usr/bin/env bash
# src/compat.h against the headers of the server PG_CONFIG names (Debian's
# 15 unless set; .ci/run runs it on 15, 16, 17 and 18):
#  1. compat.h compiles on its own, warning-free, with the server's CFLAGS;
#  2. every macro and function compat.h defines is used in src/, so no shim
#     outlives the code that needed it.
# Only the branch that server selects is compiled: 13 and 14 are compiled
# nowhere.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/scripts/lib.sh"

inc=$("$PG_CONFIG" --includedir-server)
cflags=$("$PG_CONFIG" --cflags)
cc=$("$PG_CONFIG" --cc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

printf '#include "postgres.h"\n#include "compat.h"\n' >"$work/header.c"
# shellcheck disable=SC2086
if $cc $cflags -Werror -fsyntax-only -I"$root/src" -I"$inc" \
	"$work/header.c" 2>"$work/err"; then
	echo "ok: compat.h compiles alone (PostgreSQL $PG_MAJOR)"
else
	echo "FAILED: compat.h compiles alone (PostgreSQL $PG_MAJOR)"
	cat "$work/err"
	failed=1
fi

# names compat.h defines: macros, and the functions it declares static inline
names=$(sed -n -e 's/^#define \([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' \
	-e '/^static inline/{n;s/^\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p}' \
	"$root/src/compat.h" | grep -v '^CONNLOG_COMPAT_H$' | sort -u)
unused=0
for n in $names; do
	if ! grep -qw "$n" "$root"/src/*.c; then
		echo "FAILED: $n is defined in compat.h but nothing in src/ uses it"
		unused=1
	fi
done
[ "$unused" = 0 ] && echo "ok: every name compat.h defines is used in src/"
[ "$failed" = 0 ] && [ "$unused" = 0 ]
