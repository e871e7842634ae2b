# Sources of proxy/conf/ (explicit list; appended to PGT_SOURCES): the
# configuration, the userlist and the flag value types, below route/, io/ and
# session/.
list(APPEND PGT_SOURCES proxy/conf/config.c proxy/conf/userlist.c proxy/conf/hba.c)
