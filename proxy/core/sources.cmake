# Sources of proxy/core/ (explicit list; appended to PGT_SOURCES).
list(APPEND PGT_SOURCES proxy/core/err.c proxy/core/fd.c proxy/core/json.c proxy/core/log.c proxy/core/strmap.c proxy/core/wbuf.c)
