# Sources of proxy/ctl/ (explicit list; appended to PGT_SOURCES).
