/*
 * executor.h - where jobs run: the seam between the queue and the machine.
 *
 * The queue decides what runs next and marks it RUNNING; an executor runs
 * it and reports through the job's rows (jobs.h): progress, metrics, and
 * the final state.  The local executor (executor_local.c) runs jobs on
 * threads of this daemon; a cluster executor (Slurm) would implement the
 * same operations by submitting the job's specification to the scheduler
 * and following it there.
 */
#ifndef FT_EXECUTOR_H
#define FT_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "ftuned.h"

struct executor;

struct executor_ops {
	const char *name;
	/* How many more jobs it can take now. */
	int (*slots_free)(struct executor *ex);
	/* Run job_id, already RUNNING in the state.  0, or -1 with a message
	 * (the queue then fails the job). */
	int (*start)(struct executor *ex, int64_t job_id, char *err, size_t err_len);
	/* Ask a job it runs to stop and end as CANCELLED; 0 if it runs it. */
	int (*cancel)(struct executor *ex, int64_t job_id);
	/* Stop every job without finishing it (rows stay RUNNING, so they
	 * resume from their checkpoints at the next start), wait, and free. */
	void (*shutdown)(struct executor *ex);
};

struct executor {
	const struct executor_ops *ops;
	struct ftuned *d;
	void (*done)(void *arg);    /* called when a job ends or a slot frees */
	void *done_arg;
};

/* executor_local_create makes the local executor with slots concurrent
 * jobs; done(arg) is called from its threads whenever a job ends. */
struct executor *executor_local_create(struct ftuned *d, int slots,
    void (*done)(void *arg), void *arg);

#endif
