/* call.c - ftctl's transport: nng req0, one request, one reply. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "call.h"

int
ft_call(const char *url, Ft__Request *req, int timeout_ms, Ft__Reply **out,
    char *err, size_t err_len)
{
	nng_socket sock;
	nng_msg *msg = NULL;
	uint8_t *buf;
	size_t len;
	int rv, rc = -1;

	req->protocol_version = FT_PROTOCOL_VERSION;
	req->request_id = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	if (ft_request_encode(req, &buf, &len) != 0) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if ((rv = nng_req0_open(&sock)) != 0) {
		snprintf(err, err_len, "nng: %s", nng_strerror(rv));
		free(buf);
		return -1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, timeout_ms);
	/* One attempt: a request is never resent behind the user's back. */
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if ((rv = nng_dial(sock, url, NULL, 0)) != 0) {
		snprintf(err, err_len, "cannot reach ftuned at %s: %s", url, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_send(sock, buf, len, 0)) != 0) {
		snprintf(err, err_len, "sending to %s: %s", url, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		snprintf(err, err_len, "no reply from %s: %s", url, nng_strerror(rv));
		goto out;
	}
	if (ft_reply_decode(nng_msg_body(msg), nng_msg_len(msg), out, err, err_len) == FT__CODE__OK)
		rc = 0;
out:
	if (msg != NULL)
		nng_msg_free(msg);
	nng_close(sock);
	free(buf);
	return rc;
}
