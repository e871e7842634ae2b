#!/usr/bin/env bash
# tests/bench/journal_start.sh — how long pgturnout takes to start with a large
# dual-write journal: from exec until it accepts a client and answers
# `SELECT 1` through the proxy, and its resident memory once it has indexed
# the journal.
#
#   PGT_BIN=build/pgturnout tests/bench/journal_start.sh
#
# Writes a journal of BENCH_JOURNAL_ENTRIES entries (default 100000, each
# a ~300-byte INSERT with its parameters, checksummed like the proxy's own)
# into the proxy's journal_dir, then starts the proxy BENCH_ROUNDS times
# (default 3) and reports the best and worst start-up time. Uses the
# throwaway PostgreSQL of common.sh (or PGT_PGHOST/PGT_PGPORT). The last
# line is machine-readable (the proxy's own "journal indexed ... in N s" log
# line is shown per round when it logs at info): JOURNAL_START {json}.
set -euo pipefail
. "$(dirname "$0")/common.sh"
ENTRIES=${BENCH_JOURNAL_ENTRIES:-100000}
ROUNDS=${BENCH_ROUNDS:-3}
export BENCH_PGT_LOG_LEVEL=${BENCH_PGT_LOG_LEVEL:-info}   # the "journal indexed" line
bench_have_pgturnout || bench_die "no pgturnout binary at $BENCH_PGT_BIN (set PGT_BIN)"
bench_init
bench_pg_start
jdir=$BENCH_TMP/pgturnout/journal
mkdir -p "$jdir"
"$BENCH_PYTHON" - "$jdir/dual_write_journal.log" "$ENTRIES" <<'PY'
import json, sys, zlib
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        o = {"time": "2026-01-01T00:00:00.000Z", "session": i % 97, "path": "new",
             "fingerprint": "%016x" % (i * 2654435761 % (1 << 64)),
             "statement": "INSERT INTO app_v2.accounts (id, owner_name, balance, note) "
                          "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING /* %d */" % i,
             "parameters": "$1 = '%d', $2 = 'owner %d', $3 = '%d.00', $4 = 'x'" % (i, i, i % 1000),
             "error": "08006: the shadow's connection was lost"}
        s = json.dumps(o, separators=(",", ":"))
        f.write("%08x %s\n" % (zlib.crc32(s.encode()) & 0xffffffff, s))
PY
size=$(stat -c %s "$jdir/dual_write_journal.log")
bench_log "journal: $ENTRIES entries, $size bytes"
times=()
rss=0
for ((r = 0; r < ROUNDS; r++)); do
	t0=$(date +%s.%N)
	bench_pgturnout_start
	t1=$(date +%s.%N)
	times+=("$(echo "$t1 - $t0" | bc -l)")
	# once the index is complete SHOW JOURNAL counts every entry
	sleep 2
	rss=$(bench_rss_kb "$PGT_PID")
	bench_stop_pid "$PGT_PID"
	indexed=$(grep -o 'journal indexed: .*' "$BENCH_TMP/pgturnout/pgturnout.log" | tail -1 || true)
	bench_log "round $((r + 1)): ready after ${times[-1]} s, rss ${rss} kB; ${indexed:-no index line}"
done
best=$(printf '%s\n' "${times[@]}" | sort -g | head -1)
worst=$(printf '%s\n' "${times[@]}" | sort -g | tail -1)
printf 'JOURNAL_START {"entries":%d,"bytes":%d,"ready_best_s":%.3f,"ready_worst_s":%.3f,"rss_kb":%d}\n' \
	"$ENTRIES" "$size" "$best" "$worst" "$rss"
