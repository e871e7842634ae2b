/*
 * session/journal.h — the dual-write dead-letter journal (SPEC §7, §11).
 *
 * A statement the primary committed but the shadow lost (an error on the
 * shadow only, the shadow's connection gone, its commit failed) is appended
 * here, so an operator can repair the shadow path. One line per entry:
 *
 *   <crc32 of the JSON, 8 hex digits> <JSON object>\n
 *
 * with fields time, session, path, fingerprint, statement, parameters,
 * error, and, when the rows the statement wrote are known (captured values),
 * table (as the statement names it, old's name), keys (an array of objects,
 * one per row: old's key column names to their values as text) and
 * authoritative (the path whose rows are right: the one that kept them); a
 * newer writer may add others (read tolerantly: unknown fields are ignored,
 * missing ones read as ""). Appends are write() + fsync() before the
 * client's COMMIT is acknowledged.
 *
 * Entries are not held in memory: the journal keeps an index of each
 * entry's byte offset and length, and reads an entry from the file when it
 * is asked for. journal_open() only checks the file's tail (a torn last
 * line, from a crash mid-append, is cut off at once so later appends start
 * on a clean line); the index is built afterwards, a slice at a time, by
 * journal_index_step() — the caller runs it from the event loop, so a large
 * journal never delays accepting clients. A line whose checksum does not
 * match is reported and skipped, never a crash.
 *
 * Repaired state: `pgturnout repair --journal` records in the sidecar
 * DIR/dual_write_journal.repaired the byte offset up to which the entries
 * are repaired; an entry is repaired when it starts before that offset. The
 * journal re-reads the sidecar when its size or mtime changes.
 */
#ifndef PGT_SESSION_JOURNAL_H
#define PGT_SESSION_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_FILE "dual_write_journal.log"
#define JOURNAL_REPAIRED_FILE "dual_write_journal.repaired"
#define JOURNAL_REPAIRED_MAGIC "pgturnout journal repaired 1"
/* Rotated files: dual_write_journal.<UTC yyyymmddThhmmssZ>.log, and the
 * sidecar of each: the same name ending in .repaired. */
#define JOURNAL_ROTATED_PREFIX "dual_write_journal."

struct journal;

struct journal_entry {
	char *time;             /* owns: RFC 3339 UTC with milliseconds */
	uint64_t session;
	char *path;             /* owns: the path that lost the statement */
	char *fingerprint;      /* owns: hex */
	char *statement;        /* owns: text as sent to the shadow */
	char *parameters;       /* owns: text form of Bind parameters, or "" */
	char *error;            /* owns: SQLSTATE and message, or why it was not sent */
	uint64_t offset;        /* where its line starts in the file */
	bool repaired;          /* before the repair sidecar's offset */
};

/* Opens (creating) DIR/dual_write_journal.log, cuts a torn tail. The index
 * is empty until journal_index_step() has run. NULL with a message in err
 * when the file cannot be opened. */
struct journal *journal_open(const char *dir, char *err, size_t errlen);
void journal_free(struct journal *j);   /* NULL does nothing */
/* Indexes at most BUDGET more bytes of the file. 1 when the whole file is
 * indexed, 0 when there is more, -1 on a read error (logged; the index stays
 * as it is and the journal keeps accepting appends). */
int journal_index_step(struct journal *j, size_t budget);
bool journal_indexed(const struct journal *j);
/* Bytes indexed and bytes in the file. */
uint64_t journal_indexed_bytes(const struct journal *j);
uint64_t journal_size(const struct journal *j);

/* Appends one entry (not yet durable). Strings are copied. 0 or -1. */
int journal_add(struct journal *j, uint64_t session, const char *path, uint64_t fingerprint,
		const char *statement, const char *parameters, const char *error);
/* The rows a lost statement wrote, by key (see above); strings borrowed. */
struct journal_keys {
	const char *table;
	const char *keys;          /* a JSON array of objects */
	const char *authoritative; /* a path name */
};

/* journal_add(), with the keys of the rows involved (KEYS NULL: none). */
int journal_add_keyed(struct journal *j, uint64_t session, const char *path, uint64_t fingerprint,
		      const char *statement, const char *parameters, const char *error,
		      const struct journal_keys *keys);
/* Makes every entry added so far durable (fsync). 0 or -1 (logged). */
int journal_sync(struct journal *j);
/* The same off the event loop: durable by *TICKET (io/durable.h; 0 when
 * nothing was waiting). 0 or -1 (logged). */
int journal_sync_request(struct journal *j, uint64_t *ticket);

/* Entries indexed so far (0 for NULL), and the first unrepaired one:
 * entries [journal_first_unrepaired(), journal_count()) are unrepaired. */
size_t journal_count(const struct journal *j);
size_t journal_first_unrepaired(struct journal *j);
/* Reads entry I from the file into E (cleared with journal_entry_clear).
 * 0, or -1 when it cannot be read or parsed (E then holds no strings). */
int journal_read(struct journal *j, size_t i, struct journal_entry *e);
void journal_entry_clear(struct journal_entry *e);

/* Moves the file aside as DIR/dual_write_journal.<UTC time>.log (its repair
 * sidecar too) and starts an empty one. The name moved to is put in
 * rotated. 0, or -1 with a message in err (the journal is then unchanged). */
int journal_rotate(struct journal *j, char *rotated, size_t rotatedlen, char *err, size_t errlen);

/* Lines skipped (torn or corrupt), with a description of the last one. */
size_t journal_skipped(const struct journal *j);
const char *journal_notice(const struct journal *j);

/* CRC-32 (IEEE 802.3) of N bytes. */
uint32_t journal_crc32(const void *p, size_t n);
/* Whether LINE (LEN bytes, no newline) has the journal's "crc json" form
 * with a matching checksum. */
bool journal_line_ok(const char *line, size_t len);

#endif
