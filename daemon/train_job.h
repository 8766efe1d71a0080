/*
 * train_job.h - one training job, from its row to a registered model:
 * load and verify the base model, tokenize the dataset with the prompt
 * template (SFT: loss on the response and EOS only; CPT: documents packed
 * into rows without attention across them), train with checkpoints and
 * validation, save and register the tuned model with its lineage.
 */
#ifndef FT_TRAIN_JOB_H
#define FT_TRAIN_JOB_H

#include <stdatomic.h>
#include <stdint.h>

#include "ftuned.h"

enum train_stop {
	TRAIN_STOP_NONE = 0,
	TRAIN_STOP_CANCEL = 1,   /* end the job as CANCELLED */
	TRAIN_STOP_SHUTDOWN = 2, /* leave it RUNNING: it resumes after restart */
};

/* train_job_run runs job id (RUNNING in the state) until it ends or *stop
 * is raised (polled between steps), and records the outcome in its row. */
void train_job_run(struct ftuned *d, int64_t id, atomic_int *stop);

#endif
