# Unit tests of proxy/conf/ (configuration, auth_hba_file).
pgt_unit_test(test_config ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c)
pgt_unit_test(test_hba ${CMAKE_SOURCE_DIR}/tests/unit/test_hba.c)
