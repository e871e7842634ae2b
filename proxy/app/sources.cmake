# Sources of proxy/app/ (explicit list; appended to PGT_SOURCES): process
# wiring (start, listen, reload, flag changes, shutdown), the top floor.
list(APPEND PGT_SOURCES proxy/app/process.c)
list(APPEND PGT_SOURCES proxy/app/flag_restore.c)
list(APPEND PGT_SOURCES proxy/app/mapping.c)
