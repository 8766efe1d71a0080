/*
 * call.h - one request/reply exchange with the daemon over nng req0.
 */
#ifndef FTCTL_CALL_H
#define FTCTL_CALL_H

#include <stddef.h>

#include "ft_wire.h"

/* ft_call sends req (protocol version and request id are filled in) to the
 * daemon at url and waits up to timeout_ms for the reply.  With key_file
 * (written by ftctl keygen) the request travels signed, as a daemon's
 * tcp:// listener requires.  Returns 0 with *out set (free with
 * ft_reply_free) when a reply arrived, whatever its status code; returns
 * -1 with a reason in err when the daemon could not be reached, the key not
 * read, or the answer is not a reply. */
int ft_call(const char *url, Ft__Request *req, int timeout_ms, const char *key_file,
    Ft__Reply **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* ft_request_sign replaces the packed request in *buf (malloc'd, *len
 * bytes) by a packed SignedRequest made with the key in key_file, with the
 * current time and a random nonce.  0, or -1 with err (*buf unchanged). */
int ft_request_sign(const char *key_file, uint8_t **buf, size_t *len, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* ft_key_generate writes a new signing key named name to path (mode 0600)
 * and its public half, as hex, to pk_hex (65 bytes or more).  0 or -1. */
int ft_key_generate(const char *name, const char *path, char *pk_hex, size_t pk_hex_len,
    char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
