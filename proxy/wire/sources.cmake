# Sources of proxy/wire/ (explicit list; appended to PGT_SOURCES).
