#!/usr/bin/env bash
# tests/bench/copy.sh — COPY FROM throughput through pgturnout: a single
# path (dual_write off) against dual writes (COPY through values: staged on
# old, inserted with a capture, new gets old's values in chunks), and, when
# PGT_BIN_BEFORE names another build, that build's dual writes (e.g. COPY
# copied as a statement before values), for
#   same     one database, old in schema public, new in schema v2, same names
#   renamed  the same, new's table renamed (items_v2, name -> title) with an
#            up expression column (title_len = length(name))
# Each run is `psql \copy items (name, note) FROM file` of BENCH_ROWS rows
# (default 100000) into an empty table with a bigserial key, a
# gen_random_uuid() and a clock_timestamp() default; rows/s and the proxy's
# CPU time (utime + stime from /proc/PID/stat) per 1000 rows. The runs are
# interleaved (every target once per round).
#
#   tests/bench/copy.sh
#
# Starts a throwaway PostgreSQL with scripts/pg.sh (loopback only) and the
# pgturnout instances; every process is stopped by PID on exit.
# Environment: PGT_BIN (default build/pgturnout), PGT_BIN_BEFORE (optional),
# BENCH_ROWS, BENCH_ROUNDS (default 1). Last line: COPY_SUMMARY {json}.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PGT_BIN:-build/pgturnout}
BEFORE=${PGT_BIN_BEFORE:-}
ROWS=${BENCH_ROWS:-100000}
ROUNDS=${BENCH_ROUNDS:-1}
PGBIN=${PGT_PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=tests/bench/instances.sh
source tests/bench/instances.sh
inst_init copybench
inst_pg a
pgport=$port_a
export PGPASSWORD=app
sql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U app -d app -c "$1" >/dev/null; }
table() { # name namecol extra
	printf 'CREATE TABLE %s (id bigserial PRIMARY KEY, %s text NOT NULL, note text, token uuid NOT NULL DEFAULT gen_random_uuid(), created timestamptz NOT NULL DEFAULT clock_timestamp()%s);' "$1" "$2" "$3"
}
sql "CREATE SCHEMA v2; CREATE SCHEMA r2; $(table items name '')
     SET search_path = v2; $(table items name '')
     SET search_path = r2; $(table items_v2 title ', title_len int')"
seq 1 "$ROWS" | awk '{printf "name %d\tnote %d\n", $1, $1}' >"$dir/rows.txt"

declare -A newschema
start() { # name binary newschema dual rewrite
	inst_start "$1" "$2" "$(inst_path old "$pgport" public)
$(inst_path new "$pgport" "$3")
[migration]
old = old
new = new

[flags]
dual_write = $4

$5"
	newschema[$1]=$3
}
rules=$'[rewrite]\ntable.items = items_v2\ncolumn.items.name = title\nup.items_v2.title_len = length(name)\n'
targets=(same-single same-dual renamed-single renamed-dual)
start same-single "$BIN" v2 off ""
start same-dual "$BIN" v2 on ""
start renamed-single "$BIN" r2 off "$rules"
start renamed-dual "$BIN" r2 on "$rules"
if [[ -n $BEFORE ]]; then
	start same-before "$BEFORE" v2 on ""
	start renamed-before "$BEFORE" r2 on "$rules"
	targets+=(same-before renamed-before)
fi

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A rate cpu
for r in $(seq 1 "$ROUNDS"); do
	for k in "${targets[@]}"; do
		sql "TRUNCATE public.items, v2.items, r2.items_v2"
		a=$(ticks "${pid[$k]}")
		t0=$(date +%s.%N)
		out=$("$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port[$k]}" -U app -d app \
			-c "\\copy items (name, note) FROM '$dir/rows.txt'" 2>&1)
		t1=$(date +%s.%N)
		b=$(ticks "${pid[$k]}")
		grep -q "COPY $ROWS" <<<"$out" || { echo "$k: $out" >&2; exit 1; }
		if [[ $k == *-dual || $k == *-before ]]; then
			n=$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$pgport" -U app -d app \
				-c "SELECT count(*) FROM ${newschema[$k]}.$([[ $k == renamed-* ]] && echo items_v2 || echo items)")
			[[ $n == "$ROWS" ]] || echo "$k: new holds $n rows" >&2
		fi
		rate[$k]+="$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}') "
		cpu[$k]=$(( ${cpu[$k]:-0} + b - a ))
	done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
json="{"
printf '%-16s %12s %10s %20s\n' target rows_per_s vs_single proxy_cpu_ms/1000rows
for k in "${targets[@]}"; do
	m=$(tr ' ' '\n' <<<"${rate[$k]}" | grep -v '^$' | median)
	single=$(tr ' ' '\n' <<<"${rate[${k%%-*}-single]}" | grep -v '^$' | median)
	ratio=$(awk -v a="$m" -v b="$single" 'BEGIN {printf "%.3f", a / b}')
	c=$(awk -v t="${cpu[$k]}" -v hz="$hz" -v n="$ROWS" -v r="$ROUNDS" 'BEGIN {printf "%.2f", t * 1000 / hz / (n * r / 1000)}')
	printf '%-16s %12s %10s %20s\n' "$k" "$m" "$ratio" "$c"
	json+="\"$k\": {\"rows_per_s\": $m, \"ratio\": $ratio, \"proxy_cpu_ms_per_1000\": $c}, "
done
echo "COPY_SUMMARY ${json%, }}"
