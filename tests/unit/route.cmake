# Unit tests of proxy/route/ (bucket, router, flags, flag history).
pgt_unit_test(test_route ${CMAKE_SOURCE_DIR}/tests/unit/test_route.c)
