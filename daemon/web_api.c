/*
 * web_api.c - the dashboard's JSON API: status, jobs (with metrics, logs
 * and checkpoints), models (with lineage), datasets (with stats and
 * samples), API keys (with usage); evaluations, read from their tables,
 * are in web_eval.c.
 * The status, jobs, models, datasets and API keys are the RPCs' own reply
 * messages, built by the modules that own them (status.c, jobs.c,
 * registry.c, datasets.c, deploy.c) and serialised by ft_json_message,
 * with a few dashboard-only fields added (links' names, checkpoints on
 * disk, export commands, lineage trees, parsed samples).  Nothing here
 * writes state.
 * Unknown ids answer 404 JSON, malformed query values 400, and every page
 * size is capped at WEB_API_PAGE_MAX.
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
#include "ft_enum.h"
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
	char *text = body ? json_dumps(body, JSON_COMPACT | FT_JSON_DUMP_FLAGS) : NULL;
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

/* The error reply for a jobs.c, registry.c or datasets.c code. */
static void
send_code(struct mg_connection *conn, int code, const char *what)
{
	char msg[96];

	snprintf(msg, sizeof(msg), code == FT__CODE__NOT_FOUND ? "no such %s" :
	    code == FT__CODE__RESOURCE_EXHAUSTED ? "out of memory" : "cannot read the %s", what);
	web_send_error(conn, code == FT__CODE__NOT_FOUND ? 404 : 500, msg);
}

/* Sends m as JSON and releases the arena it lives in. */
static void
send_message(struct mg_connection *conn, struct arena *a, const ProtobufCMessage *m)
{
	json_t *o = ft_json_message(m);

	arena_release(a);
	web_send_json(conn, 200, o);
}

/* The Status RPC's reply, the caller's quota usage in it. */
static void
api_status(struct mg_connection *conn, struct ftuned *d, const struct web_caller *who)
{
	struct arena a = ARENA_INIT;
	Ft__StatusReply *r;

	if (ftuned_status_reply(d, &a, who->uid, &r) != FT__CODE__OK) {
		arena_release(&a);
		web_send_error(conn, 500, "state database unreadable");
		return;
	}
	send_message(conn, &a, &r->base);
}

/* API keys with their usage, revoked ones included; never a key or its
 * hash (deploy.c keeps only the hash, and deploy_key_info carries none).
 * Only the caller's own, as ftctl key list, unless it is an admin. */
static void
api_keys(struct mg_connection *conn, struct ftuned *d, const struct web_caller *who)
{
	struct arena a = ARENA_INIT;
	Ft__KeyListReply *r;
	int code;

	if ((code = deploy_key_list_reply(d, &a, who->uid, who->admin, &r)) != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "API keys");
		return;
	}
	send_message(conn, &a, &r->base);
}

static void
api_jobs(struct mg_connection *conn, struct ftuned *d, struct web_query *q)
{
	char state[FT_ENUM_WORD_MAX] = "", words[96];
	uint64_t user = UINT32_MAX, limit = 100;
	struct arena a = ARENA_INIT;
	Ft__JobListReply *r;
	int code, st = 0;

	web_query_str(q, "state", state, sizeof(state));
	web_query_uint(q, "user", UINT32_MAX - 1, &user);
	web_query_uint(q, "limit", WEB_API_PAGE_MAX, &limit);
	if (q->bad[0] == '\0' && ft_enum_parse(&ft__job_state__descriptor, state, &st) != 0)
		snprintf(q->bad, sizeof(q->bad), "state must be one of %s",
		    ft_enum_words(&ft__job_state__descriptor, ", ", words, sizeof(words)));
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if ((code = jobs_list_reply(d, &a, (Ft__JobState)st, (uint32_t)user, (int)limit, &r)) !=
	    FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "jobs");
		return;
	}
	send_message(conn, &a, &r->base);
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

static void
api_job(struct mg_connection *conn, struct ftuned *d, int64_t id)
{
	struct arena a = ARENA_INIT;
	Ft__JobReply *r;
	json_t *o;
	int code;

	if ((code = jobs_reply(d, &a, id, &r)) != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "job");
		return;
	}
	o = ft_json_message(&r->job->base);
	json_object_set_new(o, "base_model", model_name(d, r->job->base_id));
	json_object_set_new(o, "dataset", dataset_name(d, r->job->dataset_id));
	json_object_set_new(o, "checkpoints", job_checkpoints(d, id));
	arena_release(&a);
	web_send_json(conn, 200, o);
}

static void
api_job_metrics(struct mg_connection *conn, struct ftuned *d, int64_t id, struct web_query *q)
{
	uint64_t after = 0, limit = 10000;
	struct arena a = ARENA_INIT;
	Ft__JobMetricsReply *r;
	int code;

	web_query_uint(q, "after", UINT32_MAX, &after);
	web_query_uint(q, "limit", 10000, &limit);
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if ((code = jobs_metrics_reply(d, &a, id, (uint32_t)after, limit ? (uint32_t)limit : 1,
	    &r)) != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, code == FT__CODE__NOT_FOUND ? "job" : "metrics");
		return;
	}
	send_message(conn, &a, &r->base);
}

static void
api_job_logs(struct mg_connection *conn, struct ftuned *d, int64_t id, struct web_query *q)
{
	uint64_t after = 0, limit = WEB_API_PAGE_MAX;
	struct arena a = ARENA_INIT;
	Ft__JobLogsReply *r;
	int code;

	web_query_uint(q, "after", INT64_MAX, &after);
	web_query_uint(q, "limit", WEB_API_PAGE_MAX, &limit);
	if (q->bad[0]) {
		web_send_error(conn, 400, q->bad);
		return;
	}
	if ((code = jobs_logs_reply(d, &a, id, (int64_t)after, limit ? (uint32_t)limit : 1, &r)) !=
	    FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, code == FT__CODE__NOT_FOUND ? "job" : "log");
		return;
	}
	send_message(conn, &a, &r->base);
}

/* Model m as JSON: the ModelInfo the RPCs send (NULL when out of memory). */
static json_t *
model_json(struct arena *a, const struct model_info *m)
{
	Ft__ModelInfo *p;

	return registry_model_proto(a, m, &p) == FT__CODE__OK ? ft_json_message(&p->base) : NULL;
}

static void
api_models(struct mg_connection *conn, struct ftuned *d)
{
	struct arena a = ARENA_INIT;
	Ft__ModelListReply *r;
	int code;

	if ((code = registry_list_reply(d, &a, &r)) != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "models");
		return;
	}
	send_message(conn, &a, &r->base);
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
model_descendants(struct arena *a, const struct model_info *list, size_t n, size_t at,
    int depth)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n && depth < LINEAGE_DEPTH_MAX; i++) {
		json_t *node, *lin;

		if (list[i].base_id != list[at].id || i == at)
			continue;
		if ((node = model_json(a, &list[i])) == NULL)
			continue;
		lin = json_column(list[i].lineage_json);
		json_object_set_new(node, "dataset",
		    lineage_field(json_object_get(lin, "dataset"), "name"));
		json_object_set_new(node, "type", lineage_field(lin, "type"));
		json_object_set_new(node, "method", lineage_field(lin, "method"));
		json_decref(lin);
		json_object_set_new(node, "children", model_descendants(a, list, n, i, depth + 1));
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

	if (m->format == MODEL_LORA) {
		/* An adapter is not a model ftengine can open alone: the daemon
		 * assembles it on its base. */
		static const char *const formats[] = { "peft", "hf", "gguf" };

		for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
			snprintf(line, sizeof(line), "ftctl model export '%s' --format %s --out "
			    "'%s-%s'", m->name, formats[i], m->name, formats[i]);
			json_array_append_new(arr, json_string(line));
		}
	} else if (m->format == MODEL_LLAMA2C)
		snprintf(tok, sizeof(tok), " --tokenizer '%s'", m->tokenizer);
	if (m->format != MODEL_LORA) {
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
	struct arena a = ARENA_INIT;
	struct model_info *list;
	json_t *o, *chain;
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

	o = model_json(&a, m);
	/* The base chain, this model first, then its base, up to a base model. */
	chain = json_array();
	base = m->id;
	for (int depth = 0; base > 0 && depth < LINEAGE_DEPTH_MAX; depth++) {
		size_t i;

		for (i = 0; i < n && list[i].id != base; i++)
			;
		if (i == n)
			break;
		json_array_append_new(chain, model_json(&a, &list[i]));
		base = list[i].base_id;
	}
	json_object_set_new(o, "ancestors", chain);
	json_object_set_new(o, "descendants", model_descendants(&a, list, n, at, 0));
	json_object_set_new(o, "export_commands", model_exports(m));
	for (size_t i = 0; i < n; i++)
		model_info_free(&list[i]);
	free(list);
	arena_release(&a);
	web_send_json(conn, 200, o);
}

static void
api_datasets(struct mg_connection *conn, struct ftuned *d)
{
	struct arena a = ARENA_INIT;
	Ft__DataListReply *r;
	int code;

	if ((code = datasets_list_reply(d, &a, &r)) != FT__CODE__OK) {
		arena_release(&a);
		send_code(conn, code, "datasets");
		return;
	}
	send_message(conn, &a, &r->base);
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
	struct arena a = ARENA_INIT;
	struct dataset_info di;
	Ft__DatasetInfo *p;
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
	if (datasets_info_proto(&a, &di, 0, &p) != FT__CODE__OK) {
		dataset_info_free(&di);
		arena_release(&a);
		web_send_error(conn, 500, "out of memory");
		return;
	}
	o = ft_json_message(&p->base);
	arena_release(&a);
	/* the DataReply's report beside it, and a page of parsed records */
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
	text = di.kind == DATASET_KIND_TEXT;
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
	case WEB_EP_STATUS: api_status(conn, d, who); break;
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
