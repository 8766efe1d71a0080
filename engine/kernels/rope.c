/*
 * rope.c - rotary position embeddings, both pairings, and the frequency
 * table of each RoPE scaling.
 *
 * Pair i (i < R/2) of the first R of each head's D dimensions turns by the
 * angle pos * inv_freq[i]; the other D - R pass (partial rotary, Phi-4-mini).
 * FTE_ROPE_HALF pairs (i, i + R/2), as Hugging Face's rotate_half does;
 * FTE_ROPE_INTERLEAVED pairs (2i, 2i + 1), as llama2.c and GGUF do.  The
 * angle is computed in float the way both references do (angle = pos *
 * inv_freq), so long positions round as theirs do.  Each (token, pair)
 * computes its cos/sin once and rotates that pair in every head.
 *
 * rope_inv_freq follows transformers' modeling_rope_utils operation by
 * operation: what it computes on float32 tensors is computed here in float
 * (a scalar over a tensor is the tensor's reciprocal times the scalar, as
 * torch's __rtruediv__ does), what it computes on Python floats in double.
 */
#include <math.h>
#include <stddef.h>

#include "fte_model.h"
#include "kernels/kernels.h"

struct rope {
	float *x;
	const int *pos;
	const float *inv_freq;
	int nh, D, R, style;
	float attn, sign;
};

/* rope_rows turns every pair of tokens [lo, hi) by +angle (sign 1) or
 * -angle (sign -1), scaled by attn. */
static void
rope_rows(void *arg, int lo, int hi)
{
	const struct rope *a = arg;
	int D = a->D, half = a->R / 2;
	/* Pair i is (i, i + half) or (2i, 2i + 1). */
	int stride = a->style == FTE_ROPE_INTERLEAVED ? 2 : 1;
	int off = a->style == FTE_ROPE_INTERLEAVED ? 1 : half;

	for (int n = lo; n < hi; n++) {
		float *row = a->x + (size_t)n * a->nh * D;
		for (int i = 0; i < half; i++) {
			float angle = (float)a->pos[n] * a->inv_freq[i];
			float c = cosf(angle) * a->attn;
			float s = a->sign * (sinf(angle) * a->attn);
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
rope_forward(float *x, const int *pos, int N, int nh, int D, int R,
    const float *inv_freq, float attn, int style)
{
	struct rope a = { x, pos, inv_freq, nh, D, R, style, attn, 1.0f };

	fte__parallel_range(N, 3.0 * N * nh * D, rope_rows, &a);
}

void
rope_backward(float *dx, const int *pos, int N, int nh, int D, int R,
    const float *inv_freq, float attn, int style)
{
	/* attn times a rotation: its transpose is attn times the inverse turn. */
	struct rope a = { dx, pos, inv_freq, nh, D, R, style, attn, -1.0f };

	fte__parallel_range(N, 3.0 * N * nh * D, rope_rows, &a);
}

/* yarn_dim is the dimension at which pairs turn num_rot times over ctx
 * positions (find_correction_dim). */
static double
yarn_dim(double num_rot, int D, double base, int ctx)
{
	return (D * log(ctx / (num_rot * 2 * M_PI))) / (2 * log(base));
}

void
rope_inv_freq(const fte_config *c, float *inv, float *attn)
{
	const fte_rope_scaling *r = &c->rope;
	/* transformers' dim: the rotated part of the head */
	int D = c->rope_dim > 0 ? c->rope_dim : c->head_dim, half = D / 2;
	double base = c->rope_theta;

	*attn = 1.0f;
	if (r->type == FTE_ROPE_DYNAMIC)
		/* the NTK base at seq_len = max_position_embeddings, which the
		 * context never exceeds */
		base = base * pow(r->factor - (r->factor - 1), (double)D / (D - 2));
	for (int i = 0; i < half; i++)
		inv[i] = 1.0f / powf((float)base, (float)(2 * i) / (float)D);
	if (r->type == FTE_ROPE_LINEAR) {
		for (int i = 0; i < half; i++)
			inv[i] = inv[i] / (float)r->factor;
	} else if (r->type == FTE_ROPE_LONGROPE) {
		/* the short factors: the context is capped at orig_ctx, past
		 * which transformers switches to the long ones */
		for (int i = 0; i < half; i++)
			inv[i] = 1.0f / (r->short_factor[i] * powf((float)base, (float)(2 * i) / (float)D));
		*attn = (float)(r->attn_factor > 0 ? r->attn_factor : r->factor <= 1 ? 1.0 :
		    sqrt(1 + log(r->factor) / log((double)r->orig_ctx)));
	} else if (r->type == FTE_ROPE_LLAMA3) {
		float lo_wl = (float)(r->orig_ctx / r->low_freq_factor);
		float hi_wl = (float)(r->orig_ctx / r->high_freq_factor);
		float f = (float)r->factor;

		for (int i = 0; i < half; i++) {
			float wl = (1.0f / inv[i]) * (float)(2 * M_PI);
			float l3 = wl > lo_wl ? inv[i] / f : inv[i];
			float sm = ((1.0f / wl) * (float)r->orig_ctx - (float)r->low_freq_factor) /
			    (float)(r->high_freq_factor - r->low_freq_factor);

			if (!(wl < hi_wl) && !(wl > lo_wl))
				l3 = (1.0f - sm) * l3 / f + sm * l3;
			inv[i] = l3;
		}
	} else if (r->type == FTE_ROPE_YARN) {
		double lo = yarn_dim(r->beta_fast, D, base, r->orig_ctx);
		double hi = yarn_dim(r->beta_slow, D, base, r->orig_ctx);

		if (!r->no_truncate) {
			lo = floor(lo);
			hi = ceil(hi);
		}
		lo = lo > 0 ? lo : 0;
		hi = hi < D - 1 ? hi : D - 1;
		if (lo == hi)
			hi += 0.001;
		for (int i = 0; i < half; i++) {
			float pf = powf((float)base, (float)(2 * i) / (float)D);
			float ext = 1.0f / pf, itp = 1.0f / ((float)r->factor * pf);
			float ramp = ((float)i - (float)lo) / (float)(hi - lo);
			float ef;

			ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
			ef = 1.0f - ramp;
			inv[i] = itp * (1.0f - ef) + ext * ef;
		}
		*attn = (float)(r->attn_factor > 0 ? r->attn_factor :
		    r->factor <= 1 ? 1.0 : 0.1 * log(r->factor) + 1.0);
	}
}
