/* rpc_status.c - the Ping and Status RPCs. */
#include <string.h>

#include "quota.h"
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
	const struct ft_config *cfg = &call->d->cfg;
	struct ft_status st;
	struct quota_usage qu;
	Ft__StatusReply *r;
	Ft__QuotaUsage *u;

	(void)req;
	if (ftuned_status_collect(call->d, &st) != 0 || quota_usage(call->d, (uint32_t)call->uid, &qu) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "state database unreadable (see daemon log)");
	if ((r = rpc_alloc(call, sizeof(*r))) == NULL || (u = rpc_alloc(call, sizeof(*u))) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	ft__status_reply__init(r);
	ft__quota_usage__init(u);
	u->bytes = qu.bytes;
	u->bytes_limit = (uint64_t)cfg->quota_bytes_per_user;
	u->models = (uint32_t)qu.models;
	u->models_limit = (uint32_t)cfg->quota_models_per_user;
	u->datasets = (uint32_t)qu.datasets;
	u->datasets_limit = (uint32_t)cfg->quota_datasets_per_user;
	r->usage = u;
	/* Strings are borrowed from the daemon's state, which outlives the call. */
	r->version = (char *)st.version;
	r->uptime_ms = st.uptime_ms;
	r->pid = st.pid;
	r->state_dir = (char *)st.state_dir;
	r->queue_length = st.queue_length;
	r->training_threads = st.training_threads;
	r->caller_uid = (uint32_t)call->uid;
	r->http_url = (char *)st.http_url;
	r->socket_url = (char *)st.socket_url;
	r->schema_version = st.schema_version;
	rep->body_case = FT__REPLY__BODY_STATUS;
	rep->status = r;
	return FT__CODE__OK;
}
