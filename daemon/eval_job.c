/*
 * eval_job.c - evaluation jobs: submission and the runner.  See eval_job.h.
 *
 * DESIGN: the runner takes one model at a time (only one is in memory).
 * It tokenizes every example, then computes the teacher-forced loss of up
 * to EVAL_LOSS_ROWS examples per forward pass (fte_model_loss_rows: the
 * model alone, inference activations, each row padded with masked targets
 * and masked exactly as SFT trains: response and EOS only), taking the
 * examples shortest first so batches pad little; then, for each example of
 * the batch, generates with the KV cache from the same prompt with a
 * per-example seed, so every model sees identical inputs and randomness.
 * A row's loss does not depend on its batch mates (up to float rounding),
 * and the batches are the same on every run.  Per-example values are kept
 * in memory until every model is done; the summary pairs examples across
 * models and bootstraps with the eval's seed, so the same evaluation run
 * twice gives the same numbers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "chat_template.h"
#include "datasets.h"
#include "eval_job.h"
#include "eval_metrics.h"
#include "evals.h"
#include "ft_enum.h"
#include "fte.h"
#include "jobs.h"
#include "log.h"
#include "queue.h"
#include "registry.h"
#include "train_job.h"

#define DEFAULT_MAX_NEW_TOKENS 64
/* The loss runs this many examples per forward pass, padded to at most
 * this many tokens: inference keeps one layer's activations, so such a
 * batch needs about what one sequence of as many tokens does. */
#define EVAL_LOSS_ROWS 16
#define EVAL_LOSS_TOKENS 2048

/* Parses a comma-separated metric list into a bit set; -1 with err. */
static int
metrics_parse(const char *list, unsigned *out, char *err, size_t err_len)
{
	unsigned set = 0;

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		int m = eval_metric_find(p, n);

		if (m < 0) {
			char known[256];

			eval_metric_list((1u << EVAL_M_COUNT) - 1, ", ", known, sizeof(known));
			snprintf(err, err_len, "unknown metric '%.*s'; known: %s", (int)(n > 40 ? 40 : n), p,
			    known);
			return -1;
		}
		set |= 1u << m;
		p += n + (p[n] == ',');
	}
	*out = set;
	return 0;
}

/* The metrics measured on generated text, as a bit set. */
static unsigned
metrics_generated(void)
{
	unsigned set = 0;

	for (int i = 0; i < EVAL_M_COUNT; i++)
		if (eval_metrics[i].needs_generation)
			set |= 1u << i;
	return set;
}

/* Replaces an empty string field of a malloc-unpacked message. */
static void
spec_default_str(char **field, const char *def)
{
	char *s;

	if ((*field != NULL && (*field)[0] != '\0') || (s = strdup(def)) == NULL)
		return;
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = s;
}

static int
spec_check(const struct ft_config *cfg, Ft__EvalSpec *s, const struct dataset_info *ds,
    char *err, size_t err_len)
{
	int text = ds->kind == DATASET_KIND_TEXT;
	unsigned set;
	char list[256];

	if (s->n_models < 1 || s->n_models > EVAL_MAX_MODELS) {
		snprintf(err, err_len, "--models takes 1 to %d models, got %zu", EVAL_MAX_MODELS,
		    s->n_models);
		return -1;
	}
	if (s->split != FT__EVAL_SPLIT__EVAL_SPLIT_VALIDATION && s->split != FT__EVAL_SPLIT__EVAL_SPLIT_ALL) {
		snprintf(err, err_len, "--split must be validation or all");
		return -1;
	}
	if (s->split == FT__EVAL_SPLIT__EVAL_SPLIT_VALIDATION && ds->validation_records == 0) {
		snprintf(err, err_len, "dataset %s has no validation split; hold one out with "
		    "data add --validation-split, or evaluate with --split all", ds->name);
		return -1;
	}
	if (s->max_new_tokens < 1 || s->max_new_tokens > EVAL_MAX_NEW_TOKENS) {
		snprintf(err, err_len, "--max-new-tokens %u is out of range 1..%d", s->max_new_tokens,
		    EVAL_MAX_NEW_TOKENS);
		return -1;
	}
	if (!(s->temperature >= 0 && s->temperature <= 2)) {
		snprintf(err, err_len, "--temperature must be in [0, 2]");
		return -1;
	}
	if (!(s->top_p > 0 && s->top_p <= 1)) {
		snprintf(err, err_len, "--top-p must be in (0, 1]");
		return -1;
	}
	if (s->name[0] && registry_name_check(s->name, err, err_len) != 0)
		return -1;
	/* "chat" is checked against each model when it runs */
	if (s->template_[0] != '\0' && strcmp(s->template_, "chat") != 0 &&
	    chat_format_check(cfg, s->template_, NULL, err, err_len) != 0)
		return -1;
	if (s->metrics[0] == '\0') {
		set = ((1u << EVAL_M_COUNT) - 1) & ~(text ? metrics_generated() : 0);
		eval_metric_list(set, ",", list, sizeof(list));
		spec_default_str(&s->metrics, list);
		return 0;
	}
	if (metrics_parse(s->metrics, &set, err, err_len) != 0)
		return -1;
	if (text && (set & metrics_generated())) {
		snprintf(err, err_len, "dataset %s holds text: only the loss (perplexity) applies",
		    ds->name);
		return -1;
	}
	eval_metric_list(set, ",", list, sizeof(list));
	free(s->metrics);
	s->metrics = strdup(list);
	return s->metrics ? 0 : -1;
}

/* An evaluation's rows, inserted by queue_admit: the job (jobs.c) and the
 * evaluation with its models (evals.c), in one transaction. */
struct eval_insert {
	struct evals_new e;
	const Ft__JobSpec *js;
	uint64_t memory;
	int64_t eval_id;            /* set on success */
};

static int
eval_insert(struct ftuned *d, void *arg, int64_t *id, char *err, size_t err_len)
{
	struct eval_insert *ei = arg;
	const struct evals_new *e = &ei->e;
	sqlite3 *db = store_lock(d->store);
	char split[FT_ENUM_WORD_MAX];
	int64_t jid;
	int code = FT__CODE__INTERNAL;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
		if ((code = jobs_insert_row(db, FT__JOB_KIND__JOB_KIND_EVAL, e->uid, 0, ei->js, e->models[0].id, e->ds->id, 0,
		    ei->memory, &jid)) == FT__CODE__OK &&
		    (code = evals_insert(db, jid, e, &ei->eval_id)) == FT__CODE__OK &&
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			code = FT__CODE__INTERNAL;
		if (code != FT__CODE__OK) {
			snprintf(err, err_len, "evals: %s", code == FT__CODE__INTERNAL ?
			    sqlite3_errmsg(db) : "out of memory");
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		}
	} else
		snprintf(err, err_len, "evals: %s", sqlite3_errmsg(db));
	store_unlock(d->store);
	if (code != FT__CODE__OK)
		return code;
	*id = jid;
	jobs_log(d, jid, "info", "evaluation %lld queued by uid %u: %zu model%s on %s (%s split), "
	    "metrics %s", (long long)ei->eval_id, e->uid, e->n_models, e->n_models == 1 ? "" : "s",
	    e->ds->name, ft_enum_word(&ft__eval_split__descriptor, e->spec->split, split),
	    e->spec->metrics);
	return FT__CODE__OK;
}

/* The most memory evaluating model m needs (models run one at a time): its
 * weights, generation's buffers, and a loss batch of EVAL_LOSS_TOKENS
 * tokens (their logits and about one layer's activations). */
static uint64_t
eval_memory(const struct model_info *m)
{
	uint64_t bytes = m->params * sizeof(float);
	fte_config c;

	if (registry_model_config(m, &c, NULL, 0) == 0)
		bytes += fte_generate_memory(&c) + (uint64_t)EVAL_LOSS_TOKENS *
		    ((uint64_t)c.vocab_size + 8 * (uint64_t)c.dim + 2 * (uint64_t)c.ffn_dim) *
		    sizeof(float);
	return bytes;
}

int
eval_submit(struct ftuned *d, uint32_t uid, int admin, const Ft__EvalSpec *in, int64_t train_job,
    int64_t *eval_id, int64_t *job_id, char *err, size_t err_len)
{
	Ft__EvalSpec *s = (Ft__EvalSpec *)ft_message_copy(&in->base, NULL);
	Ft__JobSpec js = FT__JOB_SPEC__INIT;
	struct model_info models[EVAL_MAX_MODELS];
	struct dataset_info ds;
	struct eval_insert ei = { { uid, NULL, models, 0, &ds, train_job }, &js, 0, 0 };
	struct queue_admission a = { uid, admin, train_job > 0, 0, 0, 0, NULL,
	    "evaluate smaller models, or raise memory_budget", eval_insert, &ei };
	size_t n_found = 0, largest = 0;
	int have_ds = 0, code = FT__CODE__INVALID_ARGUMENT;
	char detail[192];

	if (s == NULL) {
		snprintf(err, err_len, "out of memory");
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	if (s->split == FT__EVAL_SPLIT__EVAL_SPLIT_UNSPECIFIED)
		s->split = FT__EVAL_SPLIT__EVAL_SPLIT_VALIDATION;
	if (s->max_new_tokens == 0)
		s->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
	if (s->top_p == 0)
		s->top_p = 1;
	if (s->seed == 0)
		s->seed = 1;
	if (s->data[0] == '\0' || datasets_find(d, s->data, &ds) != 0) {
		snprintf(err, err_len, "no dataset '%s'", s->data);
		code = FT__CODE__NOT_FOUND;
		goto out;
	}
	have_ds = 1;
	if (spec_check(&d->cfg, s, &ds, err, err_len) != 0)
		goto out;
	for (; n_found < s->n_models; n_found++) {
		uint64_t need;

		if (registry_model_find(d, s->models[n_found], &models[n_found]) != 0) {
			snprintf(err, err_len, "no model '%s'", s->models[n_found]);
			code = FT__CODE__NOT_FOUND;
			goto out;
		}
		if ((need = eval_memory(&models[n_found])) > a.memory) {
			a.memory = need;
			largest = n_found;
		}
	}
	snprintf(detail, sizeof(detail), "model %s: weights %.1f MiB, generation and loss buffers "
	    "%.1f MiB", models[largest].name, (double)(models[largest].params * sizeof(float)) /
	    (1 << 20), (double)(a.memory - models[largest].params * sizeof(float)) / (1 << 20));
	js.type = FT__JOB_TYPE__JOB_TYPE_EVAL;
	js.base_model = models[0].name;   /* resolved: ids read badly in job ls */
	js.data = s->data;
	js.name = s->name;
	js.seed = s->seed;
	js.priority = s->priority;
	ei.e.spec = s;
	ei.e.n_models = n_found;
	ei.memory = a.memory;
	a.priority = s->priority;
	a.memory_detail = detail;
	if ((code = queue_admit(d->queue, &a, job_id, err, err_len)) == FT__CODE__OK)
		*eval_id = ei.eval_id;
out:
	for (size_t i = 0; i < n_found; i++)
		model_info_free(&models[i]);
	if (have_ds)
		dataset_info_free(&ds);
	ft__eval_spec__free_unpacked(s, NULL);
	return code;
}

/* ---- the runner ---- */

struct example {
	const struct dataset_record *rec;
	char *prompt;       /* the rendered prompt ("" for text) */
	const char *reference;
};

/* One example's teacher-forced row for the current model. */
struct loss_row {
	int *tokens, *targets;  /* T each, one allocation (tokens) */
	int T;                  /* 0: nothing to predict */
};

/* The row of ids whose targets (mask[i] 1; mask NULL for text: every
 * token) the loss covers, with SFT's truncation: a sequence longer than the
 * context loses tokens before its first target after the first (BOS), then
 * its end. */
static int
row_build(const int *ids, const unsigned char *mask, size_t n_ids, int max_T, struct loss_row *r)
{
	size_t L = n_ids, drop = 0, n_prompt = 0;
	int any = 0;

	while (mask != NULL && n_prompt < n_ids && !mask[n_prompt])
		n_prompt++;

	r->T = 0;
	r->tokens = r->targets = NULL;
	if (L > (size_t)max_T + 1) {
		size_t excess = L - ((size_t)max_T + 1);

		drop = n_prompt > 1 ? (excess < n_prompt - 1 ? excess : n_prompt - 1) : 0;
		L = L - drop > (size_t)max_T + 1 ? (size_t)max_T + 1 : L - drop;
	}
	if (L < 2)
		return 0;
	if ((r->tokens = malloc(2 * (L - 1) * sizeof(int))) == NULL)
		return -1;
	r->targets = r->tokens + (L - 1);
	for (size_t i = 0; i < L - 1; i++) {
		/* position i in the kept sequence: ids[0] then ids[1 + drop ..] */
		size_t src = i == 0 ? 0 : i + drop, nxt = i + 1 + drop;

		r->tokens[i] = ids[src];
		r->targets[i] = mask == NULL || mask[nxt] ? ids[nxt] : -1;
		any |= r->targets[i] >= 0;
	}
	if (any) {
		r->T = (int)L - 1;
	} else {
		free(r->tokens);
		r->tokens = r->targets = NULL;
	}
	return 0;
}

/* A row's place in the loss order: shortest first, then by index, so a
 * batch pads little and the batches are the same on every run. */
static int
key_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Mean loss per predicted token of the k rows keys name (low 32 bits: the
 * example) in one forward pass, each padded to the longest with masked
 * targets, into out[example]; NAN for a row with nothing to predict.  tok
 * and tgt hold k times the longest row. */
static int
loss_batch(fte_model *m, const struct loss_row *rows, const uint64_t *keys, size_t k, int *tok,
    int *tgt, double *out)
{
	double sum[EVAL_LOSS_ROWS];
	int count[EVAL_LOSS_ROWS], T = 0, B = 0;
	fte_batch b;

	for (size_t j = 0; j < k; j++)
		if (rows[(uint32_t)keys[j]].T > T)
			T = rows[(uint32_t)keys[j]].T;
	for (size_t j = 0; j < k; j++) {
		const struct loss_row *r = &rows[(uint32_t)keys[j]];

		if (r->T == 0)
			continue;
		memcpy(tok + (size_t)B * T, r->tokens, (size_t)r->T * sizeof(int));
		memcpy(tgt + (size_t)B * T, r->targets, (size_t)r->T * sizeof(int));
		for (int i = r->T; i < T; i++) {
			tok[(size_t)B * T + i] = 0;
			tgt[(size_t)B * T + i] = -1;
		}
		B++;
	}
	b = (fte_batch){ tok, tgt, NULL, B, T };
	if (B > 0 && fte_model_loss_rows(m, &b, sum, count) != FTE_OK)
		return -1;
	B = 0;
	for (size_t j = 0; j < k; j++) {
		uint32_t i = (uint32_t)keys[j];

		out[i] = rows[i].T == 0 ? NAN : sum[B] / count[B];
		B += rows[i].T != 0;
	}
	return 0;
}

struct gen_result {
	char *text;
	int n_tokens;
	int stopped;
};

/* Generates from the prompt ids with the spec's decoding settings and the
 * example's own seed. */
static int
generate_one(fte_model *m, const fte_tokenizer *tok, const struct chat_format *f, const int *ids,
    size_t n_ids, const Ft__EvalSpec *s, uint32_t idx, int *out, struct gen_result *g)
{
	const fte_config *c = fte_model_config(m);
	int max_new = (int)s->max_new_tokens, keep, n_out = 0;
	fte_sampler sm;
	size_t len;
	int rc;

	fte_sampler_default(&sm);
	sm.temperature = s->temperature;
	sm.top_p = s->top_p;
	sm.seed = s->seed ^ (0x9e3779b97f4a7c15ULL * ((uint64_t)idx + 1));
	sm.max_new_tokens = max_new;
	sm.stop_ids = f->stop_ids;
	sm.n_stop_ids = f->n_stop;
	/* Leave room to generate: a prompt longer than the context minus
	 * max_new_tokens (at most half the context) keeps its first token
	 * (BOS) and its end. */
	keep = c->max_seq_len - (max_new < c->max_seq_len / 2 ? max_new : c->max_seq_len / 2);
	if ((int)n_ids > keep && keep >= 2) {
		int *tmp = malloc((size_t)keep * sizeof(int));

		if (tmp == NULL)
			return fte_error_set(FTE_ENOMEM, "out of memory");
		tmp[0] = ids[0];
		memcpy(tmp + 1, ids + n_ids - (size_t)(keep - 1), (size_t)(keep - 1) * sizeof(int));
		rc = fte_generate(m, tmp, keep, &sm, NULL, NULL, out, &n_out);
		n_ids = (size_t)keep;
		free(tmp);
	} else {
		rc = fte_generate(m, ids, (int)n_ids, &sm, NULL, NULL, out, &n_out);
	}
	if (rc != FTE_OK)
		return rc;
	if ((rc = fte_tokenizer_decode_flags(tok, out, (size_t)n_out, FTE_TOK_SKIP_SPECIAL, &g->text,
	    &len)) != FTE_OK)
		return rc;
	g->n_tokens = n_out;
	/* Fewer tokens than allowed and context left: a stop token ended it. */
	g->stopped = n_out < max_new && (int)n_ids + n_out < c->max_seq_len;
	return FTE_OK;
}

static int
text_metrics(const char *out, const char *ref, unsigned set, double *v)
{
	for (int m = 0; m < EVAL_M_COUNT; m++)
		if ((set & (1u << m)) && eval_metrics[m].score != NULL &&
		    eval_metrics[m].score(out, ref, &v[m]) != 0)
			return -1;
	return 0;
}

/* How many distinct normalised references there are, stopping past cap. */
static size_t
labels_count(const struct example *ex, size_t n, size_t cap)
{
	char **seen = calloc(cap + 1, sizeof(*seen));
	size_t k = 0;

	if (seen == NULL)
		return cap + 1;
	for (size_t i = 0; i < n && k <= cap; i++) {
		char *s;
		size_t j;

		if (eval_normalize(ex[i].reference, &s) != 0) {
			k = cap + 1;
			break;
		}
		for (j = 0; j < k && strcmp(seen[j], s) != 0; j++)
			;
		if (j < k)
			free(s);
		else
			seen[k++] = s;
	}
	for (size_t j = 0; j < k && j <= cap; j++)
		free(seen[j]);
	free(seen);
	return k;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The summary: each model's mean per metric, each pair's difference,
 * over the examples where every model has a value. */
static int
summarise(struct ftuned *d, const struct evals_run *e, unsigned set, double *values, size_t n,
    char *err, size_t err_len)
{
	size_t K = e->n_models;
	double *col = malloc((n + 1) * K * sizeof(*col));
	uint64_t seed = e->spec->seed;

	if (col == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	for (int m = 0; m < EVAL_M_COUNT; m++) {
		size_t used = 0;

		if (!(set & (1u << m)))
			continue;
		/* col[k * n + j]: model k's value on the j-th complete example */
		for (size_t i = 0; i < n; i++) {
			size_t k;

			for (k = 0; k < K && isfinite(values[((size_t)m * K + k) * n + i]); k++)
				;
			if (k < K)
				continue;
			for (k = 0; k < K; k++)
				col[k * n + used] = values[((size_t)m * K + k) * n + i];
			used++;
		}
		if (used == 0)
			continue;
		for (size_t k = 0; k < K; k++) {
			struct eval_ci ci;

			if (eval_bootstrap_mean(col + k * n, used, EVAL_BOOTSTRAP_B, seed, &ci) != 0 ||
			    evals_store_stat(d, e->id, eval_metrics[m].name, (int)k, -1, &ci, NULL, used) != 0)
				goto fail;
			if (m == EVAL_M_LOSS) {
				struct eval_ci p = { exp(ci.mean), exp(ci.lo), exp(ci.hi) };

				if (evals_store_stat(d, e->id, "perplexity", (int)k, -1, &p, NULL, used) != 0)
					goto fail;
			}
		}
		for (size_t a = 0; a < K; a++) {
			for (size_t b = a + 1; b < K; b++) {
				struct eval_ci ci;
				struct eval_wtl w;

				if (eval_bootstrap_diff(col + a * n, col + b * n, used, EVAL_BOOTSTRAP_B, seed,
				    eval_metrics[m].higher_is_better, &ci, &w) != 0 ||
				    evals_store_stat(d, e->id, eval_metrics[m].name, (int)b, (int)a, &ci, &w,
				    used) != 0)
					goto fail;
			}
		}
	}
	free(col);
	return 0;
fail:
	snprintf(err, err_len, "storing the summary failed");
	free(col);
	return -1;
}

/* Examples of the split, at most limit (0 = all). */
static int
examples_load(const struct dataset_info *ds, Ft__EvalSplit split, uint32_t limit,
    struct dataset **a, struct dataset **b, struct example **out, size_t *n, char *err,
    size_t err_len)
{
	enum dataset_kind kind = ds->kind;
	size_t total, k = 0;
	struct example *ex;

	if (split == FT__EVAL_SPLIT__EVAL_SPLIT_ALL && dataset_load_jsonl(ds->train_path, kind, a, err,
	    err_len) != 0)
		return -1;
	if (ds->validation_path[0] && dataset_load_jsonl(ds->validation_path, kind, b, err,
	    err_len) != 0)
		return -1;
	total = (*a ? dataset_count(*a) : 0) + (*b ? dataset_count(*b) : 0);
	if (limit > 0 && total > limit)
		total = limit;
	if (total == 0) {
		char w[FT_ENUM_WORD_MAX];

		snprintf(err, err_len, "the %s split of %s has no examples",
		    ft_enum_word(&ft__eval_split__descriptor, split, w), ds->name);
		return -1;
	}
	if ((ex = calloc(total, sizeof(*ex))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	for (int part = 0; part < 2; part++) {
		struct dataset *src = part == 0 ? *a : *b;

		for (size_t i = 0; src != NULL && i < dataset_count(src) && k < total; i++) {
			ex[k].rec = dataset_sample(src, i);
			ex[k].reference = kind == DATASET_KIND_TEXT ? ex[k].rec->text : ex[k].rec->output;
			k++;
		}
	}
	*out = ex;
	*n = total;
	return 0;
}

void
eval_job_run(struct ftuned *d, int64_t id, atomic_int *stop)
{
	char err[1024] = "", metrics[256], split[FT_ENUM_WORD_MAX];
	struct job_info j;
	struct evals_run e;
	struct dataset_info ds;
	struct dataset *part_a = NULL, *part_b = NULL;
	struct example *ex = NULL;
	double *values = NULL, t0, last_report = 0, loss_s = 0, gen_s = 0;
	size_t n = 0;
	unsigned set;
	int have_e = 0, have_ds = 0, text;
	uint32_t done = 0, total;

	if (jobs_get(d, id, &j) != 0)
		return;
	if (j.state != JOB_RUNNING) {
		job_info_free(&j);
		return;
	}
	if (evals_run_load(d, id, &e) != 0) {
		snprintf(err, sizeof(err), "the evaluation's rows are missing");
		goto fail;
	}
	have_e = 1;
	fte_threads_set(d->training_threads);
	jobs_set_stage(d, id, "loading");
	evals_reset(d, e.id);
	{
		char idbuf[32];

		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)e.dataset_id);
		if (datasets_find(d, idbuf, &ds) != 0) {
			snprintf(err, sizeof(err), "dataset %s no longer exists", e.spec->data);
			goto fail;
		}
		have_ds = 1;
	}
	if (strcmp(ds.hash, e.dataset_hash) != 0) {
		snprintf(err, sizeof(err), "dataset %s changed since the evaluation was queued", ds.name);
		goto fail;
	}
	text = ds.kind == DATASET_KIND_TEXT;
	if (metrics_parse(e.spec->metrics, &set, err, sizeof(err)) != 0 ||
	    examples_load(&ds, e.spec->split, e.spec->limit, &part_a, &part_b, &ex, &n, err,
	    sizeof(err)) != 0)
		goto fail;
	if ((set & (1u << EVAL_M_ACCURACY)) && labels_count(ex, n, EVAL_LABELS_MAX) > EVAL_LABELS_MAX) {
		set &= ~(1u << EVAL_M_ACCURACY);
		jobs_log(d, id, "info", "accuracy left out: the references are not a small label set "
		    "(more than %d distinct)", EVAL_LABELS_MAX);
	}
	eval_metric_list(set, ",", metrics, sizeof(metrics));
	if ((values = malloc((size_t)EVAL_M_COUNT * e.n_models * n * sizeof(*values))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < (size_t)EVAL_M_COUNT * e.n_models * n; i++)
		values[i] = NAN;
	total = (uint32_t)(n * e.n_models);
	evals_set_progress(d, e.id, metrics, (uint32_t)n, 0, NAN);
	jobs_log(d, id, "info", "evaluating %zu model%s on %zu examples of %s (%s split): %s",
	    e.n_models, e.n_models == 1 ? "" : "s", n, ds.name,
	    ft_enum_word(&ft__eval_split__descriptor, e.spec->split, split), metrics);
	jobs_set_progress(d, id, 0, total, 1, NAN, 0);
	t0 = now_s();

	for (size_t k = 0; k < e.n_models; k++) {
		struct model_info mi;
		fte_model *m = NULL;
		fte_tokenizer *tok = NULL;
		struct chat_format fmt = { 0 };
		struct loss_row *rows = NULL;
		uint64_t *keys = NULL;
		double *loss = NULL, loss_sum = 0;
		int *gen = NULL, *btok = NULL, *btgt = NULL, max_T = 1, rc = -1;
		size_t loss_n = 0, cap, i = 0;
		char idbuf[32], cdir[PATH_MAX], *now_hashes = NULL, *spec = NULL;

		jobs_set_stage(d, id, "loading");
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)e.models[k].model_id);
		if (registry_model_find(d, idbuf, &mi) != 0) {
			snprintf(err, sizeof(err), "model %s no longer exists", e.models[k].name);
			goto fail;
		}
		if ((now_hashes = registry_model_hashes_json(&mi)) == NULL || e.models[k].hashes == NULL ||
		    strcmp(now_hashes, e.models[k].hashes) != 0) {
			snprintf(err, sizeof(err), "model %s is not the one the evaluation was queued "
			    "with (its file hashes differ)", mi.name);
			goto model_out;
		}
		if (registry_model_verify(d, &mi, err, sizeof(err)) != 0)
			goto model_out;
		if (registry_model_load(d, &mi, &m, err, sizeof(err)) != 0)
			goto model_out;
		if (fte_tokenizer_load(mi.tokenizer, &tok) != FTE_OK) {
			snprintf(err, sizeof(err), "loading %s: %s", mi.name, fte_last_error());
			goto model_out;
		}
		/* each model in its own template unless the evaluation names one,
		 * its stop ids from its config (an adapter's base's) */
		if (registry_model_config_dir(d, &mi, cdir, sizeof(cdir)) != 0)
			snprintf(cdir, sizeof(cdir), "%s", mi.dir);
		if (!text && ((e.spec->template_[0] == '\0' &&
		    chat_format_of_model(&d->cfg, mi.lineage_json, mi.dir, &spec) != 0) ||
		    chat_format_open(&d->cfg, spec ? spec : e.spec->template_, mi.dir, cdir, tok, &fmt, err,
		    sizeof(err)) != 0)) {
			if (spec == NULL && e.spec->template_[0] == '\0')
				snprintf(err, sizeof(err), "out of memory");
			goto model_out;
		}
		max_T = fte_model_config(m)->max_seq_len;
		/* a batch holds EVAL_LOSS_TOKENS, or one row of up to the context */
		cap = (size_t)(max_T > EVAL_LOSS_TOKENS ? max_T : EVAL_LOSS_TOKENS);
		if ((gen = malloc(e.spec->max_new_tokens * sizeof(int))) == NULL ||
		    (rows = calloc(n, sizeof(*rows))) == NULL ||
		    (keys = malloc(n * sizeof(*keys))) == NULL ||
		    (loss = malloc(n * sizeof(*loss))) == NULL ||
		    (btok = malloc(cap * sizeof(int))) == NULL ||
		    (btgt = malloc(cap * sizeof(int))) == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			goto model_out;
		}
		jobs_set_stage(d, id, "tokenizing");
		for (i = 0; i < n; i++) {
			int *ids = NULL, eos = fte_tokenizer_eos(tok);
			unsigned char *mask = NULL;
			size_t n_ids = 0;

			if (text) {
				if (fte_tokenizer_encode(tok, ex[i].reference, strlen(ex[i].reference), 1, &ids,
				    &n_ids) != FTE_OK)
					goto example_err;
				if (eos >= 0) {
					int *grown = realloc(ids, (n_ids + 1) * sizeof(int));

					if (grown == NULL) {
						free(ids);
						fte_error_set(FTE_ENOMEM, "out of memory");
						goto example_err;
					}
					ids = grown;
					ids[n_ids++] = eos;
				}
			} else {
				/* the reference is the last assistant turn; the prompt
				 * everything before it, shown as the first model has it */
				if (chat_format_encode(&fmt, tok, ex[i].rec, 1, &ids, &mask, &n_ids) != FTE_OK ||
				    (k == 0 && chat_format_record_prompt(&fmt, tok, ex[i].rec, &ex[i].prompt,
				    NULL, NULL) != FTE_OK)) {
					free(ids);
					free(mask);
					goto example_err;
				}
			}
			if (k == 0 && text)
				ex[i].prompt = strdup("");
			rc = k == 0 && ex[i].prompt == NULL ? -1 : row_build(ids, mask, n_ids, max_T,
			    &rows[i]);
			free(ids);
			free(mask);
			if (rc != 0) {
				fte_error_set(FTE_ENOMEM, "out of memory");
				rc = -1;
				goto example_err;
			}
			keys[i] = (uint64_t)rows[i].T << 32 | i;
		}
		rc = -1;
		qsort(keys, n, sizeof(*keys), key_cmp);
		jobs_set_stage(d, id, "evaluating");
		for (size_t p = 0, q; p < n; p = q) {
			double ts = now_s();

			/* sorted by length, so the batch's last row is its longest */
			for (q = p + 1; q < n && q - p < EVAL_LOSS_ROWS &&
			    (q - p + 1) * (size_t)rows[(uint32_t)keys[q]].T <= EVAL_LOSS_TOKENS; q++)
				;
			if (atomic_load(stop) != TRAIN_STOP_NONE)
				goto stopped;
			if (loss_batch(m, rows, keys + p, q - p, btok, btgt, loss) != 0) {
				i = (uint32_t)keys[p];
				goto example_err;
			}
			loss_s += now_s() - ts;
			for (size_t j = p; j < q; j++) {
				double *v, row[EVAL_M_COUNT];
				struct gen_result g = { NULL, 0, 0 };
				const char *out_text = "";

				i = (uint32_t)keys[j];
				v = values + k * n + i;   /* v[metric * K * n] */
				if (atomic_load(stop) != TRAIN_STOP_NONE)
					goto stopped;
				for (int mm = 0; mm < EVAL_M_COUNT; mm++)
					row[mm] = NAN;
				row[EVAL_M_LOSS] = loss[i];
				/* a text dataset, or only the loss asked for: nothing to generate */
				if (!text && (set & metrics_generated())) {
					int *ids = NULL;
					size_t n_ids = 0;

					ts = now_s();
					if (chat_format_record_prompt(&fmt, tok, ex[i].rec, NULL, &ids,
					    &n_ids) != FTE_OK ||
					    generate_one(m, tok, &fmt, ids, n_ids, e.spec, (uint32_t)i, gen,
					    &g) != FTE_OK) {
						free(ids);
						free(g.text);
						goto example_err;
					}
					free(ids);
					gen_s += now_s() - ts;
					out_text = g.text;
					if (text_metrics(g.text, ex[i].reference, set, row) != 0) {
						free(g.text);
						fte_error_set(FTE_ENOMEM, "out of memory");
						goto example_err;
					}
					row[EVAL_M_GEN_LENGTH] = g.n_tokens;
					row[EVAL_M_EOS] = g.stopped;
				}
				for (int mm = 0; mm < EVAL_M_COUNT; mm++)
					if (set & (1u << mm))
						v[(size_t)mm * e.n_models * n] = row[mm];
				if (isfinite(row[EVAL_M_LOSS])) {
					loss_sum += row[EVAL_M_LOSS];
					loss_n++;
				}
				if (evals_store_output(d, e.id, (uint32_t)i, (uint32_t)k, ex[i].prompt, ex[i].reference, out_text, row,
				    set) != 0) {
					free(g.text);
					snprintf(err, sizeof(err), "storing example %zu failed", i + 1);
					goto model_out;
				}
				free(g.text);
				done++;
				{
					double el = now_s() - t0, rate = el > 0 ? done / el : 0;

					if (el - last_report >= 0.5 || done == total) {
						last_report = el;
						jobs_set_progress(d, id, done, total, (uint32_t)k + 1,
						    loss_n ? loss_sum / loss_n : NAN, rate);
						evals_set_progress(d, e.id, metrics, (uint32_t)n, done, rate);
					}
				}
			}
		}
		rc = 0;
		jobs_log(d, id, "info", "%s: mean loss %.4f over %zu examples", mi.name,
		    loss_n ? loss_sum / loss_n : NAN, loss_n);
		goto model_out;
example_err:
		snprintf(err, sizeof(err), "%s, example %zu: %s", mi.name, i + 1, fte_last_error());
		goto model_out;
stopped:
		rc = 1;
model_out:
		for (size_t j = 0; rows != NULL && j < n; j++)
			free(rows[j].tokens);
		free(rows);
		free(keys);
		free(loss);
		free(btok);
		free(btgt);
		chat_format_free(&fmt);
		free(spec);
		fte_tokenizer_free(tok);
		fte_model_free(m);
		free(gen);
		free(now_hashes);
		model_info_free(&mi);
		if (rc == 1) {
			if (atomic_load(stop) == TRAIN_STOP_SHUTDOWN) {
				jobs_log(d, id, "info", "daemon stopping; the evaluation starts again from its "
				    "first example after the restart");
				goto out;
			}
			jobs_log(d, id, "info", "cancelled after %u of %u examples", done, total);
			jobs_set_state(d, id, JOB_CANCELLED, "cancelled by its owner");
			goto out;
		}
		if (rc != 0)
			goto fail;
	}
	jobs_set_stage(d, id, "summarising");
	if (summarise(d, &e, set, values, n, err, sizeof(err)) != 0)
		goto fail;
	{
		double el = now_s() - t0;

		evals_set_progress(d, e.id, metrics, (uint32_t)n, done, el > 0 ? done / el : 0);
		jobs_log(d, id, "info", "evaluation %lld done: %u examples in %.1f s (%.1f examples/s)",
		    (long long)e.id, done, el, el > 0 ? done / el : 0);
		/* each part's own rate, without loading, tokenizing and storing */
		if (gen_s == 0)
			jobs_log(d, id, "info", "teacher-forced loss: %.1f examples/s",
			    loss_s > 0 ? done / loss_s : 0);
		else
			jobs_log(d, id, "info", "teacher-forced loss: %.1f examples/s; generation: %.1f "
			    "examples/s", loss_s > 0 ? done / loss_s : 0, done / gen_s);
	}
	jobs_set_state(d, id, JOB_SUCCEEDED, NULL);
	goto out;
fail:
	jobs_log(d, id, "error", "failed: %s", err);
	jobs_set_state(d, id, JOB_FAILED, err);
out:
	for (size_t i = 0; ex != NULL && i < n; i++)
		free(ex[i].prompt);
	free(ex);
	free(values);
	dataset_free(part_a);
	dataset_free(part_b);
	if (have_ds)
		dataset_info_free(&ds);
	if (have_e)
		evals_run_free(&e);
	job_info_free(&j);
}

/* Queues base against tuned on dataset ds for training job j, named name;
 * what to say of it in the job's log is what. */
static void
after_training_submit(struct ftuned *d, struct job_info *j, struct dataset_info *ds, char *name,
    Ft__EvalSplit split, char *metrics, const char *what)
{
	Ft__EvalSpec s = FT__EVAL_SPEC__INIT;
	char *models[2], base[32], err[512];
	int64_t eval_id, eval_job;
	struct arena a = ARENA_INIT;
	Ft__EvalRef **refs;
	size_t n, i = 0;
	int code;

	/* A job resumed after a crash queues only what it had not yet. */
	code = evals_refs(store_lock(d->store), &a, j->id, &refs, &n);
	store_unlock(d->store);
	while (code == FT__CODE__OK && i < n && strcmp(refs[i]->name, name) != 0)
		i++;
	arena_release(&a);
	if (code != FT__CODE__OK) {
		jobs_log(d, j->id, "warn", "automatic evaluation on %s not queued: cannot list the "
		    "job's evaluations", what);
		return;
	}
	if (i < n)
		return;

	snprintf(base, sizeof(base), "%lld", (long long)j->base_id);
	models[0] = base;
	models[1] = j->result_model;
	s.n_models = 2;
	s.models = models;
	s.data = ds->name;
	s.name = name;
	s.split = split;
	s.metrics = metrics;
	s.template_ = j->spec->template_;
	s.seed = j->spec->seed;
	s.priority = j->spec->priority;
	s.limit = EVAL_AUTO_LIMIT;
	if (eval_submit(d, j->owner_uid, 0, &s, j->id, &eval_id, &eval_job, err, sizeof(err)) ==
	    FT__CODE__OK)
		jobs_log(d, j->id, "info", "queued evaluation %lld (job %lld): base against tuned on %s",
		    (long long)eval_id, (long long)eval_job, what);
	else
		jobs_log(d, j->id, "warn", "automatic evaluation on %s not queued: %s", what, err);
}

void
eval_job_after_training(struct ftuned *d, int64_t job_id)
{
	struct job_info j;
	struct dataset_info ds;
	char name[48], dsid[32], what[REGISTRY_NAME_MAX + 64];

	if (jobs_get(d, job_id, &j) != 0)
		return;
	snprintf(dsid, sizeof(dsid), "%lld", (long long)j.dataset_id);
	if (j.result_model[0] == '\0' || j.base_id <= 0 || datasets_find(d, dsid, &ds) != 0) {
		job_info_free(&j);
		return;
	}
	snprintf(name, sizeof(name), "job-%lld", (long long)job_id);
	if (ds.validation_records == 0)
		jobs_log(d, job_id, "info", "no automatic evaluation: dataset %s has no validation split",
		    ds.name);
	else
		after_training_submit(d, &j, &ds, name, FT__EVAL_SPLIT__EVAL_SPLIT_VALIDATION, "", "the validation split");
	dataset_info_free(&ds);
	if (j.spec->general_data[0] != '\0') {
		/* Forgetting: the loss (perplexity) on general text, its held-out
		 * part when it has one. */
		if (datasets_find(d, j.spec->general_data, &ds) != 0) {
			jobs_log(d, job_id, "warn", "automatic evaluation on --general-data not queued: "
			    "dataset '%s' no longer exists", j.spec->general_data);
		} else {
			snprintf(name, sizeof(name), "job-%lld-general", (long long)job_id);
			snprintf(what, sizeof(what), "general text %s, to measure forgetting", ds.name);
			after_training_submit(d, &j, &ds, name, ds.validation_records ? FT__EVAL_SPLIT__EVAL_SPLIT_VALIDATION : FT__EVAL_SPLIT__EVAL_SPLIT_ALL,
			    "loss", what);
			dataset_info_free(&ds);
		}
	}
	job_info_free(&j);
}
