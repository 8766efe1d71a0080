/*
 * gguf.c - GGUF v3 export for llama.cpp / ollama, and a reader to check it.
 *
 * Layout (little-endian; ggml docs/gguf.md):
 *   "GGUF", uint32 version 3, uint64 tensor count, uint64 KV count,
 *   KVs: string key, uint32 type, value (arrays: uint32 element type,
 *        uint64 count, elements); a string is uint64 length + bytes,
 *   tensor infos: string name, uint32 n_dims, uint64 ne[n_dims] (ne[0] the
 *        fastest-varying, so a PyTorch (out, in) matrix is ne = {in, out}),
 *        uint32 ggml type (enum fte_ggml_type), uint64 offset in the data section,
 *   zero padding to general.alignment, then the data, each tensor padded.
 *
 * Keys written (Llama architecture, as llama.cpp's llama.cpp/src reads them;
 * GPT-2's below):
 *   general.architecture            string  "llama"
 *   general.name                    string  output file name without ".gguf"
 *   general.alignment               uint32  32
 *   general.file_type               uint32  0 all F32, 1 mostly F16, 7 Q8_0, 15 Q4_K_M
 *   llama.vocab_size                uint32
 *   llama.context_length            uint32  max_seq_len
 *   llama.embedding_length          uint32  dim
 *   llama.block_count               uint32  n_layers
 *   llama.feed_forward_length       uint32  ffn_dim
 *   llama.rope.dimension_count      uint32  head_dim
 *   llama.rope.freq_base            float32 rope_theta
 *   llama.rope.scaling.type         string  "linear" or "yarn", when scaled
 *   llama.rope.scaling.factor       float32
 *   llama.rope.scaling.original_context_length uint32 (yarn)
 *   llama.attention.head_count      uint32
 *   llama.attention.head_count_kv   uint32
 *   llama.attention.key_length      uint32  head_dim
 *   llama.attention.value_length    uint32  head_dim
 *   llama.attention.layer_norm_rms_epsilon float32
 *   tokenizer.ggml.model            string  "llama" (SentencePiece) or "gpt2"
 *   tokenizer.ggml.pre              string  "default" (llama), vocab->pre (gpt2)
 *   tokenizer.ggml.tokens           [string]
 *   tokenizer.ggml.scores           [float32]
 *   tokenizer.ggml.token_type       [int32]  enum fte_token_type
 *   tokenizer.ggml.merges           [string] "a b" (gpt2 only)
 *   tokenizer.ggml.bos_token_id / eos_token_id / unknown_token_id /
 *   padding_token_id                uint32   when known
 *   tokenizer.ggml.add_bos_token    bool
 *   tokenizer.chat_template         string   when tokenizer_config.json has one
 *
 * GPT-2 (general.architecture "gpt2", as convert_hf_to_gguf.py writes it):
 * gpt2.{context_length, embedding_length, block_count, feed_forward_length,
 * attention.head_count}, gpt2.attention.layer_norm_epsilon; tensors
 * token_embd, position_embd, blk.N.{attn_norm, attn_qkv (q, k, v rows in
 * that order), attn_output, ffn_norm, ffn_up, ffn_down}.{weight,bias},
 * output_norm.{weight,bias}, output.weight when untied; matrices (out, in)
 * as for Llama (the converter transposes Conv1D weights).
 *
 * Llama tensors: token_embd.weight, blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight (attn_q/k/v.bias
 * for Qwen2-style biases), output_norm.weight, output.weight (absent when the
 * embedding is tied; llama.cpp then reuses token_embd).  llama.cpp applies
 * RoPE to adjacent pairs, so rotate-half q/k rows are permuted as
 * convert_hf_to_gguf.py does: gguf[h*D + 2i + j] = hf[h*D + j*D/2 + i].
 */
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"

#define GGUF_ALIGN 32

/* ---- writer ---- */

/* A growable byte buffer for the metadata and tensor infos. */
typedef struct gbuf {
	uint8_t *p;
	size_t n, cap;
	int oom;
	uint64_t count;          /* KVs or tensor infos added */
} gbuf;

static void
gb_put(gbuf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (q == NULL) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void gb_u32(gbuf *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gbuf *b, uint64_t v) { gb_put(b, &v, 8); }

static void
gb_str(gbuf *b, const char *s)
{
	gb_u64(b, strlen(s));
	gb_put(b, s, strlen(s));
}

static void
kv_key(gbuf *b, const char *key, uint32_t type)
{
	gb_str(b, key);
	gb_u32(b, type);
	b->count++;
}

static void kv_u32(gbuf *b, const char *k, uint32_t v) { kv_key(b, k, FTE_GGUF_UINT32); gb_u32(b, v); }
static void kv_f32(gbuf *b, const char *k, float v) { kv_key(b, k, FTE_GGUF_FLOAT32); gb_put(b, &v, 4); }
static void kv_str(gbuf *b, const char *k, const char *v) { kv_key(b, k, FTE_GGUF_STRING); gb_str(b, v); }

static void
kv_bool(gbuf *b, const char *k, int v)
{
	uint8_t x = v != 0;

	kv_key(b, k, FTE_GGUF_BOOL);
	gb_put(b, &x, 1);
}

static void
kv_array(gbuf *b, const char *k, uint32_t type, uint64_t n)
{
	kv_key(b, k, FTE_GGUF_ARRAY);
	gb_u32(b, type);
	gb_u64(b, n);
}

/* One tensor to write: float32 source rows, possibly a permuted copy. */
typedef struct gguf_out {
	char name[64];
	int ndim;
	int64_t ne[2];
	int type;
	const float *data;
	float *owned;
	size_t numel;
	uint64_t offset;
} gguf_out;

/* Canonical names and GGUF ones, per architecture (as llama.cpp's gguf-py
 * tensor map names them); a row without "%d" is not per layer.  GPT-2's
 * q, k and v are one attn_qkv tensor in llama.cpp, their rows (or bias
 * values) in that order: part 1, 2, 3. */
#define ARCHS_LLAMA 1          /* llama.cpp's llama (Llama, Mistral, Qwen2) */
#define ARCHS_GPT2 2
#define ARCHS_ALL (ARCHS_LLAMA | ARCHS_GPT2)
static const struct gguf_name {
	const char *canon, *gguf;
	int archs, part;
} gguf_names[] = {
	{"tok_embeddings.weight", "token_embd.weight", ARCHS_ALL, 0},
	{"pos_embeddings.weight", "position_embd.weight", ARCHS_GPT2, 0},
	{"norm.weight", "output_norm.weight", ARCHS_ALL, 0},
	{"norm.bias", "output_norm.bias", ARCHS_GPT2, 0},
	{"output.weight", "output.weight", ARCHS_ALL, 0},
	{"layers.%d.attn_norm.weight", "blk.%d.attn_norm.weight", ARCHS_ALL, 0},
	{"layers.%d.attn_norm.bias", "blk.%d.attn_norm.bias", ARCHS_GPT2, 0},
	{"layers.%d.attn.wq.weight", "blk.%d.attn_q.weight", ARCHS_LLAMA, 0},
	{"layers.%d.attn.wq.bias", "blk.%d.attn_q.bias", ARCHS_LLAMA, 0},
	{"layers.%d.attn.wk.weight", "blk.%d.attn_k.weight", ARCHS_LLAMA, 0},
	{"layers.%d.attn.wk.bias", "blk.%d.attn_k.bias", ARCHS_LLAMA, 0},
	{"layers.%d.attn.wv.weight", "blk.%d.attn_v.weight", ARCHS_LLAMA, 0},
	{"layers.%d.attn.wv.bias", "blk.%d.attn_v.bias", ARCHS_LLAMA, 0},
	{"layers.%d.attn.wq.weight", "blk.%d.attn_qkv.weight", ARCHS_GPT2, 1},
	{"layers.%d.attn.wk.weight", "blk.%d.attn_qkv.weight", ARCHS_GPT2, 2},
	{"layers.%d.attn.wv.weight", "blk.%d.attn_qkv.weight", ARCHS_GPT2, 3},
	{"layers.%d.attn.wq.bias", "blk.%d.attn_qkv.bias", ARCHS_GPT2, 1},
	{"layers.%d.attn.wk.bias", "blk.%d.attn_qkv.bias", ARCHS_GPT2, 2},
	{"layers.%d.attn.wv.bias", "blk.%d.attn_qkv.bias", ARCHS_GPT2, 3},
	{"layers.%d.attn.wo.weight", "blk.%d.attn_output.weight", ARCHS_ALL, 0},
	{"layers.%d.attn.wo.bias", "blk.%d.attn_output.bias", ARCHS_GPT2, 0},
	{"layers.%d.ffn_norm.weight", "blk.%d.ffn_norm.weight", ARCHS_ALL, 0},
	{"layers.%d.ffn_norm.bias", "blk.%d.ffn_norm.bias", ARCHS_GPT2, 0},
	{"layers.%d.ffn.w1.weight", "blk.%d.ffn_gate.weight", ARCHS_LLAMA, 0},
	{"layers.%d.ffn.w3.weight", "blk.%d.ffn_up.weight", ARCHS_LLAMA, 0},
	{"layers.%d.ffn.w2.weight", "blk.%d.ffn_down.weight", ARCHS_LLAMA, 0},
	{"layers.%d.ffn.fc.weight", "blk.%d.ffn_up.weight", ARCHS_GPT2, 0},
	{"layers.%d.ffn.fc.bias", "blk.%d.ffn_up.bias", ARCHS_GPT2, 0},
	{"layers.%d.ffn.proj.weight", "blk.%d.ffn_down.weight", ARCHS_GPT2, 0},
	{"layers.%d.ffn.proj.bias", "blk.%d.ffn_down.bias", ARCHS_GPT2, 0},
};

/* name_match: does name spell pattern (with its %d as a layer number)? */
static int
name_match(const char *pattern, const char *name, int *layer)
{
	const char *d = strstr(pattern, "%d");
	char *end;
	long l;

	*layer = -1;
	if (d == NULL)
		return strcmp(pattern, name) == 0;
	if (strncmp(pattern, name, (size_t)(d - pattern)) != 0 ||
	    !(name[d - pattern] >= '0' && name[d - pattern] <= '9'))
		return 0;
	l = strtol(name + (d - pattern), &end, 10);
	if (l > 1 << 20 || strcmp(end, d + 2) != 0)
		return 0;
	*layer = (int)l;
	return 1;
}

/* archs_of: the gguf_names column an engine arch reads, by the GGUF
 * architecture it is written as (0: none). */
static int
archs_of(int arch)
{
	const fte_arch_info *a = fte_arch_get(arch);

	if (a == NULL || a->gguf == NULL)
		return 0;
	return strcmp(a->gguf, "gpt2") == 0 ? ARCHS_GPT2 : strcmp(a->gguf, "llama") == 0 ? ARCHS_LLAMA : 0;
}

int
fte__gguf_source(int arch, const char *canon, char *gname, size_t len, int *part)
{
	int layer;

	for (size_t i = 0; i < sizeof(gguf_names) / sizeof(gguf_names[0]); i++)
		if ((gguf_names[i].archs & archs_of(arch)) && name_match(gguf_names[i].canon, canon, &layer)) {
			snprintf(gname, len, gguf_names[i].gguf, layer);
			*part = gguf_names[i].part;
			return FTE_OK;
		}
	return FTE_ENOENT;
}

int
fte__gguf_to_canon(int arch, const char *gname, int part, char *out, size_t len)
{
	int layer;

	for (size_t i = 0; i < sizeof(gguf_names) / sizeof(gguf_names[0]); i++)
		if ((gguf_names[i].archs & archs_of(arch)) && gguf_names[i].part == part &&
		    name_match(gguf_names[i].gguf, gname, &layer)) {
			snprintf(out, len, gguf_names[i].canon, layer);
			return FTE_OK;
		}
	return FTE_ENOENT;
}

/* permute_to_interleaved reorders q/k rows (weight or bias) from rotate-half
 * to adjacent-pair order, head by head. */
static void
permute_to_interleaved(float *dst, const float *src, int heads, int D, size_t cols)
{
	for (int h = 0; h < heads; h++)
		for (int i = 0; i < D / 2; i++)
			for (int j = 0; j < 2; j++)
				memcpy(dst + ((size_t)h * D + 2 * (size_t)i + j) * cols,
				    src + ((size_t)h * D + (size_t)j * (D / 2) + i) * cols,
				    cols * sizeof(float));
}

static void
gguf_outs_free(gguf_out *o, int n)
{
	for (int i = 0; i < n; i++)
		free(o[i].owned);
	free(o);
}

/* use_more_bits: llama.cpp's Q4_K_M gives these layers' attn_v and ffn_down
 * Q6_K: the first and last eighth, and every third layer between. */
static int
use_more_bits(int layer, int n_layers)
{
	return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

/* gguf_pick_type chooses a tensor's ggml type as llama.cpp's quantizer
 * (llama-quant.cpp llama_tensor_get_type) does for the file type: vectors
 * stay F32, and learned positions (GPT-2's position_embd) in quantized files
 * too; Q8_0 quantizes every matrix; Q4_K_M uses Q4_K, Q6_K for the output
 * matrix (the embedding when tied; Q8_0 when its rows are not whole
 * 256-blocks) and for attn_v/ffn_down of use_more_bits layers, Q5_K for
 * GPT-2's attn_qkv and for attn_v of a 70B model (80 layers, grouped
 * heads) that would be Q4_K; a K type whose rows are not whole blocks falls
 * back to Q5_0 (Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K), and to F16 when not
 * whole 32-blocks either.  llama.cpp refuses a Q8_0 file with such rows; we
 * keep them F16 too.  -1 for Q5_1, which is not implemented. */
static int
gguf_pick_type(int dtype, const char *gname, int64_t ne0, int ndim, int has_output,
    const fte_config *c)
{
	int type, layer = 0, bytes;

	if (ndim != 2 || dtype == FTE_DTYPE_F32)
		return FTE_GGML_F32;
	if (dtype == FTE_DTYPE_F16)
		return FTE_GGML_F16;
	/* llama.cpp never quantizes learned positions */
	if (strcmp(gname, "position_embd.weight") == 0)
		return FTE_GGML_F32;
	type = dtype == FTE_DTYPE_Q8_0 ? FTE_GGML_Q8_0 : FTE_GGML_Q4_K;
	sscanf(gname, "blk.%d.", &layer);
	if (dtype == FTE_DTYPE_Q4_K_M) {
		if (strcmp(gname, "output.weight") == 0 ||
		    (!has_output && strcmp(gname, "token_embd.weight") == 0))
			type = ne0 % 256 != 0 ? FTE_GGML_Q8_0 : FTE_GGML_Q6_K;
		else if (strstr(gname, "attn_qkv.weight"))
			type = FTE_GGML_Q5_K;
		else if ((strstr(gname, "attn_v.weight") || strstr(gname, "ffn_down")) &&
		    use_more_bits(layer, c->n_layers))
			type = FTE_GGML_Q6_K;
		else if (strstr(gname, "attn_v.weight") && c->n_layers == 80 &&
		    c->n_heads != c->n_kv_heads)
			type = FTE_GGML_Q5_K;
	}
	if (ne0 % fte__ggml_block(type, &bytes) != 0) {
		if (type == FTE_GGML_Q5_K && ne0 % 32 == 0)
			return -1;
		type = type == FTE_GGML_Q4_K ? FTE_GGML_Q5_0 : type == FTE_GGML_Q6_K ?
		    FTE_GGML_Q8_0 : FTE_GGML_F16;
		if (ne0 % fte__ggml_block(type, &bytes) != 0)
			type = FTE_GGML_F16;
	}
	return type;
}

static uint64_t
tensor_bytes(int type, size_t numel)
{
	int bytes, block = fte__ggml_block(type, &bytes);

	return (uint64_t)(numel / (size_t)block) * (uint64_t)bytes;
}

/* qkv_fuse makes GPT-2's attn_qkv of layer tensor t (attn.wq, weight or
 * bias): the rows of wq, wk and wv one after another, as llama.cpp keeps
 * them. */
static int
qkv_fuse(fte_model *m, const fte_tensor *t, gguf_out *o)
{
	const fte_tensor *part[3];
	char name[FTE_NAME_MAX];
	const char *at = strstr(t->name, ".attn.wq.");
	size_t numel = 0;

	for (int k = 0; k < 3; k++) {
		snprintf(name, sizeof(name), "%.*s.attn.w%c.%s", (int)(at - t->name), t->name,
		    "qkv"[k], at + 9);
		if ((part[k] = fte_model_find(m, name)) == NULL)
			return fte_error_set(FTE_EINVAL, "GGUF export: %s has no %s", t->name, name);
		numel += part[k]->numel;
	}
	if ((o->owned = malloc(numel * sizeof(float))) == NULL)
		return fte_error_set(FTE_ENOMEM, "out of memory");
	numel = 0;
	for (int k = 0; k < 3; k++) {
		memcpy(o->owned + numel, part[k]->data, part[k]->numel * sizeof(float));
		numel += part[k]->numel;
	}
	o->data = o->owned;
	o->numel = numel;
	if (t->ndim == 2)
		o->ne[1] = (int64_t)(numel / (size_t)t->shape[1]);
	else
		o->ne[0] = (int64_t)numel;
	return FTE_OK;
}

/* gguf_outs_build lists m's tensors under GGUF names, q/k permuted when the
 * model is rotate-half and GPT-2's q/k/v fused, each with its type and
 * offset in the data section. */
static int
gguf_outs_build(fte_model *m, int dtype, gguf_out **out, int *n_out)
{
	const fte_config *c = fte_model_config(m);
	int n = fte_model_num_tensors(m), k = 0, rc = FTE_OK;
	gguf_out *o = calloc((size_t)n, sizeof(*o));
	int has_output = fte_model_find(m, "output.weight") != NULL;
	uint64_t off = 0;

	if (o == NULL)
		return fte_error_set(FTE_ENOMEM, "out of memory");
	for (int i = 0; i < n && rc == FTE_OK; i++) {
		fte_tensor *t = fte_model_tensor(m, i);
		size_t cols = t->ndim == 2 ? (size_t)t->shape[1] : 1;
		int is_q = strstr(t->name, ".attn.wq.") != NULL, is_k = strstr(t->name, ".attn.wk.") != NULL;
		int part;

		if (fte__gguf_source(c->arch, t->name, o[k].name, sizeof(o[k].name), &part) != FTE_OK) {
			rc = fte_error_set(FTE_ENOTSUP, "no GGUF name for %s", t->name);
			break;
		}
		if (part > 1)           /* inside the part 1 tensor */
			continue;
		o[k].ndim = t->ndim;
		o[k].ne[0] = (int64_t)cols;       /* ggml: ne[0] is the row length */
		o[k].ne[1] = t->shape[0];
		if (t->ndim == 1)
			o[k].ne[0] = t->shape[0];
		o[k].numel = t->numel;
		o[k].data = t->data;
		if (part == 1) {
			rc = qkv_fuse(m, t, &o[k]);
		} else if ((is_q || is_k) && fte_arch_get(c->arch)->rope && c->rope_style == FTE_ROPE_HALF) {
			if ((o[k].owned = malloc(t->numel * sizeof(float))) == NULL) {
				rc = fte_error_set(FTE_ENOMEM, "out of memory");
				break;
			}
			permute_to_interleaved(o[k].owned, t->data, is_q ? c->n_heads : c->n_kv_heads,
			    c->head_dim, cols);
			o[k].data = o[k].owned;
		}
		if ((o[k].type = gguf_pick_type(dtype, o[k].name, o[k].ne[0], t->ndim, has_output,
		    c)) < 0) {
			rc = fte_error_set(FTE_ENOTSUP, "%s: llama.cpp's Q4_K_M stores it in Q5_1 (rows "
			    "of %lld are not whole 256-blocks), which is not implemented", o[k].name,
			    (long long)o[k].ne[0]);
			break;
		}
		o[k].offset = off;
		off += (tensor_bytes(o[k].type, o[k].numel) + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
		k++;
	}
	if (rc != FTE_OK) {
		gguf_outs_free(o, k + 1);
		return rc;
	}
	*out = o;
	*n_out = k;
	return FTE_OK;
}

/* llama_ftype numbers: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_Q4_K_M 15 */
static int
file_type(int dtype)
{
	return dtype == FTE_DTYPE_F16 ? 1 : dtype == FTE_DTYPE_Q8_0 ? 7 :
	    dtype == FTE_DTYPE_Q4_K_M ? 15 : 0;
}

/* gguf_vocab_meta writes the tokenizer.* keys for V tokens (the
 * vocabulary padded with unused [PADn] tokens up to V). */
static void
gguf_vocab_meta(gbuf *b, const fte_vocab *v, int V, int bos, int eos)
{
	char pad[32];

	kv_str(b, "tokenizer.ggml.model", v->kind == FTE_VOCAB_SPM ? "llama" : "gpt2");
	kv_str(b, "tokenizer.ggml.pre", v->kind == FTE_VOCAB_SPM || v->pre[0] == '\0' ?
	    "default" : v->pre);
	/* a vocabulary shorter than the embedding is padded, as the HF
	 * converter does */
	kv_array(b, "tokenizer.ggml.tokens", FTE_GGUF_STRING, (uint64_t)V);
	for (int i = 0; i < V; i++) {
		snprintf(pad, sizeof(pad), "[PAD%d]", i);
		gb_str(b, i < v->n_tokens ? v->tokens[i] : pad);
	}
	kv_array(b, "tokenizer.ggml.scores", FTE_GGUF_FLOAT32, (uint64_t)V);
	for (int i = 0; i < V; i++) {
		float s = i < v->n_tokens ? v->scores[i] : 0.0f;
		gb_put(b, &s, 4);
	}
	kv_array(b, "tokenizer.ggml.token_type", FTE_GGUF_INT32, (uint64_t)V);
	for (int i = 0; i < V; i++) {
		int32_t t = i < v->n_tokens ? v->types[i] : FTE_TOKEN_UNUSED;
		gb_put(b, &t, 4);
	}
	if (v->kind == FTE_VOCAB_BPE) {
		kv_array(b, "tokenizer.ggml.merges", FTE_GGUF_STRING, (uint64_t)v->n_merges);
		for (int i = 0; i < v->n_merges; i++)
			gb_str(b, v->merges[i]);
	}
	if (bos >= 0 && bos < V)
		kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
	if (eos >= 0 && eos < V)
		kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
	if (v->unk_id >= 0 && v->unk_id < V)
		kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id);
	if (v->pad_id >= 0 && v->pad_id < V)
		kv_u32(b, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad_id);
	kv_bool(b, "tokenizer.ggml.add_bos_token", v->add_bos);
	if (v->chat_template != NULL)
		kv_str(b, "tokenizer.chat_template", v->chat_template);
}

static void
gguf_meta_build(gbuf *b, const fte_config *c, const fte_vocab *v, const char *name,
    int dtype)
{
	int V = c->vocab_size, bos = c->bos_id >= 0 ? c->bos_id : v->bos_id;
	int eos = c->eos_id >= 0 ? c->eos_id : v->eos_id;

	char k[96];
	const char *arch = fte_arch_get(c->arch)->gguf;

#define KEY(suffix) (snprintf(k, sizeof(k), "%s.%s", arch, suffix), k)
	kv_str(b, "general.architecture", arch);
	kv_str(b, "general.name", name);
	kv_u32(b, "general.alignment", GGUF_ALIGN);
	kv_u32(b, "general.file_type", (uint32_t)file_type(dtype));
	kv_u32(b, KEY("vocab_size"), (uint32_t)V);
	kv_u32(b, KEY("context_length"), (uint32_t)(c->sliding_window > 0 &&
	    c->sliding_window < c->max_seq_len ? c->sliding_window : c->max_seq_len));
	kv_u32(b, KEY("embedding_length"), (uint32_t)c->dim);
	kv_u32(b, KEY("block_count"), (uint32_t)c->n_layers);
	kv_u32(b, KEY("feed_forward_length"), (uint32_t)c->ffn_dim);
	kv_u32(b, KEY("attention.head_count"), (uint32_t)c->n_heads);
	if (!fte_arch_get(c->arch)->rope) {
		/* GPT-2: LayerNorm, learned positions, no RoPE or head keys */
		kv_f32(b, KEY("attention.layer_norm_epsilon"), c->norm_eps);
		gguf_vocab_meta(b, v, V, bos, eos);
		return;
	}
	kv_u32(b, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
	kv_f32(b, KEY("rope.freq_base"), c->rope_theta);
	if (c->rope.type == FTE_ROPE_LINEAR || c->rope.type == FTE_ROPE_YARN) {
		kv_str(b, KEY("rope.scaling.type"), c->rope.type == FTE_ROPE_LINEAR ? "linear" : "yarn");
		kv_f32(b, KEY("rope.scaling.factor"), (float)c->rope.factor);
		if (c->rope.type == FTE_ROPE_YARN)
			kv_u32(b, KEY("rope.scaling.original_context_length"), (uint32_t)c->rope.orig_ctx);
	}
	kv_u32(b, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
	kv_u32(b, KEY("attention.key_length"), (uint32_t)c->head_dim);
	kv_u32(b, KEY("attention.value_length"), (uint32_t)c->head_dim);
	kv_f32(b, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
#undef KEY
	gguf_vocab_meta(b, v, V, bos, eos);
}

int
fte_gguf_save(fte_model *m, const fte_vocab *vocab, const char *path, int dtype)
{
	const fte_config *c = fte_model_config(m);
	static const uint8_t zeros[GGUF_ALIGN];
	gbuf meta = {0}, infos = {0};
	gguf_out *o = NULL;
	fte__afile af;
	char name[256];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	uint64_t pos;
	uint16_t half[1024];
	int n = 0, rc;

	if (fte_arch_get(c->arch)->gguf == NULL)
		return fte_error_set(FTE_ENOTSUP, "%s: GGUF export of %s models is not supported "
		    "(llama.cpp's architecture for them is not written here)", path,
		    fte_arch_get(c->arch)->title);
	/* llama.cpp's llama architecture attends to the whole context, which
	 * is exact for a window over every layer only up to the window */
	if (c->sliding_window > 0 && c->sliding_pattern > 0)
		return fte_error_set(FTE_ENOTSUP, "%s: GGUF export of full and sliding layers "
		    "mixed is not supported", path);
	if (dtype != FTE_DTYPE_F32 && dtype != FTE_DTYPE_F16 && dtype != FTE_DTYPE_Q8_0 &&
	    dtype != FTE_DTYPE_Q4_K_M)
		return fte_error_set(FTE_EINVAL, "%s: GGUF dtype must be F32, F16, Q8_0 or Q4_K_M", path);
	/* llama.cpp's YaRN has beta 32/1, rounded ramp ends and attention
	 * factor 0.1 ln(factor) + 1; llama3 needs a rope_freqs tensor and
	 * dynamic NTK has no key */
	if (c->rope.type == FTE_ROPE_YARN && (c->rope.beta_fast != 32 || c->rope.beta_slow != 1 ||
	    c->rope.no_truncate || c->rope.attn_factor > 0))
		return fte_error_set(FTE_ENOTSUP, "%s: GGUF has no keys for this YaRN's beta_fast, "
		    "beta_slow, truncate or attention_factor", path);
	if (c->rope.type == FTE_ROPE_LLAMA3 || c->rope.type == FTE_ROPE_DYNAMIC)
		return fte_error_set(FTE_ENOTSUP, "%s: GGUF export of %s RoPE scaling is not supported "
		    "(llama.cpp %s)", path, c->rope.type == FTE_ROPE_LLAMA3 ? "llama3" : "dynamic",
		    c->rope.type == FTE_ROPE_LLAMA3 ? "reads it from a rope_freqs tensor, not written here" :
		    "has no such key");
	if (vocab == NULL || vocab->n_tokens > c->vocab_size)
		return fte_error_set(FTE_EINVAL, "%s: %s", path, vocab == NULL ? "no vocabulary given"
		    : "the vocabulary is larger than the model's embedding");
	snprintf(name, sizeof(name), "%s", base);
	if (strlen(name) > 5 && strcmp(name + strlen(name) - 5, ".gguf") == 0)
		name[strlen(name) - 5] = '\0';
	if ((rc = gguf_outs_build(m, dtype, &o, &n)) != FTE_OK)
		return rc;
	gguf_meta_build(&meta, c, vocab, name, dtype);
	for (int i = 0; i < n; i++) {
		gb_str(&infos, o[i].name);
		gb_u32(&infos, (uint32_t)o[i].ndim);
		for (int d = 0; d < o[i].ndim; d++)
			gb_u64(&infos, (uint64_t)o[i].ne[d]);
		gb_u32(&infos, (uint32_t)o[i].type);
		gb_u64(&infos, o[i].offset);
	}
	if (meta.oom || infos.oom) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	if ((rc = fte__afile_open(&af, path)) != FTE_OK)
		goto out;
	fte__afile_write(&af, "GGUF", 4);
	{
		uint32_t version = 3;
		uint64_t nt = (uint64_t)n;
		fte__afile_write(&af, &version, 4);
		fte__afile_write(&af, &nt, 8);
		fte__afile_write(&af, &meta.count, 8);
	}
	fte__afile_write(&af, meta.p, meta.n);
	fte__afile_write(&af, infos.p, infos.n);
	pos = 24 + meta.n + infos.n;
	fte__afile_write(&af, zeros, (GGUF_ALIGN - pos % GGUF_ALIGN) % GGUF_ALIGN);
	for (int i = 0; i < n && rc == FTE_OK; i++) {
		uint64_t bytes = tensor_bytes(o[i].type, o[i].numel);
		if (o[i].type == FTE_GGML_F32) {
			fte__afile_write(&af, o[i].data, bytes);
		} else if (o[i].type == FTE_GGML_F16) {
			for (size_t j = 0; j < o[i].numel; j += 1024) {
				size_t cnt = o[i].numel - j < 1024 ? o[i].numel - j : 1024;
				fte__f32_to_f16_n(half, o[i].data + j, cnt);
				fte__afile_write(&af, half, cnt * 2);
			}
		} else {
			uint8_t *q = malloc((size_t)bytes);
			if (q == NULL)
				rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			else if ((rc = fte__ggml_quantize(o[i].type, o[i].data, q, o[i].numel)) == FTE_OK)
				fte__afile_write(&af, q, (size_t)bytes);
			free(q);
		}
		fte__afile_write(&af, zeros, (GGUF_ALIGN - bytes % GGUF_ALIGN) % GGUF_ALIGN);
	}
	if (rc != FTE_OK) {
		fte__afile_abort(&af);
		goto out;
	}
	rc = fte__afile_commit(&af);
out:
	free(meta.p);
	free(infos.p);
	gguf_outs_free(o, n);
	return rc;
}

int
fte_gguf_vocab_save(const fte_vocab *v, const char *path)
{
	static const uint8_t zeros[GGUF_ALIGN];
	gbuf meta = {0};
	fte__afile af;
	uint32_t version = 3;
	uint64_t nt = 0;
	int rc;

	if (v == NULL || v->n_tokens <= 0)
		return fte_error_set(FTE_EINVAL, "%s: no vocabulary given", path);
	kv_u32(&meta, "general.alignment", GGUF_ALIGN);
	gguf_vocab_meta(&meta, v, v->n_tokens, v->bos_id, v->eos_id);
	if (meta.oom) {
		free(meta.p);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	if ((rc = fte__afile_open(&af, path)) == FTE_OK) {
		fte__afile_write(&af, "GGUF", 4);
		fte__afile_write(&af, &version, 4);
		fte__afile_write(&af, &nt, 8);
		fte__afile_write(&af, &meta.count, 8);
		fte__afile_write(&af, meta.p, meta.n);
		fte__afile_write(&af, zeros, (GGUF_ALIGN - (24 + meta.n) % GGUF_ALIGN) % GGUF_ALIGN);
		rc = fte__afile_commit(&af);
	}
	free(meta.p);
	return rc;
}

/* ---- reader: tensor extents (gguf_read.c parses the rest) ---- */

/* gguf_tensors_check: rows of whole blocks, data inside the file. */
static int
gguf_tensors_check(const fte_gguf_file *f)
{
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_gguf_tensor *t = &f->tensors[i];
		int bytes, block = fte__ggml_block(t->type, &bytes);
		/* a type we do not know is listed, and refused when read */
		if (block && t->ne[0] % block != 0)
			return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": rows of %lld are not whole %s blocks",
			    f->path, t->name, (long long)t->ne[0], fte__ggml_type_name(t->type));
		if (t->offset % f->alignment != 0 || t->offset > f->data_len ||
		    (block && tensor_bytes(t->type, t->numel) > f->data_len - t->offset))
			return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": data outside the file",
			    f->path, t->name);
	}
	return FTE_OK;
}

static int
gguf_checked(int rc, fte_gguf_file *f, fte_gguf_file **out)
{
	if (rc == FTE_OK && (rc = gguf_tensors_check(f)) != FTE_OK)
		fte_gguf_close(f);
	if (rc == FTE_OK)
		*out = f;
	return rc;
}

int
fte_gguf_parse(const char *path, const uint8_t *buf, size_t len, fte_gguf_file **out)
{
	fte_gguf_file *f = NULL;
	int rc = fte__gguf_read(path, buf, len, &f);

	return gguf_checked(rc, f, out);
}

int
fte_gguf_open(const char *path, fte_gguf_file **out)
{
	fte_gguf_file *f = NULL;
	int rc = fte__gguf_map(path, &f);

	return gguf_checked(rc, f, out);
}

int
fte_gguf_read_f32(const fte_gguf_file *f, const fte_gguf_tensor *t, float *dst)
{
	int bytes;

	if (fte__ggml_block(t->type, &bytes) == 0)
		return fte_error_set(FTE_ENOTSUP, "%s: tensor \"%s\": ggml type %d not supported",
		    f->path, t->name, t->type);
	return fte__ggml_dequantize(t->type, f->data + t->offset, dst, t->numel);
}
