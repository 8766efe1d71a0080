/*
 * kernels.h - the engine's ops, one forward/backward pair each.
 *
 * Argument order is fixed (llm.c style): outputs first, then inputs, then
 * saved tensors, then sizes.  Shapes are given per argument: N = rows
 * (B*T tokens), C = width, OC = output width, V = vocab, B = batch,
 * T = sequence length, H = query heads, K = key/value heads, D = head size.
 * All tensors are float32, row-major, contiguous.
 *
 * Backward kernels ACCUMULATE (+=) into gradient outputs, so gradients are
 * zeroed once per step and contributions from several uses add up.  A NULL
 * gradient output means "not needed" (frozen weight, input of the first
 * layer) and its work is skipped.
 *
 * Kernels parallelise over rows, columns or work items with the engine's
 * thread pool (fte_threads_set, fte__parallel_for below); every product goes
 * through fte__gemm (gemm.c), cut among threads or one call per item.  Every kernel is
 * checked against a double-precision reference and by finite differences
 * in tests/test_kernels.c.
 */
#ifndef FTE_KERNELS_H
#define FTE_KERNELS_H

#include <stddef.h>

/* ---- the engine's threads (kernels/threads.c) ---- */

#define FTE_THREADS_MAX 256

/* fte__threads returns the engine's thread count (fte_threads_set).  Its
 * first call also pins OpenBLAS to one thread: all parallelism is the
 * engine's own pool (see the policy at the top of kernels/threads.c), so
 * fte__gemm (and cblas_* on the blas path) runs single-threaded; prefer
 * fte__gemm_par or matmul_forward/backward, which split large products
 * over the threads.
 * Engine code should not open OpenMP parallel regions either: libgomp's
 * spinning workers would compete with the pool's. */
int fte__threads(void);

/* fte__threads_set_exact is fte_threads_set without the cap at the CPUs
 * this process may use: a test comparing one thread with two must get two
 * workers even on a one-CPU machine, where fte_threads_set(2) gives one. */
int fte__threads_set_exact(int n);

typedef void (*fte__item_fn)(void *ctx, int i);
typedef void (*fte__range_fn)(void *ctx, int lo, int hi);

/* fte__parallel_for calls fn(ctx, i) once for every i in [0, n) on the
 * engine's threads, the caller's included, and returns when all calls have
 * returned.  Items are handed out in increasing order as threads free up;
 * they must be independent (each writing its own outputs), which also
 * makes the result independent of the scheduling.  Runs every item on the
 * caller when work (about the float operations of the whole call) is too
 * small to pay for waking threads, when the count is 1, when called from
 * inside an item, or while another thread's call holds the pool. */
void fte__parallel_for(int n, double work, fte__item_fn fn, void *ctx);

/* fte__parallel_range splits [0, n) into one contiguous range per thread
 * (boundaries fixed by n and the thread count) and calls fn(ctx, lo, hi)
 * for each, as fte__parallel_for does; or fn(ctx, 0, n) on the caller in
 * the same cases. */
void fte__parallel_range(int n, double work, fte__range_fn fn, void *ctx);

/* fte__colsum_add adds the column sums of x[N,C] to acc[C] (bias
 * gradients).  Each thread sums its own columns over all rows in order, so
 * the result is the same for any thread count. */
void fte__colsum_add(float *acc, const float *x, int N, int C);

/* ---- the engine's GEMM (kernels/gemm.c) ---- */

/* The paths a product can take, in increasing preference. */
enum { FTE_ISA_BLAS, FTE_ISA_AVX2, FTE_ISA_AVX512, FTE_ISA_N };

/* fte__isa returns the path in use: the best the CPU has, or FTE_ISA
 * (blas, avx2, avx512) read from the environment on the first call. */
int fte__isa(void);
/* fte__isa_set switches the path (tests, bench); FTE_EINVAL if the CPU or
 * the build lacks it.  Not while products run. */
int fte__isa_set(int isa);
int fte__isa_supported(int isa);
const char *fte__isa_name(int isa);

/* A microkernel: the MR x NR tile c (row stride ldc) becomes
 * alpha * a @ b + (acc ? c : 0), where a holds kc columns of MR values
 * (a[k*MR + i]) and b kc rows of NR values (b[k*NR + j]). */
typedef void (*fte__ukernel_fn)(int kc, const float *a, const float *b,
    float *c, long ldc, float alpha, int acc);
typedef struct fte__gemm_kernel {
	const char *name;
	int isa, mr, nr;
	fte__ukernel_fn fn;
	/* pack(dst, src, ld, rows, w, kc): dst[k*w + i] = src[i*ld + k] for
	 * i < rows, 0 for rows <= i < w (w is mr or nr): packs A, and B when
	 * transposed, whose panels are rows of the stored matrix */
	void (*pack)(float *dst, const float *src, long ld, int rows, int w,
	    int kc);
	/* fma(n) runs n rounds of independent FMA chains at the kernel's
	 * width and returns the float operations done (the FMA peak probe) */
	double (*fma)(long n);
} fte__gemm_kernel;
extern const fte__gemm_kernel fte__gemm_avx512, fte__gemm_avx2;
/* The kernel of a path, NULL for blas or a path the CPU lacks. */
const fte__gemm_kernel *fte__gemm_kernel_of(int isa);
/* The block sizes (KC, MC, NC) of the kernel in use for inner size K;
 * zeros on the blas path. */
void fte__gemm_blocks(int K, int *kc, int *mc, int *nc);

/* C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major; op(A) is M x K
 * (A itself K x M when ta), op(B) K x N (N x K when tb).  Runs on the
 * calling thread; beta 0 ignores what C held. */
void fte__gemm(int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta,
    float *C, int ldc);
/* Products with fewer rows (M) than this run on OpenBLAS on every path. */
#define FTE_GEMM_MIN_ROWS 8
/* fte__gemm_rows is fte__gemm for a block of a product of `rows` rows,
 * which decides the path, so that every block takes the whole's. */
void fte__gemm_rows(int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta,
    float *C, int ldc, int rows);
/* fte__gemm_par is fte__gemm cut among the engine's threads by rows or
 * columns of C (never K), so the result is the same for any count. */
void fte__gemm_par(int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta,
    float *C, int ldc);

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). */
void matmul_forward(float *out, const float *inp, const float *weight,
    const float *bias, int N, int C, int OC);
/* dinp[N,C] += dout @ weight; dweight[OC,C] += dout^T @ inp;
 * dbias[OC] += column sums of dout. Any of the three may be NULL. */
void matmul_backward(float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    int N, int C, int OC);

/* out[N,C] = wte[tokens[n]]; tokens in [0, V). */
void embedding_forward(float *out, const int *tokens, const float *wte,
    int N, int C);
/* dwte[tokens[n]] += dout[n]. */
void embedding_backward(float *dwte, const float *dout, const int *tokens,
    int N, int C);

/* out[N,C] = inp * rstd * (offset + weight), rstd[N] = 1/sqrt(mean(inp^2)
 * + eps); offset is 1 for Gemma's stored w - 1, else 0.  out may not
 * alias inp. */
void rmsnorm_forward(float *out, float *rstd, const float *inp,
    const float *weight, float offset, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout,
    const float *inp, const float *weight, float offset, const float *rstd,
    int N, int C);

/* out[N,C] = (inp - mean) * rstd * weight + bias; saves mean[N], rstd[N]. */
void layernorm_forward(float *out, float *mean, float *rstd,
    const float *inp, const float *weight, const float *bias,
    int N, int C, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *mean, const float *rstd, int N, int C);

/* Rotary position embedding, in place on the first R (even, <= D) of each
 * head's D values in x[N, nh*D], token n at position pos[n]; the rest
 * pass.  style is enum fte_rope_style: rotate-half pairs (i, i + R/2) or
 * interleaved pairs (2i, 2i+1); pair i turns by pos * inv_freq[i], and cos
 * and sin are multiplied by attn (YaRN's and LongRoPE's attention factor, 1
 * otherwise).  rope_backward applies the transposed map to the gradient, in
 * place. */
void rope_forward(float *x, const int *pos, int N, int nh, int D, int R,
    const float *inv_freq, float attn, int style);
void rope_backward(float *dx, const int *pos, int N, int nh, int D, int R,
    const float *inv_freq, float attn, int style);

struct fte_config;

/* rope_inv_freq fills inv_freq[R/2] (R = c's rotated dims) for c's theta and
 * scaling and sets *attn,
 * rounding to float32 where transformers computes in float32 tensors and in
 * double where it computes with Python floats. */
void rope_inv_freq(const struct fte_config *c, float *inv_freq, float *attn);

/* How attention scores are made: s = q.k * scale (0: 1/sqrt(D)), then
 * s = softcap * tanh(s / softcap) when softcap > 0 (Gemma 2), and with a
 * window > 0 query i sees keys i - window + 1 .. i only. */
typedef struct attn_opts {
	float scale, softcap;
	int window;
} attn_opts;

/* Causal multi-head attention with grouped keys/values.
 * q[B*T, H*D], k/v[B*T, K*D] (query head h uses kv head h / (H/K));
 * out[B*T, H*D]; att[B, H, T, T] saves the softmax probabilities.
 * seg[B*T] (may be NULL) gives each token's document id for packed
 * sequences: a token attends only to earlier tokens of the same document.
 * o may be NULL: scale 1/sqrt(D), no cap, no window. */
void attention_forward(float *out, float *att, const float *q,
    const float *k, const float *v, const int *seg,
    int B, int T, int H, int K, int D, const attn_opts *o);
/* dq, dk, dv accumulate (any may be NULL); scratch holds B*H*T*T floats
 * (twice that with a soft-cap) and is overwritten.  att is
 * attention_forward's, whose zeros outside the causal window and the
 * document carry the masking, so no seg here; o as in forward. */
void attention_backward(float *dq, float *dk, float *dv, float *scratch,
    const float *dout, const float *q, const float *k, const float *v,
    const float *att, int B, int T, int H, int K, int D, const attn_opts *o);

/* attention_cache_forward attends T new tokens, at positions p0 ..
 * p0+T-1, to the cached keys and values of positions 0 .. p0+T-1:
 * q[T, H*D], kc/vc[P, K*D] (the new tokens' rows already written),
 * out[T, H*D]; scores[H, T, p0+T] is scratch.  The causal mask, scale,
 * cap and window are attention_forward's, so with p0 = 0 it computes the
 * same rows (inference only: no backward). */
void attention_cache_forward(float *out, float *scores, const float *q,
    const float *kc, const float *vc, int p0, int T, int H, int K, int D,
    const attn_opts *o);

/* out[n] = silu(gate[n]) * up[n], n < count. */
void swiglu_forward(float *out, const float *gate, const float *up,
    size_t count);
void swiglu_backward(float *dgate, float *dup, const float *dout,
    const float *gate, const float *up, size_t count);

/* out[n] = gelu_tanh(gate[n]) * up[n] (Gemma's GeGLU), n < count. */
void geglu_forward(float *out, const float *gate, const float *up,
    size_t count);
void geglu_backward(float *dgate, float *dup, const float *dout,
    const float *gate, const float *up, size_t count);

/* GELU, tanh approximation (GPT-2's gelu_new). */
void gelu_forward(float *out, const float *inp, size_t count);
void gelu_backward(float *dinp, const float *dout, const float *inp,
    size_t count);

/* Soft-capping (Gemma 2's final logits): y[n] = cap * tanh(x[n] / cap);
 * y may alias x.  softcap_backward turns the gradient d of y into that of
 * x in place: d *= 1 - (y / cap)^2, from the saved y. */
void softcap_forward(float *y, const float *x, size_t count, float cap);
void softcap_backward(float *d, const float *y, size_t count, float cap);

/* Softmax cross-entropy over logits[N,V]: probs[N,V] receives the softmax
 * (may alias logits), losses[N] the per-token loss -log p[target].
 * A token with target < 0 is not predicted: loss 0, and in backward no
 * gradient. */
void crossentropy_forward(float *losses, float *probs, const float *logits,
    const int *targets, int N, int V);
/* dlogits[N,V] += (probs - onehot(target)) * dloss[n] (dloss[n] is the
 * weight of token n in the mean loss, 0 for masked tokens). dlogits may
 * alias probs, in which case it is overwritten rather than accumulated. */
void crossentropy_backward(float *dlogits, const float *probs,
    const int *targets, const float *dloss, int N, int V);

#endif
