/*
 * core/json.c — text to JSON strings and JSON into byte buffers, on top of
 * jansson; see core/json.h.
 */
#include "core/json.h"

#include "core/err.h"
#include "core/fd.h"
#include "core/wbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Length of the valid UTF-8 sequence at P (at most N bytes), or 0: no
 * overlong forms, surrogates or code points past U+10FFFF (RFC 3629). */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

json_t *json_from_text(const char *s)
{
	static const char replacement[] = "\xef\xbf\xbd";       /* U+FFFD */
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), bad = 0;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len(p + i, n - i);

		bad += k == 0;
		i += k ? k : 1;
	}
	if (bad == 0)
		return json_string_nocheck(s);

	char *fixed = malloc(n + 2 * bad + 1);
	size_t o = 0;

	if (fixed == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len(p + i, n - i);

		if (k == 0) {
			memcpy(fixed + o, replacement, 3);
			o += 3;
			i++;
		} else {
			memcpy(fixed + o, s + i, k);
			o += k;
			i += k;
		}
	}
	fixed[o] = '\0';
	json_t *v = json_string_nocheck(fixed);
	free(fixed);
	return v;
}

int json_set_text(json_t *obj, const char *key, const char *s)
{
	json_t *v = json_from_text(s);

	if (v == NULL)
		return -1;
	return json_object_set_new(obj, key, v);
}

const char *json_get_text(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

char *json_dup_text(const json_t *obj, const char *key)
{
	const char *v = json_get_text(obj, key);
	return strdup(v ? v : "");
}

static int put_chunk(const char *buf, size_t size, void *data)
{
	struct wbuf *out = data;

	wbuf_put(out, buf, size);
	return wbuf_ok(out) ? 0 : -1;
}

int json_append(struct wbuf *out, const json_t *v, size_t flags)
{
	return json_dump_callback(v, put_chunk, out, flags | JSON_ENCODE_ANY);
}

int json_save_atomic(const char *path, const json_t *v, const char *what, char *err, size_t errlen)
{
	char tmp[4096];
	struct wbuf b;
	int fd, rc = -1;

	wbuf_init(&b);
	if (json_append(&b, v, JSON_COMPACT) < 0 || (wbuf_put_u8(&b, '\n'), !wbuf_ok(&b))) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || fd_write_all(fd, b.data, b.len, NULL) < 0 || fsync(fd) < 0) {
		set_err(err, errlen, "%s: cannot write %s: %s", tmp, what, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		set_err(err, errlen, "%s: cannot replace %s: %s", path, what, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	wbuf_free(&b);
	return rc;
}
