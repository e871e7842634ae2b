# Sources of proxy/route/: flags, bucket, router, flag history. Pure
# decisions over plain values; only flag_history.c touches a file.
list(APPEND PGT_SOURCES
  proxy/route/bucket.c
  proxy/route/flags.c
  proxy/route/flag_history.c
  proxy/route/router.c
)
