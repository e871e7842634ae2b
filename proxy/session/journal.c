/*
 * session/journal.c — the dual-write dead-letter journal; see journal.h.
 *
 * Entries are kept in memory too (SHOW JOURNAL). The file descriptor is kept
 * open in append mode; journal_sync() is the only place that blocks on the
 * disk, and it runs only when a transaction that lost statements on the
 * shadow is being acknowledged.
 */
#include "session/journal.h"

#include "core/json.h"
#include "core/log.h"
#include "core/wbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_FILE "dual_write_journal.log"

struct journal {
	int fd;
	struct journal_entry *entries;  /* owns */
	size_t n, cap;
	size_t skipped;
	char notice[256];
	bool dirty;                     /* entries written but not yet fsync'd */
};

uint32_t journal_crc32(const void *p, size_t n)
{
	static uint32_t table[256];
	static bool ready;
	if (!ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		ready = true;
	}
	uint32_t crc = 0xffffffffu;
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

static void entry_clear(struct journal_entry *e)
{
	free(e->time);
	free(e->path);
	free(e->fingerprint);
	free(e->statement);
	free(e->parameters);
	free(e->error);
}

void journal_free(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	for (size_t i = 0; i < j->n; i++)
		entry_clear(&j->entries[i]);
	free(j->entries);
	free(j);
}

static int journal_push(struct journal *j, struct journal_entry *e)
{
	if (j->n == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 16;
		struct journal_entry *p = realloc(j->entries, cap * sizeof(*p));
		if (!p)
			return -1;
		j->entries = p;
		j->cap = cap;
	}
	j->entries[j->n++] = *e;
	return 0;
}

/* A copy of the string member KEY of OBJ; NULL when missing or out of memory. */
static char *text_dup(const json_t *obj, const char *key)
{
	const char *v = json_get_text(obj, key);
	return v ? strdup(v) : NULL;
}

static int journal_parse_line(struct journal *j, const char *line, size_t len)
{
	if (len < 10 || line[8] != ' ')
		return -1;
	unsigned crc;
	if (sscanf(line, "%8x", &crc) != 1 || journal_crc32(line + 9, len - 9) != crc)
		return -1;
	json_t *obj = json_loadb(line + 9, len - 9, 0, NULL);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return -1;
	}
	struct journal_entry e = { 0 };
	e.time = text_dup(obj, "time");
	e.path = text_dup(obj, "path");
	e.fingerprint = text_dup(obj, "fingerprint");
	e.statement = text_dup(obj, "statement");
	e.parameters = text_dup(obj, "parameters");
	e.error = text_dup(obj, "error");
	e.session = (uint64_t)json_integer_value(json_object_get(obj, "session"));
	json_decref(obj);
	if (!e.time || !e.path || !e.fingerprint || !e.statement || !e.parameters || !e.error ||
	    journal_push(j, &e) < 0) {
		entry_clear(&e);
		return -1;
	}
	return 0;
}

static int journal_load(struct journal *j, const char *file, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(j->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	if (st.st_size == 0)
		return 0;
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s", file);
		return -1;
	}
	ssize_t got = pread(j->fd, buf, (size_t)st.st_size, 0);
	if (got != st.st_size) {
		free(buf);
		snprintf(err, errlen, "cannot read %s", file);
		return -1;
	}
	buf[got] = '\0';
	size_t pos = 0, good_end = 0, lineno = 0;
	while (pos < (size_t)got) {
		char *nl = memchr(buf + pos, '\n', (size_t)got - pos);
		lineno++;
		if (!nl) {
			j->skipped++;
			snprintf(j->notice, sizeof(j->notice),
				 "line %zu is torn (no newline: a crash during an append); cut off", lineno);
			break;
		}
		size_t len = (size_t)(nl - (buf + pos));
		if (journal_parse_line(j, buf + pos, len) < 0) {
			j->skipped++;
			snprintf(j->notice, sizeof(j->notice),
				 "line %zu is corrupt (checksum or format); skipped", lineno);
		}
		pos += len + 1;
		good_end = pos;
	}
	free(buf);
	if (good_end < (size_t)got && ftruncate(j->fd, (off_t)good_end) < 0) {
		snprintf(err, errlen, "cannot cut the torn tail of %s: %s", file, strerror(errno));
		return -1;
	}
	return 0;
}

struct journal *journal_open(const char *dir, char *err, size_t errlen)
{
	struct journal *j = calloc(1, sizeof(*j));
	if (!j) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	j->fd = -1;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto out_free;
	}
	char file[4096];
	snprintf(file, sizeof(file), "%s/%s", dir, JOURNAL_FILE);
	j->fd = open(file, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (j->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", file, strerror(errno));
		goto out_free;
	}
	if (journal_load(j, file, err, errlen) < 0)
		goto out_free;
	return j;
out_free:
	journal_free(j);
	return NULL;
}

static void format_now(char *buf, size_t len)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

int journal_add(struct journal *j, uint64_t session, const char *path, uint64_t fingerprint,
		const char *statement, const char *parameters, const char *error)
{
	return journal_add_keyed(j, session, path, fingerprint, statement, parameters, error, NULL);
}

/* Sets the rows' fields of K on O: table, keys (K's JSON text, parsed),
 * authoritative. 0 or -1. */
static int journal_set_keys(json_t *o, const struct journal_keys *k)
{
	if (!k || !k->table || !k->keys || !k->authoritative)
		return 0;
	json_t *keys = json_loads(k->keys, JSON_DECODE_ANY, NULL);
	if (!json_is_array(keys)) {
		json_decref(keys);
		return -1;
	}
	if (json_set_text(o, "table", k->table) < 0 || json_object_set_new(o, "keys", keys) < 0 ||
	    json_set_text(o, "authoritative", k->authoritative) < 0)
		return -1;
	return 0;
}

int journal_add_keyed(struct journal *j, uint64_t session, const char *path, uint64_t fingerprint,
		      const char *statement, const char *parameters, const char *error,
		      const struct journal_keys *keys)
{
	char now[64], fp[24];
	format_now(now, sizeof(now));
	snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)fingerprint);
	/* The fields in the order the format documents. */
	json_t *o = json_object();
	struct wbuf obj;
	wbuf_init(&obj);
	if (!o || json_set_text(o, "time", now) < 0 ||
	    json_object_set_new(o, "session", json_integer((json_int_t)session)) < 0 ||
	    json_set_text(o, "path", path) < 0 || json_set_text(o, "fingerprint", fp) < 0 ||
	    json_set_text(o, "statement", statement) < 0 ||
	    json_set_text(o, "parameters", parameters ? parameters : "") < 0 ||
	    json_set_text(o, "error", error) < 0 || journal_set_keys(o, keys) < 0 ||
	    json_append(&obj, o, JSON_COMPACT) < 0 ||
	    !wbuf_ok(&obj)) {
		json_decref(o);
		wbuf_free(&obj);
		return -1;
	}
	json_decref(o);
	char crc[16];
	snprintf(crc, sizeof(crc), "%08x ", journal_crc32(obj.data, obj.len));
	struct wbuf line;
	wbuf_init(&line);
	wbuf_put(&line, crc, 9);
	wbuf_put(&line, obj.data, obj.len);
	wbuf_put_u8(&line, '\n');
	wbuf_free(&obj);
	int rc = -1;
	if (wbuf_ok(&line)) {
		size_t off = 0;
		while (off < line.len) {
			ssize_t w = write(j->fd, line.data + off, line.len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		rc = off == line.len ? 0 : -1;
	}
	wbuf_free(&line);
	if (rc < 0) {
		log_error(0, "cannot append to the dual-write journal: %s", strerror(errno));
		return -1;
	}
	j->dirty = true;
	struct journal_entry e = {
		.time = strdup(now), .session = session, .path = strdup(path), .fingerprint = strdup(fp),
		.statement = strdup(statement), .parameters = strdup(parameters ? parameters : ""),
		.error = strdup(error),
	};
	if (!e.time || !e.path || !e.fingerprint || !e.statement || !e.parameters || !e.error ||
	    journal_push(j, &e) < 0)
		entry_clear(&e);  /* on disk; only the in-memory copy is lost */
	return 0;
}

int journal_sync(struct journal *j)
{
	if (!j->dirty)
		return 0;
	if (fsync(j->fd) < 0) {
		log_error(0, "cannot fsync the dual-write journal: %s", strerror(errno));
		return -1;
	}
	j->dirty = false;
	return 0;
}

size_t journal_count(const struct journal *j)
{
	return j ? j->n : 0;
}

const struct journal_entry *journal_get(const struct journal *j, size_t i)
{
	return j && i < j->n ? &j->entries[i] : NULL;
}

size_t journal_skipped(const struct journal *j)
{
	return j->skipped;
}

const char *journal_notice(const struct journal *j)
{
	return j->skipped ? j->notice : NULL;
}
