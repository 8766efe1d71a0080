/*
 * gemm_avx2.c - the AVX2+FMA microkernel and FMA probe (see gemm.c).
 *
 * Built with AVX2 and FMA flags; nothing here runs unless gemm.c found the
 * instructions on the CPU.  A 6 x 16 tile of C lives in 12 ymm registers
 * (two per row), with two for B and one broadcast of A: 15 of the 16.
 */
#include <immintrin.h>

#include "kernels/kernels.h"

#define MR 6

static void
kern_6x16(int kc, const float *a, const float *b, float *c, long ldc,
    float alpha, int acc)
{
	__m256 c0[MR], c1[MR];

#pragma GCC unroll 6
	for (int i = 0; i < MR; i++) {
		c0[i] = _mm256_setzero_ps();
		c1[i] = _mm256_setzero_ps();
	}
#pragma GCC unroll 4
	for (int k = 0; k < kc; k++) {
		__m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);

		_mm_prefetch((const char *)(b + 16 * 8), _MM_HINT_T0);
#pragma GCC unroll 6
		for (int i = 0; i < MR; i++) {
			__m256 ai = _mm256_broadcast_ss(a + i);
			c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
			c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
		}
		a += MR;
		b += 16;
	}
	__m256 al = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
	for (int i = 0; i < MR; i++) {
		float *ci = c + i * ldc;
		if (acc) {
			_mm256_storeu_ps(ci, _mm256_fmadd_ps(al, c0[i],
			    _mm256_loadu_ps(ci)));
			_mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(al, c1[i],
			    _mm256_loadu_ps(ci + 8)));
		} else {
			_mm256_storeu_ps(ci, _mm256_mul_ps(al, c0[i]));
			_mm256_storeu_ps(ci + 8, _mm256_mul_ps(al, c1[i]));
		}
	}
}

/* fma_probe: n rounds of 12 independent ymm FMA chains; returns the
 * float operations done. */
static double
fma_probe(long n)
{
	__m256 x[12], m = _mm256_set1_ps(0.999999f), d = _mm256_set1_ps(1e-7f);
	float sink[8];

	for (int i = 0; i < 12; i++)
		x[i] = _mm256_set1_ps((float)i);
	for (long r = 0; r < n; r++) {
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++)
			x[i] = _mm256_fmadd_ps(x[i], m, d);
	}
	for (int i = 1; i < 12; i++)
		x[0] = _mm256_add_ps(x[0], x[i]);
	_mm256_storeu_ps(sink, x[0]);
	__asm__ volatile("" : : "r"(sink) : "memory");
	return (double)n * 12 * 8 * 2;
}

/* tr8 transposes the 8 x 8 block r in registers. */
static inline void
tr8(__m256 r[8])
{
	__m256 t[8], u[8];

#pragma GCC unroll 4
	for (int i = 0; i < 4; i++) {
		t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
#pragma GCC unroll 2
	for (int i = 0; i < 2; i++) {
		u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
		u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
		u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
		u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
	}
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
		r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
	}
}

/* pack_rows: dst[k*w + i] = src[i*ld + k] for rows i < rows (zero up to
 * w), k < kc; 8 x 8 blocks transposed in registers. */
static void
pack_rows(float *dst, const float *src, long ld, int rows, int w, int kc)
{
	static const int lanes[16] = { -1, -1, -1, -1, -1, -1, -1, -1 };
	int k8 = kc / 8 * 8;

	/* 8 rows at a time, each read in order */
	for (int g = 0; g < w; g += 8) {
		int n = w - g < 8 ? w - g : 8;
		__m256i m = _mm256_loadu_si256((const __m256i *)(lanes + 8 - n));
		const float *s = src + g * ld;
		int live = rows - g < 0 ? 0 : rows - g;

		for (int k = 0; k < k8; k += 8) {
			__m256 r[8];

#pragma GCC unroll 8
			for (int i = 0; i < 8; i++)
				r[i] = i < live ? _mm256_loadu_ps(s + i * ld + k) :
				    _mm256_setzero_ps();
			tr8(r);
#pragma GCC unroll 8
			for (int t = 0; t < 8; t++)
				_mm256_maskstore_ps(dst + (long)(k + t) * w + g,
				    m, r[t]);
		}
	}
	for (int k = k8; k < kc; k++)
		for (int i = 0; i < w; i++)
			dst[(long)k * w + i] = i < rows ? src[i * ld + k] : 0.0f;
}

const fte__gemm_kernel fte__gemm_avx2 = {
	"avx2 6x16", FTE_ISA_AVX2, MR, 16, kern_6x16, pack_rows, fma_probe,
};
