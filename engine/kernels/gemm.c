/*
 * gemm.c - the engine's single-precision GEMM, and the choice of its path.
 *
 * Every matrix product of the engine goes through fte__gemm.  It runs on
 * one of three paths, chosen once per process from cpuid
 * (__builtin_cpu_supports, which also checks that the OS saves the vector
 * state) or forced by FTE_ISA=avx512|avx2|blas:
 *
 *   avx512  14x32 microkernel (28 zmm accumulators), gemm_avx512.c
 *   avx2    6x16 microkernel (12 ymm accumulators, AVX2+FMA), gemm_avx2.c
 *   blas    cblas_sgemm (OpenBLAS), for other CPUs and as the reference
 *
 * Products of fewer than FTE_GEMM_MIN_ROWS rows go to OpenBLAS on every
 * path.
 *
 * The microkernels live in files of their own, compiled with their ISA's
 * flags and called only once the CPU is known to have it; everything else
 * is built for baseline x86-64 (or any other target), so one binary runs
 * on every machine.
 *
 * The blocked product is BLIS's: for each NC-column block of op(B) and
 * each KC-deep slice, the slice of op(B) is packed into NR-wide panels
 * (kept in L3), then each MC-row block of op(A) into MR-tall panels (kept
 * in L2), and the microkernel runs every MR x NR tile of C over KC.  K is
 * cut into equal slices of at most KC_MAX; MC and NC come from the L2 and
 * L3 sizes.
 * Panels are zero-padded, so edge tiles run the same microkernel on a
 * copy of the tile: every element of C is summed in the same order
 * (increasing k, one KC slice after another) wherever its tile lies, and
 * a product cut among threads by rows or columns (matmul.c) gives the
 * same bits for any cut.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fte.h"
#include "kernels/kernels.h"

#define ALIGN 64

static const char *const isa_names[FTE_ISA_N] = {
	[FTE_ISA_BLAS] = "blas",
	[FTE_ISA_AVX2] = "avx2",
	[FTE_ISA_AVX512] = "avx512",
};

/* The microkernels of the paths this build has (x86-64 only). */
static const fte__gemm_kernel *
kernel_of(int isa)
{
#if defined(__x86_64__)
	if (isa == FTE_ISA_AVX512)
		return &fte__gemm_avx512;
	if (isa == FTE_ISA_AVX2)
		return &fte__gemm_avx2;
#else
	(void)isa;
#endif
	return NULL;
}

int
fte__isa_supported(int isa)
{
	if (isa == FTE_ISA_BLAS)
		return 1;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (isa == FTE_ISA_AVX512)
		return __builtin_cpu_supports("avx512f") &&
		    __builtin_cpu_supports("avx512dq") &&
		    __builtin_cpu_supports("avx512bw") &&
		    __builtin_cpu_supports("avx512vl") &&
		    __builtin_cpu_supports("fma");
	if (isa == FTE_ISA_AVX2)
		return __builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("fma");
#endif
	return 0;
}

const char *
fte__isa_name(int isa)
{
	return isa >= 0 && isa < FTE_ISA_N ? isa_names[isa] : "?";
}

const fte__gemm_kernel *
fte__gemm_kernel_of(int isa)
{
	return fte__isa_supported(isa) ? kernel_of(isa) : NULL;
}

static struct {
	pthread_once_t once;
	atomic_int isa;
	int kc, mc, nc;          /* in elements, for the running kernel */
	long l2, l3;             /* cache sizes in bytes */
} sel = { .once = PTHREAD_ONCE_INIT };

static long
cache_size(int name, long dflt)
{
	long v = sysconf(name);

	/* some hypervisors report the whole host's L3: plan for one CCD's */
	return v <= 0 ? dflt : v > (32L << 20) ? 32L << 20 : v;
}

/* KC is at most this: the B panel (KC x NR) then outgrows L1 into L2, and
 * that measured faster than the extra passes over C that a smaller KC
 * costs (SmolLM-135M shapes, Zen 5: 79% of the FMA peak at KC 576, 64%
 * at 128). */
#define KC_MAX 640

/* block_sizes sizes the blocks for a kernel: an MC x KC block of A in
 * three quarters of L2, a KC x NC block of B in a quarter of L3 (shared
 * with the other cores). */
static void
block_sizes(const fte__gemm_kernel *k)
{
	long mc = sel.l2 * 3 / 4 / (KC_MAX * 4) / k->mr * k->mr;
	long nc = sel.l3 / 4 / (KC_MAX * 4) / k->nr * k->nr;

	sel.kc = KC_MAX;
	sel.mc = (int)(mc < k->mr ? k->mr : mc);
	sel.nc = (int)(nc < 512 ? 512 : nc > 8192 ? 8192 : nc);
}

static int
isa_best(void)
{
	for (int isa = FTE_ISA_N - 1; isa > FTE_ISA_BLAS; isa--)
		if (fte__isa_supported(isa) && kernel_of(isa) != NULL)
			return isa;
	return FTE_ISA_BLAS;
}

static void
isa_init(void)
{
	const char *env = getenv("FTE_ISA");
	int isa = isa_best();

	sel.l2 = cache_size(_SC_LEVEL2_CACHE_SIZE, 512L << 10);
	sel.l3 = cache_size(_SC_LEVEL3_CACHE_SIZE, 8L << 20);
	if (env != NULL && *env != '\0') {
		int want = -1;

		for (int i = 0; i < FTE_ISA_N; i++)
			if (strcmp(env, isa_names[i]) == 0)
				want = i;
		if (want >= 0 && fte__isa_supported(want) &&
		    (want == FTE_ISA_BLAS || kernel_of(want) != NULL))
			isa = want;
		else
			fprintf(stderr, "ftengine: FTE_ISA=%s is not a path this "
			    "CPU and build have (blas, avx2, avx512); using %s\n",
			    env, isa_names[isa]);
	}
	if (kernel_of(isa) != NULL)
		block_sizes(kernel_of(isa));
	atomic_store(&sel.isa, isa);
}

int
fte__isa(void)
{
	pthread_once(&sel.once, isa_init);
	return atomic_load_explicit(&sel.isa, memory_order_relaxed);
}

int
fte__isa_set(int isa)
{
	if (isa < 0 || isa >= FTE_ISA_N || !fte__isa_supported(isa) ||
	    (isa != FTE_ISA_BLAS && kernel_of(isa) == NULL))
		return FTE_EINVAL;
	pthread_once(&sel.once, isa_init);
	if (kernel_of(isa) != NULL)
		block_sizes(kernel_of(isa));
	atomic_store(&sel.isa, isa);
	return FTE_OK;
}

void
fte__gemm_blocks(int K, int *kc, int *mc, int *nc)
{
	const fte__gemm_kernel *uk = kernel_of(fte__isa());
	int KC = sel.kc, MC = sel.mc;

	if (uk == NULL) {            /* the blas path has no blocks of ours */
		*kc = *mc = *nc = 0;
		return;
	}

	/* K in equal slices of at most KC (multiples of 16 for the packers),
	 * and MC grown to fill the same part of L2 when they are thinner */
	if (K > KC) {
		int n = (K + KC - 1) / KC;
		KC = ((K + n - 1) / n + 15) / 16 * 16;
	} else if (K > 0) {
		KC = K;
	}
	MC = (int)((long)sel.mc * sel.kc / KC / uk->mr * uk->mr);
	*kc = KC;
	*mc = MC > 4 * sel.mc ? 4 * sel.mc : MC;
	*nc = sel.nc;
}

/* ---- packing ---- */

/* pack_a packs rows [0, mc) x depth [0, kc) of op(A) (A at the block's
 * origin) into MR-tall panels: panel p holds, for each k, the MR values
 * op(A)[p*MR + i][k], rows past mc zero. */
static void
pack_a(const fte__gemm_kernel *uk, float *dst, const float *A, int lda,
    int ta, int mc, int kc)
{
	int mr = uk->mr;

	if (!ta) {
		for (int p = 0; p < mc; p += mr)
			uk->pack(dst + (size_t)p * kc, A + (size_t)p * lda, lda,
			    mc - p < mr ? mc - p : mr, mr, kc);
		return;
	}
	/* row by row of the stored A, which is read in order */
	for (int k = 0; k < kc; k++) {
		const float *src = A + (size_t)k * lda;
		for (int p = 0; p < mc; p += mr) {
			float *d = dst + (size_t)p * kc + (size_t)k * mr;
			int rows = mc - p < mr ? mc - p : mr;
			for (int i = 0; i < rows; i++)
				d[i] = src[p + i];
			for (int i = rows; i < mr; i++)
				d[i] = 0.0f;
		}
	}
}

/* pack_b packs depth [0, kc) x columns [0, nc) of op(B) into NR-wide
 * panels: panel p holds, for each k, op(B)[k][p*NR + j], columns past nc
 * zero. */
static void
pack_b(const fte__gemm_kernel *uk, float *dst, const float *B, int ldb,
    int tb, int kc, int nc)
{
	int nr = uk->nr;

	if (tb) {
		for (int p = 0; p < nc; p += nr)
			uk->pack(dst + (size_t)p * kc, B + (size_t)p * ldb, ldb,
			    nc - p < nr ? nc - p : nr, nr, kc);
		return;
	}
	/* row by row of the stored B, which is read in order */
	for (int k = 0; k < kc; k++) {
		const float *src = B + (size_t)k * ldb;
		for (int p = 0; p < nc; p += nr) {
			float *d = dst + (size_t)p * kc + (size_t)k * nr;
			int cols = nc - p < nr ? nc - p : nr;
			memcpy(d, src + p, (size_t)cols * sizeof(float));
			for (int j = cols; j < nr; j++)
				d[j] = 0.0f;
		}
	}
}

/* Each thread keeps its packing buffers between calls (the pool's
 * threads live as long as the process); freed when a thread exits. */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static _Thread_local struct pack_buf {
	float *p;
	size_t n;
} tbuf;

static void
buf_free(void *p)
{
	free(p);
}

static void
buf_key_init(void)
{
	pthread_key_create(&buf_key, buf_free);
}

static float *
pack_space(size_t n)
{
	if (tbuf.n < n) {
		float *p;

		n = (n + 4095) & ~(size_t)4095;
		if ((p = aligned_alloc(ALIGN, n * sizeof(float))) == NULL)
			return NULL;
		free(tbuf.p);
		tbuf.p = p;
		tbuf.n = n;
		pthread_once(&buf_once, buf_key_init);
		pthread_setspecific(buf_key, p);
	}
	return tbuf.p;
}

/* scale_c sets C = beta * C (beta 0 writes zeros, whatever C held). */
static void
scale_c(float *C, int ldc, int M, int N, float beta)
{
	for (int i = 0; i < M; i++) {
		float *c = C + (size_t)i * ldc;
		if (beta == 0.0f)
			memset(c, 0, (size_t)N * sizeof(float));
		else
			for (int j = 0; j < N; j++)
				c[j] *= beta;
	}
}

/* gemm_blocked: the BLIS loops around one kernel. */
static int
gemm_blocked(const fte__gemm_kernel *uk, int ta, int tb, int M, int N,
    int K, float alpha, const float *A, int lda, const float *B, int ldb,
    float beta, float *C, int ldc)
{
	int mr = uk->mr, nr = uk->nr, KC, MC, NC;
	float *ap, *bp, edge[32 * 32];

	fte__gemm_blocks(K, &KC, &MC, &NC);
	int mcap = (M < MC ? M : MC) + mr, ncap = (N < NC ? N : NC) + nr;
	int kcap = K < KC ? K : KC;

	if ((ap = pack_space((size_t)kcap * (mcap + ncap))) == NULL)
		return FTE_ENOMEM;
	bp = ap + (size_t)kcap * mcap;
	/* beta other than 0 and 1: scale first, then accumulate */
	if (beta != 0.0f && beta != 1.0f) {
		scale_c(C, ldc, M, N, beta);
		beta = 1.0f;
	}
	for (int jc = 0; jc < N; jc += NC) {
		int nc = N - jc < NC ? N - jc : NC;

		for (int pc = 0; pc < K; pc += KC) {
			int kc = K - pc < KC ? K - pc : KC;
			int acc = pc > 0 || beta != 0.0f;

			pack_b(uk, bp, tb ? B + (size_t)jc * ldb + pc :
			    B + (size_t)pc * ldb + jc, ldb, tb, kc, nc);
			for (int ic = 0; ic < M; ic += MC) {
				int mc = M - ic < MC ? M - ic : MC;

				pack_a(uk, ap, ta ? A + (size_t)pc * lda + ic :
				    A + (size_t)ic * lda + pc, lda, ta, mc, kc);
				for (int jr = 0; jr < nc; jr += nr) {
					const float *b = bp + (size_t)jr * kc;
					int cols = nc - jr < nr ? nc - jr : nr;

					for (int ir = 0; ir < mc; ir += mr) {
						const float *a = ap +
						    (size_t)ir * kc;
						int rows = mc - ir < mr ?
						    mc - ir : mr;
						float *c = C + (size_t)(ic +
						    ir) * ldc + jc + jr;

						if (rows == mr && cols == nr) {
							uk->fn(kc, a, b, c, ldc,
							    alpha, acc);
							continue;
						}
						/* an edge tile: run on a copy */
						for (int i = 0; i < rows; i++)
							memcpy(edge + i * nr,
							    c + (size_t)i * ldc,
							    (size_t)cols * 4);
						uk->fn(kc, a, b, edge, nr,
						    alpha, acc);
						for (int i = 0; i < rows; i++)
							memcpy(c + (size_t)i *
							    ldc, edge + i * nr,
							    (size_t)cols * 4);
					}
				}
			}
		}
	}
	return FTE_OK;
}

void
fte__gemm_rows(int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta,
    float *C, int ldc, int rows)
{
	const fte__gemm_kernel *uk = kernel_of(fte__isa());

	if (M <= 0 || N <= 0)
		return;
	if (K <= 0 || alpha == 0.0f) {
		if (beta != 1.0f)
			scale_c(C, ldc, M, N, beta);
		return;
	}
	/* A product of a few rows (decoding a token) is all packing of B and
	 * no reuse of it; OpenBLAS does those as matrix-vector products. */
	if (uk != NULL && rows >= FTE_GEMM_MIN_ROWS && gemm_blocked(uk, ta, tb,
	    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == FTE_OK)
		return;
	/* OpenBLAS: the chosen path, few rows, or packing space ran out */
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	    tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
	    beta, C, ldc);
}

void
fte__gemm(int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta,
    float *C, int ldc)
{
	fte__gemm_rows(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
	    M);
}
