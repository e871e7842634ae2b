# Sources of proxy/session/ (explicit list; appended to PGT_SOURCES).
list(APPEND PGT_SOURCES proxy/session/runtime.c proxy/session/client.c proxy/session/server.c proxy/session/relay.c proxy/session/cancel.c)
list(APPEND PGT_SOURCES proxy/session/steer.c proxy/session/console.c proxy/session/pool.c)
list(APPEND PGT_SOURCES proxy/session/journal.c proxy/session/history_file.c)
list(APPEND PGT_SOURCES proxy/session/flag_state.c proxy/session/fleet.c)
list(APPEND PGT_SOURCES proxy/session/dual.c)
list(APPEND PGT_SOURCES proxy/session/boundary.c proxy/session/replay.c proxy/session/server_stmt.c)
list(APPEND PGT_SOURCES proxy/session/intent.c proxy/session/twophase.c)
list(APPEND PGT_SOURCES proxy/session/janitor.c proxy/session/auth_query.c)
