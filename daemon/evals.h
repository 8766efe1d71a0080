/*
 * evals.h - the evaluation tables' reader: the only code that reads evals,
 * eval_models, eval_examples, eval_outputs, eval_values and eval_stats
 * (eval_job.c writes them).  It answers with the protobuf objects of
 * ft.proto, allocated from the caller's arena (a reply's), so the RPC
 * handlers (rpc_eval.c) and the JSON API (web_eval.c) serialise the same
 * objects.  Call every function with the store locked.
 */
#ifndef FT_EVALS_H
#define FT_EVALS_H

#include <sqlite3.h>
#include <stdint.h>

#include "arena.h"
#include "ft.pb-c.h"

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

#endif
