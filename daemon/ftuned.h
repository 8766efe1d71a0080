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

struct arena;
struct Ft__StatusReply;

/* ftuned_status_reply builds the StatusReply that the Status RPC and
 * /api/v1/status both send, for the caller uid (its quota usage), from
 * arena a.  FT__CODE__OK with *out, INTERNAL when the state store cannot
 * be read, or RESOURCE_EXHAUSTED. */
int ftuned_status_reply(struct ftuned *d, struct arena *a, uint32_t uid,
    struct Ft__StatusReply **out) __attribute__((warn_unused_result));

/* ftuned_now_ms returns CLOCK_MONOTONIC in milliseconds. */
uint64_t ftuned_now_ms(void);

#endif
