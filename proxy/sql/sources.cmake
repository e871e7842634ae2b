# Sources of proxy/sql/ (explicit list; appended to PGT_SOURCES).
