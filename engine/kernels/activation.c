/*
 * activation.c - SwiGLU (Llama's silu(gate) * up), GeGLU (Gemma's
 * gelu(gate) * up), soft-capping (cap tanh(x / cap)) and GELU with the tanh
 * approximation (GPT-2's gelu_new, Gemma's gelu_pytorch_tanh):
 *   gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
 * Since 0.5 (1 + tanh(u)) = sigmoid(2u), GELU is computed as x sigmoid(2u):
 * the same function, one exp instead of tanh, and no cancellation in
 * 1 + tanh(u) for negative x.
 *
 * Elementwise, four lanes at a time (vmath.h); the threads split the range
 * into contiguous chunks of four-element groups.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"
#include "kernels/vmath.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

static inline v4f
sigmoid4(v4f x)
{
	return 1.0f / (1.0f + vexp4(-x));
}

/* gelu_u4 returns 2u, the argument of the sigmoid. */
static inline v4f
gelu_u4(v4f x)
{
	return 2.0f * GELU_K * (x + GELU_A * x * x * x);
}

/* One call's arguments (inp is SwiGLU's gate, dinp its dgate); the
 * threads split groups of four elements. */
struct act {
	float *out, *dinp, *dup;
	const float *inp, *up, *dout;
	long n;
	float cap;                   /* softcap */
};

static int
act_groups(size_t count)
{
	return (int)((count + 3) / 4);
}

static void
swiglu_fwd_groups(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	long n = a->n;

	for (long i = 4L * lo; i < n && i < 4L * hi; i += 4) {
		v4f g = v4f_loadn(a->inp + i, n - i, 0.0f);
		v4f u = v4f_loadn(a->up + i, n - i, 0.0f);
		v4f_storen(a->out + i, g * sigmoid4(g) * u, n - i);
	}
}

void
swiglu_forward(float *out, const float *gate, const float *up,
    size_t count)
{
	struct act a = { .out = out, .inp = gate, .up = up, .n = (long)count };

	fte__parallel_range(act_groups(count), 30.0 * count,
	    swiglu_fwd_groups, &a);
}

static void
swiglu_bwd_groups(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	long n = a->n;

	for (long i = 4L * lo; i < n && i < 4L * hi; i += 4) {
		v4f g = v4f_loadn(a->inp + i, n - i, 0.0f);
		v4f d = v4f_loadn(a->dout + i, n - i, 0.0f);
		v4f sig = sigmoid4(g);
		if (a->dinp != NULL) {
			v4f u = v4f_loadn(a->up + i, n - i, 0.0f);
			v4f dg = v4f_loadn(a->dinp + i, n - i, 0.0f);
			/* silu'(g) = sig (1 + g (1 - sig)) */
			dg += d * u * sig * (1.0f + g * (1.0f - sig));
			v4f_storen(a->dinp + i, dg, n - i);
		}
		if (a->dup != NULL) {
			v4f du = v4f_loadn(a->dup + i, n - i, 0.0f);
			v4f_storen(a->dup + i, du + d * g * sig, n - i);
		}
	}
}

void
swiglu_backward(float *dgate, float *dup, const float *dout,
    const float *gate, const float *up, size_t count)
{
	struct act a = { .dinp = dgate, .dup = dup, .inp = gate, .up = up,
	    .dout = dout, .n = (long)count };

	if (dgate != NULL || dup != NULL)
		fte__parallel_range(act_groups(count), 40.0 * count,
		    swiglu_bwd_groups, &a);
}

static void
gelu_fwd_groups(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	long n = a->n;

	for (long i = 4L * lo; i < n && i < 4L * hi; i += 4) {
		v4f x = v4f_loadn(a->inp + i, n - i, 0.0f);
		v4f_storen(a->out + i, x * sigmoid4(gelu_u4(x)), n - i);
	}
}

void
gelu_forward(float *out, const float *inp, size_t count)
{
	struct act a = { .out = out, .inp = inp, .n = (long)count };

	fte__parallel_range(act_groups(count), 35.0 * count, gelu_fwd_groups,
	    &a);
}

static void
gelu_bwd_groups(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	long n = a->n;

	for (long i = 4L * lo; i < n && i < 4L * hi; i += 4) {
		v4f x = v4f_loadn(a->inp + i, n - i, 0.0f);
		v4f d = v4f_loadn(a->dout + i, n - i, 0.0f);
		v4f dx = v4f_loadn(a->dinp + i, n - i, 0.0f);
		v4f s = sigmoid4(gelu_u4(x));
		/* d/dx x sigmoid(2u) = s + x s (1 - s) 2 du/dx */
		v4f du2 = 2.0f * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
		dx += d * (s + x * s * (1.0f - s) * du2);
		v4f_storen(a->dinp + i, dx, n - i);
	}
}

void
gelu_backward(float *dinp, const float *dout, const float *inp,
    size_t count)
{
	struct act a = { .dinp = dinp, .inp = inp, .dout = dout,
	    .n = (long)count };

	fte__parallel_range(act_groups(count), 45.0 * count, gelu_bwd_groups,
	    &a);
}

static void
geglu_fwd_groups(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	long n = a->n;

	for (long i = 4L * lo; i < n && i < 4L * hi; i += 4) {
		v4f g = v4f_loadn(a->inp + i, n - i, 0.0f);
		v4f u = v4f_loadn(a->up + i, n - i, 0.0f);
		v4f_storen(a->out + i, g * sigmoid4(gelu_u4(g)) * u, n - i);
	}
}

void
geglu_forward(float *out, const float *gate, const float *up, size_t count)
{
	struct act a = { .out = out, .inp = gate, .up = up, .n = (long)count };

	fte__parallel_range(act_groups(count), 40.0 * count, geglu_fwd_groups, &a);
}

static void
geglu_bwd_groups(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	long n = a->n;

	for (long i = 4L * lo; i < n && i < 4L * hi; i += 4) {
		v4f g = v4f_loadn(a->inp + i, n - i, 0.0f);
		v4f d = v4f_loadn(a->dout + i, n - i, 0.0f);
		v4f s = sigmoid4(gelu_u4(g));
		if (a->dinp != NULL) {
			v4f u = v4f_loadn(a->up + i, n - i, 0.0f);
			v4f dg = v4f_loadn(a->dinp + i, n - i, 0.0f);
			v4f du2 = 2.0f * GELU_K * (1.0f + 3.0f * GELU_A * g * g);
			dg += d * u * (s + g * s * (1.0f - s) * du2);
			v4f_storen(a->dinp + i, dg, n - i);
		}
		if (a->dup != NULL) {
			v4f du = v4f_loadn(a->dup + i, n - i, 0.0f);
			v4f_storen(a->dup + i, du + d * g * s, n - i);
		}
	}
}

void
geglu_backward(float *dgate, float *dup, const float *dout,
    const float *gate, const float *up, size_t count)
{
	struct act a = { .dinp = dgate, .dup = dup, .inp = gate, .up = up,
	    .dout = dout, .n = (long)count };

	if (dgate != NULL || dup != NULL)
		fte__parallel_range(act_groups(count), 50.0 * count,
		    geglu_bwd_groups, &a);
}

static void
softcap_fwd_rows(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	float cap = a->cap;

	for (long i = lo; i < hi; i++)
		a->out[i] = cap * tanhf(a->inp[i] / cap);
}

void
softcap_forward(float *y, const float *x, size_t count, float cap)
{
	struct act a = { .out = y, .inp = x, .n = (long)count, .cap = cap };

	fte__parallel_range((int)count, 20.0 * count, softcap_fwd_rows, &a);
}

static void
softcap_bwd_rows(void *arg, int lo, int hi)
{
	const struct act *a = arg;
	float cap = a->cap;

	for (long i = lo; i < hi; i++) {
		float t = a->inp[i] / cap;

		a->dinp[i] *= 1.0f - t * t;
	}
}

void
softcap_backward(float *d, const float *y, size_t count, float cap)
{
	struct act a = { .dinp = d, .inp = y, .n = (long)count, .cap = cap };

	fte__parallel_range((int)count, 4.0 * count, softcap_bwd_rows, &a);
}
