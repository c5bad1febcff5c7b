# Shared by scripts/test, scripts/demo and bench/run: where PostgreSQL 15
# lives, how to get root for installs, and how to run servers as a user
# that is not root (PostgreSQL refuses to run as root).

PG_MAJOR=15
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PGBIN/pg_config
CONNLOG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# what building and testing the extension needs
need_build_packages() {
	need_packages make gcc postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
}

# The extension installs into the server's own directories, so two trees
# testing on one machine would replace each other's build mid-run.  A
# script that installs calls this first, with its own path and arguments:
# it runs again under an exclusive lock, which flock itself holds (-o), so
# servers the script starts do not inherit it.
with_install_lock() {
	local lockfile=${TMPDIR:-/tmp}/connlog-install.lock
	[ -n "${CONNLOG_LOCK_HELD:-}" ] && return 0
	touch "$lockfile" && chmod 666 "$lockfile" 2>/dev/null || true
	if ! flock -n "$lockfile" true; then
		echo "connlog: waiting for another tree's test run to finish" >&2
	fi
	CONNLOG_LOCK_HELD=1 exec flock -o "$lockfile" bash "$@"
}

# build (COPT may add flags, e.g. -Werror) and install the extension
build_and_install() {
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
