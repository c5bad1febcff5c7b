#!/usr/bin/env bash
# src/compat.h against the installed server's headers (PostgreSQL 15 here):
#  1. compat.h compiles on its own, warning-free, with the server's CFLAGS;
#  2. test/compat/spellings.c, which writes each compat.h spelling the way
#     a call site would (with the newest API's argument types), compiles
#     warning-free, WAL section included;
#  3. every macro and function compat.h defines is used in src/ or
#     test/compat/, or named in README.md's "PostgreSQL versions".
# Only the branch the installed server selects is compiled: the others
# (13, 14, 16, 17, 18) need those servers' headers, which are not here.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/scripts/lib.sh"

inc=$("$PG_CONFIG" --includedir-server)
cflags=$("$PG_CONFIG" --cflags)
cc=$("$PG_CONFIG" --cc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

check() {
	local what=$1
	shift
	if "$@" 2>"$work/err"; then
		echo "ok: $what"
	else
		echo "FAILED: $what"
		cat "$work/err"
		failed=1
	fi
}

printf '#include "postgres.h"\n#include "compat.h"\n' >"$work/header.c"
printf '#include "postgres.h"\n#define CONNLOG_COMPAT_WAL\n#include "compat.h"\n' \
	>"$work/header_wal.c"
# shellcheck disable=SC2086
check "compat.h compiles alone (PostgreSQL $PG_MAJOR)" \
	$cc $cflags -Werror -fsyntax-only -I"$root/src" -I"$inc" "$work/header.c"
# shellcheck disable=SC2086
check "compat.h with CONNLOG_COMPAT_WAL compiles alone" \
	$cc $cflags -Werror -fsyntax-only -I"$root/src" -I"$inc" "$work/header_wal.c"
# shellcheck disable=SC2086
check "test/compat/spellings.c compiles" \
	$cc $cflags -Werror -Wmissing-prototypes -fsyntax-only \
	-I"$root/src" -I"$inc" "$root/test/compat/spellings.c"

# names compat.h defines: macros, and the functions it declares static inline
names=$(sed -n -e 's/^#define \([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' \
	-e '/^static inline/{n;s/^\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p}' \
	"$root/src/compat.h" | grep -v '^CONNLOG_COMPAT_H$' | sort -u)
section=$(sed -n '/^## PostgreSQL versions/,/^## /p' "$root/README.md")
for n in $names; do
	if grep -qw "$n" "$root"/src/*.c "$root"/test/compat/*.c ||
		grep -qw "$n" <<<"$section"; then
		:
	else
		echo "FAILED: $n is defined in compat.h but neither used nor documented"
		failed=1
	fi
done
[ "$failed" = 0 ] && echo "ok: every name compat.h defines is used or documented"
exit "$failed"
