/*
 * gemm_avx512.c - the AVX-512 microkernel and FMA probe (see gemm.c).
 *
 * Built with AVX-512 flags; nothing here runs unless gemm.c found the
 * instructions on the CPU.  A 14 x 32 tile of C lives in 28 zmm registers
 * (two per row): per k, two loads of B and fourteen broadcasts of A feed
 * 28 independent FMAs, enough to hide the FMA latency on two pipes.
 */
#include <immintrin.h>

#include "kernels/kernels.h"

#define MR 14

static void
kern_14x32(int kc, const float *a, const float *b, float *c, long ldc,
    float alpha, int acc)
{
	/* in memory, so that the loop has all 31 registers it needs */
	volatile float alpha_m = alpha;
	volatile int acc_m = acc;
	__m512 c0[MR], c1[MR];

#pragma GCC unroll 14
	for (int i = 0; i < MR; i++) {
		c0[i] = _mm512_setzero_ps();
		c1[i] = _mm512_setzero_ps();
	}
	for (int k = 0; k < kc; k++) {
		__m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);

		_mm_prefetch((const char *)(b + 32 * 8), _MM_HINT_T0);
#pragma GCC unroll 14
		for (int i = 0; i < MR; i++) {
			__m512 ai = _mm512_set1_ps(a[i]);
			c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
			c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
		}
		a += MR;
		b += 32;
	}
	__m512 al = _mm512_set1_ps(alpha_m);
	acc = acc_m;
#pragma GCC unroll 14
	for (int i = 0; i < MR; i++) {
		float *ci = c + i * ldc;
		if (acc) {
			_mm512_storeu_ps(ci, _mm512_fmadd_ps(al, c0[i],
			    _mm512_loadu_ps(ci)));
			_mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(al, c1[i],
			    _mm512_loadu_ps(ci + 16)));
		} else {
			_mm512_storeu_ps(ci, _mm512_mul_ps(al, c0[i]));
			_mm512_storeu_ps(ci + 16, _mm512_mul_ps(al, c1[i]));
		}
	}
}

/* fma_probe: n rounds of 16 independent zmm FMA chains; returns the
 * float operations done (the sum is kept so the work is not dropped). */
static double
fma_probe(long n)
{
	__m512 x[16], m = _mm512_set1_ps(0.999999f), d = _mm512_set1_ps(1e-7f);
	float sink[16];

	for (int i = 0; i < 16; i++)
		x[i] = _mm512_set1_ps((float)i);
	for (long r = 0; r < n; r++) {
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++)
			x[i] = _mm512_fmadd_ps(x[i], m, d);
	}
	for (int i = 1; i < 16; i++)
		x[0] = _mm512_add_ps(x[0], x[i]);
	_mm512_storeu_ps(sink, x[0]);
	__asm__ volatile("" : : "r"(sink) : "memory");
	return (double)n * 16 * 16 * 2;
}

const fte__gemm_kernel fte__gemm_avx512 = {
	"avx512 14x32", FTE_ISA_AVX512, MR, 32, kern_14x32, fma_probe,
};
