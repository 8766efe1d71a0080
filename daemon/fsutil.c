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

/* Copies src to dst (when dst_fd >= 0) while hashing it. */
static int
hash_copy(const char *src, int dst_fd, char hex[FS_HASH_HEX], uint64_t *size,
    char *err, size_t err_len)
{
	crypto_generichash_state st;
	unsigned char digest[32];
	const size_t buf_len = 1 << 16;
	unsigned char *buf;
	uint64_t total = 0;
	ssize_t n;
	int fd;

	if ((fd = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, err_len, "%s: %s", src, strerror(errno));
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
		if (dst_fd >= 0) {
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(dst_fd, buf + off, (size_t)(n - off));

				if (w < 0) {
					snprintf(err, err_len, "writing a copy of %s: %s", src, strerror(errno));
					free(buf);
					close(fd);
					return -1;
				}
				off += w;
			}
		}
	}
	free(buf);
	if (n < 0) {
		snprintf(err, err_len, "%s: %s", src, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	crypto_generichash_final(&st, digest, sizeof(digest));
	sodium_bin2hex(hex, FS_HASH_HEX, digest, sizeof(digest));
	*size = total;
	return 0;
}

int
fs_hash_file(const char *path, char hex[FS_HASH_HEX], uint64_t *size, char *err, size_t err_len)
{
	return hash_copy(path, -1, hex, size, err, err_len);
}

int
fs_store_blob(const char *src, const char *blob_dir, char hex[FS_HASH_HEX],
    uint64_t *size, char *err, size_t err_len)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.incoming-XXXXXX", blob_dir);
	if ((fd = mkstemp(tmp)) < 0) {
		snprintf(err, err_len, "%s: %s", blob_dir, strerror(errno));
		return -1;
	}
	if (hash_copy(src, fd, hex, size, err, err_len) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (fsync(fd) != 0) {
		snprintf(err, err_len, "%s: fsync: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	snprintf(dst, sizeof(dst), "%s/%s", blob_dir, hex);
	if (access(dst, F_OK) == 0) {
		unlink(tmp); /* already stored: content-addressed */
		return 0;
	}
	if (chmod(tmp, 0440) != 0 || rename(tmp, dst) != 0 || fs_fsync_dir(dst, 0) != 0) {
		snprintf(err, err_len, "%s: %s", dst, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
fs_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t err_len)
{
	char tmp[PATH_MAX];
	const char *p = buf;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
		snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		snprintf(err, err_len, "%s: fsync: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0 || fs_fsync_dir(path, 0) != 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
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

int
fs_path_inside(const char *path, const char *roots, char *out, char *err, size_t err_len)
{
	char real[PATH_MAX], root[PATH_MAX], list[PATH_MAX];
	char *save = NULL;

	if (realpath(path, real) == NULL) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(list, sizeof(list), "%s", roots);
	for (char *r = strtok_r(list, ":", &save); r != NULL; r = strtok_r(NULL, ":", &save)) {
		size_t n;

		if (realpath(r, root) == NULL)
			continue;
		n = strlen(root);
		if (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0' ||
		    (n == 1 && root[0] == '/'))) {
			strcpy(out, real);
			return 0;
		}
	}
	snprintf(err, err_len, "%s is outside the import roots (%s); ask the administrator "
	    "to add its directory to import_roots", real, roots[0] ? roots : "none configured");
	return -1;
}
