/*
 * genstream.h - streamed Generate over the control socket.
 *
 * nng's req/rep carries one reply per request, so a streamed generation is
 * a session: Generate with stream set queues a job on the serving threads
 * (deploy.h) and answers at once with a random session id; each
 * GeneratePoll waits up to GENSTREAM_POLL_MS for text beyond the offset the
 * client has, or the end.  A session belongs to the uid that opened it;
 * each uid may hold GENSTREAM_PER_UID and the daemon GENSTREAM_MAX.  One
 * not polled for GENSTREAM_IDLE_MS (the client was killed) is cancelled and
 * forgotten by a reaper thread, which also frees finished ones, so an RPC
 * thread never waits for a generation to stop.
 */
#ifndef FT_GENSTREAM_H
#define FT_GENSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "deploy.h"
#include "ftuned.h"

#define GENSTREAM_PER_UID 4
#define GENSTREAM_MAX 64
#define GENSTREAM_POLL_MS 250
#define GENSTREAM_IDLE_MS 10000

struct genstream;

/* What one poll returns. */
struct genstream_chunk {
	char *text;                  /* malloc'd new text, or NULL when none */
	size_t len;
	int done;                    /* the text is complete; the session is gone */
	const char *finish_reason;   /* when done: "stop" or "length" */
	int tokens;                  /* when done */
	int prompt_tokens;           /* when done */
	double ms;                   /* since the session opened */
};

/* genstream_start starts the reaper for d (whose serving threads are
 * d->deploy).  0 and *out, or -1 with a message in err. */
int genstream_start(struct ftuned *d, struct genstream **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* genstream_stop cancels and frees every session and stops the reaper; call
 * it after the control socket and deploy_stop, before deploy_free.  NULL is
 * allowed. */
void genstream_stop(struct genstream *g);

/* genstream_open queues p for uid and sets *id.  FT__CODE__OK, or
 * RESOURCE_EXHAUSTED (too many sessions, or the serving queue is full),
 * UNAVAILABLE (shutting down) with a message in err. */
int genstream_open(struct genstream *g, uint32_t uid, const struct deploy_params *p,
    uint64_t *id, char *err, size_t err_len);

/* genstream_poll waits for text of session id beyond off bytes and fills
 * *out (free out->text).  FT__CODE__OK; NOT_FOUND (no such session: ended,
 * cancelled or expired), PERMISSION_DENIED (another uid's), INVALID_ARGUMENT
 * (off inside a character or past the end), or the generation's own
 * failure (the session is then gone), with a message in err. */
int genstream_poll(struct genstream *g, uint32_t uid, uint64_t id, uint64_t off,
    struct genstream_chunk *out, char *err, size_t err_len);

/* genstream_cancel stops session id of uid and forgets it.  FT__CODE__OK,
 * NOT_FOUND or PERMISSION_DENIED with a message in err. */
int genstream_cancel(struct genstream *g, uint32_t uid, uint64_t id, char *err, size_t err_len);

#endif
