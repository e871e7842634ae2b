/*
 * core/json.h — the project's few additions to jansson, the JSON library
 * every JSON writer and reader here goes through (logs, the flag history,
 * the dual-write journal, the HTTP API).
 *
 * jansson takes only valid UTF-8. Text that reaches a JSON document from a
 * client (user names, SQL, application names) may not be: json_from_text()
 * turns such bytes into U+FFFD, so a document is always written, and always
 * readable by any JSON reader.
 */
#ifndef PGT_CORE_JSON_H
#define PGT_CORE_JSON_H

#include <jansson.h>
#include <stddef.h>

struct wbuf;

/* A new JSON string holding S (NUL-terminated), with every byte that does
 * not begin a valid UTF-8 sequence replaced by U+FFFD. NULL when out of
 * memory. */
json_t *json_from_text(const char *s);
/* Sets member KEY of OBJ to json_from_text(S). 0, or -1 when out of memory. */
int json_set_text(json_t *obj, const char *key, const char *s)
	__attribute__((warn_unused_result));
/* The string value of member KEY of OBJ; NULL when missing or not a string. */
const char *json_get_text(const json_t *obj, const char *key);
/* A copy of the string member KEY of OBJ, "" when it is missing or no
 * string; NULL only when out of memory. Caller frees. */
char *json_dup_text(const json_t *obj, const char *key);
/* Appends V to OUT as JSON text, jansson dump FLAGS (JSON_ENCODE_ANY is
 * added). 0, or -1 (OUT may hold part of it; wbuf_ok() may say false). */
int json_append(struct wbuf *out, const json_t *v, size_t flags)
	__attribute__((warn_unused_result));
/* Writes V (compact, one line) to PATH atomically: a temporary file
 * PATH.tmp, fsync, rename, so that a crash leaves the old file or the new
 * one. WHAT names the file in messages ("the flag state"). 0, or -1 with a
 * message in ERR (the old file stays). Blocking I/O. */
int json_save_atomic(const char *path, const json_t *v, const char *what, char *err,
		     size_t errlen) __attribute__((warn_unused_result));

#endif
