/*
 * sql/setvar.c — name and value of a SET statement; see sql/setvar.h.
 */
#include "sql/setvar.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_lower(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < cap; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

int sql_set_target(const char *text, size_t len, char *name, size_t name_cap,
		   char *value, size_t value_cap)
{
	char *copy = strndup(text, len);
	if (!copy)
		return -1;
	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(copy);
	free(copy);
	int rc = -1;
	PgQuery__ParseResult *res = NULL;
	if (pr.error)
		goto out;
	res = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
					     (const uint8_t *)pr.parse_tree.data);
	if (!res || res->n_stmts != 1 || !res->stmts[0]->stmt ||
	    res->stmts[0]->stmt->node_case != PG_QUERY__NODE__NODE_VARIABLE_SET_STMT)
		goto out;
	const PgQuery__VariableSetStmt *vs = res->stmts[0]->stmt->variable_set_stmt;
	if (vs->is_local || !vs->name)
		goto out;
	copy_lower(name, name_cap, vs->name);
	if (vs->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT ||
	    vs->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET) {
		if (value_cap)
			value[0] = '\0';
		rc = 1;
		goto out;
	}
	if (vs->kind != PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE || vs->n_args != 1 ||
	    vs->args[0]->node_case != PG_QUERY__NODE__NODE_A_CONST)
		goto out;
	const PgQuery__AConst *c = vs->args[0]->a_const;
	switch (c->val_case) {
	case PG_QUERY__A__CONST__VAL_SVAL:
		snprintf(value, value_cap, "%s", c->sval->sval);
		break;
	case PG_QUERY__A__CONST__VAL_IVAL:
		snprintf(value, value_cap, "%d", (int)c->ival->ival);
		break;
	case PG_QUERY__A__CONST__VAL_FVAL:
		snprintf(value, value_cap, "%s", c->fval->fval);
		break;
	default:
		goto out;
	}
	rc = 0;
out:
	if (res)
		pg_query__parse_result__free_unpacked(res, NULL);
	pg_query_free_protobuf_parse_result(pr);
	return rc;
}
