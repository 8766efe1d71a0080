/*
 * evals.c - the evaluation tables (evals.h): the runner's writes, and the
 * reads into ft.proto's objects.
 *
 * An example's "gain" on a metric is the last model's value minus the
 * first's, times -1 where lower is better, so every order below is one
 * SQL expression whatever the metric's direction.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "eval_job.h"
#include "eval_metrics.h"
#include "evals.h"
#include "log.h"
#include "registry.h"

#define EVAL_COLUMNS "e.id, e.job_id, e.name, e.owner_uid, e.created_at, e.spec, " \
	"e.dataset_name, e.dataset_hash, e.examples, e.done, e.examples_per_s, e.metrics, " \
	"j.state, j.stage, j.error, e.dataset_id"
#define EVAL_FROM " FROM evals e JOIN jobs j ON j.id = e.job_id "

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

/* The models of evaluation p, in their order; hashes only with detail. */
static int
models_read(sqlite3 *db, struct arena *a, Ft__EvalInfo *p, int detail)
{
	sqlite3_stmt *q;
	int rc = FT__CODE__OK;

	if (sqlite3_prepare_v2(db, "SELECT name, model_id, hashes FROM eval_models WHERE eval_id = ? "
	    "ORDER BY idx", -1, &q, NULL) != SQLITE_OK)
		return FT__CODE__INTERNAL;
	sqlite3_bind_int64(q, 1, p->id);
	if ((p->models = arena_alloc(a, EVAL_MAX_MODELS * sizeof(*p->models))) == NULL)
		rc = FT__CODE__RESOURCE_EXHAUSTED;
	while (rc == FT__CODE__OK && sqlite3_step(q) == SQLITE_ROW && p->n_models < EVAL_MAX_MODELS) {
		Ft__EvalModel *m = arena_alloc(a, sizeof(*m));

		if (m == NULL) {
			rc = FT__CODE__RESOURCE_EXHAUSTED;
			break;
		}
		ft__eval_model__init(m);
		m->name = arena_strdup(a, col_text(q, 0));
		m->id = sqlite3_column_int64(q, 1);
		m->hashes_json = arena_strdup(a, detail ? col_text(q, 2) : "");
		if (m->name == NULL || m->hashes_json == NULL)
			rc = FT__CODE__RESOURCE_EXHAUSTED;
		p->models[p->n_models++] = m;
	}
	sqlite3_finalize(q);
	return rc;
}

/* The summary statistics of evaluation p, in the order they were stored. */
static int
stats_read(sqlite3 *db, struct arena *a, Ft__EvalInfo *p)
{
	sqlite3_stmt *q;
	size_t cap = 0;
	int rc = FT__CODE__OK;

	if (sqlite3_prepare_v2(db, "SELECT metric, model_idx, versus, mean, lo, hi, wins, ties, "
	    "losses, n, higher_is_better FROM eval_stats WHERE eval_id = ? ORDER BY rowid", -1, &q,
	    NULL) != SQLITE_OK)
		return FT__CODE__INTERNAL;
	sqlite3_bind_int64(q, 1, p->id);
	while (rc == FT__CODE__OK && sqlite3_step(q) == SQLITE_ROW) {
		Ft__EvalStat *s = arena_alloc(a, sizeof(*s));

		if (p->n_stats == cap) {
			Ft__EvalStat **grown = arena_alloc(a, (cap ? 2 * cap : 16) * sizeof(*grown));

			if (grown == NULL) {
				rc = FT__CODE__RESOURCE_EXHAUSTED;
				break;
			}
			if (p->n_stats > 0)
				memcpy(grown, p->stats, p->n_stats * sizeof(*grown));
			p->stats = grown;
			cap = cap ? 2 * cap : 16;
		}
		if (s == NULL || (ft__eval_stat__init(s), s->metric = arena_strdup(a, col_text(q, 0))) == NULL) {
			rc = FT__CODE__RESOURCE_EXHAUSTED;
			break;
		}
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
		p->stats[p->n_stats++] = s;
	}
	sqlite3_finalize(q);
	return rc;
}

/* One EvalInfo from a row of EVAL_COLUMNS. */
static int
info_row(sqlite3 *db, struct arena *a, sqlite3_stmt *st, int detail, Ft__EvalInfo **out)
{
	ProtobufCAllocator pa = arena_allocator(a);
	Ft__EvalInfo *p = arena_alloc(a, sizeof(*p));
	int rc;

	if (p == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__eval_info__init(p);
	p->id = sqlite3_column_int64(st, 0);
	p->job_id = sqlite3_column_int64(st, 1);
	p->name = arena_strdup(a, col_text(st, 2));
	p->owner_uid = (uint32_t)sqlite3_column_int64(st, 3);
	p->created_at = sqlite3_column_int64(st, 4);
	p->spec = ft__eval_spec__unpack(&pa, (size_t)sqlite3_column_bytes(st, 5),
	    sqlite3_column_blob(st, 5));
	p->dataset = arena_strdup(a, col_text(st, 6));
	p->dataset_blake2b = arena_strdup(a, col_text(st, 7));
	p->examples = (uint32_t)sqlite3_column_int64(st, 8);
	p->done = (uint32_t)sqlite3_column_int64(st, 9);
	/* NULL until the run has measured it */
	p->examples_per_s = sqlite3_column_type(st, 10) == SQLITE_NULL ? NAN :
	    sqlite3_column_double(st, 10);
	p->metrics = arena_strdup(a, col_text(st, 11));
	p->state = (Ft__JobState)store_column_enum(st, 12, &ft__job_state__descriptor);
	p->stage = arena_strdup(a, col_text(st, 13));
	p->error = arena_strdup(a, col_text(st, 14));
	p->dataset_id = sqlite3_column_int64(st, 15);
	if (p->name == NULL || p->spec == NULL || p->dataset == NULL || p->dataset_blake2b == NULL ||
	    p->metrics == NULL || p->stage == NULL || p->error == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if ((rc = models_read(db, a, p, detail)) != FT__CODE__OK ||
	    (detail && (rc = stats_read(db, a, p)) != FT__CODE__OK))
		return rc;
	*out = p;
	return FT__CODE__OK;
}

int
evals_get(sqlite3 *db, struct arena *a, int64_t id, int detail, Ft__EvalInfo **out)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT " EVAL_COLUMNS EVAL_FROM "WHERE e.id = ?", -1, &st,
	    NULL) != SQLITE_OK)
		return FT__CODE__INTERNAL;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? info_row(db, a, st, detail, out) :
	    rc == SQLITE_DONE ? FT__CODE__NOT_FOUND : FT__CODE__INTERNAL;
	sqlite3_finalize(st);
	return rc;
}

int
evals_list(sqlite3 *db, struct arena *a, int all_users, uint32_t uid, size_t max,
    Ft__EvalInfo ***out, size_t *n)
{
	Ft__EvalInfo **list = arena_alloc(a, (max ? max : 1) * sizeof(*list));
	sqlite3_stmt *st;
	int rc = FT__CODE__OK, step = SQLITE_DONE;

	if (list == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (sqlite3_prepare_v2(db, "SELECT " EVAL_COLUMNS EVAL_FROM
	    "WHERE ?1 OR e.owner_uid = ?2 ORDER BY e.id DESC LIMIT ?3", -1, &st, NULL) != SQLITE_OK)
		return FT__CODE__INTERNAL;
	sqlite3_bind_int(st, 1, all_users != 0);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
	*n = 0;
	while (rc == FT__CODE__OK && (step = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = info_row(db, a, st, 0, &list[*n])) == FT__CODE__OK)
			(*n)++;
	if (rc == FT__CODE__OK && step != SQLITE_DONE)
		rc = FT__CODE__INTERNAL;
	sqlite3_finalize(st);
	*out = list;
	return rc;
}

/* Example idx's prompt, reference, outputs (one per model, "" where a model
 * has none yet) and metric values as {"metric": [value or null per model]}. */
static int
example_read(sqlite3 *db, struct arena *a, int64_t eval_id, uint32_t idx,
    size_t n_models, Ft__EvalExample *x)
{
	json_t *values = json_object();
	sqlite3_stmt *st;
	char *s;
	int rc = FT__CODE__INTERNAL;

	x->index = idx;
	x->outputs = arena_alloc(a, (n_models + 1) * sizeof(*x->outputs));
	for (size_t k = 0; x->outputs != NULL && k < n_models; k++)
		x->outputs[k] = arena_strdup(a, "");
	x->n_outputs = x->outputs ? n_models : 0;
	if (values == NULL || sqlite3_prepare_v2(db, "SELECT prompt, reference FROM eval_examples "
	    "WHERE eval_id = ? AND idx = ?", -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, eval_id);
	sqlite3_bind_int64(st, 2, idx);
	if (sqlite3_step(st) == SQLITE_ROW) {
		x->prompt = arena_strdup(a, col_text(st, 0));
		x->reference = arena_strdup(a, col_text(st, 1));
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT model_idx, output FROM eval_outputs WHERE eval_id = ? AND "
	    "idx = ?", -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, eval_id);
	sqlite3_bind_int64(st, 2, idx);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int k = sqlite3_column_int(st, 0);

		if (k >= 0 && (size_t)k < x->n_outputs)
			x->outputs[k] = arena_strdup(a, col_text(st, 1));
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT metric, model_idx, value FROM eval_values WHERE "
	    "eval_id = ? AND idx = ? ORDER BY rowid", -1, &st, NULL) != SQLITE_OK)
		goto out;
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
	s = json_dumps(values, JSON_COMPACT | JSON_REAL_PRECISION(10));
	x->metrics_json = s ? arena_strdup(a, s) : NULL;
	free(s);
	rc = FT__CODE__OK;
	for (size_t k = 0; k < x->n_outputs; k++)
		if (x->outputs[k] == NULL)
			rc = FT__CODE__RESOURCE_EXHAUSTED;
	if (x->prompt == NULL || x->reference == NULL || x->outputs == NULL || x->metrics_json == NULL)
		rc = FT__CODE__RESOURCE_EXHAUSTED;
out:
	json_decref(values);
	return rc;
}

/* The examples' filter (?2 the text, ?3 its LIKE pattern), and the delta
 * (?4 the metric, ?5 the last model's index). */
#define EXAMPLE_FILTER \
	"x.eval_id = ?1 AND (?2 = '' OR x.prompt LIKE ?3 ESCAPE '\\' OR " \
	"x.reference LIKE ?3 ESCAPE '\\' OR EXISTS (SELECT 1 FROM eval_outputs o " \
	"WHERE o.eval_id = x.eval_id AND o.idx = x.idx AND o.output LIKE ?3 ESCAPE '\\'))"
#define EXAMPLE_DELTA \
	"(SELECT b.value - a.value FROM eval_values a, eval_values b WHERE " \
	"a.eval_id = x.eval_id AND a.idx = x.idx AND a.metric = ?4 AND a.model_idx = 0 AND " \
	"b.eval_id = x.eval_id AND b.idx = x.idx AND b.metric = ?4 AND b.model_idx = ?5)"

/* LIKE pattern for a substring, with its wildcards escaped by '\'. */
static void
like_pattern(const char *s, char *out, size_t len)
{
	size_t o = 0;

	out[o++] = '%';
	for (; *s && o + 3 < len; s++) {
		if (*s == '%' || *s == '_' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '%';
	out[o] = '\0';
}

static void
page_bind(sqlite3_stmt *st, const Ft__EvalInfo *e, const struct evals_page *p, const char *like)
{
	sqlite3_bind_int64(st, 1, e->id);
	sqlite3_bind_text(st, 2, p->filter, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, like, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, p->metric, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, e->n_models > 0 ? (sqlite3_int64)e->n_models - 1 : 0);
	sqlite3_bind_int(st, 6, p->higher_is_better ? 1 : -1);
}

int
evals_examples(sqlite3 *db, struct arena *a, const Ft__EvalInfo *e,
    const struct evals_page *p, Ft__EvalExample ***out, size_t *n, int64_t *total)
{
	/* Indexed by enum evals_order: which examples, and in what order. */
	static const struct { const char *where, *order; } orders[] = {
		[EVALS_ORDER_WINS] = { "gain > 0", "gain DESC," },
		[EVALS_ORDER_LOSSES] = { "gain < 0", "gain ASC," },
		[EVALS_ORDER_CHANGE] = { "gain IS NOT NULL", "abs(gain) DESC," },
		[EVALS_ORDER_IMPROVEMENT] = { "1", "gain IS NULL, gain DESC," },
		[EVALS_ORDER_REGRESSION] = { "1", "gain IS NULL, gain ASC," },
		[EVALS_ORDER_INDEX] = { "1", "" },
	};
	char like[2 * 256 + 4], sql[1536];
	Ft__EvalExample **list;
	sqlite3_stmt *st;
	int rc = FT__CODE__OK, step = SQLITE_DONE;

	*n = 0;
	*total = 0;
	if (strlen(p->filter) > 256)
		return FT__CODE__INVALID_ARGUMENT;
	like_pattern(p->filter, like, sizeof(like));
	/* the inner query names each example's delta and gain once */
	snprintf(sql, sizeof(sql), "SELECT idx, delta FROM (SELECT x.idx AS idx, " EXAMPLE_DELTA
	    " AS delta, ?6 * " EXAMPLE_DELTA " AS gain FROM eval_examples x WHERE " EXAMPLE_FILTER
	    ") WHERE %s ORDER BY %s idx", orders[p->order].where, orders[p->order].order);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return FT__CODE__INTERNAL;
	page_bind(st, e, p, like);
	/* one pass: count every admitted example, keep the page's */
	list = arena_alloc(a, (p->limit ? p->limit : 1) * sizeof(*list));
	if (list == NULL)
		rc = FT__CODE__RESOURCE_EXHAUSTED;
	while (rc == FT__CODE__OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		Ft__EvalExample *x;

		if ((*total)++ < p->offset || *n >= p->limit)
			continue;
		if ((x = arena_alloc(a, sizeof(*x))) == NULL) {
			rc = FT__CODE__RESOURCE_EXHAUSTED;
			break;
		}
		ft__eval_example__init(x);
		x->delta = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
		if ((rc = example_read(db, a, e->id, (uint32_t)sqlite3_column_int64(st, 0), e->n_models,
		    x)) == FT__CODE__OK)
			list[(*n)++] = x;
	}
	if (rc == FT__CODE__OK && step != SQLITE_DONE)
		rc = FT__CODE__INTERNAL;
	sqlite3_finalize(st);
	*out = list;
	return rc;
}

/* ---- the evaluation's refs, for its training job ---- */

int
evals_refs(sqlite3 *db, struct arena *a, int64_t train_job, Ft__EvalRef ***out, size_t *n)
{
	Ft__EvalRef **list = NULL;
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc = FT__CODE__OK, step;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, "SELECT e.id, e.job_id, e.name, j.state FROM evals e JOIN jobs j "
	    "ON j.id = e.job_id WHERE e.train_job_id = ? ORDER BY e.id", -1, &st, NULL) != SQLITE_OK)
		return FT__CODE__INTERNAL;
	sqlite3_bind_int64(st, 1, train_job);
	while (rc == FT__CODE__OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		Ft__EvalRef *r = arena_alloc(a, sizeof(*r));

		if (*n == cap) {
			Ft__EvalRef **grown = arena_alloc(a, (cap ? 2 * cap : 4) * sizeof(*grown));

			if (grown == NULL) {
				rc = FT__CODE__RESOURCE_EXHAUSTED;
				break;
			}
			if (*n > 0)
				memcpy(grown, list, *n * sizeof(*grown));
			list = grown;
			cap = cap ? 2 * cap : 4;
		}
		if (r == NULL) {
			rc = FT__CODE__RESOURCE_EXHAUSTED;
			break;
		}
		ft__eval_ref__init(r);
		r->id = sqlite3_column_int64(st, 0);
		r->job_id = sqlite3_column_int64(st, 1);
		r->name = arena_strdup(a, col_text(st, 2));
		r->state = (Ft__JobState)store_column_enum(st, 3, &ft__job_state__descriptor);
		if (r->name == NULL)
			rc = FT__CODE__RESOURCE_EXHAUSTED;
		list[(*n)++] = r;
	}
	if (rc == FT__CODE__OK && step != SQLITE_DONE)
		rc = FT__CODE__INTERNAL;
	sqlite3_finalize(st);
	*out = list;
	return rc;
}

/* ---- writes ---- */

static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
evals_insert(sqlite3 *db, int64_t job_id, const struct evals_new *e, int64_t *eval_id)
{
	const Ft__EvalSpec *s = e->spec;
	size_t len = ft__eval_spec__get_packed_size(s);
	uint8_t *buf = malloc(len + 1);
	sqlite3_stmt *st;
	int64_t eid;

	if (buf == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__eval_spec__pack(s, buf);
	if (sqlite3_prepare_v2(db, "INSERT INTO evals (job_id, name, owner_uid, created_at, spec, "
	    "dataset_id, dataset_name, dataset_hash, metrics, train_job_id) VALUES (?, ?, ?, ?, ?, ?, "
	    "?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		free(buf);
		return FT__CODE__INTERNAL;
	}
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, e->uid);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	sqlite3_bind_blob(st, 5, buf, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, e->ds->id);
	sqlite3_bind_text(st, 7, e->ds->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, e->ds->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, s->metrics, -1, SQLITE_STATIC);
	if (e->train_job > 0)
		sqlite3_bind_int64(st, 10, e->train_job);
	if (step_done(st) != 0) {
		free(buf);
		return FT__CODE__INTERNAL;
	}
	free(buf);
	eid = sqlite3_last_insert_rowid(db);
	for (size_t i = 0; i < e->n_models; i++) {
		char *h = registry_model_hashes_json(&e->models[i]);

		if (h == NULL)
			return FT__CODE__RESOURCE_EXHAUSTED;
		if (sqlite3_prepare_v2(db, "INSERT INTO eval_models (eval_id, idx, model_id, name, "
		    "hashes) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
			free(h);
			return FT__CODE__INTERNAL;
		}
		sqlite3_bind_int64(st, 1, eid);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_int64(st, 3, e->models[i].id);
		sqlite3_bind_text(st, 4, e->models[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, h, -1, SQLITE_TRANSIENT);
		free(h);
		if (step_done(st) != 0)
			return FT__CODE__INTERNAL;
	}
	*eval_id = eid;
	return FT__CODE__OK;
}

void
evals_run_free(struct evals_run *e)
{
	if (e->spec != NULL)
		ft__eval_spec__free_unpacked(e->spec, NULL);
	for (size_t i = 0; i < e->n_models; i++)
		free(e->models[i].hashes);
}

int
evals_run_load(struct ftuned *d, int64_t job_id, struct evals_run *e)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int rc = -1;

	memset(e, 0, sizeof(*e));
	if (sqlite3_prepare_v2(db, "SELECT id, spec, dataset_id, dataset_hash FROM evals WHERE "
	    "job_id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, job_id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			e->id = sqlite3_column_int64(st, 0);
			e->spec = ft__eval_spec__unpack(NULL, (size_t)sqlite3_column_bytes(st, 1),
			    sqlite3_column_blob(st, 1));
			e->dataset_id = sqlite3_column_int64(st, 2);
			snprintf(e->dataset_hash, sizeof(e->dataset_hash), "%s", col_text(st, 3));
			rc = e->spec != NULL ? 0 : -1;
		}
		sqlite3_finalize(st);
	}
	if (rc == 0 && sqlite3_prepare_v2(db, "SELECT model_id, name, hashes FROM eval_models "
	    "WHERE eval_id = ? ORDER BY idx", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, e->id);
		while (sqlite3_step(st) == SQLITE_ROW && e->n_models < EVAL_MAX_MODELS) {
			struct evals_run_model *m = &e->models[e->n_models++];

			m->model_id = sqlite3_column_int64(st, 0);
			snprintf(m->name, sizeof(m->name), "%s", col_text(st, 1));
			m->hashes = strdup(col_text(st, 2));
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return rc == 0 && e->n_models > 0 ? 0 : -1;
}

/* Runs sql with ?1 bound to the evaluation's id. */
static void
evals_exec(struct ftuned *d, const char *sql, int64_t eval_id)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, eval_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_warn("eval %lld: %s", (long long)eval_id, sqlite3_errmsg(db));
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
}

void
evals_reset(struct ftuned *d, int64_t eval_id)
{
	evals_exec(d, "DELETE FROM eval_examples WHERE eval_id = ?1", eval_id);
	evals_exec(d, "DELETE FROM eval_outputs WHERE eval_id = ?1", eval_id);
	evals_exec(d, "DELETE FROM eval_values WHERE eval_id = ?1", eval_id);
	evals_exec(d, "DELETE FROM eval_stats WHERE eval_id = ?1", eval_id);
	evals_exec(d, "UPDATE evals SET done = 0, examples_per_s = NULL WHERE id = ?1", eval_id);
}

void
evals_set_progress(struct ftuned *d, int64_t eval_id, const char *metrics, uint32_t examples,
    uint32_t done, double rate)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "UPDATE evals SET metrics = ?, examples = ?, done = ?, "
	    "examples_per_s = ? WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, metrics, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, examples);
		sqlite3_bind_int64(st, 3, done);
		if (isfinite(rate))
			sqlite3_bind_double(st, 4, rate);
		sqlite3_bind_int64(st, 5, eval_id);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
}

int
evals_store_output(struct ftuned *d, int64_t eval_id, uint32_t idx, uint32_t model_idx,
    const char *prompt, const char *reference, const char *output, const double *values,
    unsigned set)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (model_idx == 0) {
		if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO eval_examples (eval_id, idx, prompt, "
		    "reference) VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
			goto rollback;
		sqlite3_bind_int64(st, 1, eval_id);
		sqlite3_bind_int64(st, 2, idx);
		sqlite3_bind_text(st, 3, prompt, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, reference, -1, SQLITE_STATIC);
		if (step_done(st) != 0)
			goto rollback;
	}
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO eval_outputs (eval_id, idx, model_idx, "
	    "output) VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_int64(st, 1, eval_id);
	sqlite3_bind_int64(st, 2, idx);
	sqlite3_bind_int64(st, 3, model_idx);
	sqlite3_bind_text(st, 4, output, -1, SQLITE_STATIC);
	if (step_done(st) != 0)
		goto rollback;
	for (int m = 0; m < EVAL_M_COUNT; m++) {
		if (!(set & (1u << m)) || !isfinite(values[m]))
			continue;
		if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO eval_values (eval_id, idx, model_idx, "
		    "metric, value) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
			goto rollback;
		sqlite3_bind_int64(st, 1, eval_id);
		sqlite3_bind_int64(st, 2, idx);
		sqlite3_bind_int64(st, 3, model_idx);
		sqlite3_bind_text(st, 4, eval_metrics[m].name, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 5, values[m]);
		if (step_done(st) != 0)
			goto rollback;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
		rc = 0;
		goto out;
	}
rollback:
	log_warn("eval %lld: storing example %u: %s", (long long)eval_id, idx, sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	store_unlock(d->store);
	return rc;
}

int
evals_store_stat(struct ftuned *d, int64_t eval_id, const char *metric, int model, int versus,
    const struct eval_ci *ci, const struct eval_wtl *w, size_t n)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO eval_stats (eval_id, metric, model_idx, "
	    "versus, mean, lo, hi, wins, ties, losses, n, higher_is_better) VALUES "
	    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, eval_id);
		sqlite3_bind_text(st, 2, metric, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, model);
		sqlite3_bind_int(st, 4, versus);
		sqlite3_bind_double(st, 5, ci->mean);
		sqlite3_bind_double(st, 6, ci->lo);
		sqlite3_bind_double(st, 7, ci->hi);
		sqlite3_bind_int64(st, 8, w ? w->wins : 0);
		sqlite3_bind_int64(st, 9, w ? w->ties : 0);
		sqlite3_bind_int64(st, 10, w ? w->losses : 0);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)n);
		sqlite3_bind_int(st, 12, eval_metric_higher_is_better(metric));
		rc = step_done(st);
	}
	store_unlock(d->store);
	return rc;
}
