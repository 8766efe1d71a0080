/*
 * test_kernels.c - every kernel against a double-precision reference.
 *
 * For each op: (a) the float forward against a straightforward double
 * reference written here; (b) the float backward against central finite
 * differences of the double reference, for the scalar loss
 * L = sum(out * wout) with random wout (wout is the dout given to backward).
 *
 * Errors are relative to the largest magnitude of the reference tensor,
 * max|got - want| / max|want|, and printed per tensor.  Gradient buffers
 * start at GRAD_BASE and every backward runs twice, so each check also
 * proves that backward accumulates (+=) rather than overwrites.
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "ft_test.h"
#include "kernels/kernels.h"

#define TOL_FWD 1e-5
#define TOL_GRAD 1e-5
#define GRAD_BASE 0.25f

/* ---- helpers ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* urand returns a uniform double in [-1, 1) (xorshift64*). */
static double
urand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (double)((rng * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-52 - 1.0;
}

static void *
xmalloc(size_t n)
{
	void *p = calloc(n ? n : 1, 1);

	if (p == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static float *
fvec(size_t n, double scale)
{
	float *p = xmalloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		p[i] = (float)(urand() * scale);
	return p;
}

static double *
dvec(const float *f, size_t n)
{
	double *p = xmalloc(n * sizeof(double));

	for (size_t i = 0; i < n; i++)
		p[i] = f[i];
	return p;
}

/* grad_new returns a gradient buffer holding GRAD_BASE everywhere. */
static float *
grad_new(size_t n)
{
	float *p = xmalloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		p[i] = GRAD_BASE;
	return p;
}

/* grad_once undoes GRAD_BASE and the second backward call. */
static double *
grad_once(const float *g, size_t n)
{
	double *p = xmalloc(n * sizeof(double));

	for (size_t i = 0; i < n; i++)
		p[i] = ((double)g[i] - GRAD_BASE) / 2.0;
	return p;
}

static double
err_rel(const double *got, const double *want, size_t n)
{
	double e = 0.0, m = 0.0;

	for (size_t i = 0; i < n; i++) {
		if (!(fabs(got[i] - want[i]) <= e)) /* also catches NaN */
			e = isnan(got[i]) ? INFINITY : fabs(got[i] - want[i]);
		m = fmax(m, fabs(want[i]));
	}
	return e / (m > 0.0 ? m : 1.0);
}

static void
report(const char *op, const char *what, double err, double tol)
{
	printf("%-24s %-10s max rel err %.2e\n", op, what, err);
	CHECK(err <= tol);
}

/* check_fwd compares a float output with its double reference. */
static void
check_fwd(const char *op, const char *what, const float *got,
    const double *want, size_t n)
{
	double *g = dvec(got, n);

	report(op, what, err_rel(g, want, n), TOL_FWD);
	free(g);
}

/* ---- references, in double ---- */

enum op {
	OP_MATMUL, OP_EMBEDDING, OP_RMSNORM, OP_LAYERNORM, OP_ROPE,
	OP_ATTENTION, OP_SWIGLU, OP_GELU, OP_CROSSENTROPY, OP_GEGLU, OP_SOFTCAP,
};

/* One op's inputs (in double) and sizes; ref_run computes its output. */
struct ref {
	enum op op;
	int N, C, OC, V, B, T, H, K, D, nh, style;
	double eps, attn;
	double off;        /* RMSNorm weight offset */
	attn_opts ao;      /* attention scale, cap, window */
	double cap;        /* softcap */
	const float *freq; /* RoPE inv_freq */
	const int *ints;   /* tokens, positions or targets */
	const int *seg;
	double *in[4];     /* the op's inputs, in kernels.h order */
	const double *wout; /* L = sum(out * wout) */
	size_t nout;
	double *out;
	double *aux;       /* attention probabilities, softmax */
};

static void
ref_matmul(double *out, const double *inp, const double *w,
    const double *bias, int N, int C, int OC)
{
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = bias != NULL ? bias[o] : 0.0;
			for (int c = 0; c < C; c++)
				s += inp[n * C + c] * w[o * C + c];
			out[n * OC + o] = s;
		}
}

static void
ref_norm(double *out, const double *inp, const double *w, const double *b,
    int N, int C, double eps, double off, int layer, double *rstd, double *mean)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + n * C;
		double m = 0.0, v = 0.0;
		if (layer) {
			for (int c = 0; c < C; c++)
				m += x[c];
			m /= C;
		}
		for (int c = 0; c < C; c++)
			v += (x[c] - m) * (x[c] - m);
		double r = 1.0 / sqrt(v / C + eps);
		for (int c = 0; c < C; c++)
			out[n * C + c] = (x[c] - m) * r * (off + w[c]) +
			    (b != NULL ? b[c] : 0.0);
		if (rstd != NULL)
			rstd[n] = r;
		if (mean != NULL)
			mean[n] = m;
	}
}

static void
ref_rope(double *x, const int *pos, int N, int nh, int D, int R, const float *freq,
    double attn, int style)
{
	for (int n = 0; n < N; n++)
		for (int h = 0; h < nh; h++)
			for (int i = 0; i < R / 2; i++) {
				double a = pos[n] * (double)freq[i];
				double *p = x + (n * nh + h) * D;
				int i0 = style == FTE_ROPE_HALF ? i : 2 * i;
				int i1 = style == FTE_ROPE_HALF ? i + R / 2 :
				    2 * i + 1;
				double x0 = p[i0], x1 = p[i1];
				p[i0] = attn * (x0 * cos(a) - x1 * sin(a));
				p[i1] = attn * (x0 * sin(a) + x1 * cos(a));
			}
}

static void
ref_attention(double *out, double *att, const double *q, const double *k,
    const double *v, const int *seg, int B, int T, int H, int K, int D,
    const attn_opts *o)
{
	double scale = o->scale > 0 ? o->scale : 1.0 / sqrt(D);

	/* row r = (b * H + h) * T + i: query i of head h in batch b */
	for (int r = 0; r < B * H * T; r++) {
		int i = r % T, h = r / T % H, b = r / (T * H), g = h / (H / K);
		const double *qi = q + (b * T + i) * H * D + h * D;
		const double *kb = k + b * T * K * D + g * D;
		const double *vb = v + b * T * K * D + g * D;
		double *p = att + (size_t)r * T;
		double max = -INFINITY, sum = 0.0;

		for (int j = 0; j < T; j++) {
			int ok = j <= i && (seg == NULL ||
			    seg[b * T + j] == seg[b * T + i]) &&
			    (o->window == 0 || j > i - o->window);
			double s = 0.0;
			for (int d = 0; d < D; d++)
				s += qi[d] * kb[j * K * D + d];
			s *= scale;
			if (o->softcap > 0)
				s = o->softcap * tanh(s / o->softcap);
			p[j] = ok ? s : -INFINITY;
			max = fmax(max, p[j]);
		}
		for (int j = 0; j < T; j++)
			sum += (p[j] = exp(p[j] - max));
		for (int j = 0; j < T; j++)
			p[j] /= sum;
		for (int d = 0; d < D; d++) {
			double s = 0.0;
			for (int j = 0; j < T; j++)
				s += p[j] * vb[j * K * D + d];
			out[(b * T + i) * H * D + h * D + d] = s;
		}
	}
}

static double
ref_silu(double x)
{
	return x / (1.0 + exp(-x));
}

static double
ref_gelu(double x)
{
	return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) *
	    (x + 0.044715 * x * x * x)));
}

static void
ref_crossentropy(double *losses, double *probs, const double *logits,
    const int *targets, int N, int V)
{
	for (int n = 0; n < N; n++) {
		const double *x = logits + n * V;
		double max = x[0], sum = 0.0;
		for (int i = 1; i < V; i++)
			max = fmax(max, x[i]);
		for (int i = 0; i < V; i++)
			sum += exp(x[i] - max);
		for (int i = 0; i < V; i++)
			probs[n * V + i] = exp(x[i] - max) / sum;
		losses[n] = targets[n] < 0 ? 0.0 :
		    log(sum) - (x[targets[n]] - max);
	}
}

static void
ref_run(struct ref *r)
{
	size_t i;

	switch (r->op) {
	case OP_MATMUL:
		ref_matmul(r->out, r->in[0], r->in[1], r->in[2], r->N, r->C,
		    r->OC);
		break;
	case OP_EMBEDDING:
		for (int n = 0; n < r->N; n++)
			memcpy(r->out + n * r->C, r->in[0] + r->ints[n] * r->C,
			    r->C * sizeof(double));
		break;
	case OP_RMSNORM:
	case OP_LAYERNORM:
		ref_norm(r->out, r->in[0], r->in[1], r->in[2], r->N, r->C,
		    r->eps, r->off, r->op == OP_LAYERNORM, NULL, NULL);
		break;
	case OP_ROPE:
		memcpy(r->out, r->in[0], r->nout * sizeof(double));
		ref_rope(r->out, r->ints, r->N, r->nh, r->D, r->C, r->freq, r->attn,
		    r->style);
		break;
	case OP_ATTENTION:
		ref_attention(r->out, r->aux, r->in[0], r->in[1], r->in[2],
		    r->seg, r->B, r->T, r->H, r->K, r->D, &r->ao);
		break;
	case OP_GEGLU:
		for (i = 0; i < r->nout; i++)
			r->out[i] = ref_gelu(r->in[0][i]) * r->in[1][i];
		break;
	case OP_SOFTCAP:
		for (i = 0; i < r->nout; i++)
			r->out[i] = r->cap * tanh(r->in[0][i] / r->cap);
		break;
	case OP_SWIGLU:
		for (i = 0; i < r->nout; i++)
			r->out[i] = ref_silu(r->in[0][i]) * r->in[1][i];
		break;
	case OP_GELU:
		for (i = 0; i < r->nout; i++)
			r->out[i] = ref_gelu(r->in[0][i]);
		break;
	case OP_CROSSENTROPY:
		ref_crossentropy(r->out, r->aux, r->in[0], r->ints, r->N,
		    r->V);
		break;
	}
}

static double
ref_loss(struct ref *r)
{
	double l = 0.0;

	ref_run(r);
	for (size_t i = 0; i < r->nout; i++)
		l += r->out[i] * r->wout[i];
	return l;
}

/* check_grad compares an accumulated gradient (two backward calls from
 * GRAD_BASE) with central differences of the loss in input in[which]. */
static void
check_grad(const char *op, const char *what, const float *g, struct ref *r,
    int which, size_t n)
{
	double *x = r->in[which];
	double *num = xmalloc(n * sizeof(double));
	double *got = grad_once(g, n);

	for (size_t i = 0; i < n; i++) {
		double x0 = x[i], h = 1e-5 * fmax(1.0, fabs(x0));
		x[i] = x0 + h;
		double lp = ref_loss(r);
		x[i] = x0 - h;
		double lm = ref_loss(r);
		x[i] = x0;
		num[i] = (lp - lm) / (2.0 * h);
	}
	report(op, what, err_rel(got, num, n), TOL_GRAD);
	free(num);
	free(got);
}

/* ---- tests ---- */

static void
test_matmul(int with_bias)
{
	enum { N = 5, C = 8, OC = 6 };
	const char *name = with_bias ? "matmul+bias" : "matmul";
	float *inp = fvec(N * C, 1), *w = fvec(OC * C, 1);
	float *bias = with_bias ? fvec(OC, 1) : NULL;
	float *wout = fvec(N * OC, 1), *out = fvec(N * OC, 1);
	float *dinp = grad_new(N * C), *dw = grad_new(OC * C);
	float *db = grad_new(OC);
	double *dw_out = dvec(wout, N * OC);
	struct ref r = { .op = OP_MATMUL, .N = N, .C = C, .OC = OC,
	    .in = { dvec(inp, N * C), dvec(w, OC * C),
	    bias ? dvec(bias, OC) : NULL },
	    .wout = dw_out, .nout = N * OC, .out = xmalloc(N * OC * 8) };

	matmul_forward(out, inp, w, bias, N, C, OC);
	ref_run(&r);
	check_fwd(name, "out", out, r.out, N * OC);
	for (int rep = 0; rep < 2; rep++)
		matmul_backward(dinp, dw, with_bias ? db : NULL, wout, inp, w,
		    N, C, OC);
	check_grad(name, "dinp", dinp, &r, 0, N * C);
	check_grad(name, "dweight", dw, &r, 1, OC * C);
	if (with_bias)
		check_grad(name, "dbias", db, &r, 2, OC);

	/* Each NULL gradient is skipped and the others are unchanged. */
	float *dinp2 = grad_new(N * C), *dw2 = grad_new(OC * C);
	float *db2 = grad_new(OC);
	for (int rep = 0; rep < 2; rep++) {
		matmul_backward(dinp2, NULL, NULL, wout, inp, w, N, C, OC);
		matmul_backward(NULL, dw2, NULL, wout, inp, w, N, C, OC);
		if (with_bias)
			matmul_backward(NULL, NULL, db2, wout, inp, w, N, C,
			    OC);
	}
	CHECK(memcmp(dinp2, dinp, N * C * sizeof(float)) == 0);
	CHECK(memcmp(dw2, dw, OC * C * sizeof(float)) == 0);
	CHECK(memcmp(db2, db, OC * sizeof(float)) == 0);
	matmul_backward(NULL, NULL, NULL, wout, inp, w, N, C, OC);

	for (int i = 0; i < 3; i++)
		free(r.in[i]);
	free(r.out); free(dw_out); free(inp); free(w); free(bias); free(wout);
	free(out); free(dinp); free(dw); free(db); free(dinp2); free(dw2);
	free(db2);
}

static void
test_embedding(void)
{
	enum { N = 7, C = 8, V = 11 };
	const int tokens[N] = { 3, 0, 10, 3, 7, 3, 0 };
	float *wte = fvec(V * C, 1), *wout = fvec(N * C, 1);
	float *out = fvec(N * C, 1), *dwte = grad_new(V * C);
	double *dw_out = dvec(wout, N * C);
	struct ref r = { .op = OP_EMBEDDING, .N = N, .C = C, .ints = tokens,
	    .in = { dvec(wte, V * C) }, .wout = dw_out, .nout = N * C,
	    .out = xmalloc(N * C * 8) };

	embedding_forward(out, tokens, wte, N, C);
	ref_run(&r);
	check_fwd("embedding", "out", out, r.out, N * C);
	embedding_backward(dwte, wout, tokens, N, C);
	embedding_backward(dwte, wout, tokens, N, C);
	check_grad("embedding", "dwte", dwte, &r, 0, V * C);
	free(r.in[0]); free(r.out); free(dw_out); free(wte); free(wout);
	free(out); free(dwte);
}

static void
test_norm(int layer, float off)
{
	enum { N = 4, C = 16 };
	const char *name = layer ? "layernorm" : off != 0 ? "rmsnorm(1+w)" : "rmsnorm";
	const float eps = 1e-5f;
	float *inp = fvec(N * C, 2), *w = fvec(C, 1), *b = fvec(C, 1);
	float *wout = fvec(N * C, 1), *out = fvec(N * C, 1);
	float mean[N], rstd[N];
	double rmean[N], rrstd[N];
	float *dinp = grad_new(N * C), *dw = grad_new(C), *db = grad_new(C);
	double *dw_out = dvec(wout, N * C);
	struct ref r = { .op = layer ? OP_LAYERNORM : OP_RMSNORM, .N = N,
	    .C = C, .eps = eps, .off = off, .in = { dvec(inp, N * C), dvec(w, C),
	    layer ? dvec(b, C) : NULL }, .wout = dw_out, .nout = N * C,
	    .out = xmalloc(N * C * 8) };

	/* A shifted row checks that LayerNorm centres before squaring. */
	for (int c = 0; c < C; c++)
		inp[c] += 3.0f;
	for (int c = 0; c < C; c++)
		r.in[0][c] = inp[c];
	if (layer)
		layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
	else
		rmsnorm_forward(out, rstd, inp, w, off, N, C, eps);
	ref_norm(r.out, r.in[0], r.in[1], r.in[2], N, C, eps, off, layer, rrstd,
	    rmean);
	check_fwd(name, "out", out, r.out, N * C);
	check_fwd(name, "rstd", rstd, rrstd, N);
	if (layer)
		check_fwd(name, "mean", mean, rmean, N);
	for (int rep = 0; rep < 2; rep++) {
		if (layer)
			layernorm_backward(dinp, dw, db, wout, inp, w, mean,
			    rstd, N, C);
		else
			rmsnorm_backward(dinp, dw, wout, inp, w, off, rstd, N, C);
	}
	check_grad(name, "dinp", dinp, &r, 0, N * C);
	check_grad(name, "dweight", dw, &r, 1, C);
	if (layer)
		check_grad(name, "dbias", db, &r, 2, C);

	/* NULL gradients are skipped. */
	float *dinp2 = grad_new(N * C);
	for (int rep = 0; rep < 2; rep++) {
		if (layer)
			layernorm_backward(dinp2, NULL, NULL, wout, inp, w,
			    mean, rstd, N, C);
		else
			rmsnorm_backward(dinp2, NULL, wout, inp, w, off, rstd,
			    N, C);
	}
	CHECK(memcmp(dinp2, dinp, N * C * sizeof(float)) == 0);

	for (int i = 0; i < 3; i++)
		free(r.in[i]);
	free(r.out); free(dw_out); free(inp); free(w); free(b); free(wout);
	free(out); free(dinp); free(dw); free(db); free(dinp2);
}

/* test_rope checks the rotation (scaled by attn, as YaRN scales cos and
 * sin) of the first R of each head's D values and its backward against the
 * double reference on the frequencies of theta 10000. */
static void
test_rope(int style, float attn, int R)
{
	enum { N = 5, NH = 3, D = 8 };
	char name[64];
	const int pos[N] = { 0, 3, 1, 7, 250 };
	size_t n = N * NH * D;
	float *x = fvec(n, 1), *wout = fvec(n, 1), freq[D / 2];
	double *dw_out = dvec(wout, n);
	struct ref r = { .op = OP_ROPE, .N = N, .nh = NH, .D = D, .C = R, .freq = freq,
	    .attn = attn, .style = style, .ints = pos, .in = { dvec(x, n) },
	    .wout = dw_out, .nout = n, .out = xmalloc(n * 8) };

	snprintf(name, sizeof(name), "rope(%s,attn %g,%d of %d)", style == FTE_ROPE_HALF ?
	    "half" : "interleaved", (double)attn, R, D);
	for (int i = 0; i < R / 2; i++)
		freq[i] = (float)pow(10000.0, -2.0 * i / R);
	rope_forward(x, pos, N, NH, D, R, freq, attn, style);
	ref_run(&r);
	check_fwd(name, "out", x, r.out, n);
	/* Position 0 is the identity, times attn. */
	int same = 1;
	for (int i = 0; i < NH * D; i++)
		same &= x[i] == (float)r.in[0][i] * (i % D < R ? attn : 1.0f);
	CHECK(same);
	/* Backward transforms dx in place (it is not an accumulation);
	 * check_grad expects two accumulations from GRAD_BASE. */
	float *dx = xmalloc(n * sizeof(float));
	memcpy(dx, wout, n * sizeof(float));
	rope_backward(dx, pos, N, NH, D, R, freq, attn, style);
	for (size_t i = 0; i < n; i++)
		dx[i] = GRAD_BASE + 2.0f * dx[i];
	check_grad(name, "dx", dx, &r, 0, n);
	free(r.in[0]); free(r.out); free(dw_out); free(x); free(wout);
	free(dx);
}

/* test_rope_freq compares each scaling's frequency table with the formulas
 * of transformers' modeling_rope_utils (and Meta's llama3 apply_scaling)
 * evaluated in double by numpy, head_dim 16. */
static void
test_rope_freq(void)
{
	static const struct {
		const char *name;
		float theta;
		fte_rope_scaling r;
		double want[8], attn;
	} cases[] = {
		{ "default", 10000, { 0 }, { 1, 0.31622776601683794, 0.10000000000000001,
		    0.031622776601683791, 0.01, 0.0031622776601683794, 0.001,
		    0.00031622776601683794 }, 1 },
		{ "linear", 10000, { .type = FTE_ROPE_LINEAR, .factor = 4 }, { 0.25,
		    0.079056941504209485, 0.025000000000000001, 0.0079056941504209478,
		    0.0025000000000000001, 0.00079056941504209485, 0.00025000000000000001,
		    7.9056941504209485e-05 }, 1 },
		/* within the context, dynamic NTK is the default rotation */
		{ "dynamic", 10000, { .type = FTE_ROPE_DYNAMIC, .factor = 2 }, { 1,
		    0.31622776601683794, 0.10000000000000001, 0.031622776601683791, 0.01,
		    0.0031622776601683794, 0.001, 0.00031622776601683794 }, 1 },
		{ "llama3", 500000, { .type = FTE_ROPE_LLAMA3, .factor = 8, .low_freq_factor = 1,
		    .high_freq_factor = 4, .orig_ctx = 8192 }, { 1, 0.19392274474868576,
		    0.037606030930863933, 0.0072926647372171093, 0.00052484616099295468,
		    3.4281021959525912e-05, 6.6478698711812354e-06, 1.2891731721515574e-06 }, 1 },
		{ "yarn", 10000, { .type = FTE_ROPE_YARN, .factor = 4, .orig_ctx = 4096,
		    .beta_fast = 32, .beta_slow = 1 }, { 1, 0.31622776601683794,
		    0.10000000000000001, 0.02569350598886808, 0.0062500000000000003,
		    0.001383496476323666, 0.00025000000000000001, 7.9056941504209485e-05 },
		    1.1386294361119891 },
		{ "yarn(truncate false)", 10000, { .type = FTE_ROPE_YARN, .factor = 4,
		    .orig_ctx = 4096, .beta_fast = 32, .beta_slow = 1, .no_truncate = 1 }, { 1,
		    0.31622776601683794, 0.10000000000000001, 0.028613608811988892,
		    0.0065569715211294347, 0.0012856320307266882, 0.00025000000000000001,
		    7.9056941504209485e-05 }, 1.1386294361119891 },
		{ "yarn(attention_factor)", 10000, { .type = FTE_ROPE_YARN, .factor = 4,
		    .orig_ctx = 4096, .beta_fast = 32, .beta_slow = 1, .attn_factor = 0.75 }, { 1,
		    0.31622776601683794, 0.10000000000000001, 0.02569350598886808,
		    0.0062500000000000003, 0.001383496476323666, 0.00025000000000000001,
		    7.9056941504209485e-05 }, 0.75 },
		/* short factors; attention factor sqrt(1 + ln(factor) / ln(orig)) */
		{ "longrope", 10000, { .type = FTE_ROPE_LONGROPE, .factor = 32, .orig_ctx = 4096,
		    .short_factor = { 1, 1.5f, 2, 2.5f, 3, 3.5f, 4, 4.5f } }, { 1.0,
		    0.21081851067789195, 0.05, 0.01264911064067352, 0.0033333333333333335,
		    0.0009035079029052511, 0.00025, 7.027283689263064e-05 }, 1.1902380714238083 },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		fte_config c = { .arch = FTE_ARCH_LLAMA, .head_dim = 16,
		    .rope_theta = cases[k].theta, .rope = cases[k].r };
		float inv[8], attn = 0;
		double worst = 0;

		rope_inv_freq(&c, inv, &attn);
		for (int i = 0; i < 8; i++) {
			double e = fabs(inv[i] - cases[k].want[i]) / cases[k].want[i];
			worst = e > worst ? e : worst;
		}
		printf("rope_inv_freq %-22s worst rel err %.3g, attn %g\n", cases[k].name, worst,
		    (double)attn);
		/* float32 rounding of a few operations */
		CHECK(worst < 1e-6);
		CHECK(attn == (float)cases[k].attn);
	}
}

static void
test_attention(int B, int T, int H, int K, int D, const int *seg,
    const attn_opts *o)
{
	char name[96];
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * K * D;
	size_t na = (size_t)B * H * T * T;
	float *q = fvec(nq, 3), *k = fvec(nk, 3), *v = fvec(nk, 1);
	float *wout = fvec(nq, 1), *out = fvec(nq, 1), *att = fvec(na, 1);
	float *scratch = fvec(2 * na, 1);
	float *dq = grad_new(nq), *dk = grad_new(nk), *dv = grad_new(nk);
	double *dw_out = dvec(wout, nq);
	struct ref r = { .op = OP_ATTENTION, .B = B, .T = T, .H = H, .K = K,
	    .D = D, .seg = seg, .in = { dvec(q, nq), dvec(k, nk),
	    dvec(v, nk) }, .wout = dw_out, .nout = nq,
	    .out = xmalloc(nq * 8), .aux = xmalloc(na * 8), .ao = *o };

	snprintf(name, sizeof(name), "attention(T%d,H%d,K%d%s scale %g cap %g window %d)", T, H,
	    K, seg ? ",seg" : "", (double)o->scale, (double)o->softcap, o->window);
	attention_forward(out, att, q, k, v, seg, B, T, H, K, D, o);
	ref_run(&r);
	check_fwd(name, "out", out, r.out, nq);
	check_fwd(name, "att", att, r.aux, na);
	for (int rep = 0; rep < 2; rep++)
		attention_backward(dq, dk, dv, scratch, wout, q, k, v, att,
		    B, T, H, K, D, o);
	check_grad(name, "dq", dq, &r, 0, nq);
	check_grad(name, "dk", dk, &r, 1, nk);
	check_grad(name, "dv", dv, &r, 2, nk);

	/* NULL gradients are skipped and the others are unchanged. */
	float *dv2 = grad_new(nk), *dq2 = grad_new(nq);
	for (int rep = 0; rep < 2; rep++) {
		attention_backward(NULL, NULL, dv2, scratch, wout, q, k, v,
		    att, B, T, H, K, D, o);
		attention_backward(dq2, NULL, NULL, scratch, wout, q, k, v,
		    att, B, T, H, K, D, o);
	}
	CHECK(memcmp(dv2, dv, nk * sizeof(float)) == 0);
	CHECK(memcmp(dq2, dq, nq * sizeof(float)) == 0);

	/* The cached kernel gives the same rows: every row of batch 0 at once
	 * (p0 = 0), then the last rows against a cache of the earlier ones. */
	if (seg == NULL) {
		float *oc = fvec(nq, 1), *sc = fvec((size_t)H * T * T, 1);
		size_t ld = (size_t)H * D, half = (size_t)T / 2;
		double e = 0;

		attention_cache_forward(oc, sc, q, k, v, 0, T, H, K, D, o);
		attention_cache_forward(oc + half * ld, sc, q + half * ld, k, v, (int)half,
		    T - (int)half, H, K, D, o);
		for (size_t i = 0; i < (size_t)T * ld; i++)
			e = fmax(e, fabs(oc[i] - out[i]));
		printf("  %-40s cached rows max abs diff %.3g\n", name, e);
		CHECK(e < 1e-5);
		free(oc);
		free(sc);
	}

	for (int i = 0; i < 3; i++)
		free(r.in[i]);
	free(r.out); free(r.aux); free(dw_out); free(q); free(k); free(v);
	free(wout); free(out); free(att); free(scratch); free(dq); free(dk);
	free(dv); free(dv2); free(dq2);
}

/* test_activation: 0 swiglu, 1 gelu, 2 geglu. */
static void
test_activation(int gelu)
{
	enum { N = 37 };
	const char *name = gelu == 1 ? "gelu" : gelu == 2 ? "geglu" : "swiglu";
	float *a = fvec(N, 4), *b = fvec(N, 2), *wout = fvec(N, 1);
	float *out = fvec(N, 1), *da = grad_new(N), *db = grad_new(N);
	double *dw_out = dvec(wout, N);
	struct ref r = { .op = gelu == 1 ? OP_GELU : gelu == 2 ? OP_GEGLU : OP_SWIGLU,
	    .in = { dvec(a, N), dvec(b, N) }, .wout = dw_out, .nout = N,
	    .out = xmalloc(N * 8) };

	if (gelu == 1)
		gelu_forward(out, a, N);
	else if (gelu == 2)
		geglu_forward(out, a, b, N);
	else
		swiglu_forward(out, a, b, N);
	ref_run(&r);
	check_fwd(name, "out", out, r.out, N);
	for (int rep = 0; rep < 2; rep++) {
		if (gelu == 1)
			gelu_backward(da, wout, a, N);
		else if (gelu == 2)
			geglu_backward(da, db, wout, a, b, N);
		else
			swiglu_backward(da, db, wout, a, b, N);
	}
	check_grad(name, gelu == 1 ? "dinp" : "dgate", da, &r, 0, N);
	if (gelu != 1) {
		check_grad(name, "dup", db, &r, 1, N);
		float *db2 = grad_new(N);
		for (int rep = 0; rep < 2; rep++)
			if (gelu == 2)
				geglu_backward(NULL, db2, wout, a, b, N);
			else
				swiglu_backward(NULL, db2, wout, a, b, N);
		CHECK(memcmp(db2, db, N * sizeof(float)) == 0);
		free(db2);
	}
	free(r.in[0]); free(r.in[1]); free(r.out); free(dw_out); free(a);
	free(b); free(wout); free(out); free(da); free(db);
}

/* test_softcap: forward against the reference; backward (in place, not
 * accumulating) turned into the accumulated form check_grad reads. */
static void
test_softcap(void)
{
	enum { N = 41 };
	const float cap = 3.0f;
	float *x = fvec(N, 8), *y = fvec(N, 1), *wout = fvec(N, 1);
	float *d = xmalloc(N * sizeof(float)), *g = grad_new(N);
	double *dw_out = dvec(wout, N);
	struct ref r = { .op = OP_SOFTCAP, .cap = cap, .in = { dvec(x, N) },
	    .wout = dw_out, .nout = N, .out = xmalloc(N * 8) };

	softcap_forward(y, x, N, cap);
	ref_run(&r);
	check_fwd("softcap", "out", y, r.out, N);
	memcpy(d, wout, N * sizeof(float));
	softcap_backward(d, y, N, cap);
	for (int i = 0; i < N; i++)
		g[i] += 2.0f * d[i];
	check_grad("softcap", "dinp", g, &r, 0, N);
	free(r.in[0]); free(r.out); free(dw_out); free(x); free(y); free(wout);
	free(d); free(g);
}

static void
test_crossentropy(const int *targets, const char *name)
{
	enum { N = 6, V = 11 };
	float *logits = fvec(N * V, 4), *probs = fvec(N * V, 1);
	float losses[N], dloss[N];
	float *dlogits = grad_new(N * V);
	double dl[N];
	int valid = 0;

	for (int n = 0; n < N; n++)
		valid += targets[n] >= 0;
	for (int n = 0; n < N; n++)
		dl[n] = dloss[n] = targets[n] >= 0 ? 1.0f / valid : 0.0f;
	/* A huge logit checks the max shift: no overflow, no NaN. */
	logits[5] = 80.0f;
	struct ref r = { .op = OP_CROSSENTROPY, .N = N, .V = V,
	    .ints = targets, .in = { dvec(logits, N * V) }, .wout = dl,
	    .nout = N, .out = xmalloc(N * 8), .aux = xmalloc(N * V * 8) };

	crossentropy_forward(losses, probs, logits, targets, N, V);
	ref_run(&r);
	check_fwd(name, "losses", losses, r.out, N);
	check_fwd(name, "probs", probs, r.aux, N * V);
	for (int rep = 0; rep < 2; rep++)
		crossentropy_backward(dlogits, probs, targets, dloss, N, V);
	check_grad(name, "dlogits", dlogits, &r, 0, N * V);
	for (int n = 0; n < N; n++) {
		CHECK(isfinite(losses[n]));
		if (targets[n] < 0) {
			CHECK(losses[n] == 0.0f);
			for (int i = 0; i < V; i++)
				CHECK(dlogits[n * V + i] == GRAD_BASE);
		}
	}

	/* probs may alias logits, and dlogits may alias probs (then the
	 * gradient overwrites instead of accumulating). */
	float *buf = xmalloc(N * V * sizeof(float));
	float losses2[N];
	memcpy(buf, logits, N * V * sizeof(float));
	crossentropy_forward(losses2, buf, buf, targets, N, V);
	CHECK(memcmp(losses2, losses, sizeof(losses)) == 0);
	CHECK(memcmp(buf, probs, N * V * sizeof(float)) == 0);
	crossentropy_backward(buf, buf, targets, dloss, N, V);
	double *once = grad_once(dlogits, N * V), *alias = dvec(buf, N * V);
	report(name, "aliased", err_rel(alias, once, N * V), TOL_FWD);

	free(r.in[0]); free(r.out); free(r.aux); free(logits); free(probs);
	free(dlogits); free(buf); free(once); free(alias);
}

/* Same inputs and thread count give bit-identical results, and the split
 * products are correct. */
static void
test_threads(void)
{
	enum { N = 128, C = 96, OC = 300 };
	enum { B = 2, T = 100, H = 4, K = 2, D = 16 };
	int saved = fte_threads_get();
	size_t nq = B * T * H * D, nk = B * T * K * D, na = B * H * T * T;
	float *inp = fvec(N * C, 1), *w = fvec(OC * C, 1);
	float *dout = fvec(N * OC, 1);
	float *q = fvec(nq, 1), *k = fvec(nk, 1), *v = fvec(nk, 1);
	float *datt = fvec(nq, 1), *att = xmalloc(na * 4), *o = xmalloc(nq * 4);
	float *scratch = xmalloc(na * 4);
	float *res[3][5];
	const int counts[3] = { 1, 2, 2 };

	CHECK(fte_threads_set(0) == FTE_EINVAL);
	for (int run = 0; run < 3; run++) {
		CHECK(fte__threads_set_exact(counts[run]) == FTE_OK);
		CHECK(fte_threads_get() == counts[run]);
		res[run][0] = xmalloc(N * OC * 4);
		res[run][1] = xmalloc(N * C * 4);
		res[run][2] = xmalloc(OC * C * 4);
		res[run][3] = xmalloc(nq * 4);
		res[run][4] = xmalloc(nk * 4);
		matmul_forward(res[run][0], inp, w, NULL, N, C, OC);
		matmul_backward(res[run][1], res[run][2], NULL, dout, inp, w,
		    N, C, OC);
		attention_forward(o, att, q, k, v, NULL, B, T, H, K, D, NULL);
		attention_backward(res[run][3], res[run][4], NULL, scratch,
		    datt, q, k, v, att, B, T, H, K, D, NULL);
	}
	/* The split products are right, not just repeatable. */
	double *rin = dvec(inp, N * C), *rw = dvec(w, OC * C);
	double *rout = xmalloc(N * OC * 8), *rdinp = xmalloc(N * C * 8);
	double *rdw = xmalloc(OC * C * 8);
	ref_matmul(rout, rin, rw, NULL, N, C, OC);
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++)
			for (int j = 0; j < OC; j++) {
				rdinp[n * C + c] += (double)dout[n * OC + j] *
				    w[j * C + c];
				rdw[j * C + c] += (double)dout[n * OC + j] *
				    inp[n * C + c];
			}
	check_fwd("matmul(threads)", "out", res[2][0], rout, N * OC);
	check_fwd("matmul(threads)", "dinp", res[2][1], rdinp, N * C);
	check_fwd("matmul(threads)", "dweight", res[2][2], rdw, OC * C);
	free(rin); free(rw); free(rout); free(rdinp); free(rdw);

	const size_t sizes[5] = { N * OC, N * C, OC * C, nq, nk };
	/* Attention's work items do not depend on the thread count, so one
	 * and two threads must agree; so must matmul's per-thread blocks on
	 * the engine's GEMM (gemm.c sums every element in the same order
	 * wherever its tile lies), while on the blas path they agree only as
	 * far as OpenBLAS sums a block in the order of the whole product,
	 * which is reported, not required. */
	int same_count = 1, att_12 = 1, mm_12 = 1;
	for (int i = 0; i < 5; i++) {
		int same12 = memcmp(res[0][i], res[1][i], sizes[i] * 4) == 0;
		same_count &= memcmp(res[1][i], res[2][i], sizes[i] * 4) == 0;
		if (i < 3)
			mm_12 &= same12;
		else
			att_12 &= same12;
	}
	printf("threads (%s): %d threads twice %s; 1 vs %d threads: attention "
	    "%s, matmul %s\n", fte__isa_name(fte__isa()), fte_threads_get(),
	    same_count ? "identical" : "DIFFER", fte_threads_get(),
	    att_12 ? "identical" : "DIFFER", mm_12 ? "identical" : "differ");
	CHECK(same_count);
	CHECK(att_12);
	if (fte__isa() != FTE_ISA_BLAS)
		CHECK(mm_12);
	CHECK(fte_threads_set(saved) == FTE_OK);
	for (int run = 0; run < 3; run++)
		for (int i = 0; i < 5; i++)
			free(res[run][i]);
	free(inp); free(w); free(dout); free(q); free(k); free(v); free(datt);
	free(att); free(o); free(scratch);
}

/* ---- the thread pool ---- */

struct pool_probe {
	int *hits;          /* per item: how many times it ran */
	int n;
	int nested_ok;      /* a nested call ran all its items */
};

static void
pool_inner(void *arg, int i)
{
	((int *)arg)[i]++;
}

static void
pool_item(void *arg, int i)
{
	struct pool_probe *p = arg;

	p->hits[i]++;
	if (i == p->n / 2) {
		/* nested calls run on the calling thread */
		int inner[64] = { 0 }, all = 1;
		fte__parallel_for(64, 1e9, pool_inner, inner);
		for (int j = 0; j < 64; j++)
			all &= inner[j] == 1;
		p->nested_ok = all;
	}
}

static void
pool_range(void *arg, int lo, int hi)
{
	struct pool_probe *p = arg;

	for (int i = lo; i < hi; i++)
		p->hits[i]++;
}

/* pool_check runs n items (and a range over n) and says whether every
 * index ran exactly once per call. */
static int
pool_check(int n, int rounds)
{
	struct pool_probe p = { xmalloc(n * sizeof(int)), n, 0 };
	int ok = 1;

	for (int r = 0; r < rounds; r++) {
		fte__parallel_for(n, 1e9, pool_item, &p);
		fte__parallel_range(n, 1e9, pool_range, &p);
	}
	for (int i = 0; i < n; i++)
		ok &= p.hits[i] == 2 * rounds;
	ok &= p.nested_ok;
	free(p.hits);
	return ok;
}

static void *
pool_thread(void *arg)
{
	*(int *)arg = pool_check(1000, 200);
	return NULL;
}

static void
test_pool(void)
{
	int saved = fte_threads_get();
	int ok[2] = { 0, 0 };
	pthread_t t;

	for (int count = 1; count <= 3; count++) {
		CHECK(fte__threads_set_exact(count) == FTE_OK);
		CHECK(fte_threads_get() == count);
		CHECK(pool_check(1, 1));
		CHECK(pool_check(7, 50));
		CHECK(pool_check(1000, 20));
	}
	/* Two callers at once: one gets the pool, the other runs its items
	 * itself, and both finish with every item run once. */
	CHECK(fte__threads_set_exact(2) == FTE_OK);
	CHECK(pthread_create(&t, NULL, pool_thread, &ok[0]) == 0);
	ok[1] = pool_check(1000, 200);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(ok[0] && ok[1]);
	/* A forked child runs jobs on workers of its own. */
	pid_t pid = fork();
	if (pid == 0) {
		alarm(20); /* a child waiting on its parent's workers hangs */
		_exit(pool_check(1000, 20) ? 0 : 1);
	}
	int status = -1;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(fte_threads_set(saved) == FTE_OK);
	printf("pool: items run once each at 1-3 threads, nested, from two "
	    "threads at once and in a forked child\n");
}

int
main(void)
{
	const int seg[2 * 5] = { 0, 0, 1, 1, 1, 4, 5, 5, 5, 7 };
	int seg100[100];
	const int ce_some[6] = { 2, -1, 10, 0, -100, 5 };
	const int ce_none[6] = { -1, -1, -1, -1, -1, -1 };

	for (int i = 0; i < 100; i++)
		seg100[i] = i < 30 ? 0 : i < 77 ? 1 : 2;
	test_matmul(0);
	test_matmul(1);
	test_embedding();
	test_norm(0, 0.0f);
	test_norm(0, 1.0f);
	test_norm(1, 0.0f);
	test_rope(FTE_ROPE_HALF, 1.0f, 8);
	test_rope(FTE_ROPE_INTERLEAVED, 1.0f, 8);
	test_rope(FTE_ROPE_HALF, 1.1386294f, 8);
	test_rope(FTE_ROPE_HALF, 1.19f, 6);
	test_rope(FTE_ROPE_INTERLEAVED, 1.0f, 4);
	test_rope_freq();
	const attn_opts plain = { 0 }, gemma = { 0.35f, 2.5f, 3 }, wide = { 0, 0, 40 };
	test_attention(2, 5, 4, 4, 8, NULL, &plain);
	test_attention(2, 5, 4, 2, 8, NULL, &plain);
	test_attention(2, 5, 4, 2, 8, seg, &plain);
	test_attention(1, 100, 2, 1, 4, seg100, &plain);
	test_attention(2, 5, 4, 2, 8, NULL, &gemma);
	test_attention(2, 5, 4, 2, 8, seg, &gemma);
	test_attention(1, 100, 2, 1, 4, NULL, &wide);
	test_activation(0);
	test_activation(1);
	test_activation(2);
	test_softcap();
	test_crossentropy(ce_some, "crossentropy");
	test_crossentropy(ce_none, "crossentropy(all masked)");
	test_threads();
	test_pool();
	return ft_test_done();
}
