#!/usr/bin/env bash
# tests/bench/instructions.sh — CPU instructions a proxy spends per forwarded
# query, counted by valgrind's callgrind: a figure that does not depend on
# the machine's noise (user-space instructions only; system calls are not
# counted, and neither is PostgreSQL).
#
#   tests/bench/instructions.sh [--quick]
#
# For each proxy (PgBouncer, pgturnout) and each protocol mode it starts the
# proxy under `valgrind --tool=callgrind`, runs pgbench select-only at -c 1
# for N1 transactions, stops the proxy and reads the total instruction count
# (Ir); then the same with N2 transactions. Startup, connection and shutdown
# cost the same in both runs, so
#     instructions per query = (Ir(N2) - Ir(N1)) / (N2 - N1)
# (one select-only transaction is one query). The last line is
# machine-readable: INSTRUCTIONS_SUMMARY {json}.
#
# Environment: BENCH_N1 / BENCH_N2 (default 2000 / 12000; --quick: 500 /
# 3000), BENCH_MODES (default "simple extended prepared"), PGT_BIN,
# PGT_PGHOST/PGT_PGPORT, BENCH_NO_PGBOUNCER=1 (pgturnout only). Needs valgrind (Debian package valgrind).
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUICK=0
for arg in "$@"; do
	case $arg in
	--quick) QUICK=1 ;;
	-h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) bench_die "unknown argument $arg" ;;
	esac
done
if [[ $QUICK == 1 ]]; then
	N1=${BENCH_N1:-500} N2=${BENCH_N2:-3000}
else
	N1=${BENCH_N1:-2000} N2=${BENCH_N2:-12000}
fi
MODES=${BENCH_MODES:-simple extended prepared}
command -v valgrind >/dev/null || bench_die "valgrind not found (apt-get install valgrind)"

bench_init
bench_pg_start 100
bench_pgbench_init
CG=$BENCH_TMP/callgrind
mkdir -p "$CG"
[[ $(id -u) -eq 0 ]] && chown postgres "$CG"

PROXIES=(pgbouncer)
[[ ${BENCH_NO_PGBOUNCER:-0} == 1 ]] && PROXIES=()
if bench_have_pgturnout; then
	PROXIES+=(pgturnout)
else
	bench_log "no pgturnout binary at $BENCH_PGT_BIN (set PGT_BIN): PgBouncer only"
fi

# total Ir of one callgrind output file
total_ir() {
	awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# run_one PROXY MODE N: sets RUN_IR to the proxy's total instructions (runs in
# this shell, not in $(...), so that the EXIT trap sees every PID)
run_one() {
	local proxy=$1 mode=$2 n=$3 out=$CG/$1.$2.$3.out pid port
	local vg=(valgrind --tool=callgrind --callgrind-out-file="$out" --dump-line=no
		  --compress-strings=no)
	case $proxy in
	pgbouncer) bench_pgbouncer_start 10 "${vg[@]}"; pid=$BOUNCER_PID port=$BOUNCER_PORT ;;
	pgturnout) bench_pgturnout_start 10 "${vg[@]}"; pid=$PGT_PID port=$PGT_PORT ;;
	esac
	bench_pgbench "$port" -S -M "$mode" -c 1 -j 1 -t "$n" >/dev/null \
		|| bench_die "pgbench through $proxy failed"
	# SIGINT: PgBouncer's safe shutdown (no client left), pgturnout's exit
	bench_stop_pid "$pid" INT
	[[ -s $out ]] || bench_die "no callgrind output for $proxy (did it exit cleanly?)"
	RUN_IR=$(total_ir "$out")
}

RESULTS=$BENCH_TMP/instructions.tsv
: >"$RESULTS"
for mode in $MODES; do
	for proxy in "${PROXIES[@]}"; do
		run_one "$proxy" "$mode" "$N1"; ir1=$RUN_IR
		run_one "$proxy" "$mode" "$N2"; ir2=$RUN_IR
		printf '%s\t%s\t%s\t%s\n' "$mode" "$proxy" "$ir1" "$ir2" >>"$RESULTS"
		bench_log "$mode $proxy: Ir($N1) = $ir1, Ir($N2) = $ir2"
	done
done

"$BENCH_PYTHON" - "$RESULTS" "$N1" "$N2" <<'EOPY'
import json, sys
path, n1, n2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
summary = {}
print()
print("%-9s %-10s %14s %14s %16s" % ("mode", "proxy", "Ir(N1)", "Ir(N2)", "instr/query"))
for line in open(path):
    mode, proxy, ir1, ir2 = line.split()
    per = (int(ir2) - int(ir1)) / float(n2 - n1)
    summary.setdefault(mode, {})[proxy] = round(per)
    print("%-9s %-10s %14s %14s %16.0f" % (mode, proxy, ir1, ir2, per))
for mode, d in summary.items():
    if "pgbouncer" in d and "pgturnout" in d and d["pgbouncer"]:
        print("%-9s pgturnout/pgbouncer = %.2f" % (mode, d["pgturnout"] / d["pgbouncer"]))
print("INSTRUCTIONS_SUMMARY " + json.dumps({"per_query": summary, "n1": n1, "n2": n2}, sort_keys=True))
EOPY
