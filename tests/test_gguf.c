/* test_gguf.c - GGUF export read back with our reader: metadata keys,
 * tensor names, shapes, alignment, q/k permutation (inverted it gives the
 * original), F16 rounding; vocabularies from tokenizer.json and tokenizer.bin;
 * byte-level BPE vocabularies through tokenizer.gguf id for id; malformed
 * inputs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "ftengine.h"
#include "ft_test.h"

static const char *
asset(const char *rel)
{
	static char paths[4][4096];
	static int k;
	const char *root = getenv("FT_ASSETS");
	char *path = paths[k++ % 4];

	snprintf(path, 4096, "%s/%s", root ? root : "../shared/assets", rel);
	if (access(path, R_OK) != 0) {
		printf("SKIP: %s not found\n", path);
		return NULL;
	}
	return path;
}

static const char *
fixture_dir(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s%s", ft_test_fixture("hf/"), name);
	return path;
}

static int64_t
kv_int(const fte_gguf_file *f, const char *key)
{
	const fte_gguf_kv *kv = fte_gguf_kv_find(f, key);

	if (kv == NULL)
		fprintf(stderr, "missing key %s\n", key);
	return kv ? fte_gguf_kv_int(kv) : -12345;
}

static int
kv_str_is(const fte_gguf_file *f, const char *key, uint64_t i, const char *want)
{
	uint64_t len;
	const char *s = fte_gguf_kv_str(fte_gguf_kv_find(f, key), i, &len);

	return s != NULL && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* A handmade SentencePiece-style vocabulary of n tokens. */
static fte_vocab *
vocab_make(int n)
{
	fte_vocab *v = calloc(1, sizeof(*v));

	v->kind = FTE_VOCAB_SPM;
	v->n_tokens = n;
	v->tokens = calloc((size_t)n, sizeof(char *));
	v->scores = calloc((size_t)n, sizeof(float));
	v->types = calloc((size_t)n, sizeof(int));
	for (int i = 0; i < n; i++) {
		char buf[16];
		snprintf(buf, sizeof(buf), "t%d", i);
		v->tokens[i] = strdup(buf);
		v->scores[i] = -(float)i;
		v->types[i] = i < 3 ? FTE_TOKEN_CONTROL : FTE_TOKEN_NORMAL;
	}
	v->bos_id = 1;
	v->eos_id = 2;
	v->unk_id = 0;
	v->pad_id = -1;
	v->add_bos = 1;
	return v;
}

/* gguf_row returns the canonical row that GGUF row r of a q/k projection
 * holds: interleaved r = h*D + 2i + j comes from rotate-half h*D + j*D/2 + i. */
static int
half_row(int r, int D)
{
	int h = r / D, k = r % D;

	return h * D + (k % 2) * (D / 2) + k / 2;
}

/* check_tensors reads every tensor back and compares it with the model,
 * undoing the q/k permutation when permuted and F16 rounding when f16. */
static void
check_tensors(fte_model *m, const fte_gguf_file *f, int permuted, int f16)
{
	const fte_config *c = fte_model_config(m);
	int bad = 0, found = 0;

	for (int i = 0; i < f->n_tensors; i++) {
		const fte_gguf_tensor *t = &f->tensors[i];
		char canon[64];
		int layer, n = 0;
		const char *kind = NULL;
		fte_tensor *ct;

		CHECK(t->offset % 32 == 0);
		if (sscanf(t->name, "blk.%d.%n", &layer, &n) == 1 && n > 0) {
			static const char *map[][2] = {
				{"attn_norm.weight", "attn_norm.weight"}, {"attn_q.weight", "attn.wq.weight"},
				{"attn_k.weight", "attn.wk.weight"}, {"attn_v.weight", "attn.wv.weight"},
				{"attn_q.bias", "attn.wq.bias"}, {"attn_k.bias", "attn.wk.bias"},
				{"attn_v.bias", "attn.wv.bias"}, {"attn_output.weight", "attn.wo.weight"},
				{"ffn_norm.weight", "ffn_norm.weight"}, {"ffn_gate.weight", "ffn.w1.weight"},
				{"ffn_up.weight", "ffn.w3.weight"}, {"ffn_down.weight", "ffn.w2.weight"},
			};
			for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++)
				if (strcmp(t->name + n, map[k][0]) == 0)
					kind = map[k][1];
			CHECK(kind != NULL);
			if (kind == NULL)
				continue;
			snprintf(canon, sizeof(canon), "layers.%d.%s", layer, kind);
		} else {
			snprintf(canon, sizeof(canon), "%s",
			    strcmp(t->name, "token_embd.weight") == 0 ? "tok_embeddings.weight" :
			    strcmp(t->name, "output_norm.weight") == 0 ? "norm.weight" : t->name);
		}
		ct = fte_model_find(m, canon);
		CHECK(ct != NULL);
		if (ct == NULL)
			continue;
		found++;
		/* ne[0] is the row length */
		CHECK(t->ndim == ct->ndim);
		CHECK(t->ne[0] == (ct->ndim == 2 ? ct->shape[1] : ct->shape[0]));
		if (ct->ndim == 2)
			CHECK(t->ne[1] == ct->shape[0]);
		CHECK(t->type == (f16 && ct->ndim == 2 ? 1 : 0));
		float *got = malloc(t->numel * sizeof(float));
		CHECK(fte_gguf_read_f32(f, t, got) == FTE_OK);
		int qk = strstr(canon, ".attn.wq.") || strstr(canon, ".attn.wk.");
		size_t cols = ct->ndim == 2 ? (size_t)ct->shape[1] : 1;
		for (size_t r = 0; r < (size_t)ct->shape[0]; r++)
			for (size_t k = 0; k < cols; k++) {
				size_t src = (qk && permuted ? (size_t)half_row((int)r, c->head_dim) : r) * cols + k;
				float want = ct->data[src];
				if (t->type == 1)
					want = fte__f16_to_f32(fte__f32_to_f16(want));
				bad += got[r * cols + k] != want;
			}
		free(got);
	}
	CHECK(bad == 0);
	CHECK(found == fte_model_num_tensors(m));
}

static void
test_hf_model(void)
{
	fte_model *m = NULL;
	fte_gguf_file *f = NULL;
	fte_vocab *v = vocab_make(60);       /* shorter than the model's 64: padded */

	CHECK(fte_model_load(fixture_dir("llama_sharded"), &m) == FTE_OK);
	if (m == NULL)
		return;
	CHECK(fte_gguf_save(m, v, ft_test_tmp("m32.gguf"), FTE_DTYPE_F32) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("m32.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(f->version == 3);
		CHECK(f->n_tensors == fte_model_num_tensors(m));
		CHECK(((uintptr_t)f->data - (uintptr_t)f->map) % 32 == 0);
		CHECK(kv_str_is(f, "general.architecture", 0, "llama"));
		CHECK(kv_str_is(f, "general.name", 0, "m32"));
		CHECK(kv_int(f, "general.file_type") == 0);
		CHECK(kv_int(f, "general.alignment") == 32);
		CHECK(kv_int(f, "llama.context_length") == 64);
		CHECK(kv_int(f, "llama.embedding_length") == 32);
		CHECK(kv_int(f, "llama.block_count") == 2);
		CHECK(kv_int(f, "llama.feed_forward_length") == 64);
		CHECK(kv_int(f, "llama.rope.dimension_count") == 8);
		CHECK(kv_int(f, "llama.attention.head_count") == 4);
		CHECK(kv_int(f, "llama.attention.head_count_kv") == 2);
		CHECK(kv_int(f, "llama.vocab_size") == 64);
		CHECK(fte_gguf_kv_find(f, "llama.attention.layer_norm_rms_epsilon")->type == FTE_GGUF_FLOAT32);
		CHECK((float)fte_gguf_kv_float(fte_gguf_kv_find(f, "llama.attention.layer_norm_rms_epsilon")) == 1e-6f);
		CHECK((float)fte_gguf_kv_float(fte_gguf_kv_find(f, "llama.rope.freq_base")) == 500000.0f);
		CHECK(kv_str_is(f, "tokenizer.ggml.model", 0, "llama"));
		CHECK(kv_str_is(f, "tokenizer.ggml.tokens", 5, "t5"));
		CHECK(kv_str_is(f, "tokenizer.ggml.tokens", 59, "t59"));
		CHECK(kv_str_is(f, "tokenizer.ggml.tokens", 62, "[PAD62]"));
		CHECK(fte_gguf_kv_find(f, "tokenizer.ggml.tokens")->n == 64);
		CHECK(fte_gguf_kv_arr_num(fte_gguf_kv_find(f, "tokenizer.ggml.scores"), 7) == -7.0);
		CHECK(fte_gguf_kv_arr_num(fte_gguf_kv_find(f, "tokenizer.ggml.token_type"), 1) == FTE_TOKEN_CONTROL);
		CHECK(fte_gguf_kv_arr_num(fte_gguf_kv_find(f, "tokenizer.ggml.token_type"), 63) == FTE_TOKEN_UNUSED);
		CHECK(kv_int(f, "tokenizer.ggml.bos_token_id") == 1);
		CHECK(kv_int(f, "tokenizer.ggml.eos_token_id") == 2);
		CHECK(kv_int(f, "tokenizer.ggml.unknown_token_id") == 0);
		CHECK(kv_int(f, "tokenizer.ggml.add_bos_token") == 1);
		CHECK(fte_gguf_kv_find(f, "tokenizer.ggml.merges") == NULL);
		const fte_gguf_tensor *t = fte_gguf_tensor_find(f, "token_embd.weight");
		CHECK(t != NULL && t->ne[0] == 32 && t->ne[1] == 64);
		CHECK(fte_gguf_tensor_find(f, "output.weight") != NULL);
		CHECK(fte_gguf_tensor_find(f, "blk.1.ffn_down.weight") != NULL);
		t = fte_gguf_tensor_find(f, "blk.0.attn_k.weight");
		CHECK(t != NULL && t->ne[0] == 32 && t->ne[1] == 16);
		check_tensors(m, f, 1, 0);
		fte_gguf_close(f);
		f = NULL;
	}
	CHECK(fte_gguf_save(m, v, ft_test_tmp("m16.gguf"), FTE_DTYPE_F16) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("m16.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_int(f, "general.file_type") == 1);
		check_tensors(m, f, 1, 1);
		fte_gguf_close(f);
		f = NULL;
	}
	/* bad arguments: vocabulary too long, unknown dtype; nothing written */
	fte_vocab_free(v);
	v = vocab_make(65);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("bad.gguf"), FTE_DTYPE_F32) == FTE_EINVAL);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("bad.gguf"), 7) == FTE_EINVAL);
	CHECK(access(ft_test_tmp("bad.gguf"), F_OK) != 0);
	fte_vocab_free(v);
	fte_model_free(m);

	/* tied head: no output.weight; Qwen2-style biases are permuted too */
	const char *more[] = {"llama_tied", "qwen2_bias"};
	for (int k = 0; k < 2; k++) {
		CHECK(fte_model_load(fixture_dir(more[k]), &m) == FTE_OK);
		v = vocab_make(64);
		CHECK(fte_gguf_save(m, v, ft_test_tmp("t.gguf"), FTE_DTYPE_F32) == FTE_OK);
		CHECK(fte_gguf_open(ft_test_tmp("t.gguf"), &f) == FTE_OK);
		if (f != NULL) {
			CHECK((fte_gguf_tensor_find(f, "output.weight") == NULL) == (k == 0));
			CHECK((fte_gguf_tensor_find(f, "blk.1.attn_k.bias") != NULL) == (k == 1));
			check_tensors(m, f, 1, 0);
			fte_gguf_close(f);
			f = NULL;
		}
		fte_vocab_free(v);
		fte_model_free(m);
		m = NULL;
	}
}

/* GPT-2 as llama.cpp's gpt2 architecture: its keys, position_embd, q/k/v
 * rows fused into attn_qkv; F32 read back bit for bit, Q8_0 within half a
 * quantization step, Q4_K_M refused (it needs Q5_K). */
static void
test_gpt2(void)
{
	fte_model *m = NULL, *back = NULL;
	fte_gguf_file *f = NULL;
	fte_vocab *v = vocab_make(64);
	const char *path = ft_test_tmp("g.gguf");

	CHECK(fte_model_load(fixture_dir("gpt2"), &m) == FTE_OK);
	if (m == NULL) {
		fte_vocab_free(v);
		return;
	}
	CHECK(fte_gguf_save(m, v, path, FTE_DTYPE_F32) == FTE_OK);
	CHECK(fte_gguf_open(path, &f) == FTE_OK);
	if (f != NULL) {
		const fte_gguf_tensor *qkv = fte_gguf_tensor_find(f, "blk.1.attn_qkv.weight");
		const fte_gguf_tensor *up = fte_gguf_tensor_find(f, "blk.0.ffn_up.weight");
		const fte_gguf_tensor *pos = fte_gguf_tensor_find(f, "position_embd.weight");
		CHECK(kv_str_is(f, "general.architecture", 0, "gpt2"));
		CHECK(kv_int(f, "gpt2.embedding_length") == 32 && kv_int(f, "gpt2.block_count") == 2);
		CHECK(kv_int(f, "gpt2.context_length") == 16 && kv_int(f, "gpt2.attention.head_count") == 4);
		CHECK(kv_int(f, "gpt2.feed_forward_length") == 128);
		CHECK(fte_gguf_kv_find(f, "gpt2.attention.layer_norm_epsilon") != NULL);
		CHECK(fte_gguf_kv_find(f, "gpt2.rope.freq_base") == NULL);
		CHECK(qkv != NULL && qkv->ne[0] == 32 && qkv->ne[1] == 96);
		CHECK(fte_gguf_tensor_find(f, "blk.1.attn_qkv.bias") != NULL &&
		    fte_gguf_tensor_find(f, "blk.1.attn_qkv.bias")->ne[0] == 96);
		CHECK(up != NULL && up->ne[0] == 32 && up->ne[1] == 128);
		CHECK(pos != NULL && pos->ne[0] == 32 && pos->ne[1] == 16);
		CHECK(fte_gguf_tensor_find(f, "output_norm.bias") != NULL);
		CHECK(fte_gguf_tensor_find(f, "output.weight") == NULL);
		CHECK(fte_gguf_tensor_find(f, "blk.0.attn_q.weight") == NULL);
		/* 4 + 12 per layer */
		CHECK(f->n_tensors == 4 + 2 * 12);
		fte_gguf_close(f);
		f = NULL;
	}
	CHECK(fte_gguf_load(path, &back) == FTE_OK);
	if (back != NULL) {
		int bad = fte_model_num_tensors(back) != fte_model_num_tensors(m);
		CHECK(fte_model_config(back)->arch == FTE_ARCH_GPT2);
		CHECK(fte_model_config(back)->tied_embeddings == fte_model_config(m)->tied_embeddings);
		CHECK(fte_model_config(back)->norm_eps == fte_model_config(m)->norm_eps);
		for (int i = 0; !bad && i < fte_model_num_tensors(m); i++) {
			const fte_tensor *a = fte_model_tensor(m, i), *b = fte_model_find(back, a->name);
			bad = b == NULL || b->numel != a->numel ||
			    memcmp(a->data, b->data, a->numel * sizeof(float)) != 0;
		}
		CHECK(bad == 0);
		fte_model_free(back);
		back = NULL;
	}
	CHECK(fte_gguf_save(m, v, path, FTE_DTYPE_Q8_0) == FTE_OK);
	CHECK(fte_gguf_open(path, &f) == FTE_OK);
	if (f != NULL) {
		CHECK(fte_gguf_tensor_find(f, "blk.0.attn_qkv.weight")->type == FTE_GGML_Q8_0);
		CHECK(fte_gguf_tensor_find(f, "position_embd.weight")->type == FTE_GGML_F32);
		fte_gguf_close(f);
	}
	CHECK(fte_gguf_load(path, &back) == FTE_OK);
	for (int i = 0; back != NULL && i < fte_model_num_tensors(m); i++) {
		const fte_tensor *a = fte_model_tensor(m, i), *b = fte_model_find(back, a->name);
		float amax = 0, err = 0;
		for (size_t k = 0; b != NULL && k < a->numel; k++) {
			float d = fabsf(a->data[k] - b->data[k]);
			amax = fabsf(a->data[k]) > amax ? fabsf(a->data[k]) : amax;
			err = d > err ? d : err;
		}
		/* Q8_0 rounds to steps of d = block amax / 127 and stores d in
		 * F16: half a step plus 127 times d's rounding (2^-11 d) */
		CHECK(b != NULL && err <= amax / 127.0f * (0.5f + 127.0f / 2048.0f) + 1e-7f);
	}
	fte_model_free(back);
	/* Q4_K_M: attn_qkv would be Q5_K, and rows of 32 make that Q5_1 */
	CHECK(fte_gguf_save(m, v, path, FTE_DTYPE_Q4_K_M) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "blk.0.attn_qkv.weight: llama.cpp's Q4_K_M stores it in Q5_1") != NULL);
	fte_vocab_free(v);
	fte_model_free(m);
}

/* GPT-2 in Q4_K_M with whole 256-blocks: llama.cpp's types (Q5_K attn_qkv,
 * Q6_K for the tied embedding and the last layer's ffn_down, F32
 * positions), and the import within each type's error. */
static void
test_gpt2_q4_k_m(void)
{
	fte_config c = {.arch = FTE_ARCH_GPT2, .n_layers = 2, .dim = 256, .n_heads = 4,
	    .n_kv_heads = 4, .head_dim = 64, .ffn_dim = 1024, .vocab_size = 64, .max_seq_len = 16,
	    .norm_eps = 1e-5f, .tied_embeddings = 1, .bos_id = 1, .eos_id = 2};
	static const struct { const char *name; int type; } want[] = {
		{"token_embd.weight", FTE_GGML_Q6_K}, {"position_embd.weight", FTE_GGML_F32},
		{"blk.0.attn_qkv.weight", FTE_GGML_Q5_K}, {"blk.0.attn_output.weight", FTE_GGML_Q4_K},
		{"blk.0.ffn_up.weight", FTE_GGML_Q4_K}, {"blk.0.ffn_down.weight", FTE_GGML_Q4_K},
		{"blk.1.ffn_down.weight", FTE_GGML_Q6_K}, {"blk.1.attn_qkv.bias", FTE_GGML_F32},
	};
	const char *path = ft_test_tmp("g4.gguf");
	fte_vocab *v = vocab_make(64);
	fte_model *m = NULL, *back = NULL;
	fte_gguf_file *f = NULL;

	CHECK(fte_model_create(&c, &m) == FTE_OK && fte_model_init_random(m, 7) == FTE_OK);
	CHECK(fte_gguf_save(m, v, path, FTE_DTYPE_Q4_K_M) == FTE_OK);
	CHECK(fte_gguf_open(path, &f) == FTE_OK);
	for (size_t i = 0; f != NULL && i < sizeof(want) / sizeof(want[0]); i++) {
		const fte_gguf_tensor *t = fte_gguf_tensor_find(f, want[i].name);
		if (t == NULL || t->type != want[i].type)
			fprintf(stderr, "%s: type %d, want %d\n", want[i].name, t ? t->type : -1, want[i].type);
		CHECK(t != NULL && t->type == want[i].type);
	}
	fte_gguf_close(f);
	CHECK(fte_gguf_load(path, &back) == FTE_OK);
	for (int i = 0; back != NULL && i < fte_model_num_tensors(m); i++) {
		const fte_tensor *a = fte_model_tensor(m, i), *b = fte_model_find(back, a->name);
		double se = 0, sx = 0;
		for (size_t k = 0; b != NULL && k < a->numel; k++) {
			se += (double)(a->data[k] - b->data[k]) * (a->data[k] - b->data[k]);
			sx += (double)a->data[k] * a->data[k];
		}
		/* Q4_K's bound (test_gguf_quant); the rest are finer */
		CHECK(b != NULL && (sx == 0 || sqrt(se / sx) <= 0.10));
	}
	fte_model_free(back);
	fte_model_free(m);
	fte_vocab_free(v);
}

/* RoPE scaling: linear and YaRN as llama.cpp's rope.scaling keys; what
 * GGUF cannot say (llama3, YaRN variants, Qwen3's q/k norms) is refused
 * and nothing written. */
static void
test_rope_scaling(void)
{
	fte_model *m = NULL, *z = NULL;
	fte_gguf_file *f = NULL;
	fte_vocab *v = vocab_make(64);
	fte_config c;

	CHECK(fte_model_load(fixture_dir("qwen2_yarn"), &m) == FTE_OK);
	CHECK(m != NULL && fte_gguf_save(m, v, ft_test_tmp("y.gguf"), FTE_DTYPE_F32) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("y.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_str_is(f, "llama.rope.scaling.type", 0, "yarn"));
		CHECK(fte_gguf_kv_float(fte_gguf_kv_find(f, "llama.rope.scaling.factor")) == 4.0);
		CHECK(kv_int(f, "llama.rope.scaling.original_context_length") == 4096);
		CHECK(kv_int(f, "llama.context_length") == 16384);
		fte_gguf_close(f);
		f = NULL;
	}
	if (m != NULL) {
		c = *fte_model_config(m);
		c.rope.attn_factor = 0.5;
		CHECK(fte_model_create(&c, &z) == FTE_OK);
		CHECK(fte_gguf_save(z, v, ft_test_tmp("ya.gguf"), FTE_DTYPE_F32) == FTE_ENOTSUP);
		CHECK(strstr(fte_last_error(), "attention_factor") != NULL);
		CHECK(access(ft_test_tmp("ya.gguf"), F_OK) != 0);
		fte_model_free(z);
		z = NULL;
		c.rope = (fte_rope_scaling){ .type = FTE_ROPE_LINEAR, .factor = 2.0 };
		CHECK(fte_model_create(&c, &z) == FTE_OK);
		CHECK(fte_gguf_save(z, v, ft_test_tmp("l.gguf"), FTE_DTYPE_F32) == FTE_OK);
		CHECK(fte_gguf_open(ft_test_tmp("l.gguf"), &f) == FTE_OK);
		if (f != NULL) {
			CHECK(kv_str_is(f, "llama.rope.scaling.type", 0, "linear"));
			CHECK(fte_gguf_kv_float(fte_gguf_kv_find(f, "llama.rope.scaling.factor")) == 2.0);
			CHECK(fte_gguf_kv_find(f, "llama.rope.scaling.original_context_length") == NULL);
			fte_gguf_close(f);
		}
		fte_model_free(z);
	}
	fte_model_free(m);
	m = NULL;
	CHECK(fte_model_load(fixture_dir("llama3_rope"), &m) == FTE_OK);
	CHECK(m != NULL && fte_gguf_save(m, v, ft_test_tmp("l3.gguf"), FTE_DTYPE_F32) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "llama3") != NULL);
	CHECK(access(ft_test_tmp("l3.gguf"), F_OK) != 0);
	fte_model_free(m);
	m = NULL;
	/* Qwen3's q/k norms are llama.cpp's qwen3 architecture, not llama */
	CHECK(fte_model_load(fixture_dir("qwen3"), &m) == FTE_OK);
	CHECK(m != NULL && fte_gguf_save(m, v, ft_test_tmp("q3.gguf"), FTE_DTYPE_F32) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "Qwen3") != NULL);
	CHECK(access(ft_test_tmp("q3.gguf"), F_OK) != 0);
	fte_model_free(m);
	fte_vocab_free(v);
}

/* stories260K (llama2.c, interleaved RoPE already) with its tok512.bin */
static void
test_llama2c(void)
{
	const char *model = asset("llama2c/stories260K.bin");
	const char *tok = asset("llama2c/tok512.bin");
	fte_model *m = NULL;
	fte_vocab *v = NULL;
	fte_gguf_file *f = NULL;

	if (model == NULL || tok == NULL)
		return;
	CHECK(fte_model_load(model, &m) == FTE_OK);
	CHECK(fte_vocab_load(tok, &v) == FTE_OK);
	if (m == NULL || v == NULL) {
		fte_model_free(m);
		fte_vocab_free(v);
		return;
	}
	CHECK(v->n_tokens == 512 && v->kind == FTE_VOCAB_SPM);
	CHECK_STR(v->tokens[1], "<s>");
	CHECK_STR(v->tokens[2], "</s>");
	CHECK_STR(v->tokens[3], "<0x00>");
	CHECK(v->types[0] == FTE_TOKEN_UNKNOWN && v->types[1] == FTE_TOKEN_CONTROL &&
	    v->types[3] == FTE_TOKEN_BYTE && v->types[300] == FTE_TOKEN_NORMAL);
	CHECK(v->bos_id == 1 && v->eos_id == 2 && v->unk_id == 0 && v->add_bos);
	int spaces = 0, sp_pieces = 0;
	for (int i = 0; i < v->n_tokens; i++) {
		spaces += strchr(v->tokens[i], ' ') != NULL;
		sp_pieces += strncmp(v->tokens[i], "\xe2\x96\x81", 3) == 0;
	}
	printf("tok512: %d pieces with spaces, %d starting with U+2581\n", spaces, sp_pieces);
	CHECK(spaces == 0 && sp_pieces > 50);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("stories260K.gguf"), FTE_DTYPE_F32) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("stories260K.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_int(f, "llama.embedding_length") == 64);
		CHECK(kv_int(f, "llama.attention.head_count_kv") == 4);
		CHECK(kv_int(f, "llama.context_length") == 512);
		CHECK(kv_str_is(f, "tokenizer.ggml.tokens", 1, "<s>"));
		CHECK(fte_gguf_kv_arr_num(fte_gguf_kv_find(f, "tokenizer.ggml.scores"), 300) == v->scores[300]);
		CHECK(fte_gguf_tensor_find(f, "output.weight") == NULL);
		check_tensors(m, f, 0, 0);       /* already interleaved: no permutation */
		fte_gguf_close(f);
	}
	fte_vocab_free(v);
	fte_model_free(m);
}

static void
test_vocab_json(void)
{
	const char *path = asset("tokenizers/tinyllama-1.1b-chat/tokenizer.json");
	const char *bin = asset("llama2c/tokenizer.bin");
	fte_vocab *v = NULL, *b = NULL;

	if (path == NULL || bin == NULL)
		return;
	CHECK(fte_vocab_load(path, &v) == FTE_OK);
	CHECK(fte_vocab_load(bin, &b) == FTE_OK);
	if (v == NULL || b == NULL) {
		fte_vocab_free(v);
		fte_vocab_free(b);
		return;
	}
	CHECK(v->kind == FTE_VOCAB_SPM && v->n_tokens == 32000 && v->n_merges == 0);
	CHECK(v->bos_id == 1 && v->eos_id == 2 && v->unk_id == 0 && v->add_bos == 1);
	CHECK(v->types[1] == FTE_TOKEN_CONTROL && v->types[0] == FTE_TOKEN_UNKNOWN);
	CHECK(v->types[3 + 0x41] == FTE_TOKEN_BYTE && v->types[29871] == FTE_TOKEN_NORMAL);
	CHECK(v->chat_template != NULL && strncmp(v->chat_template, "{% for message", 14) == 0);
	CHECK_STR(v->tokens[29871], "\xe2\x96\x81");
	CHECK(b->n_tokens == 32000);
	/* scores derived from merge ranks order tokens as SentencePiece's own
	 * scores (tokenizer.bin) do */
	int same = 0, pieces = 0, disagree = 0;
	for (int i = 259; i < 32000; i++) {
		same += strcmp(v->tokens[i], b->tokens[i]) == 0;
		if (i > 259 && v->scores[i] > -(float)61249 && v->scores[i - 1] > -(float)61249 &&
		    b->scores[i] > -1e8f && b->scores[i - 1] > -1e8f) {
			pieces++;
			disagree += (v->scores[i] - v->scores[i - 1]) * (b->scores[i] - b->scores[i - 1]) < 0;
		}
	}
	printf("tinyllama vs tokenizer.bin: %d equal pieces, %d neighbours compared, %d disagree\n",
	    same, pieces, disagree);
	CHECK(same > 31700);
	CHECK(pieces > 20000 && disagree == 0);
	fte_vocab_free(v);
	fte_vocab_free(b);
	v = NULL;

	CHECK(fte_vocab_load(asset("hf/tiny-gpt2"), &v) == FTE_OK);
	if (v != NULL) {
		CHECK(v->kind == FTE_VOCAB_BPE && v->n_tokens == 50257 && v->n_merges == 50000);
		CHECK_STR(v->merges[0], "\xc4\xa0 t");
		CHECK_STR(v->tokens[50256], "<|endoftext|>");
		CHECK(v->eos_id == 50256 && v->add_bos == 0);
		CHECK_STR(v->pre, "gpt-2");
		CHECK(v->scores[100] == 0.0f);
		fte_vocab_free(v);
		v = NULL;
	}
	CHECK(fte_vocab_load(asset("tokenizers/smollm2-135m-instruct/tokenizer.json"), &v) == FTE_OK);
	if (v != NULL) {
		CHECK(v->kind == FTE_VOCAB_BPE && v->n_tokens == 49152 && v->n_merges == 48900);
		CHECK_STR(v->pre, "smollm");
		CHECK(v->types[0] == FTE_TOKEN_CONTROL);
		fte_vocab_free(v);
	}
}

static void
test_bad(void)
{
	fte_vocab *v = NULL;
	fte_gguf_file *f = NULL;
	/* max_len 4, then (score, len, bytes): "ab", then a token cut short */
	static const unsigned char bin[] = {4, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'a', 'b',
	    0, 0, 0, 0, 3, 0, 0, 0, 'c'};
	static const unsigned char bad_utf8[] = {4, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0x28};

	ft_test_file_write(ft_test_tmp("cut.bin"), bin, sizeof(bin));
	CHECK(fte_vocab_load(ft_test_tmp("cut.bin"), &v) == FTE_EFORMAT);
	CHECK(strstr(fte_last_error(), "cut.bin") != NULL);
	ft_test_file_write(ft_test_tmp("utf8.bin"), bad_utf8, sizeof(bad_utf8));
	CHECK(fte_vocab_load(ft_test_tmp("utf8.bin"), &v) == FTE_EFORMAT);
	CHECK(strstr(fte_last_error(), "UTF-8") != NULL);
	const char *uni = "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
	ft_test_file_write(ft_test_tmp("uni.json"), uni, strlen(uni));
	CHECK(fte_vocab_load(ft_test_tmp("uni.json"), &v) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "Unigram") != NULL);
	/* byte-level pre-tokenizers are named as llama.cpp knows them */
	static const struct { const char *regex, *pre; } pres[] = {
		{"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s]+", "llama-bpe"},
		{"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s]+", "qwen2"},
	};
	for (int k = 0; k < 2; k++) {
		char json[1024];
		int n = snprintf(json, sizeof(json), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
		    "\"merges\": [[\"a\", \"b\"]]}, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
		    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"%s\"}}, {\"type\": \"ByteLevel\"}]}}", pres[k].regex);
		ft_test_file_write(ft_test_tmp("pre.json"), json, (size_t)n);
		CHECK(fte_vocab_load(ft_test_tmp("pre.json"), &v) == FTE_OK);
		if (v != NULL) {
			CHECK(v->kind == FTE_VOCAB_BPE && v->n_merges == 1);
			CHECK_STR(v->merges[0], "a b");
			CHECK_STR(v->pre, pres[k].pre);
			fte_vocab_free(v);
			v = NULL;
		}
	}
	ft_test_file_write(ft_test_tmp("bad.json"), "{\"model\": ", 10);
	CHECK(fte_vocab_load(ft_test_tmp("bad.json"), &v) == FTE_EFORMAT);
	CHECK(v == NULL);

	/* GGUF files: bad magic, truncated metadata, data past the end */
	CHECK(fte_gguf_open(ft_test_tmp("cut.bin"), &f) == FTE_EFORMAT);
	fte_model *m = NULL;
	CHECK(fte_model_load(fixture_dir("llama_tied"), &m) == FTE_OK);
	if (m == NULL)
		return;
	v = vocab_make(64);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("ok.gguf"), FTE_DTYPE_F32) == FTE_OK);
	fte_vocab_free(v);
	fte_model_free(m);
	FILE *fp = fopen(ft_test_tmp("ok.gguf"), "rb");
	unsigned char *buf = malloc(1 << 20);
	size_t n = fp ? fread(buf, 1, 1 << 20, fp) : 0;
	if (fp)
		fclose(fp);
	CHECK(n > 1000);
	size_t cuts[] = {30, 200, 2000, n - 100};
	for (int i = 0; i < 4; i++) {
		ft_test_file_write(ft_test_tmp("cut.gguf"), buf, cuts[i]);
		CHECK(fte_gguf_open(ft_test_tmp("cut.gguf"), &f) == FTE_EFORMAT);
		CHECK(strstr(fte_last_error(), "cut.gguf") != NULL);
	}
	buf[8] = 0xff;                      /* a tensor count far beyond the file */
	buf[15] = 0x7f;
	ft_test_file_write(ft_test_tmp("cut.gguf"), buf, n);
	CHECK(fte_gguf_open(ft_test_tmp("cut.gguf"), &f) == FTE_EFORMAT);
	free(buf);
}

/* run calls an ftengine subcommand with a NULL-terminated word list. */
static int
run(int (*fn)(int, char **), const char *const *words)
{
	char *argv[32];
	int argc = 0;

	while (words[argc] != NULL && argc < 31) {
		argv[argc] = (char *)words[argc];
		argc++;
	}
	argv[argc] = NULL;
	fflush(stdout);
	return fn(argc, argv);
}

/* ftengine export / inspect, end to end, and the chat template key. */
static void
test_cli(void)
{
	char hf[4096], gguf[4096], gguf2[4096];
	const char *model = fixture_dir("llama_f16");
	fte_model *a = NULL, *b = NULL;
	fte_gguf_file *f = NULL;

	snprintf(hf, sizeof(hf), "%s", ft_test_tmp("cli_hf"));
	snprintf(gguf, sizeof(gguf), "%s", ft_test_tmp("cli.gguf"));
	snprintf(gguf2, sizeof(gguf2), "%s", ft_test_tmp("tmpl.gguf"));
	CHECK(run(ftengine_export, (const char *const[]){"export", "--model", model, "--format", "hf",
	    "--dtype", "f16", "--out", hf, "--json", NULL}) == 0);
	CHECK(fte_model_load(model, &a) == FTE_OK);
	CHECK(fte_model_load(hf, &b) == FTE_OK);
	CHECK(a != NULL && b != NULL);
	for (int i = 0; a != NULL && b != NULL && i < fte_model_num_tensors(a); i++)
		CHECK(memcmp(fte_model_tensor(a, i)->data, fte_model_tensor(b, i)->data,
		    fte_model_tensor(a, i)->numel * sizeof(float)) == 0);
	CHECK(run(ftengine_inspect, (const char *const[]){"inspect", "--model", hf, "--json", NULL}) == 0);
	CHECK(run(ftengine_inspect, (const char *const[]){"inspect", "--model", model, NULL}) == 0);

	/* gguf needs a vocabulary the size of the model's (64): a handmade one,
	 * with a chat template that must reach tokenizer.chat_template */
	fte_vocab *v = vocab_make(64);
	v->chat_template = strdup("{% for m in messages %}{{ m.content }}{% endfor %}");
	CHECK(fte_gguf_save(a, v, gguf2, FTE_DTYPE_F32) == FTE_OK);
	CHECK(fte_gguf_open(gguf2, &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_str_is(f, "tokenizer.chat_template", 0, v->chat_template));
		fte_gguf_close(f);
		f = NULL;
	}
	fte_vocab_free(v);
	CHECK(run(ftengine_inspect, (const char *const[]){"inspect", "--model", gguf2, "--json", NULL}) == 0);
	/* a GGUF model exports again with its own vocabulary, template and all */
	CHECK(run(ftengine_export, (const char *const[]){"export", "--model", gguf2, "--format", "gguf",
	    "--dtype", "q8_0", "--out", gguf, NULL}) == 0);
	CHECK(fte_gguf_open(gguf, &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_int(f, "general.file_type") == 7);
		CHECK(kv_str_is(f, "tokenizer.chat_template", 0, "{% for m in messages %}{{ m.content }}{% endfor %}"));
		CHECK(kv_str_is(f, "tokenizer.ggml.tokens", 63, "t63"));
		fte_gguf_close(f);
		f = NULL;
	}

	const char *s260 = asset("llama2c/stories260K.bin"), *t512 = asset("llama2c/tok512.bin");
	if (s260 != NULL && t512 != NULL) {
		char m260[4096], tk[4096];
		snprintf(m260, sizeof(m260), "%s", s260);
		snprintf(tk, sizeof(tk), "%s", t512);
		CHECK(run(ftengine_export, (const char *const[]){"export", "--model", m260, "--format", "gguf",
		    "--dtype", "f16", "--tokenizer", tk, "--out", gguf, NULL}) == 0);
		CHECK(fte_gguf_open(gguf, &f) == FTE_OK);
		if (f != NULL) {
			CHECK(kv_int(f, "general.file_type") == 1 && f->n_tensors == 47);
			CHECK(kv_str_is(f, "general.name", 0, "cli"));
			fte_gguf_close(f);
		}
	}
	/* usage errors are 2, failures 1 */
	CHECK(run(ftengine_export, (const char *const[]){"export", "--model", model, "--format", "onnx",
	    "--out", hf, NULL}) == 2);
	CHECK(run(ftengine_export, (const char *const[]){"export", "--model", model, "--format", "gguf",
	    "--dtype", "bf16", "--out", gguf, NULL}) == 2);
	CHECK(run(ftengine_export, (const char *const[]){"export", "--model", model, "--bogus", NULL}) == 2);
	CHECK(run(ftengine_inspect, (const char *const[]){"inspect", NULL}) == 2);
	CHECK(run(ftengine_inspect, (const char *const[]){"inspect", "--model", ft_test_tmp("nope"), NULL}) == 1);
	/* a vocabulary larger than the model's embedding (50257 > 64) */
	CHECK(run(ftengine_export, (const char *const[]){"export", "--model", fixture_dir("gpt2"),
	    "--format", "gguf", "--tokenizer", asset("hf/tiny-gpt2") ? asset("hf/tiny-gpt2") : "x",
	    "--out", gguf, NULL}) == 1);
	CHECK(strstr(fte_last_error(), "larger than the model's embedding") != NULL || !asset("hf/tiny-gpt2"));
	fte_model_free(a);
	fte_model_free(b);
}

/* check_quantized: every tensor of f holds exactly what quantizing the
 * model's tensor to the file's type and dequantizing gives, and importing the
 * file gives those same weights. */
static void
check_quantized(fte_model *m, const fte_gguf_file *f, const char *path)
{
	fte_model *back = NULL;
	int bad = 0, bad_import = 0;

	CHECK(fte_gguf_load(path, &back) == FTE_OK);
	for (int i = 0; i < fte_model_num_tensors(m); i++) {
		fte_tensor *t = fte_model_tensor(m, i), *b = back ? fte_model_find(back, t->name) : NULL;
		char gname[64];
		const fte_gguf_tensor *g = NULL;
		int bytes, block;

		for (int k = 0; k < f->n_tensors && g == NULL; k++)
			if (fte__gguf_to_canon(FTE_ARCH_LLAMA, f->tensors[k].name, 0, gname, sizeof(gname)) == FTE_OK &&
			    strcmp(gname, t->name) == 0)
				g = &f->tensors[k];
		CHECK(g != NULL);
		if (g == NULL)
			continue;
		block = fte__ggml_block(g->type, &bytes);
		uint8_t *q = malloc(t->numel / (size_t)block * (size_t)bytes);
		float *want = malloc(t->numel * sizeof(float)), *got = malloc(t->numel * sizeof(float));
		CHECK(fte__ggml_quantize(g->type, t->data, q, t->numel) == FTE_OK);
		CHECK(fte__ggml_dequantize(g->type, q, want, t->numel) == FTE_OK);
		CHECK(fte_gguf_read_f32(f, g, got) == FTE_OK);
		bad += memcmp(want, got, t->numel * sizeof(float)) != 0;
		bad_import += b == NULL || memcmp(b->data, got, t->numel * sizeof(float)) != 0;
		free(q);
		free(want);
		free(got);
	}
	CHECK(bad == 0);
	CHECK(bad_import == 0);
	fte_model_free(back);
}

static int
type_of(const fte_gguf_file *f, const char *name)
{
	const fte_gguf_tensor *t = fte_gguf_tensor_find(f, name);

	return t ? t->type : -1;
}

/* Q8_0 and Q4_K_M exports: llama.cpp's per-tensor types, the data, and the
 * import of each. */
static void
test_quantized(void)
{
	fte_config c = {.arch = FTE_ARCH_LLAMA, .n_layers = 8, .dim = 256, .n_heads = 4,
	    .n_kv_heads = 2, .head_dim = 64, .ffn_dim = 512, .vocab_size = 64, .max_seq_len = 32,
	    .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_style = FTE_ROPE_INTERLEAVED,
	    .bos_id = 1, .eos_id = 2};
	fte_model *m = NULL;
	fte_vocab *v = vocab_make(64);
	fte_gguf_file *f = NULL;
	static const int more_bits[8] = {1, 0, 0, 1, 0, 0, 1, 1};   /* use_more_bits(l, 8) */

	CHECK(fte_model_create(&c, &m) == FTE_OK && fte_model_init_random(m, 7) == FTE_OK);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("q4km.gguf"), FTE_DTYPE_Q4_K_M) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("q4km.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_int(f, "general.file_type") == 15);
		CHECK(type_of(f, "output.weight") == FTE_GGML_Q6_K);
		CHECK(type_of(f, "token_embd.weight") == FTE_GGML_Q4_K);
		CHECK(type_of(f, "output_norm.weight") == FTE_GGML_F32);
		for (int l = 0; l < 8; l++) {
			char n[64];
			int want = more_bits[l] ? FTE_GGML_Q6_K : FTE_GGML_Q4_K;
			snprintf(n, sizeof(n), "blk.%d.attn_v.weight", l);
			CHECK(type_of(f, n) == want);
			snprintf(n, sizeof(n), "blk.%d.ffn_down.weight", l);
			CHECK(type_of(f, n) == want);
			snprintf(n, sizeof(n), "blk.%d.attn_k.weight", l);
			CHECK(type_of(f, n) == FTE_GGML_Q4_K);
		}
		check_quantized(m, f, ft_test_tmp("q4km.gguf"));
		fte_gguf_close(f);
		f = NULL;
	}
	CHECK(fte_gguf_save(m, v, ft_test_tmp("q8.gguf"), FTE_DTYPE_Q8_0) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("q8.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(kv_int(f, "general.file_type") == 7);
		CHECK(type_of(f, "output.weight") == FTE_GGML_Q8_0);
		CHECK(type_of(f, "blk.3.ffn_down.weight") == FTE_GGML_Q8_0);
		check_quantized(m, f, ft_test_tmp("q8.gguf"));
		fte_gguf_close(f);
		f = NULL;
	}
	fte_model_free(m);
	fte_vocab_free(v);

	/* stories260K: rows of 64 are not whole 256-blocks (Q4_K -> Q5_0, Q6_K ->
	 * Q8_0), rows of 172 not whole 32-blocks (F16); the tied embedding is
	 * the output matrix */
	const char *model = asset("llama2c/stories260K.bin");
	const char *tok = asset("llama2c/tok512.bin");
	if (model == NULL || tok == NULL)
		return;
	CHECK(fte_model_load(model, &m) == FTE_OK);
	CHECK(fte_vocab_load(tok, &v) == FTE_OK);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("s.gguf"), FTE_DTYPE_Q4_K_M) == FTE_OK);
	CHECK(fte_gguf_open(ft_test_tmp("s.gguf"), &f) == FTE_OK);
	if (f != NULL) {
		CHECK(type_of(f, "token_embd.weight") == FTE_GGML_Q8_0);
		CHECK(type_of(f, "blk.0.attn_q.weight") == FTE_GGML_Q5_0);
		CHECK(type_of(f, "blk.2.attn_v.weight") == FTE_GGML_Q8_0);   /* use_more_bits(2, 5) */
		CHECK(type_of(f, "blk.1.attn_v.weight") == FTE_GGML_Q5_0);
		CHECK(type_of(f, "blk.1.ffn_down.weight") == FTE_GGML_F16);
		check_quantized(m, f, ft_test_tmp("s.gguf"));
		fte_gguf_close(f);
		f = NULL;
	}
	/* the F32 export imports as the very same model */
	fte_model *back = NULL;
	CHECK(fte_gguf_save(m, v, ft_test_tmp("s32.gguf"), FTE_DTYPE_F32) == FTE_OK);
	CHECK(fte_model_load(ft_test_tmp("s32.gguf"), &back) == FTE_OK);
	if (back != NULL) {
		const fte_config *a = fte_model_config(m), *b = fte_model_config(back);
		CHECK(a->dim == b->dim && a->n_layers == b->n_layers && a->n_kv_heads == b->n_kv_heads &&
		    a->ffn_dim == b->ffn_dim && a->tied_embeddings == b->tied_embeddings &&
		    a->rope_style == b->rope_style && a->bos_id == b->bos_id && a->eos_id == b->eos_id &&
		    a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta);
		int same = 1;
		for (int i = 0; i < fte_model_num_tensors(m); i++)
			same &= memcmp(fte_model_tensor(m, i)->data, fte_model_tensor(back, i)->data,
			    fte_model_tensor(m, i)->numel * sizeof(float)) == 0;
		CHECK(same);
	}
	fte_model_free(back);
	fte_model_free(m);
	fte_vocab_free(v);
}

/* what the engine cannot compute is refused with the reason */
static void
test_import_refused(void)
{
	fte_config c = {.arch = FTE_ARCH_LLAMA, .n_layers = 1, .dim = 32, .n_heads = 4,
	    .n_kv_heads = 4, .head_dim = 8, .ffn_dim = 32, .vocab_size = 16, .max_seq_len = 8,
	    .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_style = FTE_ROPE_INTERLEAVED,
	    .bos_id = 1, .eos_id = 2};
	fte_model *m = NULL;
	fte_vocab *v = vocab_make(16);
	uint8_t *buf;
	size_t n;
	char *p;

	CHECK(fte_model_create(&c, &m) == FTE_OK);
	CHECK(fte_gguf_save(m, v, ft_test_tmp("r.gguf"), FTE_DTYPE_F32) == FTE_OK);
	fte_model_free(m);
	fte_vocab_free(v);
	m = NULL;
	buf = (uint8_t *)ft_test_file_read(ft_test_tmp("r.gguf"), &n);
	CHECK(buf != NULL);
	if (buf == NULL)
		return;
	/* the architecture's value follows its key, type and length */
	p = memmem(buf, n, "general.architecture", 20);
	CHECK(p != NULL && memcmp(p + 20 + 12, "llama", 5) == 0);
	memcpy(p + 20 + 12, "bloom", 5);
	ft_test_file_write(ft_test_tmp("bloom.gguf"), buf, n);
	CHECK(fte_model_load(ft_test_tmp("bloom.gguf"), &m) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "\"bloom\"") != NULL);
	memcpy(p + 20 + 12, "llama", 5);
	/* a tensor type the engine does not read (Q4_1): the type field of the
	 * first tensor info sits 12 bytes before its offset field */
	p = memmem(buf, n, "token_embd.weight", 17);
	CHECK(p != NULL);
	uint32_t q4_1 = 3;
	memcpy(p + 17 + 4 + 16, &q4_1, 4);
	ft_test_file_write(ft_test_tmp("q41.gguf"), buf, n);
	CHECK(fte_model_load(ft_test_tmp("q41.gguf"), &m) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "type Q4_1 (3) is not supported") != NULL);
	free(buf);
}

/* the ollama Modelfile: a known family's template translated, stop tokens;
 * an unknown one left to the GGUF's embedded template */
static void
test_modelfile(void)
{
	fte_vocab *v = vocab_make(8);
	size_t n;
	char *mf;

	free(v->tokens[2]);
	v->tokens[2] = strdup("<|im_end|>");
	v->chat_template = strdup("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
	    "<|im_end|>\n{% endfor %}");
	CHECK(fte_gguf_modelfile(v, "model.gguf", ft_test_tmp("Modelfile")) == FTE_OK);
	mf = ft_test_file_read(ft_test_tmp("Modelfile"), &n);
	CHECK(mf != NULL && strncmp(mf, "FROM ./model.gguf\n", 18) == 0);
	CHECK(mf && strstr(mf, "TEMPLATE \"\"\"{{- range .Messages }}<|im_start|>{{ .Role }}\n"
	    "{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n\"\"\"\n") != NULL);
	CHECK(mf && strstr(mf, "PARAMETER stop \"<|im_end|>\"\n") != NULL);
	CHECK(mf && strstr(mf, "PARAMETER stop \"<|im_start|>\"\n") != NULL);
	free(mf);
	free(v->chat_template);
	v->chat_template = strdup("{{ bos_token }}{% for m in messages %}### {{ m.role }}: {{ m.content }}{% endfor %}");
	free(v->tokens[2]);
	v->tokens[2] = strdup("\"end\"");
	CHECK(fte_gguf_modelfile(v, "model.gguf", ft_test_tmp("Modelfile")) == FTE_OK);
	mf = ft_test_file_read(ft_test_tmp("Modelfile"), &n);
	CHECK(mf && strstr(mf, "TEMPLATE \"") == NULL);
	CHECK(mf && strstr(mf, "# TEMPLATE is left to the GGUF's embedded tokenizer.chat_template") != NULL);
	CHECK(mf && strstr(mf, "PARAMETER stop \"\\\"end\\\"\"\n") != NULL);
	free(mf);
	fte_vocab_free(v);
}

/* vocab_equal compares two vocabularies field by field. */
static int
vocab_equal(const fte_vocab *a, const fte_vocab *b)
{
	int bad = a->kind != b->kind || a->n_tokens != b->n_tokens || a->n_merges != b->n_merges ||
	    a->bos_id != b->bos_id || a->eos_id != b->eos_id || a->unk_id != b->unk_id ||
	    a->pad_id != b->pad_id || a->add_bos != b->add_bos || strcmp(a->pre, b->pre) != 0 ||
	    (a->chat_template == NULL) != (b->chat_template == NULL) ||
	    (a->chat_template && strcmp(a->chat_template, b->chat_template) != 0);

	for (int i = 0; !bad && i < a->n_tokens; i++)
		bad = strcmp(a->tokens[i], b->tokens[i]) != 0 || a->types[i] != b->types[i] ||
		    a->scores[i] != b->scores[i];
	for (int i = 0; !bad && i < a->n_merges; i++)
		bad = strcmp(a->merges[i], b->merges[i]) != 0;
	return !bad;
}

/* encode_same encodes text with both tokenizers (specials added and
 * parsed) and counts the ids, failing on the first difference. */
static size_t
encode_same(const fte_tokenizer *a, const fte_tokenizer *b, const char *text, size_t len)
{
	int *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0, same = 0;
	char *dx = NULL, *dy = NULL;
	size_t lx, ly;

	CHECK(fte_tokenizer_encode(a, text, len, 1, &x, &nx) == FTE_OK);
	CHECK(fte_tokenizer_encode(b, text, len, 1, &y, &ny) == FTE_OK);
	if (nx == ny && (nx == 0 || memcmp(x, y, nx * sizeof(int)) == 0))
		same = nx;
	else
		fprintf(stderr, "encodings differ (%zu and %zu ids) on \"%.40s\"\n", nx, ny, text);
	CHECK(same == nx);
	CHECK(fte_tokenizer_decode(a, x, nx, &dx, &lx) == FTE_OK);
	CHECK(fte_tokenizer_decode(b, y, ny, &dy, &ly) == FTE_OK);
	CHECK(dx && dy && lx == ly && memcmp(dx, dy, lx) == 0);
	free(x);
	free(y);
	free(dx);
	free(dy);
	return same;
}

/* Byte-level BPE vocabularies (tokenizer.ggml.model "gpt2") survive GGUF
 * id for id: tokenizer.json -> fte_vocab -> tokenizer.gguf -> the same
 * vocabulary, and a tokenizer that encodes real text (prose, code, digits,
 * contractions, other scripts, the model's special tokens) to the ids the
 * tokenizer.json gives. */
static void
test_bpe_round_trip(void)
{
	static const struct {
		const char *dir, *pre;
		const char *special;          /* a control token to parse */
	} cases[] = {
		{"hf/tiny-gpt2", "gpt-2", "<|endoftext|>"},
		{"tokenizers/smollm2-135m-instruct", "smollm", "<|im_start|>"},
		{"tokenizers/llama-3.1", "llama-bpe", "<|eot_id|>"},
		{"tokenizers/qwen3", "qwen2", "<|im_end|>"},
	};
	const char *corpus = asset("corpora/rfc/rfc2616.txt");
	size_t clen = 0;
	char *text = corpus ? ft_test_file_read(corpus, &clen) : NULL;

	if (clen > 60000)
		clen = 60000;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char rel[256], extra[512];
		const char *json;
		fte_vocab *v = NULL, *back = NULL;
		fte_tokenizer *a = NULL, *b = NULL;
		const char *gguf = ft_test_tmp("bpe.gguf");
		size_t ids = 0;

		snprintf(rel, sizeof(rel), "%s/tokenizer.json", cases[c].dir);
		if ((json = asset(rel)) == NULL)
			continue;
		CHECK(fte_vocab_load(json, &v) == FTE_OK);
		CHECK(v != NULL && v->kind == FTE_VOCAB_BPE && strcmp(v->pre, cases[c].pre) == 0);
		/* Llama 3.1's tokenizer_config.json (model_max_length 1e30, past
		 * int64) gives its chat template and <|eot_id|> as EOS */
		if (v != NULL && strcmp(cases[c].pre, "llama-bpe") == 0)
			CHECK(v->chat_template != NULL && v->eos_id == 128009 && v->bos_id == 128000);
		CHECK(fte_gguf_vocab_save(v, gguf) == FTE_OK);
		CHECK(fte_vocab_load(gguf, &back) == FTE_OK);
		CHECK(v && back && vocab_equal(v, back));
		CHECK(fte_tokenizer_load(json, &a) == FTE_OK);
		CHECK(fte_tokenizer_load(gguf, &b) == FTE_OK);
		if (a == NULL || b == NULL || v == NULL) {
			fte_tokenizer_free(a);
			fte_tokenizer_free(b);
			fte_vocab_free(v);
			fte_vocab_free(back);
			continue;
		}
		CHECK(fte_tokenizer_vocab_size(a) == fte_tokenizer_vocab_size(b));
		CHECK(fte_tokenizer_bos(a) == fte_tokenizer_bos(b));
		CHECK(fte_tokenizer_eos(a) == fte_tokenizer_eos(b));
		if (text != NULL)
			ids += encode_same(a, b, text, clen);
		snprintf(extra, sizeof(extra), "%s Hello world!  It's 2024-12-03, 1234567 items; "
		    "they'll've done   it.\n\n\tdef f(x):\n        return x**2  # done\n"
		    "Grüße, naïve café — 東京は晴れ。 Привет, мир! 🙂🙃 %s", cases[c].special,
		    cases[c].special);
		ids += encode_same(a, b, extra, strlen(extra));
		printf("%s: %d tokens, %d merges, %zu ids equal through tokenizer.gguf\n", cases[c].dir,
		    v->n_tokens, v->n_merges, ids);
		fte_tokenizer_free(a);
		fte_tokenizer_free(b);
		fte_vocab_free(v);
		fte_vocab_free(back);
	}
	free(text);
}

/* A BPE vocabulary llama.cpp names a pre-tokenizer we do not implement is
 * refused with its name, not split differently. */
static void
test_bpe_refused(void)
{
	const char *json = asset("hf/tiny-gpt2/tokenizer.json");
	fte_tokenizer *t = NULL;
	fte_vocab *v = NULL;

	if (json == NULL || fte_vocab_load(json, &v) != FTE_OK)
		return;
	snprintf(v->pre, sizeof(v->pre), "deepseek-llm");
	CHECK(fte_gguf_vocab_save(v, ft_test_tmp("pre.gguf")) == FTE_OK);
	CHECK(fte_tokenizer_load(ft_test_tmp("pre.gguf"), &t) == FTE_ENOTSUP);
	CHECK(strstr(fte_last_error(), "\"deepseek-llm\"") != NULL);
	/* without merges a gpt2 vocabulary is malformed */
	for (int i = 0; i < v->n_merges; i++)
		free(v->merges[i]);
	v->n_merges = 0;
	snprintf(v->pre, sizeof(v->pre), "gpt-2");
	CHECK(fte_gguf_vocab_save(v, ft_test_tmp("pre.gguf")) == FTE_OK);
	CHECK(fte_tokenizer_load(ft_test_tmp("pre.gguf"), &t) == FTE_OK);
	fte_tokenizer_free(t);
	fte_vocab_free(v);
}

int
main(void)
{
	test_hf_model();
	test_rope_scaling();
	test_gpt2();
	test_gpt2_q4_k_m();
	test_bad();
	test_llama2c();
	test_vocab_json();
	test_cli();
	test_quantized();
	test_import_refused();
	test_modelfile();
	test_bpe_round_trip();
	test_bpe_refused();
	ft_test_tmp_remove();
	return ft_test_done();
}
