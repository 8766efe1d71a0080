/*
 * remote_replay.c - sends one signed Status request twice to a daemon's
 * tcp:// listener: the first must be answered OK, the copy refused as a
 * replay.  Used by test_remote.sh:  remote_replay URL KEY_FILE
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "call.h"
#include "ft_test.h"

static int
send_raw(const char *url, const void *buf, size_t len)
{
	Ft__Reply *rep = NULL;
	nng_socket s;
	nng_msg *m = NULL;
	char why[256];
	int code = -1;

	if (nng_req0_open(&s) != 0)
		return -2;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
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

int
main(int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__StatusRequest sr = FT__STATUS_REQUEST__INIT;
	uint8_t *buf;
	size_t len;
	char err[256];

	if (argc != 3) {
		fprintf(stderr, "usage: remote_replay URL KEY_FILE\n");
		return 2;
	}
	req.protocol_version = FT_PROTOCOL_VERSION;
	req.body_case = FT__REQUEST__BODY_STATUS;
	req.status = &sr;
	CHECK(ft_request_encode(&req, &buf, &len) == 0);
	CHECK(ft_request_sign(argv[2], &buf, &len, err, sizeof(err)) == 0);
	CHECK(send_raw(argv[1], buf, len) == FT__CODE__OK);
	CHECK(send_raw(argv[1], buf, len) == FT__CODE__UNAUTHENTICATED);
	/* A flipped byte breaks the signature. */
	buf[len / 2] ^= 0x40;
	CHECK(send_raw(argv[1], buf, len) == FT__CODE__UNAUTHENTICATED);
	free(buf);
	return ft_test_done();
}
