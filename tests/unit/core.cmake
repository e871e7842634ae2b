# Unit tests of proxy/core/ (error buffers, JSON helpers, the string map).
pgt_unit_test(test_core ${CMAKE_SOURCE_DIR}/tests/unit/test_core.c)
