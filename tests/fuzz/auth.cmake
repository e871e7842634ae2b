# libFuzzer target of the SCRAM-SHA-256 parsers (both sides, and verifiers).
# The code under test is compiled into the target itself, so it carries the
# fuzzer's coverage instrumentation (pgturnout_core is built without it); the
# archive's copies of these objects are then never pulled in.
pgt_fuzz_target(fuzz_scram ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_scram.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/scram.c ${CMAKE_SOURCE_DIR}/proxy/wire/md5.c)
