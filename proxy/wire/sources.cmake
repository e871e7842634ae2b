# Sources of proxy/wire/ (explicit list; appended to PGT_SOURCES).
list(APPEND PGT_SOURCES proxy/wire/proto.c proxy/wire/startup.c proxy/wire/build.c)
list(APPEND PGT_SOURCES proxy/wire/md5.c proxy/wire/scram.c proxy/wire/authmsg.c)
