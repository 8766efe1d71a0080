/*
 * ftuned.h - the daemon's shared state, handed to the RPC and HTTP layers.
 * Fields are set before the servers start and read-only afterwards, except
 * where a comment says otherwise.
 */
#ifndef FTUNED_H
#define FTUNED_H

#include <stdint.h>

#include "config.h"
#include "store.h"

#define FTUNED_VERSION "0.1.0"

struct ftuned {
	struct ft_config cfg;
	struct store *store;
	uint64_t started_ms;          /* CLOCK_MONOTONIC at start */
	char http_url[160];           /* http://ADDR:PORT/ once listening, else "" */
	int training_threads;         /* resolved from cfg (0 = online CPUs) */
	struct queue *queue;          /* the training queue (queue.h) */
	struct deploy *deploy;        /* deployed models and their serving threads (deploy.h) */
	struct genstream *genstream;  /* streamed Generate sessions (genstream.h) */
	struct uploads *uploads;      /* dataset files arriving in chunks (upload.h) */
	struct audit *audit;          /* the audit log (audit.h); NULL in tests */
	struct screen_rules *screen;  /* data add's rule set (screen.h); NULL: none */
};

/* A snapshot of what Status and /api/v1/status report. */
struct ft_status {
	const char *version;
	uint64_t uptime_ms;
	int pid;
	const char *state_dir;
	uint32_t queue_length;
	uint32_t training_threads;
	const char *http_url;
	const char *socket_url;
	uint32_t schema_version;
};

/* ftuned_status_collect fills st from the daemon's state.  Returns 0, or -1
 * if the state store could not be read. */
int ftuned_status_collect(struct ftuned *d, struct ft_status *st)
    __attribute__((warn_unused_result));

/* ftuned_now_ms returns CLOCK_MONOTONIC in milliseconds. */
uint64_t ftuned_now_ms(void);

#endif
