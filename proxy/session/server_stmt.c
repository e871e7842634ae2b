/*
 * session/server_stmt.c — the named statements prepared on one backend
 * (part of session/server.h's module, kept in a file of its own).
 *
 * In inspect mode each backend records the named statements it holds, with
 * a hash of the Parse message that made each one, so that a replay after a
 * path switch (session/replay.c) sends only what the backend lacks and
 * closes what the session has since closed or prepared differently.
 * The list is small (an application's named statements) and searched
 * linearly.
 */
#include "session/server.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: tells whether a backend holds the same statement the client prepared. */
static uint64_t server_stmt_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct server_stmt *server_stmt_find(const struct server *s, const char *name)
{
	for (size_t i = 0; i < s->n_stmts; i++)
		if (strcmp(s->stmts[i].name, name) == 0)
			return &s->stmts[i];
	return NULL;
}

bool server_stmt_holds(const struct server *s, const char *name, const uint8_t *parse, size_t len)
{
	const struct server_stmt *st = server_stmt_find(s, name);
	return st && st->hash == server_stmt_hash(parse, len);
}

void server_stmt_forget(struct server *s, const char *name)
{
	struct server_stmt *st = server_stmt_find(s, name);
	if (!st)
		return;
	free(st->name);
	*st = s->stmts[--s->n_stmts];
}

int server_stmt_note(struct server *s, const char *name, const uint8_t *parse, size_t len)
{
	uint64_t hash = server_stmt_hash(parse, len);
	struct server_stmt *st = server_stmt_find(s, name);
	if (st) {
		st->hash = hash;
		return 0;
	}
	struct server_stmt *p = realloc(s->stmts, (s->n_stmts + 1) * sizeof(*p));
	if (!p)
		return -1;
	s->stmts = p;
	p[s->n_stmts].name = strdup(name);
	if (!p[s->n_stmts].name)
		return -1;
	p[s->n_stmts].hash = hash;
	s->n_stmts++;
	return 0;
}
