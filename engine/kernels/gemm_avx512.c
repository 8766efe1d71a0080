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

/* tr16 transposes the 16 x 16 block r in registers. */
static inline void
tr16(__m512 r[16])
{
	__m512 t[16];

#pragma GCC unroll 8
	for (int i = 0; i < 8; i++) {
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	/* r[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c */
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++) {
		__m512d a = _mm512_castps_pd(t[4 * i]);
		__m512d b = _mm512_castps_pd(t[4 * i + 2]);
		__m512d c = _mm512_castps_pd(t[4 * i + 1]);
		__m512d d = _mm512_castps_pd(t[4 * i + 3]);
		r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
		r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
		r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
		r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
	}
	/* then a 4 x 4 transpose of 128-bit lanes for each c */
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		__m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44);
		__m512 u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
		__m512 u2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
		__m512 u3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
		t[c] = _mm512_shuffle_f32x4(u0, u2, 0x88);
		t[4 + c] = _mm512_shuffle_f32x4(u0, u2, 0xdd);
		t[8 + c] = _mm512_shuffle_f32x4(u1, u3, 0x88);
		t[12 + c] = _mm512_shuffle_f32x4(u1, u3, 0xdd);
	}
#pragma GCC unroll 16
	for (int i = 0; i < 16; i++)
		r[i] = t[i];
}

/* pack_rows: dst[k*w + i] = src[i*ld + k] for rows i < rows (zero up to
 * w), k < kc; 16 x 16 blocks transposed in registers. */
static void
pack_rows(float *dst, const float *src, long ld, int rows, int w, int kc)
{
	int k16 = kc / 16 * 16;

	/* 16 rows at a time, each read in order */
	for (int g = 0; g < w; g += 16) {
		int n = w - g < 16 ? w - g : 16;
		__mmask16 m = (__mmask16)((1u << n) - 1);
		const float *s = src + g * ld;
		int live = rows - g < 0 ? 0 : rows - g;

		for (int k = 0; k < k16; k += 16) {
			__m512 r[16];

#pragma GCC unroll 16
			for (int i = 0; i < 16; i++)
				r[i] = i < live ? _mm512_loadu_ps(s + i * ld + k) :
				    _mm512_setzero_ps();
			tr16(r);
#pragma GCC unroll 16
			for (int t = 0; t < 16; t++)
				_mm512_mask_storeu_ps(dst + (long)(k + t) * w + g,
				    m, r[t]);
		}
	}
	for (int k = k16; k < kc; k++)
		for (int i = 0; i < w; i++)
			dst[(long)k * w + i] = i < rows ? src[i * ld + k] : 0.0f;
}

const fte__gemm_kernel fte__gemm_avx512 = {
	"avx512 14x32", FTE_ISA_AVX512, MR, 32, kern_14x32, pack_rows,
	fma_probe,
};
