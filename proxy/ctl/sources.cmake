# Sources of proxy/ctl/ (explicit list; appended to PGT_SOURCES).
list(APPEND PGT_SOURCES proxy/ctl/config.c)
list(APPEND PGT_SOURCES proxy/ctl/userlist.c)
list(APPEND PGT_SOURCES proxy/ctl/admin.c proxy/ctl/http.c proxy/ctl/metrics.c)
