/*
 * remote_replay.c - sends one signed Status request twice to a daemon's
 * tcp:// listener: the first must be answered OK, the copy refused as a
 * replay.  Used by test_remote.sh:  remote_replay URL KEY_FILE
 */
#include "call.h"
#include "ft_test.h"
#include "rpc_raw.h"

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
	CHECK(rpc_raw_send(argv[1], buf, len, 5000) == FT__CODE__OK);
	CHECK(rpc_raw_send(argv[1], buf, len, 5000) == FT__CODE__UNAUTHENTICATED);
	/* A flipped byte breaks the signature. */
	buf[len / 2] ^= 0x40;
	CHECK(rpc_raw_send(argv[1], buf, len, 5000) == FT__CODE__UNAUTHENTICATED);
	free(buf);
	return ft_test_done();
}
