# tests/bench/common.sh — shared setup of the benchmark scripts. Sourced, never run.
#
# Starts, on loopback only, the three targets the benchmarks compare:
#   direct     PostgreSQL itself: a throwaway cluster (initdb as `postgres`,
#              trust auth on 127.0.0.1, fsync off) or the server given by
#              PGT_PGHOST/PGT_PGPORT (then PGT_PGUSER, PGT_PGPASSWORD,
#              PGT_PGDATABASE say how to log in; `pgbench -i` REPLACES the
#              pgbench_* tables of that database)
#   pgbouncer  /usr/sbin/pgbouncer in session mode, its own ini in a temp dir,
#              run as `postgres` (it refuses root)
#   pgturnout  $PGT_BIN (default <repo>/build-bench/pgturnout), a config with
#              two paths on the same database and every flag off: the cost of
#              the proxy itself; skipped when the binary does not exist
# Every process started here is remembered by PID and stopped on exit
# (trap EXIT); the temp dir is removed unless BENCH_KEEP=1.
#
# Knobs (environment): BENCH_T seconds per pgbench run, BENCH_ROUNDS rounds,
# BENCH_SCALE pgbench scale, BENCH_DIR where to keep temp files.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_PGBIN=${PGT_PGBIN:-/usr/lib/postgresql/15/bin}
BENCH_PGBENCH=${BENCH_PGBENCH:-$BENCH_PGBIN/pgbench}
BENCH_PSQL=${BENCH_PSQL:-$BENCH_PGBIN/psql}
BENCH_PGBOUNCER=${BENCH_PGBOUNCER:-/usr/sbin/pgbouncer}
BENCH_PGT_BIN=${PGT_BIN:-$BENCH_ROOT/build-bench/pgturnout}
BENCH_PYTHON=${BENCH_PYTHON:-python3}
BENCH_SCALE=${BENCH_SCALE:-10}

BENCH_PIDS=()
BENCH_PG_DATA=""        # set when we started PostgreSQL ourselves
BENCH_TMP=""

bench_log() { printf '== %s\n' "$*" >&2; }
bench_die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# Runs a command as the postgres OS user when we are root (setpriv keeps our
# resource limits, which runuser's PAM session may reset).
bench_as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	else
		"$@"
	fi
}

# Starts a command in the background as the postgres OS user, so that $! is
# the PID of the command itself (setpriv execs it).
bench_spawn_as_pg() {
	local out=$1; shift
	if [[ $(id -u) -eq 0 ]]; then
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$@" >"$out" 2>&1 &
	else
		"$@" >"$out" 2>&1 &
	fi
}

bench_free_port() {
	"$BENCH_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_track_pid() { BENCH_PIDS+=("$1"); }

# Stops one process by PID: SIGNAL (default TERM), then KILL after 10 s.
bench_stop_pid() {
	local pid=$1 sig=${2:-TERM}
	kill -0 "$pid" 2>/dev/null || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
	local i
	for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
		bench_stop_pid "${BENCH_PIDS[$i]}"
	done
	BENCH_PIDS=()
	if [[ -n $BENCH_PG_DATA && -f $BENCH_PG_DATA/postmaster.pid ]]; then
		bench_as_pg "$BENCH_PGBIN/pg_ctl" -D "$BENCH_PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 \
			|| kill -QUIT "$(head -1 "$BENCH_PG_DATA/postmaster.pid")" 2>/dev/null || true
	fi
	if [[ -n $BENCH_TMP && ${BENCH_KEEP:-0} != 1 ]]; then
		rm -rf "$BENCH_TMP"
	fi
}

# bench_init: temp dir and cleanup trap. Call first.
bench_init() {
	BENCH_TMP=$(mktemp -d "${BENCH_DIR:-/tmp}/pgt-bench.XXXXXX")
	chmod 755 "$BENCH_TMP"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# bench_pg_start [MAX_CONNECTIONS]
# Sets PG_HOST PG_PORT PG_USER PG_PASSWORD PG_DB.
bench_pg_start() {
	local max_conn=${1:-200}
	if [[ -n ${PGT_PGHOST:-} && -n ${PGT_PGPORT:-} ]]; then
		PG_HOST=$PGT_PGHOST PG_PORT=$PGT_PGPORT
		PG_USER=${PGT_PGUSER:-postgres} PG_PASSWORD=${PGT_PGPASSWORD:-}
		PG_DB=${PGT_PGDATABASE:-$PG_USER}
		bench_log "reusing PostgreSQL at $PG_HOST:$PG_PORT (user $PG_USER, database $PG_DB)"
		return 0
	fi
	local dir=$BENCH_TMP/pg
	mkdir -p "$dir"
	[[ $(id -u) -eq 0 ]] && chown postgres "$dir"
	PG_HOST=127.0.0.1 PG_PORT=$(bench_free_port) PG_USER=bench PG_PASSWORD=bench PG_DB=bench
	BENCH_PG_DATA=$dir/data
	bench_as_pg "$BENCH_PGBIN/initdb" -D "$BENCH_PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
		-A trust --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; bench_die "initdb failed"; }
	cat >>"$BENCH_PG_DATA/postgresql.conf" <<EOC

# pgturnout benchmark server
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = $max_conn
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
EOC
	bench_as_pg "$BENCH_PGBIN/pg_ctl" -D "$BENCH_PG_DATA" -l "$dir/postgres.log" -w -t 120 start >/dev/null \
		|| { tail -20 "$dir/postgres.log" >&2; bench_die "PostgreSQL did not start"; }
	bench_as_pg "$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PG_PORT" -U postgres -d postgres \
		-c "CREATE ROLE bench LOGIN PASSWORD 'bench'" -c "CREATE DATABASE bench OWNER bench" >/dev/null \
		|| bench_die "cannot create the bench role and database"
	bench_log "PostgreSQL on $PG_HOST:$PG_PORT (max_connections $max_conn, data $BENCH_PG_DATA)"
}

# bench_pgbench_init: pgbench tables at BENCH_SCALE in PG_DB.
bench_pgbench_init() {
	bench_log "pgbench -i -s $BENCH_SCALE"
	PGPASSWORD=$PG_PASSWORD "$BENCH_PGBENCH" -i -q -s "$BENCH_SCALE" -h "$PG_HOST" -p "$PG_PORT" \
		-U "$PG_USER" "$PG_DB" >"$BENCH_TMP/pgbench-init.log" 2>&1 \
		|| { cat "$BENCH_TMP/pgbench-init.log" >&2; bench_die "pgbench -i failed"; }
}

bench_userlist() {
	printf '"%s" "%s"\n' "$PG_USER" "$PG_PASSWORD" >"$1"
}

# Waits until `SELECT 1` works through HOST:PORT (up to 120 s: a proxy
# under valgrind starts slowly).
bench_wait_ready() {
	local port=$1 what=$2 pid=${3:-}
	for _ in $(seq 1200); do
		if PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=2 "$BENCH_PSQL" -X -q -At -h 127.0.0.1 -p "$port" \
			-U "$PG_USER" -d "$PG_DB" -c 'SELECT 1' >/dev/null 2>&1; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			bench_die "$what exited during startup"
		fi
		sleep 0.1
	done
	bench_die "$what did not answer on port $port"
}

# bench_pgbouncer_start [MAX_CLIENTS] [WRAPPER...]
# Sets BOUNCER_PORT BOUNCER_PID. WRAPPER (e.g. valgrind ...) runs pgbouncer.
# BOUNCER_NAME (default pgbouncer) names its directory, BOUNCER_POOL_MODE
# (default session) its pool_mode.
bench_pgbouncer_start() {
	local max=${1:-200}; shift || true
	local dir=$BENCH_TMP/${BOUNCER_NAME:-pgbouncer}
	mkdir -p "$dir"
	BOUNCER_PORT=$(bench_free_port)
	bench_userlist "$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<EOC
[databases]
$PG_DB = host=$PG_HOST port=$PG_PORT dbname=$PG_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = ${BOUNCER_POOL_MODE:-session}
max_client_conn = $((max + 10))
default_pool_size = $((max + 10))
max_db_connections = 0
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
EOC
	[[ $(id -u) -eq 0 ]] && chown -R postgres "$dir"
	bench_spawn_as_pg "$dir/stdout.log" "$@" "$BENCH_PGBOUNCER" -q "$dir/pgbouncer.ini"
	BOUNCER_PID=$!
	bench_track_pid "$BOUNCER_PID"
	bench_wait_ready "$BOUNCER_PORT" pgbouncer "$BOUNCER_PID"
	bench_log "PgBouncer on 127.0.0.1:$BOUNCER_PORT (pid $BOUNCER_PID)"
}

bench_have_pgturnout() { [[ -x $BENCH_PGT_BIN ]]; }

# bench_pgturnout_start [MAX_CLIENTS] [WRAPPER...]
# Sets PGT_PORT PGT_PID. Two paths on the same database, every flag off.
bench_pgturnout_start() {
	local max=${1:-200}; shift || true
	local dir=$BENCH_TMP/pgturnout
	mkdir -p "$dir/journal"
	PGT_PORT=$(bench_free_port)
	bench_userlist "$dir/userlist.txt"
	cat >"$dir/pgturnout.ini" <<EOC
[pgturnout]
listen = 127.0.0.1:$PGT_PORT
auth_type = trust
auth_file = $dir/userlist.txt
journal_dir = $dir/journal
max_client_conn = $((max + 10))
log_level = ${BENCH_PGT_LOG_LEVEL:-warning}
; thousands of clients connecting at once wait for PostgreSQL's forks
server_connect_timeout = 120s
client_login_timeout = 300s

; TLS to the server off, as PgBouncer's server_tls_sslmode default: the
; figures compare the proxies, not the encryption
[path old]
host = $PG_HOST
port = $PG_PORT
dbname = $PG_DB
sslmode = disable

[path new]
host = $PG_HOST
port = $PG_PORT
dbname = $PG_DB
sslmode = disable

[migration]
old = old
new = new
salt = bench

[flags]
canary_percent = 0
dual_write = off
EOC
	[[ $(id -u) -eq 0 ]] && chown -R postgres "$dir"
	"$BENCH_PGT_BIN" -c "$dir/pgturnout.ini" --check >"$dir/check.log" 2>&1 \
		|| { cat "$dir/check.log" >&2; bench_die "pgturnout --check refused the bench config"; }
	bench_spawn_as_pg "$dir/pgturnout.log" "$@" "$BENCH_PGT_BIN" -c "$dir/pgturnout.ini"
	PGT_PID=$!
	bench_track_pid "$PGT_PID"
	bench_wait_ready "$PGT_PORT" pgturnout "$PGT_PID"
	bench_log "pgturnout on 127.0.0.1:$PGT_PORT (pid $PGT_PID, $BENCH_PGT_BIN)"
}

# bench_pgbench PORT ARGS... : runs pgbench against 127.0.0.1:PORT (or PG_HOST
# for the direct target), prints "TPS LATENCY_MS", returns pgbench's status.
bench_pgbench() {
	local port=$1; shift
	local host=127.0.0.1 out
	[[ $port == "$PG_PORT" ]] && host=$PG_HOST
	out=$(PGPASSWORD=$PG_PASSWORD "$BENCH_PGBENCH" -n -h "$host" -p "$port" -U "$PG_USER" "$@" "$PG_DB" 2>&1) \
		|| { printf '%s\n' "$out" | tail -5 >&2; return 1; }
	printf '%s\n' "$out" | awk '
		/^tps = / { tps = $3 }
		/^latency average = / { lat = $4 }
		END { if (tps == "") exit 1; printf "%s %s\n", tps, (lat == "" ? "nan" : lat) }'
}

# Resident set size of PID in kB.
bench_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
