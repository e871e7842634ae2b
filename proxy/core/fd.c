/*
 * core/fd.c — see fd.h.
 */
#include "core/fd.h"

#include <errno.h>
#include <unistd.h>

bool fd_stat_same(const struct stat *before, const struct stat *now)
{
	return before->st_ino == now->st_ino && before->st_size == now->st_size &&
	       before->st_mtim.tv_sec == now->st_mtim.tv_sec &&
	       before->st_mtim.tv_nsec == now->st_mtim.tv_nsec;
}

int fd_write_all(int fd, const void *data, size_t len, size_t *written)
{
	const char *p = data;
	size_t off = 0;
	int rc = 0;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			rc = -1;
			break;
		}
		off += (size_t)w;
	}
	if (written)
		*written = off;
	return rc;
}
