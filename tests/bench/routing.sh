#!/usr/bin/env bash
# tests/bench/routing.sh — the cost of routing: pgbench select-only through
# two pgturnout instances in one interleaved run, one a plain passthrough
# (a single [path]) and one routing between two paths that need no rewrite
# (old/new differ only by search_path), and, with dual writes on, tpcb-like
# through the routing instance against single-path tpcb.
#
#   PGT_PGHOST=127.0.0.1 PGT_PGPORT=5432 PGT_PGUSER=postgres tests/bench/routing.sh
#
# The PostgreSQL given must accept PGT_PGUSER without a password over TCP
# (trust). Environment: PGT_BIN (default build/pgturnout), BENCH_T (seconds
# per run, default 10), BENCH_ROUNDS (default 3), BENCH_SCALE (default 10).
# When that PostgreSQL runs on this machine (its postmaster.pid readable),
# the tpcb part also reports the CPU time per transaction of PostgreSQL
# (the postmaster and its exited backends) and of pgturnout, from /proc.
# The last line is machine-readable: ROUTING_SUMMARY {json}.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PGT_PGHOST:?set PGT_PGHOST}" "${PGT_PGPORT:?set PGT_PGPORT}"
PGUSER=${PGT_PGUSER:-postgres}
BIN=${PGT_BIN:-build/pgturnout}
T=${BENCH_T:-10}
ROUNDS=${BENCH_ROUNDS:-3}
SCALE=${BENCH_SCALE:-10}
dir=$(mktemp -d -t pgt-routing.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	psql -X -q -h "$PGT_PGHOST" -p "$PGT_PGPORT" -U "$PGUSER" -d postgres \
		-c "DROP DATABASE IF EXISTS pgt_route_a" -c "DROP DATABASE IF EXISTS pgt_route_b" \
		>/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P() { psql -X -q -h "$PGT_PGHOST" -p "$PGT_PGPORT" -U "$PGUSER" "$@"; }

P -d postgres -c "DROP DATABASE IF EXISTS pgt_route_a" -c "DROP DATABASE IF EXISTS pgt_route_b" \
	-c "CREATE DATABASE pgt_route_a" -c "CREATE DATABASE pgt_route_b" >/dev/null
for db in pgt_route_a pgt_route_b; do
	pgbench -q -i -s "$SCALE" -h "$PGT_PGHOST" -p "$PGT_PGPORT" -U "$PGUSER" "$db" >/dev/null 2>&1
done
P -d pgt_route_a -c "CREATE SCHEMA v2" >/dev/null

echo "\"$PGUSER\" \"\"" >"$dir/userlist.txt"
path() { # name dbname [search_path]
	printf '[path %s]\nhost = %s\nport = %s\ndbname = %s\nuser = %s\n' "$1" "$PGT_PGHOST" "$PGT_PGPORT" "$2" "$PGUSER"
	[[ -n ${3:-} ]] && printf 'search_path = %s\n' "$3"
	echo
}
start() { # name port body
	{
		printf '[pgturnout]\nlisten = 127.0.0.1:%s\nauth_type = trust\nauth_file = userlist.txt\n' "$2"
		printf 'log_level = warning\njournal_dir = %s/journal-%s\nmax_client_conn = 1000\n\n' "$dir" "$1"
		printf '%s\n' "$3"
	} >"$dir/$1.ini"
	"$BIN" -c "$dir/$1.ini" >"$dir/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$2" && return; sleep 0.1; done
	echo "pgturnout $1 did not start" >&2; cat "$dir/$1.log" >&2; exit 1
}
pa=$(free_port); pr=$(free_port); pd=$(free_port)
start plain "$pa" "$(path only pgt_route_a)"
start routing "$pr" "$(path old pgt_route_a public)
$(path new pgt_route_a 'v2, public')
[migration]
old = old
new = new
salt = bench
[flags]
canary_percent = 50"
start dual "$pd" "$(path old pgt_route_a)
$(path new pgt_route_b)
[migration]
old = old
new = new
[flags]
dual_write = on"

run() { # port args...
	local port=$1; shift
	pgbench -n "$@" -T "$T" -h 127.0.0.1 -p "$port" -U "$PGUSER" pgt_route_a 2>&1 |
		awk '/^tps/ {print $3} /failed transactions:/ {if ($5 != 0) print "FAILED" > "/dev/stderr"}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A res
for mode in simple prepared; do
	for r in $(seq 1 "$ROUNDS"); do
		res[plain-$mode]+="$(run "$pa" -S -M "$mode" -c 8 -j 2) "
		res[routing-$mode]+="$(run "$pr" -S -M "$mode" -c 8 -j 2) "
	done
done
# CPU per tpcb transaction of PostgreSQL and of the pgturnout instance, when
# PostgreSQL runs on this machine: the postmaster's own ticks, its exited
# children's and its live children's (backends kept by pgturnout between
# clients live on), from /proc. Tells whether a lower TPS is the proxy or
# the database's work.
pm=$(P -d postgres -At -c "SHOW data_directory" 2>/dev/null | xargs -I{} head -1 {}/postmaster.pid 2>/dev/null || true)
[[ -n $pm && -r /proc/$pm/stat ]] || pm=""
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
	local t c
	t=$(ticks "$pm")
	for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done
	echo "$t"
}
declare -A cpu_pg cpu_px ntx
tpcb() { # name port proxy-pid
	local out a b pa pb
	a=$(ticks "$3"); [[ -n $pm ]] && pa=$(pg_ticks)
	out=$(pgbench -n -c 8 -j 2 -T "$T" -h 127.0.0.1 -p "$2" -U "$PGUSER" pgt_route_a 2>&1)
	sleep 0.5
	b=$(ticks "$3"); [[ -n $pm ]] && pb=$(pg_ticks)
	grep -q 'failed transactions: 0 ' <<<"$out" || echo "FAILED transactions in $1" >&2
	res[$1]+="$(awk '/^tps/ {print $3}' <<<"$out") "
	ntx[$1]=$(( ${ntx[$1]:-0} + $(awk '/actually processed/ {print $NF}' <<<"$out") ))
	cpu_px[$1]=$(( ${cpu_px[$1]:-0} + b - a ))
	[[ -n $pm ]] && cpu_pg[$1]=$(( ${cpu_pg[$1]:-0} + pb - pa ))
	return 0
}
for r in $(seq 1 "$ROUNDS"); do
	tpcb plain-tpcb "$pa" "${pids[0]}"
	tpcb dual-tpcb "$pd" "${pids[2]}"
done

json="{"
printf '%-22s %12s\n' workload tps_median
for k in plain-simple routing-simple plain-prepared routing-prepared plain-tpcb dual-tpcb; do
	m=$(tr ' ' '\n' <<<"${res[$k]}" | grep -v '^$' | median)
	printf '%-22s %12.1f\n' "$k" "$m"
	declare "m_${k//-/_}=$m"
	json+="\"$k\": $m, "
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
rs=$(ratio "$m_routing_simple" "$m_plain_simple")
rp=$(ratio "$m_routing_prepared" "$m_plain_prepared")
rd=$(ratio "$m_dual_tpcb" "$m_plain_tpcb")
echo "routing/plain select-only simple:   $rs"
echo "routing/plain select-only prepared: $rp"
echo "dual-write/single-path tpcb:        $rd"
us() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.0f", n ? t * 1e6 / hz / n : 0 }'; }
printf '%-34s %12s %12s\n' "CPU per tpcb transaction (us)" PostgreSQL pgturnout
for k in plain-tpcb dual-tpcb; do
	printf '%-34s %12s %12s\n' "$k" "$([[ -n $pm ]] && us "${cpu_pg[$k]}" "${ntx[$k]}" || echo n/a)" \
		"$(us "${cpu_px[$k]}" "${ntx[$k]}")"
	json+="\"${k}_pg_cpu_us\": $([[ -n $pm ]] && us "${cpu_pg[$k]}" "${ntx[$k]}" || echo null), "
	json+="\"${k}_proxy_cpu_us\": $(us "${cpu_px[$k]}" "${ntx[$k]}"), "
done
echo "ROUTING_SUMMARY ${json}\"routing_simple_ratio\": $rs, \"routing_prepared_ratio\": $rp, \"dual_tpcb_ratio\": $rd}"
