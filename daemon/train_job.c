/*
 * train_job.c - runs one training job on the engine.  See train_job.h.
 *
 * Data order is a pure function of (seed, epoch, step): rows are shuffled
 * per epoch with a seeded generator, and step s reads a fixed slice.  With
 * the trainer's checkpoint (weights or adapters, AdamW moments, RNG, step),
 * a resumed job therefore continues exactly as an uninterrupted one.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "datasets.h"
#include "eval_job.h"
#include "fsutil.h"
#include "fte.h"
#include "ft_enum.h"
#include "jobs.h"
#include "log.h"
#include "registry.h"
#include "rng.h"
#include "rows.h"
#include "testhook.h"
#include "tokcache.h"
#include "train_job.h"

#define DEFAULT_SAVE_EVERY 50

void queue_train_config(const Ft__JobSpec *s, fte_train_config *tc);

/* The tokens of one dataset part (path, loaded as part): from the cache
 * when it holds them (*hit), else encoded and stored there. */
static int
part_tokens(struct ftuned *d, int64_t id, const struct dataset_info *di, const char *path,
    const struct dataset *part, const struct model_info *base, const fte_tokenizer *tok,
    const struct chat_format *fmt, const char *tmpl, int last, struct tokcache_form *out,
    int *hit, char *err, size_t err_len)
{
	struct tokcache_key k;
	char why[256];

	if (tokcache_key_init(&k, di->hash, path, base, tmpl, last, err, err_len) != 0)
		return -1;
	if (tokcache_get(d, &k, out, why, sizeof(why)) == 0) {
		*hit = 1;
		return 0;
	}
	if (why[0] != '\0')
		jobs_log(d, id, "warn", "cached tokens of %s unusable (%s); tokenizing again", path, why);
	if (tokcache_tokenize(&k, part, tok, fmt, last, 0, out, err, err_len) != 0)
		return -1;
	tokcache_put(d, &k, out);
	return 0;
}

/* A record longer than a row, written again without its earliest turns
 * (rows_refit_fn). */
struct refit_ctx {
	const struct chat_format *fmt;
	const fte_tokenizer *tok;
	const struct dataset *part;
	int last;
};

static int
refit(void *ctx, size_t i, size_t max, int **ids, unsigned char **mask, size_t *n_ids,
    size_t *dropped)
{
	const struct refit_ctx *c = ctx;

	return chat_format_encode_fit(c->fmt, c->tok, dataset_sample(c->part, i), c->last, max,
	    ids, mask, n_ids, dropped) == FTE_OK ? 0 : -1;
}

/* The row order of one epoch: a seeded Fisher-Yates shuffle. */
static void
epoch_order(size_t *perm, size_t n, uint64_t seed, uint32_t epoch)
{
	uint64_t x = seed ^ (0x632be59bd9b4e019ULL * (epoch + 1));

	rng_permutation(perm, n, &x);
}

/* Micro-batch buffers for one step: G micro-batches of up to B rows. */
struct step_buf {
	int B, T, G;
	int *tokens, *targets, *segments;
	fte_batch *micro;
};

static int
step_buf_init(struct step_buf *sb, int B, int T, int G, int with_segments)
{
	size_t n = (size_t)B * T * G;

	sb->B = B;
	sb->T = T;
	sb->G = G;
	sb->tokens = malloc(n * sizeof(int));
	sb->targets = malloc(n * sizeof(int));
	sb->segments = with_segments ? malloc(n * sizeof(int)) : NULL;
	sb->micro = calloc((size_t)G, sizeof(fte_batch));
	return sb->tokens && sb->targets && sb->micro && (!with_segments || sb->segments) ? 0 : -1;
}

static void
step_buf_free(struct step_buf *sb)
{
	free(sb->tokens);
	free(sb->targets);
	free(sb->segments);
	free(sb->micro);
}

/* Fills micro-batches with rows idx[0..count); returns how many. */
static int
step_buf_fill(struct step_buf *sb, const struct rows *r, const size_t *idx, size_t count)
{
	int m = 0;
	size_t used = 0;

	while (used < count && m < sb->G) {
		int b = (int)(count - used < (size_t)sb->B ? count - used : (size_t)sb->B);
		size_t off = (size_t)m * sb->B * sb->T;

		for (int i = 0; i < b; i++) {
			size_t src = idx[used + i] * r->T, dst = off + (size_t)i * sb->T;

			memcpy(sb->tokens + dst, r->tokens + src, sb->T * sizeof(int));
			memcpy(sb->targets + dst, r->targets + src, sb->T * sizeof(int));
			if (sb->segments)
				memcpy(sb->segments + dst, r->segments + src, sb->T * sizeof(int));
		}
		sb->micro[m] = (fte_batch){ sb->tokens + off, sb->targets + off,
		    sb->segments ? sb->segments + off : NULL, b, sb->T };
		used += (size_t)b;
		m++;
	}
	return m;
}

/* Mean validation loss over every unmasked target, or NAN without data: a
 * forward pass without dropout that leaves gradients, optimizer and random
 * state alone, so evaluating does not change the training run. */
static double
validation_loss(fte_trainer *t, const struct rows *val, int B)
{
	struct step_buf sb;
	size_t *idx;
	double sum = 0;
	size_t weight = 0;

	if (val->n == 0)
		return NAN;
	if ((idx = malloc(val->n * sizeof(*idx))) == NULL ||
	    step_buf_init(&sb, B, val->T, 1, val->segments != NULL) != 0) {
		free(idx);
		return NAN;
	}
	for (size_t i = 0; i < val->n; i++)
		idx[i] = i;
	for (size_t start = 0; start < val->n; start += (size_t)B) {
		size_t count = val->n - start < (size_t)B ? val->n - start : (size_t)B, n_tg = 0;
		float loss;

		step_buf_fill(&sb, val, idx + start, count);
		for (size_t k = 0; k < count * val->T; k++)
			n_tg += sb.targets[k] >= 0;
		if (n_tg == 0 || fte_trainer_eval(t, sb.micro, 1, &loss) != FTE_OK)
			continue;
		sum += (double)loss * n_tg;
		weight += n_tg;
	}
	step_buf_free(&sb);
	free(idx);
	return weight ? sum / weight : NAN;
}

struct progress {
	struct ftuned *d;
	int64_t id;
	uint32_t total;
	uint32_t steps_per_epoch;
	atomic_int *stop;
};

static int
on_step(void *arg, const fte_step_stats *st)
{
	struct progress *p = arg;

	jobs_metric_add(p->d, p->id, (uint32_t)st->step, st->loss, st->lr, st->grad_norm,
	    st->tokens_per_s);
	jobs_set_progress(p->d, p->id, (uint32_t)st->step, p->total,
	    ((uint32_t)st->step - 1) / p->steps_per_epoch + 1, st->loss, st->tokens_per_s);
	return atomic_load(p->stop) != TRAIN_STOP_NONE;
}

/* Latest loadable checkpoint of the job: restores it and returns its step
 * (0 when none).  A corrupt newest checkpoint falls back to the previous. */
static int
checkpoint_restore(struct ftuned *d, int64_t id, const char *dir, fte_trainer *t)
{
	int steps[64], n = 0, best = -1;
	struct dirent *e;
	DIR *dd = opendir(dir);

	if (dd == NULL)
		return 0;
	while ((e = readdir(dd)) != NULL && n < 64) {
		int s;

		if (sscanf(e->d_name, "checkpoint-%d.bin", &s) == 1 && s > 0)
			steps[n++] = s;
	}
	closedir(dd);
	while (n > 0) {
		char path[PATH_MAX];
		int k = 0;

		for (int i = 1; i < n; i++)
			if (steps[i] > steps[k])
				k = i;
		snprintf(path, sizeof(path), "%s/checkpoint-%d.bin", dir, steps[k]);
		if (fte_trainer_restore(t, path, NULL) == FTE_OK) {
			best = steps[k];
			break;
		}
		jobs_log(d, id, "warn", "checkpoint %s unusable (%s); trying an older one", path,
		    fte_last_error());
		steps[k] = steps[--n];
	}
	return best > 0 ? best : 0;
}

static int
int_desc(const void *a, const void *b)
{
	return *(const int *)b - *(const int *)a;
}

/* Keeps the newest `keep` checkpoints of the job and deletes the rest. */
static void
checkpoint_prune(const char *dir, int keep)
{
	int steps[256], n = 0;
	struct dirent *e;
	DIR *dd = opendir(dir);
	char path[PATH_MAX];

	if (dd == NULL)
		return;
	while ((e = readdir(dd)) != NULL && n < 256) {
		int s;

		if (sscanf(e->d_name, "checkpoint-%d.bin", &s) == 1)
			steps[n++] = s;
	}
	closedir(dd);
	qsort(steps, (size_t)n, sizeof(int), int_desc);
	for (int i = keep; i < n; i++) {
		snprintf(path, sizeof(path), "%s/checkpoint-%d.bin", dir, steps[i]);
		unlink(path);
		snprintf(path, sizeof(path), "%s/checkpoint-%d.stop", dir, steps[i]);
		unlink(path);
	}
}

/*
 * Early stopping.  Its state is saved beside each checkpoint (checkpoint-
 * N.stop, written before checkpoint-N.bin), so a resumed job stops where an
 * uninterrupted one does.  While it is on, the weights of each new best
 * validation loss are saved as the job would register them, in best-STEP/;
 * the job registers those.  A best-STEP/ stays while the running job or a
 * kept checkpoint's state names it.
 */
struct early_stop {
	double best_val;            /* INFINITY before the first evaluation */
	uint32_t evals_since_best;
	uint32_t best_step;         /* 0: no evaluation yet */
};

static int
early_stop_save(const char *dir, uint32_t step, const struct early_stop *es, char *err,
    size_t err_len)
{
	char path[PATH_MAX], buf[128];
	int n;

	snprintf(path, sizeof(path), "%s/checkpoint-%u.stop", dir, step);
	/* %a: the loss is read back bit for bit */
	n = snprintf(buf, sizeof(buf), "%a %u %u\n", es->best_val, es->evals_since_best,
	    es->best_step);
	return fs_write_atomic(path, buf, (size_t)n, err, err_len);
}

/* The state saved with checkpoint step; 0, or -1 when there is none. */
static int
early_stop_load(const char *dir, int step, struct early_stop *es)
{
	char path[PATH_MAX];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/checkpoint-%d.stop", dir, step);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	ok = fscanf(f, "%la %u %u", &es->best_val, &es->evals_since_best, &es->best_step) == 3;
	fclose(f);
	return ok ? 0 : -1;
}

/* Removes the best-STEP/ directories other than keep's that no checkpoint
 * state names. */
static void
best_prune(const char *dir, uint32_t keep)
{
	uint32_t named[256];
	int n = 0, s;
	struct dirent *e;
	DIR *dd = opendir(dir);
	char path[PATH_MAX];

	if (dd == NULL)
		return;
	while ((e = readdir(dd)) != NULL && n < 256) {
		struct early_stop es;
		char c;

		if (sscanf(e->d_name, "checkpoint-%d.sto%c", &s, &c) == 2 && c == 'p' &&
		    early_stop_load(dir, s, &es) == 0)
			named[n++] = es.best_step;
	}
	rewinddir(dd);
	while ((e = readdir(dd)) != NULL) {
		char c;
		int keep_it;

		if (sscanf(e->d_name, "best-%d%c", &s, &c) != 1 || (uint32_t)s == keep)
			continue;
		keep_it = 0;
		for (int i = 0; i < n; i++)
			keep_it |= named[i] == (uint32_t)s;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!keep_it)
			fs_rm_rf(path);
	}
	closedir(dd);
}

/* checkpoint_write saves the trainer at step with the early-stop state and
 * keeps the newest checkpoint_keep.  0, or -1 with a message. */
static int
checkpoint_write(struct ftuned *d, int64_t id, const char *dir, fte_trainer *t, uint32_t step,
    const struct early_stop *es, char *err, size_t err_len)
{
	char path[PATH_MAX];

	if (early_stop_save(dir, step, es, err, err_len) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/checkpoint-%u.bin", dir, step);
	if (fte_trainer_save(t, path, step) != FTE_OK) {
		snprintf(err, err_len, "checkpoint: %s", fte_last_error());
		return -1;
	}
	jobs_set_checkpoint(d, id, step);
	checkpoint_prune(dir, d->cfg.checkpoint_keep);
	best_prune(dir, es->best_step);
	return 0;
}

static char *
lineage_json(const struct model_info *base, const struct dataset_info *ds,
    const struct job_info *j, double loss, double val, double base_val, uint32_t steps)
{
	const Ft__JobSpec *s = j->spec;
	json_t *files = json_object(), *root;
	char type[FT_ENUM_WORD_MAX], method[FT_ENUM_WORD_MAX], schedule[FT_ENUM_WORD_MAX];
	char *text;

	for (size_t i = 0; i < base->n_files; i++)
		json_object_set_new(files, base->files[i].name, json_string(base->files[i].hash));
	root = json_pack("{s:{s:s,s:I,s:o},s:{s:s,s:I,s:s},s:I,s:s,s:s,"
	    "s:{s:i,s:f,s:s,s:i,s:i,s:i,s:i,s:s,s:i,s:f,s:f,s:I,s:i,s:f,s:s,s:s,s:s},"
	    "s:{s:f,s:f,s:f,s:i}}",
	    "base", "name", base->name, "id", (json_int_t)base->id, "files", files,
	    "dataset", "name", ds->name, "id", (json_int_t)ds->id, "blake2b", ds->hash,
	    "job", (json_int_t)j->id, "type", ft_enum_word(&ft__job_type__descriptor, s->type, type),
	    "method", ft_enum_word(&ft__train_method__descriptor, s->method, method),
	    "hyperparameters", "epochs", (int)s->epochs, "lr", (double)s->lr,
	    "schedule", ft_enum_word(&ft__lr_schedule__descriptor, s->schedule, schedule), "warmup", (int)s->warmup, "batch_size", (int)s->batch_size,
	    "grad_accum", (int)s->grad_accum, "seq_len", (int)s->seq_len, "template", s->template_,
	    "lora_rank", (int)s->lora_rank, "lora_alpha", (double)s->lora_alpha,
	    "weight_decay", (double)s->weight_decay, "seed", (json_int_t)s->seed,
	    "max_steps", (int)s->max_steps, "clip", (double)s->clip, "lora_targets", s->lora_targets,
	    "train_on", s->train_on == FT__TRAIN_ON__TRAIN_ON_LAST ? "last" : "all",
	    "packing", s->packing == FT__PACKING__PACKING_ON ? "on" : "off",
	    "metrics", "final_loss", isnan(loss) ? -1.0 : loss, "val_loss", isnan(val) ? -1.0 : val,
	    "base_val_loss", isnan(base_val) ? -1.0 : base_val, "steps", (int)steps);
	text = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	return text;
}

/* adapter_save writes the LoRA adapters of t, training a model of
 * configuration c, into dir and their path into path (PATH_MAX).  0, or -1
 * with a message. */
static int
adapter_save(fte_trainer *t, const fte_train_config *tc, const fte_config *c,
    const char *dir, char *path, char *err, size_t err_len)
{
	int n = fte_trainer_num_trainable(t), rc = -1;
	fte_tensor **ts = calloc((size_t)n, sizeof(*ts));
	fte_peft_adapter a = { tc->lora.rank, tc->lora.alpha, tc->lora.dropout, NULL, n, NULL };

	if (ts == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++)
		(void)fte_trainer_trainable(t, i, &ts[i], NULL);
	a.tensors = ts;
	snprintf(path, PATH_MAX, "%s/%s", dir, REGISTRY_ADAPTER_FILE);
	if (fte_adapter_save(c, &a, path) != FTE_OK)
		snprintf(err, err_len, "saving the adapter: %s", fte_last_error());
	else
		rc = 0;
	free(ts);
	return rc;
}

/* result_save writes what the job registers into out_dir (new): the LoRA
 * adapter (its path into path, PATH_MAX), or the whole model in Hugging
 * Face layout with the base's tokenizer.  0, or -1 with a message. */
static int
result_save(fte_trainer *t, const fte_train_config *tc, fte_model *m,
    const struct model_info *base, const char *out_dir, char *path, char *err, size_t err_len)
{
	fs_rm_rf(out_dir);
	if (tc->lora.rank > 0) {
		/* A LoRA model is registered as its adapter, beside its base. */
		if (fs_mkdirs(out_dir, 0750) != 0) {
			snprintf(err, err_len, "%s: %s", out_dir, strerror(errno));
			return -1;
		}
		return adapter_save(t, tc, fte_model_config(m), out_dir, path, err, err_len);
	}
	/* llama2.c bases have no Hugging Face tokenizer files to copy */
	if (fte_hf_save(m, base->format != MODEL_LLAMA2C ? base->dir : NULL, out_dir) != FTE_OK) {
		snprintf(err, err_len, "saving the tuned model: %s", fte_last_error());
		return -1;
	}
	/* The tuned model keeps its base's tokenizer whatever its kind
	 * (fte_hf_save copies only Hugging Face tokenizer files). */
	return fs_copy_into(base->tokenizer, out_dir, err, err_len);
}

/* best_save keeps the current weights as those of the best validation
 * loss, at step: best-STEP/, made whole before it takes that name. */
static int
best_save(fte_trainer *t, const fte_train_config *tc, fte_model *m, const struct model_info *base,
    const char *dir, uint32_t step, char *err, size_t err_len)
{
	char tmp[PATH_MAX], best[PATH_MAX], path[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s/best.tmp", dir);
	snprintf(best, sizeof(best), "%s/best-%u", dir, step);
	if (result_save(t, tc, m, base, tmp, path, err, err_len) != 0)
		return -1;
	fs_rm_rf(best);
	if (rename(tmp, best) != 0 || fs_fsync_dir(best, 0) != 0) {
		snprintf(err, err_len, "%s: %s", best, strerror(errno));
		return -1;
	}
	best_prune(dir, step);
	return 0;
}

/* job_succeed ends job id with its registered model model_id: the result,
 * the automatic evaluations, then the state, in that order so a job seen
 * SUCCEEDED lists its evaluations; its files in dir go first.  A job killed
 * on the way runs this again when it resumes (train_job_run). */
static void
job_succeed(struct ftuned *d, int64_t id, const char *dir, int64_t model_id)
{
	char path[PATH_MAX];

	jobs_set_result(d, id, model_id);
	eval_job_after_training(d, id);
	/* Checkpoints are only for resuming; the model is registered. */
	snprintf(path, sizeof(path), "%s/out", dir);
	fs_rm_rf(path);
	checkpoint_prune(dir, 0);
	best_prune(dir, 0);
	jobs_set_state(d, id, JOB_SUCCEEDED, NULL);
}

void
train_job_run(struct ftuned *d, int64_t id, atomic_int *stop)
{
	char err[1024] = "", dir[PATH_MAX], path[PATH_MAX], out_dir[PATH_MAX];
	struct job_info j;
	struct model_info base;
	struct dataset_info ds;
	struct dataset *train_ds = NULL, *val_ds = NULL;
	struct rows train = { 0 }, val = { 0 };
	struct step_buf sb = { 0 };
	fte_model *m = NULL;
	fte_tokenizer *tok = NULL;
	struct chat_format fmt = { 0 };
	fte_trainer *t = NULL;
	fte_train_config tc;
	size_t *perm = NULL;
	uint32_t step = 0, total, spe;
	struct early_stop es = { INFINITY, 0, 0 };
	double val_loss = NAN, base_val = NAN, last_loss = NAN;
	enum dataset_kind kind;
	int have_base = 0, have_ds = 0, rc, per_step, cpt, keep_best;
	int64_t model_id;

	if (jobs_get(d, id, &j) != 0)
		return;
	if (j.state != JOB_RUNNING) {
		job_info_free(&j);
		return; /* cancelled between being claimed and started */
	}
	snprintf(dir, sizeof(dir), "%s/jobs/%lld", d->cfg.state_dir, (long long)id);
	/* Killed after registering its model: the job only has to end. */
	if ((model_id = registry_model_of_job(d, id)) > 0) {
		jobs_log(d, id, "info", "resumed after registering model %lld; finishing",
		    (long long)model_id);
		job_succeed(d, id, dir, model_id);
		job_info_free(&j);
		return;
	}
	if (fs_mkdirs(dir, 0750) != 0) {
		snprintf(err, sizeof(err), "%s: %s", dir, strerror(errno));
		goto fail;
	}
	fte_threads_set(d->training_threads);
	cpt = j.spec->type == FT__JOB_TYPE__JOB_TYPE_CPT;

	/* Inputs, verified: a corrupted model file is found before use. */
	jobs_set_stage(d, id, "loading");
	{
		char idbuf[32];

		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j.base_id);
		if (j.base_id <= 0 || registry_model_find(d, idbuf, &base) != 0) {
			snprintf(err, sizeof(err), "base model %s no longer exists", j.spec->base_model);
			goto fail;
		}
		have_base = 1;
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j.dataset_id);
		if (j.dataset_id <= 0 || datasets_find(d, idbuf, &ds) != 0) {
			snprintf(err, sizeof(err), "dataset %s no longer exists", j.spec->data);
			goto fail;
		}
		have_ds = 1;
	}
	if (registry_model_verify(d, &base, err, sizeof(err)) != 0)
		goto fail;
	if (registry_model_load(d, &base, &m, err, sizeof(err)) != 0)
		goto fail;
	if (fte_tokenizer_load(base.tokenizer, &tok) != FTE_OK) {
		snprintf(err, sizeof(err), "loading %s: %s", base.name, fte_last_error());
		goto fail;
	}
	kind = cpt ? DATASET_KIND_TEXT : DATASET_KIND_INSTRUCT;
	if (dataset_load_jsonl(ds.train_path, kind, &train_ds, err, sizeof(err)) != 0 ||
	    (ds.validation_path[0] && dataset_load_jsonl(ds.validation_path, kind, &val_ds, err,
	    sizeof(err)) != 0))
		goto fail;

	jobs_set_stage(d, id, "tokenizing");
	train.T = val.T = (int)j.spec->seq_len;
	/* the template the tuned model will be served with (chat_template.h) */
	if (!cpt && chat_format_open(&d->cfg, j.spec->template_, base.dir, NULL, tok, &fmt, err,
	    sizeof(err)) != 0)
		goto fail;
	{
		struct tokcache_form tf = { 0 }, vf = { 0 };
		const char *tmpl = cpt ? NULL : j.spec->template_;
		int hit_t = 0, hit_v = 0, last = j.spec->train_on == FT__TRAIN_ON__TRAIN_ON_LAST;
		/* a job queued before packing existed trains as it was queued */
		int pack = j.spec->packing == FT__PACKING__PACKING_ON;
		struct refit_ctx rt = { &fmt, tok, train_ds, last }, rv = { &fmt, tok, val_ds, last };

		rc = part_tokens(d, id, &ds, ds.train_path, train_ds, &base, tok, cpt ? NULL : &fmt,
		    tmpl, last, &tf, &hit_t, err, sizeof(err));
		if (rc == 0 && val_ds != NULL)
			rc = part_tokens(d, id, &ds, ds.validation_path, val_ds, &base, tok,
			    cpt ? NULL : &fmt, tmpl, last, &vf, &hit_v, err, sizeof(err));
		if (rc == 0 && (hit_t || hit_v))
			jobs_log(d, id, "info", "tokenized rows reused from the cache (%s)",
			    hit_t && hit_v ? "training and validation" : hit_t ? "training" : "validation");
		if (rc == 0)
			rc = cpt ? rows_cpt(&train, &tf, fte_tokenizer_eos(tok), err, sizeof(err)) :
			    rows_sft(&train, &tf, pack, refit, &rt, err, sizeof(err));
		if (rc == 0 && val_ds != NULL)
			rc = cpt ? rows_cpt(&val, &vf, fte_tokenizer_eos(tok), err, sizeof(err)) :
			    rows_sft(&val, &vf, pack, refit, &rv, err, sizeof(err));
		tokcache_form_free(&tf);
		tokcache_form_free(&vf);
		if (rc != 0)
			goto fail;
	}
	if (train.n == 0) {
		snprintf(err, sizeof(err), "the dataset gives no training rows");
		goto fail;
	}
	for (int v = 0; v < 2; v++) {
		const struct rows *r = v ? &val : &train;
		const char *part = v ? "validation" : "training";

		if (r->shortened > 0)
			jobs_log(d, id, "warn", "%zu %s records were longer than --seq-len %d: their "
			    "earliest %zu turns were left out (the system message kept)", r->shortened,
			    part, r->T, r->turns_dropped);
		if (r->cut > 0)
			jobs_log(d, id, "warn", "%zu %s records were cut: their last exchange alone is "
			    "longer than --seq-len %d, so the start of its prompt was left out",
			    r->cut, part, r->T);
	}
	per_step = (int)(j.spec->batch_size * j.spec->grad_accum);
	spe = (uint32_t)((train.n + (size_t)per_step - 1) / (size_t)per_step);
	total = spe * j.spec->epochs;
	if (j.spec->max_steps > 0 && j.spec->max_steps < total)
		total = j.spec->max_steps;
	jobs_log(d, id, "info", "%zu training rows, %zu validation rows of %d tokens; %u steps "
	    "(%u per epoch)", train.n, val.n, train.T, total, spe);

	queue_train_config(j.spec, &tc);
	tc.total_steps = (int)total;
	if ((rc = fte_trainer_create(m, &tc, &t)) != FTE_OK) {
		snprintf(err, sizeof(err), "trainer: %s", fte_last_error());
		goto fail;
	}
	step = (uint32_t)checkpoint_restore(d, id, dir, t);
	if (step > 0) {
		/* A checkpoint of an older daemon has no early-stop state: it starts afresh. */
		if (early_stop_load(dir, (int)step, &es) != 0)
			es = (struct early_stop){ INFINITY, 0, 0 };
		jobs_log(d, id, "info", "resumed from the checkpoint at step %u", step);
	}
	keep_best = j.spec->early_stop > 0 && val.n > 0;
	if ((perm = malloc(train.n * sizeof(*perm))) == NULL ||
	    step_buf_init(&sb, (int)j.spec->batch_size, train.T, (int)j.spec->grad_accum,
	    train.segments != NULL) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	{
		struct progress p = { d, id, total, spe, stop };

		fte_trainer_set_progress(t, on_step, &p);
		fte_trainer_set_abort(t, stop);
		jobs_set_stage(d, id, "training");
		if (step == 0 && val.n > 0) {
			jobs_set_stage(d, id, "evaluating");
			base_val = validation_loss(t, &val, (int)j.spec->batch_size);
			jobs_set_val_loss(d, id, base_val, 1);
			jobs_metric_val(d, id, 0, base_val);
			jobs_log(d, id, "info", "validation loss before training: %.4f", base_val);
			jobs_set_stage(d, id, "training");
		} else {
			base_val = j.base_val_loss;
		}
		for (uint32_t epoch = step / spe; step < total; epoch++) {
			epoch_order(perm, train.n, j.spec->seed, epoch);
			for (uint32_t k = step % spe; k < spe && step < total; k++) {
				size_t start = (size_t)k * per_step;
				size_t count = train.n - start < (size_t)per_step ? train.n - start : (size_t)per_step;
				int n_micro = step_buf_fill(&sb, &train, perm + start, count);
				fte_step_stats st;
				uint32_t save_every = j.spec->save_every ? j.spec->save_every : DEFAULT_SAVE_EVERY;

				rc = fte_trainer_step(t, sb.micro, n_micro, &st);
				if (rc == FTE_OK || (rc == FTE_ECANCELED && fte_trainer_steps(t) > (int)step)) {
					step = (uint32_t)fte_trainer_steps(t);
					last_loss = st.loss;
				}
				if (rc == FTE_ECANCELED || atomic_load(stop) != TRAIN_STOP_NONE) {
					if (atomic_load(stop) == TRAIN_STOP_SHUTDOWN) {
						jobs_log(d, id, "info", "daemon stopping at step %u; the job "
						    "resumes from its last checkpoint", step);
						goto leave_running;
					}
					jobs_log(d, id, "info", "cancelled at step %u", step);
					jobs_set_state(d, id, JOB_CANCELLED, "cancelled by its owner");
					goto out;
				}
				if (rc != FTE_OK) {
					snprintf(err, sizeof(err), "step %u: %s", step + 1, fte_last_error());
					goto fail;
				}
				if (val.n > 0 && ((j.spec->eval_every && step % j.spec->eval_every == 0) ||
				    step == total)) {
					val_loss = validation_loss(t, &val, (int)j.spec->batch_size);
					jobs_metric_val(d, id, step, val_loss);
					jobs_set_val_loss(d, id, val_loss, 0);
					if (val_loss < es.best_val) {
						es = (struct early_stop){ val_loss, 0, step };
						if (keep_best && best_save(t, &tc, m, &base, dir, step, err,
						    sizeof(err)) != 0)
							goto fail;
					} else if (j.spec->early_stop && ++es.evals_since_best >= j.spec->early_stop) {
						jobs_log(d, id, "info", "early stop at step %u: validation loss "
						    "%.4f has not improved for %u evaluations", step, val_loss,
						    es.evals_since_best);
						goto finished;
					}
				}
				if (step % save_every == 0 && step < total &&
				    checkpoint_write(d, id, dir, t, step, &es, err, sizeof(err)) != 0)
					goto fail;
				if (j.spec->time_limit > 0 && step < total &&
				    time(NULL) - (time_t)j.started_at >= (time_t)j.spec->time_limit) {
					if (step % save_every != 0 &&
					    checkpoint_write(d, id, dir, t, step, &es, err, sizeof(err)) != 0)
						goto fail;
					snprintf(err, sizeof(err), "time limit of %u s reached at step %u "
					    "(checkpoint saved)", j.spec->time_limit, step);
					goto fail;
				}
			}
		}
	}
finished:
	if (val.n > 0 && isnan(val_loss)) {
		val_loss = validation_loss(t, &val, (int)j.spec->batch_size);
		jobs_set_val_loss(d, id, val_loss, 0);
	}
	jobs_set_stage(d, id, "saving");
	if (keep_best && es.best_step > 0) {
		/* Early stopping registers the best weights, saved when they were seen. */
		snprintf(out_dir, sizeof(out_dir), "%s/best-%u", dir, es.best_step);
		snprintf(path, sizeof(path), "%s/%s", out_dir, REGISTRY_ADAPTER_FILE);
		val_loss = es.best_val;
		jobs_set_val_loss(d, id, val_loss, 0);
		jobs_log(d, id, "info", "registering the weights of step %u, the best validation "
		    "loss (%.4f)", es.best_step, es.best_val);
	} else {
		snprintf(out_dir, sizeof(out_dir), "%s/out", dir);
		if (result_save(t, &tc, m, &base, out_dir, path, err, sizeof(err)) != 0)
			goto fail;
	}
	{
		char name[128], *lineage;
		int code;

		if (j.spec->name[0])
			snprintf(name, sizeof(name), "%s", j.spec->name);
		else
			snprintf(name, sizeof(name), "%.80s-%lld", base.name, (long long)id);
		lineage = lineage_json(&base, &ds, &j, last_loss, val_loss, base_val, step);
		code = tc.lora.rank > 0 ? registry_adapter_add(d, j.owner_uid, path, name, base.id, id,
		    lineage, &model_id, err, sizeof(err)) : registry_model_add(d, j.owner_uid, out_dir,
		    name, MODEL_TUNED, base.id, id, lineage, &model_id, err, sizeof(err));
		free(lineage);
		if (code != FT__CODE__OK)
			goto fail;
		jobs_log(d, id, "info", "registered tuned model %lld '%s' (validation loss %.4f, "
		    "base %.4f)", (long long)model_id, name, val_loss, base_val);
	}
	testhook_pause("after_register");
	job_succeed(d, id, dir, model_id);
	goto out;
fail:
	jobs_log(d, id, "error", "failed: %s", err);
	jobs_set_state(d, id, JOB_FAILED, err);
	goto out;
leave_running:
out:
	step_buf_free(&sb);
	free(perm);
	fte_trainer_free(t);
	chat_format_free(&fmt);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	rows_free(&train);
	rows_free(&val);
	dataset_free(train_ds);
	dataset_free(val_ds);
	if (have_base)
		model_info_free(&base);
	if (have_ds)
		dataset_info_free(&ds);
	job_info_free(&j);
}
