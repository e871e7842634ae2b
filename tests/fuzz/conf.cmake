# Fuzz targets of proxy/conf/ (configuration loader). config.c is compiled into
# the target so it carries the fuzzer's coverage instrumentation; the
# archive's copy is then never pulled in.
pgt_fuzz_target(fuzz_config ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_config.c
                ${CMAKE_SOURCE_DIR}/proxy/conf/config.c)
