/*
 * core/fd.h — whole writes to a file descriptor, for the proxy's own files
 * (journal, commit intents, two-phase decisions, flag history and state).
 */
#ifndef PGT_CORE_FD_H
#define PGT_CORE_FD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Writes LEN bytes of DATA to FD, retrying short writes and EINTR. 0, or -1
 * with errno (a write that wrote nothing counts as failed). WRITTEN, when not
 * NULL, gets the bytes written either way: a caller that keeps its file made
 * of whole records cuts a partial one off. */
int fd_write_all(int fd, const void *data, size_t len, size_t *written)
	__attribute__((warn_unused_result));

/* Whether a file re-stat()ed as NOW is unchanged since it was read as
 * BEFORE (same inode, size and modification time): a reader of a file
 * that another process rewrites re-reads it only when this is false. */
bool fd_stat_same(const struct stat *before, const struct stat *now);

#endif
