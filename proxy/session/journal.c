/*
 * session/journal.c — the dual-write dead-letter journal; see journal.h.
 *
 * The file descriptor is kept open in append mode. A transaction that lost
 * statements on the shadow has them made durable by journal_sync_request()
 * (io/durable.h: its COMMIT and its client's answer wait, the event loop
 * does not); journal_sync() blocks, for rotation and recovery.
 * Memory holds one index slot (offset, length) per entry, never the entries.
 */
#include "session/journal.h"

#include "core/fd.h"
#include "core/json.h"
#include "core/log.h"
#include "core/wbuf.h"
#include "io/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_TAIL_READ 65536

struct journal_slot {
	uint64_t off;
	uint32_t len;           /* without the newline */
};

struct journal {
	int fd;
	char *dir;                      /* owns */
	char *file;                     /* owns */
	char *sidecar;                  /* owns */
	struct journal_slot *idx;       /* owns: n of cap, in file order */
	size_t n, cap;
	uint64_t end;                   /* the file's size as written by us */
	uint64_t scan_pos;              /* indexed up to here (a line start) */
	uint64_t lines;                 /* lines seen by the index */
	uint64_t torn_at;               /* where a torn tail was cut at open */
	bool torn_pending;              /* ... not yet reported with its line number */
	char *buf;                      /* owns: the index's read buffer */
	size_t buf_cap;
	size_t skipped;
	char notice[256];
	bool dirty;                     /* entries written but not yet fsync'd */
	struct stat side_st;            /* the repair sidecar as last read */
	bool side_seen;
	uint64_t repaired_off;
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

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool journal_line_ok(const char *line, size_t len)
{
	if (len < 10 || line[8] != ' ' || line[9] != '{')
		return false;
	uint32_t crc = 0;
	for (int i = 0; i < 8; i++) {
		int d = hex_digit(line[i]);
		if (d < 0)
			return false;
		crc = crc << 4 | (uint32_t)d;
	}
	return journal_crc32(line + 9, len - 9) == crc;
}

void journal_entry_clear(struct journal_entry *e)
{
	free(e->time);
	free(e->path);
	free(e->fingerprint);
	free(e->statement);
	free(e->parameters);
	free(e->error);
	memset(e, 0, sizeof(*e));
}

void journal_free(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->idx);
	free(j->buf);
	free(j->dir);
	free(j->file);
	free(j->sidecar);
	free(j);
}

static int journal_push(struct journal *j, uint64_t off, size_t len)
{
	if (j->n == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 256;
		struct journal_slot *p = realloc(j->idx, cap * sizeof(*p));
		if (!p)
			return -1;
		j->idx = p;
		j->cap = cap;
	}
	j->idx[j->n].off = off;
	j->idx[j->n].len = (uint32_t)len;
	j->n++;
	return 0;
}

static void journal_report(struct journal *j, const char *fmt, unsigned long long lineno,
			   const char *what)
{
	j->skipped++;
	snprintf(j->notice, sizeof(j->notice), fmt, lineno, what);
	log_warning(0, "dual-write journal: %s", j->notice);
}

static void journal_report_torn(struct journal *j)
{
	if (j->torn_pending && j->scan_pos >= j->torn_at) {
		j->torn_pending = false;
		journal_report(j, "line %llu is torn (%s); cut off", (unsigned long long)j->lines + 1,
			       "no newline: a crash during an append");
	}
}

/* Cuts a last line without its newline (a crash mid-append), reading only
 * the file's tail. */
static int journal_cut_tail(struct journal *j, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(j->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", j->file, strerror(errno));
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size, good = size;
	char buf[JOURNAL_TAIL_READ];
	bool found = size == 0;
	uint64_t pos = size;
	while (!found && pos > 0) {
		size_t want = pos < sizeof(buf) ? (size_t)pos : sizeof(buf);
		ssize_t got = pread(j->fd, buf, want, (off_t)(pos - want));
		if (got != (ssize_t)want) {
			snprintf(err, errlen, "cannot read %s", j->file);
			return -1;
		}
		if (pos == size && buf[want - 1] == '\n') {
			found = true;
			break;
		}
		for (size_t i = want; i > 0 && !found; i--)
			if (buf[i - 1] == '\n') {
				good = pos - want + i;
				found = true;
			}
		pos -= want;
	}
	if (!found)
		good = 0;
	if (good < size) {
		if (ftruncate(j->fd, (off_t)good) < 0) {
			snprintf(err, errlen, "cannot cut the torn tail of %s: %s", j->file, strerror(errno));
			return -1;
		}
		j->torn_at = good;
		j->torn_pending = true;
	}
	j->end = good;
	return 0;
}

int journal_index_step(struct journal *j, size_t budget)
{
	if (j->scan_pos >= j->end) {
		journal_report_torn(j);
		return 1;
	}
	if (budget < 4096)
		budget = 4096;
	for (;;) {
		uint64_t left = j->end - j->scan_pos;
		size_t want = left < budget ? (size_t)left : budget;
		if (j->buf_cap < want) {
			char *b = realloc(j->buf, want);
			if (!b) {
				log_error(0, "dual-write journal: out of memory indexing %s", j->file);
				return -1;
			}
			j->buf = b;
			j->buf_cap = want;
		}
		ssize_t got = pread(j->fd, j->buf, want, (off_t)j->scan_pos);
		if (got != (ssize_t)want) {
			log_error(0, "dual-write journal: cannot read %s at byte %llu: %s", j->file,
				  (unsigned long long)j->scan_pos, got < 0 ? strerror(errno) : "short read");
			return -1;
		}
		size_t pos = 0;
		for (;;) {
			char *nl = memchr(j->buf + pos, '\n', want - pos);
			if (!nl)
				break;
			journal_report_torn(j);
			size_t len = (size_t)(nl - (j->buf + pos));
			j->lines++;
			if (!journal_line_ok(j->buf + pos, len) || len > UINT32_MAX)
				journal_report(j, "line %llu is corrupt (%s); skipped",
					       (unsigned long long)j->lines, "checksum or format");
			else if (journal_push(j, j->scan_pos + pos, len) < 0) {
				log_error(0, "dual-write journal: out of memory indexing %s", j->file);
				return -1;
			}
			pos += len + 1;
		}
		j->scan_pos += pos;
		if (pos > 0 || want == left)
			break;
		budget *= 2;            /* one line longer than the budget */
	}
	journal_report_torn(j);
	return j->scan_pos >= j->end ? 1 : 0;
}

bool journal_indexed(const struct journal *j)
{
	return j->scan_pos >= j->end;
}

uint64_t journal_indexed_bytes(const struct journal *j)
{
	return j->scan_pos;
}

uint64_t journal_size(const struct journal *j)
{
	return j->end;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int journal_open_file(struct journal *j, char *err, size_t errlen)
{
	j->fd = open(j->file, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (j->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", j->file, strerror(errno));
		return -1;
	}
	return journal_cut_tail(j, err, errlen);
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
	j->dir = strdup(dir);
	j->file = path_join(dir, JOURNAL_FILE);
	j->sidecar = path_join(dir, JOURNAL_REPAIRED_FILE);
	if (!j->dir || !j->file || !j->sidecar) {
		snprintf(err, errlen, "out of memory");
		goto out_free;
	}
	if (journal_open_file(j, err, errlen) < 0)
		goto out_free;
	return j;
out_free:
	journal_free(j);
	return NULL;
}

static void format_now(char *buf, size_t len, bool compact)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, len, compact ? "%04d%02d%02dT%02d%02d%02d.%03dZ" : "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(tv.tv_usec / 1000));
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
	format_now(now, sizeof(now), false);
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
	size_t off = 0;
	if (wbuf_ok(&line))
		rc = fd_write_all(j->fd, line.data, line.len, &off);
	if (rc < 0) {
		log_error(0, "cannot append to the dual-write journal: %s", strerror(errno));
		if (off > 0 && ftruncate(j->fd, (off_t)j->end) < 0)
			log_error(0, "cannot cut a partial journal line: %s", strerror(errno));
		wbuf_free(&line);
		return -1;
	}
	uint64_t at = j->end;
	bool caught_up = j->scan_pos == j->end;
	j->end += line.len;
	j->dirty = true;
	if (caught_up) {
		/* The index is complete: it takes the entry now. Otherwise the
		 * index step reaches it in its turn. */
		j->lines++;
		j->scan_pos = j->end;
		if (journal_push(j, at, line.len - 1) < 0)
			log_error(0, "dual-write journal: out of memory: entry at byte %llu is on disk "
				  "but not in SHOW JOURNAL until restart", (unsigned long long)at);
	}
	wbuf_free(&line);
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

int journal_sync_request(struct journal *j, uint64_t *ticket)
{
	*ticket = 0;
	if (!j->dirty)
		return 0;
	if (durable_request(j->fd, ticket) < 0) {
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

/* The offset the sidecar says entries are repaired up to; re-read when the
 * file changed. */
static uint64_t journal_repaired_offset(struct journal *j)
{
	struct stat st;
	if (stat(j->sidecar, &st) < 0) {
		j->side_seen = false;
		j->repaired_off = 0;
		return 0;
	}
	if (j->side_seen && fd_stat_same(&j->side_st, &st))
		return j->repaired_off;
	j->side_seen = true;
	j->side_st = st;
	j->repaired_off = 0;
	FILE *f = fopen(j->sidecar, "r");
	char magic[64] = "";
	long long off = 0;
	unsigned long long lines = 0;
	if (f && fgets(magic, sizeof(magic), f) &&
	    strncmp(magic, JOURNAL_REPAIRED_MAGIC, strlen(JOURNAL_REPAIRED_MAGIC)) == 0 &&
	    fscanf(f, "%lld %llu", &off, &lines) == 2 && off > 0)
		j->repaired_off = (uint64_t)off;
	else
		log_warning(0, "dual-write journal: %s is unreadable: every entry counts as unrepaired",
			    j->sidecar);
	if (f)
		fclose(f);
	return j->repaired_off;
}

size_t journal_first_unrepaired(struct journal *j)
{
	if (!j)
		return 0;
	uint64_t off = journal_repaired_offset(j);
	if (off > j->end)
		return 0;       /* the sidecar is of an older file: none of these is repaired */
	size_t lo = 0, hi = j->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (j->idx[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int journal_read(struct journal *j, size_t i, struct journal_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (!j || i >= j->n)
		return -1;
	const struct journal_slot *s = &j->idx[i];
	char *line = malloc((size_t)s->len + 1);
	if (!line)
		return -1;
	ssize_t got = pread(j->fd, line, s->len, (off_t)s->off);
	json_t *obj = got == (ssize_t)s->len && s->len > 9 ? json_loadb(line + 9, s->len - 9, 0, NULL)
							   : NULL;
	free(line);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return -1;
	}
	e->time = json_dup_text(obj, "time");
	e->path = json_dup_text(obj, "path");
	e->fingerprint = json_dup_text(obj, "fingerprint");
	e->statement = json_dup_text(obj, "statement");
	e->parameters = json_dup_text(obj, "parameters");
	e->error = json_dup_text(obj, "error");
	e->session = (uint64_t)json_integer_value(json_object_get(obj, "session"));
	e->offset = s->off;
	json_decref(obj);
	if (!e->time || !e->path || !e->fingerprint || !e->statement || !e->parameters || !e->error) {
		journal_entry_clear(e);
		return -1;
	}
	e->repaired = i < journal_first_unrepaired(j);
	return 0;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int journal_rotate(struct journal *j, char *rotated, size_t rotatedlen, char *err, size_t errlen)
{
	if (journal_sync(j) < 0) {
		snprintf(err, errlen, "cannot fsync %s: %s", j->file, strerror(errno));
		return -1;
	}
	char stamp[40], name[128], side[128];
	format_now(stamp, sizeof(stamp), true);
	snprintf(name, sizeof(name), JOURNAL_ROTATED_PREFIX "%s.log", stamp);
	snprintf(side, sizeof(side), JOURNAL_ROTATED_PREFIX "%s.repaired", stamp);
	char *to = path_join(j->dir, name), *side_to = path_join(j->dir, side);
	int rc = -1;
	struct journal fresh = { .fd = -1, .file = j->file };
	if (!to || !side_to) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (access(to, F_OK) == 0) {
		snprintf(err, errlen, "%s exists already; try again", to);
		goto out;
	}
	if (rename(j->file, to) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", j->file, to, strerror(errno));
		goto out;
	}
	if (journal_open_file(&fresh, err, errlen) < 0) {
		if (fresh.fd >= 0)
			close(fresh.fd);
		if (rename(to, j->file) < 0)
			log_error(0, "cannot move %s back to %s: %s", to, j->file, strerror(errno));
		goto out;
	}
	if (rename(j->sidecar, side_to) < 0 && errno != ENOENT)
		log_warning(0, "dual-write journal: cannot rename %s to %s: %s (repair --journal "
			    "repairs the rotated file's entries again; that changes nothing)",
			    j->sidecar, side_to, strerror(errno));
	sync_dir(j->dir);
	close(j->fd);
	j->fd = fresh.fd;
	j->n = 0;
	j->end = 0;
	j->scan_pos = 0;
	j->lines = 0;
	j->torn_pending = false;
	j->dirty = false;
	j->side_seen = false;
	j->repaired_off = 0;
	snprintf(rotated, rotatedlen, "%s", to);
	log_info(0, "dual-write journal rotated to %s", to);
	rc = 0;
out:
	free(to);
	free(side_to);
	return rc;
}

size_t journal_skipped(const struct journal *j)
{
	return j->skipped;
}

const char *journal_notice(const struct journal *j)
{
	return j->skipped ? j->notice : NULL;
}
