/*
 * gguf_load.c - import of Llama-family GGUF files (llama.cpp's "llama",
 * "mistral" and "qwen2" architectures, and the engine's own exports): the
 * configuration from the {arch}.* keys, every tensor dequantized to float32
 * (any type gguf_quant.c reads), and the embedded SentencePiece vocabulary
 * (tokenizer.ggml.model "llama") as a tokenizer.
 *
 * llama.cpp's converter stores llama/mistral q/k rows in adjacent-pair RoPE
 * order, which the engine computes directly (FTE_ROPE_INTERLEAVED); qwen2
 * keeps rotate-half order (llama.cpp's NEOX rope), FTE_ROPE_HALF.  What the
 * engine cannot compute exactly is refused with the reason: other
 * architectures, RoPE scaling, rope_freqs tensors, unknown tensors or types.
 */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "tok_internal.h"

static const struct {
	const char *arch;
	int rope_style;
} archs[] = {
	{"llama", FTE_ROPE_INTERLEAVED},
	{"mistral", FTE_ROPE_INTERLEAVED},
	{"qwen2", FTE_ROPE_HALF},
};

/* key_int reads {arch}.{name}; def when absent. */
static int64_t
key_int(const fte_gguf_file *f, const char *arch, const char *name, int64_t def)
{
	char key[128];
	const fte_gguf_kv *kv;

	snprintf(key, sizeof(key), "%s.%s", arch, name);
	kv = fte_gguf_kv_find(f, key);
	return kv ? fte_gguf_kv_int(kv) : def;
}

static double
key_float(const fte_gguf_file *f, const char *arch, const char *name, double def)
{
	char key[128];
	const fte_gguf_kv *kv;

	snprintf(key, sizeof(key), "%s.%s", arch, name);
	kv = fte_gguf_kv_find(f, key);
	return kv ? fte_gguf_kv_float(kv) : def;
}

static int
str_is(const fte_gguf_kv *kv, const char *want)
{
	uint64_t len;
	const char *s = fte_gguf_kv_str(kv, 0, &len);

	return s != NULL && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* gguf_config fills c from the metadata, refusing what the engine lacks. */
static int
gguf_config(const fte_gguf_file *f, fte_config *c)
{
	const fte_gguf_kv *akv = fte_gguf_kv_find(f, "general.architecture");
	const fte_gguf_tensor *emb = fte_gguf_tensor_find(f, "token_embd.weight");
	const char *arch = NULL;
	char key[128];
	int64_t rope_dim, vlen;

	for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
		if (str_is(akv, archs[i].arch)) {
			arch = archs[i].arch;
			c->rope_style = archs[i].rope_style;
		}
	if (arch == NULL) {
		uint64_t len = 0;
		const char *s = fte_gguf_kv_str(akv, 0, &len);
		return fte_error_set(FTE_ENOTSUP, "%s: architecture \"%.*s\" is not one the engine "
		    "computes (llama, mistral, qwen2)", f->path, s ? (int)len : 0, s ? s : "");
	}
	snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
	if (fte_gguf_kv_find(f, key) != NULL && !str_is(fte_gguf_kv_find(f, key), "none"))
		return fte_error_set(FTE_ENOTSUP, "%s: RoPE scaling (%s) is not implemented", f->path, key);
	if (key_float(f, arch, "rope.scaling.factor", 1.0) != 1.0 || fte_gguf_tensor_find(f, "rope_freqs.weight"))
		return fte_error_set(FTE_ENOTSUP, "%s: RoPE frequency scaling is not implemented", f->path);
	if (key_int(f, arch, "expert_count", 0) > 1)
		return fte_error_set(FTE_ENOTSUP, "%s: mixture-of-experts models are not supported", f->path);
	if (emb == NULL || emb->ndim != 2)
		return fte_error_set(FTE_EFORMAT, "%s: no token_embd.weight matrix", f->path);
	c->dim = (int)key_int(f, arch, "embedding_length", 0);
	c->n_layers = (int)key_int(f, arch, "block_count", 0);
	c->ffn_dim = (int)key_int(f, arch, "feed_forward_length", 0);
	c->n_heads = (int)key_int(f, arch, "attention.head_count", 0);
	c->n_kv_heads = (int)key_int(f, arch, "attention.head_count_kv", c->n_heads);
	c->head_dim = c->n_heads > 0 ? (int)key_int(f, arch, "attention.key_length",
	    c->dim / c->n_heads) : 0;
	vlen = key_int(f, arch, "attention.value_length", c->head_dim);
	rope_dim = key_int(f, arch, "rope.dimension_count", c->head_dim);
	if (vlen != c->head_dim || rope_dim != c->head_dim)
		return fte_error_set(FTE_ENOTSUP, "%s: value length %lld or RoPE dimensions %lld differ "
		    "from the head size %d (partial RoPE is not implemented)", f->path,
		    (long long)vlen, (long long)rope_dim, c->head_dim);
	c->vocab_size = (int)emb->ne[1];
	c->max_seq_len = (int)key_int(f, arch, "context_length", 2048);
	c->norm_eps = (float)key_float(f, arch, "attention.layer_norm_rms_epsilon", 1e-5);
	c->rope_theta = (float)key_float(f, arch, "rope.freq_base", 10000.0);
	c->tied_embeddings = fte_gguf_tensor_find(f, "output.weight") == NULL;
	/* q/k/v biases make it the Qwen2 row, whatever the file calls itself */
	c->arch = fte_gguf_tensor_find(f, "blk.0.attn_q.bias") != NULL ? FTE_ARCH_QWEN2 : FTE_ARCH_LLAMA;
	c->bos_id = (int)fte_gguf_kv_int(fte_gguf_kv_find(f, "tokenizer.ggml.bos_token_id"));
	c->eos_id = (int)fte_gguf_kv_int(fte_gguf_kv_find(f, "tokenizer.ggml.eos_token_id"));
	if (fte_gguf_kv_find(f, "tokenizer.ggml.bos_token_id") == NULL || c->bos_id >= c->vocab_size)
		c->bos_id = -1;
	if (fte_gguf_kv_find(f, "tokenizer.ggml.eos_token_id") == NULL || c->eos_id >= c->vocab_size)
		c->eos_id = -1;
	if (fte_config_check(c) != FTE_OK)
		return fte_error_set(FTE_EFORMAT, "%s: %s", f->path, fte_last_error());
	/* allocate only what the file can fill: no type stores more than two
	 * values a byte */
	{
		double C = c->dim, HD = (double)c->n_heads * c->head_dim;
		double KD = (double)c->n_kv_heads * c->head_dim;
		double need = (double)c->vocab_size * C + c->n_layers * (2 * C * HD + 2 * KD * C +
		    3 * C * (double)c->ffn_dim);
		if (need > 2.0 * (double)f->data_len)
			return fte_error_set(FTE_EFORMAT, "%s: the configuration needs %.0f weights, more "
			    "than the file holds", f->path, need);
	}
	return FTE_OK;
}

int
fte_gguf_load(const char *path, fte_model **out)
{
	fte_gguf_file *f;
	fte_config c = {0};
	fte_model *m = NULL;
	int rc, filled = 0;

	if ((rc = fte_gguf_open(path, &f)) != FTE_OK)
		return rc;
	if ((rc = gguf_config(f, &c)) != FTE_OK || (rc = fte_model_create(&c, &m)) != FTE_OK)
		goto out;
	for (int i = 0; i < f->n_tensors && rc == FTE_OK; i++) {
		const fte_gguf_tensor *g = &f->tensors[i];
		char canon[FTE_NAME_MAX];
		fte_tensor *t;
		int bytes;

		if (fte__gguf_to_canon(g->name, canon, sizeof(canon)) != FTE_OK ||
		    (t = fte_model_find(m, canon)) == NULL) {
			rc = fte_error_set(FTE_ENOTSUP, "%s: tensor \"%s\" has no place in a %s model",
			    path, g->name, "Llama-architecture");
			break;
		}
		if (g->ndim != t->ndim || g->ne[0] != (t->ndim == 2 ? t->shape[1] : t->shape[0]) ||
		    (t->ndim == 2 && g->ne[1] != t->shape[0])) {
			rc = fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\" has the wrong shape for the "
			    "configuration", path, g->name);
			break;
		}
		if (fte__ggml_block(g->type, &bytes) == 0) {
			rc = fte_error_set(FTE_ENOTSUP, "%s: tensor \"%s\": ggml type %d is not supported "
			    "(F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K are)", path, g->name, g->type);
			break;
		}
		rc = fte_gguf_read_f32(f, g, t->data);
		filled++;
	}
	if (rc == FTE_OK && filled != fte_model_num_tensors(m))
		rc = fte_error_set(FTE_EFORMAT, "%s: %d of the model's %d tensors are missing", path,
		    fte_model_num_tensors(m) - filled, fte_model_num_tensors(m));
out:
	fte_gguf_close(f);
	if (rc != FTE_OK) {
		fte_model_free(m);
		return rc;
	}
	*out = m;
	return FTE_OK;
}

/* sp_kind maps llama.cpp's token types onto SentencePiece piece kinds; byte
 * and user-defined pieces are ordinary pieces to the merger. */
static enum tok_sp_kind
sp_kind(int type)
{
	switch (type) {
	case FTE_TOKEN_UNKNOWN: return TOK_SP_UNKNOWN;
	case FTE_TOKEN_CONTROL: return TOK_SP_CONTROL;
	case FTE_TOKEN_UNUSED: return TOK_SP_UNUSED;
	default: return TOK_SP_NORMAL;
	}
}

int
fte_gguf_tokenizer_load(const char *path, fte_tokenizer **out)
{
	const fte_gguf_kv *tok, *scores, *types;
	struct tok_sp_piece *pc = NULL;
	fte_gguf_file *f;
	int rc;

	if ((rc = fte_gguf_open(path, &f)) != FTE_OK)
		return rc;
	tok = fte_gguf_kv_find(f, "tokenizer.ggml.tokens");
	scores = fte_gguf_kv_find(f, "tokenizer.ggml.scores");
	types = fte_gguf_kv_find(f, "tokenizer.ggml.token_type");
	if (!str_is(fte_gguf_kv_find(f, "tokenizer.ggml.model"), "llama")) {
		rc = fte_error_set(FTE_ENOTSUP, "%s: only SentencePiece (tokenizer.ggml.model \"llama\") "
		    "GGUF vocabularies are read; give the model's tokenizer with --tokenizer", path);
	} else if (tok == NULL || tok->type != FTE_GGUF_ARRAY || tok->arr_type != FTE_GGUF_STRING ||
	    tok->n == 0 || tok->n > (1 << 22) || (scores && scores->n != tok->n) ||
	    (types && types->n != tok->n)) {
		rc = fte_error_set(FTE_EFORMAT, "%s: tokenizer.ggml.tokens/scores/token_type missing "
		    "or of different lengths", path);
	} else if ((pc = calloc((size_t)tok->n, sizeof(*pc))) == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	} else {
		for (uint64_t i = 0; i < tok->n; i++) {
			uint64_t len;
			pc[i].s = fte_gguf_kv_str(tok, i, &len);
			pc[i].len = (size_t)len;
			if (tok_utf8_check(pc[i].s, pc[i].len) != pc[i].len) {
				rc = fte_error_set(FTE_EFORMAT, "%s: token %llu is not valid UTF-8", path,
				    (unsigned long long)i);
				break;
			}
			pc[i].score = scores ? (float)fte_gguf_kv_arr_num(scores, i) : 0.0f;
			pc[i].kind = types ? sp_kind((int)fte_gguf_kv_arr_num(types, i)) : TOK_SP_NORMAL;
		}
		if (rc == FTE_OK)
			rc = tok_sp_build(path, pc, (int)tok->n, 0, out);
	}
	free(pc);
	fte_gguf_close(f);
	return rc;
}
