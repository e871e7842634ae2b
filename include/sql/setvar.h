/*
 * sql/setvar.h — reading `SET name = value` statements.
 *
 * The session layer needs the name and value of a SET to recognise
 * `SET pgturnout.version = 'v2'` (the version tag, SPEC §5). Parsed with
 * libpg_query like everything else: quoting and comments are handled by the
 * PostgreSQL grammar, not by string search.
 */
#ifndef PGT_SQL_SETVAR_H
#define PGT_SQL_SETVAR_H

#include <stddef.h>

/*
 * If the single statement TEXT (LEN bytes) is `SET [SESSION] name = value`
 * or `SET name TO value` with one constant value, copies the lower-cased
 * name and the value (string, integer or numeric constant as written) and
 * returns 0. Returns 1 for `RESET name` / `SET name TO DEFAULT` (value "")
 * and -1 for anything else (including SET LOCAL).
 */
int sql_set_target(const char *text, size_t len, char *name, size_t name_cap,
		   char *value, size_t value_cap);

#endif
