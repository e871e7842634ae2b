/*
 * core/err.h — filling a caller's error buffer.
 *
 * Fallible functions across the layers take `char *err, size_t errlen` and
 * leave a one-line message there when they fail. set_err() is the one way to
 * write it: a NULL or empty buffer is allowed (the caller did not ask), and
 * the message is cut to fit, always NUL-terminated.
 */
#ifndef PGT_CORE_ERR_H
#define PGT_CORE_ERR_H

#include <stddef.h>

/* Formats FMT into ERR (at most ERRLEN bytes, NUL included); nothing when
 * ERR is NULL or ERRLEN is 0. */
void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
