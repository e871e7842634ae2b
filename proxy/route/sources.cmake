# Sources of proxy/route/: flags, bucket, router, flag history records. Pure
# decisions over plain values; no file or socket is touched here.
list(APPEND PGT_SOURCES
  proxy/route/bucket.c
  proxy/route/flags.c
  proxy/route/flag_history.c
  proxy/route/router.c
  proxy/route/guard.c
)
