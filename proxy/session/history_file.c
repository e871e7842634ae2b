/*
 * route/flag_history.c — the durable, append-only history of flag changes
 * (see include/route/flag_history.h).
 *
 * Owns the open file descriptor (O_APPEND) and the loaded entries. The file
 * size is tracked so that a failed append can be cut back, keeping the
 * invariant that the file holds only whole lines, each ending in '\n'.
 * The JSON reader accepts exactly what the writer produces plus ordinary JSON
 * whitespace, escapes and key order; unknown keys are ignored so that later
 * versions may add fields.
 */
#include "route/flag_history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct flag_history {
	int fd;                                 /* owns */
	char *path;                             /* owns */
	off_t size;                             /* bytes of whole lines in the file */
	struct flag_history_entry *entries;     /* owns, n entries */
	size_t n;
	size_t cap;
	size_t skipped;                         /* lines skipped at open */
	char notice[512];                       /* what was skipped; "" when nothing */
};

/* ---- JSON writing ------------------------------------------------------ */

struct fh_buf {
	char *data;                             /* owns */
	size_t len;
	size_t cap;
	bool oom;
};

static void
fh_buf_put(struct fh_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *d;

		while (b->len + n + 1 > cap)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
fh_buf_str(struct fh_buf *b, const char *s)
{
	fh_buf_put(b, s, strlen(s));
}

/* Appends "key":"value" with VALUE escaped as a JSON string. */
static void
fh_buf_field(struct fh_buf *b, const char *key, const char *value, bool first)
{
	if (!first)
		fh_buf_put(b, ",", 1);
	fh_buf_put(b, "\"", 1);
	fh_buf_str(b, key);
	fh_buf_put(b, "\":\"", 3);
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		char esc[8];

		switch (*p) {
		case '"':
			fh_buf_put(b, "\\\"", 2);
			break;
		case '\\':
			fh_buf_put(b, "\\\\", 2);
			break;
		case '\n':
			fh_buf_put(b, "\\n", 2);
			break;
		case '\r':
			fh_buf_put(b, "\\r", 2);
			break;
		case '\t':
			fh_buf_put(b, "\\t", 2);
			break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				fh_buf_str(b, esc);
			} else {
				fh_buf_put(b, (const char *)p, 1);
			}
		}
	}
	fh_buf_put(b, "\"", 1);
}

/* ---- JSON reading ------------------------------------------------------ */

static const char *
fh_skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

static int
fh_hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * Reads a JSON string starting at *pp (which must point at '"') into out
 * (truncated to len - 1 bytes). Advances *pp past the closing quote.
 */
static int
fh_read_string(const char **pp, const char *end, char *out, size_t len)
{
	const char *p = *pp;
	size_t n = 0;

	if (p >= end || *p != '"')
		return -1;
	p++;
	while (p < end && *p != '"') {
		char utf8[4];
		size_t k = 0;

		if ((unsigned char)*p < 0x20)
			return -1;
		if (*p != '\\') {
			utf8[k++] = *p++;
		} else {
			unsigned cp;

			if (++p >= end)
				return -1;
			switch (*p) {
			case '"': case '\\': case '/':
				utf8[k++] = *p;
				break;
			case 'b': utf8[k++] = '\b'; break;
			case 'f': utf8[k++] = '\f'; break;
			case 'n': utf8[k++] = '\n'; break;
			case 'r': utf8[k++] = '\r'; break;
			case 't': utf8[k++] = '\t'; break;
			case 'u':
				if (fh_hex4(p + 1, end, &cp) != 0)
					return -1;
				p += 4;
				if (cp >= 0xd800 && cp <= 0xdfff)
					cp = 0xfffd;    /* no surrogates: the writer never makes them */
				if (cp < 0x80) {
					utf8[k++] = (char)cp;
				} else if (cp < 0x800) {
					utf8[k++] = (char)(0xc0 | (cp >> 6));
					utf8[k++] = (char)(0x80 | (cp & 0x3f));
				} else {
					utf8[k++] = (char)(0xe0 | (cp >> 12));
					utf8[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
					utf8[k++] = (char)(0x80 | (cp & 0x3f));
				}
				break;
			default:
				return -1;
			}
			p++;
		}
		for (size_t i = 0; i < k; i++) {
			if (n + 1 < len)
				out[n++] = utf8[i];
		}
	}
	if (p >= end)
		return -1;
	if (len > 0)
		out[n] = '\0';
	*pp = p + 1;
	return 0;
}

/* Parses one line (without its '\n') into E. Returns 0 or -1. */
static int
fh_parse_line(const char *p, const char *end, struct flag_history_entry *e)
{
	unsigned seen = 0;

	memset(e, 0, sizeof(*e));
	p = fh_skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return -1;
	p = fh_skip_ws(p, end);
	if (p < end && *p == '}') {
		p++;
		goto done;
	}
	for (;;) {
		char key[32], value[FLAGS_VALUE_MAX];
		char *dst = NULL;
		size_t dlen = 0;
		unsigned bit = 0;

		p = fh_skip_ws(p, end);
		if (fh_read_string(&p, end, key, sizeof(key)) != 0)
			return -1;
		p = fh_skip_ws(p, end);
		if (p >= end || *p++ != ':')
			return -1;
		p = fh_skip_ws(p, end);
		if (fh_read_string(&p, end, value, sizeof(value)) != 0)
			return -1;
		if (strcmp(key, "time") == 0) {
			dst = e->time, dlen = sizeof(e->time), bit = 1;
		} else if (strcmp(key, "who") == 0) {
			dst = e->who, dlen = sizeof(e->who), bit = 2;
		} else if (strcmp(key, "surface") == 0) {
			dst = e->surface, dlen = sizeof(e->surface), bit = 4;
		} else if (strcmp(key, "name") == 0) {
			dst = e->name, dlen = sizeof(e->name), bit = 8;
		} else if (strcmp(key, "old") == 0) {
			dst = e->old_value, dlen = sizeof(e->old_value), bit = 16;
		} else if (strcmp(key, "new") == 0) {
			dst = e->new_value, dlen = sizeof(e->new_value), bit = 32;
		}
		if (dst != NULL) {
			snprintf(dst, dlen, "%s", value);
			seen |= bit;
		}
		p = fh_skip_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}') {
			p++;
			break;
		}
		return -1;
	}
done:
	p = fh_skip_ws(p, end);
	if (p != end)
		return -1;
	/* time, name and new are what SHOW HISTORY cannot do without */
	return (seen & (1 | 8 | 32)) == (1 | 8 | 32) ? 0 : -1;
}

/* ---- the file ---------------------------------------------------------- */

static int
fh_push(struct flag_history *h, const struct flag_history_entry *e)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct flag_history_entry *d = realloc(h->entries, cap * sizeof(*d));

		if (d == NULL)
			return -1;
		h->entries = d;
		h->cap = cap;
	}
	h->entries[h->n++] = *e;
	return 0;
}

static void
fh_note(struct flag_history *h, const char *fmt, size_t line, size_t bytes)
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
fh_read_all(int fd, size_t *len)
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

struct flag_history *
flag_history_open(const char *path, char *err, size_t errlen)
{
	struct flag_history *h;
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
	buf = fh_read_all(h->fd, &len);
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
			fh_note(h, "%s:%zu: torn last line (%zu bytes without a newline) "
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
		} else if (fh_parse_line(start, nl, &e) != 0) {
			fh_note(h, "%s:%zu: malformed line skipped (%zu bytes)", line,
				(size_t)(nl - start));
			h->skipped++;
		} else if (fh_push(h, &e) != 0) {
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
	flag_history_free(h);
	return NULL;
}

void
flag_history_free(struct flag_history *h)
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
flag_history_append(struct flag_history *h, const struct flag_change *c,
		    char *err, size_t errlen)
{
	struct flag_history_entry e;
	struct fh_buf b = { 0 };
	size_t off = 0;
	int saved;

	memset(&e, 0, sizeof(e));
	flags_format_time(c->at_ms, e.time, sizeof(e.time));
	snprintf(e.who, sizeof(e.who), "%s", c->who);
	snprintf(e.surface, sizeof(e.surface), "%s", c->surface);
	snprintf(e.name, sizeof(e.name), "%s", c->name != NULL ? c->name : "");
	snprintf(e.old_value, sizeof(e.old_value), "%s", c->old_value);
	snprintf(e.new_value, sizeof(e.new_value), "%s", c->new_value);

	fh_buf_put(&b, "{", 1);
	fh_buf_field(&b, "time", e.time, true);
	fh_buf_field(&b, "who", e.who, false);
	fh_buf_field(&b, "surface", e.surface, false);
	fh_buf_field(&b, "name", e.name, false);
	fh_buf_field(&b, "old", e.old_value, false);
	fh_buf_field(&b, "new", e.new_value, false);
	fh_buf_put(&b, "}\n", 2);
	if (b.oom) {
		free(b.data);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* make room first, so that a line on disk is always in memory too */
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct flag_history_entry *d = realloc(h->entries, cap * sizeof(*d));

		if (d == NULL) {
			free(b.data);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		h->entries = d;
		h->cap = cap;
	}
	while (off < b.len) {
		ssize_t w = write(h->fd, b.data + off, b.len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(h->fd) != 0)
		goto fail;
	h->size += (off_t)b.len;
	free(b.data);
	h->entries[h->n++] = e;
	return 0;

fail:
	saved = errno;
	snprintf(err, errlen, "%s: cannot append to flag history: %s", h->path,
		 strerror(saved));
	/* keep the file made of whole lines */
	if (off > 0 && ftruncate(h->fd, h->size) == 0)
		(void)fsync(h->fd);
	free(b.data);
	return -1;
}

size_t
flag_history_count(const struct flag_history *h)
{
	return h->n;
}

const struct flag_history_entry *
flag_history_get(const struct flag_history *h, size_t i)
{
	return i < h->n ? &h->entries[i] : NULL;
}

size_t
flag_history_skipped(const struct flag_history *h)
{
	return h->skipped;
}

const char *
flag_history_notice(const struct flag_history *h)
{
	return h->notice[0] != '\0' ? h->notice : NULL;
}
