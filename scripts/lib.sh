# Shared by scripts/test, scripts/demo, scripts/build-pg, the suites and
# bench/run: which PostgreSQL, how to get root for installs, and how to run
# servers as a user that is not root (PostgreSQL refuses to run as root).
#
# The server is the one PG_CONFIG names (an environment variable), by
# default Debian's PostgreSQL 15; scripts/build-pg builds 16, 17 and 18
# from ../shared/postgresql and prints a PG_CONFIG for them:
#   PG_CONFIG=$(scripts/build-pg 18) scripts/test

CONNLOG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [[ $PG_CONFIG =~ ^/usr/lib/postgresql/([0-9]+)/bin/pg_config$ ]]; then
	# a Debian server, which need_build_packages installs: it may not be
	# there yet
	PG_MAJOR=${BASH_REMATCH[1]}
	PG_DEBIAN=1
	PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
else
	PG_DEBIAN=
	if ! PG_CONFIG=$(command -v "$PG_CONFIG") || ! PGBIN=$("$PG_CONFIG" --bindir); then
		echo "connlog: PG_CONFIG=$PG_CONFIG is not a pg_config that runs" >&2
		exit 1
	fi
	PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
fi
# the suites and bench/lib.sh source this file again: same server
export PG_CONFIG

# run a command as root: directly, or through sudo
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "connlog: need root (or sudo) to run: $*" >&2
		exit 1
	fi
}

# install the Debian packages that are missing, and nothing else
need_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "connlog: installing ${missing[*]}" >&2
	as_root apt-get update -qq
	# scripts/build-pg and a test run may install at the same time: wait
	# for dpkg's lock rather than fail
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends \
		-o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
}

# what building and testing the extension needs (a server built from
# source comes with its headers)
need_build_packages() {
	if [ -n "$PG_DEBIAN" ]; then
		need_packages make gcc postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
	else
		need_packages make gcc
	fi
}

# The extension installs into the server's own directories, so two trees
# testing on one server would replace each other's build mid-run.  A
# script that installs calls this first, with its own path and arguments:
# it runs again under an exclusive lock, which flock itself holds (-o), so
# servers the script starts do not inherit it.  The lock is the server's:
# its name holds a hash of PG_CONFIG's path, so a run on 18 does not wait
# for one on 15.  Debian's 15 keeps the name it always had, which scripts
# of older trees (and bench/durability, bench/soak) take too.
with_install_lock() {
	local lockfile=${TMPDIR:-/tmp}/connlog-install.lock
	[ -n "${CONNLOG_LOCK_HELD:-}" ] && return 0
	if [ "$PG_CONFIG" != /usr/lib/postgresql/15/bin/pg_config ]; then
		lockfile=${TMPDIR:-/tmp}/connlog-install-$(printf %s "$PG_CONFIG" | sha256sum | cut -c1-12).lock
	fi
	touch "$lockfile" && chmod 666 "$lockfile" 2>/dev/null || true
	if ! flock -n "$lockfile" true; then
		echo "connlog: waiting for another tree's test run on $PG_CONFIG to finish" >&2
	fi
	CONNLOG_LOCK_HELD=1 exec flock -o "$lockfile" bash "$@"
}

# build (COPT may add flags, e.g. -Werror) and install the extension
# The objects in the tree are of one server: built last for another, they
# are cleaned first (make would take them as up to date).  So a tree runs
# one version at a time.
build_and_install() {
	local built=$CONNLOG_ROOT/.built-for
	if [ "$(cat "$built" 2>/dev/null)" != "$PG_CONFIG" ]; then
		make -s -C "$CONNLOG_ROOT" PG_CONFIG="$PG_CONFIG" clean
		echo "$PG_CONFIG" >"$built"
	fi
	make -s -C "$CONNLOG_ROOT" PG_CONFIG="$PG_CONFIG" COPT="${COPT:-}"
	as_root make -s -C "$CONNLOG_ROOT" PG_CONFIG="$PG_CONFIG" install
}

# the user servers run as: postgres when we are root, else ourselves
pg_user() {
	if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

run_as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# a fresh directory the server user owns (the checkout may sit where that
# user cannot go, e.g. under /root)
scratch_dir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/connlog-$1.XXXXXX")
	chmod 755 "$d"
	[ "$(id -u)" = 0 ] && chown postgres: "$d"
	echo "$d"
}

# copy the source tree (without build products) into directory $1
copy_tree() {
	tar -C "$CONNLOG_ROOT" -cf - --exclude=.git --exclude=tmp_check \
		--exclude=tmp_regress --exclude=results --exclude='*.o' \
		--exclude='*.bc' --exclude='*.so' --exclude=bench/out \
		--exclude=fuzz/corpus . | tar -C "$1" -xf -
	[ "$(id -u)" = 0 ] && chown -R postgres: "$1"
	return 0
}
