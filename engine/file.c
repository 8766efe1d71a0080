/* file.c - opening the files of a model directory: never through a
 * symbolic link, only regular files, and JSON errors that give the place
 * but never the bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"

/* file_opened checks what open gave: a symlink at the last component fails
 * with ELOOP under O_NOFOLLOW; anything but a regular file is refused. */
static int
file_opened(const char *label, int fd, int *out)
{
	struct stat st;

	if (fd < 0) {
		if (errno == ENOENT)
			return fte_error_set(FTE_ENOENT, "%s: not found", label);
		if (errno == ELOOP)
			return fte_error_set(FTE_EFORMAT, "%s: is a symbolic link; give the file itself",
			    label);
		return fte_error_set(FTE_EIO, "%s: cannot open: %s", label, strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fte_error_set(FTE_EFORMAT, "%s: not a regular file", label);
	}
	/* O_NONBLOCK only kept a FIFO from blocking the open */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*out = fd;
	return FTE_OK;
}

int
fte__file_open(const char *path, int *fd)
{
	return file_opened(path, open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), fd);
}

int
fte__fopen(const char *path, FILE **fp)
{
	int fd, rc;

	if ((rc = fte__file_open(path, &fd)) != FTE_OK)
		return rc;
	if ((*fp = fdopen(fd, "rb")) == NULL) {
		close(fd);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	return FTE_OK;
}

int
fte_dir_open(const char *path, int *dirfd)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return fte_error_set(errno == ENOENT ? FTE_ENOENT : FTE_EIO, "%s: %s", path,
		    strerror(errno));
	*dirfd = fd;
	return FTE_OK;
}

void
fte_dir_path(int dirfd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", dirfd);
}

int
fte_file_openat(int dirfd, const char *name, int *fd)
{
	if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return fte_error_set(FTE_EINVAL, "%s: not a plain file name", name);
	return file_opened(name, openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC), fd);
}

int
fte__json_parse_error(const char *label, const json_error_t *err)
{
	/* jansson's text quotes the bytes it stopped at: give only the place */
	return fte_error_set(FTE_EFORMAT, "%s: not valid JSON (line %d, column %d)", label,
	    err->line, err->column);
}

int
fte__json_load(const char *path, json_t **out)
{
	json_error_t err;
	json_t *j;
	int fd, rc;

	if ((rc = fte__file_open(path, &fd)) != FTE_OK)
		return rc;
	j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &err);
	close(fd);
	if (j == NULL)
		return fte__json_parse_error(path, &err);
	if (!json_is_object(j)) {
		json_decref(j);
		return fte_error_set(FTE_EFORMAT, "%s: not a JSON object", path);
	}
	*out = j;
	return FTE_OK;
}
