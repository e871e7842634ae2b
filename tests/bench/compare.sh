#!/usr/bin/env bash
# tests/bench/compare.sh — throughput and latency of PostgreSQL direct, through
# PgBouncer and through pgturnout, with pgbench.
#
#   tests/bench/compare.sh [--quick]
#
# Workloads: select-only (-S) with -M simple, extended and prepared at -c 1,
# 8 and 32, and tpcb-like at -c 8. Each workload runs in rounds, the targets
# interleaved inside a round (A B C, A B C, ...) so that drift of a noisy
# machine hits every target alike. Per workload it prints the median TPS and
# mean latency of each target and the ratios pgturnout/direct and
# pgturnout/PgBouncer. The last line is machine-readable:
#   BENCH_SUMMARY {"workloads": {"select-simple-c1": {"direct": {"tps": ..,
#   "lat_ms": ..}, ...}}, "t": 10, "rounds": 3, ...}
#
# Environment: BENCH_T (seconds per run, default 10; --quick: 3),
# BENCH_ROUNDS (default 3), BENCH_SCALE (default 10), BENCH_WORKLOADS
# (space-separated subset of the names above, plus connect-c8: select-only
# with a new connection per transaction, pgbench -C), PGT_BIN (pgturnout binary;
# without one only direct and PgBouncer run), PGT_PGHOST/PGT_PGPORT to reuse
# a server (see common.sh).
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUICK=0
for arg in "$@"; do
	case $arg in
	--quick) QUICK=1 ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) bench_die "unknown argument $arg" ;;
	esac
done
if [[ $QUICK == 1 ]]; then
	BENCH_T=${BENCH_T:-3}
else
	BENCH_T=${BENCH_T:-10}
fi
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
ALL_WORKLOADS="select-simple-c1 select-simple-c8 select-simple-c32
select-extended-c1 select-extended-c8 select-extended-c32
select-prepared-c1 select-prepared-c8 select-prepared-c32 tpcb-c8"
WORKLOADS=${BENCH_WORKLOADS:-$ALL_WORKLOADS}

# pgbench arguments of a workload name
workload_args() {
	local name=$1 kind mode c
	c=${name##*-c}
	case $name in
	select-*) kind=-S; mode=${name#select-}; mode=${mode%-c*} ;;
	tpcb-*) kind=""; mode=simple ;;
	connect-*) kind="-S -C"; mode=simple ;;
	*) bench_die "unknown workload $name" ;;
	esac
	local j=$((c < 2 ? 1 : 2))
	echo $kind -M "$mode" -c "$c" -j "$j" -T "$BENCH_T"
}

bench_init
bench_pg_start 300
bench_pgbench_init
bench_pgbouncer_start 100
TARGETS=(direct pgbouncer)
PORTS=("$PG_PORT" "$BOUNCER_PORT")
if bench_have_pgturnout; then
	bench_pgturnout_start 100
	TARGETS+=(pgturnout)
	PORTS+=("$PGT_PORT")
else
	bench_log "no pgturnout binary at $BENCH_PGT_BIN (set PGT_BIN): direct and PgBouncer only"
fi

RESULTS=$BENCH_TMP/results.tsv
: >"$RESULTS"
n_runs=$(( $(echo $WORKLOADS | wc -w) * BENCH_ROUNDS * ${#TARGETS[@]} ))
bench_log "$n_runs runs of ${BENCH_T}s (about $((n_runs * (BENCH_T + 1) / 60 + 1)) min)"
for w in $WORKLOADS; do
	args=$(workload_args "$w")
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		for i in "${!TARGETS[@]}"; do
			# shellcheck disable=SC2086
			if res=$(bench_pgbench "${PORTS[$i]}" $args); then
				printf '%s\t%s\t%d\t%s\t%s\n' "$w" "${TARGETS[$i]}" "$r" ${res} >>"$RESULTS"
				bench_log "$w round $r ${TARGETS[$i]}: tps ${res% *} lat ${res#* } ms"
			else
				printf '%s\t%s\t%d\tnan\tnan\n' "$w" "${TARGETS[$i]}" "$r" >>"$RESULTS"
				bench_log "$w round $r ${TARGETS[$i]}: FAILED"
			fi
		done
	done
done

"$BENCH_PYTHON" - "$RESULTS" "$BENCH_T" "$BENCH_ROUNDS" "$BENCH_SCALE" "$(nproc)" <<'EOPY'
import json, math, statistics, sys
path, t, rounds, scale, cpus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
runs = {}
order = []
for line in open(path):
    w, target, r, tps, lat = line.rstrip("\n").split("\t")
    if w not in order:
        order.append(w)
    runs.setdefault(w, {}).setdefault(target, []).append((float(tps), float(lat)))

def med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")

def ratio(a, b):
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")

summary = {}
print()
print("%-20s %-10s %12s %10s %9s %9s" % ("workload", "target", "tps(median)", "lat_ms", "vs_direct", "vs_bouncer"))
for w in order:
    summary[w] = {}
    d = med(t[0] for t in runs[w].get("direct", []))
    b = med(t[0] for t in runs[w].get("pgbouncer", []))
    for target, xs in runs[w].items():
        tps = med(x[0] for x in xs)
        lat = med(x[1] for x in xs)
        summary[w][target] = {"tps": round(tps, 1), "lat_ms": round(lat, 3),
                              "vs_direct": round(ratio(tps, d), 3),
                              "vs_pgbouncer": round(ratio(tps, b), 3)}
        print("%-20s %-10s %12.1f %10.3f %9.3f %9.3f" % (w, target, tps, lat, ratio(tps, d), ratio(tps, b)))
out = {"workloads": summary, "t": t, "rounds": rounds, "scale": scale, "cpus": cpus}
print("BENCH_SUMMARY " + json.dumps(out, sort_keys=True, allow_nan=True).replace("NaN", "null"))
EOPY
