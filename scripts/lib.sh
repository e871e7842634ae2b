# scripts/lib.sh — shared helpers of scripts/test.sh and scripts/demo.sh.
#
# Sourced, never run. Provides:
#   pgt_install_deps         install missing Debian 12 packages (apt, once)
#   pgt_build DIR [ARGS...]  configure + build the tree into DIR
#   pgt_free_port            print a free TCP port on 127.0.0.1
#   pgt_as_pg CMD...         run CMD as the postgres OS user when we are root
#   pgt_track_pid PID        remember a process to stop on exit
#   pgt_cleanup              stop every tracked process (by PID) and the
#                            throwaway PostgreSQL, remove temp dirs
# The throwaway PostgreSQL itself is started and stopped by scripts/pg.sh so
# that the pytest harness can use the very same recipe when run standalone.

PGT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGT_PYTHON=${PGT_PYTHON:-/usr/bin/python3}
PGT_JOBS=${PGT_JOBS:-2}

# "package[:command]": a package is taken as present when dpkg knows it or,
# when a command is named, when that command is on PATH (e.g. npm bundled
# with a nodejs from another repository, a JDK installed without the
# default-jdk metapackage).
PGT_DEB_PACKAGES=(
	build-essential cmake pkg-config
	libevent-dev libssl-dev libpq-dev libinih-dev libjansson-dev libcmocka-dev
	libpg-query-dev libprotobuf-c-dev
	postgresql-15 postgresql-client-15 pgbouncer
	clang libclang-rt-14-dev
	python3 python3-psycopg2 python3-pytest python3-prometheus-client
	openssl curl procps util-linux valgrind
	libpostgresql-jdbc-java default-jdk-headless:javac
	nodejs:node npm:npm
)

pgt_log() { printf '== %s\n' "$*" >&2; }
pgt_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pgt_install_deps() {
	local missing=() entry pkg cmd
	command -v dpkg >/dev/null 2>&1 || { pgt_log "no dpkg: assuming dependencies are installed"; return 0; }
	for entry in "${PGT_DEB_PACKAGES[@]}"; do
		pkg=${entry%%:*}
		cmd=""
		[[ $entry == *:* ]] && cmd=${entry#*:}
		if [[ -n $cmd ]] && command -v "$cmd" >/dev/null 2>&1; then
			continue
		fi
		dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		pgt_log "missing packages (no apt-get, install them yourself): ${missing[*]}"
		return 0
	fi
	local sudo=""
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || pgt_die "missing packages and not root: ${missing[*]}"
		sudo="sudo"
	fi
	pgt_log "installing: ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# pgt_build DIR [cmake args...]
pgt_build() {
	local dir=$1; shift
	cmake -S "$PGT_ROOT" -B "$dir" -DPGT_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$PGT_JOBS"
}

pgt_free_port() {
	"$PGT_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# First free port at or above $1 (for the demo's well-known ports).
pgt_free_port_from() {
	"$PGT_PYTHON" - "$1" <<'EOF'
import socket, sys
p = int(sys.argv[1])
while True:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT is free
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        p += 1
    finally:
        s.close()
EOF
}

pgt_as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

PGT_TRACKED_PIDS=()
PGT_PG_DIRS=()
PGT_TMP_DIRS=()

pgt_track_pid() { PGT_TRACKED_PIDS+=("$1"); }

# Stops what we started, newest first, each by its own PID.
pgt_cleanup() {
	local i pid dir
	for ((i = ${#PGT_TRACKED_PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PGT_TRACKED_PIDS[$i]}
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	PGT_TRACKED_PIDS=()
	for dir in "${PGT_PG_DIRS[@]}"; do
		bash "$PGT_ROOT/scripts/pg.sh" stop "$dir" || true
	done
	PGT_PG_DIRS=()
	for dir in "${PGT_TMP_DIRS[@]}"; do
		rm -rf "$dir"
	done
	PGT_TMP_DIRS=()
}

# pgt_pg_start DIR [INIT_SQL]: throwaway PostgreSQL in DIR (created by the
# caller with mktemp -d), INIT_SQL run as app in database app; exports PGT_PGHOST, PGT_PGPORT, PGT_PGDATA, PGT_PGSOCK,
# PGT_CA_DIR, PGT_PG_PID.
pgt_pg_start() {
	local dir=$1
	PGT_PG_DIRS+=("$dir")
	bash "$PGT_ROOT/scripts/pg.sh" start "$@" || return 1
	# shellcheck disable=SC1091
	source "$dir/env.sh"
}
