/*
 * matmul.c - linear layers through cblas_sgemm.
 *
 * OpenBLAS runs single-threaded (threads.c), so a large product is cut into
 * one sgemm per thread, each writing its own block of the result.  The cut
 * goes across the output dimension whose other operand is smaller: every
 * thread packs the whole of the operand it shares, so sharing the smaller
 * one costs least (rows of tokens for the attention projections, vocabulary
 * columns for the head).  Block boundaries depend only on the sizes and the
 * thread count, so results are reproducible for a given count.
 */
#include <cblas.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"

/* Products smaller than this many multiply-adds run in one call. */
#define MATMUL_SPLIT_MIN (64 * 64 * 64)

/* gemm_split computes C = alpha * op(A) @ op(B) + beta * C (row-major,
 * M x N result, inner size Kd) with one sgemm per thread. */
static void
gemm_split(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N,
    int Kd, float alpha, const float *A, int lda, const float *B, int ldb,
    float beta, float *C, int ldc)
{
	int nt = fte__threads();

	if (nt == 1 || (double)M * N * Kd < MATMUL_SPLIT_MIN) {
		cblas_sgemm(CblasRowMajor, ta, tb, M, N, Kd, alpha, A, lda, B,
		    ldb, beta, C, ldc);
		return;
	}
	/* Split M (share B, Kd x N) when B is the smaller operand. */
	int by_rows = N <= M;
	int len = by_rows ? M : N;
	int parts = nt < len ? nt : len;

#pragma omp parallel for num_threads(parts) schedule(static, 1)
	for (int p = 0; p < parts; p++) {
		int lo = (int)((long)len * p / parts);
		int hi = (int)((long)len * (p + 1) / parts);
		if (by_rows) {
			const float *a = ta == CblasNoTrans ?
			    A + (size_t)lo * lda : A + lo;
			cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, N, Kd,
			    alpha, a, lda, B, ldb, beta, C + (size_t)lo * ldc,
			    ldc);
		} else {
			const float *b = tb == CblasNoTrans ?
			    B + lo : B + (size_t)lo * ldb;
			cblas_sgemm(CblasRowMajor, ta, tb, M, hi - lo, Kd,
			    alpha, A, lda, b, ldb, beta, C + lo, ldc);
		}
	}
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
	gemm_split(CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight,
	    C, bias != NULL ? 1.0f : 0.0f, out, OC);
}

void
matmul_backward(float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    int N, int C, int OC)
{
	if (dinp != NULL)
		gemm_split(CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout,
		    OC, weight, C, 1.0f, dinp, C);
	if (dweight != NULL)
		gemm_split(CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC,
		    inp, C, 1.0f, dweight, C);
	if (dbias != NULL)
		fte__colsum_add(dbias, dout, N, OC);
}

void
fte__colsum_add(float *acc, const float *x, int N, int C)
{
	int nt = fte__threads();
	int parts = nt < C ? nt : 1;

#pragma omp parallel for num_threads(parts) schedule(static, 1) \
	if ((size_t)N * C > 65536)
	for (int p = 0; p < parts; p++) {
		int lo = (int)((long)C * p / parts);
		int hi = (int)((long)C * (p + 1) / parts);
		for (int n = 0; n < N; n++) {
			const float *row = x + (size_t)n * C;
#pragma omp simd
			for (int c = lo; c < hi; c++)
				acc[c] += row[c];
		}
	}
}
