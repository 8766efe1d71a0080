/*
 * transformer.c - forward and backward of the whole model over one
 * micro-batch, composed from the kernels in kernels/kernels.h; what each
 * family does differently is read from its row of the architecture table
 * (m->ai, engine/arch.c).  Generation runs the same layer_forward with a KV
 * cache attached.
 *
 * Shapes: N = B*T tokens, C = dim, HD = n_heads*head_dim, KD =
 * n_kv_heads*head_dim, F = ffn_dim, V = vocab, L = layers.  Every linear
 * layer is y = x @ W^T (+ b) (+ LoRA), W stored (out, in).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "kernels/kernels.h"
#include "transformer.h"

static int
imax(int a, int b)
{
	return a > b ? a : b;
}

/* acts_fields lists every activation tensor with its size; with a == NULL
 * only the sizes count. Returns the total in floats. */
static size_t
acts_fields(const fte_config *c, int B, int T, int r, float dropout,
    int mode, fte__acts *a)
{
	const fte_arch_info *ai = fte_arch_get(c->arch);
	int train = mode == ACTS_TRAIN || mode == ACTS_RECOMPUTE;
	size_t N = (size_t)B * T, C = c->dim, L = c->n_layers;
	size_t HD = (size_t)c->n_heads * c->head_dim;
	size_t KD = (size_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
	size_t V = c->vocab_size, H = c->n_heads;
	size_t Lm = mode == ACTS_TRAIN ? L : 1, maxin = (size_t)imax(imax(c->dim, c->ffn_dim), (int)HD);
	/* with a cache, one layer's scores of T queries against every position */
	size_t TT = mode == ACTS_CACHE ? H * T * (size_t)c->max_seq_len : (size_t)B * H * T * T;
	int gated = ai->mlp != FTE_MLP_GELU, qkn = ai->qk_norm, post = ai->post_norms;
	size_t total = 0;
	fte__acts dummy;

	if (a == NULL)
		a = &dummy;
#define F_(field, count) do { a->field = (float *)(uintptr_t)total; total += (count); } while (0)
	F_(res, (train ? L + 1 : 1) * N * C);
	F_(res_mid, Lm * N * C);
	F_(ln1, Lm * N * C);
	F_(ln1_mean, Lm * N);
	F_(ln1_rstd, Lm * N);
	F_(q, Lm * N * HD);
	F_(k, Lm * N * KD);
	F_(v, Lm * N * KD);
	F_(qpre, qkn ? Lm * N * HD : 0);
	F_(kpre, qkn ? Lm * N * KD : 0);
	F_(q_rstd, qkn ? Lm * N * H : 0);
	F_(k_rstd, qkn ? Lm * N * c->n_kv_heads : 0);
	F_(att, Lm * TT);
	F_(atty, Lm * N * HD);
	F_(ao, post ? Lm * N * C : 0);
	F_(ao_rstd, post ? Lm * N : 0);
	F_(ln2, Lm * N * C);
	F_(ln2_mean, Lm * N);
	F_(ln2_rstd, Lm * N);
	F_(gate, gated ? Lm * N * F : 0);
	F_(up, Lm * N * F);
	F_(hact, Lm * N * F);
	F_(mo, post ? Lm * N * C : 0);
	F_(mo_rstd, post ? Lm * N : 0);
	F_(lnf, N * C);
	F_(lnf_mean, N);
	F_(lnf_rstd, N);
	F_(logits, N * V);
	F_(capped, train && c->final_softcap > 0 ? N * V : 0);
	F_(losses, N);
	F_(dloss, N);
	F_(tmp, N * (size_t)imax(c->dim, c->ffn_dim));
	F_(lora_xa, r > 0 ? Lm * LORA_NMOD * N * r : 0);
	F_(lora_mask, r > 0 && dropout > 0 ? Lm * LORA_NMOD * N * maxin : 0);
	F_(lora_s1, r > 0 && dropout > 0 ? N * maxin : 0);
	F_(lora_s2, r > 0 && dropout > 0 ? N * maxin : 0);
	F_(dres, train ? N * C : 0);
	F_(dln, train ? N * C : 0);
	F_(dpost, train && post ? N * C : 0);
	F_(dq, train ? N * HD : 0);
	F_(dk, train ? N * KD : 0);
	F_(dv, train ? N * KD : 0);
	F_(datty, train ? N * HD : 0);
	F_(dqpre, train && qkn ? N * HD : 0);
	F_(dkpre, train && qkn ? N * KD : 0);
	F_(dgate, train && gated ? N * F : 0);
	F_(dup, train ? N * F : 0);
	F_(dhact, train ? N * F : 0);
	/* attention_backward's scratch, twice over to recompute capped scores */
	F_(datt, train ? (c->attn_softcap > 0 ? 2 : 1) * TT : 0);
	F_(lora_dxa, train && r > 0 ? N * r : 0);
#undef F_
	return total;
}

size_t
fte__acts_floats(const fte_config *c, int B, int T, int lora_rank,
    float lora_dropout, int mode)
{
	return acts_fields(c, B, T, lora_rank, lora_dropout, mode, NULL);
}

int
fte__acts_create(const fte_config *c, int B, int T, int lora_rank,
    float lora_dropout, int mode, fte__acts *a)
{
	fte__acts x;
	size_t n;
	float **fields[] = { &x.res, &x.res_mid, &x.ln1, &x.ln1_mean,
		&x.ln1_rstd, &x.q, &x.k, &x.v, &x.qpre, &x.kpre, &x.q_rstd,
		&x.k_rstd, &x.att, &x.atty, &x.ao, &x.ao_rstd, &x.ln2,
		&x.ln2_mean, &x.ln2_rstd, &x.gate, &x.up, &x.hact, &x.mo, &x.mo_rstd,
		&x.lnf, &x.lnf_mean, &x.lnf_rstd, &x.logits, &x.capped, &x.losses,
		&x.dloss, &x.tmp, &x.lora_xa, &x.lora_mask, &x.lora_s1, &x.lora_s2,
		&x.dres, &x.dln, &x.dpost, &x.dq, &x.dk, &x.dv, &x.datty, &x.dqpre,
		&x.dkpre, &x.dgate, &x.dup, &x.dhact, &x.datt, &x.lora_dxa };

	memset(&x, 0, sizeof(x));
	n = acts_fields(c, B, T, lora_rank, lora_dropout, mode, &x);
	/* calloc: untouched padding never holds NaN that a kernel might read */
	x.mem = calloc(n, sizeof(float));
	x.pos = calloc((size_t)B * T, sizeof(int));
	if (x.mem == NULL || x.pos == NULL) {
		free(x.mem);
		free(x.pos);
		return fte_error_set(FTE_ENOMEM, "activations: cannot allocate %zu MB",
		    n * sizeof(float) >> 20);
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		*fields[i] = x.mem + (uintptr_t)*fields[i];
	x.n_floats = n;
	x.B = B;
	x.T = T;
	x.lora_rank = lora_rank;
	x.ls = mode == ACTS_TRAIN;
	x.res_ls = mode == ACTS_TRAIN || mode == ACTS_RECOMPUTE;
	*a = x;
	return FTE_OK;
}

void
fte__acts_free(fte__acts *a)
{
	free(a->mem);
	free(a->pos);
	memset(a, 0, sizeof(*a));
}

typedef struct residual_job {
	float *out;
	const float *a, *b;
	int C;
} residual_job;

static void
residual_rows(void *ctx, int lo, int hi)
{
	residual_job *j = ctx;

	for (size_t i = (size_t)lo * j->C; i < (size_t)hi * j->C; i++)
		j->out[i] = j->a[i] + j->b[i];
}

/* out[N,C] = a + b; out may alias a. */
static void
residual_forward(float *out, const float *a, const float *b, int N, int C)
{
	residual_job j = { out, a, b, C };

	fte__parallel_range(N, (double)N * C, residual_rows, &j);
}

static void
norm_forward(const fte_model *m, float *out, float *mean, float *rstd,
    const float *inp, const float *w, const float *b, int N)
{
	const fte_config *c = &m->cfg;

	if (m->ai->norm == FTE_NORM_RMS)
		rmsnorm_forward(out, rstd, inp, w, m->ai->norm_offset, N, c->dim, c->norm_eps);
	else
		layernorm_forward(out, mean, rstd, inp, w, b, N, c->dim, c->norm_eps);
}

static void
norm_backward(const fte_model *m, float *dinp, float *dw, float *db,
    const float *dout, const float *inp, const float *w, const float *mean,
    const float *rstd, int N)
{
	if (m->ai->norm == FTE_NORM_RMS)
		rmsnorm_backward(dinp, dw, dout, inp, w, m->ai->norm_offset, rstd, N, m->cfg.dim);
	else
		layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, m->cfg.dim);
}

/* Where adapter (l, mod) keeps its saved tensors. */
static float *
lora_xa(const fte__acts *a, int l, int mod)
{
	size_t N = (size_t)a->B * a->T;

	return a->lora_xa + ((size_t)l * a->ls * LORA_NMOD + mod) * N * a->lora_rank;
}

static float *
lora_mask(const fte_config *c, const fte__lora *lo, const fte__acts *a,
    int l, int mod)
{
	size_t N = (size_t)a->B * a->T;
	size_t maxin = (size_t)imax(imax(c->dim, c->ffn_dim), c->n_heads * c->head_dim);

	if (!(lo->dropout > 0.0f))
		return NULL;
	return a->lora_mask + ((size_t)l * a->ls * LORA_NMOD + mod) * N * maxin;
}

/* linear_forward: out = x @ W^T + b, plus the adapter when (l, mod) has one. */
static void
linear_forward(const fte_model *m, const fte__lora *lo, fte__acts *a,
    float *out, const float *x, const float *W, const float *b, int N,
    int in, int outd, int l, int mod, uint64_t *rng)
{
	matmul_forward(out, x, W, b, N, in, outd);
	if (lo != NULL && lo->a[l][mod] != NULL)
		fte__lora_forward(out, lora_xa(a, l, mod), lora_mask(&m->cfg, lo, a, l, mod),
		    a->lora_s1, x, lo->a[l][mod], lo->b[l][mod], N, in, outd,
		    lo->rank, lo->scale, lo->dropout, rng);
}

static void
linear_backward(const fte_model *m, const fte__lora *lo, const fte__lora *gl,
    fte__acts *a, float *dx, float *dW, float *db, const float *dout,
    const float *x, const float *W, int N, int in, int outd, int l, int mod)
{
	matmul_backward(dx, dW, db, dout, x, W, N, in, outd);
	if (lo != NULL && lo->a[l][mod] != NULL)
		fte__lora_backward(dx, gl->a[l][mod], gl->b[l][mod], a->lora_dxa,
		    a->lora_s1, a->lora_s2, dout, x, lora_xa(a, l, mod),
		    lora_mask(&m->cfg, lo, a, l, mod), lo->a[l][mod], lo->b[l][mod],
		    N, in, outd, lo->rank, lo->scale);
}

/* The last layer's output (strides are those of the allocation, which may
 * hold more tokens than the current micro-batch). */
static float *
res_last(const fte_config *c, const fte__acts *a)
{
	return a->res + (size_t)c->n_layers * a->res_ls * a->B * a->T * c->dim;
}

/* Per-layer slices of the saved activations. */
typedef struct layer_acts {
	float *x, *y, *res_mid, *ln1, *ln1_mean, *ln1_rstd, *q, *k, *v, *att;
	float *qpre, *kpre, *q_rstd, *k_rstd, *ao, *ao_rstd, *mo, *mo_rstd;
	float *atty, *ln2, *ln2_mean, *ln2_rstd, *gate, *up, *hact;
} layer_acts;

static void
layer_acts_get(const fte_model *m, const fte__acts *a, int l, layer_acts *s)
{
	const fte_config *c = &m->cfg;
	size_t N = (size_t)a->B * a->T, C = c->dim, ls = (size_t)l * a->ls;
	size_t HD = (size_t)c->n_heads * c->head_dim;
	size_t KD = (size_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
	size_t TT = a->kv_k != NULL ? (size_t)c->n_heads * a->T * c->max_seq_len :
	    (size_t)a->B * c->n_heads * a->T * a->T;
	int qkn = m->ai->qk_norm, post = m->ai->post_norms;

	s->x = a->res + (size_t)l * a->res_ls * N * C;
	s->y = a->res + (size_t)(l + 1) * a->res_ls * N * C;
	s->res_mid = a->res_mid + ls * N * C;
	s->ln1 = a->ln1 + ls * N * C;
	s->ln1_mean = a->ln1_mean + ls * N;
	s->ln1_rstd = a->ln1_rstd + ls * N;
	s->q = a->q + ls * N * HD;
	s->k = a->k + ls * N * KD;
	s->v = a->v + ls * N * KD;
	s->qpre = qkn ? a->qpre + ls * N * HD : NULL;
	s->kpre = qkn ? a->kpre + ls * N * KD : NULL;
	s->q_rstd = qkn ? a->q_rstd + ls * N * c->n_heads : NULL;
	s->k_rstd = qkn ? a->k_rstd + ls * N * c->n_kv_heads : NULL;
	s->att = a->att + ls * TT;
	s->atty = a->atty + ls * N * HD;
	s->ao = post ? a->ao + ls * N * C : NULL;
	s->ao_rstd = post ? a->ao_rstd + ls * N : NULL;
	s->ln2 = a->ln2 + ls * N * C;
	s->ln2_mean = a->ln2_mean + ls * N;
	s->ln2_rstd = a->ln2_rstd + ls * N;
	s->gate = m->ai->mlp != FTE_MLP_GELU ? a->gate + ls * N * F : NULL;
	s->up = a->up + ls * N * F;
	s->hact = a->hact + ls * N * F;
	s->mo = post ? a->mo + ls * N * C : NULL;
	s->mo_rstd = post ? a->mo_rstd + ls * N : NULL;
}

/* The dimensions of each head RoPE turns. */
static int
rope_dims(const fte_config *c)
{
	return c->rope_dim > 0 ? c->rope_dim : c->head_dim;
}

/* The attention options and RoPE table of layer l. */
static void
layer_attn(const fte_model *m, int l, attn_opts *o, const float **freq, float *attn)
{
	const fte_config *c = &m->cfg;
	int local = fte_config_layer_sliding(c, l);

	o->scale = c->query_scale > 0 ? (float)(1.0 / sqrt((double)c->query_scale)) : 0.0f;
	o->softcap = c->attn_softcap;
	o->window = local ? c->sliding_window : 0;
	*freq = local ? m->rope_freq_local : m->rope_freq;
	*attn = local ? m->rope_attn_local : m->rope_attn;
}

/* layer_forward runs layer l: res[l] -> res[l+1], saving what backward
 * needs in l's slices.  With a cache (a->kv_k, B = 1) the tokens sit at
 * positions a->pos0 .. and attend to the cached ones before them too; the
 * rest of the layer is the same code for training, loss and generation. */
static void
layer_forward(const fte_model *m, const fte__lora *lo, fte__acts *a, int l,
    const int *segments, int B, int T, uint64_t *rng)
{
	const fte_config *c = &m->cfg;
	const fte_arch_info *ai = m->ai;
	const fte__layer *lw = &m->w.layer[l];
	int N = B * T, C = c->dim, F = c->ffn_dim;
	int H = c->n_heads, K = c->n_kv_heads, D = c->head_dim;
	int HD = H * D, KD = K * D, qkn = ai->qk_norm;
	const float *freq;
	float rattn;
	attn_opts ao;
	layer_acts s;

	layer_acts_get(m, a, l, &s);
	layer_attn(m, l, &ao, &freq, &rattn);
	norm_forward(m, s.ln1, s.ln1_mean, s.ln1_rstd, s.x, lw->attn_norm_w,
	    lw->attn_norm_b, N);
	linear_forward(m, lo, a, qkn ? s.qpre : s.q, s.ln1, lw->wq, lw->bq, N, C, HD, l,
	    LORA_Q, rng);
	linear_forward(m, lo, a, qkn ? s.kpre : s.k, s.ln1, lw->wk, lw->bk, N, C, KD, l,
	    LORA_K, rng);
	linear_forward(m, lo, a, s.v, s.ln1, lw->wv, lw->bv, N, C, KD, l, LORA_V, rng);
	if (qkn) {
		/* Qwen3, Gemma 3: RMSNorm over each head's D values */
		rmsnorm_forward(s.q, s.q_rstd, s.qpre, lw->q_norm_w, ai->norm_offset, N * H, D,
		    c->norm_eps);
		rmsnorm_forward(s.k, s.k_rstd, s.kpre, lw->k_norm_w, ai->norm_offset, N * K, D,
		    c->norm_eps);
	}
	if (ai->rope) {
		rope_forward(s.q, a->pos, N, H, D, rope_dims(c), freq, rattn, c->rope_style);
		rope_forward(s.k, a->pos, N, K, D, rope_dims(c), freq, rattn, c->rope_style);
	}
	if (a->kv_k != NULL) {
		size_t at = ((size_t)l * c->max_seq_len + a->pos0) * KD;
		const float *kc = a->kv_k + (size_t)l * c->max_seq_len * KD;
		const float *vc = a->kv_v + (size_t)l * c->max_seq_len * KD;

		memcpy(a->kv_k + at, s.k, (size_t)N * KD * sizeof(float));
		memcpy(a->kv_v + at, s.v, (size_t)N * KD * sizeof(float));
		attention_cache_forward(s.atty, s.att, s.q, kc, vc, a->pos0, T, H, K, D, &ao);
	} else {
		attention_forward(s.atty, s.att, s.q, s.k, s.v, segments, B, T, H, K, D, &ao);
	}
	if (ai->post_norms) {
		/* Gemma: the attention output is normed before the residual */
		linear_forward(m, lo, a, s.ao, s.atty, lw->wo, lw->bo, N, HD, C, l, LORA_O, rng);
		rmsnorm_forward(a->tmp, s.ao_rstd, s.ao, lw->attn_post_w, ai->norm_offset, N, C,
		    c->norm_eps);
	} else {
		linear_forward(m, lo, a, a->tmp, s.atty, lw->wo, lw->bo, N, HD, C, l, LORA_O, rng);
	}
	residual_forward(s.res_mid, s.x, a->tmp, N, C);
	norm_forward(m, s.ln2, s.ln2_mean, s.ln2_rstd, s.res_mid, lw->ffn_norm_w,
	    lw->ffn_norm_b, N);
	if (ai->mlp == FTE_MLP_GELU) {
		linear_forward(m, lo, a, s.up, s.ln2, lw->w_up, lw->b_up, N, C, F, l, LORA_UP, rng);
		gelu_forward(s.hact, s.up, (size_t)N * F);
	} else {
		linear_forward(m, lo, a, s.gate, s.ln2, lw->w_gate, NULL, N, C, F, l, LORA_GATE, rng);
		linear_forward(m, lo, a, s.up, s.ln2, lw->w_up, NULL, N, C, F, l, LORA_UP, rng);
		if (ai->mlp == FTE_MLP_GEGLU)
			geglu_forward(s.hact, s.gate, s.up, (size_t)N * F);
		else
			swiglu_forward(s.hact, s.gate, s.up, (size_t)N * F);
	}
	if (ai->post_norms) {
		linear_forward(m, lo, a, s.mo, s.hact, lw->w_down, lw->b_down, N, F, C, l,
		    LORA_DOWN, rng);
		rmsnorm_forward(a->tmp, s.mo_rstd, s.mo, lw->ffn_post_w, ai->norm_offset, N, C,
		    c->norm_eps);
	} else {
		linear_forward(m, lo, a, a->tmp, s.hact, lw->w_down, lw->b_down, N, F, C, l,
		    LORA_DOWN, rng);
	}
	residual_forward(s.y, s.res_mid, a->tmp, N, C);
}

/* Gemma's embedding scale, sqrt(dim) rounded to float32 as transformers
 * makes it. */
static float
emb_scale(const fte_model *m)
{
	return m->ai->emb_scale ? (float)sqrt((double)m->cfg.dim) : 1.0f;
}

static void
scale_rows(float *x, size_t n, float k)
{
	for (size_t i = 0; i < n; i++)
		x[i] *= k;
}

double
fte__forward(const fte_model *m, const fte__lora *lo, fte__acts *a,
    const int *tokens, const int *targets, const int *segments, int B, int T,
    float *logits_copy, uint64_t *rng)
{
	const fte_config *c = &m->cfg;
	const fte__weights *w = &m->w;
	int N = B * T, C = c->dim, V = c->vocab_size;
	size_t NV = (size_t)N * V;
	double sum = 0.0;

	/* positions restart where a packed document begins */
	for (int b = 0; b < B; b++)
		for (int t = 0, p = a->pos0; t < T; t++, p++) {
			int i = b * T + t;

			if (segments != NULL && t > 0 && segments[i] != segments[i - 1])
				p = 0;
			a->pos[i] = p;
		}
	embedding_forward(a->res, tokens, w->tok_emb, N, C);
	if (m->ai->emb_scale)
		scale_rows(a->res, (size_t)N * C, emb_scale(m));
	if (w->pos_emb != NULL) {
		embedding_forward(a->tmp, a->pos, w->pos_emb, N, C);
		residual_forward(a->res, a->res, a->tmp, N, C);
	}
	for (int l = 0; l < c->n_layers; l++) {
		a->layer_rng[l] = rng != NULL ? *rng : 0;
		layer_forward(m, lo, a, l, segments, B, T, rng);
	}
	if (targets == NULL && logits_copy == NULL)
		return 0.0;
	norm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd, res_last(c, a),
	    w->norm_w, w->norm_b, N);
	matmul_forward(a->logits, a->lnf, w->output, NULL, N, C, V);
	if (c->final_softcap > 0) {
		softcap_forward(a->logits, a->logits, NV, c->final_softcap);
		if (a->capped != NULL)
			memcpy(a->capped, a->logits, NV * sizeof(float));
	}
	if (logits_copy != NULL)
		memcpy(logits_copy, a->logits, NV * sizeof(float));
	if (targets == NULL)
		return 0.0;
	crossentropy_forward(a->losses, a->logits, a->logits, targets, N, V);
	for (int i = 0; i < N; i++)
		sum += (double)a->losses[i] * a->dloss[i];
	return sum;
}

static void
zero(float *p, size_t n)
{
	memset(p, 0, n * sizeof(float));
}

void
fte__backward(const fte_model *m, const fte__weights *g, const fte__lora *lo,
    const fte__lora *gl, fte__acts *a, const int *tokens, const int *targets,
    const int *segments, int B, int T)
{
	const fte_config *c = &m->cfg;
	const fte_arch_info *ai = m->ai;
	const fte__weights *w = &m->w;
	int N = B * T, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
	int H = c->n_heads, K = c->n_kv_heads, D = c->head_dim;
	int HD = H * D, KD = K * D;
	size_t NC = (size_t)N * C, NF = (size_t)N * F;
	float off = ai->norm_offset;

	/* dlogits overwrite the probabilities in place */
	crossentropy_backward(a->logits, a->logits, targets, a->dloss, N, V);
	if (c->final_softcap > 0)
		softcap_backward(a->logits, a->capped, (size_t)N * V, c->final_softcap);
	zero(a->dln, NC);
	matmul_backward(a->dln, g->output, NULL, a->logits, a->lnf, w->output, N, C, V);
	zero(a->dres, NC);
	norm_backward(m, a->dres, g->norm_w, g->norm_b, a->dln, res_last(c, a),
	    w->norm_w, a->lnf_mean, a->lnf_rstd, N);
	for (int l = c->n_layers - 1; l >= 0; l--) {
		const fte__layer *lw = &w->layer[l];
		const fte__layer *lg = &g->layer[l];
		const float *freq, *dmlp = a->dres, *dattn;
		float rattn;
		attn_opts ao;
		layer_acts s;

		if (!a->ls) {
			/* recompute this layer's activations, replaying its dropout */
			uint64_t rng = a->layer_rng[l];

			layer_forward(m, lo, a, l, segments, B, T, &rng);
		}
		layer_acts_get(m, a, l, &s);
		layer_attn(m, l, &ao, &freq, &rattn);
		/* MLP; dres is the gradient of this layer's output */
		if (ai->post_norms) {
			zero(a->dpost, NC);
			rmsnorm_backward(a->dpost, lg->ffn_post_w, a->dres, s.mo, lw->ffn_post_w, off,
			    s.mo_rstd, N, C);
			dmlp = a->dpost;
		}
		zero(a->dhact, NF);
		linear_backward(m, lo, gl, a, a->dhact, lg->w_down, lg->b_down, dmlp,
		    s.hact, lw->w_down, N, F, C, l, LORA_DOWN);
		zero(a->dup, NF);
		zero(a->dln, NC);
		if (ai->mlp == FTE_MLP_GELU) {
			gelu_backward(a->dup, a->dhact, s.up, NF);
			linear_backward(m, lo, gl, a, a->dln, lg->w_up, lg->b_up, a->dup,
			    s.ln2, lw->w_up, N, C, F, l, LORA_UP);
		} else {
			zero(a->dgate, NF);
			if (ai->mlp == FTE_MLP_GEGLU)
				geglu_backward(a->dgate, a->dup, a->dhact, s.gate, s.up, NF);
			else
				swiglu_backward(a->dgate, a->dup, a->dhact, s.gate, s.up, NF);
			linear_backward(m, lo, gl, a, a->dln, lg->w_gate, NULL, a->dgate,
			    s.ln2, lw->w_gate, N, C, F, l, LORA_GATE);
			linear_backward(m, lo, gl, a, a->dln, lg->w_up, NULL, a->dup,
			    s.ln2, lw->w_up, N, C, F, l, LORA_UP);
		}
		norm_backward(m, a->dres, lg->ffn_norm_w, lg->ffn_norm_b, a->dln,
		    s.res_mid, lw->ffn_norm_w, s.ln2_mean, s.ln2_rstd, N);
		/* attention; dres is now the gradient of res_mid */
		dattn = a->dres;
		if (ai->post_norms) {
			zero(a->dpost, NC);
			rmsnorm_backward(a->dpost, lg->attn_post_w, a->dres, s.ao, lw->attn_post_w, off,
			    s.ao_rstd, N, C);
			dattn = a->dpost;
		}
		zero(a->datty, (size_t)N * HD);
		linear_backward(m, lo, gl, a, a->datty, lg->wo, lg->bo, dattn,
		    s.atty, lw->wo, N, HD, C, l, LORA_O);
		zero(a->dq, (size_t)N * HD);
		zero(a->dk, (size_t)N * KD);
		zero(a->dv, (size_t)N * KD);
		attention_backward(a->dq, a->dk, a->dv, a->datt, a->datty, s.q, s.k,
		    s.v, s.att, B, T, H, K, D, &ao);
		if (ai->rope) {
			rope_backward(a->dq, a->pos, N, H, D, rope_dims(c), freq, rattn, c->rope_style);
			rope_backward(a->dk, a->pos, N, K, D, rope_dims(c), freq, rattn, c->rope_style);
		}
		float *dq = a->dq, *dk = a->dk;
		if (ai->qk_norm) {
			zero(a->dqpre, (size_t)N * HD);
			zero(a->dkpre, (size_t)N * KD);
			rmsnorm_backward(a->dqpre, lg->q_norm_w, a->dq, s.qpre, lw->q_norm_w, off,
			    s.q_rstd, N * H, D);
			rmsnorm_backward(a->dkpre, lg->k_norm_w, a->dk, s.kpre, lw->k_norm_w, off,
			    s.k_rstd, N * K, D);
			dq = a->dqpre;
			dk = a->dkpre;
		}
		zero(a->dln, NC);
		linear_backward(m, lo, gl, a, a->dln, lg->wq, lg->bq, dq, s.ln1,
		    lw->wq, N, C, HD, l, LORA_Q);
		linear_backward(m, lo, gl, a, a->dln, lg->wk, lg->bk, dk, s.ln1,
		    lw->wk, N, C, KD, l, LORA_K);
		linear_backward(m, lo, gl, a, a->dln, lg->wv, lg->bv, a->dv, s.ln1,
		    lw->wv, N, C, KD, l, LORA_V);
		norm_backward(m, a->dres, lg->attn_norm_w, lg->attn_norm_b, a->dln,
		    s.x, lw->attn_norm_w, s.ln1_mean, s.ln1_rstd, N);
	}
	if (ai->emb_scale)
		scale_rows(a->dres, NC, emb_scale(m));
	if (g->tok_emb != NULL)
		embedding_backward(g->tok_emb, a->dres, tokens, N, C);
	if (g->pos_emb != NULL)
		embedding_backward(g->pos_emb, a->dres, a->pos, N, C);
}
