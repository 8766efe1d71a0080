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

/* fs_store_blob copies src into the content-addressed store dir/<hash>
 * (via a temporary file, fsync and rename) unless that blob exists, and
 * returns its hash and size.  The same content is stored once. */
int fs_store_blob(const char *src, const char *blob_dir, char hex[FS_HASH_HEX],
    uint64_t *size, char *err, size_t err_len) __attribute__((warn_unused_result));

/* fs_write_atomic writes len bytes to path through path.tmp, fsync and
 * rename, then fsyncs the directory. 0, or -1 with a message in err. */
int fs_write_atomic(const char *path, const void *buf, size_t len, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* fs_copy_into copies the file src into dir under its own name, durably,
 * unless dir already holds a file of that name.  0, or -1 with err. */
int fs_copy_into(const char *src, const char *dir, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* fs_path_inside resolves path (symlinks and ..) and checks it lies inside
 * one of the ':'-separated roots.  On success writes the resolved path to
 * out (PATH_MAX bytes) and returns 0; else -1 with a message. */
int fs_path_inside(const char *path, const char *roots, char *out,
    char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
