#!/usr/bin/env bash
# tests/bench/latency.sh — latency a proxy adds to each query, at -c 1.
#
#   tests/bench/latency.sh [--quick]
#
# Runs pgbench select-only at -c 1 with the per-transaction log (-l) against
# direct, PgBouncer and pgturnout, in interleaved rounds, for each of
# -M simple, extended and prepared. From each log it takes p50 and p99 of the
# transaction latency; per target it reports the median over rounds, and the
# added latency = target - direct (microseconds). One select-only
# transaction is one query, so that is the latency added per query.
# The last line is machine-readable: LATENCY_SUMMARY {json}.
#
# Environment: BENCH_T (default 10; --quick: 3), BENCH_ROUNDS (default 3),
# BENCH_MODES (default "simple extended prepared"), PGT_BIN, PGT_PGHOST/PGT_PGPORT.
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUICK=0
for arg in "$@"; do
	case $arg in
	--quick) QUICK=1 ;;
	-h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) bench_die "unknown argument $arg" ;;
	esac
done
if [[ $QUICK == 1 ]]; then BENCH_T=${BENCH_T:-3}; else BENCH_T=${BENCH_T:-10}; fi
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
MODES=${BENCH_MODES:-simple extended prepared}

bench_init
bench_pg_start 100
bench_pgbench_init
bench_pgbouncer_start 10
TARGETS=(direct pgbouncer)
PORTS=("$PG_PORT" "$BOUNCER_PORT")
if bench_have_pgturnout; then
	bench_pgturnout_start 10
	TARGETS+=(pgturnout)
	PORTS+=("$PGT_PORT")
else
	bench_log "no pgturnout binary at $BENCH_PGT_BIN (set PGT_BIN): direct and PgBouncer only"
fi

LOGS=$BENCH_TMP/latlogs
mkdir -p "$LOGS"
for mode in $MODES; do
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		for i in "${!TARGETS[@]}"; do
			prefix=$LOGS/$mode.${TARGETS[$i]}.$r
			# pgbench writes PREFIX.PID; -j 1 gives one file
			if ! res=$(bench_pgbench "${PORTS[$i]}" -S -M "$mode" -c 1 -j 1 -T "$BENCH_T" \
				-l --log-prefix="$prefix"); then
				bench_log "$mode round $r ${TARGETS[$i]}: FAILED"
				continue
			fi
			bench_log "$mode round $r ${TARGETS[$i]}: tps ${res% *}"
		done
	done
done

"$BENCH_PYTHON" - "$LOGS" "$BENCH_T" "$BENCH_ROUNDS" <<'EOPY'
import glob, json, os, statistics, sys
logs, t, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def pct(sorted_xs, p):
    if not sorted_xs:
        return float("nan")
    k = min(len(sorted_xs) - 1, max(0, int(round(p / 100.0 * len(sorted_xs) + 0.5)) - 1))
    return sorted_xs[k]

per = {}        # (mode, target) -> [(p50, p99, n)]
modes, targets = [], []
for f in sorted(glob.glob(os.path.join(logs, "*"))):
    mode, target, rnd = os.path.basename(f).split(".")[:3]
    xs = []
    for line in open(f):
        parts = line.split()
        # client_id transaction_no time script_no time_epoch time_us
        if len(parts) >= 3 and parts[2].isdigit():
            xs.append(int(parts[2]))
    xs.sort()
    per.setdefault((mode, target), []).append((pct(xs, 50), pct(xs, 99), len(xs)))
    if mode not in modes:
        modes.append(mode)
    if target not in targets:
        targets.append(target)

order = [x for x in ("direct", "pgbouncer", "pgturnout") if x in targets]
summary = {}
print()
print("%-9s %-10s %9s %9s %12s %12s" % ("mode", "target", "p50_us", "p99_us", "added_p50", "added_p99"))
for mode in ("simple", "extended", "prepared"):
    if mode not in modes:
        continue
    summary[mode] = {}
    base = per.get((mode, "direct"))
    b50 = statistics.median(x[0] for x in base) if base else float("nan")
    b99 = statistics.median(x[1] for x in base) if base else float("nan")
    for target in order:
        rs = per.get((mode, target))
        if not rs:
            continue
        p50 = statistics.median(x[0] for x in rs)
        p99 = statistics.median(x[1] for x in rs)
        summary[mode][target] = {"p50_us": p50, "p99_us": p99,
                                 "added_p50_us": p50 - b50, "added_p99_us": p99 - b99,
                                 "transactions": sum(x[2] for x in rs)}
        print("%-9s %-10s %9d %9d %12d %12d" % (mode, target, p50, p99, p50 - b50, p99 - b99))
print("LATENCY_SUMMARY " + json.dumps({"modes": summary, "t": t, "rounds": rounds}, sort_keys=True))
EOPY
