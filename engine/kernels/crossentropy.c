/*
 * crossentropy.c - softmax cross-entropy over the vocabulary.
 *
 * Each row is a numerically stable softmax (shift by the row maximum) in
 * three vectorised passes (vmath.h): max, exp and sum, scale.  The loss is
 * computed from the shifted logit and log(sum) rather than as -log(prob),
 * so a confident wrong prediction gives a large finite loss instead of
 * log(0).  Rows are split among the threads.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"
#include "kernels/vmath.h"

struct ce {
	float *losses, *probs, *dlogits;
	const float *logits, *cprobs, *dloss;
	const int *targets;
	int V;
};

static void
ce_fwd_rows(void *arg, int lo, int hi)
{
	const struct ce *a = arg;
	int V = a->V;

	for (int n = lo; n < hi; n++) {
		const float *x = a->logits + (size_t)n * V;
		float *p = a->probs + (size_t)n * V;
		int t = a->targets[n];
		float max = vrow_max(x, V);
		/* x[t] is read before p (which may alias x) is written. */
		float xt = t >= 0 ? x[t] : 0.0f;
		float sum = vrow_expsum(p, x, max, V);
		vrow_axpy(p, 1.0f / sum, p, 0.0f, V);
		a->losses[n] = t >= 0 ? logf(sum) - (xt - max) : 0.0f;
	}
}

void
crossentropy_forward(float *losses, float *probs, const float *logits,
    const int *targets, int N, int V)
{
	struct ce a = { .losses = losses, .probs = probs, .logits = logits,
	    .targets = targets, .V = V };

	fte__parallel_range(N, 30.0 * N * V, ce_fwd_rows, &a);
}

static void
ce_bwd_rows(void *arg, int lo, int hi)
{
	const struct ce *a = arg;
	int V = a->V;
	int overwrite = a->dlogits == a->cprobs;

	for (int n = lo; n < hi; n++) {
		const float *p = a->cprobs + (size_t)n * V;
		float *d = a->dlogits + (size_t)n * V;
		int t = a->targets[n];
		float w = t >= 0 ? a->dloss[n] : 0.0f;
		/* aliased: d = w p; else d += w p */
		if (overwrite || w != 0.0f)
			vrow_axpy(d, w, p, overwrite ? 0.0f : 1.0f, V);
		if (t >= 0)
			d[t] -= w;
	}
}

void
crossentropy_backward(float *dlogits, const float *probs,
    const int *targets, const float *dloss, int N, int V)
{
	struct ce a = { .dlogits = dlogits, .cprobs = probs, .dloss = dloss,
	    .targets = targets, .V = V };

	fte__parallel_range(N, 2.0 * N * V, ce_bwd_rows, &a);
}
