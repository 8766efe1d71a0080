/*
 * queue.h - the training queue: submission with validation and memory
 * checks, priorities, cancellation, and recovery after a crash.
 */
#ifndef FT_QUEUE_H
#define FT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "ft_wire.h"
#include "ftuned.h"

struct queue;

/* queue_start requeues jobs a previous run left RUNNING and starts the
 * scheduler thread with the local executor.  0, or -1 with err. */
int queue_start(struct ftuned *d, struct queue **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* queue_stop stops scheduling, stops running jobs at their next step
 * (they resume after restart), and frees the queue.  NULL is allowed. */
void queue_stop(struct queue *q);

/* queue_submit validates spec (filling in defaults), checks the memory
 * the job needs against the budget and the user's queued-job cap, and
 * queues it, setting *id.  A request_id (nonzero) the same user already
 * submitted with returns that job instead: resent requests are idempotent.
 * FT__CODE__* with a message in err otherwise. */
int queue_submit(struct queue *q, uint32_t uid, uint64_t request_id, Ft__JobSpec *spec,
    int64_t *id, char *err, size_t err_len);

/* queue_cancel cancels a queued or running job of uid's (or any, for an
 * admin).  FT__CODE__*. */
int queue_cancel(struct queue *q, uint32_t uid, int admin, int64_t id, char *err,
    size_t err_len);

/* queue_memory_budget is the memory a job may use: memory_budget, or
 * three quarters of RAM when it is 0.  Serving yields to jobs within it
 * (deploy_memory_reserve). */
uint64_t queue_memory_budget(const struct ftuned *d);

/* queue_wake_up makes the scheduler look for work now, after a job was
 * inserted by other code than queue_submit (evaluations). */
void queue_wake_up(struct queue *q);

#endif
