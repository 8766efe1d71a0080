/* status.c - the daemon's status snapshot, shared by RPC and HTTP. */
#include <time.h>
#include <unistd.h>

#include "ftuned.h"

uint64_t
ftuned_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
ftuned_status_collect(struct ftuned *d, struct ft_status *st)
{
	st->version = FTUNED_VERSION;
	st->uptime_ms = ftuned_now_ms() - d->started_ms;
	st->pid = (int)getpid();
	st->state_dir = d->cfg.state_dir;
	st->training_threads = (uint32_t)d->training_threads;
	st->http_url = d->http_url;
	st->socket_url = d->cfg.socket_url;
	st->schema_version = (uint32_t)store_schema_version(d->store);
	return store_queue_length(d->store, &st->queue_length);
}
