# Unit tests of proxy/session/: the flag history file, the flag state record,
# the dual-write journal (its index, repaired offset and rotation),
# and sessions driven on socketpairs through tests/unit/session_harness.c (a
# minimal runtime; no network, no PostgreSQL). A new test of session/ is
# pgt_session_test(name source).
pgt_unit_test(test_history_file ${CMAKE_SOURCE_DIR}/tests/unit/test_history_file.c)
pgt_unit_test(test_journal ${CMAKE_SOURCE_DIR}/tests/unit/test_journal.c)

function(pgt_session_test name source)
  pgt_unit_test(${name} ${source} ${CMAKE_SOURCE_DIR}/tests/unit/session_harness.c)
endfunction()

pgt_session_test(test_session_relay ${CMAKE_SOURCE_DIR}/tests/unit/test_session_relay.c)
pgt_session_test(test_session_dual ${CMAKE_SOURCE_DIR}/tests/unit/test_session_dual.c)
