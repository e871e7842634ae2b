# Unit tests of proxy/io/ (session sockets on a socketpair; no network).
pgt_unit_test(test_io_conn ${CMAKE_SOURCE_DIR}/tests/unit/test_io_conn.c)
pgt_unit_test(test_io_sockopt ${CMAKE_SOURCE_DIR}/tests/unit/test_io_sockopt.c)
