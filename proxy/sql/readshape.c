/*
 * sql/readshape.c — the shape of a read; see sql/readshape.h.
 */
#include "sql/readshape.h"

#include <pg_query.h>
#include <pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>

int sql_read_shape(const char *text, size_t len, struct sql_read_shape *out)
{
	memset(out, 0, sizeof(*out));
	char *copy = strndup(text, len);
	if (copy == NULL)
		return -1;
	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(copy);
	free(copy);
	PgQuery__ParseResult *res = NULL;
	if (pr.error)
		goto out;
	res = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
					     (const uint8_t *)pr.parse_tree.data);
	if (res == NULL || res->n_stmts != 1 || res->stmts[0]->stmt == NULL ||
	    res->stmts[0]->stmt->node_case != PG_QUERY__NODE__NODE_SELECT_STMT)
		goto out;
	const PgQuery__SelectStmt *sel = res->stmts[0]->stmt->select_stmt;
	if (sel->into_clause != NULL || sel->n_locking_clause > 0)
		goto out;
	out->select = true;
	out->ordered = sel->n_sort_clause > 0;
	out->limited = sel->limit_count != NULL || sel->limit_offset != NULL;
out:
	if (res != NULL)
		pg_query__parse_result__free_unpacked(res, NULL);
	pg_query_free_protobuf_parse_result(pr);
	return 0;
}
