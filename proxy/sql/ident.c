/*
 * sql/ident.c — see ident.h.
 */
#include "sql/ident.h"

#include "core/strmap.h"
#include "core/wbuf.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query.pb-c.h>

static const char bare_yes = 'y', bare_no = 'n';

static struct {
	pthread_mutex_t mu;             /* the tools and the proxy's threads may quote */
	struct strmap answers;          /* name -> &bare_yes / &bare_no (borrowed) */
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* The scanner's verdict: one token, no keyword or an unreserved one. */
static bool ident_scan_bare(const char *name)
{
	PgQueryScanResult res = pg_query_scan(name);
	bool ok = false;
	if (res.error == NULL) {
		PgQuery__ScanResult *scan = pg_query__scan_result__unpack(
			NULL, res.pbuf.len, (const uint8_t *)res.pbuf.data);
		if (scan != NULL) {
			ok = scan->n_tokens == 1 &&
			     (scan->tokens[0]->keyword_kind == PG_QUERY__KEYWORD_KIND__NO_KEYWORD ||
			      scan->tokens[0]->keyword_kind ==
				      PG_QUERY__KEYWORD_KIND__UNRESERVED_KEYWORD);
			pg_query__scan_result__free_unpacked(scan, NULL);
		}
	}
	pg_query_free_scan_result(res);
	return ok;
}

bool sql_ident_bare_ok(const char *name)
{
	if (!(islower((unsigned char)name[0]) || name[0] == '_'))
		return false;
	for (const char *p = name; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
			return false;
	pthread_mutex_lock(&cache.mu);
	const char *known = strmap_get(&cache.answers, name);
	pthread_mutex_unlock(&cache.mu);
	if (known != NULL)
		return known == &bare_yes;
	bool ok = ident_scan_bare(name);
	pthread_mutex_lock(&cache.mu);
	if (strmap_count(&cache.answers) < SQL_IDENT_CACHE_MAX)
		(void)strmap_put(&cache.answers, name, (void *)(ok ? &bare_yes : &bare_no), NULL);
	pthread_mutex_unlock(&cache.mu);
	return ok;
}

void sql_put_ident(struct wbuf *b, const char *name)
{
	if (sql_ident_bare_ok(name)) {
		wbuf_put(b, name, strlen(name));
		return;
	}
	wbuf_put_u8(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			wbuf_put_u8(b, '"');
		wbuf_put_u8(b, (uint8_t)*p);
	}
	wbuf_put_u8(b, '"');
}
