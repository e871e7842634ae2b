# Unit tests of proxy/ctl/ that need no network (the PUT /flags JSON reader).
pgt_unit_test(test_ctl_http ${CMAKE_SOURCE_DIR}/tests/unit/test_ctl_http.c)
