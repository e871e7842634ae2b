# Sources of proxy/ctl/ (explicit list; appended to PGT_SOURCES): the control
# plane (admin console, HTTP, metrics), above session/.
list(APPEND PGT_SOURCES proxy/ctl/control.c proxy/ctl/admin.c proxy/ctl/http.c proxy/ctl/metrics.c)
list(APPEND PGT_SOURCES proxy/ctl/admin_canary.c)
