# libFuzzer target over proxy/sql/ (classify + rewrite + cache + dry run).
pgt_fuzz_target(fuzz_sql ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_sql.c)
