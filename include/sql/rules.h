/*
 * sql/rules.h — the [rewrite] section: old-schema names -> new-schema names.
 *
 *   table.users = users_v2              (either side may be schema-qualified:
 *   table.app.orders = app_v2.orders     "schema.table")
 *   column.users.name = full_name       (column of the OLD table -> column of
 *                                        the NEW table)
 *   up.users_v2.email_domain = split_part(email, '@', 2)
 *                                       (a NEW table's column computed from
 *                                        the old row, in old names)
 *   down.users.nickname = split_part(full_name, ' ', 1)
 *                                       (an OLD table's column computed from
 *                                        the new row, in new names)
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

/*
 * Before finish: the columns COLS (N, names as stored) of table (SCHEMA,
 * NAME) as named on the new side (NEW_SIDE) or the old one, as its catalog
 * says; FILL[i] tells whether a write may leave column i out (nullable or
 * with a default); TYPES (NULL, or NULL entries, when unknown) the type of
 * column i as SQL text that the other side also knows. At finish they are
 * given to the rule entry of that name (ignored when no rule names the
 * table). With both sides known, a read of a column the target side lacks,
 * with neither rule nor expression, is refused (0A000) instead of failing on
 * the server; an expression column with a type is read cast to it, so that
 * the client sees the type it would see on its own side. 0 or -1 (out of
 * memory).
 */
int rewrite_rules_add_columns(struct rewrite_rules *r, bool new_side, const char *schema,
			      const char *name, const char *const *cols, const bool *fill,
			      const char *const *types, size_t n, char *err, size_t errlen);

/* ---- additions used by the SQL layer and the cache ------------------------ */

#include <stdint.h>

/* Which way a statement is translated. */
enum rewrite_dir {
	REWRITE_NONE = 0,	/* classify only, never edit */
	REWRITE_OLD_TO_NEW,	/* SQL written for old, sent to new */
	REWRITE_NEW_TO_OLD,	/* SQL written for new, sent to old (derived) */
};

/* A number unique to this rules object for the life of the process (never
 * reused, unlike the pointer), so caches can tell a reloaded rule set apart. */
uint64_t rewrite_rules_id(const struct rewrite_rules *r);
/* Number of table rules / column rules after finish (for SHOW CONFIG, tests). */
size_t rewrite_rules_table_count(const struct rewrite_rules *r);
size_t rewrite_rules_column_count(const struct rewrite_rules *r);
/* Number of up and down expressions. */
size_t rewrite_rules_expr_count(const struct rewrite_rules *r);
/* Whether a statement sent in DIR may need editing under R (false for
 * REWRITE_NONE, a NULL, empty or unfinished R): the session's fast-path
 * test. */
bool rewrite_rules_apply(const struct rewrite_rules *r, enum rewrite_dir dir);

#endif
