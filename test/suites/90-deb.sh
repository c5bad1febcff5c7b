#!/usr/bin/env bash
# The Debian package and the PGXN metadata: check META.json against the
# PGXN Meta Spec, build postgresql-15-connlog from a copy of the tree with
# dpkg-buildpackage, check the files it holds (the extension's and the
# user's documentation), install it over the system's PostgreSQL 15 and
# run debian/tests/smoke against it (a
# throwaway server: one merged row, the extension at the tree's version,
# the updates from 1.0 and 1.1).  At the end the package is removed and
# the tree installed again with make install, as scripts/test left it.
#
#   test/suites/90-deb.sh TREE     (scripts/test runs it as root, under
#                                   the install lock)
set -euo pipefail
tree=$(cd "${1:?usage: 90-deb.sh TREE}" && pwd)
. "$tree/scripts/lib.sh"
started=$SECONDS

# The package is built for the Debian servers debian/pgversions names (15,
# the only one Debian ships here); a server built from source has no
# Debian package to depend on.
if [ -z "$PG_DEBIAN" ] || ! grep -qx "$PG_MAJOR" "$tree/debian/pgversions"; then
	echo "90-deb: skipped: $PG_CONFIG is not a Debian server debian/pgversions names"
	exit 77
fi

pkg=postgresql-$PG_MAJOR-connlog
libdir=/usr/lib/postgresql/$PG_MAJOR/lib
extdir=/usr/share/postgresql/$PG_MAJOR/extension
need_build_packages
need_packages build-essential dpkg-dev debhelper fakeroot python3 \
	postgresql-server-dev-all

echo "-- META.json"
python3 "$tree/test/check-meta.py" "$tree"

if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
	echo "90-deb: $pkg is already installed; remove it first" >&2
	exit 1
fi

work=$(scratch_dir deb)
installed=
cleanup() {
	local status=$?
	if [ -n "$installed" ]; then
		as_root dpkg -r "$pkg" >"$work/dpkg-r.log" 2>&1 ||
			{ cat "$work/dpkg-r.log"; status=1; }
		# dpkg -r took the files make install had put there as well
		as_root make -s -C "$tree" PG_CONFIG="$PG_CONFIG" install &&
			cmp -s "$tree/connlog.so" "$libdir/connlog.so" ||
			{ echo "90-deb: make install did not restore $libdir/connlog.so" >&2; status=1; }
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT

# dpkg-buildpackage writes its products next to the source directory
src=$work/connlog
mkdir "$src"
copy_tree "$src"
echo "-- dpkg-buildpackage -us -uc -b (in $src)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log"
	echo "90-deb: dpkg-buildpackage failed" >&2
	exit 1
fi
version=$(cd "$src" && dpkg-parsechangelog -S Version)
deb=$work/${pkg}_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb
[ -f "$deb" ] || { ls "$work"; echo "90-deb: no $deb" >&2; exit 1; }

echo "-- files in $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$work/files"
grep -E '\.(so|control|sql)$' "$work/files"
want="$libdir/connlog.so $extdir/connlog.control"
for f in $(sed -n 's/^DATA = //p' "$tree/Makefile"); do
	want="$want $extdir/$f"
done
for f in $want; do
	grep -qx "$f" "$work/files" || { echo "90-deb: $f is not in the package" >&2; exit 1; }
done
# and nothing else in the extension directory
extra=$(grep "^$extdir/." "$work/files" | grep -vxF -f <(tr ' ' '\n' <<<"$want") || true)
[ -z "$extra" ] || { echo "90-deb: unexpected files: $extra" >&2; exit 1; }
# the user's documentation (dh_compress may have gzipped it)
for f in README.md connlog.md; do
	grep -qxE "/usr/share/doc/$pkg/$f(\.gz)?" "$work/files" ||
		{ echo "90-deb: /usr/share/doc/$pkg/$f is not in the package" >&2; exit 1; }
done

echo "-- dpkg -i"
installed=1
as_root dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log"; exit 1; }
# the files in place are the package's, not an earlier make install's
owner=$(dpkg -S "$libdir/connlog.so")
[ "$owner" = "$pkg: $libdir/connlog.so" ] || { echo "90-deb: $owner" >&2; exit 1; }
as_root dpkg --verify "$pkg"

echo "-- debian/tests/smoke"
CONNLOG_EXTVERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$tree/connlog.control") \
	sh "$src/debian/tests/smoke"
echo "90-deb: passed in $((SECONDS - started)) s"
