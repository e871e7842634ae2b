#!/usr/bin/env bash
# tests/bench/dual.sh — the cost of dual writes per layout and dual_commit
# mode: pgbench tpcb-like through pgturnout, single path against dual writes
# committed `ordered` and `2pc`, for
#   onedb    one database, old in schema public, new in schema v2
#            (paths told apart by search_path)
#   servers  two PostgreSQL servers, database app on each
# and the proxy's CPU time per transaction (utime + stime of its process,
# from /proc/PID/stat, over the run). The runs are interleaved (every
# target once per round), so that a slower or busier moment of the machine
# is shared out.
#
#   tests/bench/dual.sh
#
# Starts two throwaway PostgreSQL servers with scripts/pg.sh (loopback only,
# fsync off, max_prepared_transactions set) and six pgturnout instances;
# every process is stopped by PID on exit. Environment: PGT_BIN (default
# build/pgturnout), BENCH_T (seconds per run, default 15), BENCH_ROUNDS
# (default 1), BENCH_SCALE (default 5), BENCH_CLIENTS (default 8).
# The last line is machine-readable: DUAL_SUMMARY {json}.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PGT_BIN:-build/pgturnout}
T=${BENCH_T:-15}
ROUNDS=${BENCH_ROUNDS:-1}
SCALE=${BENCH_SCALE:-5}
CLIENTS=${BENCH_CLIENTS:-8}
PGBIN=${PGT_PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=tests/bench/instances.sh
source tests/bench/instances.sh
inst_init dualbench
for s in a b; do inst_pg "$s"; done
export PGPASSWORD=app
pgi() { # port [search_path]
	PGOPTIONS="-c search_path=${2:-public}" "$PGBIN/pgbench" -q -i -s "$SCALE" \
		-h 127.0.0.1 -p "$1" -U app app >/dev/null 2>&1
}
"$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port_a" -U app -d app -c "CREATE SCHEMA v2" >/dev/null
pgi "$port_a"
pgi "$port_a" v2
pgi "$port_b"

path() { inst_path "$@"; }
start() { inst_start "$1" "$BIN" "$2"; }
dual() { # layout mode
	local newport=$port_a sp=v2
	[[ $1 == servers ]] && newport=$port_b sp=public
	printf '%s\n\n%s\n\n[migration]\nold = old\nnew = new\ndual_commit = %s\n[flags]\ndual_write = on\n' \
		"$(path old "$port_a" public)" "$(path new "$newport" "$sp")" "$2"
}
targets=(onedb-single onedb-ordered onedb-2pc servers-single servers-ordered servers-2pc)
start onedb-single "$(path old "$port_a" public)"
start servers-single "$(path old "$port_a" public)"
for l in onedb servers; do
	for m in ordered 2pc; do
		start "$l-$m" "$(dual "$l" "$m")"
		grep -q "dual writes commit $([[ $m == 2pc ]] && echo two-phase || echo ordered)" \
			"$dir/$l-$m.log" || { echo "$l-$m: unexpected commit mode" >&2; cat "$dir/$l-$m.log" >&2; exit 1; }
	done
done

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A tps cpu ntx
for r in $(seq 1 "$ROUNDS"); do
	for k in "${targets[@]}"; do
		a=$(ticks "${pid[$k]}")
		out=$("$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$T" -h 127.0.0.1 -p "${port[$k]}" -U app app 2>&1)
		b=$(ticks "${pid[$k]}")
		grep -q 'failed transactions: 0 ' <<<"$out" || echo "FAILED transactions in $k" >&2
		tps[$k]+="$(awk '/^tps/ {print $3}' <<<"$out") "
		ntx[$k]=$(( ${ntx[$k]:-0} + $(awk '/actually processed/ {print $NF}' <<<"$out") ))
		cpu[$k]=$(( ${cpu[$k]:-0} + b - a ))
	done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
us() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.0f", n ? t * 1e6 / hz / n : 0 }'; }
json="{"
printf '%-18s %10s %12s %16s\n' target tps_median vs_single proxy_cpu_us/tx
for k in "${targets[@]}"; do
	m=$(tr ' ' '\n' <<<"${tps[$k]}" | grep -v '^$' | median)
	single=$(tr ' ' '\n' <<<"${tps[${k%%-*}-single]}" | grep -v '^$' | median)
	ratio=$(awk -v a="$m" -v b="$single" 'BEGIN {printf "%.3f", a / b}')
	c=$(us "${cpu[$k]}" "${ntx[$k]}")
	printf '%-18s %10.1f %12s %16s\n' "$k" "$m" "$ratio" "$c"
	json+="\"$k\": {\"tps\": $m, \"ratio\": $ratio, \"proxy_cpu_us\": $c}, "
done
echo "DUAL_SUMMARY ${json%, }}"
