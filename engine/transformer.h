/*
 * transformer.h - engine-private: the model's memory layout, LoRA adapters,
 * activations and the forward/backward pass shared by model.c,
 * transformer.c, lora.c, train.c and generate.c.  Not installed.
 */
#ifndef FTE_TRANSFORMER_H
#define FTE_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "fte_model.h"
#include "fte_train.h"

/* What each canonical tensor is; fte__weights_view maps slots to pointers. */
enum fte__slot {
	SLOT_TOK_EMB, SLOT_POS_EMB,
	SLOT_ATTN_NORM_W, SLOT_ATTN_NORM_B,
	SLOT_WQ, SLOT_BQ, SLOT_WK, SLOT_BK, SLOT_WV, SLOT_BV, SLOT_WO, SLOT_BO,
	SLOT_Q_NORM, SLOT_K_NORM, SLOT_ATTN_POST_NORM,
	SLOT_FFN_NORM_W, SLOT_FFN_NORM_B,
	SLOT_W_GATE, SLOT_W_UP, SLOT_B_UP, SLOT_W_DOWN, SLOT_B_DOWN,
	SLOT_FFN_POST_NORM,
	SLOT_NORM_W, SLOT_NORM_B, SLOT_OUTPUT,
};

/* One layer's tensors; NULL where the architecture has none.  The MLP is
 * gate/up/down: w1/w3/w2 when gated, GPT-2 (no gate) c_fc / c_proj. */
typedef struct fte__layer {
	float *attn_norm_w, *attn_norm_b;
	float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
	float *q_norm_w, *k_norm_w;  /* (D), qk_norm only */
	float *attn_post_w;          /* (C), post_norms only */
	float *ffn_norm_w, *ffn_norm_b;
	float *w_gate, *w_up, *b_up, *w_down, *b_down;
	float *ffn_post_w;           /* (C), post_norms only */
} fte__layer;

typedef struct fte__weights {
	float *tok_emb, *pos_emb, *norm_w, *norm_b;
	float *output;               /* == tok_emb when tied */
	fte__layer layer[FTE_MAX_LAYERS];
} fte__weights;

struct fte_model {
	fte_config cfg;
	float *mem;                  /* all parameters, one allocation */
	size_t n_params;
	int n_tensors;
	fte_tensor *tensors;
	size_t *offset;              /* tensor i starts at mem + offset[i] */
	unsigned char *slot, *layer; /* enum fte__slot and layer of tensor i */
	fte__weights w;              /* views into mem */
	const fte_arch_info *ai;     /* the family's row */
	float *rope_freq;            /* (head_dim / 2) inv_freq, RoPE only */
	float rope_attn;             /* YaRN's attention factor, else 1 */
	float *rope_freq_local;      /* sliding layers' (== rope_freq unless
	                              * rope_local_theta) */
	float rope_attn_local;
	/* An adapted view (fte_adapter_attach): the fields above are base's,
	 * borrowed; only lora and its floats are this model's own. */
	const struct fte_model *base;
	const struct fte__lora *lora;
	size_t lora_floats;
};


/* fte__config_num_params counts a configuration's parameters (checked
 * configuration) without allocating. */
size_t fte__config_num_params(const fte_config *c);

/* fte__weights_view points w at a buffer laid out like m's parameters
 * (gradients and moments of full fine-tuning share the layout). */
void fte__weights_view(const fte_model *m, float *base, fte__weights *w);

/* LoRA modules in their fixed order. */
enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN,
	LORA_NMOD };

/* Adapters of one model: A (r, in) and B (out, r) per enabled module. */
typedef struct fte__lora {
	int rank;
	float scale;                 /* alpha / rank */
	float dropout;
	unsigned targets;            /* enum fte_lora_target, effective bits */
	float *a[FTE_MAX_LAYERS][LORA_NMOD], *b[FTE_MAX_LAYERS][LORA_NMOD];
} fte__lora;

/* fte__lora_dims gives the in and out width of a module; 0 when the
 * architecture lacks it (GPT-2 has no gate). */
void fte__lora_dims(const fte_config *c, int mod, int *in, int *out);

/* fte__lora_targets_effective drops targets the architecture lacks. */
unsigned fte__lora_targets_effective(const fte_config *c, unsigned targets);

/* fte__lora_numel counts adapter floats for rank r and targets. */
size_t fte__lora_numel(const fte_config *c, int rank, unsigned targets);

/* Base weight of a module in layer l. */
float *fte__lora_base(const fte__layer *ly, int mod);

/* fte__lora_view lays adapters out in base (fte__lora_numel floats): layer
 * by layer, modules in enum order, A then B; sets rank, scale, dropout. */
void fte__lora_view(const fte_config *c, const fte_lora_config *lc,
    float *base, fte__lora *out);

/* Canonical name of module mod's base weight in layer l ("layers.3.attn.wq"). */
void fte__lora_name(const fte_config *c, int l, int mod, char *buf, size_t len);

/* Activations of one micro-batch (B x T tokens, N = B*T), llm.c style: named
 * tensors in one allocation.  res[l] is layer l's input (res[L] the last
 * output); per-layer tensors are arrays over layers. */
typedef struct fte__acts {
	int B, T, lora_rank;
	int ls;                      /* 1: per-layer tensors kept for backward;
	                              * 0: one layer's worth reused (inference,
	                              * or recomputed in backward) */
	int res_ls;                  /* 1: every layer's input kept */
	uint64_t layer_rng[FTE_MAX_LAYERS]; /* dropout state at each layer,
	                              * replayed when recomputing */
	float *mem;
	size_t n_floats;
	float *res;                  /* (L+1, N, C) */
	float *res_mid;              /* (L, N, C) */
	float *ln1, *ln1_mean, *ln1_rstd;  /* (L, N, C), (L, N), (L, N) */
	float *q, *k, *v;            /* (L, N, H*D), (L, N, K*D) x 2, post-RoPE */
	float *qpre, *kpre;          /* qk_norm: q, k before the head norm */
	float *q_rstd, *k_rstd;      /* qk_norm: (L, N, H), (L, N, K) */
	float *att;                  /* (L, B, H, T, T); with a cache (H, T, P)
	                              * scores */
	float *atty;                 /* (L, N, H*D) */
	float *ao, *ao_rstd;         /* post_norms: (L, N, C) attention output
	                              * before its norm, (L, N) */
	float *ln2, *ln2_mean, *ln2_rstd;
	float *gate, *up, *hact;     /* (L, N, F); gate for gated MLPs only */
	float *mo, *mo_rstd;         /* post_norms: MLP output before its norm */
	float *lnf, *lnf_mean, *lnf_rstd;  /* (N, C), (N), (N) */
	float *logits;               /* (N, V); softmax in place, then dlogits */
	float *capped;               /* final_softcap, training: the capped
	                              * logits backward needs */
	float *losses;               /* (N) */
	float *dloss;                /* (N) weight of each token in the loss */
	float *lora_xa;              /* (L, NMOD, N, r): scale * drop(x) @ A^T */
	float *lora_mask;            /* (L, NMOD, N, maxin): 0 or 1/(1-p) */
	float *lora_s1, *lora_s2;    /* (N, maxin) dropout scratch */
	float *tmp;                  /* (N, max(C, F)) */
	/* backward scratch */
	float *dpost;                /* post_norms: gradient before a post norm */
	float *dres, *dln, *dq, *dk, *dv, *datty, *dgate, *dup, *dhact;
	float *dqpre, *dkpre;        /* qk_norm: gradients before the head norm */
	float *datt;                 /* (B, H, T, T) */
	float *lora_dxa;             /* (N, r) */
	int *pos;                    /* (N) position of each token */
	float *kv_k, *kv_v;          /* optional KV cache (L, P, K*D) (B = 1,
	                              * ACTS_CACHE): each layer writes its keys
	                              * and values (post-RoPE) at pos0.. and
	                              * attends to positions 0 .. pos0+T-1 */
	int pos0;                    /* position of the first token */
} fte__acts;

/* Activation modes: inference (forward only, one layer's worth reused),
 * training (every layer saved), training with recomputation (only layer
 * inputs saved; backward reruns each layer's forward), and inference
 * against a KV cache (scores against every position). */
enum { ACTS_INFER, ACTS_TRAIN, ACTS_RECOMPUTE, ACTS_CACHE };

/* fte__acts_floats returns the floats activations for (B, T) need; the
 * single source for fte_train_memory and fte__acts_create. */
size_t fte__acts_floats(const fte_config *c, int B, int T, int lora_rank,
    float lora_dropout, int mode);
int fte__acts_create(const fte_config *c, int B, int T, int lora_rank,
    float lora_dropout, int mode, fte__acts *a);
void fte__acts_free(fte__acts *a);

/* fte__forward runs the model on a micro-batch (tokens, targets and
 * segments as fte_batch); lora may be NULL.  acts->dloss must already hold
 * each token's loss weight when targets are given.  Returns the weighted
 * loss sum; logits_copy (may be NULL) receives the logits before the
 * softmax.  With neither targets nor logits_copy only the layers run (a
 * prefill that fills acts->kv_k/kv_v).  rng drives dropout. */
double fte__forward(const fte_model *m, const fte__lora *lora, fte__acts *a,
    const int *tokens, const int *targets, const int *segments, int B, int T,
    float *logits_copy, uint64_t *rng);

/* fte__backward accumulates gradients for the last forward (same batch
 * arguments): g (may have NULL tensors: frozen) and, when lora is not NULL,
 * gl's adapter gradients. */
void fte__backward(const fte_model *m, const fte__weights *g,
    const fte__lora *lora, const fte__lora *gl, fte__acts *a,
    const int *tokens, const int *targets, const int *segments, int B, int T);

/* fte__lora_forward: out[N,outd] += scale * drop(x) @ A^T @ B^T, saving
 * xa = scale * drop(x) @ A^T and, with dropout, the mask (0 or 1/(1-p)).
 * s1 is (N, in) scratch used only with dropout. */
void fte__lora_forward(float *out, float *xa, float *mask, float *s1,
    const float *x, const float *A, const float *B, int N, int in, int outd,
    int r, float scale, float dropout, uint64_t *rng);
/* fte__lora_backward accumulates dx, dA and dB for the last forward (mask
 * NULL without dropout); dxa is (N, r) scratch, s1/s2 (N, in) scratch used
 * only with dropout. */
void fte__lora_backward(float *dx, float *dA, float *dB, float *dxa,
    float *s1, float *s2, const float *dout, const float *x, const float *xa,
    const float *mask, const float *A, const float *B, int N, int in,
    int outd, int r, float scale);

/* A small seeded generator (splitmix64): its whole state is one uint64, so
 * checkpoints can save it. */
static inline uint64_t
fte__rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 bits. */
static inline float
fte__rng_uniform(uint64_t *s)
{
	return (float)(fte__rng_next(s) >> 40) * (1.0f / 16777216.0f);
}

#endif
