/*
 * executor_local.c - runs jobs on threads of this daemon, one per slot.
 * A job holds its memory need (the job row's memory_bytes) against the
 * models loaded for serving while it runs (deploy_memory_reserve).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy.h"
#include "eval_job.h"
#include "executor.h"
#include "jobs.h"
#include "log.h"
#include "train_job.h"

struct slot {
	struct local *ex;
	pthread_t thread;
	int64_t job_id;      /* 0 when free */
	int joinable;
	atomic_int stop;
	struct deploy_reservation memory;
};

struct local {
	struct executor base;
	pthread_mutex_t lock;
	int n_slots;
	struct slot *slots;
};

static void *
slot_main(void *arg)
{
	struct slot *s = arg;
	struct local *ex = s->ex;
	struct ftuned *d = ex->base.d;
	struct job_info j;
	Ft__JobKind kind = FT__JOB_KIND__JOB_KIND_UNSPECIFIED;
	int n;

	/* Each kind of job has its runner; all report through their rows. */
	s->memory.job_id = s->job_id;
	s->memory.bytes = 0;
	if (jobs_get(d, s->job_id, &j) == 0) {
		kind = j.kind;
		s->memory.bytes = j.memory_bytes;
		job_info_free(&j);
	}
	s->memory.kind = kind == FT__JOB_KIND__JOB_KIND_EVAL ? "evaluation" : "training";
	if ((n = deploy_memory_reserve(d->deploy, &s->memory)) > 0)
		jobs_log(d, s->job_id, "info", "%d deployed model%s unloaded to fit memory_budget", n,
		    n == 1 ? "" : "s");
	if (kind == FT__JOB_KIND__JOB_KIND_TRAIN)
		train_job_run(d, s->job_id, &s->stop);
	else if (kind == FT__JOB_KIND__JOB_KIND_EVAL)
		eval_job_run(d, s->job_id, &s->stop);
	else
		jobs_set_state(d, s->job_id, JOB_FAILED, "unknown job kind");
	deploy_memory_release(d->deploy, &s->memory);
	pthread_mutex_lock(&ex->lock);
	s->job_id = 0;
	pthread_mutex_unlock(&ex->lock);
	ex->base.done(ex->base.done_arg);
	return NULL;
}

static int
local_slots_free(struct executor *base)
{
	struct local *ex = (struct local *)base;
	int n = 0;

	pthread_mutex_lock(&ex->lock);
	for (int i = 0; i < ex->n_slots; i++)
		n += ex->slots[i].job_id == 0;
	pthread_mutex_unlock(&ex->lock);
	return n;
}

static int
local_start(struct executor *base, int64_t job_id, char *err, size_t err_len)
{
	struct local *ex = (struct local *)base;
	struct slot *s = NULL;
	int rc;

	pthread_mutex_lock(&ex->lock);
	for (int i = 0; i < ex->n_slots && s == NULL; i++)
		if (ex->slots[i].job_id == 0)
			s = &ex->slots[i];
	if (s == NULL) {
		pthread_mutex_unlock(&ex->lock);
		snprintf(err, err_len, "no free training slot");
		return -1;
	}
	if (s->joinable)
		pthread_join(s->thread, NULL); /* the previous job's thread has ended */
	s->job_id = job_id;
	atomic_store(&s->stop, TRAIN_STOP_NONE);
	if ((rc = pthread_create(&s->thread, NULL, slot_main, s)) != 0) {
		s->job_id = 0;
		s->joinable = 0;
		pthread_mutex_unlock(&ex->lock);
		snprintf(err, err_len, "training thread: %s", strerror(rc));
		return -1;
	}
	s->joinable = 1;
	pthread_mutex_unlock(&ex->lock);
	return 0;
}

static int
local_cancel(struct executor *base, int64_t job_id)
{
	struct local *ex = (struct local *)base;
	int rc = -1;

	pthread_mutex_lock(&ex->lock);
	for (int i = 0; i < ex->n_slots; i++) {
		if (ex->slots[i].job_id == job_id) {
			atomic_store(&ex->slots[i].stop, TRAIN_STOP_CANCEL);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&ex->lock);
	return rc;
}

static void
local_shutdown(struct executor *base)
{
	struct local *ex = (struct local *)base;

	pthread_mutex_lock(&ex->lock);
	for (int i = 0; i < ex->n_slots; i++)
		if (ex->slots[i].job_id != 0)
			atomic_store(&ex->slots[i].stop, TRAIN_STOP_SHUTDOWN);
	pthread_mutex_unlock(&ex->lock);
	for (int i = 0; i < ex->n_slots; i++)
		if (ex->slots[i].joinable)
			pthread_join(ex->slots[i].thread, NULL);
	pthread_mutex_destroy(&ex->lock);
	free(ex->slots);
	free(ex);
}

static const struct executor_ops local_ops = {
	.name = "local",
	.slots_free = local_slots_free,
	.start = local_start,
	.cancel = local_cancel,
	.shutdown = local_shutdown,
};

struct executor *
executor_local_create(struct ftuned *d, int slots, void (*done)(void *arg), void *arg)
{
	struct local *ex = calloc(1, sizeof(*ex));

	if (ex == NULL || (ex->slots = calloc((size_t)slots, sizeof(*ex->slots))) == NULL) {
		free(ex);
		return NULL;
	}
	ex->base.ops = &local_ops;
	ex->base.d = d;
	ex->base.done = done;
	ex->base.done_arg = arg;
	ex->n_slots = slots;
	for (int i = 0; i < slots; i++)
		ex->slots[i].ex = ex;
	pthread_mutex_init(&ex->lock, NULL);
	return &ex->base;
}
