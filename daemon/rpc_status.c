/* rpc_status.c - the Ping and Status RPCs. */
#include <string.h>

#include "rpc.h"

#define PING_PAYLOAD_MAX 1024

int
rpc_ping(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__PingReply *r;

	if (req->ping->payload.len > PING_PAYLOAD_MAX)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT,
		    "ping payload is %zu bytes, at most %d allowed",
		    req->ping->payload.len, PING_PAYLOAD_MAX);
	if ((r = rpc_alloc(call, sizeof(*r))) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	ft__ping_reply__init(r);
	r->payload = req->ping->payload; /* borrowed: the request outlives the reply */
	rep->body_case = FT__REPLY__BODY_PING;
	rep->ping = r;
	return FT__CODE__OK;
}

int
rpc_status(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__StatusReply *r;
	int code;

	(void)req;
	if ((code = ftuned_status_reply(call->d, &call->mem, (uint32_t)call->uid, &r)) != FT__CODE__OK)
		return rpc_error(call, rep, code, code == FT__CODE__INTERNAL ?
		    "state database unreadable (see daemon log)" : "out of memory");
	rep->body_case = FT__REPLY__BODY_STATUS;
	rep->status = r;
	return FT__CODE__OK;
}
