/*
 * rpc_abuse.c - sends bad messages to a running daemon and checks each is
 * refused while the daemon keeps serving.  Used by test_daemon.sh:
 *     rpc_abuse URL MAX_MESSAGE_BYTES
 */
#include "ft_test.h"
#include "rpc_raw.h"

static const char *url;

static int
send_request(Ft__Request *req)
{
	uint8_t *buf;
	size_t len;
	int code;

	if (ft_request_encode(req, &buf, &len) != 0)
		return -2;
	code = rpc_raw_send(url, buf, len, 5000);
	free(buf);
	return code;
}

static int
status_ok(void)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__StatusRequest sr = FT__STATUS_REQUEST__INIT;

	req.protocol_version = FT_PROTOCOL_VERSION;
	req.body_case = FT__REQUEST__BODY_STATUS;
	req.status = &sr;
	return send_request(&req) == FT__CODE__OK;
}

int
main(int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__PingRequest pr = FT__PING_REQUEST__INIT;
	uint8_t garbage[256];
	size_t max;
	uint8_t *big;

	if (argc != 3) {
		fprintf(stderr, "usage: rpc_abuse URL MAX_MESSAGE_BYTES\n");
		return 2;
	}
	url = argv[1];
	max = strtoul(argv[2], NULL, 10);

	CHECK(status_ok());
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 131 + 7);
	CHECK(rpc_raw_send(url, garbage, sizeof(garbage), 5000) == FT__CODE__INVALID_ARGUMENT);
	CHECK(rpc_raw_send(url, "", 0, 5000) == FT__CODE__FAILED_PRECONDITION);
	CHECK(status_ok());

	req.protocol_version = 99;
	req.body_case = FT__REQUEST__BODY_PING;
	req.ping = &pr;
	CHECK(send_request(&req) == FT__CODE__FAILED_PRECONDITION);

	/* An oversized message closes the pipe: no reply at all. */
	big = calloc(1, max + 1024);
	pr.payload.data = big;
	pr.payload.len = max + 16;
	req.protocol_version = FT_PROTOCOL_VERSION;
	CHECK(send_request(&req) == -1);
	free(big);

	/* Many truncated messages in a row. */
	for (int i = 1; i < 40; i++)
		CHECK(rpc_raw_send(url, garbage, (size_t)i, 5000) >= 0);
	CHECK(status_ok());
	return ft_test_done();
}
