# Sources of proxy/tools/ (explicit list; appended to PGT_SOURCES): the
# command-line tools that run beside the proxy (verify, repair, backfill) and
# what they share (pairs), at the app floor.
list(APPEND PGT_SOURCES proxy/tools/pairs.c proxy/tools/progress.c proxy/tools/repair.c proxy/tools/verify.c)
