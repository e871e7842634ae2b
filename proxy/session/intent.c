/*
 * session/intent.c — see session/intent.h.
 *
 * The file is kept open in append mode. It is truncated whenever no intent
 * is open and it has grown past INTENT_TRUNCATE_BYTES, so that it stays
 * small however long the overlap window lasts.
 */
#include "session/intent.h"

#include "core/fd.h"
#include "core/json.h"
#include "core/log.h"
#include "io/durable.h"
#include "core/wbuf.h"
#include "session/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INTENT_FILE "dual_write_intents.log"
#define INTENT_TRUNCATE_BYTES (1024 * 1024)

struct intent_log {
	int fd;
	uint64_t next_id;
	size_t open;            /* intents begun and not ended */
	uint64_t size;          /* bytes in the file */
	size_t recovered;
};

/* One open intent found at start. */
struct found {
	uint64_t id;
	json_t *obj;            /* owns */
};

/* Moves the intents of the previous run that were never closed to the
 * journal. */
static int intent_recover(struct intent_log *l, FILE *f, struct journal *journal)
{
	struct found *v = NULL;
	size_t n = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *o = json_loadb(line, (size_t)len, 0, NULL);
		if (!json_is_object(o)) {
			json_decref(o);  /* a torn last line: its COMMIT was never sent */
			continue;
		}
		json_t *done = json_object_get(o, "done");
		if (json_is_integer(done)) {
			for (size_t i = 0; i < n; i++)
				if (v[i].id == (uint64_t)json_integer_value(done)) {
					json_decref(v[i].obj);
					v[i] = v[--n];
					break;
				}
			json_decref(o);
			continue;
		}
		struct found *p = realloc(v, (n + 1) * sizeof(*v));
		if (!p) {
			json_decref(o);
			rc = -1;
			break;
		}
		v = p;
		v[n].id = (uint64_t)json_integer_value(json_object_get(o, "intent"));
		v[n++].obj = o;
	}
	free(line);
	for (size_t i = 0; i < n; i++) {
		const json_t *o = v[i].obj;
		const char *path = json_get_text(o, "path");
		uint64_t session = (uint64_t)json_integer_value(json_object_get(o, "session"));
		json_t *stmts = json_object_get(o, "statements");
		for (size_t k = 0; k < json_array_size(stmts) && rc == 0; k++) {
			const json_t *s = json_array_get(stmts, k);
			const char *text = json_get_text(s, "text");
			uint64_t fp = 0;
			if (!text)
				continue;
			(void)fp;
			if (!journal || journal_add(journal, session, path ? path : "", 0, text,
						    json_get_text(s, "params"),
						    "in doubt: pgturnout stopped between the primary's "
						    "commit and the shadow's; the shadow may lack this") < 0)
				rc = -1;
		}
		json_decref(v[i].obj);
	}
	free(v);
	if (rc == 0 && n && journal_sync(journal) < 0)
		rc = -1;
	l->recovered = n;
	return rc;
}

struct intent_log *intent_log_open(const char *dir, struct journal *journal, char *err,
				   size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, INTENT_FILE);
	struct intent_log *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->next_id = 1;
	FILE *f = fopen(path, "r");
	if (f) {
		int rc = intent_recover(l, f, journal);
		fclose(f);
		if (rc < 0) {
			snprintf(err, errlen, "cannot move the in-doubt intents of %s to the journal; "
				 "the file is kept", path);
			free(l);
			return NULL;
		}
		if (l->recovered)
			log_warning(0, "%zu dual-write transaction(s) in doubt after the last stop: "
				    "journaled for repair", l->recovered);
	}
	l->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	if (l->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(l);
		return NULL;
	}
	return l;
}

void intent_log_free(struct intent_log *l)
{
	if (!l)
		return;
	close(l->fd);
	free(l);
}

size_t intent_log_recovered(const struct intent_log *l)
{
	return l ? l->recovered : 0;
}

/* Appends the JSON object O and a newline. */
static int intent_write(struct intent_log *l, const json_t *o)
{
	struct wbuf b;
	wbuf_init(&b);
	int rc = json_append(&b, o, JSON_COMPACT);
	wbuf_put_u8(&b, '\n');
	if (rc == 0 && wbuf_ok(&b))
		rc = fd_write_all(l->fd, b.data, b.len, NULL);
	else
		rc = -1;
	if (rc == 0)
		l->size += b.len;
	wbuf_free(&b);
	return rc;
}

uint64_t intent_begin(struct intent_log *l, uint64_t session, const char *path,
		      const struct intent_stmt *stmts, size_t n, uint64_t *ticket)
{
	*ticket = 0;
	if (!l)
		return 0;
	uint64_t id = l->next_id++;
	json_t *o = json_object();
	json_t *arr = json_array();
	int rc = o && arr ? 0 : -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *s = json_object();
		if (!s || json_set_text(s, "text", stmts[i].text) < 0 ||
		    (stmts[i].params && json_set_text(s, "params", stmts[i].params) < 0) ||
		    json_array_append_new(arr, s) < 0)
			rc = -1;
	}
	if (rc == 0 && (json_object_set_new(o, "intent", json_integer((json_int_t)id)) < 0 ||
			json_object_set_new(o, "session", json_integer((json_int_t)session)) < 0 ||
			json_set_text(o, "path", path) < 0 ||
			json_object_set(o, "statements", arr) < 0))
		rc = -1;
	if (rc == 0)
		rc = intent_write(l, o);
	if (rc == 0 && durable_request(l->fd, ticket) < 0)
		rc = -1;
	json_decref(arr);
	json_decref(o);
	if (rc < 0) {
		log_error(session, "cannot write a dual-write commit intent: %s", strerror(errno));
		return 0;
	}
	l->open++;
	return id;
}

void intent_end(struct intent_log *l, uint64_t id)
{
	if (!l || !id)
		return;
	if (l->open)
		l->open--;
	if (l->open == 0 && l->size > INTENT_TRUNCATE_BYTES) {
		/* Nothing is open: everything in the file is closed. */
		if (ftruncate(l->fd, 0) == 0) {
			l->size = 0;
			return;
		}
	}
	json_t *o = json_pack("{sI}", "done", (json_int_t)id);
	if (!o || intent_write(l, o) < 0)
		log_warning(0, "cannot close dual-write commit intent %llu: it will be journaled "
			    "as in doubt at the next start", (unsigned long long)id);
	json_decref(o);
}
