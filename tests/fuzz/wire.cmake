# libFuzzer targets of the protocol codec of proxy/wire/: startup_parse with
# re-encoding (fuzz_startup) and framed message streams in either direction
# with body walks and ErrorResponse round trips (fuzz_messages). The wire
# sources are compiled into each target so they carry the fuzzer's coverage
# instrumentation (pgturnout_core is built without it); the archive's copies
# of these objects are then never pulled in.
pgt_fuzz_target(fuzz_startup ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_startup.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/startup.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/proto.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/build.c
                ${CMAKE_SOURCE_DIR}/proxy/core/wbuf.c)
pgt_fuzz_target(fuzz_messages ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_messages.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/proto.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/build.c
                ${CMAKE_SOURCE_DIR}/proxy/core/wbuf.c)
