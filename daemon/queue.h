/*
 * queue.h - the job queue: admission of every kind of job (priority, memory
 * and per-user checks in one place), validation of training specs,
 * priorities, cancellation, and recovery after a crash.
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

/* queue_submit validates a copy of spec (filling in defaults), estimates
 * the memory the training job needs and queues it through queue_admit,
 * setting *id.  A request_id (nonzero) the same user already submitted with
 * returns that job instead: resent requests are idempotent.  admin lifts
 * the user_priority_max cap.  FT__CODE__* with a message in err otherwise. */
int queue_submit(struct queue *q, uint32_t uid, int admin, uint64_t request_id,
    const Ft__JobSpec *spec, int64_t *id, char *err, size_t err_len);

/* What every kind of job passes before it is queued.  insert stores the
 * job's rows (QUEUED) and sets *id; it runs under the queue's lock, after
 * the checks, so concurrent submissions cannot pass the per-user cap
 * together.  FT__CODE__* with a message in err. */
struct queue_admission {
	uint32_t uid;
	int admin;                  /* lifts the user_priority_max cap */
	int followup;               /* queued by an admitted job (its automatic
	                             * evaluations): held to neither user cap */
	uint64_t request_id;        /* 0: none; else a resend returns the first job */
	int32_t priority;
	uint64_t memory;            /* bytes the job is estimated to need */
	const char *memory_detail;  /* what the estimate is made of, for the refusal */
	const char *memory_hint;    /* what to change when it exceeds the budget */
	int (*insert)(struct ftuned *d, void *arg, int64_t *id, char *err, size_t err_len);
	void *arg;
};

/* queue_admit checks the priority (range, and the cap for non-admins), the
 * memory estimate against queue_memory_budget and the user's active jobs
 * against max_queued_per_user, then inserts and wakes the scheduler.  A
 * follow-up's submitting job still counts as active, so only the range and
 * memory checks apply to it.
 * *id is the new job, or the earlier one for a resent request_id. */
int queue_admit(struct queue *q, const struct queue_admission *a, int64_t *id, char *err,
    size_t err_len);

/* queue_cancel cancels a queued or running job of uid's (or any, for an
 * admin).  FT__CODE__*. */
int queue_cancel(struct queue *q, uint32_t uid, int admin, int64_t id, char *err,
    size_t err_len);

/* queue_memory_budget is the memory a job may use: memory_budget, or
 * three quarters of RAM when it is 0.  Serving yields to jobs within it
 * (deploy_memory_reserve). */
uint64_t queue_memory_budget(const struct ftuned *d);

#endif
