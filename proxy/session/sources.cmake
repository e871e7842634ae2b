# Sources of proxy/session/ (explicit list; appended to PGT_SOURCES).
