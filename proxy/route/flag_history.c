/*
 * route/flag_history.c — a flag history record and its JSON line, through
 * jansson (see include/route/flag_history.h).
 */
#include "route/flag_history.h"

#include "core/json.h"
#include "core/wbuf.h"

#include <stdio.h>
#include <string.h>

void flag_history_entry_set(struct flag_history_entry *e, const struct flag_change *c)
{
	memset(e, 0, sizeof(*e));
	flags_format_time(c->at_ms, e->time, sizeof(e->time));
	snprintf(e->who, sizeof(e->who), "%s", c->who);
	snprintf(e->surface, sizeof(e->surface), "%s", c->surface);
	snprintf(e->name, sizeof(e->name), "%s", c->name != NULL ? c->name : "");
	snprintf(e->old_value, sizeof(e->old_value), "%s", c->old_value);
	snprintf(e->new_value, sizeof(e->new_value), "%s", c->new_value);
}

int flag_history_format(const struct flag_history_entry *e, struct wbuf *out)
{
	json_t *o = json_object();
	int rc = -1;

	if (o != NULL && json_set_text(o, "time", e->time) == 0 &&
	    json_set_text(o, "who", e->who) == 0 &&
	    json_set_text(o, "surface", e->surface) == 0 &&
	    json_set_text(o, "name", e->name) == 0 &&
	    json_set_text(o, "old", e->old_value) == 0 &&
	    json_set_text(o, "new", e->new_value) == 0 &&
	    json_append(out, o, JSON_COMPACT) == 0) {
		wbuf_put_u8(out, '\n');
		rc = wbuf_ok(out) ? 0 : -1;
	}
	json_decref(o);
	return rc;
}

/* Copies the string member KEY of O into DST (cut to LEN - 1 bytes). -1 when
 * it is there but not a string, or missing and REQUIRED. */
static int copy_member(const json_t *o, const char *key, char *dst, size_t len, bool required)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_string(v))
		return -1;
	snprintf(dst, len, "%s", json_string_value(v));
	return 0;
}

int flag_history_parse(const char *line, size_t len, struct flag_history_entry *e)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	int rc = -1;

	memset(e, 0, sizeof(*e));
	/* time, name and new are what SHOW HISTORY cannot do without */
	if (json_is_object(o) &&
	    copy_member(o, "time", e->time, sizeof(e->time), true) == 0 &&
	    copy_member(o, "who", e->who, sizeof(e->who), false) == 0 &&
	    copy_member(o, "surface", e->surface, sizeof(e->surface), false) == 0 &&
	    copy_member(o, "name", e->name, sizeof(e->name), true) == 0 &&
	    copy_member(o, "old", e->old_value, sizeof(e->old_value), false) == 0 &&
	    copy_member(o, "new", e->new_value, sizeof(e->new_value), true) == 0)
		rc = 0;
	json_decref(o);
	return rc;
}
