/* file.c - the engine's file access: files of a model directory opened
 * never through a symbolic link and only as regular files, JSON errors that
 * give the place but never the bytes, and atomic writes through temporaries
 * of unguessable names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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
	int fd = -1, rc;

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

json_t *
fte__json_loadb(const char *buf, size_t len, json_error_t *err)
{
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, err);

	/* an integer past int64 (Llama 3.1's model_max_length of 1e30) makes
	 * every number a real instead of the file unreadable; nothing the
	 * engine reads from such a file is an integer that large */
	if (j == NULL && json_error_code(err) == json_error_numeric_overflow)
		j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, err);
	return j;
}

int
fte__file_read(const char *path, char **out, size_t *out_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	FILE *fp;
	int rc;

	if ((rc = fte__fopen(path, &fp)) != FTE_OK)
		return rc;
	do {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
			if (nb == NULL) {
				free(buf);
				fclose(fp);
				return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
	} while (n > 0);
	rc = ferror(fp) ? fte_error_set(FTE_EIO, "%s: read failed", path) : FTE_OK;
	fclose(fp);
	if (rc != FTE_OK) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = len;
	return FTE_OK;
}

int
fte__json_load(const char *path, json_t **out)
{
	json_error_t err;
	json_t *j;
	char *buf;
	size_t len;
	int rc;

	/* read whole, through stdio's buffer (json_loadfd reads a byte per
	 * system call) */
	if ((rc = fte__file_read(path, &buf, &len)) != FTE_OK)
		return rc;
	j = fte__json_loadb(buf, len, &err);
	free(buf);
	if (j == NULL)
		return fte__json_parse_error(path, &err);
	if (!json_is_object(j)) {
		json_decref(j);
		return fte_error_set(FTE_EFORMAT, "%s: not a JSON object", path);
	}
	*out = j;
	return FTE_OK;
}

static void afile_release(fte__afile *af);

/* afile_tmp_create makes a temporary file beside base in dfd under a name
 * nobody can guess (12 random hex digits), with O_EXCL | O_NOFOLLOW so a
 * link planted at any name is never followed or truncated. */
static int
afile_tmp_create(int dfd, const char *base, char *name, size_t len)
{
	unsigned char r[6];

	for (int tries = 0; tries < 100; tries++) {
		int fd;

		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return -1;
		snprintf(name, len, ".%.64s.tmp-%02x%02x%02x%02x%02x%02x", base, r[0], r[1], r[2],
		    r[3], r[4], r[5]);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

int
fte__afile_open(fte__afile *af, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, e;

	memset(af, 0, sizeof(*af));
	af->dfd = -1;
	af->path = strdup(path);
	af->tmp = malloc(96);
	dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") :
	    strndup(path, (size_t)(slash - path));
	if (af->path == NULL || af->tmp == NULL || dir == NULL) {
		free(dir);
		afile_release(af);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	af->base = af->path + (slash ? (size_t)(slash - path) + 1 : 0);
	af->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	fd = af->dfd < 0 ? -1 : afile_tmp_create(af->dfd, af->base, af->tmp, 96);
	if (fd < 0 || (af->fp = fdopen(fd, "wb")) == NULL) {
		e = errno;
		if (fd >= 0) {
			close(fd);
			unlinkat(af->dfd, af->tmp, 0);
		}
		afile_release(af);
		return fte_error_set(FTE_EIO, "%s: cannot create: %s", path, strerror(e));
	}
	return FTE_OK;
}

void
fte__afile_write(fte__afile *af, const void *p, size_t n)
{
	if (!af->failed && n > 0 && fwrite(p, 1, n, af->fp) != n)
		af->failed = errno ? errno : EIO;
}

static void
afile_release(fte__afile *af)
{
	if (af->dfd >= 0)
		close(af->dfd);
	free(af->path);
	free(af->tmp);
	memset(af, 0, sizeof(*af));
	af->dfd = -1;
}

void
fte__afile_abort(fte__afile *af)
{
	if (af->fp != NULL)
		fclose(af->fp);
	if (af->tmp != NULL && af->dfd >= 0)
		unlinkat(af->dfd, af->tmp, 0);
	afile_release(af);
}

int
fte__afile_commit(fte__afile *af)
{
	int e = af->failed;

	if (e == 0 && fflush(af->fp) != 0)
		e = errno;
	if (e == 0 && fsync(fileno(af->fp)) != 0)
		e = errno;
	if (fclose(af->fp) != 0 && e == 0)
		e = errno;
	af->fp = NULL;
	/* renameat replaces a link planted at the final name, never follows it */
	if (e == 0 && renameat(af->dfd, af->tmp, af->dfd, af->base) != 0)
		e = errno;
	if (e == 0 && fsync(af->dfd) != 0)
		e = errno;
	if (e != 0) {
		int rc = fte_error_set(FTE_EIO, "%s: write failed: %s",
		    af->path, strerror(e));
		fte__afile_abort(af);
		return rc;
	}
	afile_release(af);
	return FTE_OK;
}

static int
json_dump_cb(const char *buf, size_t size, void *data)
{
	fte__afile_write(data, buf, size);
	return 0;
}

int
fte__json_save(const json_t *j, const char *path)
{
	fte__afile af;
	int rc;

	if ((rc = fte__afile_open(&af, path)) != FTE_OK)
		return rc;
	if (json_dump_callback(j, json_dump_cb, &af,
	    JSON_INDENT(2) | JSON_REAL_PRECISION(9)) != 0)
		af.failed = EIO;
	fte__afile_write(&af, "\n", 1);
	return fte__afile_commit(&af);
}
