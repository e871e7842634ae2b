# Unit tests of proxy/conf/ (configuration).
pgt_unit_test(test_config ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c)
