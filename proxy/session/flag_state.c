/*
 * session/flag_state.c — the flag state record next to the flag history
 * (see include/session/flag_state.h). Owns nothing between calls.
 */
#include "session/flag_state.h"

#include "core/err.h"
#include "core/json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int flag_state_load(const char *path, struct flag_state *st, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root, *file, *epoch;

	memset(st, 0, sizeof(*st));
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	root = json_load_file(path, 0, &je);
	if (!json_is_object(root)) {
		set_err(err, errlen, "%s: not a flag state record: %s", path,
			root == NULL ? je.text : "not a JSON object");
		json_decref(root);
		return -1;
	}
	file = json_object_get(root, "file");
	for (int id = 0; json_is_object(file) && id < FLAGS__COUNT; id++) {
		const char *v = json_get_text(file, flags_name(id));
		if (v != NULL && strlen(v) < FLAGS_VALUE_MAX) {
			snprintf(st->file[id], sizeof(st->file[id]), "%s", v);
			st->file_known[id] = true;
		}
	}
	epoch = json_object_get(root, "fleet_epoch");
	if (json_is_integer(epoch))
		st->fleet_epoch = (int64_t)json_integer_value(epoch);
	json_decref(root);
	return 1;
}

int flag_state_save(const char *path, const struct flag_state *st, char *err, size_t errlen)
{
	json_t *root = json_object(), *file = json_object();
	bool ok = root != NULL && file != NULL;
	int rc = -1;

	for (int id = 0; ok && id < FLAGS__COUNT; id++)
		if (st->file_known[id] && json_set_text(file, flags_name(id), st->file[id]) < 0)
			ok = false;
	ok = ok && json_object_set(root, "file", file) == 0 &&
	     json_object_set_new(root, "fleet_epoch", json_integer(st->fleet_epoch)) == 0;
	if (!ok)
		set_err(err, errlen, "out of memory");
	else
		rc = json_save_atomic(path, root, "the flag state", err, errlen);
	json_decref(file);
	json_decref(root);
	return rc;
}
