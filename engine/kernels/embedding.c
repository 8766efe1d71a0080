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

void
embedding_forward(float *out, const int *tokens, const float *wte,
    int N, int C)
{
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * C > 65536)
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C,
		    (size_t)C * sizeof(float));
}

void
embedding_backward(float *dwte, const float *dout, const int *tokens,
    int N, int C)
{
	int nt = fte__threads();
	int parts = nt < C ? nt : 1;

#pragma omp parallel for num_threads(parts) schedule(static, 1) \
	if ((size_t)N * C > 65536)
	for (int p = 0; p < parts; p++) {
		int lo = (int)((long)C * p / parts);
		int hi = (int)((long)C * (p + 1) / parts);
		for (int n = 0; n < N; n++) {
			float *w = dwte + (size_t)tokens[n] * C;
			const float *d = dout + (size_t)n * C;
#pragma omp simd
			for (int c = lo; c < hi; c++)
				w[c] += d[c];
		}
	}
}
