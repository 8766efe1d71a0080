/*
 * embedding.c - token embedding lookup.
 *
 * The backward pass scatters rows into dwte; two tokens may share a row, so
 * the threads split the columns instead and each walks all tokens in order,
 * which keeps the sums race-free and in a fixed order.
 */
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"

struct embedding {
	float *dst;
	const float *src;
	const int *tokens;
	int N, C;
};

static void
embedding_rows(void *arg, int lo, int hi)
{
	const struct embedding *a = arg;

	for (int n = lo; n < hi; n++)
		memcpy(a->dst + (size_t)n * a->C,
		    a->src + (size_t)a->tokens[n] * a->C,
		    (size_t)a->C * sizeof(float));
}

void
embedding_forward(float *out, const int *tokens, const float *wte,
    int N, int C)
{
	struct embedding a = { out, wte, tokens, N, C };

	fte__parallel_range(N, (double)N * C, embedding_rows, &a);
}

/* embedding_cols adds columns [lo, hi) of every token's gradient row. */
static void
embedding_cols(void *arg, int lo, int hi)
{
	const struct embedding *a = arg;

	for (int n = 0; n < a->N; n++) {
		float *w = a->dst + (size_t)a->tokens[n] * a->C;
		const float *d = a->src + (size_t)n * a->C;
#pragma omp simd
		for (int c = lo; c < hi; c++)
			w[c] += d[c];
	}
}

void
embedding_backward(float *dwte, const float *dout, const int *tokens,
    int N, int C)
{
	struct embedding a = { dwte, dout, tokens, N, C };

	fte__parallel_range(C, (double)N * C, embedding_cols, &a);
}
