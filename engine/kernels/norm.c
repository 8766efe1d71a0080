/*
 * norm.c - RMSNorm (Llama) and LayerNorm (GPT-2), as PyTorch defines them:
 * RMSNorm x * rsqrt(mean(x^2) + eps) * w, LayerNorm with the biased variance.
 *
 * Rows are independent and split among the threads.  The weight gradients
 * sum over rows, so they are a second pass split by columns, each thread
 * summing its own columns over all rows in order: no atomics, no partial
 * buffers, and the same sums whatever the thread count.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"

/* Kernels on fewer elements than this stay on one thread. */
#define NORM_PAR_MIN 32768

void
rmsnorm_forward(float *out, float *rstd, const float *inp,
    const float *weight, int N, int C, float eps)
{
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * C > NORM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *o = out + (size_t)n * C;
		float ss = 0.0f;
#pragma omp simd reduction(+:ss)
		for (int c = 0; c < C; c++)
			ss += x[c] * x[c];
		float r = 1.0f / sqrtf(ss / C + eps);
#pragma omp simd
		for (int c = 0; c < C; c++)
			o[c] = x[c] * r * weight[c];
		rstd[n] = r;
	}
}

/* dweight[c] += sum over rows of dout * xhat, where xhat = (inp - mean) *
 * rstd (mean NULL for RMSNorm), split by columns. */
static void
norm_dweight(float *dweight, const float *dout, const float *inp,
    const float *mean, const float *rstd, int N, int C)
{
	int nt = fte__threads();
	int parts = nt < C ? nt : 1;

#pragma omp parallel for num_threads(parts) schedule(static, 1) \
	if ((size_t)N * C > NORM_PAR_MIN)
	for (int p = 0; p < parts; p++) {
		int lo = (int)((long)C * p / parts);
		int hi = (int)((long)C * (p + 1) / parts);
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C;
			const float *d = dout + (size_t)n * C;
			float m = mean != NULL ? mean[n] : 0.0f;
			float r = rstd[n];
#pragma omp simd
			for (int c = lo; c < hi; c++)
				dweight[c] += d[c] * ((x[c] - m) * r);
		}
	}
}

void
rmsnorm_backward(float *dinp, float *dweight, const float *dout,
    const float *inp, const float *weight, const float *rstd, int N, int C)
{
	if (dinp != NULL) {
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * C > NORM_PAR_MIN)
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C;
			const float *d = dout + (size_t)n * C;
			float *dx = dinp + (size_t)n * C;
			float r = rstd[n];
			float dot = 0.0f;
#pragma omp simd reduction(+:dot)
			for (int c = 0; c < C; c++)
				dot += d[c] * weight[c] * x[c];
			/* d rstd / d x_c = -rstd^3 x_c / C */
			float k = dot * r * r * r / C;
#pragma omp simd
			for (int c = 0; c < C; c++)
				dx[c] += r * weight[c] * d[c] - k * x[c];
		}
	}
	if (dweight != NULL)
		norm_dweight(dweight, dout, inp, NULL, rstd, N, C);
}

void
layernorm_forward(float *out, float *mean, float *rstd,
    const float *inp, const float *weight, const float *bias,
    int N, int C, float eps)
{
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * C > NORM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *o = out + (size_t)n * C;
		float s = 0.0f;
#pragma omp simd reduction(+:s)
		for (int c = 0; c < C; c++)
			s += x[c];
		float m = s / C;
		float v = 0.0f;
#pragma omp simd reduction(+:v)
		for (int c = 0; c < C; c++)
			v += (x[c] - m) * (x[c] - m);
		float r = 1.0f / sqrtf(v / C + eps);
#pragma omp simd
		for (int c = 0; c < C; c++)
			o[c] = (x[c] - m) * r * weight[c] + bias[c];
		mean[n] = m;
		rstd[n] = r;
	}
}

void
layernorm_backward(float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *mean, const float *rstd, int N, int C)
{
	if (dinp != NULL) {
#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * C > NORM_PAR_MIN)
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C;
			const float *d = dout + (size_t)n * C;
			float *dx = dinp + (size_t)n * C;
			float m = mean[n], r = rstd[n];
			float dsum = 0.0f, dxsum = 0.0f;
#pragma omp simd reduction(+:dsum, dxsum)
			for (int c = 0; c < C; c++) {
				float dn = weight[c] * d[c];
				dsum += dn;
				dxsum += dn * (x[c] - m) * r;
			}
			dsum /= C;
			dxsum /= C;
#pragma omp simd
			for (int c = 0; c < C; c++) {
				float xhat = (x[c] - m) * r;
				dx[c] += (weight[c] * d[c] - dsum - xhat * dxsum)
				    * r;
			}
		}
	}
	if (dweight != NULL)
		norm_dweight(dweight, dout, inp, mean, rstd, N, C);
	if (dbias != NULL)
		fte__colsum_add(dbias, dout, N, C);
}
