# Sources of proxy/route/ (explicit list; appended to PGT_SOURCES).
