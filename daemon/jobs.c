/* jobs.c - job rows: insert, load, list, state changes, metrics, logs. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "evals.h"
#include "ft_enum.h"
#include "jobs.h"
#include "log.h"


int
jobs_insert_row(sqlite3 *db, Ft__JobKind kind, uint32_t uid, uint64_t request_id,
    const Ft__JobSpec *spec, int64_t base_id, int64_t dataset_id, int64_t general_id,
    uint64_t memory_bytes, int64_t *id)
{
	size_t len = ft__job_spec__get_packed_size(spec);
	uint8_t *buf = malloc(len ? len : 1);
	sqlite3_stmt *st;
	int code = FT__CODE__INTERNAL;

	if (buf == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__job_spec__pack(spec, buf);
	if (sqlite3_prepare_v2(db, "INSERT INTO jobs (owner_uid, state, priority, created_at, spec, "
	    "name, base_id, dataset_id, memory_bytes, request_id, general_id, kind) "
	    "VALUES (?, 'QUEUED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, uid);
		sqlite3_bind_int(st, 2, spec->priority);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		sqlite3_bind_blob(st, 4, buf, (int)len, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, spec->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, base_id);
		sqlite3_bind_int64(st, 7, dataset_id);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)memory_bytes);
		sqlite3_bind_int64(st, 9, (sqlite3_int64)request_id);
		if (general_id > 0)
			sqlite3_bind_int64(st, 10, general_id);
		if (store_bind_enum(st, 11, &ft__job_kind__descriptor, kind) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_DONE) {
			*id = sqlite3_last_insert_rowid(db);
			code = FT__CODE__OK;
		}
		sqlite3_finalize(st);
	}
	free(buf);
	return code;
}

int
jobs_insert(struct ftuned *d, uint32_t uid, uint64_t request_id, const Ft__JobSpec *spec,
    int64_t base_id, int64_t dataset_id, int64_t general_id, uint64_t memory_bytes, int64_t *id,
    char *err, size_t err_len)
{
	sqlite3 *db = store_lock(d->store);
	int code = jobs_insert_row(db, FT__JOB_KIND__JOB_KIND_TRAIN, uid, request_id, spec, base_id, dataset_id,
	    general_id, memory_bytes, id);

	if (code != FT__CODE__OK)
		snprintf(err, err_len, "jobs: %s", code == FT__CODE__INTERNAL ? sqlite3_errmsg(db) :
		    "out of memory");
	store_unlock(d->store);
	return code;
}

#define JOB_COLUMNS "j.id, j.spec, j.state, j.stage, j.owner_uid, j.created_at, j.started_at, " \
	"j.finished_at, j.base_id, j.dataset_id, j.step, j.total_steps, j.epoch, " \
	"j.checkpoint_step, j.loss, j.val_loss, j.base_val_loss, j.tokens_per_s, j.error, " \
	"m.name, j.memory_bytes, j.kind"
#define JOB_FROM " FROM jobs j LEFT JOIN models m ON m.id = j.result_model_id "

static double
column_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void
row_to_job(sqlite3_stmt *st, struct job_info *j)
{
	memset(j, 0, sizeof(*j));
	j->id = sqlite3_column_int64(st, 0);
	j->spec = ft__job_spec__unpack(NULL, (size_t)sqlite3_column_bytes(st, 1),
	    sqlite3_column_blob(st, 1));
	j->state = store_column_enum(st, 2, &ft__job_state__descriptor);
	snprintf(j->stage, sizeof(j->stage), "%s", sqlite3_column_text(st, 3));
	j->owner_uid = (uint32_t)sqlite3_column_int64(st, 4);
	j->created_at = sqlite3_column_int64(st, 5);
	j->started_at = sqlite3_column_int64(st, 6);
	j->finished_at = sqlite3_column_int64(st, 7);
	j->base_id = sqlite3_column_int64(st, 8);
	j->dataset_id = sqlite3_column_int64(st, 9);
	j->step = (uint32_t)sqlite3_column_int(st, 10);
	j->total_steps = (uint32_t)sqlite3_column_int(st, 11);
	j->epoch = (uint32_t)sqlite3_column_int(st, 12);
	j->checkpoint_step = (uint32_t)sqlite3_column_int(st, 13);
	j->loss = column_real(st, 14);
	j->val_loss = column_real(st, 15);
	j->base_val_loss = column_real(st, 16);
	j->tokens_per_s = column_real(st, 17);
	snprintf(j->error, sizeof(j->error), "%s", sqlite3_column_text(st, 18));
	if (sqlite3_column_type(st, 19) != SQLITE_NULL)
		snprintf(j->result_model, sizeof(j->result_model), "%s", sqlite3_column_text(st, 19));
	j->memory_bytes = (uint64_t)sqlite3_column_int64(st, 20);
	j->kind = store_column_enum(st, 21, &ft__job_kind__descriptor);
}

int
jobs_get(struct ftuned *d, int64_t id, struct job_info *out)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT " JOB_COLUMNS JOB_FROM "WHERE j.id = ?", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			row_to_job(st, out);
			rc = out->spec != NULL ? 0 : -1;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return rc;
}

int
jobs_list(struct ftuned *d, Ft__JobState state, uint32_t owner, int limit,
    struct job_info **out, size_t *n)
{
	sqlite3 *db = store_lock(d->store);
	struct job_info *list = NULL;
	sqlite3_stmt *st;
	size_t count = 0;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT " JOB_COLUMNS JOB_FROM "WHERE (?1 = '' OR j.state = ?1) "
	    "AND (?2 < 0 OR j.owner_uid = ?2) ORDER BY j.id DESC LIMIT ?3", -1, &st, NULL) == SQLITE_OK) {
		store_bind_enum(st, 1, &ft__job_state__descriptor, state);
		sqlite3_bind_int64(st, 2, owner == UINT32_MAX ? -1 : (sqlite3_int64)owner);
		sqlite3_bind_int(st, 3, limit);
		rc = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct job_info *nl = realloc(list, (count + 1) * sizeof(*nl));

			if (nl == NULL) {
				rc = -1;
				break;
			}
			list = nl;
			row_to_job(st, &list[count]);
			if (list[count].spec != NULL)
				count++;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	*out = list;
	*n = count;
	return rc;
}

static int64_t
query_int(struct ftuned *d, const char *sql, int64_t arg)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int64_t v = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, arg);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return v;
}

int64_t
jobs_find_request(struct ftuned *d, uint32_t uid, uint64_t request_id)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int64_t id = 0;

	if (sqlite3_prepare_v2(db, "SELECT id FROM jobs WHERE owner_uid = ? AND request_id = ?",
	    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, uid);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)request_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return id;
}

int64_t
jobs_next(struct ftuned *d)
{
	return query_int(d, "SELECT id FROM jobs WHERE state = 'QUEUED' AND ?1 = ?1 "
	    "ORDER BY priority DESC, id LIMIT 1", 0);
}

int
jobs_count_active(struct ftuned *d, uint32_t uid)
{
	return (int)query_int(d, "SELECT count(*) FROM jobs WHERE owner_uid = ? AND state IN "
	    "('QUEUED', 'RUNNING')", uid);
}

/* Runs one statement with bound values ('i' int64, 's' text, 'd' double,
 * NaN as NULL) on a locked connection; returns rows changed or -1. */
static int
vrun(sqlite3 *db, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st;
	int changed = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	for (int i = 0; types[i]; i++) {
		switch (types[i]) {
		case 'i': sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
		case 's': sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT); break;
		case 'd': {
			double v = va_arg(ap, double);

			if (isnan(v))
				sqlite3_bind_null(st, i + 1);
			else
				sqlite3_bind_double(st, i + 1, v);
			break;
		}
		}
	}
	if (sqlite3_step(st) == SQLITE_DONE)
		changed = sqlite3_changes(db);
	sqlite3_finalize(st);
	return changed;
}

static int
run(sqlite3 *db, const char *sql, const char *types, ...)
{
	va_list ap;
	int changed;

	va_start(ap, types);
	changed = vrun(db, sql, types, ap);
	va_end(ap);
	return changed;
}

/* Runs one UPDATE with bound values in its own transaction; returns rows
 * changed or -1. */
static int
update(struct ftuned *d, const char *sql, const char *types, ...)
{
	sqlite3 *db = store_lock(d->store);
	va_list ap;
	int changed;

	va_start(ap, types);
	changed = vrun(db, sql, types, ap);
	va_end(ap);
	if (changed < 0)
		log_error("jobs: %s", sqlite3_errmsg(db));
	store_unlock(d->store);
	return changed;
}

/* One int64 from a query with two int64 parameters on a locked connection;
 * def when there is no row or the value is NULL. */
static int64_t
get_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t def)
{
	sqlite3_stmt *st;
	int64_t v = def;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, a);
		sqlite3_bind_int64(st, 2, b);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	return v;
}

int
jobs_set_state(struct ftuned *d, int64_t id, enum job_state to, const char *error)
{
	int64_t now = (int64_t)time(NULL);
	char word[FT_ENUM_WORD_MAX];
	int n;

	if (ft_enum_word(&ft__job_state__descriptor, (int)to, word) == NULL || word[0] == '\0')
		return -1;
	if (to == JOB_RUNNING)
		n = update(d, "UPDATE jobs SET state = 'RUNNING', started_at = CASE WHEN started_at = 0 "
		    "THEN ?1 ELSE started_at END, stage = 'starting' WHERE id = ?2 AND state = 'QUEUED'",
		    "ii", now, id);
	else if (to == JOB_QUEUED)
		n = update(d, "UPDATE jobs SET state = 'QUEUED', stage = '' WHERE id = ?1 AND "
		    "state = 'RUNNING'", "i", id);
	else
		n = update(d, "UPDATE jobs SET state = ?1, finished_at = ?2, stage = '', error = ?3 "
		    "WHERE id = ?4 AND state IN ('QUEUED', 'RUNNING')", "sisi", word,
		    now, error ? error : "", id);
	return n == 1 ? 0 : -1;
}

void
jobs_set_stage(struct ftuned *d, int64_t id, const char *stage)
{
	update(d, "UPDATE jobs SET stage = ?1 WHERE id = ?2", "si", stage, id);
}

void
jobs_set_progress(struct ftuned *d, int64_t id, uint32_t step, uint32_t total, uint32_t epoch,
    double loss, double tokens_per_s)
{
	update(d, "UPDATE jobs SET step = ?1, total_steps = ?2, epoch = ?3, loss = ?4, "
	    "tokens_per_s = ?5 WHERE id = ?6", "iiiddi", (int64_t)step, (int64_t)total,
	    (int64_t)epoch, loss, tokens_per_s, id);
}

void
jobs_set_checkpoint(struct ftuned *d, int64_t id, uint32_t step)
{
	update(d, "UPDATE jobs SET checkpoint_step = ?1 WHERE id = ?2", "ii", (int64_t)step, id);
}

void
jobs_set_val_loss(struct ftuned *d, int64_t id, double val_loss, int is_base)
{
	update(d, is_base ? "UPDATE jobs SET base_val_loss = ?1 WHERE id = ?2" :
	    "UPDATE jobs SET val_loss = ?1 WHERE id = ?2", "di", val_loss, id);
}

void
jobs_set_result(struct ftuned *d, int64_t id, int64_t model_id)
{
	update(d, "UPDATE jobs SET result_model_id = ?1 WHERE id = ?2", "ii", model_id, id);
}

int
jobs_requeue_running(struct ftuned *d)
{
	return update(d, "UPDATE jobs SET state = 'QUEUED', stage = '' WHERE state = 'RUNNING' "
	    "AND ?1 = ?1", "i", (int64_t)0);
}

/*
 * Bounded metrics.  A job keeps at most cfg.metrics_max_per_job per-step
 * rows; validation rows are never dropped and not counted.  Every K =
 * cap/4 steps the rows are counted (so an insert costs one count per K
 * steps, not one each); above cap - K they are thinned to about cap/2 by
 * keeping the first, the last, and the steps that are multiples of the
 * smallest power of two that leaves no more.  That stride only grows, so
 * it is the same over the whole history: a long job's curve keeps its
 * shape at an even resolution.
 */
static int
metrics_bound(sqlite3 *db, int64_t id, uint32_t step, int64_t cap)
{
	int64_t k = cap / 4, stride = 1;

	if (step % k != 0 || get_int(db, "SELECT count(*) FROM metrics WHERE job_id = ?1 AND "
	    "val_loss IS NULL AND ?2 = ?2", id, 0, 0) <= cap - k)
		return 0;
	while ((int64_t)step / stride > cap / 2 - 2)
		stride *= 2;
	return run(db, "DELETE FROM metrics WHERE job_id = ?1 AND val_loss IS NULL AND "
	    "step % ?2 != 0 AND step < ?3 AND step > (SELECT min(step) FROM metrics "
	    "WHERE job_id = ?1 AND loss IS NOT NULL)", "iii", id, stride, (int64_t)step) < 0 ? -1 : 0;
}

void
jobs_metric_add(struct ftuned *d, int64_t id, uint32_t step, double loss, double lr,
    double grad_norm, double tokens_per_s)
{
	sqlite3 *db = store_lock(d->store);
	int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;

	if (ok && (run(db, "INSERT OR REPLACE INTO metrics (job_id, step, loss, lr, grad_norm, "
	    "tokens_per_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "iidddd", id, (int64_t)step, loss,
	    lr, grad_norm, tokens_per_s) != 1 ||
	    metrics_bound(db, id, step, d->cfg.metrics_max_per_job) != 0 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		ok = 0;
	}
	if (!ok)
		log_error("jobs: metrics of job %lld: %s", (long long)id, sqlite3_errmsg(db));
	store_unlock(d->store);
}

void
jobs_metric_val(struct ftuned *d, int64_t id, uint32_t step, double val_loss)
{
	update(d, "INSERT INTO metrics (job_id, step, val_loss) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT (job_id, step) DO UPDATE SET val_loss = excluded.val_loss",
	    "iid", id, (int64_t)step, val_loss);
}

int
jobs_metrics(struct ftuned *d, int64_t id, uint32_t after_step, uint32_t limit,
    Ft__Metric ***out, size_t *n)
{
	sqlite3 *db = store_lock(d->store);
	Ft__Metric **list = NULL;
	sqlite3_stmt *st;
	size_t count = 0;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT step, loss, lr, grad_norm, tokens_per_s, val_loss FROM "
	    "metrics WHERE job_id = ? AND step > ? ORDER BY step LIMIT ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, after_step);
		sqlite3_bind_int64(st, 3, limit ? limit : 100000);
		rc = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			Ft__Metric **nl = realloc(list, (count + 1) * sizeof(*nl));
			Ft__Metric *m = malloc(sizeof(*m));

			if (nl == NULL || m == NULL) {
				free(m);
				if (nl != NULL)
					list = nl;
				rc = -1;
				break;
			}
			list = nl;
			ft__metric__init(m);
			m->step = (uint32_t)sqlite3_column_int64(st, 0);
			m->loss = (float)column_real(st, 1);
			m->lr = (float)column_real(st, 2);
			m->grad_norm = (float)column_real(st, 3);
			m->tokens_per_s = (float)column_real(st, 4);
			m->val_loss = (float)column_real(st, 5);
			list[count++] = m;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	*out = list;
	*n = count;
	return rc;
}

void
jobs_metrics_free(Ft__Metric **m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i]);
	free(m);
}

/*
 * Bounded logs.  Above cfg.log_max_per_job lines a job's log is cut to
 * three quarters of it: the oldest info and debug lines go first, warn and
 * error lines only if those alone are too many.  One warn line, placed
 * where the newest dropped line was, says how many were dropped in all; it
 * replaces the previous such line.
 */
#define LOG_DROPPED "log_max_per_job: "

static int
logs_bound(sqlite3 *db, int64_t id, int64_t cap)
{
	int64_t n = get_int(db, "SELECT count(*) FROM job_logs WHERE job_id = ?1 AND ?2 = ?2",
	    id, 0, 0), keep = cap - cap / 4, dropped = 0, note = 0, at, r;
	unsigned long long before = 0;
	sqlite3_stmt *st;
	char msg[128];

	if (n <= cap)
		return 0;
	if (sqlite3_prepare_v2(db, "SELECT seq, message FROM job_logs WHERE job_id = ? AND "
	    "level = 'warn' AND substr(message, 1, ?) = '" LOG_DROPPED "'", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int(st, 2, (int)strlen(LOG_DROPPED));
		if (sqlite3_step(st) == SQLITE_ROW) {
			note = sqlite3_column_int64(st, 0);
			sscanf((const char *)sqlite3_column_text(st, 1), LOG_DROPPED "%llu", &before);
		}
		sqlite3_finalize(st);
	}
	if (note != 0) {
		if (run(db, "DELETE FROM job_logs WHERE seq = ?1", "i", note) != 1)
			return -1;
		n--;
	}
	/* Room for the note: keep - 1 lines besides it. */
	for (int pass = 0; pass < 2 && n > keep - 1; pass++) {
		const char *levels = pass == 0 ? "level IN ('info', 'debug')" : "1";
		char sql[256];

		snprintf(sql, sizeof(sql), "SELECT max(seq) FROM (SELECT seq FROM job_logs WHERE "
		    "job_id = ?1 AND %s ORDER BY seq LIMIT ?2)", levels);
		at = get_int(db, sql, id, n - (keep - 1), 0);
		if (at == 0)
			continue;
		snprintf(sql, sizeof(sql), "DELETE FROM job_logs WHERE job_id = ?1 AND %s AND "
		    "seq <= ?2", levels);
		if ((r = run(db, sql, "ii", id, at)) < 0)
			return -1;
		n -= r;
		dropped += r;
		note = at > note ? at : note;
	}
	snprintf(msg, sizeof(msg), LOG_DROPPED "%llu earlier lines dropped (oldest info and "
	    "debug first)", before + (unsigned long long)dropped);
	return run(db, "INSERT INTO job_logs (seq, job_id, time, level, message) VALUES "
	    "(?1, ?2, ?3, 'warn', ?4)", "iiis", note, id, (int64_t)time(NULL), msg) == 1 ? 0 : -1;
}

void
jobs_log(struct ftuned *d, int64_t id, const char *level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	sqlite3 *db;
	int ok;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(level, "error") == 0)
		log_error("job %lld: %s", (long long)id, msg);
	else
		log_info("job %lld: %s", (long long)id, msg);
	db = store_lock(d->store);
	ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	if (ok && (run(db, "INSERT INTO job_logs (job_id, time, level, message) VALUES "
	    "(?1, ?2, ?3, ?4)", "iiss", id, (int64_t)time(NULL), level, msg) != 1 ||
	    logs_bound(db, id, d->cfg.log_max_per_job) != 0 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		ok = 0;
	}
	if (!ok)
		log_error("jobs: log of job %lld: %s", (long long)id, sqlite3_errmsg(db));
	store_unlock(d->store);
}

int
jobs_logs(struct ftuned *d, int64_t id, int64_t after, uint32_t limit, Ft__LogLine ***out,
    size_t *n)
{
	sqlite3 *db = store_lock(d->store);
	Ft__LogLine **list = NULL;
	sqlite3_stmt *st;
	size_t count = 0;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT seq, time, level, message FROM job_logs WHERE job_id = ? "
	    "AND seq > ? ORDER BY seq LIMIT ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, after);
		sqlite3_bind_int64(st, 3, limit ? limit : 1000);
		rc = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			Ft__LogLine **nl = realloc(list, (count + 1) * sizeof(*nl));
			const char *lv = (const char *)sqlite3_column_text(st, 2);
			const char *msg = (const char *)sqlite3_column_text(st, 3);
			size_t lvn = strlen(lv) + 1, msgn = strlen(msg) + 1;
			Ft__LogLine *l = malloc(sizeof(*l) + lvn + msgn);

			if (nl == NULL || l == NULL) {
				free(l);
				if (nl != NULL)
					list = nl;
				rc = -1;
				break;
			}
			list = nl;
			ft__log_line__init(l);
			l->seq = sqlite3_column_int64(st, 0);
			l->time = sqlite3_column_int64(st, 1);
			l->level = (char *)(l + 1);
			memcpy(l->level, lv, lvn);
			l->message = l->level + lvn;
			memcpy(l->message, msg, msgn);
			list[count++] = l;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	*out = list;
	*n = count;
	return rc;
}

void
jobs_logs_free(Ft__LogLine **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

void
job_info_free(struct job_info *j)
{
	if (j->spec != NULL)
		ft__job_spec__free_unpacked(j->spec, NULL);
	j->spec = NULL;
}

/* ---- links from other tables' rows ---- */

/* The first column of sql's one row with ?1 bound to id; -1 on error. */
static int64_t
count_of(sqlite3 *db, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int64_t
jobs_active_with_model(sqlite3 *db, int64_t model_id)
{
	/* Training jobs name their base; evaluations every model they compare. */
	return count_of(db, "SELECT count(*) FROM jobs j WHERE j.state IN ('QUEUED', 'RUNNING') "
	    "AND (j.base_id = ?1 OR EXISTS (SELECT 1 FROM evals e JOIN eval_models em ON "
	    "em.eval_id = e.id WHERE e.job_id = j.id AND em.model_id = ?1))", model_id);
}

int64_t
jobs_active_with_dataset(sqlite3 *db, int64_t dataset_id)
{
	return count_of(db, "SELECT count(*) FROM jobs j WHERE j.state IN ('QUEUED', 'RUNNING') "
	    "AND (j.dataset_id = ?1 OR j.general_id = ?1 OR EXISTS (SELECT 1 FROM evals e WHERE "
	    "e.job_id = j.id AND e.dataset_id = ?1))", dataset_id);
}

/* Runs each of sql with ?1 bound to id; 0, or -1 at the first failure. */
static int
exec_each(sqlite3 *db, const char *const *sql, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st;
		int ok = sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) == SQLITE_OK;

		if (ok) {
			sqlite3_bind_int64(st, 1, id);
			ok = sqlite3_step(st) == SQLITE_DONE;
			sqlite3_finalize(st);
		}
		if (!ok)
			return -1;
	}
	return 0;
}

int
jobs_unlink_model(sqlite3 *db, int64_t model_id)
{
	static const char *const sql[] = {
		"UPDATE jobs SET base_id = NULL WHERE base_id = ?1",
		"UPDATE jobs SET result_model_id = NULL WHERE result_model_id = ?1",
	};

	return exec_each(db, sql, sizeof(sql) / sizeof(sql[0]), model_id);
}

int
jobs_unlink_dataset(sqlite3 *db, int64_t dataset_id)
{
	static const char *const sql[] = {
		"UPDATE jobs SET dataset_id = NULL WHERE dataset_id = ?1",
	};

	return exec_each(db, sql, sizeof(sql) / sizeof(sql[0]), dataset_id);
}

/* ---- reply objects ---- */

int
jobs_info_proto(struct arena *a, const struct job_info *j, Ft__JobInfo **out)
{
	ProtobufCAllocator pa = arena_allocator(a);
	Ft__JobInfo *p = arena_alloc(a, sizeof(*p));

	if (p == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__job_info__init(p);
	p->id = j->id;
	p->spec = j->spec ? (Ft__JobSpec *)ft_message_copy(&j->spec->base, &pa) : NULL;
	p->state = (Ft__JobState)j->state;
	p->stage = arena_strdup(a, j->stage);
	p->kind = j->kind;
	p->owner_uid = j->owner_uid;
	p->created_at = j->created_at;
	p->started_at = j->started_at;
	p->finished_at = j->finished_at;
	p->base_id = j->base_id;
	p->dataset_id = j->dataset_id;
	p->step = j->step;
	p->total_steps = j->total_steps;
	p->epoch = j->epoch;
	p->loss = (float)j->loss;
	p->val_loss = (float)j->val_loss;
	p->base_val_loss = (float)j->base_val_loss;
	p->tokens_per_s = isnan(j->tokens_per_s) ? 0 : (float)j->tokens_per_s;
	p->error = arena_strdup(a, j->error);
	p->result_model = arena_strdup(a, j->result_model);
	p->memory_bytes = j->memory_bytes;
	p->checkpoint_step = j->checkpoint_step;
	/* time per step so far times the steps left */
	p->eta_s = NAN;
	if (j->state == JOB_RUNNING && j->step > 0 && j->total_steps > j->step &&
	    j->started_at != 0)
		p->eta_s = difftime(time(NULL), (time_t)j->started_at) / j->step *
		    (j->total_steps - j->step);
	if (p->spec == NULL || p->stage == NULL ||
	    p->error == NULL || p->result_model == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	*out = p;
	return FT__CODE__OK;
}

int
jobs_reply(struct ftuned *d, struct arena *a, int64_t id, Ft__JobReply **out)
{
	Ft__JobReply *r = arena_alloc(a, sizeof(*r));
	struct job_info j;
	int code;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (jobs_get(d, id, &j) != 0)
		return FT__CODE__NOT_FOUND;
	ft__job_reply__init(r);
	code = jobs_info_proto(a, &j, &r->job);
	job_info_free(&j);
	if (code == FT__CODE__OK) {
		code = evals_refs(store_lock(d->store), a, id, &r->job->evals, &r->job->n_evals);
		store_unlock(d->store);
	}
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}

int
jobs_list_reply(struct ftuned *d, struct arena *a, Ft__JobState state, uint32_t owner, int limit,
    Ft__JobListReply **out)
{
	Ft__JobListReply *r = arena_alloc(a, sizeof(*r));
	struct job_info *list;
	size_t n;
	int code = FT__CODE__OK;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (jobs_list(d, state, owner, limit, &list, &n) != 0)
		return FT__CODE__INTERNAL;
	ft__job_list_reply__init(r);
	if ((r->jobs = arena_alloc(a, (n + 1) * sizeof(*r->jobs))) == NULL)
		code = FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < n; i++) {
		if (code == FT__CODE__OK &&
		    (code = jobs_info_proto(a, &list[i], &r->jobs[r->n_jobs])) == FT__CODE__OK)
			r->n_jobs++;
		job_info_free(&list[i]);
	}
	free(list);
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}

int
jobs_metrics_reply(struct ftuned *d, struct arena *a, int64_t id, uint32_t after, uint32_t limit,
    Ft__JobMetricsReply **out)
{
	Ft__JobMetricsReply *r = arena_alloc(a, sizeof(*r));
	Ft__Metric **list;
	struct job_info j;
	size_t n;
	int code;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (jobs_get(d, id, &j) != 0)
		return FT__CODE__NOT_FOUND;
	ft__job_metrics_reply__init(r);
	/* The job row first: a step it reports is already in the metrics. */
	code = jobs_info_proto(a, &j, &r->job);
	job_info_free(&j);
	if (code != FT__CODE__OK)
		return code;
	if (jobs_metrics(d, id, after, limit, &list, &n) != 0) {
		jobs_metrics_free(list, n);
		return FT__CODE__INTERNAL;
	}
	if ((r->metrics = arena_alloc(a, (n + 1) * sizeof(*r->metrics))) == NULL)
		code = FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; code == FT__CODE__OK && i < n; i++) {
		Ft__Metric *m = arena_alloc(a, sizeof(*m));

		if (m == NULL) {
			code = FT__CODE__RESOURCE_EXHAUSTED;
			break;
		}
		*m = *list[i];
		r->metrics[r->n_metrics++] = m;
	}
	jobs_metrics_free(list, n);
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}

int
jobs_logs_reply(struct ftuned *d, struct arena *a, int64_t id, int64_t after, uint32_t limit,
    Ft__JobLogsReply **out)
{
	Ft__JobLogsReply *r = arena_alloc(a, sizeof(*r));
	Ft__LogLine **list;
	struct job_info j;
	size_t n;
	int code = FT__CODE__OK;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (jobs_get(d, id, &j) != 0)
		return FT__CODE__NOT_FOUND;
	job_info_free(&j);
	if (jobs_logs(d, id, after, limit, &list, &n) != 0) {
		jobs_logs_free(list, n);
		return FT__CODE__INTERNAL;
	}
	ft__job_logs_reply__init(r);
	if ((r->lines = arena_alloc(a, (n + 1) * sizeof(*r->lines))) == NULL)
		code = FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; code == FT__CODE__OK && i < n; i++) {
		Ft__LogLine *l = arena_alloc(a, sizeof(*l));

		if (l == NULL || (*l = *list[i], l->level = arena_strdup(a, list[i]->level)) == NULL ||
		    (l->message = arena_strdup(a, list[i]->message)) == NULL) {
			code = FT__CODE__RESOURCE_EXHAUSTED;
			break;
		}
		r->lines[r->n_lines++] = l;
	}
	jobs_logs_free(list, n);
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}
