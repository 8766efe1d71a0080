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

struct rope {
	float *x;
	const int *pos;
	int nh, D, style;
	float theta, sign;
};

/* rope_rows turns every pair of tokens [lo, hi) by +angle (sign 1) or
 * -angle (sign -1). */
static void
rope_rows(void *arg, int lo, int hi)
{
	const struct rope *a = arg;
	int D = a->D, half = D / 2;
	/* Pair i is (i, i + half) or (2i, 2i + 1). */
	int stride = a->style == FTE_ROPE_INTERLEAVED ? 2 : 1;
	int off = a->style == FTE_ROPE_INTERLEAVED ? 1 : half;

	for (int n = lo; n < hi; n++) {
		float *row = a->x + (size_t)n * a->nh * D;
		for (int i = 0; i < half; i++) {
			float inv_freq = 1.0f /
			    powf(a->theta, (float)(2 * i) / D);
			float angle = (float)a->pos[n] * inv_freq;
			float c = cosf(angle), s = a->sign * sinf(angle);
			for (int h = 0; h < a->nh; h++) {
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
	struct rope a = { x, pos, nh, D, style, theta, 1.0f };

	fte__parallel_range(N, 3.0 * N * nh * D, rope_rows, &a);
}

void
rope_backward(float *dx, const int *pos, int N, int nh, int D, float theta,
    int style)
{
	/* The rotation is orthogonal: its gradient is the inverse turn. */
	struct rope a = { dx, pos, nh, D, style, theta, -1.0f };

	fte__parallel_range(N, 3.0 * N * nh * D, rope_rows, &a);
}
