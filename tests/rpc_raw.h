/*
 * rpc_raw.h - for tests that speak to the daemon below ftctl: send raw
 * bytes as one request and read the status code of the reply.
 */
#ifndef FT_RPC_RAW_H
#define FT_RPC_RAW_H

#include <stdio.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ft_wire.h"

/* rpc_raw_send sends len bytes to url on a fresh connection and returns the
 * reply's code (printing it with its message), -1 when no reply came within
 * timeout_ms, or -2 when no socket could be opened.  The request is sent
 * once: nng's timed resend is off. */
static inline int
rpc_raw_send(const char *url, const void *buf, size_t len, int timeout_ms)
{
	Ft__Reply *rep = NULL;
	nng_socket s;
	nng_msg *m = NULL;
	char why[256];
	int code = -1;

	if (nng_req0_open(&s) != 0)
		return -2;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (nng_dial(s, url, NULL, 0) == 0 && nng_send(s, (void *)buf, len, 0) == 0 &&
	    nng_recvmsg(s, &m, 0) == 0) {
		if (ft_reply_decode(nng_msg_body(m), nng_msg_len(m), &rep, why, sizeof(why)) == 0) {
			code = rep->code;
			printf("reply: %s %s\n", ft_code_name(rep->code), rep->message);
			ft_reply_free(rep);
		}
		nng_msg_free(m);
	}
	nng_close(s);
	return code;
}

#endif
