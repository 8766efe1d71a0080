/*
 * auth.h - requests over TCP: Ed25519-signed envelopes (ft.proto's
 * SignedRequest) checked against the remote_keys file, with a bounded
 * clock skew and a replay cache of nonces.
 *
 * remote_keys holds one key a line: `NAME UID PUBLIC_KEY_HEX`, '#' starts a
 * comment.  A request signed by NAME acts as Unix user UID.
 */
#ifndef FT_AUTH_H
#define FT_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct auth;

/* auth_open reads the keys file (absent: no keys, every signed request is
 * refused).  0 and *out, or -1 with "path:line: problem" in err. */
int auth_open(const char *keys_path, int max_skew_s, struct auth **out, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* auth_reload re-reads keys_path (SIGHUP) and swaps the new keys in under
 * the lock: later requests see only them, a request being checked keeps
 * the key it found, and the replay cache stays.  0 with the number of keys
 * in *n_keys, or -1 with "path:line: problem" in err and the old keys kept. */
int auth_reload(struct auth *a, const char *keys_path, int *n_keys, char *err,
    size_t err_len) __attribute__((warn_unused_result));

void auth_close(struct auth *a);

/* auth_verify checks a SignedRequest of len bytes.  On success it returns
 * FT__CODE__OK, the key's uid, and the inner request in a malloc'd *req of
 * *req_len bytes (owned by the caller).  Otherwise UNAUTHENTICATED (or
 * INVALID_ARGUMENT for bytes that are no SignedRequest) with a reason. */
int auth_verify(struct auth *a, const void *buf, size_t len, uint64_t *uid,
    uint8_t **req, size_t *req_len, char *why, size_t why_len);

#endif
