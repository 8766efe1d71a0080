/* fsutil.c - durable writes, content-addressed blobs, path confinement. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fsutil.h"
#include "fte.h"

int
fs_mkdirs(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

int
fs_fsync_dir(const char *path, int is_dir)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	if (!is_dir) {
		if ((slash = strrchr(dir, '/')) == NULL)
			strcpy(dir, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

int
fs_rm_rf(const char *path)
{
	if (access(path, F_OK) != 0)
		return 0;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
fs_hash_file(const char *path, char hex[FS_HASH_HEX], uint64_t *size, char *err, size_t err_len)
{
	crypto_generichash_state st;
	unsigned char digest[32];
	const size_t buf_len = 1 << 16;
	unsigned char *buf;
	uint64_t total = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* On the heap: civetweb's and nng's threads have small stacks. */
	if ((buf = malloc(buf_len)) == NULL) {
		snprintf(err, err_len, "out of memory");
		close(fd);
		return -1;
	}
	crypto_generichash_init(&st, NULL, 0, sizeof(digest));
	while ((n = read(fd, buf, buf_len)) > 0) {
		crypto_generichash_update(&st, buf, (size_t)n);
		total += (uint64_t)n;
	}
	free(buf);
	close(fd);
	if (n < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	crypto_generichash_final(&st, digest, sizeof(digest));
	sodium_bin2hex(hex, FS_HASH_HEX, digest, sizeof(digest));
	*size = total;
	return 0;
}

/* tmp_create makes a temporary file in dfd under a name nobody can guess
 * (prefix and 16 random hex digits), with O_EXCL | O_NOFOLLOW so a link
 * planted at any name is never followed or truncated.  The fd, or -1. */
static int
tmp_create(int dfd, const char *prefix, unsigned mode, char *name, size_t len)
{
	unsigned char r[8];
	char hex[17];

	for (int tries = 0; tries < 100; tries++) {
		int fd;

		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
		snprintf(name, len, ".%.64s.tmp-%s", prefix, hex);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* dir_open opens the directory holding path, and points *base at the last
 * component. */
static int
dir_open(const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		*base = path;
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	*base = slash + 1;
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int
fs_store_blob(const void *buf, size_t len, const char *blob_dir, char hex[FS_HASH_HEX],
    uint64_t *size, char *err, size_t err_len)
{
	unsigned char digest[32];
	char tmp[128];
	int dfd, fd, rc = -1;

	crypto_generichash(digest, sizeof(digest), buf, len, NULL, 0);
	sodium_bin2hex(hex, FS_HASH_HEX, digest, sizeof(digest));
	if ((dfd = open(blob_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (fd = tmp_create(dfd, "incoming", 0440, tmp, sizeof(tmp))) < 0) {
		snprintf(err, err_len, "%s: %s", blob_dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	if (write_all(fd, buf, len) != 0 || fchmod(fd, 0440) != 0 || fsync(fd) != 0) {
		snprintf(err, err_len, "%s/%s: %s", blob_dir, tmp, strerror(errno));
	} else if (linkat(dfd, tmp, dfd, hex, 0) != 0 && errno != EEXIST) {
		/* EEXIST: already stored, content-addressed */
		snprintf(err, err_len, "%s/%s: %s", blob_dir, hex, strerror(errno));
	} else if (fsync(dfd) != 0) {
		snprintf(err, err_len, "%s: fsync: %s", blob_dir, strerror(errno));
	} else {
		*size = len;
		rc = 0;
	}
	close(fd);
	unlinkat(dfd, tmp, 0);
	close(dfd);
	return rc;
}

int
fs_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t err_len)
{
	const char *base;
	char tmp[128];
	int dfd, fd = -1, rc = -1;

	if ((dfd = dir_open(path, &base)) < 0 || (fd = tmp_create(dfd, base, 0640, tmp,
	    sizeof(tmp))) < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	if (write_all(fd, buf, len) != 0 || fsync(fd) != 0)
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
	else if (renameat(dfd, tmp, dfd, base) != 0 || fsync(dfd) != 0)
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
	else
		rc = 0;
	close(fd);
	if (rc != 0)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return rc;
}

int
fs_copy_into(const char *src, const char *dir, char *err, size_t err_len)
{
	const char *base = strrchr(src, '/');
	char dst[PATH_MAX], *buf = NULL;
	FILE *f;
	long len;
	int rc = -1;

	snprintf(dst, sizeof(dst), "%s/%s", dir, base ? base + 1 : src);
	if (access(dst, F_OK) == 0)
		return 0;
	if ((f = fopen(src, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)len + 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len)
		snprintf(err, err_len, "%s: %s", src, strerror(errno));
	else
		rc = fs_write_atomic(dst, buf, (size_t)len, err, err_len);
	if (f != NULL)
		fclose(f);
	free(buf);
	return rc;
}

/* root_match: is the resolved path real inside one of the ':'-separated roots? */
static int
root_match(const char *real, const char *roots)
{
	char root[PATH_MAX], list[PATH_MAX];
	char *save = NULL;

	snprintf(list, sizeof(list), "%s", roots);
	for (char *r = strtok_r(list, ":", &save); r != NULL; r = strtok_r(NULL, ":", &save)) {
		size_t n;

		if (realpath(r, root) == NULL)
			continue;
		n = strlen(root);
		if (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0' ||
		    (n == 1 && root[0] == '/')))
			return 1;
	}
	return 0;
}

int
fs_dir_inside(const char *path, const char *roots, const char *kind, int *dirfd,
    char *out, char *err, size_t err_len)
{
	char real[PATH_MAX], fdpath[32];
	ssize_t n;
	int fd;

	if (realpath(path, real) == NULL) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, err_len, "%s: %s", real, strerror(errno));
		return -1;
	}
	/* What was opened decides, not the name: a component swapped for a
	 * link after realpath shows here as the place it really is. */
	fte_dir_path(fd, fdpath, sizeof(fdpath));
	if ((n = readlink(fdpath, real, sizeof(real) - 1)) < 0) {
		snprintf(err, err_len, "%s: %s", fdpath, strerror(errno));
		close(fd);
		return -1;
	}
	real[n] = '\0';
	if (!root_match(real, roots)) {
		snprintf(err, err_len, "%s is outside the %s roots (%s); ask the administrator "
		    "to add its directory to %s_roots", real, kind, roots[0] ? roots : "none configured",
		    kind);
		close(fd);
		return -1;
	}
	snprintf(out, PATH_MAX, "%s", real);
	*dirfd = fd;
	return 0;
}

int
fs_file_inside(const char *path, const char *roots, const char *kind, int *dirfd,
    char *dir, char base[128], char *err, size_t err_len)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;

	/* Only the folder is resolved: the file's own name is kept, so that
	 * opening it below *dirfd refuses a link there instead of following
	 * it somewhere else. */
	if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strlen(name) >= 128 || (size_t)(name - path) >= sizeof(parent)) {
		snprintf(err, err_len, "%s: not a file name", path);
		return -1;
	}
	snprintf(base, 128, "%s", name);
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	return fs_dir_inside(parent[0] ? parent : "/", roots, kind, dirfd, dir, err, err_len);
}

void
fs_unpin(char *msg, size_t len, const char *pin, const char *real)
{
	size_t pn = strlen(pin), rn = strlen(real);
	char *p = msg;

	if (pn == 0)
		return;
	while ((p = strstr(p, pin)) != NULL) {
		size_t tail = strlen(p + pn);

		if (p[pn] >= '0' && p[pn] <= '9') {    /* /proc/self/fd/1 in .../fd/12 */
			p += pn;
			continue;
		}
		if ((size_t)(p - msg) + rn + tail + 1 > len)
			break;
		memmove(p + rn, p + pn, tail + 1);
		memcpy(p, real, rn);
		p += rn;
	}
}
