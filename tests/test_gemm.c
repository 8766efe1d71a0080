/*
 * test_gemm.c - the engine's GEMM on every path the CPU has, against a
 * double-precision reference.
 *
 * Each microkernel alone (depths 1, odd, just above KC; accumulate or not;
 * alpha not 1), then the blocked product on edge shapes: 1, primes, one
 * more than the tile sizes MR and NR and than each block size KC, MC and
 * NC, in every dimension, every layout (NN, NT, TN, TT), alpha 1 and not,
 * beta 0 (C starts as NaN, which must not leak), 1 and -0.5, leading
 * dimensions wider than the matrices and odd (so rows are unaligned).
 * Padding around C must stay untouched.  An element may differ from the
 * reference by at most (K + 2) float roundings of the sum of magnitudes
 * it adds up; a wrong element, row or column is off by about its size.
 * The threaded product must give the same bits as one thread's.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "ft_test.h"
#include "kernels/kernels.h"

#define PAD 5            /* extra columns in every leading dimension */
#define SENTINEL 12345.0f

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float
frand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (float)((double)((rng * 0x2545f4914f6cdd1dull) >> 11) *
	    0x1.0p-52 - 1.0);
}

static float *
fill(size_t n)
{
	float *p = malloc(n * sizeof(float));

	if (p == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
	return p;
}

/* check_c compares C (M x N, stride ldc) with want and the error bound
 * mag per element; everything else in the ldc-wide rows must still be
 * the sentinel.  Returns the worst error in units of the bound. */
static double
check_c(const float *C, int ldc, const double *want, const double *mag,
    int M, int N, int K, int *pad_ok)
{
	double worst = 0;

	*pad_ok = 1;
	for (int i = 0; i < M; i++)
		for (int j = 0; j < ldc; j++) {
			float got = C[(size_t)i * ldc + j];

			if (j >= N) {
				*pad_ok &= got == SENTINEL;
				continue;
			}
			double bound = (K + 2) * FLT_EPSILON *
			    mag[(size_t)i * N + j] + FLT_MIN;
			double e = fabs(got - want[(size_t)i * N + j]) / bound;
			if (!(e <= worst))      /* NaN counts as worst */
				worst = isnan(e) ? INFINITY : e;
		}
	return worst;
}

/* Each microkernel on packed panels of depth kc. */
static void
test_ukernel(const fte__gemm_kernel *uk)
{
	const int depths[] = { 1, 7, 129, 385 };
	int mr = uk->mr, nr = uk->nr, ldc = nr + PAD;

	for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++)
		for (int acc = 0; acc < 2; acc++) {
			int kc = depths[d], pad_ok;
			float alpha = acc ? -0.75f : 1.0f;
			float *a = fill((size_t)mr * kc), *b = fill((size_t)kc * nr);
			float *c = malloc((size_t)mr * ldc * sizeof(float));
			double *want = calloc((size_t)mr * nr, sizeof(double));
			double *mag = calloc((size_t)mr * nr, sizeof(double));

			for (int i = 0; i < mr; i++)
				for (int j = 0; j < ldc; j++)
					c[i * ldc + j] = j < nr ? (acc ? frand() :
					    NAN) : SENTINEL;
			for (int i = 0; i < mr; i++)
				for (int j = 0; j < nr; j++) {
					double s = 0, m = 0;
					for (int k = 0; k < kc; k++) {
						double p = (double)a[k * mr + i] *
						    b[k * nr + j];
						s += p;
						m += fabs(p);
					}
					want[i * nr + j] = alpha * s +
					    (acc ? c[i * ldc + j] : 0.0);
					mag[i * nr + j] = fabs(alpha) * m +
					    (acc ? fabs(c[i * ldc + j]) : 0.0);
				}
			uk->fn(kc, a, b, c, ldc, alpha, acc);
			double e = check_c(c, ldc, want, mag, mr, nr, kc,
			    &pad_ok);
			printf("  %s kc %4d acc %d: worst %.3f of the bound\n",
			    uk->name, kc, acc, e);
			CHECK(e <= 1.0);
			CHECK(pad_ok);
			free(a); free(b); free(c); free(want); free(mag);
		}
}

/* One blocked product against the reference; returns 0 if it failed. */
static int
one_gemm(int ta, int tb, int M, int N, int K, float alpha, float beta)
{
	int lda = (ta ? M : K) + PAD, ldb = (tb ? K : N) + PAD, ldc = N + PAD;
	size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
	float *A = fill(na), *B = fill(nb);
	float *C = malloc((size_t)M * ldc * sizeof(float));
	double *want = malloc((size_t)M * N * sizeof(double));
	double *mag = malloc((size_t)M * N * sizeof(double));
	double *row = malloc((size_t)N * sizeof(double));
	double *rmag = malloc((size_t)N * sizeof(double));
	int pad_ok, ok;

	for (int i = 0; i < M; i++)
		for (int j = 0; j < ldc; j++)
			C[(size_t)i * ldc + j] = j >= N ? SENTINEL :
			    beta == 0.0f ? NAN : frand();
	for (int i = 0; i < M; i++) {
		memset(row, 0, (size_t)N * sizeof(double));
		memset(rmag, 0, (size_t)N * sizeof(double));
		for (int k = 0; k < K; k++) {
			double a = ta ? A[(size_t)k * lda + i] :
			    A[(size_t)i * lda + k];
			for (int j = 0; j < N; j++) {
				double p = a * (tb ? B[(size_t)j * ldb + k] :
				    B[(size_t)k * ldb + j]);
				row[j] += p;
				rmag[j] += fabs(p);
			}
		}
		for (int j = 0; j < N; j++) {
			double c = beta == 0.0f ? 0.0 : C[(size_t)i * ldc + j];
			want[(size_t)i * N + j] = alpha * row[j] + beta * c;
			mag[(size_t)i * N + j] = fabs(alpha) * rmag[j] +
			    2 * fabs(beta * c);
		}
	}
	fte__gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	double e = check_c(C, ldc, want, mag, M, N, K, &pad_ok);
	ok = e <= 1.0 && pad_ok;
	if (!ok)
		fprintf(stderr, "  %s%s M %d N %d K %d alpha %g beta %g: worst "
		    "%.3g of the bound, padding %s\n", ta ? "T" : "N",
		    tb ? "T" : "N", M, N, K, alpha, beta, e,
		    pad_ok ? "intact" : "OVERWRITTEN");
	free(A); free(B); free(C); free(want); free(mag); free(row); free(rmag);
	return ok;
}

/* The blocked product on the path in use, over edge shapes. */
static void
test_blocked(int isa)
{
	const fte__gemm_kernel *uk = fte__gemm_kernel_of(isa);
	int mr = uk != NULL ? uk->mr : 8, nr = uk != NULL ? uk->nr : 8;
	int kc = 256, mc = 256, nc = 1024, mc_small = 256, runs = 0, fails = 0;

	/* the blocks for a long K, and MC for the small K of the M edge */
	if (uk != NULL) {
		fte__gemm_blocks(1 << 20, &kc, &mc, &nc);
		fte__gemm_blocks(17, &kc, &mc_small, &nc);
		fte__gemm_blocks(1 << 20, &kc, &mc, &nc);
	}
	/* each dimension in turn takes the edge values, the others small
	 * (M below FTE_GEMM_MIN_ROWS runs on OpenBLAS) */
	const int edge[] = { 1, 2, 13, mr - 1, mr + 1, nr + 1, 2 * nr + 3,
	    FTE_GEMM_MIN_ROWS };
	const int block[3] = { mc_small + 1, nc + 1, kc + 1 };  /* M, N, K */
	const float alphas[2] = { 1.0f, 0.75f }, betas[3] = { 0, 1, -0.5f };
	int shapes[64][3], ns = 0;

	for (int d = 0; d < 3; d++) {
		for (size_t e = 0; e < sizeof(edge) / sizeof(edge[0]); e++) {
			int s[3] = { 29, 37, 31 };
			s[d] = edge[e] > 0 ? edge[e] : 1;
			memcpy(shapes[ns++], s, sizeof(s));
		}
		int s[3] = { 19, 23, 17 };
		s[d] = block[d];
		memcpy(shapes[ns++], s, sizeof(s));
	}
	/* all three past a block edge at once, and past two blocks of K */
	if (uk != NULL)
		fte__gemm_blocks(kc + 1, &(int){ 0 }, &mc, &(int){ 0 });
	memcpy(shapes[ns++], (int[3]){ mc + 1, 2 * nr + 1, kc + 1 },
	    sizeof(int[3]));
	memcpy(shapes[ns++], (int[3]){ mr + 1, nc + 1, kc + 1 },
	    sizeof(int[3]));
	memcpy(shapes[ns++], (int[3]){ mr + 3, nr + 3, 2 * kc + 5 },
	    sizeof(int[3]));
	for (int s = 0; s < ns; s++)
		for (int lay = 0; lay < 4; lay++)
			for (int a = 0; a < 2; a++)
				for (int b = 0; b < 3; b++) {
					/* the big shapes: every layout once */
					if ((shapes[s][0] > 300 ||
					    shapes[s][1] > 300) && (a || b != 1))
						continue;
					runs++;
					fails += !one_gemm(lay >> 1, lay & 1,
					    shapes[s][0], shapes[s][1],
					    shapes[s][2], alphas[a], betas[b]);
				}
	printf("  %s blocked (KC %d MC %d NC %d): %d products on %d shapes, "
	    "%d wrong\n", fte__isa_name(isa), kc, mc, nc, runs, ns, fails);
	CHECK(runs > 0 && fails == 0);
	/* K = 0 and alpha = 0 leave beta * C */
	float c[2] = { 2.0f, -4.0f }, one = 1.0f;
	fte__gemm(0, 0, 1, 2, 0, 1.0f, &one, 1, &one, 2, 0.5f, c, 2);
	CHECK(c[0] == 1.0f && c[1] == -2.0f);
}

/* fte__gemm_par on 1 and 2 threads gives the same bits as fte__gemm,
 * also when a thread's block has fewer rows than FTE_GEMM_MIN_ROWS. */
static void
test_threads(int isa)
{
	const int shapes[2][3] = { { 301, 277, 263 },
	    { 2 * FTE_GEMM_MIN_ROWS - 1, 9, 4000 } };
	int saved = fte_threads_get(), same = 1;

	for (int s = 0; s < 2; s++) {
		int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
		float *A = fill((size_t)M * K), *B = fill((size_t)N * K);
		float *c1 = calloc((size_t)M * N, sizeof(float));
		float *c2 = calloc((size_t)M * N, sizeof(float));
		float *c3 = calloc((size_t)M * N, sizeof(float));

		for (int lay = 0; lay < 3; lay++) {
			int ta = lay == 2, tb = lay == 1;
			int lda = ta ? M : K, ldb = tb ? K : N;

			fte__gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f,
			    c1, N);
			CHECK(fte_threads_set(1) == FTE_OK);
			fte__gemm_par(ta, tb, M, N, K, 1.0f, A, lda, B, ldb,
			    0.0f, c2, N);
			CHECK(fte_threads_set(2) == FTE_OK);
			fte__gemm_par(ta, tb, M, N, K, 1.0f, A, lda, B, ldb,
			    0.0f, c3, N);
			same &= memcmp(c1, c2, sizeof(float) * M * N) == 0 &&
			    memcmp(c1, c3, sizeof(float) * M * N) == 0;
		}
		free(A); free(B); free(c1); free(c2); free(c3);
	}
	printf("  %s: 1 and 2 threads %s one call\n", fte__isa_name(isa),
	    same ? "identical to" : "DIFFER from");
	/* OpenBLAS's blocks are its own business */
	if (isa != FTE_ISA_BLAS)
		CHECK(same);
	CHECK(fte_threads_set(saved) == FTE_OK);
}

int
main(void)
{
	const char *env = getenv("FTE_ISA");
	int first = fte__isa();

	/* FTE_ISA chooses the path when the CPU has it */
	for (int isa = 0; isa < FTE_ISA_N; isa++)
		if (env != NULL && strcmp(env, fte__isa_name(isa)) == 0 &&
		    fte__isa_supported(isa))
			CHECK(first == isa);
	CHECK(fte__isa_set(FTE_ISA_N) == FTE_EINVAL);
	for (int isa = 0; isa < FTE_ISA_N; isa++) {
		if (!fte__isa_supported(isa)) {
			printf("%s: not on this CPU, skipped\n",
			    fte__isa_name(isa));
			CHECK(fte__isa_set(isa) == FTE_EINVAL);
			continue;
		}
		CHECK(fte__isa_set(isa) == FTE_OK);
		CHECK(fte__isa() == isa);
		printf("%s:\n", fte__isa_name(isa));
		if (fte__gemm_kernel_of(isa) != NULL)
			test_ukernel(fte__gemm_kernel_of(isa));
		test_blocked(isa);
		test_threads(isa);
	}
	CHECK(fte__isa_set(first) == FTE_OK);
	return ft_test_done();
}
