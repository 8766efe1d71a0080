/*
 * rope.c - rotary position embeddings, both pairings.
 *
 * Pair i (i < D/2) of each head turns by the angle pos * theta^(-2i/D).
 * FTE_ROPE_HALF pairs (i, i + D/2), as Hugging Face's rotate_half does;
 * FTE_ROPE_INTERLEAVED pairs (2i, 2i + 1), as llama2.c and GGUF do.  The
 * frequency and angle are computed in float the way both references do
 * (inv_freq = 1 / theta^(2i/D), angle = pos * inv_freq), so long positions
 * round as theirs do.  Each (token, pair) computes its cos/sin once and
 * rotates that pair in every head.
 */
#include <math.h>
#include <stddef.h>

#include "fte_model.h"
#include "kernels/kernels.h"

/* rope_rotate turns every pair by +angle (sign 1) or -angle (sign -1). */
static void
rope_rotate(float *x, const int *pos, int N, int nh, int D, float theta,
    int style, float sign)
{
	int half = D / 2;
	/* Pair i is (i, i + half) or (2i, 2i + 1). */
	int stride = style == FTE_ROPE_INTERLEAVED ? 2 : 1;
	int off = style == FTE_ROPE_INTERLEAVED ? 1 : half;

#pragma omp parallel for num_threads(fte__threads()) schedule(static) \
	if ((size_t)N * nh * D > 65536)
	for (int n = 0; n < N; n++) {
		float *row = x + (size_t)n * nh * D;
		for (int i = 0; i < half; i++) {
			float inv_freq = 1.0f / powf(theta, (float)(2 * i) / D);
			float angle = (float)pos[n] * inv_freq;
			float c = cosf(angle), s = sign * sinf(angle);
			for (int h = 0; h < nh; h++) {
				float *p = row + (size_t)h * D + i * stride;
				float x0 = p[0], x1 = p[off];
				p[0] = x0 * c - x1 * s;
				p[off] = x0 * s + x1 * c;
			}
		}
	}
}

void
rope_forward(float *x, const int *pos, int N, int nh, int D, float theta,
    int style)
{
	rope_rotate(x, pos, N, nh, D, theta, style, 1.0f);
}

void
rope_backward(float *dx, const int *pos, int N, int nh, int D, float theta,
    int style)
{
	/* The rotation is orthogonal: its gradient is the inverse turn. */
	rope_rotate(dx, pos, N, nh, D, theta, style, -1.0f);
}
