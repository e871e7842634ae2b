/*
 * session/server_stmt.c — the named statements prepared on one backend
 * (part of session/server.h's module, kept in a file of its own).
 *
 * In inspect mode each backend records the named statements it holds, with
 * a hash of the Parse message that made each one, so that a replay after a
 * path switch (session/replay.c) sends only what the backend lacks and
 * closes what the session has since closed or prepared differently.
 * Found by name in constant time (core/strmap.h): a session may prepare
 * hundreds of thousands.
 */
#include "session/server.h"

#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

/* Tells whether a backend holds the same statement the client prepared. */
static uint64_t server_stmt_hash(const uint8_t *p, size_t n)
{
	return fnv1a64(FNV1A64_INIT, p, n);
}

const struct server_stmt *server_stmt_find(const struct server *s, const char *name)
{
	return strmap_get(&s->stmts, name);
}

bool server_stmt_holds(const struct server *s, const char *name, const uint8_t *parse, size_t len)
{
	const struct server_stmt *st = server_stmt_find(s, name);
	return st && st->hash == server_stmt_hash(parse, len);
}

void server_stmt_forget(struct server *s, const char *name)
{
	free(strmap_remove(&s->stmts, name));
}

int server_stmt_note(struct server *s, const char *name, const uint8_t *parse, size_t len)
{
	uint64_t hash = server_stmt_hash(parse, len);
	struct server_stmt *st = strmap_get(&s->stmts, name);
	if (st) {
		st->hash = hash;
		return 0;
	}
	st = malloc(sizeof(*st));
	if (!st)
		return -1;
	st->hash = hash;
	if (strmap_put(&s->stmts, name, st, NULL) < 0) {
		free(st);
		return -1;
	}
	return 0;
}
