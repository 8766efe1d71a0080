/*
 * gguf_quant.c - ggml's block formats: dequantization of F32, F16, BF16,
 * Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, and quantization of all of them
 * computed as llama.cpp's reference quantizer (ggml-quants.c,
 * quantize_row_*_ref, no importance matrix) computes them, operation by
 * operation in float32, so the bytes are identical.  This file is built with
 * -ffp-contract=off: a fused multiply-add would round differently.
 *
 * Block layouts (ggml-common.h; "half" is an IEEE binary16 scale):
 *   Q4_0  32 values, 18 bytes: half d, qs[16] (low nibble value j, high j+16);
 *         x = d * (q - 8)
 *   Q5_0  32 values, 22 bytes: half d, qh[4] (bit j: 5th bit of value j),
 *         qs[16] as Q4_0; x = d * (q - 16)
 *   Q8_0  32 values, 34 bytes: half d, int8 qs[32]; x = d * q
 *   Q4_K 256 values, 144 bytes: half d, half dmin, scales[12] (eight 6-bit
 *         scales and mins, see scale_min_k4), qs[128]: each 64 values are 32
 *         bytes, low nibbles the first 32, high nibbles the next;
 *         x = d*sc * q - dmin*m per 32-value sub-block
 *   Q5_K 256 values, 176 bytes: as Q4_K plus qh[32] before qs (bit 2k and
 *         2k+1 of qh[l] are the 5th bits of sub-blocks 2k and 2k+1)
 *   Q6_K 256 values, 210 bytes: ql[128] (4 low bits), qh[64] (2 high bits),
 *         int8 scales[16] (one per 16 values), half d; x = d*sc * (q - 32)
 */
#include <math.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"

#define QK 32
#define QK_K 256
/* below this a group is all zero (ggml's GROUP_MAX_EPS) */
#define GROUP_MAX_EPS 1e-15f

static float h2f(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return fte__f16_to_f32(h); }
static void f2h(uint8_t *p, float f) { uint16_t h = fte__f32_to_f16(f); memcpy(p, &h, 2); }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* nearest_int rounds half to even, as ggml's magic-number rounding does for
 * the magnitudes quantization meets (|x| < 2^22). */
static int nearest_int(float x) { return (int)lrintf(x); }

/* ---- dequantization ---- */

static void
deq_f32(const uint8_t *b, float *y)
{
	memcpy(y, b, 4);
}

static void
deq_f16(const uint8_t *b, float *y)
{
	*y = h2f(b);
}

static void
deq_bf16(const uint8_t *b, float *y)
{
	uint16_t h;

	memcpy(&h, b, 2);
	*y = fte__bf16_to_f32(h);
}

static void
deq_q4_0(const uint8_t *b, float *y)
{
	float d = h2f(b);

	for (int j = 0; j < QK / 2; j++) {
		y[j] = (float)((b[2 + j] & 0xF) - 8) * d;
		y[j + QK / 2] = (float)((b[2 + j] >> 4) - 8) * d;
	}
}

static void
deq_q5_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	uint32_t qh;

	memcpy(&qh, b + 2, 4);
	for (int j = 0; j < QK / 2; j++) {
		int x0 = ((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
		int x1 = ((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
		y[j] = (float)x0 * d;
		y[j + QK / 2] = (float)x1 * d;
	}
}

static void
deq_q8_0(const uint8_t *b, float *y)
{
	float d = h2f(b);

	for (int j = 0; j < QK; j++)
		y[j] = (float)(int8_t)b[2 + j] * d;
}

/* scale_min_k4 unpacks the j-th 6-bit scale and min of a Q4_K/Q5_K block:
 * bytes 0-3 hold scales 0-3, bytes 4-7 mins 0-3 (their top two bits carry
 * the high bits of scales/mins 4-7), bytes 8-11 the low nibbles of 4-7. */
static void
scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

static void
deq_q4_k(const uint8_t *b, float *y)
{
	float d = h2f(b), dmin = h2f(b + 2);
	const uint8_t *sc = b + 4, *q = b + 16;

	for (int j = 0; j < QK_K; j += 64, q += 32) {
		int s0, m0, s1, m1;
		scale_min_k4(j / 32, sc, &s0, &m0);
		scale_min_k4(j / 32 + 1, sc, &s1, &m1);
		float d1 = d * (float)s0, dm1 = dmin * (float)m0;
		float d2 = d * (float)s1, dm2 = dmin * (float)m1;
		for (int l = 0; l < 32; l++)
			y[j + l] = d1 * (float)(q[l] & 0xF) - dm1;
		for (int l = 0; l < 32; l++)
			y[j + 32 + l] = d2 * (float)(q[l] >> 4) - dm2;
	}
}

static void
deq_q5_k(const uint8_t *b, float *y)
{
	float d = h2f(b), dmin = h2f(b + 2);
	const uint8_t *sc = b + 4, *qh = b + 16, *q = b + 48;
	int u = 0;

	for (int j = 0; j < QK_K; j += 64, q += 32, u += 2) {
		int s0, m0, s1, m1;
		scale_min_k4(j / 32, sc, &s0, &m0);
		scale_min_k4(j / 32 + 1, sc, &s1, &m1);
		float d1 = d * (float)s0, dm1 = dmin * (float)m0;
		float d2 = d * (float)s1, dm2 = dmin * (float)m1;
		for (int l = 0; l < 32; l++)
			y[j + l] = d1 * (float)((q[l] & 0xF) + (((qh[l] >> u) & 1) << 4)) - dm1;
		for (int l = 0; l < 32; l++)
			y[j + 32 + l] = d2 * (float)((q[l] >> 4) + (((qh[l] >> (u + 1)) & 1) << 4)) - dm2;
	}
}

static void
deq_q6_k(const uint8_t *b, float *y)
{
	const uint8_t *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	float d = h2f(b + 208);

	for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32, sc += 8)
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
			int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
			int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
			int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
			y[n + l] = d * (float)sc[is] * (float)q1;
			y[n + l + 32] = d * (float)sc[is + 2] * (float)q2;
			y[n + l + 64] = d * (float)sc[is + 4] * (float)q3;
			y[n + l + 96] = d * (float)sc[is + 6] * (float)q4;
		}
}

/* ---- quantization (the reference formulas) ---- */

static void
q_f32(const float *x, uint8_t *b)
{
	memcpy(b, x, 4);
}

static void
q_f16(const float *x, uint8_t *b)
{
	f2h(b, *x);
}

static void
q_bf16(const float *x, uint8_t *b)
{
	uint16_t h = fte__f32_to_bf16(*x);

	memcpy(b, &h, 2);
}

/* absmax_signed gives the value of largest magnitude (first one on ties). */
static float
absmax_signed(const float *x, int n, float *amax)
{
	float max = 0.0f;

	*amax = 0.0f;
	for (int j = 0; j < n; j++)
		if (*amax < fabsf(x[j])) {
			*amax = fabsf(x[j]);
			max = x[j];
		}
	return max;
}

static void
q_q4_0(const float *x, uint8_t *b)
{
	float amax, max = absmax_signed(x, QK, &amax);
	float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;

	f2h(b, d);
	for (int j = 0; j < QK / 2; j++) {
		/* the reference truncates x*id + 8.5 toward zero */
		int x0 = imin(15, (int8_t)(x[j] * id + 8.5f));
		int x1 = imin(15, (int8_t)(x[j + QK / 2] * id + 8.5f));
		b[2 + j] = (uint8_t)(x0 | (x1 << 4));
	}
}

static void
q_q5_0(const float *x, uint8_t *b)
{
	float amax, max = absmax_signed(x, QK, &amax);
	float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
	uint32_t qh = 0;

	f2h(b, d);
	for (int j = 0; j < QK / 2; j++) {
		int x0 = imin(31, (int8_t)(x[j] * id + 16.5f));
		int x1 = imin(31, (int8_t)(x[j + QK / 2] * id + 16.5f));
		b[6 + j] = (uint8_t)((x0 & 0xF) | ((x1 & 0xF) << 4));
		qh |= (uint32_t)((x0 >> 4) & 1) << j;
		qh |= (uint32_t)((x1 >> 4) & 1) << (j + 16);
	}
	memcpy(b + 2, &qh, 4);
}

static void
q_q8_0(const float *x, uint8_t *b)
{
	float amax;
	float d, id;

	absmax_signed(x, QK, &amax);
	d = amax / 127.0f;
	id = d != 0.0f ? 1.0f / d : 0.0f;
	f2h(b, d);
	for (int j = 0; j < QK; j++)
		b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* make_qkx2 fits x ~ scale*L - min (L in 0..nmax, min >= 0) minimizing the
 * weighted squared error: a first guess from the range, then nstep+1 trial
 * inverse scales (nmax + rmin + rdelta*is)/(max - min), each refit by least
 * squares; the best fit wins.  Returns scale, *the_min the subtracted min. */
static float
make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
    uint8_t *Laux, float rmin, float rdelta, int nstep)
{
	float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
	float iscale, scale, best = 0.0f;

	for (int i = 1; i < n; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		sum_w += w[i];
		sum_x += w[i] * x[i];
	}
	if (min > 0.0f)
		min = 0.0f;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0.0f;
	}
	iscale = (float)nmax / (max - min);
	scale = 1.0f / iscale;
	for (int i = 0; i < n; i++) {
		L[i] = (uint8_t)imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
		float diff = scale * (float)L[i] + min - x[i];
		best += w[i] * (diff * diff);
	}
	for (int is = 0; is <= nstep; is++) {
		float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f, D;
		iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
		for (int i = 0; i < n; i++) {
			int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
			Laux[i] = (uint8_t)l;
			sum_l += w[i] * (float)l;
			sum_l2 += w[i] * (float)l * (float)l;
			sum_xl += w[i] * (float)l * x[i];
		}
		D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0.0f) {
			float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			float err = 0.0f;
			if (this_min > 0.0f) {
				this_min = 0.0f;
				this_scale = sum_xl / sum_l2;
			}
			for (int i = 0; i < n; i++) {
				float diff = this_scale * (float)Laux[i] + this_min - x[i];
				err += w[i] * (diff * diff);
			}
			if (err < best) {
				memcpy(L, Laux, (size_t)n);
				best = err;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*the_min = -min;
	return scale;
}

/* q_kfit is the part Q4_K and Q5_K share (quantize_row_q4_K_ref and _q5_K_ref):
 * each 32-value sub-block fitted by make_qkx2 with weights av_x + |x| (nmax
 * 15 or 31, with their search parameters), the eight scales and mins as
 * 6-bit multiples of the block's F16 d and dmin at b, b + 2 (packed at
 * b + 4), then every value requantized to L against the stored scales. */
static void
q_kfit(const float *x, uint8_t *b, uint8_t *L, int nmax, float rmin, float rdelta, int nstep)
{
	uint8_t Laux[32], *sc = b + 4;
	float w[32], mins[8], scales[8], max_scale = 0.0f, max_min = 0.0f;
	float inv_scale, inv_min, d, dmin;

	for (int j = 0; j < 8; j++) {
		float sum_x2 = 0.0f, av_x;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		av_x = sqrtf(sum_x2 / 32.0f);
		for (int l = 0; l < 32; l++)
			w[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = make_qkx2(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux,
		    rmin, rdelta, nstep);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
	inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
	memset(sc, 0, 12);
	for (int j = 0; j < 8; j++) {
		int ls = imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
		int lm = imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
		if (j < 4) {
			sc[j] = (uint8_t)ls;
			sc[j + 4] = (uint8_t)lm;
		} else {
			sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
			sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
			sc[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	f2h(b, max_scale / 63.0f);
	f2h(b + 2, max_min / 63.0f);
	d = h2f(b);
	dmin = h2f(b + 2);
	/* requantize against the stored (rounded) scales; a sub-block whose
	 * scale rounds to zero keeps make_qkx2's levels */
	for (int j = 0; j < 8; j++) {
		int s, m;
		scale_min_k4(j, sc, &s, &m);
		float dj = d * (float)s, dm = dmin * (float)m;
		if (dj == 0.0f)
			continue;
		for (int i = 0; i < 32; i++)
			L[32 * j + i] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + i] + dm) / dj)));
	}
}

static void
q_q4_k(const float *x, uint8_t *b)
{
	uint8_t L[QK_K], *q = b + 16;

	q_kfit(x, b, L, 15, -1.0f, 0.1f, 20);
	for (int j = 0; j < QK_K; j += 64, q += 32)
		for (int l = 0; l < 32; l++)
			q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

/* Q5_K: the low four bits as Q4_K packs them (at b + 48), the fifth bit of
 * sub-blocks 2k and 2k + 1 in bits 2k and 2k + 1 of qh (b + 16). */
static void
q_q5_k(const float *x, uint8_t *b)
{
	uint8_t L[QK_K], *qh = b + 16, *q = b + 48;

	q_kfit(x, b, L, 31, -0.5f, 0.1f, 15);
	memset(qh, 0, 32);
	for (int j = 0, u = 0; j < QK_K; j += 64, q += 32, u += 2)
		for (int l = 0; l < 32; l++) {
			int l1 = L[j + l], l2 = L[j + l + 32];
			qh[l] |= (uint8_t)(((l1 >> 4) << u) | ((l2 >> 4) << (u + 1)));
			q[l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
		}
}

/* make_qx fits x ~ scale*(L - nmax), weights x^2 (ggml's rmse_type 1), trying
 * inverse scales -(nmax + 0.1*is)/max for is in -9..9; L is stored offset by
 * nmax.  Returns the scale (0 for an all-zero group). */
static float
make_qx(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0.0f, amax = 0.0f, iscale, sumlx = 0.0f, suml2 = 0.0f, scale, best;

	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	iscale = (float)-nmax / max;
	for (int i = 0; i < n; i++) {
		int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
		float w = x[i] * x[i];
		L[i] = (int8_t)(l + nmax);
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
	best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -((float)nmax + 0.1f * (float)is) / max;
		sumlx = suml2 = 0.0f;
		for (int i = 0; i < n; i++) {
			int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
			float w = x[i] * x[i];
			sumlx += w * x[i] * (float)l;
			suml2 += w * (float)l * (float)l;
		}
		if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++)
				L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

static void
q_q6_k(const float *x, uint8_t *b)
{
	int8_t L[QK_K], *sc = (int8_t *)(b + 192);
	uint8_t *ql = b, *qh = b + 128;
	float scales[16], max_scale = 0.0f, max_abs = 0.0f, iscale, d;

	for (int ib = 0; ib < 16; ib++) {
		scales[ib] = make_qx(16, 32, x + 16 * ib, L + 16 * ib);
		if (fabsf(scales[ib]) > max_abs) {
			max_abs = fabsf(scales[ib]);
			max_scale = scales[ib];
		}
	}
	if (max_abs < GROUP_MAX_EPS) {
		memset(b, 0, 210);
		return;
	}
	iscale = -128.0f / max_scale;
	f2h(b + 208, 1.0f / iscale);
	for (int ib = 0; ib < 16; ib++)
		sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
	d = h2f(b + 208);
	for (int j = 0; j < 16; j++) {
		float dj = d * (float)sc[j];
		if (dj == 0.0f)
			continue;
		for (int i = 0; i < 16; i++)
			L[16 * j + i] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + i] / dj))) + 32);
	}
	for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
		for (int l = 0; l < 32; l++) {
			int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
			ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
			ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
			qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
		}
}

static const struct ggml_type {
	int id;
	const char *name;
	int block;                        /* values per block */
	int bytes;                        /* bytes per block */
	void (*deq)(const uint8_t *, float *);
	void (*q)(const float *, uint8_t *);   /* NULL: read only */
} types[] = {
	{FTE_GGML_F32, "F32", 1, 4, deq_f32, q_f32},
	{FTE_GGML_F16, "F16", 1, 2, deq_f16, q_f16},
	{FTE_GGML_BF16, "BF16", 1, 2, deq_bf16, q_bf16},
	{FTE_GGML_Q4_0, "Q4_0", QK, 18, deq_q4_0, q_q4_0},
	{FTE_GGML_Q5_0, "Q5_0", QK, 22, deq_q5_0, q_q5_0},
	{FTE_GGML_Q8_0, "Q8_0", QK, 34, deq_q8_0, q_q8_0},
	{FTE_GGML_Q4_K, "Q4_K", QK_K, 144, deq_q4_k, q_q4_k},
	{FTE_GGML_Q5_K, "Q5_K", QK_K, 176, deq_q5_k, q_q5_k},
	{FTE_GGML_Q6_K, "Q6_K", QK_K, 210, deq_q6_k, q_q6_k},
};

static const struct ggml_type *
type_find(int id)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].id == id)
			return &types[i];
	return NULL;
}

/* ggml's other types (ggml.h), named in refusals; 4, 5 and 31-33 were
 * removed from ggml. */
static const char *const other_names[] = {
	[3] = "Q4_1", [7] = "Q5_1", [9] = "Q8_1", [10] = "Q2_K", [11] = "Q3_K", [15] = "Q8_K",
	[16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL",
	[21] = "IQ3_S", [22] = "IQ2_S", [23] = "IQ4_XS", [24] = "I8", [25] = "I16", [26] = "I32",
	[27] = "I64", [28] = "F64", [29] = "IQ1_M", [34] = "TQ1_0", [35] = "TQ2_0", [39] = "MXFP4",
};

const char *
fte__ggml_type_name(int type)
{
	const struct ggml_type *t = type_find(type);

	if (t != NULL)
		return t->name;
	if (type >= 0 && (size_t)type < sizeof(other_names) / sizeof(other_names[0]))
		return other_names[type];
	return NULL;
}

int
fte__ggml_block(int type, int *bytes)
{
	const struct ggml_type *t = type_find(type);

	if (t == NULL)
		return 0;
	*bytes = t->bytes;
	return t->block;
}

int
fte__ggml_dequantize(int type, const void *src, float *dst, size_t n)
{
	const struct ggml_type *t = type_find(type);
	const uint8_t *p = src;

	if (t == NULL)
		return fte_error_set(FTE_ENOTSUP, "ggml type %d not supported", type);
	if (n % (size_t)t->block != 0)
		return fte_error_set(FTE_EINVAL, "%s: %zu values are not whole blocks of %d",
		    t->name, n, t->block);
	for (size_t i = 0; i < n; i += (size_t)t->block, p += t->bytes)
		t->deq(p, dst + i);
	return FTE_OK;
}

int
fte__ggml_quantize(int type, const float *src, void *dst, size_t n)
{
	const struct ggml_type *t = type_find(type);
	uint8_t *p = dst;

	if (t == NULL || t->q == NULL)
		return fte_error_set(FTE_ENOTSUP, "quantizing to ggml type %d is not supported", type);
	if (n % (size_t)t->block != 0)
		return fte_error_set(FTE_EINVAL, "%s: %zu values are not whole blocks of %d",
		    t->name, n, t->block);
	for (size_t i = 0; i < n; i += (size_t)t->block, p += t->bytes)
		t->q(src + i, p);
	return FTE_OK;
}
