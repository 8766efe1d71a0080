/*
 * gguf_load.c - import of Llama-family and GPT-2 GGUF files (llama.cpp's
 * "llama", "mistral", "qwen2" and "gpt2" architectures, and the engine's own
 * exports): the configuration from the {arch}.* keys, every tensor
 * dequantized to float32 (any type gguf_quant.c reads; GPT-2's attn_qkv
 * split into q, k, v); the embedded vocabulary is tok_gguf.c's.
 *
 * llama.cpp's converter stores llama/mistral q/k rows in adjacent-pair RoPE
 * order, which the engine computes directly (FTE_ROPE_INTERLEAVED); qwen2
 * keeps rotate-half order (llama.cpp's NEOX rope), FTE_ROPE_HALF.  What the
 * engine cannot compute exactly is refused with the reason: other
 * architectures, RoPE scaling, rope_freqs tensors, unknown tensors or types.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"

static const struct {
	const char *arch;
	int engine_arch, rope_style;
} archs[] = {
	{"llama", FTE_ARCH_LLAMA, FTE_ROPE_INTERLEAVED},
	{"mistral", FTE_ARCH_LLAMA, FTE_ROPE_INTERLEAVED},
	{"qwen2", FTE_ARCH_LLAMA, FTE_ROPE_HALF},
	{"gpt2", FTE_ARCH_GPT2, FTE_ROPE_INTERLEAVED},
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

/* gguf_config_finish takes BOS/EOS from the vocabulary's ids, checks the
 * configuration and that the file can fill it. */
static int
gguf_config_finish(const fte_gguf_file *f, fte_config *c)
{
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
		    (c->arch == FTE_ARCH_GPT2 ? 2 : 3) * C * (double)c->ffn_dim);
		if (need > 2.0 * (double)f->data_len)
			return fte_error_set(FTE_EFORMAT, "%s: the configuration needs %.0f weights, more "
			    "than the file holds", f->path, need);
	}
	return FTE_OK;
}

/* gguf_config_gpt2: llama.cpp's gpt2 keys (LayerNorm epsilon, no RoPE);
 * the context is the learned position table's length. */
static int
gguf_config_gpt2(const fte_gguf_file *f, fte_config *c)
{
	const fte_gguf_tensor *emb = fte_gguf_tensor_find(f, "token_embd.weight");
	const fte_gguf_tensor *pos = fte_gguf_tensor_find(f, "position_embd.weight");

	if (emb == NULL || emb->ndim != 2 || pos == NULL || pos->ndim != 2)
		return fte_error_set(FTE_EFORMAT, "%s: a gpt2 file needs token_embd.weight and "
		    "position_embd.weight matrices", f->path);
	c->dim = (int)key_int(f, "gpt2", "embedding_length", 0);
	c->n_layers = (int)key_int(f, "gpt2", "block_count", 0);
	c->ffn_dim = (int)key_int(f, "gpt2", "feed_forward_length", 4 * (int64_t)c->dim);
	c->n_heads = c->n_kv_heads = (int)key_int(f, "gpt2", "attention.head_count", 0);
	c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
	c->vocab_size = (int)emb->ne[1];
	c->max_seq_len = (int)pos->ne[1];
	if (key_int(f, "gpt2", "context_length", c->max_seq_len) != c->max_seq_len)
		return fte_error_set(FTE_EFORMAT, "%s: gpt2.context_length differs from the %d "
		    "learned positions", f->path, c->max_seq_len);
	c->norm_eps = (float)key_float(f, "gpt2", "attention.layer_norm_epsilon", 1e-5);
	c->tied_embeddings = fte_gguf_tensor_find(f, "output.weight") == NULL;
	return gguf_config_finish(f, c);
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
			c->arch = archs[i].engine_arch;
			c->rope_style = archs[i].rope_style;
		}
	if (akv == NULL)
		return fte_error_set(FTE_EFORMAT, "%s: no general.architecture: not a model (a "
		    "vocabulary-only file?)", f->path);
	if (arch == NULL) {
		uint64_t len = 0;
		const char *s = fte_gguf_kv_str(akv, 0, &len);
		char name[32];
		return fte_error_set(FTE_ENOTSUP, "%s: architecture \"%s\" is not one the engine "
		    "computes (llama, mistral, qwen2, gpt2)", f->path, fte__gguf_shown(s, (size_t)len, name));
	}
	if (c->arch == FTE_ARCH_GPT2)
		return gguf_config_gpt2(f, c);
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
	return gguf_config_finish(f, c);
}

/* gguf_tensor_read dequantizes the GGUF tensor g into its place in m (for
 * GPT-2's attn_qkv, the three tensors its rows are), after checking its
 * name, shape and type; *filled counts the model tensors filled. */
static int
gguf_tensor_read(const fte_gguf_file *f, fte_model *m, const fte_gguf_tensor *g, int *filled)
{
	const fte_config *c = fte_model_config(m);
	fte_tensor *t[3] = {NULL, NULL, NULL};
	char canon[FTE_NAME_MAX];
	int n = 0, bytes, rc;
	size_t numel = 0;
	int64_t rows = 0;
	float *buf;

	if (fte__gguf_to_canon(c->arch, g->name, 0, canon, sizeof(canon)) == FTE_OK)
		n = (t[0] = fte_model_find(m, canon)) != NULL;
	else
		for (int p = 1; p <= 3; p++)
			if (fte__gguf_to_canon(c->arch, g->name, p, canon, sizeof(canon)) == FTE_OK &&
			    (t[n] = fte_model_find(m, canon)) != NULL)
				n++;
	if (n == 0 || (n != 1 && n != 3))
		return fte_error_set(FTE_ENOTSUP, "%s: tensor \"%s\" has no place in a %s model",
		    f->path, g->name, fte_arch_get(c->arch)->title);
	for (int k = 0; k < n; k++) {
		numel += t[k]->numel;
		rows += t[k]->shape[0];
	}
	if (g->ndim != t[0]->ndim || g->numel != numel ||
	    (t[0]->ndim == 2 && (g->ne[0] != t[0]->shape[1] || g->ne[1] != rows)))
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\" has the wrong shape for the "
		    "configuration", f->path, g->name);
	if (fte__ggml_block(g->type, &bytes) == 0) {
		const char *tn = fte__ggml_type_name(g->type);
		return fte_error_set(FTE_ENOTSUP, "%s: tensor \"%s\": ggml type %s (%d) is "
		    "not supported (F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K are)", f->path,
		    g->name, tn ? tn : "unknown", g->type);
	}
	if (n == 1) {
		(*filled)++;
		return fte_gguf_read_f32(f, g, t[0]->data);
	}
	/* fused q, k, v: their rows (or bias values) one after another */
	if ((buf = malloc(numel * sizeof(float))) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	if ((rc = fte_gguf_read_f32(f, g, buf)) == FTE_OK) {
		numel = 0;
		for (int k = 0; k < 3; k++) {
			memcpy(t[k]->data, buf + numel, t[k]->numel * sizeof(float));
			numel += t[k]->numel;
		}
		*filled += 3;
	}
	free(buf);
	return rc;
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
	for (int i = 0; i < f->n_tensors && rc == FTE_OK; i++)
		rc = gguf_tensor_read(f, m, &f->tensors[i], &filled);
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

int
fte_gguf_describe(const char *path, char **json)
{
	static const struct { const char *key, *name; } keys[] = {
		{"general.architecture", "architecture"}, {"general.name", "name"},
		{"tokenizer.ggml.model", "tokenizer"}, {"tokenizer.ggml.pre", "pre_tokenizer"},
	};
	json_t *o = json_object(), *types = json_object();
	fte_gguf_file *f;
	int rc;

	if ((rc = fte_gguf_open(path, &f)) != FTE_OK) {
		json_decref(o);
		json_decref(types);
		return rc;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint64_t len;
		const char *s = fte_gguf_kv_str(fte_gguf_kv_find(f, keys[i].key), 0, &len);
		json_t *v = s ? json_stringn(s, (size_t)len) : NULL;
		if (v != NULL)   /* not UTF-8: left out */
			json_object_set_new(o, keys[i].name, v);
	}
	if (fte_gguf_kv_find(f, "general.file_type") != NULL)
		json_object_set_new(o, "file_type", json_integer(fte_gguf_kv_int(
		    fte_gguf_kv_find(f, "general.file_type"))));
	for (int i = 0; i < f->n_tensors; i++) {
		const char *tn = fte__ggml_type_name(f->tensors[i].type);
		json_t *c = json_object_get(types, tn ? tn : "unknown");
		json_object_set_new(types, tn ? tn : "unknown",
		    json_integer(c ? json_integer_value(c) + 1 : 1));
	}
	json_object_set_new(o, "tensor_types", types);
	json_object_set_new(o, "chat_template", json_boolean(
	    fte_gguf_kv_find(f, "tokenizer.chat_template") != NULL));
	fte_gguf_close(f);
	*json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return *json ? FTE_OK : fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
}
