/*
 * eval_job.h - evaluation jobs: several models on the same examples of a
 * dataset, with the same prompt template and decoding settings, compared
 * metric by metric with bootstrap confidence intervals (eval_metrics.h).
 *
 * An evaluation is a row in `jobs` (kind eval, its spec a JobSpec with
 * type eval, base_model the first model, data the dataset, name the
 * evaluation's name) so the queue runs it and job ls/show/watch/cancel
 * work unchanged, plus rows in the eval tables (evals.c) that hold its full
 * specification (models with their file hashes, dataset hash, template,
 * decoding settings, seed), every example with each model's output and
 * metric values, and the summary.
 *
 * Metrics, per example:
 *   loss         teacher-forced cross-entropy (nats per token) of the
 *                reference response and EOS given the prompt, masked as SFT
 *                trains; for a text dataset, of the whole document.  Batched:
 *                examples of similar length share a forward pass
 *   exact_match, token_f1, rouge_l, chrf
 *                of the generated text against the reference output
 *   accuracy     exact match after normalisation, computed only when the
 *                references come from a small label set (at most 20 distinct)
 *   gen_length   generated tokens
 *   eos_rate     1 when generation stopped at EOS, 0 when it ran out of
 *                max_new_tokens or context
 * The summary adds perplexity = exp(mean loss), with exp of its interval.
 */
#ifndef FT_EVAL_JOB_H
#define FT_EVAL_JOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ft_wire.h"
#include "ftuned.h"

#define EVAL_MAX_MODELS 8
#define EVAL_MAX_NEW_TOKENS 1024
#define EVAL_AUTO_LIMIT 200         /* examples in the automatic post-training eval */
#define EVAL_LABELS_MAX 20          /* accuracy: at most this many distinct references */

/* eval_submit validates spec (filling in defaults: split validation, every
 * applicable metric, 64 new tokens, greedy, top_p 1, seed 1, the Alpaca
 * template) on a copy of spec, resolves its models and dataset, estimates
 * the memory of its largest model and queues it through queue_admit, whose
 * insert stores the job row and the evaluation's rows in one transaction.
 * admin lifts the user_priority_max cap.  train_job is the training job
 * that queues it as it finishes (a follow-up: no user cap applies), 0 for
 * an evaluation a user asked for.
 * Returns FT__CODE__OK with *eval_id and *job_id set, or a code with a
 * message in err. */
int eval_submit(struct ftuned *d, uint32_t uid, int admin, const Ft__EvalSpec *spec,
    int64_t train_job, int64_t *eval_id, int64_t *job_id, char *err, size_t err_len);

/* eval_job_run runs evaluation job id (RUNNING in its row): verifies every
 * model's files against the hashes recorded at submission, evaluates each
 * example with each model, stores outputs, values and the summary, and ends
 * the job SUCCEEDED or FAILED.  *stop is polled between examples: a cancel
 * ends it CANCELLED; a shutdown leaves it RUNNING, and an interrupted
 * evaluation starts again from its first example when the job next runs
 * (its earlier rows are deleted), so results never mix two runs. */
void eval_job_run(struct ftuned *d, int64_t id, atomic_int *stop);

/* eval_job_after_training queues the evaluation every successful training
 * job gets: its base model against the tuned one on the job's dataset's
 * validation split (when there is one; at most EVAL_AUTO_LIMIT examples),
 * with the job's template and seed, owned by the job's owner and named
 * "job-<id>".  A job with general_data also gets "job-<id>-general": the
 * two models' loss (perplexity) on that text dataset (its validation split
 * when it has one, else all of it; at most EVAL_AUTO_LIMIT documents), to
 * measure forgetting.  The outcomes go to the training job's log.  Called
 * again for the same job (resumed after a crash), it queues only those it
 * has not. */
void eval_job_after_training(struct ftuned *d, int64_t job_id);

#endif
