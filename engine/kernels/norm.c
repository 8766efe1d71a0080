/*
 * norm.c - RMSNorm (Llama) and LayerNorm (GPT-2), as PyTorch defines them:
 * RMSNorm x * rsqrt(mean(x^2) + eps) * (offset + w) (Gemma stores w - 1, so
 * offset 1), LayerNorm with the biased variance.
 *
 * Rows are independent and split among the threads.  The weight gradients
 * sum over rows, so they are a second pass split by columns, each thread
 * summing its own columns over all rows in order: no atomics, no partial
 * buffers, and the same sums whatever the thread count.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"

/* One call's arguments.  mean is NULL for RMSNorm. */
struct norm {
	float *out, *mean, *rstd;            /* forward outputs */
	float *dinp, *dweight;               /* backward outputs */
	const float *inp, *weight, *bias, *dout;
	const float *smean, *srstd;          /* saved by forward */
	int N, C;
	float eps, off;
};

static void
rmsnorm_rows(void *arg, int lo, int hi)
{
	const struct norm *a = arg;
	int C = a->C;

	for (int n = lo; n < hi; n++) {
		const float *x = a->inp + (size_t)n * C;
		float *o = a->out + (size_t)n * C;
		float ss = 0.0f;
#pragma omp simd reduction(+:ss)
		for (int c = 0; c < C; c++)
			ss += x[c] * x[c];
		float r = 1.0f / sqrtf(ss / C + a->eps);
#pragma omp simd
		for (int c = 0; c < C; c++)
			o[c] = x[c] * r * (a->off + a->weight[c]);
		a->rstd[n] = r;
	}
}

void
rmsnorm_forward(float *out, float *rstd, const float *inp,
    const float *weight, float offset, int N, int C, float eps)
{
	struct norm a = { .out = out, .rstd = rstd, .inp = inp,
	    .weight = weight, .N = N, .C = C, .eps = eps, .off = offset };

	fte__parallel_range(N, 3.0 * N * C, rmsnorm_rows, &a);
}

/* norm_dweight_cols adds to dweight[lo, hi) the sum over rows of
 * dout * xhat, xhat = (inp - mean) * rstd (mean 0 for RMSNorm). */
static void
norm_dweight_cols(void *arg, int lo, int hi)
{
	const struct norm *a = arg;
	int C = a->C;

	for (int n = 0; n < a->N; n++) {
		const float *x = a->inp + (size_t)n * C;
		const float *d = a->dout + (size_t)n * C;
		float m = a->smean != NULL ? a->smean[n] : 0.0f;
		float r = a->srstd[n];
#pragma omp simd
		for (int c = lo; c < hi; c++)
			a->dweight[c] += d[c] * ((x[c] - m) * r);
	}
}

static void
rmsnorm_dinp_rows(void *arg, int lo, int hi)
{
	const struct norm *a = arg;
	int C = a->C;

	for (int n = lo; n < hi; n++) {
		const float *x = a->inp + (size_t)n * C;
		const float *d = a->dout + (size_t)n * C;
		float *dx = a->dinp + (size_t)n * C;
		float r = a->srstd[n];
		float dot = 0.0f;
#pragma omp simd reduction(+:dot)
		for (int c = 0; c < C; c++)
			dot += d[c] * (a->off + a->weight[c]) * x[c];
		/* d rstd / d x_c = -rstd^3 x_c / C */
		float k = dot * r * r * r / C;
#pragma omp simd
		for (int c = 0; c < C; c++)
			dx[c] += r * (a->off + a->weight[c]) * d[c] - k * x[c];
	}
}

void
rmsnorm_backward(float *dinp, float *dweight, const float *dout,
    const float *inp, const float *weight, float offset, const float *rstd,
    int N, int C)
{
	struct norm a = { .dinp = dinp, .dweight = dweight, .inp = inp,
	    .weight = weight, .dout = dout, .srstd = rstd, .N = N, .C = C,
	    .off = offset };

	if (dinp != NULL)
		fte__parallel_range(N, 6.0 * N * C, rmsnorm_dinp_rows, &a);
	if (dweight != NULL)
		fte__parallel_range(C, 3.0 * N * C, norm_dweight_cols, &a);
}

static void
layernorm_rows(void *arg, int lo, int hi)
{
	const struct norm *a = arg;
	int C = a->C;

	for (int n = lo; n < hi; n++) {
		const float *x = a->inp + (size_t)n * C;
		float *o = a->out + (size_t)n * C;
		float s = 0.0f;
#pragma omp simd reduction(+:s)
		for (int c = 0; c < C; c++)
			s += x[c];
		float m = s / C;
		float v = 0.0f;
#pragma omp simd reduction(+:v)
		for (int c = 0; c < C; c++)
			v += (x[c] - m) * (x[c] - m);
		float r = 1.0f / sqrtf(v / C + a->eps);
#pragma omp simd
		for (int c = 0; c < C; c++)
			o[c] = (x[c] - m) * r * a->weight[c] + a->bias[c];
		a->mean[n] = m;
		a->rstd[n] = r;
	}
}

void
layernorm_forward(float *out, float *mean, float *rstd,
    const float *inp, const float *weight, const float *bias,
    int N, int C, float eps)
{
	struct norm a = { .out = out, .mean = mean, .rstd = rstd, .inp = inp,
	    .weight = weight, .bias = bias, .N = N, .C = C, .eps = eps };

	fte__parallel_range(N, 6.0 * N * C, layernorm_rows, &a);
}

static void
layernorm_dinp_rows(void *arg, int lo, int hi)
{
	const struct norm *a = arg;
	int C = a->C;

	for (int n = lo; n < hi; n++) {
		const float *x = a->inp + (size_t)n * C;
		const float *d = a->dout + (size_t)n * C;
		float *dx = a->dinp + (size_t)n * C;
		float m = a->smean[n], r = a->srstd[n];
		float dsum = 0.0f, dxsum = 0.0f;
#pragma omp simd reduction(+:dsum, dxsum)
		for (int c = 0; c < C; c++) {
			float dn = a->weight[c] * d[c];
			dsum += dn;
			dxsum += dn * (x[c] - m) * r;
		}
		dsum /= C;
		dxsum /= C;
#pragma omp simd
		for (int c = 0; c < C; c++) {
			float xhat = (x[c] - m) * r;
			dx[c] += (a->weight[c] * d[c] - dsum - xhat * dxsum) *
			    r;
		}
	}
}

void
layernorm_backward(float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *mean, const float *rstd, int N, int C)
{
	struct norm a = { .dinp = dinp, .dweight = dweight, .inp = inp,
	    .weight = weight, .dout = dout, .smean = mean, .srstd = rstd,
	    .N = N, .C = C };

	if (dinp != NULL)
		fte__parallel_range(N, 10.0 * N * C, layernorm_dinp_rows, &a);
	if (dweight != NULL)
		fte__parallel_range(C, 4.0 * N * C, norm_dweight_cols, &a);
	if (dbias != NULL)
		fte__colsum_add(dbias, dout, N, C);
}
