/*
 * sql/quick.h — a lexer-level look at a statement, for the fast path.
 *
 * When a statement needs no rewrite and dual writes are off, pgturnout only
 * has to know whether it is a plain read, a plain write, or something that
 * changes session state (which must be remembered for path switches). That
 * needs no parse tree: the PostgreSQL lexical rules (quotes, E'' strings,
 * quoted identifiers, dollar quoting, nested comments, ';' between
 * statements) are enough to find each statement's leading keyword and the
 * identifiers it uses. Anything the lexer cannot vouch for is UNKNOWN and
 * goes to the parser (sql/analyze.h) as before.
 */
#ifndef PGT_SQL_QUICK_H
#define PGT_SQL_QUICK_H

#include <stddef.h>

#include "sql/analyze.h"

enum sql_quick {
	SQL_QUICK_UNKNOWN,      /* ask the parser */
	SQL_QUICK_READ,         /* only SELECT/VALUES/TABLE/SHOW with no session effect */
	SQL_QUICK_WRITE,        /* plain INSERT/UPDATE/DELETE/MERGE (possibly mixed with reads) */
};

/*
 * Looks at TEXT (LEN bytes). READ: every statement starts with SELECT,
 * VALUES, TABLE or SHOW, and none has INTO (SELECT INTO creates a table) or
 * calls set_config() or a session advisory lock function. WRITE: the same,
 * but at least one statement is INSERT/UPDATE/DELETE/MERGE. UNKNOWN for
 * anything else, including text the lexer finds unterminated.
 */
enum sql_quick sql_quick_classify(const char *text, size_t len);

/* Statements per text that sql_quick_analysis() takes; more go to the parser. */
#define QUICK_MAX_STMTS 16

/*
 * The analysis the parser would give TEXT (LEN bytes) when no rewrite is
 * asked for, built by the lexer alone: for texts whose every statement is a
 * plain SELECT/VALUES/TABLE or INSERT/UPDATE/DELETE/MERGE in the sense of
 * sql_quick_classify() (SHOW goes to the parser). Per statement: class,
 * tag, offset and length, and the flags VOLATILE (a name from the parser's
 * volatile list, or CURRENT_TIMESTAMP and its kin, anywhere in it — a
 * column of that name counts too), RETURNING and LOCKING. Tables read and
 * written are not listed. NULL when the lexer cannot vouch, or on out of
 * memory: ask the parser. Free with sql_analysis_unref().
 */
struct sql_analysis *sql_quick_analysis(const char *text, size_t len);

#endif
