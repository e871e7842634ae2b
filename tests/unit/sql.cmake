# Unit tests of proxy/sql/ (classify, rewrite, rules, cache).
pgt_unit_test(test_sql_rewrite ${CMAKE_SOURCE_DIR}/tests/unit/test_sql_rewrite.c)
pgt_unit_test(test_sql_classify ${CMAKE_SOURCE_DIR}/tests/unit/test_sql_classify.c)
pgt_unit_test(test_sql_quick ${CMAKE_SOURCE_DIR}/tests/unit/test_sql_quick.c)
pgt_unit_test(test_sql_capture ${CMAKE_SOURCE_DIR}/tests/unit/test_sql_capture.c)
pgt_unit_test(test_sql_rules_walk ${CMAKE_SOURCE_DIR}/tests/unit/test_sql_rules_walk.c)
