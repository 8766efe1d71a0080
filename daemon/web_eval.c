/*
 * web_eval.c - evaluations in the dashboard API: the list, one evaluation
 * with its summary, and a sorted, filtered page of examples side by side.
 * The objects are evals.c's, the same EvalInfo and EvalExample messages the
 * RPCs send, serialised by ft_json_message.
 */
#include <stdio.h>
#include <string.h>

#include "eval_metrics.h"
#include "evals.h"
#include "web_api.h"

#define EXAMPLES_PAGE_MAX 100
#define FILTER_MAX 200

/* The error reply for an evals.c code. */
static void
send_code(struct mg_connection *conn, int code, const char *what)
{
	char msg[96];

	snprintf(msg, sizeof(msg), code == FT__CODE__NOT_FOUND ? "no such %s" : "cannot read the %s",
	    what);
	web_send_error(conn, code == FT__CODE__NOT_FOUND ? 404 : 500, msg);
}

void
web_eval_list(struct mg_connection *conn, struct ftuned *d)
{
	struct arena a = ARENA_INIT;
	Ft__EvalInfo **list;
	json_t *arr;
	size_t n;
	int code;

	code = evals_list(store_lock(d->store), &a, 1, 0, WEB_API_PAGE_MAX, &list, &n);
	store_unlock(d->store);
	if (code != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "evaluations");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, ft_json_message(&list[i]->base));
	arena_release(&a);
	web_send_json(conn, 200, json_pack("{s:o}", "evals", arr));
}

void
web_eval_show(struct mg_connection *conn, struct ftuned *d, int64_t id)
{
	struct arena a = ARENA_INIT;
	Ft__EvalInfo *e;
	json_t *o, *order;
	int code;

	code = evals_get(store_lock(d->store), &a, id, 1, &e);
	store_unlock(d->store);
	if (code != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "evaluation");
		return;
	}
	o = ft_json_message(&e->base);
	/* the summary's metrics in the order their rows were stored */
	order = json_array();
	for (size_t i = 0; i < e->n_stats; i++) {
		size_t k = 0;

		while (k < i && strcmp(e->stats[k]->metric, e->stats[i]->metric) != 0)
			k++;
		if (k == i)
			json_array_append_new(order, json_string(e->stats[i]->metric));
	}
	json_object_set_new(o, "summary_metrics", order);
	arena_release(&a);
	web_send_json(conn, 200, o);
}

void
web_eval_examples(struct mg_connection *conn, struct ftuned *d, int64_t id, struct web_query *q)
{
	char metric[32] = "", sort[16] = "improvement", text[FILTER_MAX + 1] = "";
	struct evals_page page = { .metric = metric, .filter = text };
	uint64_t offset = 0, limit = 20;
	struct arena a = ARENA_INIT;
	Ft__EvalExample **xs;
	Ft__EvalInfo *e;
	json_t *arr;
	int64_t total;
	size_t n;
	sqlite3 *db;
	int code;

	web_query_str(q, "metric", metric, sizeof(metric));
	web_query_str(q, "sort", sort, sizeof(sort));
	web_query_str(q, "q", text, sizeof(text));
	web_query_uint(q, "offset", UINT32_MAX, &offset);
	web_query_uint(q, "limit", EXAMPLES_PAGE_MAX, &limit);
	if (q->bad[0] == '\0' && strcmp(sort, "improvement") && strcmp(sort, "regression") &&
	    strcmp(sort, "index"))
		snprintf(q->bad, sizeof(q->bad), "sort must be improvement, regression or index");
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	db = store_lock(d->store);
	if ((code = evals_get(db, &a, id, 0, &e)) == FT__CODE__OK) {
		/* by default the first metric the evaluation computed */
		if (metric[0] == '\0')
			snprintf(metric, sizeof(metric), "%.*s", (int)strcspn(e->metrics, ","), e->metrics);
		page.higher_is_better = eval_metric_higher_is_better(metric);
		page.order = strcmp(sort, "index") == 0 ? EVALS_ORDER_INDEX :
		    strcmp(sort, "regression") == 0 ? EVALS_ORDER_REGRESSION : EVALS_ORDER_IMPROVEMENT;
		page.offset = (uint32_t)offset;
		page.limit = (uint32_t)limit;
		code = evals_examples(db, &a, e, &page, &xs, &n, &total);
	}
	store_unlock(d->store);
	if (code != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, code == FT__CODE__NOT_FOUND ? "evaluation" : "examples");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, ft_json_message(&xs[i]->base));
	arena_release(&a);
	web_send_json(conn, 200, json_pack("{s:I,s:I,s:I,s:o,s:b,s:s,s:o,s:o}", "total",
	    (json_int_t)total, "offset", (json_int_t)offset, "limit", (json_int_t)limit,
	    "metric", ft_json_text(metric), "higher_is_better", page.higher_is_better, "sort", sort,
	    "q", ft_json_text(text), "examples", arr));
}
