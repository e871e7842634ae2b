# Unit tests of the authentication math (wire/md5.c, wire/scram.c), the framing
# of the client's answers (wire/authmsg.c) and the auth_file parser (conf/userlist.c).
pgt_unit_test(test_wire_auth ${CMAKE_SOURCE_DIR}/tests/unit/test_wire_auth.c)
pgt_unit_test(test_userlist ${CMAKE_SOURCE_DIR}/tests/unit/test_userlist.c)
