/*
 * session/flag_state.c — the flag state record next to the flag history
 * (see include/session/flag_state.h). Owns nothing between calls.
 */
#include "session/flag_state.h"

#include "core/err.h"
#include "core/fd.h"
#include "core/json.h"
#include "core/wbuf.h"

#include <errno.h>
#include <fcntl.h>
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
	char tmp[4096];
	struct wbuf b;
	json_t *root = json_object(), *file = json_object();
	bool ok = root != NULL && file != NULL;
	int fd = -1, rc = -1;

	for (int id = 0; ok && id < FLAGS__COUNT; id++)
		if (st->file_known[id] && json_set_text(file, flags_name(id), st->file[id]) < 0)
			ok = false;
	ok = ok && json_object_set(root, "file", file) == 0 &&
	     json_object_set_new(root, "fleet_epoch", json_integer(st->fleet_epoch)) == 0;
	wbuf_init(&b);
	if (!ok || json_append(&b, root, JSON_COMPACT) < 0) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	wbuf_put_u8(&b, '\n');
	if (!wbuf_ok(&b)) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || fd_write_all(fd, b.data, b.len, NULL) < 0 || fsync(fd) < 0) {
		set_err(err, errlen, "%s: cannot write the flag state: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		set_err(err, errlen, "%s: cannot replace the flag state: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	wbuf_free(&b);
	json_decref(file);
	json_decref(root);
	return rc;
}
