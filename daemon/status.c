/* status.c - the daemon's status snapshot, shared by RPC and HTTP. */
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "ft_wire.h"
#include "ftuned.h"
#include "quota.h"

uint64_t
ftuned_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
ftuned_status_reply(struct ftuned *d, struct arena *a, uint32_t uid, Ft__StatusReply **out)
{
	const struct ft_config *cfg = &d->cfg;
	Ft__StatusReply *r = arena_alloc(a, sizeof(*r));
	Ft__QuotaUsage *u = arena_alloc(a, sizeof(*u));
	struct quota_usage qu;

	if (r == NULL || u == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__status_reply__init(r);
	ft__quota_usage__init(u);
	if (store_queue_length(d->store, &r->queue_length) != 0 || quota_usage(d, uid, &qu) != 0)
		return FT__CODE__INTERNAL;
	u->bytes = qu.bytes;
	u->bytes_limit = (uint64_t)cfg->quota_bytes_per_user;
	u->models = (uint32_t)qu.models;
	u->models_limit = (uint32_t)cfg->quota_models_per_user;
	u->datasets = (uint32_t)qu.datasets;
	u->datasets_limit = (uint32_t)cfg->quota_datasets_per_user;
	r->usage = u;
	/* Strings are borrowed from the daemon's state, which outlives the reply. */
	r->version = (char *)FTUNED_VERSION;
	r->uptime_ms = ftuned_now_ms() - d->started_ms;
	r->pid = (int)getpid();
	r->state_dir = d->cfg.state_dir;
	r->training_threads = (uint32_t)d->training_threads;
	r->caller_uid = uid;
	r->http_url = d->http_url;
	r->socket_url = d->cfg.socket_url;
	r->schema_version = (uint32_t)store_schema_version(d->store);
	*out = r;
	return FT__CODE__OK;
}
