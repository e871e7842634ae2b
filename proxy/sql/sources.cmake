# Sources of proxy/sql/ (explicit list; appended to PGT_SOURCES).
list(APPEND PGT_SOURCES
  proxy/sql/rules.c
  proxy/sql/analyze.c
  proxy/sql/cache.c)
list(APPEND PGT_SOURCES proxy/sql/setvar.c)
list(APPEND PGT_SOURCES proxy/sql/quick.c)
list(APPEND PGT_SOURCES proxy/sql/capture.c)
list(APPEND PGT_SOURCES proxy/sql/rules_walk.c)
list(APPEND PGT_SOURCES proxy/sql/readshape.c)
list(APPEND PGT_SOURCES proxy/sql/ident.c)
list(APPEND PGT_SOURCES proxy/sql/keyread.c)
