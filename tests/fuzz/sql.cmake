# libFuzzer target over proxy/sql/ (classify + rewrite + cache + dry run).
# The sql sources are compiled into the target itself so that they carry the
# fuzzer's coverage instrumentation (pgturnout_core is built without it);
# their objects then take precedence over the archive's copies.
pgt_fuzz_target(fuzz_sql
  ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_sql.c
  ${CMAKE_SOURCE_DIR}/proxy/sql/rules.c
  ${CMAKE_SOURCE_DIR}/proxy/sql/analyze.c
  ${CMAKE_SOURCE_DIR}/proxy/sql/cache.c)
