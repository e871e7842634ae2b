/*
 * io/verify_state.c — reads JOURNAL_DIR/verify.last.json; see verify_state.h.
 */
#include "io/verify_state.h"

#include "core/fd.h"
#include "core/json.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct verify_state cached;
static bool cached_ok;
static struct stat cached_st;
static bool cached_seen;

static void state_clear(struct verify_state *s)
{
	for (size_t i = 0; i < s->n_tables; i++) {
		free(s->tables[i].table);
		free(s->tables[i].new_table);
		free(s->tables[i].problem);
	}
	free(s->tables);
	memset(s, 0, sizeof(*s));
}

static uint64_t count_of(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int state_parse(struct verify_state *s, const json_t *o)
{
	const char *tool = json_get_text(o, "tool"), *time = json_get_text(o, "time"),
		   *result = json_get_text(o, "result");
	if (!result || !time || !json_is_integer(json_object_get(o, "timestamp")))
		return -1;
	snprintf(s->tool, sizeof(s->tool), "%s", tool ? tool : "verify");
	snprintf(s->time, sizeof(s->time), "%s", time);
	snprintf(s->result, sizeof(s->result), "%s", result);
	s->timestamp = (int64_t)json_integer_value(json_object_get(o, "timestamp"));
	s->started_ms = (int64_t)json_integer_value(json_object_get(o, "started_ms"));
	s->complete = json_is_true(json_object_get(o, "complete"));
	s->differences = count_of(o, "differences");
	const json_t *tables = json_object_get(o, "tables");
	size_t n = json_array_size(tables);
	s->tables = calloc(n + 1, sizeof(*s->tables));
	if (!s->tables)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const json_t *t = json_array_get(tables, i);
		struct verify_state_table *v = &s->tables[s->n_tables++];
		const char *problem = json_get_text(t, "error");
		if (!problem)
			problem = json_get_text(t, "skipped");
		v->table = json_dup_text(t, "table");
		v->new_table = json_dup_text(t, "new_table");
		v->problem = dup_or_null(problem);
		if (!v->table || !v->new_table || (problem && !v->problem))
			return -1;
		v->rows = count_of(t, "rows");
		v->missing_on_old = count_of(t, "missing_on_old");
		v->missing_on_new = count_of(t, "missing_on_new");
		v->different = count_of(t, "different");
		v->sequences_behind = count_of(t, "sequences_behind");
	}
	return 0;
}

const struct verify_state *verify_state_get(const char *dir)
{
	if (!dir)
		return NULL;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, VERIFY_STATE_FILE);
	struct stat st;
	if (stat(path, &st) < 0) {
		if (cached_seen)
			state_clear(&cached);
		cached_seen = false;
		cached_ok = false;
		return NULL;
	}
	if (cached_seen && fd_stat_same(&cached_st, &st))
		return cached_ok ? &cached : NULL;
	state_clear(&cached);
	cached_seen = true;
	cached_st = st;
	json_error_t jerr;
	json_t *o = json_load_file(path, 0, &jerr);
	cached_ok = json_is_object(o) && state_parse(&cached, o) == 0;
	json_decref(o);
	if (!cached_ok) {
		state_clear(&cached);
		log_warning(0, "%s is unreadable: SHOW VERIFY and the verify metrics show no result "
			    "until the next verify writes it", path);
	}
	return cached_ok ? &cached : NULL;
}

bool verify_state_passed_since(const char *dir, int64_t since_ms)
{
	const struct verify_state *s = verify_state_get(dir);
	return s && s->complete && strcmp(s->result, "equal") == 0 && s->differences == 0 &&
	       s->started_ms >= since_ms;
}
