# Sources of proxy/tools/ (explicit list; appended to PGT_SOURCES): the
# command-line tools that run beside the proxy (verify), at the app floor.
list(APPEND PGT_SOURCES proxy/tools/verify.c)
