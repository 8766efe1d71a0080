/* rpc_eval.c - evaluation RPCs: EvalRun, EvalShow, EvalList, EvalExport,
 * and Generate, GeneratePoll, GenerateCancel.
 *
 * Generate without stream runs on the RPC thread, so it is limited to small
 * models and short generations (GENERATE_MAX_PARAMS, GENERATE_MAX_NEW_TOKENS)
 * to keep handlers fast, and answers with one reply.  With stream it opens a
 * session on the serving threads (genstream.h) that GeneratePoll reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "eval_job.h"
#include "fte.h"
#include "genstream.h"
#include "registry.h"
#include "rpc.h"

#define GENERATE_MAX_PARAMS 50000000ULL
#define GENERATE_MAX_NEW_TOKENS 512
#define GENERATE_MAX_PROMPT 65536         /* bytes; far over any context we run */
#define EVAL_LIST_MAX 1000
#define SHOW_TOP_DEFAULT 5
#define SHOW_PAGE_MAX 1000

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

#define EVAL_COLUMNS "e.id, e.job_id, e.name, e.owner_uid, e.created_at, e.spec, " \
	"e.dataset_name, e.dataset_hash, e.examples, e.done, e.examples_per_s, e.metrics, " \
	"j.state, j.stage, j.error"
#define EVAL_FROM " FROM evals e JOIN jobs j ON j.id = e.job_id "

/* One EvalInfo from a row of EVAL_COLUMNS; with detail, also its models
 * and summary statistics.  Call with the store locked. */
static Ft__EvalInfo *
eval_info_row(struct rpc_call *call, sqlite3 *db, sqlite3_stmt *st, int detail)
{
	ProtobufCAllocator a = rpc_allocator(call);
	Ft__EvalInfo *p = rpc_alloc(call, sizeof(*p));
	sqlite3_stmt *q;

	if (p == NULL)
		return NULL;
	ft__eval_info__init(p);
	p->id = sqlite3_column_int64(st, 0);
	p->job_id = sqlite3_column_int64(st, 1);
	p->name = rpc_strdup(call, col_text(st, 2));
	p->owner_uid = (uint32_t)sqlite3_column_int64(st, 3);
	p->created_at = sqlite3_column_int64(st, 4);
	p->spec = ft__eval_spec__unpack(&a, (size_t)sqlite3_column_bytes(st, 5),
	    sqlite3_column_blob(st, 5));
	p->dataset = rpc_strdup(call, col_text(st, 6));
	p->dataset_blake2b = rpc_strdup(call, col_text(st, 7));
	p->examples = (uint32_t)sqlite3_column_int64(st, 8);
	p->done = (uint32_t)sqlite3_column_int64(st, 9);
	p->examples_per_s = sqlite3_column_double(st, 10);
	p->metrics = rpc_strdup(call, col_text(st, 11));
	p->state = rpc_strdup(call, col_text(st, 12));
	p->stage = rpc_strdup(call, col_text(st, 13));
	p->error = rpc_strdup(call, col_text(st, 14));
	if (p->spec == NULL || p->error == NULL)
		return NULL;
	if (sqlite3_prepare_v2(db, "SELECT name, model_id, hashes FROM eval_models WHERE eval_id = ? "
	    "ORDER BY idx", -1, &q, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_int64(q, 1, p->id);
	p->models = rpc_alloc(call, EVAL_MAX_MODELS * sizeof(*p->models));
	while (p->models != NULL && sqlite3_step(q) == SQLITE_ROW && p->n_models < EVAL_MAX_MODELS) {
		Ft__EvalModel *m = rpc_alloc(call, sizeof(*m));

		if (m == NULL)
			break;
		ft__eval_model__init(m);
		m->name = rpc_strdup(call, col_text(q, 0));
		m->id = sqlite3_column_int64(q, 1);
		m->hashes_json = rpc_strdup(call, detail ? col_text(q, 2) : "");
		p->models[p->n_models++] = m;
	}
	sqlite3_finalize(q);
	if (!detail)
		return p;
	if (sqlite3_prepare_v2(db, "SELECT metric, model_idx, versus, mean, lo, hi, wins, ties, "
	    "losses, n, higher_is_better FROM eval_stats WHERE eval_id = ? ORDER BY rowid", -1, &q,
	    NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_int64(q, 1, p->id);
	while (sqlite3_step(q) == SQLITE_ROW) {
		Ft__EvalStat *s = rpc_alloc(call, sizeof(*s)), **grown;

		if (s == NULL || (grown = rpc_alloc(call, (p->n_stats + 1) * sizeof(*grown))) == NULL)
			break;
		ft__eval_stat__init(s);
		s->metric = rpc_strdup(call, col_text(q, 0));
		s->model = sqlite3_column_int(q, 1);
		s->versus = sqlite3_column_int(q, 2);
		s->mean = sqlite3_column_double(q, 3);
		s->lo = sqlite3_column_double(q, 4);
		s->hi = sqlite3_column_double(q, 5);
		s->wins = (uint32_t)sqlite3_column_int64(q, 6);
		s->ties = (uint32_t)sqlite3_column_int64(q, 7);
		s->losses = (uint32_t)sqlite3_column_int64(q, 8);
		s->n = (uint32_t)sqlite3_column_int64(q, 9);
		s->higher_is_better = sqlite3_column_int(q, 10) != 0;
		if (p->n_stats > 0)
			memcpy(grown, p->stats, p->n_stats * sizeof(*grown));
		grown[p->n_stats++] = s;
		p->stats = grown;
	}
	sqlite3_finalize(q);
	return p;
}

/* The evaluation with id; NULL with *code set when there is none. */
static Ft__EvalInfo *
eval_info_get(struct rpc_call *call, int64_t id, int *code)
{
	sqlite3 *db = store_lock(call->d->store);
	sqlite3_stmt *st;
	Ft__EvalInfo *p = NULL;

	*code = FT__CODE__NOT_FOUND;
	if (sqlite3_prepare_v2(db, "SELECT " EVAL_COLUMNS EVAL_FROM "WHERE e.id = ?", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			p = eval_info_row(call, db, st, 1);
			*code = p ? FT__CODE__OK : FT__CODE__RESOURCE_EXHAUSTED;
		}
		sqlite3_finalize(st);
	}
	store_unlock(call->d->store);
	return p;
}

int
rpc_eval_run(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__EvalReply *r = rpc_alloc(call, sizeof(*r));
	char err[1024];
	int64_t eval_id, job_id;
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (req->eval_run->spec == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "eval run needs a specification");
	code = eval_submit(call->d, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    req->eval_run->spec, 0, &eval_id, &job_id, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__eval_reply__init(r);
	if ((r->eval = eval_info_get(call, eval_id, &code)) == NULL)
		return rpc_error(call, rep, code, "evaluation %lld vanished", (long long)eval_id);
	rep->body_case = FT__REPLY__BODY_EVAL_RUN;
	rep->eval_run = r;
	return FT__CODE__OK;
}

int
rpc_eval_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__EvalListReply *r = rpc_alloc(call, sizeof(*r));
	sqlite3 *db;
	sqlite3_stmt *st;
	int ok = 1;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	ft__eval_list_reply__init(r);
	r->evals = rpc_alloc(call, EVAL_LIST_MAX * sizeof(*r->evals));
	db = store_lock(call->d->store);
	if (r->evals == NULL || sqlite3_prepare_v2(db, "SELECT " EVAL_COLUMNS EVAL_FROM
	    "WHERE ?1 OR e.owner_uid = ?2 ORDER BY e.id DESC LIMIT ?3", -1, &st, NULL) != SQLITE_OK) {
		store_unlock(call->d->store);
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot list evaluations");
	}
	sqlite3_bind_int(st, 1, req->eval_list->all_users);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)call->uid);
	sqlite3_bind_int(st, 3, EVAL_LIST_MAX);
	while (ok && sqlite3_step(st) == SQLITE_ROW) {
		Ft__EvalInfo *p = eval_info_row(call, db, st, 0);

		if (p == NULL)
			ok = 0;
		else
			r->evals[r->n_evals++] = p;
	}
	sqlite3_finalize(st);
	store_unlock(call->d->store);
	if (!ok)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_EVAL_LIST;
	rep->eval_list = r;
	return FT__CODE__OK;
}

/* One example with every model's output and metric values.  Call with the
 * store locked. */
static Ft__EvalExample *
example_get(struct rpc_call *call, sqlite3 *db, int64_t eval_id, uint32_t idx, size_t n_models,
    double delta)
{
	Ft__EvalExample *x = rpc_alloc(call, sizeof(*x));
	json_t *values = json_object();
	sqlite3_stmt *st;
	char *s;

	if (x == NULL || values == NULL) {
		json_decref(values);
		return NULL;
	}
	ft__eval_example__init(x);
	x->index = idx;
	x->delta = delta;
	if (sqlite3_prepare_v2(db, "SELECT prompt, reference FROM eval_examples WHERE eval_id = ? "
	    "AND idx = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, eval_id);
		sqlite3_bind_int64(st, 2, idx);
		if (sqlite3_step(st) == SQLITE_ROW) {
			x->prompt = rpc_strdup(call, col_text(st, 0));
			x->reference = rpc_strdup(call, col_text(st, 1));
		}
		sqlite3_finalize(st);
	}
	x->outputs = rpc_alloc(call, (n_models + 1) * sizeof(*x->outputs));
	for (size_t k = 0; x->outputs != NULL && k < n_models; k++)
		x->outputs[k] = rpc_strdup(call, "");
	x->n_outputs = x->outputs ? n_models : 0;
	if (sqlite3_prepare_v2(db, "SELECT model_idx, output FROM eval_outputs WHERE eval_id = ? AND "
	    "idx = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, eval_id);
		sqlite3_bind_int64(st, 2, idx);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int k = sqlite3_column_int(st, 0);

			if (k >= 0 && (size_t)k < x->n_outputs)
				x->outputs[k] = rpc_strdup(call, col_text(st, 1));
		}
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db, "SELECT metric, model_idx, value FROM eval_values WHERE "
	    "eval_id = ? AND idx = ? ORDER BY rowid", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, eval_id);
		sqlite3_bind_int64(st, 2, idx);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *metric = col_text(st, 0);
			json_t *arr = json_object_get(values, metric);
			int k = sqlite3_column_int(st, 1);

			if (arr == NULL) {
				arr = json_array();
				for (size_t i = 0; i < n_models; i++)
					json_array_append_new(arr, json_null());
				json_object_set_new(values, metric, arr);
			}
			if (k >= 0 && (size_t)k < n_models)
				json_array_set_new(arr, (size_t)k, json_real(sqlite3_column_double(st, 2)));
		}
		sqlite3_finalize(st);
	}
	s = json_dumps(values, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(values);
	x->metrics_json = rpc_strdup(call, s);
	free(s);
	return x->prompt && x->reference && x->outputs && x->metrics_json ? x : NULL;
}

/* Examples ordered by the difference of metric between model `last` and
 * model 0: sign > 0 those with a positive difference, largest first;
 * sign < 0 negative ones, most negative first; sign 0 all, by absolute
 * difference.  Appends to *out / *n. */
static int
examples_by_delta(struct rpc_call *call, sqlite3 *db, int64_t eval_id, const char *metric,
    size_t n_models, int sign, uint32_t offset, uint32_t limit, Ft__EvalExample ***out,
    size_t *n)
{
	static const char *const order[] = {
		"d < 0 ORDER BY d ASC, x.idx", "1 ORDER BY abs(d) DESC, x.idx",
		"d > 0 ORDER BY d DESC, x.idx",
	};
	char sql[512];
	sqlite3_stmt *st;
	Ft__EvalExample **list;
	int rc = 0;

	if (limit == 0)
		return 0;
	if ((list = rpc_alloc(call, limit * sizeof(*list))) == NULL)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT x.idx, b.value - a.value AS d FROM eval_examples x "
	    "JOIN eval_values a ON a.eval_id = x.eval_id AND a.idx = x.idx AND a.model_idx = 0 "
	    "AND a.metric = ?2 JOIN eval_values b ON b.eval_id = x.eval_id AND b.idx = x.idx AND "
	    "b.model_idx = ?3 AND b.metric = ?2 WHERE x.eval_id = ?1 AND %s LIMIT ?4 OFFSET ?5",
	    order[sign + 1]);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, eval_id);
	sqlite3_bind_text(st, 2, metric, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)(n_models - 1));
	sqlite3_bind_int64(st, 4, limit);
	sqlite3_bind_int64(st, 5, offset);
	*n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		Ft__EvalExample *x = example_get(call, db, eval_id, (uint32_t)sqlite3_column_int64(st, 0),
		    n_models, sqlite3_column_double(st, 1));

		if (x == NULL) {
			rc = -1;
			break;
		}
		list[(*n)++] = x;
	}
	sqlite3_finalize(st);
	*out = list;
	return rc;
}

/* The metric wins and losses are sorted by: the request's, else the first
 * generation metric computed, else the loss. */
static const char *
sort_metric(const Ft__EvalInfo *e, const char *asked)
{
	static const char *const prefer[] = { "token_f1", "rouge_l", "chrf", "exact_match",
		"accuracy", "loss" };

	if (asked[0])
		return asked;
	for (size_t i = 0; i < sizeof(prefer) / sizeof(prefer[0]); i++) {
		const char *p = strstr(e->metrics, prefer[i]);
		size_t len = strlen(prefer[i]);

		if (p != NULL && (p == e->metrics || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
			return prefer[i];
	}
	return "loss";
}

int
rpc_eval_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__EvalShowRequest *q = req->eval_show;
	Ft__EvalShowReply *r = rpc_alloc(call, sizeof(*r));
	uint32_t top = q->top ? q->top : SHOW_TOP_DEFAULT;
	const char *metric;
	sqlite3 *db;
	int code, better, rc = 0;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	ft__eval_show_reply__init(r);
	if ((r->eval = eval_info_get(call, q->id, &code)) == NULL)
		return rpc_error(call, rep, code, "no evaluation %lld", (long long)q->id);
	metric = sort_metric(r->eval, q->sort);
	if (strstr(r->eval->metrics, metric) == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--sort: evaluation %lld has no "
		    "metric '%s' (it has %s)", (long long)q->id, metric, r->eval->metrics);
	if (top > SHOW_PAGE_MAX || q->limit > SHOW_PAGE_MAX)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "at most %d examples at once",
		    SHOW_PAGE_MAX);
	r->sort = rpc_strdup(call, metric);
	better = eval_metric_higher_is_better(metric) ? 1 : -1;
	db = store_lock(call->d->store);
	if (r->eval->n_models >= 2) {
		rc |= examples_by_delta(call, db, q->id, metric, r->eval->n_models, better, 0, top,
		    &r->wins, &r->n_wins);
		rc |= examples_by_delta(call, db, q->id, metric, r->eval->n_models, -better, 0, top,
		    &r->losses, &r->n_losses);
	}
	rc |= examples_by_delta(call, db, q->id, metric, r->eval->n_models, 0, q->offset, q->limit,
	    &r->examples, &r->n_examples);
	store_unlock(call->d->store);
	if (rc != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot read the examples");
	rep->body_case = FT__REPLY__BODY_EVAL_SHOW;
	rep->eval_show = r;
	return FT__CODE__OK;
}

/* Text output for export, grown as needed. */
struct sbuf {
	char *p;
	size_t len;
	FILE *f;
};

static void
csv_field(FILE *f, const char *s, int last)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputs(last ? "\"\r\n" : "\",", f);
}

/* Markdown table cell: pipes escaped, line breaks as <br>. */
static void
md_cell(FILE *f, const char *s)
{
	fputc(' ', f);
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '\n')
			fputs("<br>", f);
		else if (*s != '\r')
			fputc(*s, f);
	}
	fputs(" |", f);
}

static void
export_summary_md(FILE *f, const Ft__EvalInfo *e)
{
	fprintf(f, "# Evaluation %lld%s%s\n\n", (long long)e->id, e->name[0] ? ": " : "", e->name);
	fprintf(f, "Dataset %s (blake2b %s), split %s, %u examples; template %s; max_new_tokens %u, "
	    "temperature %g, top_p %g, seed %llu.\n\n", e->dataset, e->dataset_blake2b, e->spec->split,
	    e->examples, e->spec->template_, e->spec->max_new_tokens, (double)e->spec->temperature,
	    (double)e->spec->top_p, (unsigned long long)e->spec->seed);
	for (size_t k = 0; k < e->n_models; k++)
		fprintf(f, "- model %zu: %s (id %lld)\n", k, e->models[k]->name, (long long)e->models[k]->id);
	fprintf(f, "\n| metric | model | mean | 95%% CI | vs | W/T/L |\n|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < e->n_stats; i++) {
		const Ft__EvalStat *s = e->stats[i];

		if (s->versus < 0)
			fprintf(f, "| %s | %s | %.4f | [%.4f, %.4f] | | |\n", s->metric,
			    e->models[s->model]->name, s->mean, s->lo, s->hi);
		else
			fprintf(f, "| %s | %s - %s | %+.4f | [%+.4f, %+.4f] | | %u/%u/%u |\n", s->metric,
			    e->models[s->model]->name, e->models[s->versus]->name, s->mean, s->lo, s->hi,
			    s->wins, s->ties, s->losses);
	}
	fputc('\n', f);
}

int
rpc_eval_export(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__EvalExportRequest *q = req->eval_export;
	Ft__EvalExportReply *r = rpc_alloc(call, sizeof(*r));
	Ft__EvalInfo *e;
	struct sbuf b = { NULL, 0, NULL };
	int fmt, code;
	sqlite3 *db;
	sqlite3_stmt *st;
	uint32_t n = 0;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	fmt = strcmp(q->format, "csv") == 0 ? 0 : strcmp(q->format, "jsonl") == 0 ? 1 :
	    strcmp(q->format, "md") == 0 ? 2 : -1;
	if (fmt < 0)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--format must be csv, jsonl or "
		    "md, not '%s'", q->format);
	if ((e = eval_info_get(call, q->id, &code)) == NULL)
		return rpc_error(call, rep, code, "no evaluation %lld", (long long)q->id);
	if ((b.f = open_memstream(&b.p, &b.len)) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (fmt == 2) {
		export_summary_md(b.f, e);
		fprintf(b.f, "| # | prompt | reference |");
		for (size_t k = 0; k < e->n_models; k++)
			fprintf(b.f, " %s |", e->models[k]->name);
		fprintf(b.f, " metrics |\n|---|---|---|");
		for (size_t k = 0; k <= e->n_models; k++)
			fprintf(b.f, "---|");
		fputc('\n', b.f);
	} else if (fmt == 0) {
		csv_field(b.f, "index", 0);
		csv_field(b.f, "prompt", 0);
		csv_field(b.f, "reference", 0);
		for (size_t k = 0; k < e->n_models; k++) {
			char head[160];

			snprintf(head, sizeof(head), "output:%s", e->models[k]->name);
			csv_field(b.f, head, 0);
		}
		csv_field(b.f, "metrics", 1);
	}
	db = store_lock(call->d->store);
	if (sqlite3_prepare_v2(db, "SELECT idx FROM eval_examples WHERE eval_id = ? ORDER BY idx", -1,
	    &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, q->id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			Ft__EvalExample *x = example_get(call, db, q->id, (uint32_t)sqlite3_column_int64(st, 0),
			    e->n_models, 0);
			char idx[16];

			if (x == NULL)
				break;
			n++;
			snprintf(idx, sizeof(idx), "%u", x->index);
			if (fmt == 0) {
				csv_field(b.f, idx, 0);
				csv_field(b.f, x->prompt, 0);
				csv_field(b.f, x->reference, 0);
				for (size_t k = 0; k < x->n_outputs; k++)
					csv_field(b.f, x->outputs[k], 0);
				csv_field(b.f, x->metrics_json, 1);
			} else if (fmt == 1) {
				json_t *outs = json_array(), *o;
				char *line;

				/* in model order: the same model may be evaluated twice */
				for (size_t k = 0; k < x->n_outputs; k++)
					json_array_append_new(outs, json_string(x->outputs[k]));
				o = json_pack("{s:I,s:s,s:s,s:o,s:o}", "index", (json_int_t)x->index, "prompt",
				    x->prompt, "reference", x->reference, "outputs", outs, "metrics",
				    json_loads(x->metrics_json, 0, NULL));
				line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
				if (line != NULL)
					fprintf(b.f, "%s\n", line);
				free(line);
				json_decref(o);
			} else {
				fprintf(b.f, "| %s |", idx);
				md_cell(b.f, x->prompt);
				md_cell(b.f, x->reference);
				for (size_t k = 0; k < x->n_outputs; k++)
					md_cell(b.f, x->outputs[k]);
				md_cell(b.f, x->metrics_json);
				fputc('\n', b.f);
			}
		}
		sqlite3_finalize(st);
	}
	store_unlock(call->d->store);
	fclose(b.f);
	if (b.p == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if ((int64_t)b.len + 4096 > call->d->cfg.rpc_max_message) {
		free(b.p);
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "the export is %zu bytes, over "
		    "rpc_max_message; export fewer examples", b.len);
	}
	ft__eval_export_reply__init(r);
	r->text = rpc_strdup(call, b.p);
	free(b.p);
	if (r->text == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_EVAL_EXPORT;
	rep->eval_export = r;
	return FT__CODE__OK;
}

/* Generate with stream: a session on the serving threads, with the same
 * sampler settings as the reply below so that the text is the same. */
static int
generate_open(struct rpc_call *call, const Ft__GenerateRequest *q, const struct model_info *mi,
    Ft__Reply *rep)
{
	Ft__GenerateReply *r = rpc_alloc(call, sizeof(*r));
	struct deploy_params p = { 0 };
	char err[512];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->genstream == NULL)
		return rpc_error(call, rep, FT__CODE__UNAVAILABLE, "streamed generation is not running");
	p.model = mi->name;
	p.model_id = mi->id;
	p.prompt = q->prompt;
	p.template_ = q->raw ? NULL : q->template_;
	p.max_tokens = q->max_new_tokens ? (int)q->max_new_tokens : 64;
	p.temperature = q->temperature;
	p.top_p = q->top_p > 0 ? q->top_p : 1;
	p.seed = q->seed ? q->seed : 1;
	ft__generate_reply__init(r);
	code = genstream_open(call->d->genstream, (uint32_t)call->uid, &p, &r->session, err,
	    sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	rep->body_case = FT__REPLY__BODY_GENERATE;
	rep->generate = r;
	return FT__CODE__OK;
}

int
rpc_generate_poll(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__GeneratePollRequest *q = req->generate_poll;
	Ft__GenerateReply *r = rpc_alloc(call, sizeof(*r));
	struct genstream_chunk c;
	char err[512];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->genstream == NULL)
		return rpc_error(call, rep, FT__CODE__UNAVAILABLE, "streamed generation is not running");
	code = genstream_poll(call->d->genstream, (uint32_t)call->uid, q->session, q->from_offset, &c,
	    err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__generate_reply__init(r);
	r->session = q->session;
	r->text = rpc_strdup(call, c.text);
	r->finish_reason = rpc_strdup(call, c.finish_reason);
	free(c.text);
	if (r->text == NULL || r->finish_reason == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	r->done = c.done;
	r->tokens = (uint32_t)c.tokens;
	r->prompt_tokens = (uint32_t)c.prompt_tokens;
	r->stopped_at_eos = c.done && strcmp(c.finish_reason, "stop") == 0;
	r->ms = c.ms;
	rep->body_case = FT__REPLY__BODY_GENERATE_POLL;
	rep->generate_poll = r;
	return FT__CODE__OK;
}

int
rpc_generate_cancel(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__Empty *r = rpc_alloc(call, sizeof(*r));
	char err[512];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->genstream == NULL)
		return rpc_error(call, rep, FT__CODE__UNAVAILABLE, "streamed generation is not running");
	code = genstream_cancel(call->d->genstream, (uint32_t)call->uid, req->generate_cancel->session,
	    err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__empty__init(r);
	rep->body_case = FT__REPLY__BODY_GENERATE_CANCEL;
	rep->generate_cancel = r;
	return FT__CODE__OK;
}

int
rpc_generate(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__GenerateRequest *q = req->generate;
	Ft__GenerateReply *r = rpc_alloc(call, sizeof(*r));
	struct model_info mi;
	fte_model *m = NULL;
	fte_tokenizer *tok = NULL;
	fte_template *tp = NULL;
	fte_sampler sm;
	int *ids = NULL, *out = NULL, n_out = 0, code = FT__CODE__OK;
	size_t n_ids = 0, len;
	char *text = NULL, err[1024];
	struct timespec t0, t1;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (q->max_new_tokens > GENERATE_MAX_NEW_TOKENS)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--max-new-tokens %u is over %d, "
		    "the most generate answers at once; queue an evaluation for longer outputs",
		    q->max_new_tokens, GENERATE_MAX_NEW_TOKENS);
	if (!(q->temperature >= 0 && q->temperature <= 2) || !(q->top_p >= 0 && q->top_p <= 1))
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--temperature must be in [0, 2] "
		    "and --top-p in (0, 1]");
	if (strlen(q->prompt) > GENERATE_MAX_PROMPT || strlen(q->template_) > GENERATE_MAX_PROMPT)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "the prompt and the template "
		    "may have at most %d bytes each", GENERATE_MAX_PROMPT);
	if (registry_model_find(call->d, q->model, &mi) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no model '%s'", q->model);
	if (q->stream) {
		code = generate_open(call, q, &mi, rep);
		model_info_free(&mi);
		return code;
	}
	if (mi.params > GENERATE_MAX_PARAMS) {
		code = rpc_error(call, rep, FT__CODE__FAILED_PRECONDITION, "model %s has %llu parameters; "
		    "generate runs on the control socket only for models up to %llu (use eval run for "
		    "larger ones)", mi.name, (unsigned long long)mi.params, GENERATE_MAX_PARAMS);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (registry_model_load(call->d, &mi, &m, err, sizeof(err)) != 0) {
		code = rpc_error(call, rep, FT__CODE__INTERNAL, "%s", err);
		goto out;
	}
	if (fte_tokenizer_load(mi.tokenizer, &tok) != FTE_OK) {
		code = rpc_error(call, rep, FT__CODE__INTERNAL, "loading %s: %s", mi.name, fte_last_error());
		goto out;
	}
	if (q->raw) {
		if (fte_tokenizer_encode(tok, q->prompt, strlen(q->prompt), 1, &ids, &n_ids) != FTE_OK) {
			code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "prompt: %s", fte_last_error());
			goto out;
		}
	} else {
		fte_record rec = { q->prompt, "", "" };

		if ((q->template_[0] == '\0' || strcmp(q->template_, "alpaca") == 0 ?
		    fte_template_alpaca(&tp) : fte_template_custom(q->template_, &tp)) != FTE_OK ||
		    fte_template_encode_prompt(tp, tok, &rec, &ids, &n_ids) != FTE_OK) {
			code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "template: %s",
			    fte_last_error());
			goto out;
		}
	}
	fte_sampler_default(&sm);
	sm.temperature = q->temperature;
	sm.top_p = q->top_p > 0 ? q->top_p : 1;
	sm.seed = q->seed ? q->seed : 1;
	sm.max_new_tokens = q->max_new_tokens ? (int)q->max_new_tokens : 64;
	if (n_ids == 0 || (int)n_ids >= fte_model_config(m)->max_seq_len) {
		code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "the prompt is %zu tokens; the "
		    "model's context is %d", n_ids, fte_model_config(m)->max_seq_len);
		goto out;
	}
	if ((out = malloc((size_t)sm.max_new_tokens * sizeof(int))) == NULL ||
	    fte_generate(m, ids, (int)n_ids, &sm, NULL, NULL, out, &n_out) != FTE_OK ||
	    fte_tokenizer_decode_flags(tok, out, (size_t)n_out, FTE_TOK_SKIP_SPECIAL, &text, &len) != FTE_OK) {
		code = rpc_error(call, rep, FT__CODE__INTERNAL, "generate: %s", fte_last_error());
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ft__generate_reply__init(r);
	r->text = rpc_strdup(call, text);
	r->tokens = (uint32_t)n_out;
	r->stopped_at_eos = n_out < sm.max_new_tokens &&
	    (int)n_ids + n_out < fte_model_config(m)->max_seq_len;
	r->done = 1;
	r->finish_reason = rpc_strdup(call, r->stopped_at_eos ? "stop" : "length");
	r->prompt_tokens = (uint32_t)n_ids;
	r->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (r->text == NULL || r->finish_reason == NULL) {
		code = rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	rep->body_case = FT__REPLY__BODY_GENERATE;
	rep->generate = r;
out:
	free(text);
	free(out);
	free(ids);
	fte_template_free(tp);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	model_info_free(&mi);
	return code;
}
