/*
 * crossentropy.c - softmax cross-entropy over the vocabulary.
 *
 * Each row is a numerically stable softmax (shift by the row maximum).  The
 * loss is computed from the shifted logits and log(sum) rather than as
 * -log(prob), so a confident wrong prediction gives a large finite loss
 * instead of log(0).  Rows are split among the threads.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"

void
crossentropy_forward(float *losses, float *probs, const float *logits,
    const int *targets, int N, int V)
{
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * V > 32768)
	for (int n = 0; n < N; n++) {
		const float *x = logits + (size_t)n * V;
		float *p = probs + (size_t)n * V;
		int t = targets[n];
		float max = x[0];
		for (int i = 1; i < V; i++)
			max = x[i] > max ? x[i] : max;
		/* x[t] is read before p (which may alias x) is written. */
		float xt = t >= 0 ? x[t] : 0.0f;
		float sum = 0.0f;
		for (int i = 0; i < V; i++) {
			p[i] = expf(x[i] - max);
			sum += p[i];
		}
		float inv = 1.0f / sum;
		for (int i = 0; i < V; i++)
			p[i] *= inv;
		losses[n] = t >= 0 ? logf(sum) - (xt - max) : 0.0f;
	}
}

void
crossentropy_backward(float *dlogits, const float *probs,
    const int *targets, const float *dloss, int N, int V)
{
	int overwrite = dlogits == probs;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * V > 32768)
	for (int n = 0; n < N; n++) {
		const float *p = probs + (size_t)n * V;
		float *d = dlogits + (size_t)n * V;
		int t = targets[n];
		float w = t >= 0 ? dloss[n] : 0.0f;
		if (overwrite) {
			for (int i = 0; i < V; i++)
				d[i] = p[i] * w;
		} else if (w != 0.0f) {
			for (int i = 0; i < V; i++)
				d[i] += p[i] * w;
		}
		if (t >= 0)
			d[t] -= w;
	}
}
