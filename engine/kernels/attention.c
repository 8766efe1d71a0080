/*
 * attention.c - causal multi-head attention with grouped keys/values.
 *
 * DESIGN
 *
 * Layout.  q is [B*T, H*D] and k, v are [B*T, K*D], exactly as the q/k/v
 * projections write them, so head h of batch b is a [T, D] matrix with row
 * stride H*D (or K*D) starting at column h*D: BLAS reads it in place through
 * its leading dimension, and no head is ever copied or transposed.  Query
 * head h reads kv head g = h / (H/K).  att is [B, H, T, T], row i holding
 * token i's probabilities over keys 0..T-1 (zero above the diagonal and
 * across documents).
 *
 * Blocks.  Each head's T rows are cut into blocks of ATT_BLOCK queries.  A
 * block of rows [i0, i1) only needs keys [0, i1), so its scores are one
 * sgemm of (i1-i0) x i1 x D, and the upper triangle beyond the block is
 * never computed (about half the work of the full T x T product).
 *
 * Parallel split.  OpenBLAS is single-threaded (threads.c); the pool's
 * threads share out work items dynamically and each item makes its own
 * small sgemm calls.  The items write disjoint outputs, so the result does
 * not depend on which thread ran which item.
 *   forward        item (b, h, row block): scores, softmax, out rows.
 *   backward 1     item (b, h, row block): dP = dO V^T, dS = P (dP - rowdot)
 *                  into scratch, dq rows += scale dS K.
 *   backward 2     item (b, g, key block): dk rows += scale dS^T Q and
 *                  dv rows += P^T dO, summed over the H/K query heads of the
 *                  group in increasing order.  Splitting by kv head and key
 *                  block lets grouped heads share dk/dv without atomics.
 * The two backward passes are two jobs of the thread pool, one after the
 * other.
 *
 * Scores.  s = scale q.k, soft-capped (cap tanh(s / cap)) when asked, then
 * masked (causal, document, sliding window) before the softmax, the order
 * transformers uses.  Backward of the cap needs the capped scores: pass 1
 * recomputes them into the second half of scratch.
 *
 * Cache.  attention_cache_forward is the same row computation for new
 * tokens against cached keys (generation): one item per head.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/vmath.h"

#define ATT_BLOCK 64

/* One call's arguments and the sizes derived from them. */
struct att {
	float *out, *att, *dq, *dk, *dv, *scratch;
	const float *q, *k, *v, *dout, *catt;
	const int *seg;
	int B, T, H, K, D;
	int nblk, ldq, ldk, group;
	float scale, cap;
	int window;
};

static void
att_init(struct att *a, int B, int T, int H, int K, int D, const attn_opts *o)
{
	a->B = B;
	a->T = T;
	a->H = H;
	a->K = K;
	a->D = D;
	a->nblk = (T + ATT_BLOCK - 1) / ATT_BLOCK;
	a->ldq = H * D;
	a->ldk = K * D;
	a->group = H / K;
	a->scale = o != NULL && o->scale > 0 ? o->scale : 1.0f / sqrtf((float)D);
	a->cap = o != NULL ? o->softcap : 0.0f;
	a->window = o != NULL ? o->window : 0;
}

/* att_row_softmax turns the scores of query i against keys 0 .. n-1 into
 * probabilities: cap, mask (keys after i, before the window or, with sb,
 * of another document), softmax, zeros for keys i+1 .. n-1.  Query i
 * always sees itself, so max is finite. */
static void
att_row_softmax(const struct att *a, float *row, int i, int n, const int *sb)
{
	if (a->cap > 0)
		for (int j = 0; j < n; j++)
			row[j] = a->cap * tanhf(row[j] / a->cap);
	if (sb != NULL)
		for (int j = 0; j < i; j++)
			if (sb[j] != sb[i])
				row[j] = -INFINITY;
	if (a->window > 0)
		for (int j = 0; j <= i - a->window; j++)
			row[j] = -INFINITY;
	float max = vrow_max(row, i + 1);
	float sum = vrow_expsum(row, row, max, i + 1);
	vrow_axpy(row, 1.0f / sum, row, 0.0f, i + 1);
	memset(row + i + 1, 0, (size_t)(n - i - 1) * sizeof(float));
}

/* att_fwd_item: scores, softmax and output rows of one (b, h, row block). */
static void
att_fwd_item(void *arg, int it)
{
	const struct att *a = arg;
	int T = a->T, D = a->D, ldq = a->ldq, ldk = a->ldk;
	/* later row blocks are larger: hand them out first */
	int blk = a->nblk - 1 - it % a->nblk, h = (it / a->nblk) % a->H;
	int b = it / (a->nblk * a->H);
	int i0 = blk * ATT_BLOCK;
	int i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T;
	const float *qh = a->q + (size_t)b * T * ldq + h * D;
	const float *kh = a->k + (size_t)b * T * ldk + (h / a->group) * D;
	const float *vh = a->v + (size_t)b * T * ldk + (h / a->group) * D;
	float *ah = a->att + ((size_t)b * a->H + h) * T * T;
	const int *sb = a->seg != NULL ? a->seg + (size_t)b * T : NULL;

	fte__gemm(0, 1, i1 - i0, i1, D,
	    a->scale, qh + (size_t)i0 * ldq, ldq, kh, ldk, 0.0f,
	    ah + (size_t)i0 * T, T);
	for (int i = i0; i < i1; i++)
		att_row_softmax(a, ah + (size_t)i * T, i, i1, sb);
	for (int i = i0; i < i1; i++)
		memset(ah + (size_t)i * T + i1, 0, (size_t)(T - i1) * sizeof(float));
	fte__gemm(0, 0, i1 - i0, D, i1,
	    1.0f, ah + (size_t)i0 * T, T, vh, ldk, 0.0f,
	    a->out + (size_t)b * T * ldq + (size_t)i0 * ldq + h * D, ldq);
}

void
attention_forward(float *out, float *att, const float *q,
    const float *k, const float *v, const int *seg,
    int B, int T, int H, int K, int D, const attn_opts *o)
{
	struct att a = { .out = out, .att = att, .q = q, .k = k, .v = v,
	    .seg = seg };

	att_init(&a, B, T, H, K, D, o);
	fte__parallel_for(B * H * a.nblk, 2.0 * B * H * T * T * D,
	    att_fwd_item, &a);
}

/* att_bwd_rows_item: for one (b, h, row block), dS into scratch and dq. */
static void
att_bwd_rows_item(void *arg, int it)
{
	const struct att *a = arg;
	int T = a->T, D = a->D, ldq = a->ldq, ldk = a->ldk;
	int blk = a->nblk - 1 - it % a->nblk, h = (it / a->nblk) % a->H;
	int b = it / (a->nblk * a->H);
	int i0 = blk * ATT_BLOCK;
	int i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T;
	size_t qo = (size_t)b * T * ldq + h * D;
	size_t ko = (size_t)b * T * ldk + (h / a->group) * D;
	const float *ah = a->catt + ((size_t)b * a->H + h) * T * T;
	float *sh = a->scratch + ((size_t)b * a->H + h) * T * T;
	float *ch = sh + (size_t)a->B * a->H * T * T;

	/* the capped scores again, as forward made them */
	if (a->cap > 0) {
		fte__gemm(0, 1, i1 - i0, i1, D, a->scale, a->q + qo + (size_t)i0 * ldq, ldq,
		    a->k + ko, ldk, 0.0f, ch + (size_t)i0 * T, T);
		for (int i = i0; i < i1; i++)
			for (int j = 0; j <= i; j++)
				ch[(size_t)i * T + j] = tanhf(ch[(size_t)i * T + j] / a->cap);
	}
	/* dP[i0:i1, 0:i1] = dO V^T */
	fte__gemm(0, 1, i1 - i0, i1, D,
	    1.0f, a->dout + qo + (size_t)i0 * ldq, ldq, a->v + ko, ldk, 0.0f,
	    sh + (size_t)i0 * T, T);
	/* softmax backward; zeros up to i1 keep the block products exact */
	for (int i = i0; i < i1; i++) {
		const float *p = ah + (size_t)i * T;
		float *s = sh + (size_t)i * T;
		float dot = vrow_dot(p, s, i + 1);
		/* dS = P (dP - dot) */
		for (int j = 0; j <= i; j += 4) {
			long m = i + 1 - j;
			v4f pj = v4f_loadn(p + j, m, 0.0f);
			v4f sj = v4f_loadn(s + j, m, 0.0f);
			v4f_storen(s + j, pj * (sj - dot), m);
		}
		/* through the cap: d tanh = 1 - tanh^2 */
		if (a->cap > 0)
			for (int j = 0; j <= i; j++) {
				float t = ch[(size_t)i * T + j];
				s[j] *= 1.0f - t * t;
			}
		memset(s + i + 1, 0, (size_t)(i1 - i - 1) * sizeof(float));
	}
	if (a->dq != NULL)
		fte__gemm(0, 0, i1 - i0,
		    D, i1, a->scale, sh + (size_t)i0 * T, T, a->k + ko, ldk,
		    1.0f, a->dq + qo + (size_t)i0 * ldq, ldq);
}

/* att_bwd_keys_item: for one (b, kv head g, key block), dk and dv rows,
 * summed over the group's query heads in increasing order. */
static void
att_bwd_keys_item(void *arg, int it)
{
	const struct att *a = arg;
	int T = a->T, D = a->D, ldq = a->ldq, ldk = a->ldk;
	/* earlier key blocks are larger and come first */
	int blk = it % a->nblk, g = (it / a->nblk) % a->K;
	int b = it / (a->nblk * a->K);
	int j0 = blk * ATT_BLOCK;
	int j1 = j0 + ATT_BLOCK < T ? j0 + ATT_BLOCK : T;
	size_t ko = (size_t)b * T * ldk + g * D + (size_t)j0 * ldk;

	/* keys [j0, j1) are seen by queries [j0, T) */
	for (int h = g * a->group; h < (g + 1) * a->group; h++) {
		size_t qo = (size_t)b * T * ldq + h * D + (size_t)j0 * ldq;
		size_t ao = ((size_t)b * a->H + h) * T * T +
		    (size_t)j0 * T + j0;
		if (a->dk != NULL)
			fte__gemm(1, 0,
			    j1 - j0, D, T - j0, a->scale, a->scratch + ao, T,
			    a->q + qo, ldq, 1.0f, a->dk + ko, ldk);
		if (a->dv != NULL)
			fte__gemm(1, 0,
			    j1 - j0, D, T - j0, 1.0f, a->catt + ao, T,
			    a->dout + qo, ldq, 1.0f, a->dv + ko, ldk);
	}
}

void
attention_backward(float *dq, float *dk, float *dv, float *scratch,
    const float *dout, const float *q, const float *k, const float *v,
    const float *att, int B, int T, int H, int K, int D, const attn_opts *o)
{
	struct att a = { .dq = dq, .dk = dk, .dv = dv, .scratch = scratch,
	    .dout = dout, .q = q, .k = k, .v = v, .catt = att };
	double work = 2.0 * B * H * T * T * D;

	att_init(&a, B, T, H, K, D, o);
	/* dS (pass 1) feeds dq and dk; dv needs only P and dO. */
	if (dq != NULL || dk != NULL)
		fte__parallel_for(B * H * a.nblk, work, att_bwd_rows_item, &a);
	if (dk != NULL || dv != NULL)
		fte__parallel_for(B * K * a.nblk, work, att_bwd_keys_item, &a);
}

/* One cached call: q rows of the new tokens, the layer's cache. */
struct att_cache {
	struct att a;
	float *out, *scores;
	const float *q, *kc, *vc;
	int p0, n;                   /* first new position, keys in all */
};

/* att_cache_item: the new tokens' rows of head h. */
static void
att_cache_item(void *arg, int h)
{
	const struct att_cache *c = arg;
	const struct att *a = &c->a;
	int T = a->T, D = a->D, n = c->n, g = h / a->group;
	float *sc = c->scores + (size_t)h * T * n;

	fte__gemm(0, 1, T, n, D, a->scale, c->q + (size_t)h * D, a->ldq,
	    c->kc + (size_t)g * D, a->ldk, 0.0f, sc, n);
	for (int i = 0; i < T; i++)
		att_row_softmax(a, sc + (size_t)i * n, c->p0 + i, n, NULL);
	fte__gemm(0, 0, T, D, n, 1.0f, sc, n, c->vc + (size_t)g * D, a->ldk,
	    0.0f, c->out + (size_t)h * D, a->ldq);
}

void
attention_cache_forward(float *out, float *scores, const float *q,
    const float *kc, const float *vc, int p0, int T, int H, int K, int D,
    const attn_opts *o)
{
	struct att_cache c = { .out = out, .scores = scores, .q = q, .kc = kc,
	    .vc = vc, .p0 = p0, .n = p0 + T };

	att_init(&c.a, 1, T, H, K, D, o);
	fte__parallel_for(H, 2.0 * H * T * c.n * D, att_cache_item, &c);
}
