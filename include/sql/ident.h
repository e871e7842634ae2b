/*
 * sql/ident.h — writing an SQL identifier into generated statements.
 *
 * The one quoter of the proxy and its tools: a name is written bare when
 * PostgreSQL reads it back as the same name (lower-case identifier
 * characters, and not a keyword a table or column position refuses: libpg_query's
 * scanner says which), else in double quotes with quotes doubled. Answers
 * are remembered per name (up to SQL_IDENT_CACHE_MAX names; further ones
 * are quoted), so a statement built for every write costs no scan.
 */
#ifndef PGT_SQL_IDENT_H
#define PGT_SQL_IDENT_H

#include <stdbool.h>

struct wbuf;

#define SQL_IDENT_CACHE_MAX 4096

/* Whether NAME can be written bare. */
bool sql_ident_bare_ok(const char *name);
/* Appends NAME to B, bare or quoted. */
void sql_put_ident(struct wbuf *b, const char *name);

#endif
