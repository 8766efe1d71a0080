/* test_wire.c - envelope packing, and what decoding does with bad bytes. */
#include "ft_test.h"
#include "ft_wire.h"
#include "rpc.h"

static int
roundtrip_status(void)
{
	Ft__Request req = FT__REQUEST__INIT, *back = NULL;
	Ft__StatusRequest sr = FT__STATUS_REQUEST__INIT;
	uint8_t *buf;
	size_t len;
	uint64_t id;
	char why[256];
	int ok;

	req.protocol_version = FT_PROTOCOL_VERSION;
	req.request_id = 42;
	req.body_case = FT__REQUEST__BODY_STATUS;
	req.status = &sr;
	if (ft_request_encode(&req, &buf, &len) != 0)
		return 0;
	ok = ft_request_decode(buf, len, &back, &id, why, sizeof(why)) == FT__CODE__OK &&
	    back->request_id == 42 && back->body_case == FT__REQUEST__BODY_STATUS && id == 42;
	ft_request_free(back);
	free(buf);
	return ok;
}

int
main(void)
{
	Ft__Request req = FT__REQUEST__INIT, *out = NULL;
	Ft__PingRequest pr = FT__PING_REQUEST__INIT;
	uint8_t garbage[64], *buf;
	size_t len;
	uint64_t id;
	char why[256];

	CHECK(roundtrip_status());
	CHECK_STR(ft_code_name(FT__CODE__PERMISSION_DENIED), "PERMISSION_DENIED");
	CHECK_STR(ft_code_name(12345), "UNKNOWN");

	/* Garbage bytes are refused with a reason. */
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(0xff - i * 7);
	CHECK(ft_request_decode(garbage, sizeof(garbage), &out, &id, why, sizeof(why)) ==
	    FT__CODE__INVALID_ARGUMENT);
	CHECK(strstr(why, "malformed request") != NULL);
	CHECK(out == NULL);

	/* Wrong protocol version: refused, request id still echoed. */
	req.protocol_version = FT_PROTOCOL_VERSION + 1;
	req.request_id = 7;
	req.body_case = FT__REQUEST__BODY_PING;
	req.ping = &pr;
	CHECK(ft_request_encode(&req, &buf, &len) == 0);
	CHECK(ft_request_decode(buf, len, &out, &id, why, sizeof(why)) == FT__CODE__FAILED_PRECONDITION);
	CHECK(id == 7);
	CHECK(strstr(why, "protocol version 2 not supported") != NULL);
	free(buf);

	/* No RPC named (or one from a newer client: an unknown field). */
	req.protocol_version = FT_PROTOCOL_VERSION;
	req.body_case = FT__REQUEST__BODY__NOT_SET;
	CHECK(ft_request_encode(&req, &buf, &len) == 0);
	CHECK(ft_request_decode(buf, len, &out, &id, why, sizeof(why)) == FT__CODE__INVALID_ARGUMENT);
	free(buf);
	{
		/* field 99, varint 1: an RPC this build does not know */
		uint8_t unknown[] = { 0x08, FT_PROTOCOL_VERSION, 0x98, 0x06, 0x01 };
		CHECK(ft_request_decode(unknown, sizeof(unknown), &out, &id, why, sizeof(why)) ==
		    FT__CODE__INVALID_ARGUMENT);
	}
	/* An empty message is a request of protocol version 0. */
	CHECK(ft_request_decode("", 0, &out, &id, why, sizeof(why)) == FT__CODE__FAILED_PRECONDITION);

	/* The dispatcher answers garbage with an error reply, never a crash. */
	{
		Ft__Reply *rep = NULL;
		uint8_t *rbuf;
		size_t rlen;

		CHECK(rpc_dispatch(NULL, 1000, 1000, 1, garbage, sizeof(garbage), &rbuf, &rlen) == 0);
		CHECK(ft_reply_decode(rbuf, rlen, &rep, why, sizeof(why)) == FT__CODE__OK);
		CHECK(rep != NULL && rep->code == FT__CODE__INVALID_ARGUMENT);
		CHECK(rep != NULL && rep->body_case == FT__REPLY__BODY__NOT_SET);
		ft_reply_free(rep);
		free(rbuf);
	}
	/* Ping echoes, and an oversized ping payload is refused. */
	{
		static uint8_t big[2048];
		Ft__Reply *rep = NULL;
		uint8_t *rbuf;
		size_t rlen;

		req.body_case = FT__REQUEST__BODY_PING;
		pr.payload.data = (uint8_t *)"hello";
		pr.payload.len = 5;
		CHECK(ft_request_encode(&req, &buf, &len) == 0);
		CHECK(rpc_dispatch(NULL, 1000, 1000, 1, buf, len, &rbuf, &rlen) == 0);
		free(buf);
		CHECK(ft_reply_decode(rbuf, rlen, &rep, why, sizeof(why)) == FT__CODE__OK);
		CHECK(rep->code == FT__CODE__OK && rep->ping != NULL && rep->ping->payload.len == 5 &&
		    memcmp(rep->ping->payload.data, "hello", 5) == 0);
		ft_reply_free(rep);
		free(rbuf);

		pr.payload.data = big;
		pr.payload.len = sizeof(big);
		CHECK(ft_request_encode(&req, &buf, &len) == 0);
		CHECK(rpc_dispatch(NULL, 1000, 1000, 1, buf, len, &rbuf, &rlen) == 0);
		free(buf);
		CHECK(ft_reply_decode(rbuf, rlen, &rep, why, sizeof(why)) == FT__CODE__OK);
		CHECK(rep->code == FT__CODE__INVALID_ARGUMENT && strstr(rep->message, "at most 1024") != NULL);
		ft_reply_free(rep);
		free(rbuf);
	}
	return ft_test_done();
}
