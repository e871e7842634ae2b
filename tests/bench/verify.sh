#!/usr/bin/env bash
# tests/bench/verify.sh — how fast `pgturnout verify` compares a table pair,
# against the plain-SQL answer: `EXCEPT` both ways in one database.
#
#   PGT_PGHOST=/tmp/pgdir PGT_PGPORT=5432 PGT_PGUSER=postgres tests/bench/verify.sh
#
# Makes database pgt_verify_bench with schemas v_old and v_new, each holding
# pgbench_accounts of BENCH_SCALE (default 10: 1M rows) with the same rows,
# then times, BENCH_ROUNDS times (default 3) each:
#   verify      pgturnout verify --table pgbench_accounts (paths = the schemas)
#   verify_diff the same after BENCH_DIFFS rows (default 100) changed on new
#   except      SELECT count(*) of old EXCEPT new, then of new EXCEPT old
# PGT_PGHOST is a host name or address (pgturnout paths do not take socket
# directories); PGT_PGPASSWORD, when set, is PGT_PGUSER's password (it needs
# CREATEDB). Environment: PGT_BIN (default build/pgturnout). The database is dropped at the end. The last line is
# machine-readable: VERIFY_SUMMARY {json}.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PGT_PGHOST:?set PGT_PGHOST}" "${PGT_PGPORT:?set PGT_PGPORT}"
PGUSER=${PGT_PGUSER:-postgres}
BIN=${PGT_BIN:-build/pgturnout}
ROUNDS=${BENCH_ROUNDS:-3}
SCALE=${BENCH_SCALE:-10}
DIFFS=${BENCH_DIFFS:-100}
DB=pgt_verify_bench
dir=$(mktemp -d -t pgt-verify.XXXXXX)
[[ -n ${PGT_PGPASSWORD:-} ]] && export PGPASSWORD=$PGT_PGPASSWORD
P() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGT_PGHOST" -p "$PGT_PGPORT" -U "$PGUSER" "$@"; }
cleanup() {
	P -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

P -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
P -d "$DB" -c "CREATE SCHEMA v_old" -c "CREATE SCHEMA v_new"
PGOPTIONS="-c search_path=v_old" pgbench -q -i -I dtgp -s "$SCALE" -h "$PGT_PGHOST" \
	-p "$PGT_PGPORT" -U "$PGUSER" "$DB" >/dev/null 2>&1
P -d "$DB" -c "CREATE TABLE v_new.pgbench_accounts (LIKE v_old.pgbench_accounts INCLUDING ALL)" \
	-c "INSERT INTO v_new.pgbench_accounts SELECT * FROM v_old.pgbench_accounts" \
	-c "VACUUM ANALYZE v_old.pgbench_accounts" -c "VACUUM ANALYZE v_new.pgbench_accounts"
rows=$(P -d "$DB" -At -c "SELECT count(*) FROM v_old.pgbench_accounts")

{
	printf '[pgturnout]\nlisten = 127.0.0.1:1\nauth_type = trust\njournal_dir = %s/journal\n' "$dir"
	for role in old new; do
		printf '[path %s]\nhost = %s\nport = %s\ndbname = %s\nuser = %s\n' \
			"$role" "$PGT_PGHOST" "$PGT_PGPORT" "$DB" "$PGUSER"
		printf 'password = %s\nsslmode = disable\nsearch_path = v_%s\n' "${PGT_PGPASSWORD:-}" "$role"
	done
	printf '[migration]\nold = old\nnew = new\n'
} >"$dir/verify.ini"

now() { date +%s.%N; }
best() { tr ' ' '\n' | sort -g | head -1; }

# Prints the seconds of one run of "$@"; its exit code must be WANT.
timed() {
	local want=$1; shift
	local t0 rc=0
	t0=$(now)
	"$@" >"$dir/out" 2>"$dir/err" || rc=$?
	if [[ $rc -ne $want ]]; then
		cat "$dir/out" "$dir/err" >&2
		echo "bench: '$*' exited $rc, expected $want" >&2
		exit 1
	fi
	echo "$(now) - $t0" | bc -l
}

verify() { "$BIN" verify -c "$dir/verify.ini" --table pgbench_accounts --json; }
except_both() {
	P -d "$DB" -At -c "SELECT count(*) FROM (SELECT * FROM v_old.pgbench_accounts EXCEPT SELECT * FROM v_new.pgbench_accounts) d" \
		-c "SELECT count(*) FROM (SELECT * FROM v_new.pgbench_accounts EXCEPT SELECT * FROM v_old.pgbench_accounts) d"
}

declare -a tv te td
for ((i = 0; i < ROUNDS; i++)); do
	tv+=("$(timed 0 verify)")
	te+=("$(timed 0 except_both)")
done
P -d "$DB" -c "UPDATE v_new.pgbench_accounts SET abalance = abalance + 1
	WHERE aid IN (SELECT (g * $rows / $DIFFS) FROM generate_series(1, $DIFFS) g)"
for ((i = 0; i < ROUNDS; i++)); do
	td+=("$(timed 1 verify)")
done
found=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tables"][0]["different"])' "$dir/out")
[[ $found -eq $DIFFS ]] || { echo "bench: verify found $found differences, planted $DIFFS" >&2; exit 1; }

v=$(echo "${tv[*]}" | best)
e=$(echo "${te[*]}" | best)
d=$(echo "${td[*]}" | best)
printf 'rows per side          %d\n' "$rows"
printf 'verify, equal          %.2f s  (%.0f rows/s per side)\n' "$v" "$(echo "$rows / $v" | bc -l)"
printf 'verify, %d differ     %.2f s\n' "$DIFFS" "$d"
printf 'EXCEPT both ways       %.2f s  (%.0f rows/s per side)\n' "$e" "$(echo "$rows / $e" | bc -l)"
printf 'VERIFY_SUMMARY {"rows":%d,"verify_s":%.3f,"verify_diff_s":%.3f,"diffs":%d,"except_s":%.3f}\n' \
	"$rows" "$v" "$d" "$DIFFS" "$e"
