# Unit tests of proxy/session/ that need no network (the flag history file and
# the flag state record).
pgt_unit_test(test_history_file ${CMAKE_SOURCE_DIR}/tests/unit/test_history_file.c)
