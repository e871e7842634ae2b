/*
 * session/history_file.c — the durable, append-only file of flag changes
 * (see include/session/history_file.h); the records' JSON lines are
 * route/flag_history.c's.
 *
 * Owns the open file descriptor (O_APPEND) and the loaded entries. The file
 * size is tracked so that a failed append can be cut back, keeping the
 * invariant that the file holds only whole lines, each ending in '\n'.
 */
#include "session/history_file.h"

#include "core/fd.h"
#include "core/wbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct history_file {
	int fd;                                 /* owns */
	char *path;                             /* owns */
	off_t size;                             /* bytes of whole lines in the file */
	struct flag_history_entry *entries;     /* owns, n entries */
	size_t n;
	size_t cap;
	size_t skipped;                         /* lines skipped at open */
	char notice[512];                       /* what was skipped; "" when nothing */
};

/* Room for one more entry. 0 or -1 (out of memory). */
static int
hf_reserve(struct history_file *h)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct flag_history_entry *d = realloc(h->entries, cap * sizeof(*d));

		if (d == NULL)
			return -1;
		h->entries = d;
		h->cap = cap;
	}
	return 0;
}

static int
hf_push(struct history_file *h, const struct flag_history_entry *e)
{
	if (hf_reserve(h) != 0)
		return -1;
	h->entries[h->n++] = *e;
	return 0;
}

static void
hf_note(struct history_file *h, const char *fmt, size_t line, size_t bytes)
{
	size_t used = strlen(h->notice);

	if (used + 2 >= sizeof(h->notice))
		return;
	if (used > 0)
		used += (size_t)snprintf(h->notice + used, sizeof(h->notice) - used, "; ");
	if (used < sizeof(h->notice))
		snprintf(h->notice + used, sizeof(h->notice) - used, fmt, h->path, line, bytes);
}

/* Reads the whole file at FD into a new buffer. */
static char *
hf_read_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	if (buf == NULL)
		return NULL;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *d = realloc(buf, cap * 2);

			if (d == NULL) {
				free(buf);
				return NULL;
			}
			buf = d;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return buf;
}

struct history_file *
history_file_open(const char *path, char *err, size_t errlen)
{
	struct history_file *h;
	char *buf = NULL;
	size_t len = 0, pos = 0, line = 0;

	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->fd = -1;
	h->path = strdup(path);
	if (h->path == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (h->fd < 0) {
		snprintf(err, errlen, "%s: cannot open flag history: %s", path, strerror(errno));
		goto fail;
	}
	buf = hf_read_all(h->fd, &len);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: cannot read flag history: %s", path,
			 errno ? strerror(errno) : "out of memory");
		goto fail;
	}
	while (pos < len) {
		const char *start = buf + pos;
		const char *nl = memchr(start, '\n', len - pos);
		struct flag_history_entry e;

		line++;
		if (nl == NULL) {
			/* torn tail: a crash in the middle of an append */
			hf_note(h, "%s:%zu: torn last line (%zu bytes without a newline) "
				"removed", line, len - pos);
			h->skipped++;
			if (ftruncate(h->fd, (off_t)pos) != 0 || fsync(h->fd) != 0) {
				snprintf(err, errlen, "%s: cannot cut the torn last line: %s",
					 path, strerror(errno));
				goto fail;
			}
			len = pos;
			break;
		}
		if (nl == start || (nl == start + 1 && *start == '\r')) {
			/* blank line: nothing to show, nothing to report */
		} else if (flag_history_parse(start, (size_t)(nl - start), &e) != 0) {
			hf_note(h, "%s:%zu: malformed line skipped (%zu bytes)", line,
				(size_t)(nl - start));
			h->skipped++;
		} else if (hf_push(h, &e) != 0) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		pos = (size_t)(nl - buf) + 1;
	}
	h->size = (off_t)len;
	free(buf);
	return h;

fail:
	free(buf);
	history_file_free(h);
	return NULL;
}

void
history_file_free(struct history_file *h)
{
	if (h == NULL)
		return;
	if (h->fd >= 0)
		close(h->fd);
	free(h->path);
	free(h->entries);
	free(h);
}

int
history_file_append(struct history_file *h, const struct flag_change *c,
		    char *err, size_t errlen)
{
	struct flag_history_entry e;
	struct wbuf b;
	size_t off = 0;
	int saved;

	flag_history_entry_set(&e, c);
	wbuf_init(&b);
	if (flag_history_format(&e, &b) != 0) {
		wbuf_free(&b);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* make room first, so that a line on disk is always in memory too */
	if (hf_reserve(h) != 0) {
		wbuf_free(&b);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (fd_write_all(h->fd, b.data, b.len, &off) != 0 || fsync(h->fd) != 0)
		goto fail;
	h->size += (off_t)b.len;
	wbuf_free(&b);
	h->entries[h->n++] = e;
	return 0;

fail:
	saved = errno;
	snprintf(err, errlen, "%s: cannot append to flag history: %s", h->path,
		 strerror(saved));
	/* keep the file made of whole lines */
	if (off > 0 && ftruncate(h->fd, h->size) == 0)
		(void)fsync(h->fd);
	wbuf_free(&b);
	return -1;
}

size_t
history_file_count(const struct history_file *h)
{
	return h->n;
}

const struct flag_history_entry *
history_file_get(const struct history_file *h, size_t i)
{
	return i < h->n ? &h->entries[i] : NULL;
}

size_t
history_file_skipped(const struct history_file *h)
{
	return h->skipped;
}

const char *
history_file_notice(const struct history_file *h)
{
	return h->notice[0] != '\0' ? h->notice : NULL;
}
