/*
 * lora.c - LoRA adapters: y = x W^T + (alpha / r) * drop(x) A^T B^T with
 * A (r, in) and B (out, r), as PEFT's lora.Linear.  Base weights stay frozen.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fte.h"
#include "kernels/kernels.h"
#include "transformer.h"

static const char *lora_words[LORA_NMOD] = {
	"q", "k", "v", "o", "gate", "up", "down"
};

int
fte_lora_targets_parse(const char *list, unsigned *out)
{
	unsigned bits = 0;
	const char *p = list;

	if (list == NULL || *list == '\0')
		return fte_error_set(FTE_EINVAL, "lora targets: empty list");
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		int found = 0;

		if (n == 3 && strncasecmp(p, "all", 3) == 0) {
			bits |= FTE_LORA_ALL;
			found = 1;
		}
		for (int i = 0; i < LORA_NMOD && !found; i++)
			if (strlen(lora_words[i]) == n && strncasecmp(p, lora_words[i], n) == 0) {
				bits |= 1u << i;
				found = 1;
			}
		if (!found)
			return fte_error_set(FTE_EINVAL,
			    "lora targets: unknown module '%.*s' (use q,k,v,o,gate,up,down or all)",
			    (int)n, p);
		p += n;
		if (*p == ',')
			p++;
	}
	*out = bits;
	return FTE_OK;
}

void
fte__lora_dims(const fte_config *c, int mod, int *in, int *out)
{
	int C = c->dim, HD = c->n_heads * c->head_dim;
	int KD = c->n_kv_heads * c->head_dim, F = c->ffn_dim;

	switch (mod) {
	case LORA_Q: *in = C; *out = HD; break;
	case LORA_K: *in = C; *out = KD; break;
	case LORA_V: *in = C; *out = KD; break;
	case LORA_O: *in = HD; *out = C; break;
	case LORA_GATE: *in = C; *out = fte_arch_get(c->arch)->mlp != FTE_MLP_GELU ? F : 0; break;
	case LORA_UP: *in = C; *out = F; break;
	default: *in = F; *out = C; break;
	}
	if (*out == 0)
		*in = 0;
}

unsigned
fte__lora_targets_effective(const fte_config *c, unsigned targets)
{
	if (fte_arch_get(c->arch)->mlp == FTE_MLP_GELU)
		targets &= ~(unsigned)FTE_LORA_GATE;
	return targets & FTE_LORA_ALL;
}

size_t
fte__lora_numel(const fte_config *c, int rank, unsigned targets)
{
	size_t n = 0;

	targets = fte__lora_targets_effective(c, targets);
	for (int mod = 0; mod < LORA_NMOD; mod++) {
		int in, out;

		if (!(targets & (1u << mod)))
			continue;
		fte__lora_dims(c, mod, &in, &out);
		n += (size_t)rank * (size_t)(in + out);
	}
	return n * (size_t)c->n_layers;
}

float *
fte__lora_base(const fte__layer *ly, int mod)
{
	switch (mod) {
	case LORA_Q: return ly->wq;
	case LORA_K: return ly->wk;
	case LORA_V: return ly->wv;
	case LORA_O: return ly->wo;
	case LORA_GATE: return ly->w_gate;
	case LORA_UP: return ly->w_up;
	default: return ly->w_down;
	}
}

void
fte__lora_name(const fte_config *c, int l, int mod, char *buf, size_t len)
{
	static const char *gated[LORA_NMOD] = { "attn.wq", "attn.wk", "attn.wv",
		"attn.wo", "ffn.w1", "ffn.w3", "ffn.w2" };
	static const char *gelu[LORA_NMOD] = { "attn.wq", "attn.wk", "attn.wv",
		"attn.wo", "", "ffn.fc", "ffn.proj" };

	snprintf(buf, len, "layers.%d.%s", l,
	    fte_arch_get(c->arch)->mlp != FTE_MLP_GELU ? gated[mod] : gelu[mod]);
}

void
fte__lora_view(const fte_config *c, const fte_lora_config *lc, float *base,
    fte__lora *lo)
{
	unsigned targets = fte__lora_targets_effective(c, lc->targets);

	memset(lo, 0, sizeof(*lo));
	lo->rank = lc->rank;
	lo->scale = lc->alpha / (float)lc->rank;
	lo->dropout = lc->dropout;
	lo->targets = targets;
	for (int l = 0; l < c->n_layers; l++)
		for (int mod = 0; mod < LORA_NMOD; mod++) {
			int in, out;

			if (!(targets & (1u << mod)))
				continue;
			fte__lora_dims(c, mod, &in, &out);
			lo->a[l][mod] = base;
			base += (size_t)lc->rank * in;
			lo->b[l][mod] = base;
			base += (size_t)out * lc->rank;
		}
}

typedef struct accum_job {
	float *out;
	const float *xa, *B;
	int outd, r;
} accum_job;

static void
accum_rows(void *ctx, int lo, int hi)
{
	accum_job *j = ctx;

	fte__gemm(0, 1, hi - lo, j->outd, j->r,
	    1.0f, j->xa + (size_t)lo * j->r, j->r, j->B, j->r, 1.0f,
	    j->out + (size_t)lo * j->outd, j->outd);
}

void
fte__lora_forward(float *out, float *xa, float *mask, float *s1,
    const float *x, const float *A, const float *B, int N, int in, int outd,
    int r, float scale, float dropout, uint64_t *rng)
{
	size_t n = (size_t)N * in, nr = (size_t)N * r;

	if (mask != NULL) {
		float keep = 1.0f / (1.0f - dropout);

		/* serial: the mask must not depend on the thread count */
		for (size_t i = 0; i < n; i++)
			mask[i] = fte__rng_uniform(rng) < dropout ? 0.0f : keep;
		for (size_t i = 0; i < n; i++)
			s1[i] = x[i] * mask[i];
		x = s1;
	}
	matmul_forward(xa, x, A, NULL, N, in, r);
	for (size_t i = 0; i < nr; i++)
		xa[i] *= scale;
	/* out += xa @ B^T: matmul_forward would overwrite out, so split the
	 * accumulating sgemm by rows over the engine's threads (BLAS itself
	 * runs single-threaded, kernels/threads.c) */
	{
		accum_job j = { out, xa, B, outd, r };

		fte__parallel_range(N, 2.0 * N * outd * r, accum_rows, &j);
	}
}

void
fte__lora_backward(float *dx, float *dA, float *dB, float *dxa, float *s1,
    float *s2, const float *dout, const float *x, const float *xa,
    const float *mask, const float *A, const float *B, int N, int in,
    int outd, int r, float scale)
{
	size_t n = (size_t)N * in, nr = (size_t)N * r;

	/* xa already carries the scale, so dB = dout^T xa is exact */
	memset(dxa, 0, nr * sizeof(float));
	matmul_backward(dxa, dB, NULL, dout, xa, B, N, r, outd);
	for (size_t i = 0; i < nr; i++)
		dxa[i] *= scale;
	if (mask == NULL) {
		matmul_backward(dx, dA, NULL, dxa, x, A, N, in, r);
		return;
	}
	for (size_t i = 0; i < n; i++)
		s1[i] = x[i] * mask[i];
	memset(s2, 0, n * sizeof(float));
	matmul_backward(s2, dA, NULL, dxa, s1, A, N, in, r);
	for (size_t i = 0; i < n; i++)
		dx[i] += s2[i] * mask[i];
}
