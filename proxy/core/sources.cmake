# Sources of proxy/core/ (explicit list; appended to PGT_SOURCES).
