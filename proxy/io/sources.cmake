# Sources of proxy/io/ (explicit list; appended to PGT_SOURCES).
