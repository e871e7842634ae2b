# Unit tests of the protocol codec of proxy/wire/ (framing rules, pkt_reader,
# ErrorResponse parsing, startup packets, builders).
pgt_unit_test(test_wire_codec ${CMAKE_SOURCE_DIR}/tests/unit/test_wire_codec.c)
