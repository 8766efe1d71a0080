/*
 * evals.h - the evaluation tables' owner: the only code that reads or
 * writes evals, eval_models, eval_examples, eval_outputs, eval_values and
 * eval_stats.  The readers answer with the protobuf objects of ft.proto,
 * allocated from the caller's arena (a reply's), so the RPC handlers
 * (rpc_eval.c, rpc_job.c) and the JSON API (web_eval.c, web_api.c)
 * serialise the same objects; call them with the store locked.  The
 * runner (eval_job.c) stores through the writers, which lock it themselves
 * (evals_insert excepted: it joins the caller's transaction).
 */
#ifndef FT_EVALS_H
#define FT_EVALS_H

#include <sqlite3.h>
#include <stdint.h>

#include "arena.h"
#include "datasets.h"
#include "eval_job.h"
#include "eval_metrics.h"
#include "ft.pb-c.h"
#include "ftuned.h"
#include "registry.h"

/* evals_get reads evaluation id into *out: its row, its models and, with
 * detail, the models' file hashes and the summary statistics.  Returns
 * FT__CODE__OK, NOT_FOUND, or RESOURCE_EXHAUSTED / INTERNAL. */
int evals_get(sqlite3 *db, struct arena *a, int64_t id, int detail, Ft__EvalInfo **out);

/* evals_list reads up to max evaluations, newest first, without detail:
 * every user's when all_users, else uid's.  Returns an FT__CODE__*. */
int evals_list(sqlite3 *db, struct arena *a, int all_users, uint32_t uid, size_t max,
    Ft__EvalInfo ***out, size_t *n);

/* How a page of examples is chosen and ordered by the gain on one metric:
 * the last model's value minus the first's, signed so that positive is
 * better.  Examples without the metric have no gain. */
enum evals_order {
	EVALS_ORDER_WINS,         /* gain > 0 only, largest first */
	EVALS_ORDER_LOSSES,       /* gain < 0 only, most negative first */
	EVALS_ORDER_CHANGE,       /* with a gain, largest |gain| first */
	EVALS_ORDER_IMPROVEMENT,  /* all, largest gain first, those without last */
	EVALS_ORDER_REGRESSION,   /* all, smallest gain first, those without last */
	EVALS_ORDER_INDEX,        /* all, in dataset order */
};

struct evals_page {
	const char *metric;
	int higher_is_better;
	enum evals_order order;
	const char *filter;       /* "" or a substring of prompt, reference or an output */
	uint32_t offset, limit;
};

/* evals_examples reads one page of evaluation e's examples, each with every
 * model's output, every metric's values and delta (last model minus first
 * on p->metric; NaN without it).  *total counts every example the order and
 * filter admit.  Returns an FT__CODE__*. */
int evals_examples(sqlite3 *db, struct arena *a, const Ft__EvalInfo *e,
    const struct evals_page *p, Ft__EvalExample ***out, size_t *n, int64_t *total);

/* evals_refs reads the evaluations training job train_job queued, oldest
 * first, each with its job's state.  Returns an FT__CODE__*. */
int evals_refs(sqlite3 *db, struct arena *a, int64_t train_job, Ft__EvalRef ***out, size_t *n);

/* ---- writes ---- */

/* A new evaluation: its spec (defaults filled in), its models (their file
 * hashes are recorded now) and dataset; the training job that queued it,
 * 0 for none. */
struct evals_new {
	uint32_t uid;
	const Ft__EvalSpec *spec;
	const struct model_info *models;
	size_t n_models;
	const struct dataset_info *ds;
	int64_t train_job;
};

/* evals_insert stores e as the evaluation run by job job_id, inside the
 * caller's transaction (which inserted that job row), the store locked.
 * FT__CODE__OK with *eval_id, RESOURCE_EXHAUSTED, or INTERNAL with the
 * reason in sqlite3_errmsg(db). */
int evals_insert(sqlite3 *db, int64_t job_id, const struct evals_new *e, int64_t *eval_id);

/* An evaluation as its runner reads it back. */
struct evals_run_model {
	int64_t model_id;
	char name[REGISTRY_NAME_MAX + 1];
	char *hashes;               /* registry_model_hashes_json at submission */
};

struct evals_run {
	int64_t id;
	Ft__EvalSpec *spec;
	int64_t dataset_id;
	char dataset_hash[65];
	struct evals_run_model models[EVAL_MAX_MODELS];
	size_t n_models;
};

/* evals_run_load reads the evaluation job job_id runs.  0, or -1 when its
 * rows are missing or unreadable; free with evals_run_free either way. */
int evals_run_load(struct ftuned *d, int64_t job_id, struct evals_run *e);
void evals_run_free(struct evals_run *e);

/* evals_reset drops whatever an interrupted earlier run stored. */
void evals_reset(struct ftuned *d, int64_t eval_id);

/* evals_set_progress records the metrics computed, the examples, those
 * done (over every model) and the rate (NaN: not measured yet). */
void evals_set_progress(struct ftuned *d, int64_t eval_id, const char *metrics,
    uint32_t examples, uint32_t done, double rate);

/* evals_store_output stores one model's results for example idx in one
 * transaction: its prompt and reference with the first model, the output,
 * and values[m] of each metric m in set that is finite.  0 or -1. */
int evals_store_output(struct ftuned *d, int64_t eval_id, uint32_t idx, uint32_t model_idx,
    const char *prompt, const char *reference, const char *output, const double *values,
    unsigned set);

/* evals_store_stat stores one summary number (ft.proto's EvalStat: versus
 * -1 for a model's mean, w NULL there).  0 or -1. */
int evals_store_stat(struct ftuned *d, int64_t eval_id, const char *metric, int model,
    int versus, const struct eval_ci *ci, const struct eval_wtl *w, size_t n);

#endif
