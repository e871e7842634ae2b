# libFuzzer target of the SCRAM-SHA-256 parsers (both sides, and verifiers).
# The code under test is compiled into the target itself, so it carries the
# fuzzer's coverage instrumentation (pgturnout_core is built without it); the
# archive's copies of these objects are then never pulled in.
pgt_fuzz_target(fuzz_scram ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_scram.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/scram.c ${CMAKE_SOURCE_DIR}/proxy/wire/md5.c)
# libFuzzer target of the client's authentication messages as session/client.c
# frames them (PasswordMessage, SASLInitialResponse, SASLResponse), down to
# the md5 check and the SCRAM server.
pgt_fuzz_target(fuzz_auth ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_auth.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/authmsg.c ${CMAKE_SOURCE_DIR}/proxy/wire/proto.c
                ${CMAKE_SOURCE_DIR}/proxy/wire/scram.c ${CMAKE_SOURCE_DIR}/proxy/wire/md5.c)
