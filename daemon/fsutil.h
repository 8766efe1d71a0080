/*
 * fsutil.h - durable file operations: every file the daemon keeps is
 * written under a temporary name, fsynced, renamed, and its directory
 * fsynced, so a crash leaves either the old state or the new, never half.
 */
#ifndef FT_FSUTIL_H
#define FT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#define FS_HASH_HEX 65 /* BLAKE2b-256 as hex, NUL-terminated */

/* fs_mkdirs creates path and its missing parents with mode. 0 or -1/errno. */
int fs_mkdirs(const char *path, unsigned mode);

/* fs_fsync_dir fsyncs the directory holding path (or path itself when it
 * is a directory and is_dir is set). */
int fs_fsync_dir(const char *path, int is_dir);

/* fs_rm_rf removes path and everything below it; missing is not an error. */
int fs_rm_rf(const char *path);

/* fs_hash_file computes the BLAKE2b-256 of a file's content as hex and its
 * size.  0, or -1 with a message in err. */
int fs_hash_file(const char *path, char hex[FS_HASH_HEX], uint64_t *size,
    char *err, size_t err_len) __attribute__((warn_unused_result));

/* fs_store_blob stores len bytes at buf in the content-addressed store
 * dir/<hash>, read-only (0440), unless that blob exists, and returns its
 * hash and size.  The same content is stored once. */
int fs_store_blob(const void *buf, size_t len, const char *blob_dir, char hex[FS_HASH_HEX],
    uint64_t *size, char *err, size_t err_len) __attribute__((warn_unused_result));

/* fs_write_atomic writes len bytes to path through a temporary of random
 * name in the same directory (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0640),
 * fsync and renameat, then fsyncs the directory. 0, or -1 with err. */
int fs_write_atomic(const char *path, const void *buf, size_t len, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* fs_copy_into copies the file src into dir under its own name, durably,
 * unless dir already holds a file of that name.  0, or -1 with err. */
int fs_copy_into(const char *src, const char *dir, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* fs_dir_inside opens the directory path once and checks that what it
 * opened lies inside one of the ':'-separated roots (kind, "import" or
 * "export", names them in messages).  The check is made on the descriptor,
 * so a path changed after it cannot redirect what is read or written
 * through *dirfd.  0 with *dirfd and the resolved path in out (PATH_MAX);
 * -1 with a message. */
int fs_dir_inside(const char *path, const char *roots, const char *kind, int *dirfd,
    char *out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* fs_file_inside is fs_dir_inside for the directory holding the file path,
 * with the file's name in base (as given: a link there is not resolved):
 * the file is then opened below *dirfd (fte_file_openat), never by its
 * path, so a link is refused. */
int fs_file_inside(const char *path, const char *roots, const char *kind, int *dirfd,
    char *dir, char base[128], char *err, size_t err_len) __attribute__((warn_unused_result));

/* fs_unpin rewrites, in the message msg of len bytes, the pinned directory
 * name pin ("/proc/self/fd/N", see fte_dir_path) into the path real it
 * stands for, so that users see their own paths.  An empty pin does
 * nothing. */
void fs_unpin(char *msg, size_t len, const char *pin, const char *real);

#endif
