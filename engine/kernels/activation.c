/*
 * activation.c - SwiGLU (Llama's silu(gate) * up) and GELU with the tanh
 * approximation (GPT-2's gelu_new):
 *   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * Elementwise; the threads split the range into contiguous chunks.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"

#define ACT_PAR_MIN 32768
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void
swiglu_forward(float *out, const float *gate, const float *up,
    size_t count)
{
	long n = (long)count;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if (count > ACT_PAR_MIN)
	for (long i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void
swiglu_backward(float *dgate, float *dup, const float *dout,
    const float *gate, const float *up, size_t count)
{
	long n = (long)count;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if (count > ACT_PAR_MIN)
	for (long i = 0; i < n; i++) {
		float g = gate[i];
		float sig = 1.0f / (1.0f + expf(-g));
		if (dgate != NULL)
			/* silu'(g) = sig (1 + g (1 - sig)) */
			dgate[i] += dout[i] * up[i] * sig *
			    (1.0f + g * (1.0f - sig));
		if (dup != NULL)
			dup[i] += dout[i] * g * sig;
	}
}

void
gelu_forward(float *out, const float *inp, size_t count)
{
	long n = (long)count;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if (count > ACT_PAR_MIN)
	for (long i = 0; i < n; i++) {
		float x = inp[i];
		float u = GELU_K * (x + 0.044715f * x * x * x);
		out[i] = 0.5f * x * (1.0f + tanhf(u));
	}
}

void
gelu_backward(float *dinp, const float *dout, const float *inp,
    size_t count)
{
	long n = (long)count;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if (count > ACT_PAR_MIN)
	for (long i = 0; i < n; i++) {
		float x = inp[i];
		float u = GELU_K * (x + 0.044715f * x * x * x);
		float t = tanhf(u);
		float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
		dinp[i] += dout[i] * (0.5f * (1.0f + t) +
		    0.5f * x * (1.0f - t * t) * du);
	}
}
