# Unit tests of proxy/route/ (bucket, router, flags, flag history records).
pgt_unit_test(test_route ${CMAKE_SOURCE_DIR}/tests/unit/test_route.c)
