/*
 * matmul.c - linear layers, and fte__gemm cut among the engine's threads.
 *
 * A large product is cut into one fte__gemm per thread, each writing its
 * own block of the result.  The cut goes across the output dimension whose
 * other operand is smaller: every thread packs the whole of the operand it
 * shares, so sharing the smaller one costs least (rows of tokens for the
 * attention projections, vocabulary columns for the head).  fte__gemm sums
 * every element in the same order wherever its tile lies, so the result
 * does not depend on the cut or the thread count (on the blas path, only
 * as far as OpenBLAS does the same).
 */
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"

/* Products smaller than this many multiply-adds run in one call. */
#define MATMUL_SPLIT_MIN (64 * 64 * 64)

/* C = alpha * op(A) @ op(B) + beta * C, row-major, M x N result, inner
 * size Kd; by_rows says which output dimension is cut among threads. */
struct gemm {
	int ta, tb;
	int M, N, Kd;
	float alpha;
	const float *A;
	int lda;
	const float *B;
	int ldb;
	float beta;
	float *C;
	int ldc;
	int by_rows;
};

/* gemm_part computes output rows (or columns) [lo, hi). */
static void
gemm_part(void *arg, int lo, int hi)
{
	const struct gemm *g = arg;

	if (g->by_rows) {
		const float *a = !g->ta ? g->A + (size_t)lo * g->lda :
		    g->A + lo;
		fte__gemm_rows(g->ta, g->tb, hi - lo, g->N, g->Kd, g->alpha,
		    a, g->lda, g->B, g->ldb, g->beta,
		    g->C + (size_t)lo * g->ldc, g->ldc, g->M);
	} else {
		const float *b = !g->tb ? g->B + lo : g->B + (size_t)lo * g->ldb;
		fte__gemm(g->ta, g->tb, g->M, hi - lo, g->Kd, g->alpha, g->A,
		    g->lda, b, g->ldb, g->beta, g->C + lo, g->ldc);
	}
}

void
fte__gemm_par(int ta, int tb, int M, int N, int Kd, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta,
    float *C, int ldc)
{
	/* Cut M (sharing B, Kd x N) when B is the smaller operand. */
	struct gemm g = { ta, tb, M, N, Kd, alpha, A, lda, B, ldb, beta, C,
	    ldc, N <= M };
	double macs = (double)M * N * Kd;

	if (macs < MATMUL_SPLIT_MIN)
		gemm_part(&g, 0, g.by_rows ? M : N);
	else
		fte__parallel_range(g.by_rows ? M : N, 2.0 * macs, gemm_part,
		    &g);
}

void
matmul_forward(float *out, const float *inp, const float *weight,
    const float *bias, int N, int C, int OC)
{
	if (bias != NULL) {
		for (int n = 0; n < N; n++)
			memcpy(out + (size_t)n * OC, bias,
			    (size_t)OC * sizeof(float));
	}
	fte__gemm_par(0, 1, N, OC, C, 1.0f, inp, C, weight, C,
	    bias != NULL ? 1.0f : 0.0f, out, OC);
}

void
matmul_backward(float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    int N, int C, int OC)
{
	if (dinp != NULL)
		fte__gemm_par(0, 0, N, C, OC, 1.0f, dout, OC, weight, C,
		    1.0f, dinp, C);
	if (dweight != NULL)
		fte__gemm_par(1, 0, OC, C, N, 1.0f, dout, OC, inp, C,
		    1.0f, dweight, C);
	if (dbias != NULL)
		fte__colsum_add(dbias, dout, N, OC);
}

struct colsum {
	float *acc;
	const float *x;
	int N, C;
};

/* colsum_cols sums columns [lo, hi) over all rows, in row order. */
static void
colsum_cols(void *arg, int lo, int hi)
{
	const struct colsum *a = arg;

	for (int n = 0; n < a->N; n++) {
		const float *row = a->x + (size_t)n * a->C;
#pragma omp simd
		for (int c = lo; c < hi; c++)
			a->acc[c] += row[c];
	}
}

void
fte__colsum_add(float *acc, const float *x, int N, int C)
{
	struct colsum a = { acc, x, N, C };

	fte__parallel_range(C, (double)N * C, colsum_cols, &a);
}
