/*
 * fte_model.h - model configuration and parameters as named tensors.
 *
 * One fte_model holds the parameters of a decoder-only transformer in a single
 * float32 allocation, exposed as named tensors.  Every linear weight is stored
 * as PyTorch's nn.Linear stores it: (out_features, in_features), row-major.
 * Loaders for other layouts (GPT-2's Conv1D (in, out), packed q/k/v, Phi-3's
 * fused qkv_proj and gate_up_proj, llama2.c grouped-by-type files) convert
 * into this layout; exporters convert back.
 *
 * Canonical parameter names ({i} is the layer index, C = dim, V = vocab,
 * D = head_dim, H = n_heads, K = n_kv_heads, F = ffn_dim, P = max_seq_len):
 *
 *   tok_embeddings.weight          (V, C)
 *   pos_embeddings.weight          (P, C)        GPT-2 only
 *   layers.{i}.attn_norm.weight    (C)
 *   layers.{i}.attn_norm.bias      (C)           GPT-2 only (LayerNorm)
 *   layers.{i}.attn.wq.weight      (H*D, C)
 *   layers.{i}.attn.wq.bias        (H*D)         bias or qkv_bias families
 *   layers.{i}.attn.wk.weight      (K*D, C)
 *   layers.{i}.attn.wk.bias        (K*D)         bias or qkv_bias families
 *   layers.{i}.attn.wv.weight      (K*D, C)
 *   layers.{i}.attn.wv.bias        (K*D)         bias or qkv_bias families
 *   layers.{i}.attn.wo.weight      (C, H*D)
 *   layers.{i}.attn.wo.bias        (C)           GPT-2 only
 *   layers.{i}.attn.q_norm.weight  (D)           qk_norm (Qwen3, Gemma 3)
 *   layers.{i}.attn.k_norm.weight  (D)           qk_norm
 *   layers.{i}.attn_post_norm.weight (C)         post_norms (Gemma)
 *   layers.{i}.ffn_norm.weight     (C)
 *   layers.{i}.ffn_norm.bias       (C)           GPT-2 only
 *   layers.{i}.ffn.w1.weight       (F, C)        gated MLP: gate_proj
 *   layers.{i}.ffn.w3.weight       (F, C)        gated MLP: up_proj
 *   layers.{i}.ffn.w2.weight       (C, F)        gated MLP: down_proj
 *   layers.{i}.ffn.fc.weight       (F, C)        GPT-2 c_fc (transposed)
 *   layers.{i}.ffn.fc.bias         (F)           GPT-2
 *   layers.{i}.ffn.proj.weight     (C, F)        GPT-2 c_proj (transposed)
 *   layers.{i}.ffn.proj.bias       (C)           GPT-2
 *   layers.{i}.ffn_post_norm.weight (C)          post_norms (Gemma)
 *   norm.weight                    (C)
 *   norm.bias                      (C)           GPT-2 only
 *   output.weight                  (V, C)        only when !tied_embeddings
 *
 * Tensors appear in fte_model_param order: embeddings, then layer by layer in
 * the order above, then the final norm and the head.
 */
#ifndef FTE_MODEL_H
#define FTE_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* The model families.  Each is one row of the architecture table
 * (engine/arch.c, fte_arch_get): what differs between them is data there,
 * read by the forward pass, LoRA, the memory estimate and every format. */
enum fte_arch {
	FTE_ARCH_LLAMA = 1,   /* RMSNorm, RoPE, GQA, SwiGLU (Llama 2, 3.x) */
	FTE_ARCH_GPT2 = 2,    /* LayerNorm, learned positions, GELU(tanh), biases */
	FTE_ARCH_MISTRAL = 3, /* Llama's layers, sliding-window attention */
	FTE_ARCH_QWEN2 = 4,   /* Llama with q/k/v biases (Qwen2, Qwen2.5) */
	FTE_ARCH_QWEN3 = 5,   /* Llama with a RMSNorm of each q/k head */
	FTE_ARCH_GEMMA2 = 6,  /* 1 + w norms around attention and MLP, GeGLU,
	                       * scaled embeddings, soft-capping, local layers */
	FTE_ARCH_GEMMA3 = 7,  /* Gemma 2 with q/k head norms, local RoPE theta */
	FTE_ARCH_PHI3 = 8,    /* Llama's layers; fused qkv and gate/up on disk */
	FTE_ARCH_END
};

enum fte_norm_kind {
	FTE_NORM_RMS = 0,     /* x * rstd * (offset + w) */
	FTE_NORM_LAYER = 1,   /* (x - mean) * rstd * w + b */
};

enum fte_mlp_kind {
	FTE_MLP_SWIGLU = 0,   /* down(silu(gate x) * up x) */
	FTE_MLP_GEGLU = 1,    /* down(gelu_tanh(gate x) * up x) */
	FTE_MLP_GELU = 2,     /* down(gelu_tanh(up x + b) + b) */
};

/* How on-disk Hugging Face tensors are named and laid out (engine/hf.c). */
enum fte_hf_layout {
	FTE_HF_LLAMA = 0,     /* model.layers.N.self_attn.q_proj ... */
	FTE_HF_GPT2 = 1,      /* transformer.h.N.attn.c_attn (Conv1D, packed) */
	FTE_HF_GEMMA = 2,     /* Llama names with pre/post feed-forward norms */
	FTE_HF_PHI3 = 3,      /* Llama names, fused qkv_proj and gate_up_proj */
};

/* One family: its features, and the names it goes by in each format. */
typedef struct fte_arch_info {
	const char *name;     /* "llama", as ftengine, the daemon and files say */
	const char *title;    /* "Llama", for people */
	int norm;             /* enum fte_norm_kind */
	float norm_offset;    /* RMSNorm weights are stored as w - offset */
	int mlp;              /* enum fte_mlp_kind */
	int rope;             /* RoPE; else learned position embeddings */
	int bias;             /* every linear layer and norm has a bias (GPT-2) */
	int qkv_bias;         /* the q, k and v projections have biases */
	int qk_norm;          /* RMSNorm of each q and k head before RoPE */
	int post_norms;       /* norms of the attention and MLP outputs too */
	int emb_scale;        /* embeddings times sqrt(dim) (in float32) */
	int window;           /* may have a sliding window (fte_config) */
	int always_tied;      /* the head is always the embedding */
	const char *hf_arch;  /* config.json architectures[0] */
	const char *hf_type;  /* config.json model_type */
	int hf_layout;        /* enum fte_hf_layout */
	const char *gguf;     /* llama.cpp's general.architecture, NULL: none */
} fte_arch_info;

/* fte_arch_get returns the row of arch, or NULL when arch is unknown. */
const fte_arch_info *fte_arch_get(int arch);

/* fte_arch_find returns the arch named name (fte_arch_info.name), or 0. */
int fte_arch_find(const char *name);

/* fte_arch_list writes the family names, comma-separated, for messages. */
void fte_arch_list(char *buf, size_t len);

enum fte_rope_style {
	FTE_ROPE_HALF = 0,        /* Hugging Face: rotate the two halves of a head */
	FTE_ROPE_INTERLEAVED = 1, /* llama2.c / GGUF: rotate adjacent pairs */
};

/* RoPE frequency scalings, as transformers' modeling_rope_utils computes
 * them (rope_scaling / rope_parameters rope_type). */
enum fte_rope_type {
	FTE_ROPE_DEFAULT = 0,
	FTE_ROPE_LINEAR = 1,  /* inv_freq / factor */
	FTE_ROPE_DYNAMIC = 2, /* NTK base at the configured context (exact up to it) */
	FTE_ROPE_LLAMA3 = 3,  /* Llama 3.1: low frequencies / factor, a smooth band */
	FTE_ROPE_YARN = 4,    /* ramped interpolation and an attention factor */
	FTE_ROPE_LONGROPE = 5, /* Phi-3: per-pair factors and an attention factor;
	                        * the short factors, the context capped at
	                        * orig_ctx */
};

#define FTE_ROPE_PAIRS_MAX 128

/* The numbers of a RoPE scaling, kept as the config states them (doubles,
 * as transformers reads them) so an export writes them back unchanged. */
typedef struct fte_rope_scaling {
	int type;                 /* enum fte_rope_type */
	double factor;
	double low_freq_factor;   /* llama3 */
	double high_freq_factor;  /* llama3 */
	int orig_ctx;             /* llama3, yarn: original_max_position_embeddings */
	double beta_fast;         /* yarn (32) */
	double beta_slow;         /* yarn (1) */
	double attn_factor;       /* yarn; 0: 0.1 ln(factor) + 1; longrope; 0:
	                           * sqrt(1 + ln(factor) / ln(orig_ctx)) */
	int no_truncate;          /* yarn: truncate false (ramp ends not rounded) */
	/* longrope: factor is max_position_embeddings / orig_ctx; the factors
	 * of the rotated pairs, float32 as transformers makes them */
	float short_factor[FTE_ROPE_PAIRS_MAX];
	float long_factor[FTE_ROPE_PAIRS_MAX];
} fte_rope_scaling;

#define FTE_MAX_LAYERS 256
#define FTE_NAME_MAX 64

typedef struct fte_config {
	int arch;            /* enum fte_arch: the family's features */
	int n_layers;
	int dim;             /* C: residual width */
	int n_heads;         /* H */
	int n_kv_heads;      /* K: == n_heads for GPT-2 and plain multi-head */
	int head_dim;        /* D: usually dim / n_heads */
	int rope_dim;        /* the first rope_dim (even) of each head's D turn;
	                      * 0: all (Phi-4-mini: 3/4) */
	int ffn_dim;         /* F */
	int vocab_size;      /* V */
	int max_seq_len;     /* P: context length */
	float norm_eps;      /* RMSNorm / LayerNorm epsilon */
	float rope_theta;    /* RoPE families */
	int rope_style;      /* enum fte_rope_style, RoPE families */
	fte_rope_scaling rope; /* RoPE families; zero: the default rotation */
	int tied_embeddings; /* output head shares tok_embeddings.weight */
	int sliding_window;  /* 0: none; else a token attends to itself and the
	                      * window - 1 tokens before it */
	int sliding_pattern; /* with a window: every n-th layer (n-1, 2n-1, ...)
	                      * attends to the whole context; 0: none does */
	float rope_local_theta; /* 0: none; else the sliding layers' RoPE base,
	                      * without scaling (Gemma 3) */
	float query_scale;   /* scores are q.k / sqrt(query_scale); 0: head_dim */
	float attn_softcap;  /* scores become cap * tanh(s / cap); 0: none */
	float final_softcap; /* the same on the logits */
	int bos_id;          /* -1 when unknown */
	int eos_id;          /* -1 when unknown */
} fte_config;

typedef struct fte_tensor {
	char name[FTE_NAME_MAX];
	float *data;         /* points into the model's single allocation */
	int ndim;
	int64_t shape[2];
	size_t numel;
} fte_tensor;

typedef struct fte_model fte_model;

/* fte_config_check validates a configuration (positive sizes, heads that
 * divide evenly, known arch and rope style) and returns FTE_OK or FTE_EINVAL
 * with a message that names the bad field. */
int fte_config_check(const fte_config *cfg);

/* fte_config_layer_sliding tells whether layer l attends through the
 * sliding window (sliding_window and sliding_pattern). */
int fte_config_layer_sliding(const fte_config *c, int l);

/* fte_config_num_params is the number of scalar parameters a model of
 * shape cfg has (fte_model_num_params of it), computed without allocating;
 * 0 for a shape fte_config_check refuses. */
size_t fte_config_num_params(const fte_config *cfg);

/* fte_model_create allocates a model of the given shape with all parameters
 * zero.  On success *out owns the model; free it with fte_model_free. */
int fte_model_create(const fte_config *cfg, fte_model **out);

/* fte_model_free releases a model and its parameters. NULL is allowed. */
void fte_model_free(fte_model *m);

/* fte_model_config returns the model's configuration (owned by the model). */
const fte_config *fte_model_config(const fte_model *m);

/* fte_model_num_tensors returns how many parameter tensors the model has;
 * fte_model_tensor returns the i-th (0 <= i < num_tensors), owned by the model. */
int fte_model_num_tensors(const fte_model *m);
fte_tensor *fte_model_tensor(fte_model *m, int i);

/* fte_model_find returns the tensor with the canonical name, or NULL. */
fte_tensor *fte_model_find(fte_model *m, const char *name);

/* fte_model_num_params returns the number of scalar parameters. */
size_t fte_model_num_params(const fte_model *m);

/* fte_model_own_bytes returns the bytes of weights m holds itself: every
 * parameter, or for a model made by fte_adapter_attach only its adapter
 * (the base's weights are the base's). */
size_t fte_model_own_bytes(const fte_model *m);

/* fte_model_init_random fills the parameters as GPT-2 / Llama pretraining
 * does (normal(0, 0.02) weights, output projections scaled by
 * 1/sqrt(2 * n_layers), norms one, biases zero), from a seeded generator, so
 * the same seed gives the same model bit for bit. */
int fte_model_init_random(fte_model *m, uint64_t seed);

/* fte_threads_set sets how many threads the engine uses for its kernels and
 * for OpenBLAS (n >= 1), without oversubscribing the cores; fte_threads_get
 * returns the current count. */
int fte_threads_set(int n);
int fte_threads_get(void);

#endif
