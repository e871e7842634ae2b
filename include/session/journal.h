/*
 * session/journal.h — the dual-write dead-letter journal (SPEC §7).
 *
 * A statement the primary committed but the shadow lost (an error on the
 * shadow only, the shadow's connection gone, its commit failed) is appended
 * here, so an operator can replay it on the shadow path. One line per entry:
 *
 *   <crc32 of the JSON, 8 hex digits> <JSON object>\n
 *
 * with fields time, session, path, fingerprint, statement, parameters,
 * error, and, when the rows the statement wrote are known (captured values),
 * table (as the statement names it, old's name), keys (an array of objects,
 * one per row: old's key column names to their values as text) and
 * authoritative (the path whose rows are right: the one that kept them). Appends are write() + fsync() before the client's COMMIT is
 * acknowledged. At open the file is read back: a torn last line (a crash
 * mid-append) or a line whose checksum does not match is reported and
 * skipped, never a crash; a torn tail is cut off so later appends start on a
 * clean line.
 */
#ifndef PGT_SESSION_JOURNAL_H
#define PGT_SESSION_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

struct journal_entry {
	char *time;             /* owns: RFC 3339 UTC with milliseconds */
	uint64_t session;
	char *path;             /* owns: the path that lost the statement */
	char *fingerprint;      /* owns: hex */
	char *statement;        /* owns: text as sent to the shadow */
	char *parameters;       /* owns: text form of Bind parameters, or "" */
	char *error;            /* owns: SQLSTATE and message, or why it was not sent */
};

/* Opens (creating) DIR/dual_write_journal.log and loads its entries. NULL
 * with a message in err when the file cannot be opened. */
struct journal *journal_open(const char *dir, char *err, size_t errlen);
void journal_free(struct journal *j);   /* NULL does nothing */
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
size_t journal_count(const struct journal *j);
const struct journal_entry *journal_get(const struct journal *j, size_t i);
/* Lines skipped at open (torn or corrupt), with a description. */
size_t journal_skipped(const struct journal *j);
const char *journal_notice(const struct journal *j);

/* CRC-32 (IEEE 802.3) of N bytes. */
uint32_t journal_crc32(const void *p, size_t n);

#endif
