/*
 * web_eval.c - evaluations in the dashboard API, read from the tables
 * eval_job.c writes (store.c, schema 4): the list, one evaluation with its
 * summary (each model's mean and each paired difference with its interval
 * and wins/ties/losses, exactly the rows `ftctl eval show` reads), and the
 * examples side by side, sorted by how much the last model improved on the
 * first for one metric, filtered by text, one page at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "web_api.h"

#define EXAMPLES_PAGE_MAX 100
#define FILTER_MAX 200

/* The columns every evaluation view shows, with its job's state. */
#define EVAL_COLUMNS "e.id, e.job_id, e.name, e.owner_uid, e.created_at, e.dataset_id, " \
	"e.dataset_name, e.dataset_hash, e.metrics, e.examples, e.done, e.examples_per_s, " \
	"j.state, j.error"

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

/* "a,b,c" as ["a", "b", "c"]. */
static json_t *
split_list(const char *s)
{
	json_t *arr = json_array();

	while (*s) {
		size_t n = strcspn(s, ",");

		if (n > 0)
			json_array_append_new(arr, json_stringn(s, n));
		s += n + (s[n] == ',');
	}
	return arr;
}

static json_t *
eval_row(sqlite3 *db, sqlite3_stmt *st)
{
	int64_t id = sqlite3_column_int64(st, 0);
	json_t *models = json_array();
	sqlite3_stmt *ms;

	if (sqlite3_prepare_v2(db, "SELECT idx, model_id, name, hashes FROM eval_models "
	    "WHERE eval_id = ? ORDER BY idx", -1, &ms, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(ms, 1, id);
		while (sqlite3_step(ms) == SQLITE_ROW) {
			json_t *hashes = json_loads(col_text(ms, 3), 0, NULL);

			json_array_append_new(models, json_pack("{s:i,s:I,s:s,s:o}",
			    "index", sqlite3_column_int(ms, 0),
			    "id", (json_int_t)sqlite3_column_int64(ms, 1), "name", col_text(ms, 2),
			    "hashes", hashes ? hashes : json_object()));
		}
		sqlite3_finalize(ms);
	}
	return json_pack("{s:I,s:I,s:s,s:I,s:I,s:I,s:s,s:s,s:o,s:I,s:I,s:o,s:s,s:o,s:o}",
	    "id", (json_int_t)id, "job_id", (json_int_t)sqlite3_column_int64(st, 1),
	    "name", col_text(st, 2), "owner_uid", (json_int_t)sqlite3_column_int64(st, 3),
	    "created_at", (json_int_t)sqlite3_column_int64(st, 4),
	    "dataset_id", (json_int_t)sqlite3_column_int64(st, 5),
	    "dataset", col_text(st, 6), "dataset_blake2b", col_text(st, 7),
	    "metrics", split_list(col_text(st, 8)),
	    "examples", (json_int_t)sqlite3_column_int64(st, 9),
	    "done", (json_int_t)sqlite3_column_int64(st, 10),
	    "examples_per_s", sqlite3_column_type(st, 11) == SQLITE_NULL ? json_null() :
	    web_json_num(sqlite3_column_double(st, 11)),
	    "state", col_text(st, 12), "error", web_json_text(col_text(st, 13)),
	    "models", models);
}

void
web_eval_list(struct mg_connection *conn, struct ftuned *d)
{
	sqlite3 *db = store_lock(d->store);
	json_t *arr = json_array();
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT " EVAL_COLUMNS " FROM evals e JOIN jobs j "
	    "ON j.id = e.job_id ORDER BY e.id DESC LIMIT ?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(st, 1, WEB_API_PAGE_MAX);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			json_array_append_new(arr, eval_row(db, st));
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		web_send_error(conn, 500, "cannot list evaluations");
		return;
	}
	web_send_json(conn, 200, json_pack("{s:o}", "evals", arr));
}

/* Loads evaluation id's row into *out (with db locked): 1 found, 0 none,
 * -1 on a database error. */
static int
eval_load(sqlite3 *db, int64_t id, json_t **out)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT " EVAL_COLUMNS " FROM evals e JOIN jobs j "
	    "ON j.id = e.job_id WHERE e.id = ?", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = eval_row(db, st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

void
web_eval_show(struct mg_connection *conn, struct ftuned *d, int64_t id)
{
	sqlite3 *db = store_lock(d->store);
	json_t *e = NULL, *stats = json_array(), *order = json_array();
	sqlite3_stmt *st;
	int found = eval_load(db, id, &e);

	if (found == 1 && sqlite3_prepare_v2(db, "SELECT metric, model_idx, versus, mean, lo, hi, "
	    "wins, ties, losses, n, higher_is_better FROM eval_stats WHERE eval_id = ? "
	    "ORDER BY rowid", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *metric = col_text(st, 0);
			size_t i;
			json_t *v;

			json_array_foreach(order, i, v)
				if (strcmp(json_string_value(v), metric) == 0)
					break;
			if (i == json_array_size(order))
				json_array_append_new(order, json_string(metric));
			json_array_append_new(stats, json_pack("{s:s,s:i,s:i,s:o,s:o,s:o,s:i,s:i,s:i,"
			    "s:i,s:b}", "metric", metric, "model", sqlite3_column_int(st, 1),
			    "versus", sqlite3_column_int(st, 2),
			    "mean", web_json_num(sqlite3_column_double(st, 3)),
			    "lo", web_json_num(sqlite3_column_double(st, 4)),
			    "hi", web_json_num(sqlite3_column_double(st, 5)),
			    "wins", sqlite3_column_int(st, 6), "ties", sqlite3_column_int(st, 7),
			    "losses", sqlite3_column_int(st, 8), "n", sqlite3_column_int(st, 9),
			    "higher_is_better", sqlite3_column_int(st, 10)));
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	if (found != 1) {
		json_decref(stats);
		json_decref(order);
		web_send_error(conn, found == 0 ? 404 : 500, found == 0 ? "no such evaluation" :
		    "cannot read the evaluation");
		return;
	}
	json_object_set_new(e, "summary_metrics", order);
	json_object_set_new(e, "stats", stats);
	web_send_json(conn, 200, e);
}

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

/* The examples' filter, shared by the count and the page. */
#define EXAMPLE_FILTER \
	"e.eval_id = ?1 AND (?2 = '' OR e.prompt LIKE ?3 ESCAPE '\\' OR " \
	"e.reference LIKE ?3 ESCAPE '\\' OR EXISTS (SELECT 1 FROM eval_outputs o " \
	"WHERE o.eval_id = e.eval_id AND o.idx = e.idx AND o.output LIKE ?3 ESCAPE '\\'))"

/* delta: the metric of the last model minus the first's on the example. */
#define EXAMPLE_DELTA \
	"(SELECT b.value - a.value FROM eval_values a, eval_values b WHERE " \
	"a.eval_id = e.eval_id AND a.idx = e.idx AND a.metric = ?4 AND a.model_idx = 0 AND " \
	"b.eval_id = e.eval_id AND b.idx = e.idx AND b.metric = ?4 AND b.model_idx = ?5)"

static void
bind_filter(sqlite3_stmt *st, int64_t id, const char *q, const char *like)
{
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, q, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, like, -1, SQLITE_STATIC);
}

/* Whether metric improves upward, as the summary recorded it (1 when
 * there is no summary yet). */
static int
higher_is_better(sqlite3 *db, int64_t id, const char *metric)
{
	sqlite3_stmt *st;
	int v = 1;

	if (sqlite3_prepare_v2(db, "SELECT higher_is_better FROM eval_stats WHERE eval_id = ? "
	    "AND metric = ? LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return v;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, metric, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* One example with each model's output and every metric's values. */
static json_t *
example_json(sqlite3 *db, int64_t id, sqlite3_stmt *row)
{
	int idx = sqlite3_column_int(row, 0);
	json_t *outputs = json_array(), *metrics = json_object();
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "SELECT output FROM eval_outputs WHERE eval_id = ? AND idx = ? "
	    "ORDER BY model_idx", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int(st, 2, idx);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(outputs, web_json_text(col_text(st, 0)));
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db, "SELECT metric, model_idx, value FROM eval_values "
	    "WHERE eval_id = ? AND idx = ? ORDER BY metric, model_idx", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int(st, 2, idx);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *m = col_text(st, 0);
			json_t *vals = json_object_get(metrics, m);

			if (vals == NULL) {
				vals = json_array();
				json_object_set_new(metrics, m, vals);
			}
			json_array_append_new(vals, web_json_num(sqlite3_column_double(st, 2)));
		}
		sqlite3_finalize(st);
	}
	return json_pack("{s:i,s:o,s:o,s:o,s:o,s:o}", "index", idx,
	    "prompt", web_json_text(col_text(row, 1)), "reference", web_json_text(col_text(row, 2)),
	    "outputs", outputs, "metrics", metrics,
	    "delta", sqlite3_column_type(row, 3) == SQLITE_NULL ? json_null() :
	    web_json_num(sqlite3_column_double(row, 3)));
}

void
web_eval_examples(struct mg_connection *conn, struct ftuned *d, int64_t id, struct web_query *q)
{
	char metric[32] = "", sort[16] = "improvement", text[FILTER_MAX + 1] = "";
	char like[2 * FILTER_MAX + 4], sql[1024];
	uint64_t offset = 0, limit = 20;
	json_t *e = NULL, *arr;
	int64_t total = 0;
	sqlite3_stmt *st;
	sqlite3 *db;
	int found, last, hib, better, rc = SQLITE_ERROR;

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
	like_pattern(text, like, sizeof(like));
	db = store_lock(d->store);
	if ((found = eval_load(db, id, &e)) != 1) {
		store_unlock(d->store);
		web_send_error(conn, found == 0 ? 404 : 500, found == 0 ? "no such evaluation" :
		    "cannot read the evaluation");
		return;
	}
	last = (int)json_array_size(json_object_get(e, "models")) - 1;
	if (metric[0] == '\0' && json_array_size(json_object_get(e, "metrics")) > 0)
		snprintf(metric, sizeof(metric), "%s",
		    json_string_value(json_array_get(json_object_get(e, "metrics"), 0)));
	hib = higher_is_better(db, id, metric);
	better = hib ? 1 : -1;
	if (strcmp(sort, "regression") == 0)
		better = -better;
	/* Largest change in the chosen direction first; examples without the
	 * metric last; dataset order breaks ties. */
	snprintf(sql, sizeof(sql), "SELECT e.idx, e.prompt, e.reference, " EXAMPLE_DELTA " AS delta "
	    "FROM eval_examples e WHERE " EXAMPLE_FILTER " ORDER BY %s e.idx LIMIT ?6 OFFSET ?7",
	    strcmp(sort, "index") == 0 ? "" : better > 0 ? "delta IS NULL, delta DESC," :
	    "delta IS NULL, delta ASC,");
	arr = json_array();
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM eval_examples e WHERE " EXAMPLE_FILTER,
	    -1, &st, NULL) == SQLITE_OK) {
		bind_filter(st, id, text, like);
		if (sqlite3_step(st) == SQLITE_ROW)
			total = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	}
	if (rc == SQLITE_OK) {
		bind_filter(st, id, text, like);
		sqlite3_bind_text(st, 4, metric, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, last);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)limit);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)offset);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			json_array_append_new(arr, example_json(db, id, st));
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	json_decref(e);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		web_send_error(conn, 500, "cannot read the examples");
		return;
	}
	web_send_json(conn, 200, json_pack("{s:I,s:I,s:I,s:o,s:b,s:s,s:o,s:o}", "total",
	    (json_int_t)total, "offset", (json_int_t)offset, "limit", (json_int_t)limit,
	    "metric", web_json_text(metric), "higher_is_better", hib, "sort", sort,
	    "q", web_json_text(text), "examples", arr));
}
