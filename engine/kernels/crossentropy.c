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

#define CE_PAR_MIN 32768

void
crossentropy_forward(float *losses, float *probs, const float *logits,
    const int *targets, int N, int V)
{
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * V > CE_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const float *x = logits + (size_t)n * V;
		float *p = probs + (size_t)n * V;
		int t = targets[n];
		float max = vrow_max(x, V);
		/* x[t] is read before p (which may alias x) is written. */
		float xt = t >= 0 ? x[t] : 0.0f;
		float sum = vrow_expsum(p, x, max, V);
		vrow_axpy(p, 1.0f / sum, p, 0.0f, V);
		losses[n] = t >= 0 ? logf(sum) - (xt - max) : 0.0f;
	}
}

void
crossentropy_backward(float *dlogits, const float *probs,
    const int *targets, const float *dloss, int N, int V)
{
	int overwrite = dlogits == probs;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * V > CE_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const float *p = probs + (size_t)n * V;
		float *d = dlogits + (size_t)n * V;
		int t = targets[n];
		float w = t >= 0 ? dloss[n] : 0.0f;
		/* aliased: d = w p; else d += w p */
		if (overwrite || w != 0.0f)
			vrow_axpy(d, w, p, overwrite ? 0.0f : 1.0f, V);
		if (t >= 0)
			d[t] -= w;
	}
}
