# Sources of proxy/io/ (explicit list; appended to PGT_SOURCES).
list(APPEND PGT_SOURCES proxy/io/tls.c proxy/io/listener.c proxy/io/conn.c)
list(APPEND PGT_SOURCES proxy/io/catalog.c)
list(APPEND PGT_SOURCES proxy/io/sockopt.c)
list(APPEND PGT_SOURCES proxy/io/verify_state.c)
list(APPEND PGT_SOURCES proxy/io/durable.c)
