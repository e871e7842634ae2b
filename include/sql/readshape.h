/*
 * sql/readshape.h — what a read's result depends on, for comparing the
 * results of two paths (shadow reads, SPEC §12): whether the text is one
 * plain SELECT, whether its top level orders the rows, whether it limits
 * them. Parses with libpg_query; no I/O.
 */
#ifndef PGT_SQL_READSHAPE_H
#define PGT_SQL_READSHAPE_H

#include <stdbool.h>
#include <stddef.h>

struct sql_read_shape {
	bool select;            /* exactly one SELECT (or VALUES, or set operation), without
				   INTO and without FOR UPDATE/SHARE */
	bool ordered;           /* its top level has ORDER BY: row order is part of the result */
	bool limited;           /* its top level has LIMIT, OFFSET or FETCH FIRST */
};

/* Fills OUT for TEXT (LEN bytes). 0, or -1 when out of memory; text that
 * does not parse is no select. */
int sql_read_shape(const char *text, size_t len, struct sql_read_shape *out)
	__attribute__((warn_unused_result));

#endif
