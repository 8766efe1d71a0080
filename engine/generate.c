/*
 * generate.c - inference: teacher-forced loss over a sequence, and token by
 * token generation with a KV cache and a sampler (greedy, temperature,
 * top-k, top-p).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "kernels/kernels.h"
#include "transformer.h"

int
fte_model_loss(fte_model *m, const int *tokens, int n, double *sum, int *count)
{
	const fte_config *c = &m->cfg;
	fte_batch b = { tokens, tokens + 1, NULL, 1, n - 1 };

	if (n < 2 || n - 1 > c->max_seq_len)
		return fte_error_set(FTE_EINVAL, "loss: need 2 to %d tokens, got %d",
		    c->max_seq_len + 1, n);
	/* every id, the last included, is a token: none may be a -1 mask */
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
			return fte_error_set(FTE_EINVAL, "loss: token %d outside the vocabulary (%d)",
			    tokens[i], c->vocab_size);
	return fte_model_loss_rows(m, &b, sum, count);
}

int
fte_model_loss_rows(fte_model *m, const fte_batch *b, double *sum, int *count)
{
	const fte_config *c = &m->cfg;
	fte__acts a;
	size_t N;
	int rc;

	if (b->tokens == NULL || b->targets == NULL || b->B <= 0 || b->T <= 0 ||
	    b->T > c->max_seq_len)
		return fte_error_set(FTE_EINVAL, "loss: need rows of 1 to %d tokens with targets",
		    c->max_seq_len);
	N = (size_t)b->B * b->T;
	for (size_t i = 0; i < N; i++) {
		if (b->tokens[i] < 0 || b->tokens[i] >= c->vocab_size)
			return fte_error_set(FTE_EINVAL, "loss: token %d outside the vocabulary (%d)",
			    b->tokens[i], c->vocab_size);
		if (b->targets[i] < -1 || b->targets[i] >= c->vocab_size)
			return fte_error_set(FTE_EINVAL, "loss: target %d outside the vocabulary (%d)",
			    b->targets[i], c->vocab_size);
	}
	if ((rc = fte__acts_create(c, b->B, b->T, 0, 0.0f, ACTS_INFER, &a)) != FTE_OK)
		return rc;
	for (size_t i = 0; i < N; i++)
		a.dloss[i] = b->targets[i] >= 0 ? 1.0f : 0.0f;
	fte__forward(m, NULL, &a, b->tokens, b->targets, b->segments, b->B, b->T, NULL, NULL);
	for (int r = 0; r < b->B; r++) {
		double s = 0.0;
		int k = 0;

		for (size_t i = (size_t)r * b->T; i < (size_t)(r + 1) * b->T; i++)
			if (b->targets[i] >= 0) {
				s += a.losses[i];
				k++;
			}
		sum[r] = s;
		count[r] = k;
	}
	fte__acts_free(&a);
	return FTE_OK;
}

void
fte_sampler_default(fte_sampler *s)
{
	memset(s, 0, sizeof(*s));
	s->top_p = 1.0f;
	s->seed = 1;
	s->max_new_tokens = 256;
	s->stop_at_eos = 1;
	s->stop_at_bos = 1;
}

static int
is_stop_id(const fte_sampler *s, int id)
{
	for (size_t i = 0; i < s->n_stop_ids; i++)
		if (s->stop_ids[i] == id)
			return 1;
	return 0;
}

/* One position's state: the KV cache and per-token buffers. */
typedef struct decoder {
	float *mem;
	float *kc, *vc;              /* (L, P, KD) */
	float *x, *xb, *q, *atty, *tmp, *hg, *hu, *ha, *scores, *logits;
	float mean, rstd;
} decoder;

/* Floats of one decoder: the KV cache and one position's buffers. */
static size_t
decoder_floats(const fte_config *c)
{
	size_t P = c->max_seq_len, L = c->n_layers, C = c->dim, F = c->ffn_dim;
	size_t KD = (size_t)c->n_kv_heads * c->head_dim;
	size_t HD = (size_t)c->n_heads * c->head_dim, V = c->vocab_size;
	size_t big = C > F ? C : F;

	return 2 * L * P * KD + 3 * C + 2 * HD + big + 3 * F + P + V;
}

static int
decoder_create(const fte_config *c, decoder *d)
{
	size_t P = c->max_seq_len, L = c->n_layers, C = c->dim, F = c->ffn_dim;
	size_t KD = (size_t)c->n_kv_heads * c->head_dim;
	size_t HD = (size_t)c->n_heads * c->head_dim;
	size_t big = C > F ? C : F;
	float *p;

	if ((p = calloc(decoder_floats(c), sizeof(float))) == NULL)
		return fte_error_set(FTE_ENOMEM, "generate: cannot allocate the KV cache");
	d->mem = p;
	d->kc = p; p += L * P * KD;
	d->vc = p; p += L * P * KD;
	d->x = p; p += C;
	d->xb = p; p += C;
	d->q = p; p += HD;
	d->atty = p; p += HD;
	d->tmp = p; p += big;
	d->hg = p; p += F;
	d->hu = p; p += F;
	d->ha = p; p += F;
	d->scores = p; p += P;
	d->logits = p;
	return FTE_OK;
}

static void
dnorm(const fte_config *c, decoder *d, float *out, const float *inp,
    const float *w, const float *b)
{
	if (c->arch == FTE_ARCH_LLAMA)
		rmsnorm_forward(out, &d->rstd, inp, w, 1, c->dim, c->norm_eps);
	else
		layernorm_forward(out, &d->mean, &d->rstd, inp, w, b, 1, c->dim, c->norm_eps);
}

/* head_norm applies Qwen3's RMSNorm to each of x's nh heads of D values,
 * through d->atty (free until the attention output). */
static void
head_norm(decoder *d, float *x, const float *w, int nh, int D, float eps)
{
	for (int h = 0; h < nh; h++)
		rmsnorm_forward(d->atty + (size_t)h * D, &d->rstd, x + (size_t)h * D, w, 1, D, eps);
	memcpy(x, d->atty, (size_t)nh * D * sizeof(float));
}

/* decoder_step runs token tok at position pos, leaving logits. */
static void
decoder_step(const fte_model *m, decoder *d, int tok, int pos)
{
	const fte_config *c = &m->cfg;
	const fte__weights *w = &m->w;
	int C = c->dim, F = c->ffn_dim, H = c->n_heads, K = c->n_kv_heads;
	int D = c->head_dim, HD = H * D, KD = K * D, P = c->max_seq_len;
	float scale = 1.0f / sqrtf((float)D);

	memcpy(d->x, w->tok_emb + (size_t)tok * C, (size_t)C * sizeof(float));
	if (w->pos_emb != NULL)
		for (int i = 0; i < C; i++)
			d->x[i] += w->pos_emb[(size_t)pos * C + i];
	for (int l = 0; l < c->n_layers; l++) {
		const fte__layer *lw = &w->layer[l];
		float *kr = d->kc + ((size_t)l * P + pos) * KD;
		float *vr = d->vc + ((size_t)l * P + pos) * KD;

		dnorm(c, d, d->xb, d->x, lw->attn_norm_w, lw->attn_norm_b);
		matmul_forward(d->q, d->xb, lw->wq, lw->bq, 1, C, HD);
		matmul_forward(kr, d->xb, lw->wk, lw->bk, 1, C, KD);
		matmul_forward(vr, d->xb, lw->wv, lw->bv, 1, C, KD);
		if (c->qk_norm) {
			head_norm(d, d->q, lw->q_norm_w, H, D, c->norm_eps);
			head_norm(d, kr, lw->k_norm_w, K, D, c->norm_eps);
		}
		if (c->arch == FTE_ARCH_LLAMA) {
			rope_forward(d->q, &pos, 1, H, D, m->rope_freq, m->rope_attn, c->rope_style);
			rope_forward(kr, &pos, 1, K, D, m->rope_freq, m->rope_attn, c->rope_style);
		}
		/* one query against the cache; query head h reads kv head h/(H/K) */
		for (int h = 0; h < H; h++) {
			const float *qh = d->q + (size_t)h * D;
			int kvh = h / (H / K);
			float mx = -INFINITY, sum = 0.0f, *oh = d->atty + (size_t)h * D;

			for (int t = 0; t <= pos; t++) {
				const float *kt = d->kc + ((size_t)l * P + t) * KD + (size_t)kvh * D;
				float s = 0.0f;

				for (int i = 0; i < D; i++)
					s += qh[i] * kt[i];
				d->scores[t] = s * scale;
				if (d->scores[t] > mx)
					mx = d->scores[t];
			}
			for (int t = 0; t <= pos; t++) {
				d->scores[t] = expf(d->scores[t] - mx);
				sum += d->scores[t];
			}
			memset(oh, 0, (size_t)D * sizeof(float));
			for (int t = 0; t <= pos; t++) {
				const float *vt = d->vc + ((size_t)l * P + t) * KD + (size_t)kvh * D;
				float p = d->scores[t] / sum;

				for (int i = 0; i < D; i++)
					oh[i] += p * vt[i];
			}
		}
		matmul_forward(d->tmp, d->atty, lw->wo, lw->bo, 1, HD, C);
		for (int i = 0; i < C; i++)
			d->x[i] += d->tmp[i];
		dnorm(c, d, d->xb, d->x, lw->ffn_norm_w, lw->ffn_norm_b);
		if (c->arch == FTE_ARCH_LLAMA) {
			matmul_forward(d->hg, d->xb, lw->w_gate, NULL, 1, C, F);
			matmul_forward(d->hu, d->xb, lw->w_up, NULL, 1, C, F);
			swiglu_forward(d->ha, d->hg, d->hu, (size_t)F);
		} else {
			matmul_forward(d->hu, d->xb, lw->w_up, lw->b_up, 1, C, F);
			gelu_forward(d->ha, d->hu, (size_t)F);
		}
		matmul_forward(d->tmp, d->ha, lw->w_down, lw->b_down, 1, F, C);
		for (int i = 0; i < C; i++)
			d->x[i] += d->tmp[i];
	}
	dnorm(c, d, d->xb, d->x, w->norm_w, w->norm_b);
	matmul_forward(d->logits, d->xb, w->output, NULL, 1, C, c->vocab_size);
}

typedef struct prob_idx {
	float p;
	int i;
} prob_idx;

static int
prob_cmp(const void *a, const void *b)
{
	const prob_idx *x = a, *y = b;

	if (x->p != y->p)
		return x->p < y->p ? 1 : -1;
	return x->i - y->i;
}

/* sample picks the next token from logits (V); pi is (V) scratch. */
static int
sample(const fte_sampler *s, const float *logits, int V, prob_idx *pi, uint64_t *rng)
{
	float mx = -INFINITY, sum = 0.0f, cut, r, acc = 0.0f;
	int best = 0, n = V;

	for (int i = 0; i < V; i++)
		if (logits[i] > mx) {
			mx = logits[i];
			best = i;
		}
	if (s->temperature <= 0.0f)
		return best;
	for (int i = 0; i < V; i++) {
		pi[i].p = expf((logits[i] - mx) / s->temperature);
		pi[i].i = i;
		sum += pi[i].p;
	}
	for (int i = 0; i < V; i++)
		pi[i].p /= sum;
	qsort(pi, (size_t)V, sizeof(*pi), prob_cmp);
	if (s->top_k > 0 && s->top_k < n)
		n = s->top_k;
	cut = 0.0f;
	for (int i = 0; i < n; i++)
		cut += pi[i].p;
	/* top-p over the top-k tokens renormalised, as Hugging Face chains
	 * its top-k and top-p warpers */
	if (s->top_p > 0.0f && s->top_p < 1.0f) {
		float cum = 0.0f;

		for (int i = 0; i < n; i++) {
			cum += pi[i].p;
			if (cum >= s->top_p * cut) {
				n = i + 1;
				cut = cum;
				break;
			}
		}
	}
	r = fte__rng_uniform(rng) * cut;
	for (int i = 0; i < n; i++) {
		acc += pi[i].p;
		if (r < acc)
			return pi[i].i;
	}
	return pi[n - 1].i;
}

/* top_select puts the k largest of v (V) in lp's top, best first (ties to
 * the lower id, as the sampler). */
static void
top_select(const float *v, int V, int k, fte_logprob *lp)
{
	lp->n_top = 0;
	for (int i = 0; i < V; i++) {
		int at = lp->n_top;

		while (at > 0 && v[i] > lp->top_lp[at - 1])
			at--;
		if (at >= k)
			continue;
		if (lp->n_top < k)
			lp->n_top++;
		memmove(lp->top_id + at + 1, lp->top_id + at,
		    (size_t)(lp->n_top - 1 - at) * sizeof(int));
		memmove(lp->top_lp + at + 1, lp->top_lp + at,
		    (size_t)(lp->n_top - 1 - at) * sizeof(float));
		lp->top_id[at] = i;
		lp->top_lp[at] = v[i];
	}
}

/* logprob_row fills lp from one row of logits (V): tok's log-softmax and
 * the k likeliest. */
static void
logprob_row(const float *logits, int V, int tok, int k, fte_logprob *lp)
{
	float mx = -INFINITY;
	double sum = 0.0;
	float lse;

	for (int i = 0; i < V; i++)
		if (logits[i] > mx)
			mx = logits[i];
	for (int i = 0; i < V; i++)
		sum += exp((double)logits[i] - mx);
	lse = mx + (float)log(sum);
	lp->logprob = logits[tok] - lse;
	top_select(logits, V, k, lp);
	for (int i = 0; i < lp->n_top; i++)
		lp->top_lp[i] -= lse;
}

int
fte_model_logprobs(fte_model *m, const int *tokens, int n, int k, fte_logprob *out)
{
	const fte_config *c = &m->cfg;
	int V = c->vocab_size;
	fte__acts a;
	int rc;

	if (n < 2 || n - 1 > c->max_seq_len || k < 0 || k > FTE_TOP_LOGPROBS_MAX)
		return fte_error_set(FTE_EINVAL, "logprobs: need 2 to %d tokens and k <= %d",
		    c->max_seq_len + 1, FTE_TOP_LOGPROBS_MAX);
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= V)
			return fte_error_set(FTE_EINVAL, "logprobs: token %d outside the vocabulary (%d)",
			    tokens[i], V);
	if ((rc = fte__acts_create(c, 1, n - 1, 0, 0.0f, ACTS_INFER, &a)) != FTE_OK)
		return rc;
	for (int i = 0; i < n - 1; i++)
		a.dloss[i] = 1.0f;
	/* the loss pass, so no copy of the logits: each target's loss is its
	 * log-probability, and the probabilities left in place rank the rest
	 * (one that underflows to 0 is not listed) */
	fte__forward(m, NULL, &a, tokens, tokens + 1, NULL, 1, n - 1, NULL, NULL);
	for (int i = 0; i < n - 1; i++) {
		out[i].logprob = -a.losses[i];
		top_select(a.logits + (size_t)i * V, V, k, &out[i]);
		for (int t = 0; t < out[i].n_top; t++) {
			if (out[i].top_lp[t] <= 0.0f) {
				out[i].n_top = t;
				break;
			}
			out[i].top_lp[t] = logf(out[i].top_lp[t]);
		}
	}
	fte__acts_free(&a);
	return FTE_OK;
}

size_t
fte_generate_memory(const fte_config *c)
{
	size_t prefill = 0;

	/* fte_generate's largest moment: the longest prefill beside the
	 * decoder and the sampler's buffer */
	if (c->max_seq_len > 1)
		prefill = fte__acts_floats(c, 1, c->max_seq_len - 1, 0, 0.0f, ACTS_INFER) *
		    sizeof(float) + (size_t)(c->max_seq_len - 1) * sizeof(int);
	return decoder_floats(c) * sizeof(float) + (size_t)c->vocab_size * sizeof(prob_idx) +
	    prefill;
}

/* generate_run is fte_generate calling fn, or lp_fn with k alternatives. */
static int
generate_run(fte_model *m, const int *prompt, int n_prompt, const fte_sampler *s,
    fte_token_fn fn, fte_logprob_fn lp_fn, int k, void *arg, int *out, int *n_out)
{
	const fte_config *c = &m->cfg;
	decoder d;
	prob_idx *pi;
	fte_logprob lp;
	uint64_t rng = s->seed;
	int rc, n = 0, tok;

	if (n_prompt < 1 || n_prompt > c->max_seq_len)
		return fte_error_set(FTE_EINVAL, "generate: prompt needs 1 to %d tokens, got %d",
		    c->max_seq_len, n_prompt);
	for (int i = 0; i < n_prompt; i++)
		if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
			return fte_error_set(FTE_EINVAL, "generate: prompt token %d outside the vocabulary",
			    prompt[i]);
	if (s->max_new_tokens < 0 || !(s->temperature >= 0.0f) || s->top_k < 0 ||
	    !(s->top_p > 0.0f && s->top_p <= 1.0f))
		return fte_error_set(FTE_EINVAL,
		    "generate: bad sampler (max_new_tokens >= 0, temperature >= 0, top_k >= 0, 0 < top_p <= 1)");
	if (k < 0 || k > FTE_TOP_LOGPROBS_MAX)
		return fte_error_set(FTE_EINVAL, "generate: at most %d alternatives",
		    FTE_TOP_LOGPROBS_MAX);
	if ((rc = decoder_create(c, &d)) != FTE_OK)
		return rc;
	if ((pi = malloc((size_t)c->vocab_size * sizeof(*pi))) == NULL) {
		free(d.mem);
		return fte_error_set(FTE_ENOMEM, "generate: out of memory");
	}
	/* prefill: all but the last prompt token in one batched forward pass
	 * that leaves their keys and values in the cache */
	if (n_prompt > 1) {
		fte__acts a;

		if ((rc = fte__acts_create(c, 1, n_prompt - 1, 0, 0.0f, ACTS_INFER, &a)) != FTE_OK) {
			free(pi);
			free(d.mem);
			return rc;
		}
		a.kv_k = d.kc;
		a.kv_v = d.vc;
		fte__forward(m, NULL, &a, prompt, NULL, NULL, 1, n_prompt - 1, NULL, NULL);
		fte__acts_free(&a);
	}
	tok = prompt[n_prompt - 1];
	for (int pos = n_prompt - 1; n < s->max_new_tokens && pos < c->max_seq_len; pos++) {
		int next;

		decoder_step(m, &d, tok, pos);
		next = sample(s, d.logits, c->vocab_size, pi, &rng);
		if (lp_fn != NULL)
			logprob_row(d.logits, c->vocab_size, next, k, &lp);
		if ((s->stop_at_eos && next == c->eos_id) || (s->stop_at_bos && next == c->bos_id) ||
		    is_stop_id(s, next))
			break;
		if (out != NULL)
			out[n] = next;
		n++;
		if (fn != NULL && fn(arg, next) != 0)
			break;
		if (lp_fn != NULL && lp_fn(arg, next, &lp) != 0)
			break;
		tok = next;
	}
	free(pi);
	free(d.mem);
	*n_out = n;
	return FTE_OK;
}

int
fte_generate(fte_model *m, const int *prompt, int n_prompt,
    const fte_sampler *s, fte_token_fn fn, void *arg, int *out, int *n_out)
{
	return generate_run(m, prompt, n_prompt, s, fn, NULL, 0, arg, out, n_out);
}

int
fte_generate_logprobs(fte_model *m, const int *prompt, int n_prompt,
    const fte_sampler *s, int k, fte_logprob_fn fn, void *arg, int *out, int *n_out)
{
	return generate_run(m, prompt, n_prompt, s, NULL, fn, k, arg, out, n_out);
}
