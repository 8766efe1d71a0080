/*
 * call.h - one request/reply exchange with the daemon over nng req0.
 */
#ifndef FTCTL_CALL_H
#define FTCTL_CALL_H

#include <stddef.h>

#include "ft_wire.h"

/* ft_call sends req (protocol version and request id are filled in) to the
 * daemon at url and waits up to timeout_ms for the reply.  Returns 0 with
 * *out set (free with ft_reply_free) when a reply arrived, whatever its
 * status code; returns -1 with a reason in err when the daemon could not be
 * reached or answered with something that is not a reply. */
int ft_call(const char *url, Ft__Request *req, int timeout_ms,
    Ft__Reply **out, char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
