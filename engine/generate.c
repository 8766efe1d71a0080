/*
 * generate.c - inference: teacher-forced loss over a sequence, and token by
 * token generation with a KV cache and a sampler (greedy, temperature,
 * top-k, top-p).  Decoding runs transformer.c's layers with the cache
 * attached, so it computes what training computes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "transformer.h"

/* The rank of m's attached adapter (fte_adapter_attach), 0 without. */
static int
lora_rank(const fte_model *m)
{
	return m->lora != NULL ? m->lora->rank : 0;
}

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
	if ((rc = fte__acts_create(c, b->B, b->T, lora_rank(m), 0.0f, ACTS_INFER, &a)) != FTE_OK)
		return rc;
	for (size_t i = 0; i < N; i++)
		a.dloss[i] = b->targets[i] >= 0 ? 1.0f : 0.0f;
	fte__forward(m, m->lora, &a, b->tokens, b->targets, b->segments, b->B, b->T, NULL, NULL);
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

/* The KV cache of one generation: (L, P, K*D) keys, then values. */
static size_t
kv_floats(const fte_config *c)
{
	return 2 * (size_t)c->n_layers * c->max_seq_len * c->n_kv_heads * c->head_dim;
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
	if ((rc = fte__acts_create(c, 1, n - 1, lora_rank(m), 0.0f, ACTS_INFER, &a)) != FTE_OK)
		return rc;
	for (int i = 0; i < n - 1; i++)
		a.dloss[i] = 1.0f;
	/* the loss pass, so no copy of the logits: each target's loss is its
	 * log-probability, and the probabilities left in place rank the rest
	 * (one that underflows to 0 is not listed) */
	fte__forward(m, m->lora, &a, tokens, tokens + 1, NULL, 1, n - 1, NULL, NULL);
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

/* generate_memory is fte_generate_memory with an adapter of rank r. */
static size_t
generate_memory(const fte_config *c, int r)
{
	size_t prefill = 0;

	/* fte_generate's largest moment: the longest prefill beside the cache,
	 * one token's activations, its logits and the sampler's buffer */
	if (c->max_seq_len > 1)
		prefill = fte__acts_floats(c, 1, c->max_seq_len - 1, r, 0.0f, ACTS_CACHE) *
		    sizeof(float) + (size_t)(c->max_seq_len - 1) * sizeof(int);
	return (kv_floats(c) + fte__acts_floats(c, 1, 1, r, 0.0f, ACTS_CACHE) +
	    (size_t)c->vocab_size) * sizeof(float) + sizeof(int) +
	    (size_t)c->vocab_size * sizeof(prob_idx) + prefill;
}

size_t
fte_generate_memory(const fte_config *c)
{
	return generate_memory(c, 0);
}

size_t
fte_model_generate_memory(const fte_model *m)
{
	return generate_memory(&m->cfg, lora_rank(m));
}

/* generate_run is fte_generate calling fn, or lp_fn with k alternatives. */
static int
generate_run(fte_model *m, const int *prompt, int n_prompt, const fte_sampler *s,
    fte_token_fn fn, fte_logprob_fn lp_fn, int k, void *arg, int *out, int *n_out)
{
	const fte_config *c = &m->cfg;
	fte__acts one = { 0 };
	float *kv, *logits = NULL;
	prob_idx *pi = NULL;
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
	if ((kv = calloc(kv_floats(c), sizeof(float))) == NULL)
		return fte_error_set(FTE_ENOMEM, "generate: cannot allocate the KV cache");
	if ((rc = fte__acts_create(c, 1, 1, lora_rank(m), 0.0f, ACTS_CACHE, &one)) != FTE_OK)
		goto done;
	logits = malloc((size_t)c->vocab_size * sizeof(*logits));
	pi = malloc((size_t)c->vocab_size * sizeof(*pi));
	if (logits == NULL || pi == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "generate: out of memory");
		goto done;
	}
	/* prefill: all but the last prompt token in one batched pass that
	 * leaves their keys and values in the cache */
	if (n_prompt > 1) {
		fte__acts a;

		if ((rc = fte__acts_create(c, 1, n_prompt - 1, lora_rank(m), 0.0f,
		    ACTS_CACHE, &a)) != FTE_OK)
			goto done;
		a.kv_k = kv;
		a.kv_v = kv + kv_floats(c) / 2;
		fte__forward(m, m->lora, &a, prompt, NULL, NULL, 1, n_prompt - 1, NULL, NULL);
		fte__acts_free(&a);
	}
	/* then one token at a time through the same layers */
	one.kv_k = kv;
	one.kv_v = kv + kv_floats(c) / 2;
	tok = prompt[n_prompt - 1];
	for (int pos = n_prompt - 1; n < s->max_new_tokens && pos < c->max_seq_len; pos++) {
		int next;

		one.pos0 = pos;
		fte__forward(m, m->lora, &one, &tok, NULL, NULL, 1, 1, logits, NULL);
		next = sample(s, logits, c->vocab_size, pi, &rng);
		if (lp_fn != NULL)
			logprob_row(logits, c->vocab_size, next, k, &lp);
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
	*n_out = n;
done:
	fte__acts_free(&one);
	free(pi);
	free(logits);
	free(kv);
	return rc;
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
