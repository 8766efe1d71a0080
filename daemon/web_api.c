/*
 * web_api.c - the dashboard's JSON API: status, jobs (with metrics, logs
 * and checkpoints), models (with lineage), datasets (with stats and
 * samples), API keys (with usage); evaluations, read from their tables,
 * are in web_eval.c.
 * Every endpoint reads through the same modules the RPCs use; nothing here
 * writes state.  Unknown ids answer 404 JSON, malformed query
 * values 400, and every page size is capped at WEB_API_PAGE_MAX.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "chat_template.h"
#include "datasets.h"
#include "deploy.h"
#include "eval_job.h"
#include "jobs.h"
#include "registry.h"
#include "tokcache.h"
#include "web_api.h"

#define SAMPLE_MAX 50          /* dataset samples per page */
#define SAMPLE_LINE_MAX 65536  /* a longer record is shown truncated */
#define LINEAGE_DEPTH_MAX 64   /* guards the base chain against a cycle */

void
web_send_json(struct mg_connection *conn, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	size_t len;

	if (text == NULL) {
		status = 500;
		text = strdup("{\"error\":{\"code\":500,\"message\":\"out of memory\"}}");
	}
	len = text ? strlen(text) : 0;
	mg_printf(conn, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    WEB_SECURITY_HEADERS "\r\n"
	    "Connection: close\r\n\r\n",
	    status, mg_get_response_code_text(conn, status), len);
	if (text != NULL && strcmp(mg_get_request_info(conn)->request_method, "HEAD") != 0)
		mg_write(conn, text, len);
	free(text);
	json_decref(body);
}

void
web_send_error(struct mg_connection *conn, int status, const char *message)
{
	web_send_json(conn, status, json_pack("{s:{s:i,s:s}}", "error", "code",
	    status, "message", message));
}

json_t *
web_json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

int
web_query_str(struct web_query *q, const char *key, char *out, size_t len)
{
	char buf[512];
	int rc;

	if (q->qs == NULL)
		return 0;
	/* Decoded into buf, so a missing or bad key leaves out's default. */
	rc = web_query_find(q->qs, q->len, key, buf, len < sizeof(buf) ? len : sizeof(buf));
	if (rc < 0 && q->bad[0] == '\0')
		snprintf(q->bad, sizeof(q->bad), rc == -2 ? "query parameter '%s' is given more "
		    "than once" : "query parameter '%s' is malformed or too long", key);
	if (rc <= 0)
		return 0;
	memcpy(out, buf, strlen(buf) + 1);
	return 1;
}

void
web_query_uint(struct web_query *q, const char *key, uint64_t max, uint64_t *out)
{
	char buf[32], *end;
	unsigned long long v;

	if (!web_query_str(q, key, buf, sizeof(buf)))
		return;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (buf[0] < '0' || buf[0] > '9' || *end != '\0' || errno != 0 || v > max) {
		if (q->bad[0] == '\0')
			snprintf(q->bad, sizeof(q->bad), "query parameter '%s' must be an "
			    "integer in [0, %llu]", key, (unsigned long long)max);
		return;
	}
	*out = v;
}

/* The estimate ftctl shows: time per step so far times the steps left. */
static json_t *
job_eta(const struct job_info *j)
{
	if (strcmp(j->state, "RUNNING") != 0 || j->step == 0 || j->total_steps <= j->step ||
	    j->started_at == 0)
		return json_null();
	return json_real(difftime(time(NULL), (time_t)j->started_at) / j->step *
	    (j->total_steps - j->step));
}

static json_t *
job_to_json(struct ftuned *d, const struct job_info *j)
{
	char kind[16];

	jobs_kind(d, j->id, kind, sizeof(kind));
	return json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,"
	    "s:I,s:o,s:s,s:I,s:I,s:I,s:o}",
	    "id", (json_int_t)j->id, "kind", kind, "state", j->state, "stage", j->stage,
	    "owner_uid", (json_int_t)j->owner_uid, "created_at", (json_int_t)j->created_at,
	    "started_at", (json_int_t)j->started_at, "finished_at", (json_int_t)j->finished_at,
	    "step", (json_int_t)j->step, "total_steps", (json_int_t)j->total_steps,
	    "epoch", (json_int_t)j->epoch, "loss", web_json_num(j->loss),
	    "val_loss", web_json_num(j->val_loss), "base_val_loss", web_json_num(j->base_val_loss),
	    "tokens_per_s", web_json_num(j->tokens_per_s), "eta_s", job_eta(j),
	    "checkpoint_step", (json_int_t)j->checkpoint_step, "error", ft_json_text(j->error),
	    "result_model", j->result_model, "memory_bytes", (json_int_t)j->memory_bytes,
	    "base_id", (json_int_t)j->base_id, "dataset_id", (json_int_t)j->dataset_id,
	    "spec", j->spec ? ft_json_message(&j->spec->base) : json_null());
}

static void
api_status(struct mg_connection *conn, struct ftuned *d)
{
	struct ft_status st;

	if (ftuned_status_collect(d, &st) != 0) {
		web_send_error(conn, 500, "state database unreadable");
		return;
	}
	web_send_json(conn, 200, json_pack("{s:s,s:I,s:i,s:s,s:I,s:I,s:s,s:s,s:I}",
	    "version", st.version,
	    "uptime_ms", (json_int_t)st.uptime_ms,
	    "pid", st.pid,
	    "state_dir", st.state_dir,
	    "queue_length", (json_int_t)st.queue_length,
	    "training_threads", (json_int_t)st.training_threads,
	    "http_url", st.http_url,
	    "socket_url", st.socket_url,
	    "schema_version", (json_int_t)st.schema_version));
}

/* API keys with their usage, revoked ones included; never a key or its
 * hash (deploy.c keeps only the hash, and deploy_key_info carries none).
 * Only the caller's own, as ftctl key list, unless it is an admin. */
static void
api_keys(struct mg_connection *conn, struct ftuned *d, const struct web_caller *who)
{
	struct deploy_key_info *v;
	json_t *arr;
	size_t n;

	if (deploy_key_list(d, who->uid, who->admin, &v, &n) != 0) {
		web_send_error(conn, 500, "cannot list API keys");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "name",
		    v[i].name, "owner_uid", (json_int_t)v[i].owner_uid, "created_at",
		    (json_int_t)v[i].created_at, "revoked_at", (json_int_t)v[i].revoked_at,
		    "last_used_at", (json_int_t)v[i].last_used_at, "requests",
		    (json_int_t)v[i].requests, "tokens", (json_int_t)v[i].tokens));
	free(v);
	web_send_json(conn, 200, json_pack("{s:o}", "keys", arr));
}

static void
api_jobs(struct mg_connection *conn, struct ftuned *d, struct web_query *q)
{
	static const char *states[] = { "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED" };
	char state[16] = "";
	uint64_t user = UINT32_MAX, limit = 100;
	struct job_info *list;
	json_t *arr;
	size_t n, i;

	web_query_str(q, "state", state, sizeof(state));
	web_query_uint(q, "user", UINT32_MAX - 1, &user);
	web_query_uint(q, "limit", WEB_API_PAGE_MAX, &limit);
	for (i = 0; state[0] && i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(state, states[i]) == 0)
			break;
	if (q->bad[0] == '\0' && i == sizeof(states) / sizeof(states[0]))
		snprintf(q->bad, sizeof(q->bad), "state must be one of QUEUED, RUNNING, "
		    "SUCCEEDED, FAILED, CANCELLED");
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if (jobs_list(d, state, (uint32_t)user, (int)limit, &list, &n) != 0) {
		web_send_error(conn, 500, "cannot list jobs");
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++) {
		json_array_append_new(arr, job_to_json(d, &list[i]));
		job_info_free(&list[i]);
	}
	free(list);
	web_send_json(conn, 200, json_pack("{s:o}", "jobs", arr));
}

/* Checkpoints on disk now: a job keeps the newest few while it runs and
 * deletes them when it finishes (checkpoint_step still says the last). */
static json_t *
job_checkpoints(struct ftuned *d, int64_t id)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	json_t *arr = json_array();
	struct dirent *e;
	struct stat sb;
	DIR *dh;
	int step;

	snprintf(dir, sizeof(dir), "%s/jobs/%lld", d->cfg.state_dir, (long long)id);
	if ((dh = opendir(dir)) == NULL)
		return arr;
	while ((e = readdir(dh)) != NULL) {
		char tail;

		if (sscanf(e->d_name, "checkpoint-%d.bi%c", &step, &tail) != 2 || tail != 'n')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &sb) != 0)
			continue;
		json_array_append_new(arr, json_pack("{s:i,s:s,s:I,s:I}", "step", step,
		    "file", e->d_name, "size", (json_int_t)sb.st_size,
		    "mtime", (json_int_t)sb.st_mtime));
	}
	closedir(dh);
	return arr;
}

/* The name behind a model or dataset id, for links; "" when it is gone. */
static json_t *
model_name(struct ftuned *d, int64_t id)
{
	struct model_info m;
	char buf[32];
	json_t *v;

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	if (id <= 0 || registry_model_find(d, buf, &m) != 0)
		return json_string("");
	v = json_string(m.name);
	model_info_free(&m);
	return v;
}

static json_t *
dataset_name(struct ftuned *d, int64_t id)
{
	struct dataset_info di;
	char buf[32];
	json_t *v;

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	if (id <= 0 || datasets_find(d, buf, &di) != 0)
		return json_string("");
	v = json_string(di.name);
	dataset_info_free(&di);
	return v;
}

/* The evaluations a training job queued after it succeeded. */
static json_t *
job_evaluations(struct ftuned *d, int64_t id)
{
	struct eval_ref *refs;
	json_t *arr = json_array();
	size_t n;

	if (eval_refs_of_job(d, id, &refs, &n) != 0)
		return arr;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:s,s:I,s:s}", "id", (json_int_t)refs[i].id,
		    "name", refs[i].name, "job_id", (json_int_t)refs[i].job_id, "state",
		    refs[i].state));
	free(refs);
	return arr;
}

static void
api_job(struct mg_connection *conn, struct ftuned *d, int64_t id)
{
	struct job_info j;
	json_t *o;

	if (jobs_get(d, id, &j) != 0) {
		web_send_error(conn, 404, "no such job");
		return;
	}
	o = job_to_json(d, &j);
	json_object_set_new(o, "base_model", model_name(d, j.base_id));
	json_object_set_new(o, "dataset", dataset_name(d, j.dataset_id));
	json_object_set_new(o, "checkpoints", job_checkpoints(d, id));
	json_object_set_new(o, "evaluations", job_evaluations(d, id));
	job_info_free(&j);
	web_send_json(conn, 200, o);
}

static void
api_job_metrics(struct mg_connection *conn, struct ftuned *d, int64_t id, struct web_query *q)
{
	uint64_t after = 0, limit = 10000;
	Ft__Metric **list;
	struct job_info j;
	json_t *arr, *o;
	size_t n;

	web_query_uint(q, "after", UINT32_MAX, &after);
	web_query_uint(q, "limit", 10000, &limit);
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if (jobs_get(d, id, &j) != 0) {
		web_send_error(conn, 404, "no such job");
		return;
	}
	/* The job row first: a step it reports is already in the metrics. */
	o = json_pack("{s:I,s:s,s:I,s:I,s:o}", "id", (json_int_t)id, "state", j.state,
	    "step", (json_int_t)j.step, "total_steps", (json_int_t)j.total_steps,
	    "eta_s", job_eta(&j));
	job_info_free(&j);
	if (jobs_metrics(d, id, (uint32_t)after, limit ? (uint32_t)limit : 1, &list, &n) != 0) {
		json_decref(o);
		web_send_error(conn, 500, "cannot read metrics");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}",
		    "step", (json_int_t)list[i]->step, "loss", web_json_num(list[i]->loss),
		    "lr", web_json_num(list[i]->lr), "grad_norm", web_json_num(list[i]->grad_norm),
		    "tokens_per_s", web_json_num(list[i]->tokens_per_s),
		    "val_loss", web_json_num(list[i]->val_loss)));
	jobs_metrics_free(list, n);
	web_send_json(conn, 200, json_pack("{s:o,s:o}", "job", o, "metrics", arr));
}

static void
api_job_logs(struct mg_connection *conn, struct ftuned *d, int64_t id, struct web_query *q)
{
	uint64_t after = 0, limit = WEB_API_PAGE_MAX;
	Ft__LogLine **list;
	struct job_info j;
	json_t *arr;
	size_t n;

	web_query_uint(q, "after", INT64_MAX, &after);
	web_query_uint(q, "limit", WEB_API_PAGE_MAX, &limit);
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if (jobs_get(d, id, &j) != 0) {
		web_send_error(conn, 404, "no such job");
		return;
	}
	job_info_free(&j);
	if (jobs_logs(d, id, (int64_t)after, limit ? (uint32_t)limit : 1, &list, &n) != 0) {
		web_send_error(conn, 500, "cannot read the log");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:o}",
		    "seq", (json_int_t)list[i]->seq, "time", (json_int_t)list[i]->time,
		    "level", list[i]->level, "message", ft_json_text(list[i]->message)));
	jobs_logs_free(list, n);
	web_send_json(conn, 200, json_pack("{s:o}", "lines", arr));
}

static json_t *
model_summary(const struct model_info *m)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:I,s:I}",
	    "id", (json_int_t)m->id, "name", m->name, "kind", m->kind, "format", m->format,
	    "arch", m->arch, "params", (json_int_t)m->params, "size", (json_int_t)m->size,
	    "owner_uid", (json_int_t)m->owner_uid, "created_at", (json_int_t)m->created_at,
	    "base_model", m->base_name, "base_id", (json_int_t)m->base_id,
	    "job_id", (json_int_t)m->job_id);
}

static void
api_models(struct mg_connection *conn, struct ftuned *d)
{
	struct model_info *list;
	json_t *arr;
	size_t n;

	if (registry_model_list(d, &list, &n) != 0) {
		web_send_error(conn, 500, "cannot list models");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, model_summary(&list[i]));
		model_info_free(&list[i]);
	}
	free(list);
	web_send_json(conn, 200, json_pack("{s:o}", "models", arr));
}

/* A parsed lineage or stats column; a row that is not JSON shows as null. */
static json_t *
json_column(const char *text)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;

	return v ? v : json_null();
}

/* A field of a lineage object (a new reference), or null when absent. */
static json_t *
lineage_field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return v ? json_incref(v) : json_null();
}

/* The tuned models derived from list[at], recursively, each with the job
 * and dataset between it and its parent. */
static json_t *
model_descendants(const struct model_info *list, size_t n, size_t at, int depth)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n && depth < LINEAGE_DEPTH_MAX; i++) {
		json_t *node, *lin;

		if (list[i].base_id != list[at].id || i == at)
			continue;
		node = model_summary(&list[i]);
		lin = json_column(list[i].lineage_json);
		json_object_set_new(node, "dataset",
		    lineage_field(json_object_get(lin, "dataset"), "name"));
		json_object_set_new(node, "type", lineage_field(lin, "type"));
		json_object_set_new(node, "method", lineage_field(lin, "method"));
		json_decref(lin);
		json_object_set_new(node, "children", model_descendants(list, n, i, depth + 1));
		json_array_append_new(arr, node);
	}
	return arr;
}

/* Commands that export the model, as text to copy: ftengine reads the
 * registry's model directory directly. */
static json_t *
model_exports(const struct model_info *m)
{
	char tok[PATH_MAX + 16] = "", line[3 * PATH_MAX];
	json_t *arr = json_array();

	if (strcmp(m->format, "lora") == 0) {
		/* An adapter is not a model ftengine can open alone: the daemon
		 * assembles it on its base. */
		static const char *const formats[] = { "peft", "hf", "gguf" };

		for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
			snprintf(line, sizeof(line), "ftctl model export '%s' --format %s --out "
			    "'%s-%s'", m->name, formats[i], m->name, formats[i]);
			json_array_append_new(arr, json_string(line));
		}
	} else if (strcmp(m->format, "llama2c") == 0)
		snprintf(tok, sizeof(tok), " --tokenizer '%s'", m->tokenizer);
	if (strcmp(m->format, "lora") != 0) {
		snprintf(line, sizeof(line), "ftengine export --model '%s'%s --format gguf "
		    "--dtype f16 --out '%s.gguf'", m->entry, tok, m->name);
		json_array_append_new(arr, json_string(line));
		snprintf(line, sizeof(line), "ftengine export --model '%s'%s --format hf "
		    "--dtype bf16 --out '%s-hf'", m->entry, tok, m->name);
		json_array_append_new(arr, json_string(line));
	}
	snprintf(line, sizeof(line), "ftctl model show '%s' --json", m->name);
	json_array_append_new(arr, json_string(line));
	return arr;
}

static void
api_model(struct mg_connection *conn, struct ftuned *d, const char *name)
{
	struct model_info *list;
	json_t *o, *files, *chain;
	size_t n, at;
	int64_t base;

	if (registry_model_list(d, &list, &n) != 0) {
		web_send_error(conn, 500, "cannot list models");
		return;
	}
	for (at = 0; at < n; at++) {
		char idbuf[32];

		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)list[at].id);
		if (strcmp(list[at].name, name) == 0 || strcmp(idbuf, name) == 0)
			break;
	}
	if (at == n) {
		for (size_t i = 0; i < n; i++)
			model_info_free(&list[i]);
		free(list);
		web_send_error(conn, 404, "no such model");
		return;
	}
	const struct model_info *m = &list[at];

	o = model_summary(m);
	files = json_array();
	for (size_t i = 0; i < m->n_files; i++)
		json_array_append_new(files, json_pack("{s:s,s:s,s:I}", "name", m->files[i].name,
		    "blake2b", m->files[i].hash, "size", (json_int_t)m->files[i].size));
	/* The base chain, this model first, then its base, up to a base model. */
	chain = json_array();
	base = m->id;
	for (int depth = 0; base > 0 && depth < LINEAGE_DEPTH_MAX; depth++) {
		size_t i;

		for (i = 0; i < n && list[i].id != base; i++)
			;
		if (i == n)
			break;
		json_array_append_new(chain, model_summary(&list[i]));
		base = list[i].base_id;
	}
	json_object_set_new(o, "tokenizer", json_string(strrchr(m->tokenizer, '/') ?
	    strrchr(m->tokenizer, '/') + 1 : m->tokenizer));
	json_object_set_new(o, "config", json_column(m->config_json));
	json_object_set_new(o, "lineage", json_column(m->lineage_json));
	json_object_set_new(o, "ancestors", chain);
	json_object_set_new(o, "descendants", model_descendants(list, n, at, 0));
	json_object_set_new(o, "files", files);
	json_object_set_new(o, "export_commands", model_exports(m));
	for (size_t i = 0; i < n; i++)
		model_info_free(&list[i]);
	free(list);
	web_send_json(conn, 200, o);
}

static json_t *
dataset_summary(const struct dataset_info *di)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}",
	    "id", (json_int_t)di->id, "name", di->name, "kind", di->kind, "blake2b", di->hash,
	    "screen_rules", di->screen_rules,
	    "records", (json_int_t)di->records,
	    "validation_records", (json_int_t)di->validation_records,
	    "bytes", (json_int_t)di->bytes, "owner_uid", (json_int_t)di->owner_uid,
	    "created_at", (json_int_t)di->created_at);
}

static void
api_datasets(struct mg_connection *conn, struct ftuned *d)
{
	struct dataset_info *list;
	json_t *arr;
	size_t n;

	if (datasets_list(d, &list, &n) != 0) {
		web_send_error(conn, 500, "cannot list datasets");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, dataset_summary(&list[i]));
		dataset_info_free(&list[i]);
	}
	free(list);
	web_send_json(conn, 200, json_pack("{s:o}", "datasets", arr));
}

/* Records offset..offset+count of a canonical part, each parsed
 * (a record longer than SAMPLE_LINE_MAX is cut and shown as text). */
static json_t *
dataset_samples(const char *path, uint64_t offset, uint64_t count)
{
	json_t *arr = json_array();
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	uint64_t at = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return arr;
	while (at < offset + count && (len = getline(&line, &cap, f)) > 0) {
		json_t *rec;

		if (at++ < offset)
			continue;
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > SAMPLE_LINE_MAX)
			line[SAMPLE_LINE_MAX] = '\0';
		rec = json_loads(line, 0, NULL);
		json_array_append_new(arr, rec ? rec : ft_json_text(line));
	}
	free(line);
	fclose(f);
	return arr;
}

static void
api_dataset(struct mg_connection *conn, struct ftuned *d, const char *name, struct web_query *q)
{
	uint64_t offset = 0, count = 5;
	struct dataset_info di;
	char part[16] = "train";
	json_t *o;

	web_query_uint(q, "offset", UINT32_MAX, &offset);
	web_query_uint(q, "samples", SAMPLE_MAX, &count);
	/* the validation part too: an evaluation shows its examples' turns */
	if (web_query_str(q, "part", part, sizeof(part)) && strcmp(part, "train") != 0 &&
	    strcmp(part, "validation") != 0)
		snprintf(q->bad, sizeof(q->bad), "part must be train or validation");
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if (datasets_find(d, name, &di) != 0) {
		web_send_error(conn, 404, "no such dataset");
		return;
	}
	o = dataset_summary(&di);
	json_object_set_new(o, "stats", json_column(di.stats_json));
	json_object_set_new(o, "report", ft_json_text(di.report ? di.report : ""));
	json_object_set_new(o, "samples_offset", json_integer((json_int_t)offset));
	json_object_set_new(o, "samples", dataset_samples(part[0] == 't' ? di.train_path :
	    di.validation_path, offset, count));
	dataset_info_free(&di);
	web_send_json(conn, 200, o);
}

/* Token counts are dear when not in the token cache (a dataset larger
 * than TOKCACHE_COUNT_MAX records is never stored there, and every template
 * value is another form): seconds of CPU each.  So the dashboard tokenizes
 * one form at a time (others get 503), and remembers the record lengths
 * of the last TOKEN_MEMO forms it made, by dataset, tokenizer and
 * template, from which any seq_len is counted again at once. */
#define TOKEN_MEMO 8

struct token_memo {
	char key[2 * crypto_generichash_BYTES + 1];   /* "" = free */
	struct tokcache_form f;      /* n, len and n_prompt only */
	uint64_t used;               /* for least recently used */
};

static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t tokenizing = PTHREAD_MUTEX_INITIALIZER;
static struct token_memo memo[TOKEN_MEMO];
static uint64_t memo_clock;

static void
memo_key(const struct dataset_info *di, const char *tok_hash, const char *tmpl,
    char key[2 * crypto_generichash_BYTES + 1])
{
	crypto_generichash_state h;
	unsigned char out[crypto_generichash_BYTES];

	crypto_generichash_init(&h, NULL, 0, sizeof(out));
	crypto_generichash_update(&h, (const unsigned char *)di->hash, strlen(di->hash) + 1);
	crypto_generichash_update(&h, (const unsigned char *)tok_hash, strlen(tok_hash) + 1);
	crypto_generichash_update(&h, (const unsigned char *)tmpl, strlen(tmpl) + 1);
	crypto_generichash_final(&h, out, sizeof(out));
	sodium_bin2hex(key, 2 * crypto_generichash_BYTES + 1, out, sizeof(out));
}

/* The stats of the remembered form key at seq_len: 1 when there is one. */
static int
memo_stats(const char *key, uint64_t seq_len, struct tokcache_stats *st)
{
	int found = 0;

	pthread_mutex_lock(&memo_lock);
	for (size_t i = 0; i < TOKEN_MEMO && !found; i++) {
		if (strcmp(memo[i].key, key) == 0) {
			tokcache_form_stats(&memo[i].f, seq_len, st);
			memo[i].used = ++memo_clock;
			found = 1;
		}
	}
	pthread_mutex_unlock(&memo_lock);
	return found;
}

/* Remembers f's record lengths under key, over the least recently used. */
static void
memo_put(const char *key, const struct tokcache_form *f)
{
	uint32_t *lens = malloc((f->n ? f->n : 1) * 2 * sizeof(uint32_t));
	struct token_memo *m = &memo[0];

	if (lens == NULL)
		return;
	memcpy(lens, f->len, f->n * sizeof(uint32_t));
	memcpy(lens + f->n, f->n_prompt, f->n * sizeof(uint32_t));
	pthread_mutex_lock(&memo_lock);
	for (size_t i = 1; i < TOKEN_MEMO; i++)
		if (memo[i].used < m->used)
			m = &memo[i];
	free(m->f.buf);
	memset(m, 0, sizeof(*m));
	memcpy(m->key, key, sizeof(m->key));
	m->f.n = f->n;
	m->f.len = lens;
	m->f.n_prompt = lens + f->n;
	m->f.buf = lens;
	m->used = ++memo_clock;
	pthread_mutex_unlock(&memo_lock);
}

/* Tokens of a dataset as a model's tokenizer and a template make them for
 * training (tokcache.h: the cached form, else the first TOKCACHE_COUNT_MAX
 * records); with seq_len, how many records training would shorten. */
static void
api_dataset_tokens(struct mg_connection *conn, struct ftuned *d, const char *name,
    struct web_query *q)
{
	char model[REGISTRY_NAME_MAX + 1] = "", tmpl[256] = "", err[512], tok_hash[65];
	char key[2 * crypto_generichash_BYTES + 1];
	uint64_t seq_len = 0;
	struct tokcache_form f = { 0 };
	struct tokcache_stats st;
	struct dataset_info di;
	struct model_info m;
	int code = FT__CODE__OK, hit, text;

	web_query_str(q, "model", model, sizeof(model));
	web_query_str(q, "template", tmpl, sizeof(tmpl));
	web_query_uint(q, "seq_len", UINT32_MAX, &seq_len);
	if (q->bad[0] == '\0' && model[0] == '\0')
		snprintf(q->bad, sizeof(q->bad), "query parameter 'model' is required");
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if (datasets_find(d, name, &di) != 0) {
		web_send_error(conn, 404, "no such dataset");
		return;
	}
	if (registry_model_find(d, model, &m) != 0) {
		dataset_info_free(&di);
		web_send_error(conn, 404, "no such model");
		return;
	}
	text = strcmp(di.kind, "text") == 0;
	/* no template named: the model's own */
	if (tmpl[0] == '\0') {
		char *own;

		if (chat_format_of_model(&d->cfg, m.lineage_json, m.dir, &own) == 0) {
			snprintf(tmpl, sizeof(tmpl), "%s", own);
			free(own);
		}
	}
	if (tokcache_tokenizer_hash(&m, tok_hash) != 0) {
		snprintf(err, sizeof(err), "the model '%s' has no tokenizer", m.name);
		code = FT__CODE__INVALID_ARGUMENT;
	} else {
		memo_key(&di, tok_hash, text ? "" : tmpl, key);
		if (!memo_stats(key, seq_len, &st)) {
			if (pthread_mutex_trylock(&tokenizing) != 0) {
				dataset_info_free(&di);
				model_info_free(&m);
				web_send_error(conn, 503, "the dashboard is counting another dataset's "
				    "tokens; retry in a moment");
				return;
			}
			code = tokcache_dataset_form(d, &di, &m, tmpl, &f, &hit, err, sizeof(err));
			pthread_mutex_unlock(&tokenizing);
			if (code == FT__CODE__OK) {
				memo_put(key, &f);
				tokcache_form_stats(&f, seq_len, &st);
			}
		}
	}
	if (code == FT__CODE__OK)
		web_send_json(conn, 200, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I}",
		    "model", m.name, "template", text ? "" : tmpl,
		    "records", (json_int_t)di.records, "counted", (json_int_t)st.counted,
		    "tokens", (json_int_t)st.tokens, "prompt_tokens", (json_int_t)st.prompt_tokens,
		    "min", (json_int_t)st.min, "max", (json_int_t)st.max,
		    "mean", web_json_num(st.counted ? (double)st.tokens / (double)st.counted : NAN),
		    "seq_len", (json_int_t)seq_len, "longer", (json_int_t)st.longer));
	else
		web_send_error(conn, code == FT__CODE__INVALID_ARGUMENT ? 400 : 500, err);
	tokcache_form_free(&f);
	model_info_free(&m);
	dataset_info_free(&di);
}

_Static_assert(WEB_ROUTE_NAME_MAX >= REGISTRY_NAME_MAX, "a model or dataset name fits a route");

void
web_api_serve(struct mg_connection *conn, struct ftuned *d, const struct web_caller *who)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct web_query q = { ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, "" };
	struct web_route r;

	if (web_route_parse(ri->local_uri, &r) != 0) {
		web_send_error(conn, 404, r.why);
		return;
	}
	switch (r.ep) {
	case WEB_EP_STATUS: api_status(conn, d); break;
	case WEB_EP_KEYS: api_keys(conn, d, who); break;
	case WEB_EP_JOBS: api_jobs(conn, d, &q); break;
	case WEB_EP_JOB: api_job(conn, d, r.id); break;
	case WEB_EP_JOB_METRICS: api_job_metrics(conn, d, r.id, &q); break;
	case WEB_EP_JOB_LOGS: api_job_logs(conn, d, r.id, &q); break;
	case WEB_EP_MODELS: api_models(conn, d); break;
	case WEB_EP_MODEL: api_model(conn, d, r.name); break;
	case WEB_EP_DATASETS: api_datasets(conn, d); break;
	case WEB_EP_DATASET: api_dataset(conn, d, r.name, &q); break;
	case WEB_EP_DATASET_TOKENS: api_dataset_tokens(conn, d, r.name, &q); break;
	case WEB_EP_EVALS: web_eval_list(conn, d); break;
	case WEB_EP_EVAL: web_eval_show(conn, d, r.id); break;
	case WEB_EP_EVAL_EXAMPLES: web_eval_examples(conn, d, r.id, &q); break;
	}
}
