/*
 * upload.h - dataset files uploaded in chunks over the control protocol.
 *
 * A file larger than one control message arrives as DataUploadBegin (size
 * and BLAKE2b of the whole file), DataUploadChunk in order, and
 * DataUploadCommit, which hands the complete file to datasets_add.  Each
 * upload is a private file state_dir/uploads/<id> (the directory 0700 and
 * emptied at start, the file 0600, created O_EXCL|O_NOFOLLOW) owned by the
 * uid that began it; only that uid may append to it, ask about it or commit
 * it.  A broken connection loses nothing: Begin again with the same size
 * and hash (or Status with the id) gives the offset to send on from.  Bounds:
 * data_max_bytes per file, data_uploads_per_user open uploads per uid,
 * UPLOADS_MAX in all; one untouched for data_upload_timeout seconds is
 * deleted by a reaper thread.  Uploads live in memory: a restarted daemon
 * forgets them and deletes their files.
 */
#ifndef FT_UPLOAD_H
#define FT_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "ftuned.h"

#define UPLOADS_MAX 64
#define UPLOAD_CHUNK_MAX (512 * 1024)   /* a chunk message passes every listener */
#define UPLOAD_ID_LEN 32                /* hex digits of 16 random bytes */

struct uploads;

/* uploads_start empties state_dir/uploads (made 0700) and starts the
 * reaper.  0 and *out, or -1 with a message in err. */
int uploads_start(struct ftuned *d, struct uploads **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* uploads_stop stops the reaper, closes and deletes every upload and frees
 * u; after the control socket has stopped.  NULL is allowed. */
void uploads_stop(struct uploads *u);

/* uploads_chunk_max returns the largest chunk the daemon takes: at most
 * UPLOAD_CHUNK_MAX, and leaving room in rpc_max_message for the envelope. */
uint32_t uploads_chunk_max(const struct uploads *u);

/* uploads_begin opens an upload of size bytes whose BLAKE2b-256 is hash (64
 * hex digits) for uid, or finds the one uid already has of that size and
 * hash.  Writes its id and the bytes received so far.  FT__CODE__OK, or
 * INVALID_ARGUMENT, RESOURCE_EXHAUSTED (size over data_max_bytes, too many
 * uploads) or INTERNAL with a message in err. */
int uploads_begin(struct uploads *u, uint32_t uid, uint64_t size, const char *hash,
    char id[UPLOAD_ID_LEN + 1], uint64_t *received, char *err, size_t err_len);

/* uploads_append writes len bytes at offset, which must be the bytes
 * received so far, and sets *size and *received.  FT__CODE__OK, or NOT_FOUND,
 * PERMISSION_DENIED (another uid's), INVALID_ARGUMENT (wrong offset, past
 * the size, chunk too large), UNAVAILABLE (another chunk is being written)
 * or RESOURCE_EXHAUSTED (disk full) with a message in err; a refused chunk
 * changes nothing. */
int uploads_append(struct uploads *u, uint32_t uid, const char *id, uint64_t offset,
    const void *data, size_t len, uint64_t *size, uint64_t *received, char *err,
    size_t err_len);

/* uploads_status sets *size and *received of uid's upload id.
 * FT__CODE__OK, NOT_FOUND or PERMISSION_DENIED with a message in err. */
int uploads_status(struct uploads *u, uint32_t uid, const char *id, uint64_t *size,
    uint64_t *received, char *err, size_t err_len);

/* uploads_take ends uid's complete upload id: its file is unlinked and *fd
 * is a descriptor of it (read it, then close it), *size its length.  A file
 * whose bytes do not hash to the BLAKE2b given at begin is deleted and
 * refused.  FT__CODE__OK, or NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION
 * (incomplete: kept), UNAVAILABLE (a chunk is being written) or
 * INVALID_ARGUMENT (hash mismatch) with a message in err. */
int uploads_take(struct uploads *u, uint32_t uid, const char *id, int *fd, uint64_t *size,
    char *err, size_t err_len);

#endif
