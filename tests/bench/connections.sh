#!/usr/bin/env bash
# tests/bench/connections.sh — memory per idle client: the resident set size
# (RSS) of the proxy process with 1,000 and 10,000 idle clients.
#
#   tests/bench/connections.sh [--quick]
#
# For each count N it starts a fresh proxy, reads its RSS with no client,
# opens N idle connections through it with idle_clients (libpq, non-blocking;
# each client gets its backend in session mode, so PostgreSQL runs N
# backends too), reads the RSS again once all are up, and reports
#     bytes per idle client = (RSS(N) - RSS(0)) / N
# for pgturnout and, for comparison, PgBouncer (BENCH_CONN_PGBOUNCER=0 skips
# it). Each client runs one query after connecting (BENCH_IDLE_QUERY,
# default "SELECT 1"; empty: none) because PgBouncer takes a server
# connection only at a client's first query, while pgturnout opens the
# session path's backend during startup: with the query, both hold one
# backend per client. The last line is machine-readable: CONNECTIONS_SUMMARY {json}.
#
# Needs: ulimit -n of about 2 × N + slack for the proxy (raised here to
# 65536 when allowed; where the hard limit cannot be raised, counts that do
# not fit are lowered to what does, and the report says so).
#
# Backends: with BENCH_CONN_BACKEND=postgres the proxies log in to
# PostgreSQL itself, which then runs N idle backends (1 to 2 MB each, and
# forks slow down past a few thousand). With BENCH_CONN_BACKEND=pgbouncer
# (the default above 2,000 clients) a second PgBouncer in transaction mode
# stands in for the server: the measured proxy still holds one server
# connection per client (its own state is what is measured), while
# PostgreSQL needs only a few backends.
#
# Environment: BENCH_CLIENTS (default "1000 10000"; --quick: "1000"),
# BENCH_CONN_BACKEND (postgres | pgbouncer; default by the largest count),
# BENCH_IDLE_BIN (idle_clients binary; default: compiled here with cc),
# BENCH_IDLE_PARALLEL (handshakes in flight, default 50),
# BENCH_CONN_PGBOUNCER (default 1), PGT_BIN, PGT_PGHOST/PGT_PGPORT.
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUICK=0
for arg in "$@"; do
	case $arg in
	--quick) QUICK=1 ;;
	-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) bench_die "unknown argument $arg" ;;
	esac
done
if [[ $QUICK == 1 ]]; then CLIENTS=${BENCH_CLIENTS:-1000}; else CLIENTS=${BENCH_CLIENTS:-1000 10000}; fi
MAX=0
for n in $CLIENTS; do ((n > MAX)) && MAX=$n; done

# file descriptors: idle_clients N, the proxy 2N, PostgreSQL's postmaster a few
want_fd=65536
if [[ $(ulimit -Hn) != unlimited && $(ulimit -Hn) -lt $want_fd ]]; then
	ulimit -Hn "$want_fd" 2>/dev/null || true
fi
hard=$(ulimit -Hn)
[[ $hard == unlimited || $hard -ge $want_fd ]] && ulimit -Sn "$want_fd" || ulimit -Sn "$hard"
ulimit -u unlimited 2>/dev/null || true
# The proxy holds 2 descriptors per client (client + backend socket). Where
# the hard limit cannot be raised (containers), counts that do not fit are
# lowered to what does, and the report says so.
fit=$(( ($(ulimit -n) - 100) / 2 ))
counts=""
for n in $CLIENTS; do
	if ((n > fit)); then
		bench_log "warning: ulimit -n is $(ulimit -n) (hard limit not raisable here): measuring $fit clients instead of $n"
		n=$fit
	fi
	counts+="$n "
done
CLIENTS=$counts
MAX=0
for n in $CLIENTS; do ((n > MAX)) && MAX=$n; done

bench_init
IDLE=${BENCH_IDLE_BIN:-}
if [[ -z $IDLE ]]; then
	IDLE=$BENCH_TMP/idle_clients
	# shellcheck disable=SC2046
	cc -std=gnu11 -O2 -o "$IDLE" "$(dirname "$0")/idle_clients.c" \
		$(pkg-config --cflags --libs libpq) || bench_die "cannot build idle_clients"
fi
BACKEND=${BENCH_CONN_BACKEND:-}
[[ -n $BACKEND ]] || { ((MAX > 2000)) && BACKEND=pgbouncer || BACKEND=postgres; }
if [[ $BACKEND == pgbouncer ]]; then bench_pg_start 200; else bench_pg_start $((MAX + 100)); fi
REAL_PG_HOST=$PG_HOST REAL_PG_PORT=$PG_PORT
if [[ $BACKEND == pgbouncer ]]; then
	BOUNCER_NAME=backend BOUNCER_POOL_MODE=transaction bench_pgbouncer_start "$MAX"
	bench_log "server side: PgBouncer (transaction mode) on 127.0.0.1:$BOUNCER_PORT in front of PostgreSQL"
	# the measured proxies log in there
	PG_HOST=127.0.0.1 PG_PORT=$BOUNCER_PORT
fi

PROXIES=()
bench_have_pgturnout && PROXIES+=(pgturnout) \
	|| bench_log "no pgturnout binary at $BENCH_PGT_BIN (set PGT_BIN)"
[[ ${BENCH_CONN_PGBOUNCER:-1} == 1 ]] && PROXIES+=(pgbouncer)
[[ ${#PROXIES[@]} -gt 0 ]] || bench_die "nothing to measure"

# Waits until PostgreSQL has at most a few client backends left (those of
# the previous run exit asynchronously).
wait_backends_gone() {
	local n
	for _ in $(seq 600); do
		n=$(PGPASSWORD=$PG_PASSWORD "$BENCH_PSQL" -X -At -h "$REAL_PG_HOST" -p "$REAL_PG_PORT" -U "$PG_USER" \
			-d "$PG_DB" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'" \
			2>/dev/null || echo 999999)
		((n <= 5)) && return 0
		sleep 0.2
	done
	bench_log "warning: $n client backends still on PostgreSQL"
}

RESULTS=$BENCH_TMP/connections.tsv
: >"$RESULTS"
for n in $CLIENTS; do
	for proxy in "${PROXIES[@]}"; do
		[[ $BACKEND == postgres ]] && wait_backends_gone
		case $proxy in
		pgbouncer) bench_pgbouncer_start "$n"; pid=$BOUNCER_PID port=$BOUNCER_PORT ;;
		pgturnout) bench_pgturnout_start "$n"; pid=$PGT_PID port=$PGT_PORT ;;
		esac
		sleep 1
		rss0=$(bench_rss_kb "$pid")
		out=$BENCH_TMP/idle.$proxy.$n.out
		start=$(date +%s.%N)
		"$IDLE" "host=127.0.0.1 port=$port user=$PG_USER password=$PG_PASSWORD dbname=$PG_DB sslmode=disable application_name=idle_clients connect_timeout=120" \
			"$n" "${BENCH_IDLE_PARALLEL:-50}" "${BENCH_IDLE_QUERY-SELECT 1}" >"$out" 2>"$out.err" &
		ipid=$!
		bench_track_pid "$ipid"
		while ! grep -q '^ready' "$out"; do
			if ! kill -0 "$ipid" 2>/dev/null; then
				cat "$out.err" >&2
				bench_die "idle_clients failed through $proxy with $n clients"
			fi
			sleep 0.2
		done
		secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
		sleep 2
		rss=$(bench_rss_kb "$pid")
		printf '%s\t%s\t%s\t%s\t%s\n' "$proxy" "$n" "$rss0" "$rss" "$secs" >>"$RESULTS"
		bench_log "$proxy with $n idle clients: RSS $rss0 kB -> $rss kB (all up in ${secs}s)"
		bench_stop_pid "$ipid"
		bench_stop_pid "$pid" INT
	done
done

"$BENCH_PYTHON" - "$RESULTS" "$BACKEND" <<'EOPY'
import json, sys
summary = {}
print()
print("%-10s %8s %10s %10s %14s %10s" % ("proxy", "clients", "rss0_kB", "rssN_kB", "bytes/client", "connect_s"))
for line in open(sys.argv[1]):
    proxy, n, rss0, rss, secs = line.split()
    n, rss0, rss = int(n), int(rss0), int(rss)
    per = (rss - rss0) * 1024.0 / n
    summary.setdefault(proxy, {})[str(n)] = {"rss0_kb": rss0, "rss_kb": rss,
                                              "bytes_per_client": round(per), "connect_s": float(secs)}
    print("%-10s %8d %10d %10d %14.0f %10s" % (proxy, n, rss0, rss, per, secs))
summary["backend"] = sys.argv[2]
print("CONNECTIONS_SUMMARY " + json.dumps(summary, sort_keys=True))
EOPY
