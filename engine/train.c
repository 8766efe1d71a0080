/*
 * train.c - the trainer: gradient accumulation over micro-batches, global
 * norm clipping, learning-rate schedules, AdamW exactly as
 * torch.optim.AdamW, and checkpoints of the whole training state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "kernels/kernels.h"
#include "transformer.h"

typedef struct trainable {
	fte_tensor param, grad;
	float *m, *v;                /* AdamW moments */
	int decay;
} trainable;

struct fte_trainer {
	fte_model *m;
	fte_train_config cfg;
	int lora_mode;
	size_t n_floats;             /* trainable floats */
	float *grad_mem, *m_mem, *v_mem;
	float *lora_mem;             /* adapter parameters (LoRA mode) */
	fte__weights g;              /* gradient views; all NULL in LoRA mode */
	fte__lora lora, glora;
	fte__acts acts;
	int n_tr;
	trainable *tr;
	int step;
	uint64_t rng;
	const atomic_int *abort;
	fte_progress_fn progress;
	void *progress_arg;
};

void
fte_train_config_default(fte_train_config *c)
{
	memset(c, 0, sizeof(*c));
	c->batch = 1;
	c->seq = 256;
	c->lr = 1e-4f;
	c->beta1 = 0.9f;
	c->beta2 = 0.999f;
	c->eps = 1e-8f;
	c->schedule = FTE_SCHEDULE_CONSTANT;
	c->seed = 1234;
	c->lora.alpha = 16.0f;
	c->lora.targets = FTE_LORA_Q | FTE_LORA_V;
}

static int
train_config_check(const fte_config *mc, const fte_train_config *c)
{
	int rc;

	if ((rc = fte_config_check(mc)) != FTE_OK)
		return rc;
	if (c->batch <= 0 || c->seq <= 0)
		return fte_error_set(FTE_EINVAL, "train config: batch and seq must be positive");
	if (c->seq > mc->max_seq_len)
		return fte_error_set(FTE_EINVAL, "train config: seq %d exceeds the model's context %d",
		    c->seq, mc->max_seq_len);
	if (!(c->lr >= 0.0f) || !(c->eps > 0.0f) || !(c->weight_decay >= 0.0f) || !(c->clip >= 0.0f))
		return fte_error_set(FTE_EINVAL, "train config: lr, weight_decay and clip must be >= 0, eps > 0");
	if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
		return fte_error_set(FTE_EINVAL, "train config: betas must lie in [0, 1)");
	if (c->schedule < FTE_SCHEDULE_CONSTANT || c->schedule > FTE_SCHEDULE_COSINE)
		return fte_error_set(FTE_EINVAL, "train config: unknown schedule %d", c->schedule);
	if (c->warmup_steps < 0)
		return fte_error_set(FTE_EINVAL, "train config: warmup_steps must be >= 0");
	if (c->schedule != FTE_SCHEDULE_CONSTANT && c->total_steps <= 0)
		return fte_error_set(FTE_EINVAL, "train config: linear and cosine schedules need total_steps");
	if (c->lora.rank < 0)
		return fte_error_set(FTE_EINVAL, "train config: lora rank must be >= 0");
	if (c->lora.rank > 0) {
		if (!(c->lora.alpha > 0.0f))
			return fte_error_set(FTE_EINVAL, "train config: lora alpha must be positive");
		if (!(c->lora.dropout >= 0.0f && c->lora.dropout < 1.0f))
			return fte_error_set(FTE_EINVAL, "train config: lora dropout must lie in [0, 1)");
		if (fte__lora_targets_effective(mc, c->lora.targets) == 0)
			return fte_error_set(FTE_EINVAL, "train config: no lora target exists in this model");
	}
	return FTE_OK;
}

int
fte_train_memory(const fte_config *mc, const fte_train_config *c, fte_memory *out)
{
	int rc;
	size_t base, tr, r = (size_t)(c->lora.rank > 0 ? c->lora.rank : 0);
	size_t acts;

	if ((rc = train_config_check(mc, c)) != FTE_OK)
		return rc;
	base = fte__config_num_params(mc);
	tr = r > 0 ? fte__lora_numel(mc, c->lora.rank, c->lora.targets) : base;
	acts = fte__acts_floats(mc, c->batch, c->seq, c->lora.rank, c->lora.dropout,
	    c->recompute ? ACTS_RECOMPUTE : ACTS_TRAIN);
	out->weights = (base + (r > 0 ? tr : 0)) * sizeof(float);
	out->grads = tr * sizeof(float);
	out->optimizer = 2 * tr * sizeof(float);
	out->activations = acts * sizeof(float) + (size_t)c->batch * c->seq * sizeof(int);
	out->total = out->weights + out->grads + out->optimizer + out->activations;
	return FTE_OK;
}

void
fte_trainer_free(fte_trainer *t)
{
	if (t == NULL)
		return;
	free(t->grad_mem);
	free(t->m_mem);
	free(t->v_mem);
	free(t->lora_mem);
	free(t->tr);
	fte__acts_free(&t->acts);
	free(t);
}

static void
tensor_set(fte_tensor *t, const char *name, float *data, int ndim,
    int64_t d0, int64_t d1)
{
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->data = data;
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->numel = (size_t)d0 * (size_t)d1;
}

/* trainables_lora lists adapters (A then B) and initialises them as PEFT:
 * A kaiming-uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), B zero. */
static void
trainables_lora(fte_trainer *t)
{
	const fte_config *c = &t->m->cfg;
	int r = t->cfg.lora.rank;
	size_t off = 0;

	for (int l = 0; l < c->n_layers; l++)
		for (int mod = 0; mod < LORA_NMOD; mod++) {
			char base[FTE_NAME_MAX], name[FTE_NAME_MAX + 16];
			int in, out;
			trainable *a, *b;
			float bound;

			if (t->lora.a[l][mod] == NULL)
				continue;
			fte__lora_dims(c, mod, &in, &out);
			fte__lora_name(c, l, mod, base, sizeof(base));
			a = &t->tr[t->n_tr++];
			b = &t->tr[t->n_tr++];
			snprintf(name, sizeof(name), "%s.lora_A.weight", base);
			tensor_set(&a->param, name, t->lora.a[l][mod], 2, r, in);
			tensor_set(&a->grad, name, t->glora.a[l][mod], 2, r, in);
			snprintf(name, sizeof(name), "%s.lora_B.weight", base);
			tensor_set(&b->param, name, t->lora.b[l][mod], 2, out, r);
			tensor_set(&b->grad, name, t->glora.b[l][mod], 2, out, r);
			a->m = t->m_mem + off;
			a->v = t->v_mem + off;
			off += a->param.numel;
			b->m = t->m_mem + off;
			b->v = t->v_mem + off;
			off += b->param.numel;
			a->decay = b->decay = 1;
			bound = 1.0f / sqrtf((float)in);
			for (size_t i = 0; i < a->param.numel; i++)
				a->param.data[i] = (2.0f * fte__rng_uniform(&t->rng) - 1.0f) * bound;
		}
}

int
fte_trainer_create(fte_model *m, const fte_train_config *cfg, fte_trainer **out)
{
	fte_trainer *t;
	int rc, n_cap;

	if (m->base != NULL)
		return fte_error_set(FTE_EINVAL, "trainer: the model shares its base's weights "
		    "(fte_adapter_attach); train a loaded copy");
	if ((rc = train_config_check(&m->cfg, cfg)) != FTE_OK)
		return rc;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return fte_error_set(FTE_ENOMEM, "trainer: out of memory");
	t->m = m;
	t->cfg = *cfg;
	t->lora_mode = cfg->lora.rank > 0;
	t->rng = cfg->seed;
	if (t->lora_mode) {
		t->n_floats = fte__lora_numel(&m->cfg, cfg->lora.rank, cfg->lora.targets);
		n_cap = 2 * LORA_NMOD * m->cfg.n_layers;
	} else {
		t->n_floats = m->n_params;
		n_cap = m->n_tensors;
	}
	t->grad_mem = calloc(t->n_floats, sizeof(float));
	t->m_mem = calloc(t->n_floats, sizeof(float));
	t->v_mem = calloc(t->n_floats, sizeof(float));
	t->tr = calloc((size_t)n_cap, sizeof(*t->tr));
	if (t->lora_mode)
		t->lora_mem = calloc(t->n_floats, sizeof(float));
	if (!t->grad_mem || !t->m_mem || !t->v_mem || !t->tr || (t->lora_mode && !t->lora_mem)) {
		size_t n = t->n_floats;
		fte_trainer_free(t);
		return fte_error_set(FTE_ENOMEM, "trainer: cannot allocate state for %zu parameters", n);
	}
	if ((rc = fte__acts_create(&m->cfg, cfg->batch, cfg->seq, cfg->lora.rank,
	    cfg->lora.dropout, cfg->recompute ? ACTS_RECOMPUTE : ACTS_TRAIN,
	    &t->acts)) != FTE_OK) {
		fte_trainer_free(t);
		return rc;
	}
	if (t->lora_mode) {
		fte__lora_view(&m->cfg, &cfg->lora, t->lora_mem, &t->lora);
		fte__lora_view(&m->cfg, &cfg->lora, t->grad_mem, &t->glora);
		trainables_lora(t);
	} else {
		fte__weights_view(m, t->grad_mem, &t->g);
		for (int i = 0; i < m->n_tensors; i++) {
			trainable *x = &t->tr[t->n_tr++];
			size_t off = m->offset[i];

			x->param = m->tensors[i];
			x->grad = m->tensors[i];
			x->grad.data = t->grad_mem + off;
			x->m = t->m_mem + off;
			x->v = t->v_mem + off;
			x->decay = m->tensors[i].ndim == 2 || cfg->decay_1d;
		}
	}
	*out = t;
	return FTE_OK;
}

void
fte_trainer_set_abort(fte_trainer *t, const atomic_int *flag)
{
	t->abort = flag;
}

void
fte_trainer_set_progress(fte_trainer *t, fte_progress_fn fn, void *arg)
{
	t->progress = fn;
	t->progress_arg = arg;
}

int
fte_trainer_num_trainable(const fte_trainer *t)
{
	return t->n_tr;
}

int
fte_trainer_trainable(fte_trainer *t, int i, fte_tensor **param, fte_tensor **grad)
{
	if (i < 0 || i >= t->n_tr)
		return fte_error_set(FTE_ERANGE, "trainer: no trainable tensor %d", i);
	if (param != NULL)
		*param = &t->tr[i].param;
	if (grad != NULL)
		*grad = &t->tr[i].grad;
	return FTE_OK;
}

int
fte_trainer_steps(const fte_trainer *t)
{
	return t->step;
}

static int
aborted(const fte_trainer *t)
{
	return t->abort != NULL && atomic_load(t->abort) != 0;
}

static int
batch_check(const fte_trainer *t, const fte_batch *b)
{
	int V = t->m->cfg.vocab_size;
	size_t n;

	if (b->tokens == NULL || b->targets == NULL || b->B <= 0 || b->T <= 0)
		return fte_error_set(FTE_EINVAL, "batch: missing tokens or targets");
	if (b->B > t->cfg.batch || b->T > t->cfg.seq)
		return fte_error_set(FTE_EINVAL, "batch: %d x %d exceeds the trainer's %d x %d",
		    b->B, b->T, t->cfg.batch, t->cfg.seq);
	n = (size_t)b->B * b->T;
	for (size_t i = 0; i < n; i++) {
		if (b->tokens[i] < 0 || b->tokens[i] >= V)
			return fte_error_set(FTE_EINVAL, "batch: token %d outside the vocabulary (%d)",
			    b->tokens[i], V);
		if (b->targets[i] < -1 || b->targets[i] >= V)
			return fte_error_set(FTE_EINVAL, "batch: target %d outside the vocabulary (%d)",
			    b->targets[i], V);
	}
	return FTE_OK;
}

/* backward_run leaves gradients for the micro-batches and the step's mean
 * loss; *tokens receives the number of unmasked targets. */
static int
backward_run(fte_trainer *t, const fte_batch *micro, int n, float *logits,
    float *loss, int *tokens)
{
	fte__acts *a = &t->acts;
	const fte__lora *lo = t->lora_mode ? &t->lora : NULL;
	size_t count = 0;
	double sum = 0.0;
	int rc;

	if (n <= 0)
		return fte_error_set(FTE_EINVAL, "trainer: a step needs at least one micro-batch");
	if (logits != NULL && n != 1)
		return fte_error_set(FTE_EINVAL, "trainer: logits are returned for one micro-batch only");
	for (int j = 0; j < n; j++) {
		size_t N = (size_t)micro[j].B * micro[j].T;

		if ((rc = batch_check(t, &micro[j])) != FTE_OK)
			return rc;
		for (size_t i = 0; i < N; i++)
			count += micro[j].targets[i] >= 0;
	}
	memset(t->grad_mem, 0, t->n_floats * sizeof(float));
	for (int j = 0; j < n; j++) {
		const fte_batch *b = &micro[j];
		int N = b->B * b->T;
		/* all masked: weights 0 give loss 0 and zero gradients, no 0/0 */
		float wgt = count > 0 ? 1.0f / (float)count : 0.0f;

		if (aborted(t))
			return fte_error_set(FTE_ECANCELED, "trainer: aborted");
		for (int i = 0; i < N; i++)
			a->dloss[i] = b->targets[i] >= 0 ? wgt : 0.0f;
		sum += fte__forward(t->m, lo, a, b->tokens, b->targets, b->segments,
		    b->B, b->T, logits, &t->rng);
		fte__backward(t->m, &t->g, lo, &t->glora, a, b->tokens, b->targets,
		    b->segments, b->B, b->T);
	}
	*loss = (float)sum;
	*tokens = (int)count;
	return FTE_OK;
}

int
fte_trainer_backward(fte_trainer *t, const fte_batch *micro, int n,
    float *logits, float *loss)
{
	float l;
	int tokens, rc;

	if ((rc = backward_run(t, micro, n, logits, &l, &tokens)) != FTE_OK)
		return rc;
	*loss = l;
	return FTE_OK;
}

int
fte_trainer_eval(fte_trainer *t, const fte_batch *micro, int n, float *loss)
{
	fte__acts *a = &t->acts;
	fte__lora lo = t->lora;
	size_t count = 0;
	double sum = 0.0;
	int rc;

	if (n <= 0)
		return fte_error_set(FTE_EINVAL, "trainer: evaluation needs at least one micro-batch");
	for (int j = 0; j < n; j++) {
		size_t N = (size_t)micro[j].B * micro[j].T;

		if ((rc = batch_check(t, &micro[j])) != FTE_OK)
			return rc;
		for (size_t i = 0; i < N; i++)
			count += micro[j].targets[i] >= 0;
	}
	lo.dropout = 0.0f;   /* evaluation: no dropout, no random draws */
	for (int j = 0; j < n; j++) {
		const fte_batch *b = &micro[j];
		int N = b->B * b->T;

		for (int i = 0; i < N; i++)
			a->dloss[i] = b->targets[i] >= 0 && count > 0 ? 1.0f / (float)count : 0.0f;
		sum += fte__forward(t->m, t->lora_mode ? &lo : NULL, a, b->tokens, b->targets,
		    b->segments, b->B, b->T, NULL, NULL);
	}
	*loss = (float)sum;
	return FTE_OK;
}

/* lr_at follows Hugging Face's schedules: linear warmup from 0, then
 * constant, linear decay or half-cosine decay to 0 at total_steps. */
static float
lr_at(const fte_train_config *c, int step)
{
	double f = 1.0;

	if (step < c->warmup_steps)
		return (float)(c->lr * (double)step / (double)c->warmup_steps);
	if (c->schedule != FTE_SCHEDULE_CONSTANT) {
		double span = c->total_steps - c->warmup_steps;
		double done = (double)(step - c->warmup_steps) / (span > 1 ? span : 1);

		if (done > 1.0)
			done = 1.0;
		f = c->schedule == FTE_SCHEDULE_LINEAR ? 1.0 - done
		    : 0.5 * (1.0 + cos(M_PI * done));
	}
	return (float)(c->lr * f);
}

typedef struct norm_job {
	const trainable *tr;
	double *sq;                  /* per tensor */
} norm_job;

static void
norm_item(void *ctx, int i)
{
	norm_job *j = ctx;
	const float *g = j->tr[i].grad.data;
	double s = 0.0;

	for (size_t k = 0; k < j->tr[i].grad.numel; k++)
		s += (double)g[k] * g[k];
	j->sq[i] = s;
}

typedef struct adamw_job {
	float *p, *g, *m, *v;
	float coef, decay, b1, b2, omb1, omb2, step_size, bc2_sqrt, eps;
} adamw_job;

static void
adamw_range(void *ctx, int lo, int hi)
{
	const adamw_job *j = ctx;
	float *p = j->p, *g = j->g, *m = j->m, *v = j->v;

	for (int k = lo; k < hi; k++) {
		float gk = g[k] * j->coef, denom;

		p[k] *= j->decay;
		m[k] = m[k] * j->b1 + gk * j->omb1;
		v[k] = v[k] * j->b2 + gk * gk * j->omb2;
		denom = sqrtf(v[k]) / j->bc2_sqrt + j->eps;
		p[k] += -j->step_size * (m[k] / denom);
	}
}

/* update clips and applies one AdamW step, in float32 as torch's
 * single-tensor AdamW does (scalars computed in double, used as float).
 * The norm is summed per tensor, then over tensors in order, so it does not
 * depend on the thread count. */
static int
update(fte_trainer *t, float *lr_out, float *norm_out)
{
	const fte_train_config *c = &t->cfg;
	double sq = 0.0, norm, b1t, b2t, *per;
	float lr = lr_at(c, t->step), coef = 1.0f;
	norm_job nj;

	if ((per = malloc((size_t)t->n_tr * sizeof(double))) == NULL)
		return fte_error_set(FTE_ENOMEM, "trainer: out of memory");
	nj = (norm_job){ t->tr, per };
	fte__parallel_for(t->n_tr, 2.0 * (double)t->n_floats, norm_item, &nj);
	for (int i = 0; i < t->n_tr; i++)
		sq += per[i];
	free(per);
	norm = sqrt(sq);
	if (!isfinite(norm))
		return fte_error_set(FTE_ENUMERIC, "trainer: gradient norm is not finite at step %d",
		    t->step + 1);
	/* torch.nn.utils.clip_grad_norm_ */
	if (c->clip > 0.0f && norm + 1e-6 > c->clip)
		coef = (float)(c->clip / (norm + 1e-6));
	b1t = 1.0 - pow(c->beta1, t->step + 1);
	b2t = 1.0 - pow(c->beta2, t->step + 1);
	for (int i = 0; i < t->n_tr; i++) {
		trainable *x = &t->tr[i];
		adamw_job j = { NULL, NULL, NULL, NULL, coef,
			x->decay ? (float)(1.0 - (double)lr * c->weight_decay) : 1.0f,
			c->beta1, c->beta2, (float)(1.0 - c->beta1), (float)(1.0 - c->beta2),
			(float)(lr / b1t), (float)sqrt(b2t), c->eps };

		/* chunks keep element indices inside int */
		for (size_t off = 0; off < x->param.numel; off += (size_t)1 << 30) {
			size_t n = x->param.numel - off < ((size_t)1 << 30) ?
			    x->param.numel - off : (size_t)1 << 30;

			j.p = x->param.data + off;
			j.g = x->grad.data + off;
			j.m = x->m + off;
			j.v = x->v + off;
			fte__parallel_range((int)n, 10.0 * (double)n, adamw_range, &j);
		}
	}
	t->step++;
	*lr_out = lr;
	*norm_out = (float)norm;
	return FTE_OK;
}

int
fte_trainer_step(fte_trainer *t, const fte_batch *micro, int n, fte_step_stats *st)
{
	struct timespec t0, t1;
	fte_step_stats s;
	float loss, lr = 0.0f, norm = 0.0f;
	int tokens, rc;
	size_t all = 0;

	if (aborted(t))
		return fte_error_set(FTE_ECANCELED, "trainer: aborted");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = backward_run(t, micro, n, NULL, &loss, &tokens)) != FTE_OK)
		return rc;
	if (!isfinite(loss))
		return fte_error_set(FTE_ENUMERIC, "trainer: loss is not finite at step %d",
		    t->step + 1);
	if ((rc = update(t, &lr, &norm)) != FTE_OK)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int j = 0; j < n; j++)
		all += (size_t)micro[j].B * micro[j].T;
	s.step = t->step;
	s.loss = loss;
	s.lr = lr;
	s.grad_norm = norm;
	s.tokens = tokens;
	s.tokens_per_s = (double)all / ((double)(t1.tv_sec - t0.tv_sec) +
	    1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
	if (st != NULL)
		*st = s;
	if (t->progress != NULL && t->progress(t->progress_arg, &s) != 0)
		return fte_error_set(FTE_ECANCELED, "trainer: canceled by the progress callback");
	return FTE_OK;
}

int
fte_trainer_lora_merge(fte_trainer *t)
{
	const fte_config *c = &t->m->cfg;
	int r = t->cfg.lora.rank;

	if (!t->lora_mode)
		return fte_error_set(FTE_EINVAL, "trainer: no LoRA adapters to merge");
	for (int l = 0; l < c->n_layers; l++)
		for (int mod = 0; mod < LORA_NMOD; mod++) {
			float *A = t->lora.a[l][mod], *B = t->lora.b[l][mod];
			float *W = fte__lora_base(&t->m->w.layer[l], mod);
			int in, out;

			if (A == NULL)
				continue;
			fte__lora_dims(c, mod, &in, &out);
			/* W[o][i] += scale * sum_k B[o][k] A[k][i] */
			for (int o = 0; o < out; o++)
				for (int k = 0; k < r; k++) {
					float bk = t->lora.scale * B[(size_t)o * r + k];

					for (int i = 0; i < in; i++)
						W[(size_t)o * in + i] += bk * A[(size_t)k * in + i];
				}
			memset(B, 0, (size_t)out * r * sizeof(float));
		}
	return FTE_OK;
}

/* ---- checkpoints ---- */

#define CKPT_MAGIC "FTECKPT1"
#define CKPT_VERSION 1u

typedef struct ckpt_header {
	char magic[8];
	uint32_t version, n_tensors;
	uint64_t fingerprint, step, rng, data_pos;
} ckpt_header;

typedef struct ckpt_entry {
	char name[FTE_NAME_MAX + 16];
	uint64_t numel;
} ckpt_entry;

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

/* The checkpoint belongs to one model shape and adapter layout. */
static uint64_t
fingerprint(const fte_trainer *t)
{
	const fte_config *c = &t->m->cfg;
	int32_t v[] = { c->arch, c->n_layers, c->dim, c->n_heads, c->n_kv_heads,
		c->head_dim, c->ffn_dim, c->vocab_size, c->tied_embeddings,
		t->m->ai->qkv_bias, t->cfg.lora.rank, (int32_t)t->lora.targets };

	return fnv(FNV_INIT, v, sizeof(v));
}

static int
write_all(FILE *f, const void *p, size_t n, uint64_t *h)
{
	*h = fnv(*h, p, n);
	return fwrite(p, 1, n, f) == n ? 0 : -1;
}

int
fte_trainer_save(fte_trainer *t, const char *path, uint64_t data_pos)
{
	ckpt_header hd;
	uint64_t h = FNV_INIT;
	fte__afile af;
	FILE *f;
	int rc, bad = 0;

	/* a random O_EXCL temporary beside path, renamed over it on commit */
	if ((rc = fte__afile_open(&af, path)) != FTE_OK)
		return rc;
	f = af.fp;
	memset(&hd, 0, sizeof(hd));
	memcpy(hd.magic, CKPT_MAGIC, 8);
	hd.version = CKPT_VERSION;
	hd.n_tensors = (uint32_t)t->n_tr;
	hd.fingerprint = fingerprint(t);
	hd.step = (uint64_t)t->step;
	hd.rng = t->rng;
	hd.data_pos = data_pos;
	bad |= write_all(f, &hd, sizeof(hd), &h);
	for (int i = 0; i < t->n_tr && !bad; i++) {
		const trainable *x = &t->tr[i];
		ckpt_entry e;

		memset(&e, 0, sizeof(e));
		snprintf(e.name, sizeof(e.name), "%s", x->param.name);
		e.numel = x->param.numel;
		bad |= write_all(f, &e, sizeof(e), &h);
		bad |= write_all(f, x->param.data, e.numel * sizeof(float), &h);
		bad |= write_all(f, x->m, e.numel * sizeof(float), &h);
		bad |= write_all(f, x->v, e.numel * sizeof(float), &h);
	}
	if (!bad)
		bad |= fwrite(&h, sizeof(h), 1, f) != 1;
	if (bad) {
		rc = fte_error_set(FTE_EIO, "%s: cannot write checkpoint: %m", path);
		fte__afile_abort(&af);
		return rc;
	}
	return fte__afile_commit(&af);
}

/* ckpt_read reads n bytes (into p, or only hashed when p is NULL). */
static int
ckpt_read(FILE *f, void *p, size_t n, uint64_t *h)
{
	char buf[65536];

	while (n > 0) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		char *dst = p != NULL ? p : buf;

		if (fread(dst, 1, k, f) != k)
			return -1;
		*h = fnv(*h, dst, k);
		if (p != NULL)
			p = (char *)p + k;
		n -= k;
	}
	return 0;
}

/* ckpt_pass reads the whole file; with load == 0 it only validates (the
 * trainer is untouched), with load == 1 it copies into the trainer. */
static int
ckpt_pass(fte_trainer *t, const char *path, FILE *f, int load, ckpt_header *hd)
{
	uint64_t h = FNV_INIT, stored;

	if (ckpt_read(f, hd, sizeof(*hd), &h) != 0)
		return fte_error_set(FTE_EFORMAT, "%s: truncated checkpoint header", path);
	if (memcmp(hd->magic, CKPT_MAGIC, 8) != 0 || hd->version != CKPT_VERSION)
		return fte_error_set(FTE_EFORMAT, "%s: not an ftengine checkpoint (bad magic or version)", path);
	if (hd->fingerprint != fingerprint(t) || hd->n_tensors != (uint32_t)t->n_tr)
		return fte_error_set(FTE_EFORMAT,
		    "%s: checkpoint is for another model shape or LoRA configuration", path);
	for (int i = 0; i < t->n_tr; i++) {
		trainable *x = &t->tr[i];
		ckpt_entry e;
		size_t nb = x->param.numel * sizeof(float);

		if (ckpt_read(f, &e, sizeof(e), &h) != 0)
			return fte_error_set(FTE_EFORMAT, "%s: truncated at tensor %d", path, i);
		e.name[sizeof(e.name) - 1] = '\0';
		if (strcmp(e.name, x->param.name) != 0 || e.numel != x->param.numel)
			return fte_error_set(FTE_EFORMAT, "%s: tensor %d is %s (%llu), expected %s (%zu)",
			    path, i, e.name, (unsigned long long)e.numel, x->param.name, x->param.numel);
		if (ckpt_read(f, load ? x->param.data : NULL, nb, &h) != 0 ||
		    ckpt_read(f, load ? x->m : NULL, nb, &h) != 0 ||
		    ckpt_read(f, load ? x->v : NULL, nb, &h) != 0)
			return fte_error_set(FTE_EFORMAT, "%s: truncated in tensor %s", path, e.name);
	}
	if (fread(&stored, sizeof(stored), 1, f) != 1)
		return fte_error_set(FTE_EFORMAT, "%s: truncated (no checksum)", path);
	if (stored != h)
		return fte_error_set(FTE_EFORMAT, "%s: checksum mismatch, the file is corrupt", path);
	if (fgetc(f) != EOF)
		return fte_error_set(FTE_EFORMAT, "%s: trailing bytes after the checksum", path);
	return FTE_OK;
}

int
fte_trainer_restore(fte_trainer *t, const char *path, uint64_t *data_pos)
{
	ckpt_header hd;
	FILE *f;
	int rc;

	if ((f = fopen(path, "rb")) == NULL)
		return fte_error_set(FTE_EIO, "%s: cannot open checkpoint: %m", path);
	rc = ckpt_pass(t, path, f, 0, &hd);
	if (rc == FTE_OK) {
		rewind(f);
		rc = ckpt_pass(t, path, f, 1, &hd);
	}
	fclose(f);
	if (rc != FTE_OK)
		return rc;
	t->step = (int)hd.step;
	t->rng = hd.rng;
	if (data_pos != NULL)
		*data_pos = hd.data_pos;
	return FTE_OK;
}
