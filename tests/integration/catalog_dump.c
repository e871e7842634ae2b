/*
 * tests/integration/catalog_dump.c — prints what io/catalog.h reads about
 * one table on one path, as "key value" lines, for test_catalog.py.
 *
 *   catalog_dump CONFIG PATH TABLE
 *
 * Lines: "table SCHEMA NAME", "key KIND COL...", "column NAME TYPE\tnotnull
 * \tdefault=EXPR\tvolatility=N\tidentity=C\tgenerated=C\tsequence=SEQ" (fields
 * separated by tabs), "trigger NAME ENABLED", "sequence_next SEQ VALUE".
 * Exit 0; 1 with "error MESSAGE" on failure; 3 when the table is not found.
 */
#include "conf/config.h"
#include "io/catalog.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: catalog_dump CONFIG PATH TABLE\n");
		return 1;
	}
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(argv[1], &errs);
	if (cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			printf("error %s\n", errs.items[i]);
		config_errors_free(&errs);
		return 1;
	}
	config_errors_free(&errs);
	int pi = config_path_index(cfg, argv[2]);
	char err[1024];
	int rc = 1;
	PGconn *conn = pi < 0 ? NULL : catalog_connect(&cfg->paths[pi], cfg->users, "catalog_dump", 15,
							  err, sizeof(err));
	if (conn == NULL) {
		printf("error %s\n", pi < 0 ? "no such path" : err);
		config_unref(cfg);
		return 1;
	}
	struct catalog_table *t = catalog_read_table(conn, argv[3], err, sizeof(err));
	if (t == NULL) {
		if (err[0] != '\0')
			printf("error %s\n", err);
		rc = err[0] != '\0' ? 1 : 3;
		goto out;
	}
	printf("table %s %s\n", t->schema, t->name);
	printf("key %s", catalog_key_kind_name(t->key_kind));
	for (size_t k = 0; k < t->n_key; k++)
		printf(" %s", t->cols[t->key[k]].name);
	printf("\n");
	for (size_t i = 0; i < t->n_cols; i++) {
		const struct catalog_column *c = &t->cols[i];
		printf("column %s %s\t%s\tdefault=%s\tvolatility=%d\tidentity=%c\tgenerated=%c\tsequence=%s\n",
		       c->name, c->type, c->not_null ? "notnull" : "null",
		       c->default_expr ? c->default_expr : "", (int)c->default_volatility,
		       c->identity ? c->identity : '-', c->generated ? c->generated : '-',
		       c->sequence ? c->sequence : "");
		if (c->sequence != NULL) {
			int64_t next;
			bool known;
			if (catalog_sequence_next(conn, c->sequence, &next, &known, err, sizeof(err)) < 0) {
				printf("error %s\n", err);
				goto out;
			}
			if (known)
				printf("sequence_next %s %lld\n", c->sequence, (long long)next);
		}
	}
	for (size_t i = 0; i < t->n_triggers; i++)
		printf("trigger %s %c\n", t->triggers[i].name, t->triggers[i].enabled);
	rc = 0;
out:
	catalog_table_free(t);
	PQfinish(conn);
	config_unref(cfg);
	return rc;
}
