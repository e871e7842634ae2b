#!/usr/bin/env bash
# scripts/test.sh — the project's test command (CI runs it through .ci/run).
#
# 1. installs missing Debian 12 packages (apt-get, only when something is missing),
#    checks that no file includes a header of a layer above it (check-layers.sh)
# 2. builds with -Werror into build/ (build-asan/ with ASAN=1: ASan+UBSan)
# 3. starts one throwaway PostgreSQL 15 (scripts/pg.sh) for the whole run
# 4. runs ctest: unit tests and the integration tests (tests/integration)
# 5. fuzz smoke: with clang, builds build-fuzz/ and runs every fuzz_* target
#    for PGT_FUZZ_SECONDS (default 60) each
# Everything started here is stopped by PID on exit. Exit status is non-zero
# on any failure.
#
# Environment:
#   ASAN=1               sanitizer build (build-asan/)
#   PGT_CTEST_LABEL=RE   only ctest tests whose label matches (ctest -L RE)
#   PGT_CTEST_ARGS=...   extra ctest arguments
#   PGT_FUZZ_SECONDS=N   seconds per fuzz target (0 skips fuzzing; at least
#                        300 with PGT_BIG=1)
#   PGT_SKIP_DEPS=1      do not look at Debian packages
#   PGT_BIG=1            acceptance-size variants of the heavy tests, and
#                        fuzzing of at least 300 s per target
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

trap pgt_cleanup EXIT
trap 'trap "" INT TERM; exit 130' INT
trap 'trap "" INT TERM; exit 143' TERM

start_time=$(date +%s)
status=0

[[ ${PGT_SKIP_DEPS:-0} == 1 ]] || pgt_install_deps

pgt_log "layering check"
scripts/check-layers.sh || status=1

if [[ ${ASAN:-0} == 1 ]]; then
	build_dir=$PGT_ROOT/build-asan
	pgt_log "building (ASan+UBSan) in $build_dir"
	pgt_build "$build_dir" -DPGT_SANITIZE=ON
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
	build_dir=$PGT_ROOT/build
	pgt_log "building in $build_dir"
	pgt_build "$build_dir"
fi
export PGT_BIN=$build_dir/pgturnout
export PGT_PQCLIENT=$build_dir/tests/integration/pqclient

pg_dir=$(mktemp -d -t pgturnout-pg.XXXXXX)
PGT_TMP_DIRS+=("$pg_dir")
pgt_log "starting PostgreSQL 15 in $pg_dir"
pgt_pg_start "$pg_dir"
pgt_log "PostgreSQL on $PGT_PGHOST:$PGT_PGPORT (pid $PGT_PG_PID)"

ctest_args=(--output-on-failure -j2 --timeout 600)
[[ -n ${PGT_CTEST_LABEL:-} ]] && ctest_args+=(-L "$PGT_CTEST_LABEL")
# shellcheck disable=SC2206
[[ -n ${PGT_CTEST_ARGS:-} ]] && ctest_args+=($PGT_CTEST_ARGS)
pgt_log "ctest ${ctest_args[*]}"
(cd "$build_dir" && ctest "${ctest_args[@]}") || status=1

fuzz_seconds=${PGT_FUZZ_SECONDS:-60}
# acceptance size: every target runs for at least 300 s (0 still skips)
[[ ${PGT_BIG:-0} == 1 && $fuzz_seconds -gt 0 && $fuzz_seconds -lt 300 ]] && fuzz_seconds=300
if [[ $fuzz_seconds -gt 0 ]] && command -v clang >/dev/null 2>&1; then
	fuzz_dir=$PGT_ROOT/build-fuzz
	pgt_log "fuzz build in $fuzz_dir"
	if CC=clang pgt_build "$fuzz_dir" -DPGT_FUZZ=ON -DPGT_TESTS=OFF; then
		mapfile -t targets < <(find "$fuzz_dir" -maxdepth 3 -type f -name 'fuzz_*' -perm -u+x | sort)
		[[ ${#targets[@]} -eq 0 ]] && pgt_log "no fuzz targets"
		for target in "${targets[@]}"; do
			name=$(basename "$target")
			corpus=$fuzz_dir/corpus/$name
			mkdir -p "$corpus"
			seeds=()
			[[ -d $PGT_ROOT/tests/fuzz/corpus/$name ]] && seeds+=("$PGT_ROOT/tests/fuzz/corpus/$name")
			pgt_log "fuzz $name for ${fuzz_seconds}s"
			if ! "$target" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
				-artifact_prefix="$fuzz_dir/crash-$name-" "$corpus" "${seeds[@]}" \
				>"$fuzz_dir/$name.log" 2>&1; then
				tail -50 "$fuzz_dir/$name.log" >&2
				pgt_log "FUZZ FAILURE: $name (log $fuzz_dir/$name.log)"
				status=1
			fi
		done
	else
		pgt_log "fuzz build failed"
		status=1
	fi
else
	pgt_log "fuzz smoke skipped (no clang or PGT_FUZZ_SECONDS=0)"
fi

pgt_log "done in $(($(date +%s) - start_time))s, status $status"
exit $status
