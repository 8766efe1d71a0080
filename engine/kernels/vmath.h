/*
 * vmath.h - four-lane float vectors, an exp that runs on them, and the row
 * loops of a softmax, for the kernels' softmax and activation code.
 *
 * Why by hand: glibc's expf is a call the compiler will not vectorise
 * without -ffast-math, and a polynomial exp written in scalar C does not
 * vectorise at -O2 either, even under `omp simd`: GCC will not if-convert
 * its range clamps (float compares may trap).  exp dominates softmax,
 * cross-entropy, SiLU and GELU, so those loops use GCC/Clang generic vectors
 * (vector_size(16): SSE2 on any x86-64, NEON on arm64, no -march), four
 * lanes at a time.  Plain arithmetic loops elsewhere vectorise by
 * themselves under `omp simd`.
 *
 * vexp4 is Cephes' expf: Cody-Waite reduction by ln 2, a degree-6
 * polynomial, 2^k built in the exponent bits; within 1 ulp of exp on
 * [-87.3, 88].  Lanes below -87.33 (including -INFINITY) give exactly 0,
 * which masked softmax entries rely on; lanes above 88 give exp(88) = 1.7e38
 * so the scale stays finite; NaN stays NaN.  Lanes are independent, so an
 * element's value does not depend on its position.
 */
#ifndef FTE_VMATH_H
#define FTE_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef uint32_t v4u __attribute__((vector_size(16)));

#define VEXP_HI 88.0f
#define VEXP_LO -87.33f
#define VEXP_LOG2E 1.44269504088896341f
#define VEXP_C1 0.693359375f
#define VEXP_C2 -2.12194440e-4f
#define VEXP_ROUND 0x1.8p23f /* adding it rounds to an integer */

static inline v4f
v4f_set1(float x)
{
	return (v4f){ x, x, x, x };
}

static inline v4f
v4f_load(const float *p)
{
	v4f v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void
v4f_store(float *p, v4f v)
{
	memcpy(p, &v, sizeof(v));
}

/* v4f_select returns a where mask lanes are set, else b. */
static inline v4f
v4f_select(v4i mask, v4f a, v4f b)
{
	return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask));
}

static inline v4f
v4f_max(v4f a, v4f b)
{
	return v4f_select(a > b, a, b);
}

/* v4f_sum adds the lanes in a fixed order. */
static inline float
v4f_sum(v4f v)
{
	return (v[0] + v[1]) + (v[2] + v[3]);
}

static inline float
v4f_hmax(v4f v)
{
	float a = v[0] > v[1] ? v[0] : v[1];
	float b = v[2] > v[3] ? v[2] : v[3];

	return a > b ? a : b;
}

static inline v4f
vexp4(v4f x)
{
	/* NaN fails both comparisons and flows through unclamped. */
	v4f xc = v4f_select(x > VEXP_HI, v4f_set1(VEXP_HI), x);
	xc = v4f_select(xc < VEXP_LO, v4f_set1(VEXP_LO), xc);
	/* k = nearest integer to x / ln2, also in t's low mantissa bits */
	v4f t = xc * VEXP_LOG2E + VEXP_ROUND;
	v4f k = t - VEXP_ROUND;
	v4f r = xc - k * VEXP_C1 - k * VEXP_C2;
	v4f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	v4u e = ((v4u)t - 0x4b400000u + 127u) << 23; /* 2^k */
	return v4f_select(x < VEXP_LO, v4f_set1(0.0f), p * (v4f)e);
}

/* v4f_loadn loads p[0..m), m <= 4, and fills the other lanes. */
static inline v4f
v4f_loadn(const float *p, long m, float fill)
{
	v4f v = v4f_set1(fill);

	if (m >= 4)
		return v4f_load(p);
	memcpy(&v, p, (size_t)m * sizeof(float));
	return v;
}

/* v4f_storen stores the first m lanes, m <= 4. */
static inline void
v4f_storen(float *p, v4f v, long m)
{
	if (m >= 4)
		v4f_store(p, v);
	else
		memcpy(p, &v, (size_t)m * sizeof(float));
}

/* The row loops take four lanes at a time; a short last group is padded
 * with a neutral value (-INFINITY for max and exp, 0 for sums). */

/* vrow_max returns the largest of x[0..n), n >= 1. */
static inline float
vrow_max(const float *x, int n)
{
	v4f m = v4f_set1(-INFINITY);

	for (int i = 0; i < n; i += 4)
		m = v4f_max(m, v4f_loadn(x + i, n - i, -INFINITY));
	return v4f_hmax(m);
}

/* vrow_expsum sets p[i] = exp(x[i] - shift) and returns their sum; p may
 * alias x. */
static inline float
vrow_expsum(float *p, const float *x, float shift, int n)
{
	v4f s = v4f_set1(0.0f);

	for (int i = 0; i < n; i += 4) {
		v4f e = vexp4(v4f_loadn(x + i, n - i, -INFINITY) - shift);
		v4f_storen(p + i, e, n - i);
		s += e;
	}
	return v4f_sum(s);
}

/* vrow_axpy sets y[i] = a x[i] + b y[i] (b 0 or 1; y may alias x). */
static inline void
vrow_axpy(float *y, float a, const float *x, float b, int n)
{
	for (int i = 0; i < n; i += 4) {
		v4f v = a * v4f_loadn(x + i, n - i, 0.0f);
		if (b != 0.0f)
			v += b * v4f_loadn(y + i, n - i, 0.0f);
		v4f_storen(y + i, v, n - i);
	}
}

/* vrow_dot returns sum x[i] y[i] over [0, n). */
static inline float
vrow_dot(const float *x, const float *y, int n)
{
	v4f s = v4f_set1(0.0f);

	for (int i = 0; i < n; i += 4)
		s += v4f_loadn(x + i, n - i, 0.0f) *
		    v4f_loadn(y + i, n - i, 0.0f);
	return v4f_sum(s);
}

#endif
