/*
 * fte_io.h - model files: import and export.
 *
 * Contract shared by the engine and the model-formats code.  Every loader
 * checks sizes, offsets, shapes and dtypes against the file length and the
 * configuration before it reads, and fails with FTE_EFORMAT / FTE_ENOTSUP and
 * a message naming the file and the problem; it never returns a partial model.
 */
#ifndef FTE_IO_H
#define FTE_IO_H

#include "fte_model.h"

/* fte_model_load loads the model at path, choosing the reader by what is
 * there: a directory with config.json (Hugging Face layout, also what the
 * engine itself writes), or a llama2.c checkpoint file. */
int fte_model_load(const char *path, fte_model **out);

/* Files below a directory.  A caller that has checked a directory (the
 * daemon: inside its import roots) opens it once with fte_dir_open and from
 * then on names it only through the descriptor: fte_file_openat for its own
 * reads, and the path of fte_dir_path ("/proc/self/fd/N", which names that
 * very directory however its path is changed later) for the loaders here.
 * Every loader opens its files with O_NOFOLLOW and refuses what is not a
 * regular file, so a symbolic link inside the directory is never followed. */
int fte_dir_open(const char *path, int *dirfd);
void fte_dir_path(int dirfd, char *buf, size_t len);

/* fte_file_openat opens the plain file name (no '/') below dirfd for
 * reading: a symbolic link or anything but a regular file is FTE_EFORMAT,
 * absence FTE_ENOENT. */
int fte_file_openat(int dirfd, const char *name, int *fd);

/* fte_file_check parses len bytes of a file a model directory keeps, by its
 * name: *.json must be a JSON object, *.safetensors valid safetensors,
 * *.gguf valid GGUF, tokenizer.bin a llama2.c tokenizer and tokenizer.gguf
 * a GGUF vocabulary the engine reads; other names are FTE_ENOTSUP.  A
 * parse error gives the place, never the bytes. */
int fte_file_check(const char *name, const void *buf, size_t len);

/* fte_llama2c_load reads a llama2.c legacy (version 0) checkpoint: 7 int32
 * header, fp32 weights grouped by type across layers, RoPE tables skipped.
 * The model gets rope_style FTE_ROPE_INTERLEAVED, bos 1 and eos 2. */
int fte_llama2c_load(const char *path, fte_model **out);

/* fte_gguf_load reads a Llama-family or GPT-2 GGUF file (llama, mistral,
 * qwen2, gpt2 architectures; any tensor type of fte__ggml_block, dequantized
 * to float32);
 * FTE_ENOTSUP with the reason for what the engine cannot compute exactly
 * (other architectures, RoPE scaling, mixtures of experts, other types).
 * fte_gguf_tokenizer_load makes the tokenizer of its embedded vocabulary
 * (tokenizer.ggml.model "llama", SentencePiece, or "gpt2", byte-level BPE
 * with its merges and one of the pre-tokenizers gpt-2, llama-bpe, qwen2,
 * smollm; ENOTSUP naming others), from a model or a vocabulary-only file. */
int fte_gguf_load(const char *path, fte_model **out);
/* fte_gguf_describe summarizes a GGUF file for a model's lineage, as a
 * malloc'd JSON object: architecture, name, file_type, tokenizer model and
 * pre, whether it has a chat template, and how many tensors of each ggml
 * type (tensor_types).  The caller frees *json. */
int fte_gguf_describe(const char *path, char **json);
struct fte_tokenizer;
int fte_gguf_tokenizer_load(const char *path, struct fte_tokenizer **out);

/* fte_hf_load reads a Hugging Face model directory (config.json plus
 * model.safetensors or a sharded index) into canonical layout. */
int fte_hf_load(const char *dir, fte_model **out);

/* fte_hf_save writes m as a Hugging Face directory (config.json,
 * model.safetensors in F32), atomically: a temporary file is written,
 * fsynced and renamed.  Tokenizer files are copied from tokenizer_dir when it
 * is not NULL. */
int fte_hf_save(fte_model *m, const char *tokenizer_dir, const char *dir);

/* fte_hf_save_dtype is fte_hf_save with the weights stored as dtype (enum
 * fte_dtype; config.json's torch_dtype says which). */
int fte_hf_save_dtype(fte_model *m, const char *tokenizer_dir, const char *dir,
    int dtype);

/* A vocabulary as GGUF stores it, independent of the tokenizer code: token
 * strings as the vocabulary spells them (U+2581 for spaces in SentencePiece
 * vocabularies, byte-level characters in GPT-2 ones), one score and one
 * llama.cpp token type per token, and the BPE merges as "a b" strings. */
enum fte_vocab_kind {
	FTE_VOCAB_SPM = 1,      /* SentencePiece-style: tokenizer.ggml.model "llama" */
	FTE_VOCAB_BPE = 2,      /* byte-level BPE: tokenizer.ggml.model "gpt2" */
};

enum fte_token_type {       /* llama.cpp's llama_token_type values */
	FTE_TOKEN_NORMAL = 1,
	FTE_TOKEN_UNKNOWN = 2,
	FTE_TOKEN_CONTROL = 3,
	FTE_TOKEN_USER_DEFINED = 4,
	FTE_TOKEN_UNUSED = 5,
	FTE_TOKEN_BYTE = 6,
};

typedef struct fte_vocab {
	int kind;               /* enum fte_vocab_kind */
	int n_tokens;
	char **tokens;          /* n_tokens NUL-terminated UTF-8 strings */
	float *scores;          /* higher merges first (SPM); 0 for BPE */
	int *types;             /* enum fte_token_type */
	int n_merges;
	char **merges;          /* BPE only: "left right", in merge order */
	int bos_id, eos_id, unk_id, pad_id;   /* -1 when none */
	int add_bos;            /* the tokenizer prepends BOS */
	char pre[32];           /* BPE pre-tokenizer name for llama.cpp
	                         * (tokenizer.ggml.pre): "gpt-2", "smollm" */
	char *chat_template;    /* Jinja chat template from tokenizer_config.json,
	                         * or NULL */
} fte_vocab;

/* fte_vocab_load reads the vocabulary of a tokenizer.json (BPE, byte-level
 * or SentencePiece-style), a llama2.c tokenizer.bin, a GGUF file (its
 * tokenizer.ggml.* keys and chat template), or a directory holding
 * tokenizer.json.  SentencePiece-style tokenizer.json files carry no scores,
 * so a merged token scores -(its merge rank) and others -(n_merges + id),
 * which keeps the merge order.  FTE_EFORMAT for malformed files or invalid
 * UTF-8, FTE_ENOTSUP for other tokenizer models.  Free with fte_vocab_free. */
int fte_vocab_load(const char *path, fte_vocab **out);
void fte_vocab_free(fte_vocab *v);

/* Storage precision of exported weights (computation is always float32). */
enum fte_dtype {
	FTE_DTYPE_F32 = 0,
	FTE_DTYPE_F16 = 1,      /* IEEE half, rounded to nearest even */
	FTE_DTYPE_BF16 = 2,     /* bfloat16, rounded to nearest even */
	FTE_DTYPE_Q8_0 = 3,     /* GGUF only: llama.cpp's Q8_0 file type */
	FTE_DTYPE_Q4_K_M = 4,   /* GGUF only: llama.cpp's Q4_K_M type mix */
};

/* fte_gguf_save writes a Llama-architecture or GPT-2 model with its vocabulary as a
 * GGUF v3 file that llama.cpp loads, in FTE_DTYPE_F32 (general.file_type 0)
 * FTE_DTYPE_F16 (file_type 1: matrices F16, norms and biases F32),
 * FTE_DTYPE_Q8_0 (7) or FTE_DTYPE_Q4_K_M (15: the types llama.cpp's
 * quantizer picks per tensor, gguf_pick_type) (keys and tensor names are listed at the
 * top of gguf.c).  q/k rows are written in llama.cpp's interleaved RoPE order,
 * permuted from rotate-half when the model is rope_style FTE_ROPE_HALF.  The
 * vocabulary may be shorter than the model's (padding tokens are added) but
 * not longer.  BOS/EOS come from the model config when set, else from the
 * vocabulary.  Written atomically.  GPT-2 models are written as llama.cpp's
 * gpt2 architecture (q/k/v fused into attn_qkv); FTE_ENOTSUP for what GGUF
 * or this exporter cannot say (Qwen3's q/k norms, llama3/dynamic RoPE,
 * Q4_K_M where llama.cpp would use Q5_K). */
int fte_gguf_save(fte_model *m, const fte_vocab *vocab, const char *path,
    int dtype);
/* fte_gguf_vocab_save writes v alone as a GGUF v3 file with no tensors (the
 * tokenizer.* keys fte_gguf_save writes, as llama.cpp's vocabulary-only
 * files are), atomically: what a model imported from GGUF keeps as its
 * tokenizer.  fte_gguf_tokenizer_load and fte_vocab_load read it back. */
int fte_gguf_vocab_save(const fte_vocab *v, const char *path);
/* fte_gguf_modelfile writes the ollama Modelfile at path for the GGUF named
 * gguf_name beside it: TEMPLATE translated from vocab->chat_template for a
 * known family (ChatML, Llama 3, Zephyr), otherwise a note that ollama uses
 * the GGUF's embedded template; PARAMETER stop for the family's markers and
 * the EOS token. */
int fte_gguf_modelfile(const fte_vocab *vocab, const char *gguf_name, const char *path);

/* LoRA adapters to export, as the trainer holds them (fte_trainer_trainable
 * with rank > 0): tensors named "layers.{i}.<module>.lora_A.weight" (r, in)
 * and "...lora_B.weight" (out, r), <module> one of attn.wq, attn.wk, attn.wv,
 * attn.wo, ffn.w1, ffn.w3, ffn.w2 (Llama) or attn.wq/wk/wv/wo, ffn.fc,
 * ffn.proj (GPT-2).  The update is (alpha / rank) * B @ A. */
typedef struct fte_peft_adapter {
	int rank;
	float alpha;
	float dropout;
	const char *base_model;      /* base_model_name_or_path; may be NULL */
	int n_tensors;
	fte_tensor *const *tensors;
} fte_peft_adapter;

/* fte_peft_save writes the adapters as a PEFT directory (adapter_config.json
 * and adapter_model.safetensors, F32) for the base model m as fte_hf_save
 * writes it: Hugging Face module names, q/k rows permuted like the base for
 * llama2.c models, GPT-2's q/k/v adapters combined into one c_attn adapter.
 * FTE_EINVAL for names or shapes that do not fit m. */
int fte_peft_save(fte_model *m, const fte_peft_adapter *a, const char *dir);

/* fte_adapter_save writes the adapters a for a model of configuration c as
 * one safetensors file at path, in the canonical names above, F32, with
 * rank, alpha, dropout and targets in __metadata__ (adapter.c): what a
 * LoRA-tuned model keeps instead of merged weights.  Every name and shape is
 * checked against c first (FTE_EINVAL, nothing written); the file appears
 * atomically.  a->base_model is not stored. */
int fte_adapter_save(const fte_config *c, const fte_peft_adapter *a,
    const char *path);

/* fte_adapter_load reads a file written by fte_adapter_save and checks it
 * against c, the configuration of the base it will apply to: every tensor's
 * name and shape, lora_A and lora_B of every target module in every layer,
 * and the metadata.  FTE_EFORMAT with a message naming the file otherwise.
 * On success *out is the adapter (base_model NULL, which the caller may
 * set), ready for fte_adapter_apply or fte_peft_save; free it with
 * fte_adapter_free. */
int fte_adapter_load(const char *path, const fte_config *c,
    fte_peft_adapter **out);

/* fte_adapter_free releases an adapter from fte_adapter_load. NULL is
 * allowed. */
void fte_adapter_free(fte_peft_adapter *a);

/* fte_adapter_apply adds each adapter's (alpha / rank) * B @ A into m's
 * weights in place, with the arithmetic of fte_trainer_lora_merge, so m then
 * computes what the trained base + adapter did.  FTE_EINVAL (m unchanged)
 * when a does not fit m. */
int fte_adapter_apply(fte_model *m, const fte_peft_adapter *a);

/* fte_adapter_attach makes *out, a model that computes base + a unmerged:
 * each adapted layer is x W^T + (alpha / rank) (x A^T) B^T, the training
 * forward's LoRA path, with no dropout.  It shares base's weights (borrowed:
 * base must outlive *out and not change) and owns only a copy of the
 * adapter, so many adapters of one base cost one base.  It generates, scores
 * and reports its configuration like base; it cannot be trained, have an
 * adapter applied or carry a second one (FTE_EINVAL).  fte_model_free frees
 * only the adapter.  FTE_EINVAL when a does not fit base. */
int fte_adapter_attach(const fte_model *base, const fte_peft_adapter *a,
    fte_model **out);

#endif
