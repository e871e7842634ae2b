/*
 * sql/rules.h — the [rewrite] section: old-schema names -> new-schema names.
 *
 *   table.users = users_v2              (either side may be schema-qualified:
 *   table.app.orders = app_v2.orders     "schema.table")
 *   column.users.name = full_name       (column of the OLD table -> column of
 *                                        the NEW table)
 *
 * The reverse mapping (new -> old) is derived. Identifiers follow SQL rules:
 * unquoted names are folded to lower case, "Quoted" names keep their case.
 */
#ifndef PGT_SQL_RULES_H
#define PGT_SQL_RULES_H

#include <stdbool.h>
#include <stddef.h>

struct rewrite_rules;

struct rewrite_rules *rewrite_rules_new(void);
void rewrite_rules_free(struct rewrite_rules *r);   /* NULL does nothing */

/*
 * Adds one [rewrite] entry: KEY is the whole key as written ("table.users",
 * "column.users.name"), VALUE its value. Returns 0, or -1 with a message in
 * err (unknown key syntax, bad identifier, duplicate or conflicting mapping,
 * e.g. two old tables mapped to one new table).
 */
int rewrite_rules_add(struct rewrite_rules *r, const char *key, const char *value,
		      char *err, size_t errlen);
/* Cross-rule validation after the last add (e.g. a column rule whose table is
 * not renamed is fine; a column mapped twice is not). 0 or -1 with err. */
int rewrite_rules_finish(struct rewrite_rules *r, char *err, size_t errlen);
bool rewrite_rules_empty(const struct rewrite_rules *r);

#endif
