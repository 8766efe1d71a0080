/* test_hf.c - Hugging Face import and export: the fixtures written by
 * tests/fixtures/gen_hf_fixtures.py (Llama tied/untied, BF16, F16, sharded,
 * __metadata__ alias, Qwen2 biases, GPT-2, Llama 3.1 and YaRN RoPE scaling,
 * Qwen3 q/k norms) against their PyTorch logits (and Qwen3's gradients) and
 * probe values, the real tiny-gpt2 checkpoint against its raw file, save/load
 * round trips, the llama2.c -> HF q/k permutation, and malformed directories. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "ft_test.h"

static const char *fixtures[] = {
	"llama_tied", "llama_bf16", "llama_f16", "llama_sharded", "llama_alias",
	"qwen2_bias", "gpt2", "llama3_rope", "qwen2_yarn", "qwen3", "gemma2", "gemma3", "phi3",
	"mistral_window", "phi3_longrope",
};

static double worst_rel;      /* largest logits error seen, relative */

static const char *
fixture_dir(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s", ft_test_fixture("hf/"));
	strncat(path, name, sizeof(path) - strlen(path) - 1);
	return path;
}

/* logits_compute runs the engine's forward over tokens; 0 on success. */
static int
logits_compute(fte_model *m, const int *tokens, int T, float *logits)
{
	fte_train_config tc;
	fte_trainer *tr = NULL;
	int targets[64];
	float loss;
	int rc;

	fte_train_config_default(&tc);
	tc.batch = 1;
	tc.seq = T;
	for (int i = 0; i < T; i++)
		targets[i] = i + 1 < T ? tokens[i + 1] : -1;
	if ((rc = fte_trainer_create(m, &tc, &tr)) != FTE_OK)
		return rc;
	fte_batch b = {tokens, targets, NULL, 1, T};
	rc = fte_trainer_backward(tr, &b, 1, logits, &loss);
	fte_trainer_free(tr);
	return rc;
}

/* check_expected compares m with the fixture's probes and logits. */
static void
check_expected(fte_model *m, const char *name)
{
	char path[4096];
	json_t *exp, *tok, *rows, *probes, *v;
	int tokens[64], T, V = fte_model_config(m)->vocab_size;
	size_t i;

	snprintf(path, sizeof(path), "%s/expected.json", fixture_dir(name));
	exp = json_load_file(path, 0, NULL);
	CHECK(exp != NULL);
	if (exp == NULL)
		return;
	probes = json_object_get(exp, "probes");
	CHECK(json_array_size(probes) >= 4);
	json_array_foreach(probes, i, v) {
		fte_tensor *t = fte_model_find(m, json_string_value(json_array_get(v, 0)));
		int r = (int)json_integer_value(json_array_get(v, 1));
		int c = (int)json_integer_value(json_array_get(v, 2));
		CHECK(t != NULL);
		if (t == NULL)
			continue;
		float want = (float)json_number_value(json_array_get(v, 3));
		float got = t->ndim == 2 ? t->data[(size_t)r * (size_t)t->shape[1] + (size_t)c] : t->data[r];
		if (got != want)
			fprintf(stderr, "%s: %s[%d,%d] = %g, want %g\n", name, t->name, r, c, got, want);
		CHECK(got == want);
	}
	tok = json_object_get(exp, "tokens");
	rows = json_object_get(exp, "logits");
	T = (int)json_array_size(tok);
	for (int t = 0; t < T; t++)
		tokens[t] = (int)json_integer_value(json_array_get(tok, (size_t)t));
	float *logits = calloc((size_t)T * (size_t)V, sizeof(float));
	CHECK(logits_compute(m, tokens, T, logits) == FTE_OK);
	double maxerr = 0, maxref = 0;
	for (int t = 0; t < T; t++)
		for (int k = 0; k < V; k++) {
			double ref = json_number_value(json_array_get(json_array_get(rows, (size_t)t), (size_t)k));
			double d = fabs(logits[(size_t)t * (size_t)V + (size_t)k] - ref);
			maxerr = d > maxerr ? d : maxerr;
			maxref = fabs(ref) > maxref ? fabs(ref) : maxref;
		}
	printf("%-14s logits max abs err %.3g (max |logit| %.3g)\n", name, maxerr, maxref);
	CHECK(maxref > 0.1);                      /* the reference is not trivial */
	CHECK(maxerr <= 1e-4 * maxref);
	if (maxerr / maxref > worst_rel)
		worst_rel = maxerr / maxref;
	free(logits);
	json_decref(exp);
}

/* same_tensors is 1 when a and b have the same tensors, bit for bit. */
static int
same_tensors(fte_model *a, fte_model *b)
{
	if (fte_model_num_tensors(a) != fte_model_num_tensors(b))
		return 0;
	for (int i = 0; i < fte_model_num_tensors(a); i++) {
		fte_tensor *x = fte_model_tensor(a, i), *y = fte_model_tensor(b, i);
		if (strcmp(x->name, y->name) != 0 || x->numel != y->numel ||
		    memcmp(x->data, y->data, x->numel * sizeof(float)) != 0) {
			fprintf(stderr, "tensor %s differs\n", x->name);
			return 0;
		}
	}
	return 1;
}

static int
same_config(const fte_config *a, const fte_config *b)
{
	return a->arch == b->arch && a->n_layers == b->n_layers && a->dim == b->dim &&
	    a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads &&
	    a->head_dim == b->head_dim && a->ffn_dim == b->ffn_dim &&
	    a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len &&
	    a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
	    a->rope_style == b->rope_style && a->tied_embeddings == b->tied_embeddings &&
	    a->bos_id == b->bos_id && a->eos_id == b->eos_id &&
	    a->rope.type == b->rope.type && a->rope.factor == b->rope.factor &&
	    a->rope.low_freq_factor == b->rope.low_freq_factor &&
	    a->rope.high_freq_factor == b->rope.high_freq_factor &&
	    a->rope.orig_ctx == b->rope.orig_ctx && a->rope.beta_fast == b->rope.beta_fast &&
	    a->rope.beta_slow == b->rope.beta_slow && a->rope.attn_factor == b->rope.attn_factor &&
	    a->rope.no_truncate == b->rope.no_truncate &&
	    a->sliding_window == b->sliding_window && a->sliding_pattern == b->sliding_pattern &&
	    a->query_scale == b->query_scale && a->attn_softcap == b->attn_softcap &&
	    a->final_softcap == b->final_softcap && a->rope_local_theta == b->rope_local_theta &&
	    a->rope_dim == b->rope_dim &&
	    memcmp(a->rope.short_factor, b->rope.short_factor, sizeof(a->rope.short_factor)) == 0 &&
	    memcmp(a->rope.long_factor, b->rope.long_factor, sizeof(a->rope.long_factor)) == 0;
}

static void
test_fixtures(void)
{
	for (size_t f = 0; f < sizeof(fixtures) / sizeof(fixtures[0]); f++) {
		fte_model *m = NULL, *m2 = NULL;
		const char *out = ft_test_tmp(fixtures[f]);

		CHECK(fte_model_load(fixture_dir(fixtures[f]), &m) == FTE_OK);
		if (m == NULL) {
			fprintf(stderr, "%s: %s\n", fixtures[f], fte_last_error());
			continue;
		}
		check_expected(m, fixtures[f]);
		/* save and load again: bit-identical tensors, the same config */
		CHECK(fte_hf_save(m, fixture_dir(fixtures[f]), out) == FTE_OK);
		CHECK(fte_model_load(out, &m2) == FTE_OK);
		if (m2 != NULL) {
			CHECK(same_tensors(m, m2));
			CHECK(same_config(fte_model_config(m), fte_model_config(m2)));
		}
		fte_model_free(m2);
		fte_model_free(m);
	}
}

/* The configuration details each fixture exercises. */
static void
test_configs(void)
{
	fte_model *m = NULL;
	const fte_config *c;

	if (fte_model_load(fixture_dir("llama_f16"), &m) == FTE_OK) {
		c = fte_model_config(m);
		/* generation_config.json wins; a list of EOS ids gives the first */
		CHECK(c->bos_id == 1 && c->eos_id == 2);
		CHECK(c->n_kv_heads == 2 && c->head_dim == 8 && !c->tied_embeddings);
		CHECK(c->rope_style == FTE_ROPE_HALF);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("llama_sharded"), &m) == FTE_OK) {
		c = fte_model_config(m);
		CHECK(c->rope_theta == 500000.0f && c->norm_eps == 1e-6f);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("llama_alias"), &m) == FTE_OK) {
		CHECK(fte_model_config(m)->tied_embeddings == 1);
		CHECK(fte_model_find(m, "output.weight") == NULL);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("qwen2_bias"), &m) == FTE_OK) {
		c = fte_model_config(m);
		CHECK(c->arch == FTE_ARCH_QWEN2 && c->max_seq_len == 64 && c->rope_theta == 1e6f);
		CHECK(fte_model_find(m, "layers.1.attn.wv.bias") != NULL);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("llama_tied"), &m) == FTE_OK) {
		CHECK(fte_model_config(m)->tied_embeddings == 1);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("llama3_rope"), &m) == FTE_OK) {
		const fte_rope_scaling *r = &fte_model_config(m)->rope;
		CHECK(r->type == FTE_ROPE_LLAMA3 && r->factor == 8.0 && r->low_freq_factor == 1.0 &&
		    r->high_freq_factor == 4.0 && r->orig_ctx == 8192);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("qwen2_yarn"), &m) == FTE_OK) {
		const fte_rope_scaling *r = &fte_model_config(m)->rope;
		CHECK(r->type == FTE_ROPE_YARN && r->factor == 4.0 && r->orig_ctx == 4096 &&
		    r->beta_fast == 32 && r->beta_slow == 1 && r->attn_factor == 0 && !r->no_truncate);
		fte_model_free(m);
	}
}

/* The config keys of Gemma 2, Gemma 3 and Phi-3 as the engine reads them,
 * and what it refuses by name. */
static void
test_families(void)
{
	fte_model *m = NULL;
	const fte_config *c;

	if (fte_model_load(fixture_dir("gemma2"), &m) == FTE_OK) {
		c = fte_model_config(m);
		CHECK(c->arch == FTE_ARCH_GEMMA2 && c->head_dim == 12 && c->query_scale == 16 &&
		    c->attn_softcap == 50 && c->final_softcap == 30 && c->sliding_window == 6 &&
		    c->sliding_pattern == 2 && c->tied_embeddings && c->rope_local_theta == 0);
		CHECK(fte_config_layer_sliding(c, 0) && !fte_config_layer_sliding(c, 1));
		CHECK(fte_model_find(m, "layers.1.attn_post_norm.weight") != NULL &&
		    fte_model_find(m, "layers.1.ffn_post_norm.weight") != NULL);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("gemma3"), &m) == FTE_OK) {
		c = fte_model_config(m);
		CHECK(c->arch == FTE_ARCH_GEMMA3 && c->n_layers == 6 && c->sliding_window == 5 &&
		    c->sliding_pattern == 6 && c->rope_local_theta == 10000 && c->rope_theta == 1e6f &&
		    c->rope.type == FTE_ROPE_LINEAR && c->rope.factor == 8 && c->attn_softcap == 0 &&
		    c->final_softcap == 0 && c->n_kv_heads == 1);
		CHECK(fte_config_layer_sliding(c, 4) && !fte_config_layer_sliding(c, 5));
		CHECK(fte_model_find(m, "layers.5.attn.q_norm.weight") != NULL);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("phi3"), &m) == FTE_OK) {
		c = fte_model_config(m);
		CHECK(c->arch == FTE_ARCH_PHI3 && c->sliding_window == 7 && c->sliding_pattern == 0 &&
		    !c->tied_embeddings && c->max_seq_len == 64);
		CHECK(fte_config_layer_sliding(c, 0) && fte_config_layer_sliding(c, 1));
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("phi3_longrope"), &m) == FTE_OK) {
		const fte_rope_scaling *r;

		c = fte_model_config(m);
		r = &c->rope;
		/* the context capped at original_max_position_embeddings */
		CHECK(c->arch == FTE_ARCH_PHI3 && c->rope_dim == 12 && c->head_dim == 16 &&
		    c->max_seq_len == 32 && r->type == FTE_ROPE_LONGROPE && r->orig_ctx == 32 &&
		    r->factor == 8 && r->short_factor[5] == 4.0f && r->long_factor[5] == 32.0f &&
		    c->tied_embeddings && c->sliding_window == 0);
		fte_model_free(m);
	}
	if (fte_model_load(fixture_dir("mistral_window"), &m) == FTE_OK) {
		c = fte_model_config(m);
		CHECK(c->arch == FTE_ARCH_MISTRAL && c->sliding_window == 9 && c->max_seq_len == 64);
		fte_model_free(m);
	}
}

/* Qwen3: explicit head_dim, q/k norms, and the gradients of the mean
 * next-token loss equal PyTorch autograd's over the reference forward. */
static void
test_qwen3(void)
{
	fte_model *m = NULL;
	fte_trainer *tr = NULL;
	fte_train_config tc;
	json_t *exp = NULL, *grads;
	char path[4096];
	int tokens[64], targets[64], T, seen = 0;
	float loss = 0;

	snprintf(path, sizeof(path), "%s/expected.json", fixture_dir("qwen3"));
	CHECK((exp = json_load_file(path, 0, NULL)) != NULL);
	CHECK(fte_model_load(fixture_dir("qwen3"), &m) == FTE_OK);
	if (exp == NULL || m == NULL)
		goto out;
	const fte_config *c = fte_model_config(m);
	CHECK(c->arch == FTE_ARCH_QWEN3 && c->head_dim == 16 && c->dim == 32 &&
	    c->tied_embeddings && c->max_seq_len == 64);
	CHECK(fte_model_find(m, "layers.1.attn.k_norm.weight") != NULL &&
	    fte_model_find(m, "layers.1.attn.k_norm.weight")->numel == 16);
	T = (int)json_array_size(json_object_get(exp, "tokens"));
	for (int i = 0; i < T; i++) {
		tokens[i] = (int)json_integer_value(json_array_get(json_object_get(exp, "tokens"), (size_t)i));
		if (i > 0)
			targets[i - 1] = tokens[i];
	}
	targets[T - 1] = -1;
	fte_train_config_default(&tc);
	tc.batch = 1;
	tc.seq = T;
	CHECK(fte_trainer_create(m, &tc, &tr) == FTE_OK);
	if (tr == NULL)
		goto out;
	fte_batch b = {tokens, targets, NULL, 1, T};
	CHECK(fte_trainer_backward(tr, &b, 1, NULL, &loss) == FTE_OK);
	CHECK(fabs(loss - json_number_value(json_object_get(exp, "loss"))) < 1e-5);
	grads = json_object_get(exp, "grads");
	for (int i = 0; i < fte_trainer_num_trainable(tr); i++) {
		fte_tensor *p, *g;
		json_t *want;
		double err = 0, big = 0;

		CHECK(fte_trainer_trainable(tr, i, &p, &g) == FTE_OK);
		if ((want = json_object_get(grads, p->name)) == NULL)
			continue;
		CHECK(json_array_size(want) == g->numel);
		for (size_t k = 0; k < g->numel && k < json_array_size(want); k++) {
			double r = json_number_value(json_array_get(want, k));
			err = fmax(err, fabs(g->data[k] - r));
			big = fmax(big, fabs(r));
		}
		printf("qwen3 grad %-28s max abs err %.3g (max |grad| %.3g)\n", p->name, err, big);
		CHECK(big > 0 && err <= 1e-4 * big);
		seen++;
	}
	CHECK(seen == 4);
	/* LoRA on every projection: the norms stay frozen, the adapters start
	 * as the identity (same loss) and their B gradients flow through the
	 * q/k norms */
	fte_trainer_free(tr);
	tr = NULL;
	tc.lora.rank = 4;
	tc.lora.alpha = 8;
	tc.lora.targets = FTE_LORA_ALL;
	CHECK(fte_trainer_create(m, &tc, &tr) == FTE_OK);
	if (tr != NULL) {
		float lora_loss = 0;
		int only_lora = 1, flows = 1;

		CHECK(fte_trainer_backward(tr, &b, 1, NULL, &lora_loss) == FTE_OK);
		CHECK(lora_loss == loss);
		for (int i = 0; i < fte_trainer_num_trainable(tr); i++) {
			fte_tensor *p, *g;
			double sum = 0;

			CHECK(fte_trainer_trainable(tr, i, &p, &g) == FTE_OK);
			only_lora &= strstr(p->name, ".lora_") != NULL;
			for (size_t k = 0; k < g->numel; k++)
				sum += fabs(g->data[k]);
			if (strstr(p->name, "lora_B") && (strstr(p->name, ".wq.") || strstr(p->name, ".wk.")))
				flows &= isfinite(sum) && sum > 0;
		}
		CHECK(only_lora && flows);
	}
out:
	fte_trainer_free(tr);
	fte_model_free(m);
	json_decref(exp);
}

/* KV-cache decoding runs the last prompt token through the decoder: for
 * every prompt length its greedy token is the argmax of the full forward's
 * row there, so the cache holds keys turned by the same frequencies,
 * attention factor and head norms as training computes. */
static void
test_generate_rope(const char *name)
{
	fte_model *m = NULL;
	fte_sampler smp;
	int seq[64], T, agree = 0;
	json_t *exp, *toks;
	char path[4096];
	float *logits;

	snprintf(path, sizeof(path), "%s/expected.json", fixture_dir(name));
	CHECK((exp = json_load_file(path, 0, NULL)) != NULL);
	CHECK(fte_model_load(fixture_dir(name), &m) == FTE_OK);
	if (exp == NULL || m == NULL) {
		json_decref(exp);
		fte_model_free(m);
		return;
	}
	toks = json_object_get(exp, "tokens");
	T = (int)json_array_size(toks);
	for (int i = 0; i < T; i++)
		seq[i] = (int)json_integer_value(json_array_get(toks, (size_t)i));
	json_decref(exp);
	fte_sampler_default(&smp);
	smp.max_new_tokens = 1;
	smp.stop_at_eos = smp.stop_at_bos = 0;
	logits = malloc((size_t)T * 64 * sizeof(float));
	CHECK(logits != NULL && logits_compute(m, seq, T, logits) == FTE_OK);
	for (int P = 1; P <= T && logits != NULL; P++) {
		const float *row = logits + (size_t)(P - 1) * 64;
		int best = 0, gen = -1, n = 0;

		for (int v = 1; v < 64; v++)
			if (row[v] > row[best])
				best = v;
		CHECK(fte_generate(m, seq, P, &smp, NULL, NULL, &gen, &n) == FTE_OK && n == 1);
		agree += gen == best;
	}
	printf("%s: KV-cache decoding agrees with the full forward at %d of %d positions\n",
	    name, agree, T);
	CHECK(agree == T);
	free(logits);
	fte_model_free(m);
}

/* tiny-gpt2: the real checkpoint, compared value by value with its file. */
static void
test_tiny_gpt2(void)
{
	const char *root = getenv("FT_ASSETS");
	char dir[4096], path[4096];
	fte_model *m = NULL;
	fte_st_file *f = NULL;
	float raw[2 * 8];

	snprintf(dir, sizeof(dir), "%s/hf/tiny-gpt2", root ? root : "../shared/assets");
	if (access(dir, R_OK) != 0) {
		printf("SKIP: %s not found\n", dir);
		return;
	}
	CHECK(fte_model_load(dir, &m) == FTE_OK);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	CHECK(fte_st_open(path, &f) == FTE_OK);
	if (m == NULL || f == NULL) {
		fte_model_free(m);
		fte_st_close(f);
		return;
	}
	const fte_config *c = fte_model_config(m);
	CHECK(c->arch == FTE_ARCH_GPT2 && c->dim == 2 && c->n_heads == 2 &&
	    c->n_layers == 2 && c->vocab_size == 50257 && c->max_seq_len == 1024 &&
	    c->ffn_dim == 8 && c->tied_embeddings && c->bos_id == 50256 &&
	    c->eos_id == 50256 && c->norm_eps == 1e-5f);
	CHECK(fte_model_find(m, "output.weight") == NULL);
	/* c_attn (2, 6) in (in, out) order splits into q, k, v (2, 2) (out, in) */
	CHECK(fte_st_read_f32(f, fte_st_find(f, "transformer.h.1.attn.c_attn.weight"), raw) == FTE_OK);
	fte_tensor *wq = fte_model_find(m, "layers.1.attn.wq.weight");
	fte_tensor *wk = fte_model_find(m, "layers.1.attn.wk.weight");
	fte_tensor *wv = fte_model_find(m, "layers.1.attn.wv.weight");
	for (int o = 0; o < 2; o++)
		for (int i = 0; i < 2; i++) {
			CHECK(wq->data[o * 2 + i] == raw[i * 6 + o]);
			CHECK(wk->data[o * 2 + i] == raw[i * 6 + 2 + o]);
			CHECK(wv->data[o * 2 + i] == raw[i * 6 + 4 + o]);
		}
	CHECK(fte_st_read_f32(f, fte_st_find(f, "transformer.h.0.attn.c_attn.bias"), raw) == FTE_OK);
	CHECK(fte_model_find(m, "layers.0.attn.wk.bias")->data[1] == raw[3]);
	CHECK(fte_model_find(m, "layers.0.attn.wv.bias")->data[0] == raw[4]);
	/* c_fc (2, 8) -> fc (8, 2); c_proj (8, 2) -> proj (2, 8) */
	CHECK(fte_st_read_f32(f, fte_st_find(f, "transformer.h.0.mlp.c_fc.weight"), raw) == FTE_OK);
	fte_tensor *fc = fte_model_find(m, "layers.0.ffn.fc.weight");
	CHECK(fc->shape[0] == 8 && fc->shape[1] == 2);
	CHECK(fc->data[5 * 2 + 1] == raw[1 * 8 + 5]);
	CHECK(fte_st_read_f32(f, fte_st_find(f, "transformer.h.0.mlp.c_proj.weight"), raw) == FTE_OK);
	CHECK(fte_model_find(m, "layers.0.ffn.proj.weight")->data[1 * 8 + 6] == raw[6 * 2 + 1]);
	const fte_st_tensor *wte = fte_st_find(f, "transformer.wte.weight");
	float *emb = malloc(wte->numel * sizeof(float));
	CHECK(fte_st_read_f32(f, wte, emb) == FTE_OK);
	CHECK(memcmp(emb, fte_model_find(m, "tok_embeddings.weight")->data,
	    wte->numel * sizeof(float)) == 0);
	free(emb);
	fte_st_close(f);

	/* round trip through our writer, tokenizer files copied */
	fte_model *m2 = NULL;
	const char *out = ft_test_tmp("tiny-gpt2");
	CHECK(fte_hf_save(m, dir, out) == FTE_OK);
	CHECK(fte_model_load(out, &m2) == FTE_OK);
	CHECK(m2 != NULL && same_tensors(m, m2));
	CHECK(access(ft_test_tmp("tiny-gpt2/tokenizer.json"), R_OK) == 0);
	CHECK(access(ft_test_tmp("tiny-gpt2/special_tokens_map.json"), R_OK) == 0);
	fte_model_free(m2);
	fte_model_free(m);
}

/* A llama2.c model (interleaved RoPE) is saved with q/k rows in rotate-half
 * order: the HF model read back computes the same logits. */
static void
test_interleaved(void)
{
	fte_model *hf = NULL, *il = NULL, *back = NULL;
	fte_config c;
	int tokens[5] = {1, 9, 33, 2, 60}, V;

	if (fte_model_load(fixture_dir("llama_bf16"), &hf) != FTE_OK) {
		CHECK(0);
		return;
	}
	c = *fte_model_config(hf);
	c.rope_style = FTE_ROPE_INTERLEAVED;
	CHECK(fte_model_create(&c, &il) == FTE_OK);
	for (int i = 0; i < fte_model_num_tensors(il); i++)
		memcpy(fte_model_tensor(il, i)->data, fte_model_tensor(hf, i)->data,
		    fte_model_tensor(il, i)->numel * sizeof(float));
	CHECK(fte_hf_save(il, NULL, ft_test_tmp("interleaved")) == FTE_OK);
	CHECK(fte_model_load(ft_test_tmp("interleaved"), &back) == FTE_OK);
	if (back != NULL) {
		const int D = c.head_dim;
		fte_tensor *q0 = fte_model_find(il, "layers.1.attn.wq.weight");
		fte_tensor *q1 = fte_model_find(back, "layers.1.attn.wq.weight");
		fte_tensor *k0 = fte_model_find(il, "layers.0.attn.wk.weight");
		fte_tensor *k1 = fte_model_find(back, "layers.0.attn.wk.weight");
		int bad = 0;
		CHECK(fte_model_config(back)->rope_style == FTE_ROPE_HALF);
		for (int h = 0; h < c.n_heads; h++)
			for (int i = 0; i < D / 2; i++)
				for (int j = 0; j < 2; j++)
					for (int col = 0; col < c.dim; col++) {
						bad += q1->data[(h * D + j * D / 2 + i) * c.dim + col] !=
						    q0->data[(h * D + 2 * i + j) * c.dim + col];
						if (h < c.n_kv_heads)
							bad += k1->data[(h * D + j * D / 2 + i) * c.dim + col] !=
							    k0->data[(h * D + 2 * i + j) * c.dim + col];
					}
		CHECK(bad == 0);
		V = c.vocab_size;
		float *a = calloc(5 * (size_t)V, sizeof(float)), *b = calloc(5 * (size_t)V, sizeof(float));
		CHECK(logits_compute(il, tokens, 5, a) == FTE_OK);
		CHECK(logits_compute(back, tokens, 5, b) == FTE_OK);
		double maxerr = 0;
		for (int i = 0; i < 5 * V; i++)
			maxerr = fmax(maxerr, fabs(a[i] - b[i]));
		printf("interleaved -> HF logits max abs diff %.3g\n", maxerr);
		CHECK(maxerr < 1e-4);
		free(a);
		free(b);
	}
	fte_model_free(back);
	fte_model_free(il);
	fte_model_free(hf);
}

static void
json_write(const char *path, json_t *j)
{
	CHECK(json_dump_file(j, path, 0) == 0);
	json_decref(j);
}

static void
text_write(const char *path, const char *text)
{
	ft_test_file_write(path, text, strlen(text));
}

/* expect_fail loads dir and checks the code and that the message names
 * the file and contains what. */
static void
expect_fail(const char *dir, int err, const char *file, const char *what)
{
	fte_model *m = NULL;
	int rc = fte_model_load(dir, &m);

	CHECK(rc == err);
	CHECK(m == NULL);
	if (rc != err || strstr(fte_last_error(), file) == NULL ||
	    strstr(fte_last_error(), what) == NULL)
		fprintf(stderr, "  %s -> %d \"%s\" (want %d, \"%s\", \"%s\")\n", dir, rc,
		    fte_last_error(), err, file, what);
	CHECK(strstr(fte_last_error(), file) != NULL);
	CHECK(strstr(fte_last_error(), what) != NULL);
	fte_model_free(m);
}

/* bad_family_dir saves fixture name into a fresh directory and returns its
 * config.json, to break one key at a time. */
static json_t *
bad_family_dir(const char *name, const char *dir, fte_model **keep)
{
	char cfg[4096];

	CHECK(fte_model_load(fixture_dir(name), keep) == FTE_OK);
	if (*keep == NULL)
		return NULL;
	CHECK(mkdir(dir, 0755) == 0);
	CHECK(fte_hf_save(*keep, NULL, dir) == FTE_OK);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	return json_load_file(cfg, 0, NULL);
}

/* Gemma's and Phi-3's keys: read in every form transformers writes them,
 * or refused by name. */
static void
test_bad_families(void)
{
	const char *d = ft_test_tmp("bad_gemma3"), *p = ft_test_tmp("bad_phi3");
	char cfg[4096];
	fte_model *g3 = NULL, *p3 = NULL, *m = NULL;
	json_t *j = bad_family_dir("gemma3", d, &g3), *lt;

	snprintf(cfg, sizeof(cfg), "%s/config.json", d);
	if (j != NULL) {
		/* newer transformers: RoPE per layer type */
		json_t *k = json_deep_copy(j);
		json_object_del(k, "rope_theta");
		json_object_del(k, "rope_scaling");
		json_object_del(k, "rope_local_base_freq");
		json_object_set_new(k, "rope_parameters", json_pack("{s:{s:s,s:f,s:f},s:{s:s,s:f}}",
		    "full_attention", "rope_type", "linear", "factor", 8.0, "rope_theta", 1e6,
		    "sliding_attention", "rope_type", "default", "rope_theta", 10000.0));
		json_write(cfg, k);
		CHECK(fte_model_load(d, &m) == FTE_OK);
		if (m != NULL)
			CHECK(same_config(fte_model_config(m), fte_model_config(g3)));
		fte_model_free(m);
		m = NULL;
		k = json_deep_copy(j);
		json_object_set_new(k, "rope_parameters", json_pack("{s:{s:s,s:f,s:f}}",
		    "sliding_attention", "rope_type", "linear", "factor", 2.0, "rope_theta", 1e4));
		json_write(cfg, k);
		expect_fail(d, FTE_ENOTSUP, "config.json", "sliding_attention.factor");
		/* layer_types: every 6th layer full is read, anything else refused */
		lt = json_object_get(j, "layer_types");
		CHECK(json_array_size(lt) == 6);
		json_array_set_new(lt, 1, json_string("full_attention"));
		json_write(cfg, json_deep_copy(j));
		expect_fail(d, FTE_ENOTSUP, "config.json", "layer_types is not");
		json_array_set_new(lt, 1, json_string("sliding_attention"));
		json_object_set_new(j, "hidden_activation", json_string("gelu"));
		json_write(cfg, json_deep_copy(j));
		expect_fail(d, FTE_ENOTSUP, "config.json", "hidden_activation \"gelu\"");
		json_object_set_new(j, "hidden_activation", json_string("gelu_pytorch_tanh"));
		json_object_set_new(j, "use_bidirectional_attention", json_true());
		json_write(cfg, json_deep_copy(j));
		expect_fail(d, FTE_ENOTSUP, "config.json", "use_bidirectional_attention");
		json_object_del(j, "use_bidirectional_attention");
		json_object_set_new(j, "partial_rotary_factor", json_real(0.5));
		json_write(cfg, json_deep_copy(j));
		expect_fail(d, FTE_ENOTSUP, "config.json", "partial_rotary_factor is not read");
		json_object_del(j, "partial_rotary_factor");
		json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:[f],s:[f]}", "type", "longrope",
		    "long_factor", 1.0, "short_factor", 1.0));
		json_write(cfg, json_deep_copy(j));
		expect_fail(d, FTE_ENOTSUP, "config.json", "read for Phi-3 only");
		json_decref(j);
	}
	fte_model_free(g3);
	snprintf(cfg, sizeof(cfg), "%s/config.json", p);
	if ((j = bad_family_dir("phi3", p, &p3)) != NULL) {
		/* LongRoPE: a factor per rotated pair (4 of head_dim 8), Phi-3 only */
		json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:[f],s:[f]}", "type", "longrope",
		    "long_factor", 1.0, "short_factor", 1.0));
		json_write(cfg, json_deep_copy(j));
		expect_fail(p, FTE_EFORMAT, "config.json", "short_factor is not a list of 4 numbers");
		/* "su", as Phi-3's first configs name it, is LongRoPE */
		json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:[f,f,f,f],s:[f,f,f,f]}", "type",
		    "su", "long_factor", 1.0, 2.0, 3.0, 4.0, "short_factor", 1.0, 1.5, 2.0, 2.5));
		json_write(cfg, json_deep_copy(j));
		CHECK(fte_model_load(p, &m) == FTE_OK && m != NULL &&
		    fte_model_config(m)->rope.type == FTE_ROPE_LONGROPE &&
		    fte_model_config(m)->rope.short_factor[3] == 2.5f &&
		    fte_model_config(m)->max_seq_len == 64);
		fte_model_free(m);
		m = NULL;
		json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f}", "type", "dynamic", "factor", 2.0));
		json_object_set_new(j, "partial_rotary_factor", json_real(0.5));
		json_write(cfg, json_deep_copy(j));
		CHECK(fte_model_load(p, &m) == FTE_OK && m != NULL && fte_model_config(m)->rope_dim == 4);
		fte_model_free(m);
		m = NULL;
		json_object_set_new(j, "rope_scaling", json_null());
		json_object_set_new(j, "partial_rotary_factor", json_real(0.1));
		json_write(cfg, json_deep_copy(j));
		expect_fail(p, FTE_ENOTSUP, "config.json", "does not turn an even number");
		json_object_del(j, "partial_rotary_factor");
		json_object_set_new(j, "attn_logit_softcapping", json_real(50));
		json_write(cfg, json_deep_copy(j));
		expect_fail(p, FTE_ENOTSUP, "config.json", "attn_logit_softcapping is not read");
		json_decref(j);
	}
	fte_model_free(p3);
}

static void
test_bad(void)
{
	const char *d = ft_test_tmp("bad");
	char cfg[4096], st[4096];
	fte_model *m = NULL;
	json_t *j;

	snprintf(cfg, sizeof(cfg), "%s/config.json", d);
	snprintf(st, sizeof(st), "%s/model.safetensors", d);
	expect_fail(ft_test_tmp("nothing"), FTE_ENOENT, "nothing", "cannot open");
	char lone[4096];
	snprintf(lone, sizeof(lone), "%s/model.safetensors", fixture_dir("llama_tied"));
	expect_fail(lone, FTE_ENOTSUP, "model.safetensors", "config.json");
	text_write(ft_test_tmp("x.gguf"), "GGUF\3\0\0\0");
	expect_fail(ft_test_tmp("x.gguf"), FTE_EFORMAT, "x.gguf", "GGUF");   /* GGUF is read now: a truncated one is malformed */
	CHECK(mkdir(d, 0755) == 0);
	expect_fail(d, FTE_ENOENT, "bad", "no config.json");

	/* start from a good model written by us, then break one thing at a time */
	CHECK(fte_model_load(fixture_dir("llama_tied"), &m) == FTE_OK);
	if (m == NULL)
		return;
	CHECK(fte_hf_save(m, NULL, d) == FTE_OK);
	j = json_load_file(cfg, 0, NULL);

	text_write(cfg, "{\"architectures\": [\"LlamaForCausalLM\"], ");
	expect_fail(d, FTE_EFORMAT, "config.json", "not valid JSON (line 1, column");
	CHECK(strstr(fte_last_error(), "Llama") == NULL);   /* no bytes of the file */
	json_object_set_new(j, "architectures", json_pack("[s]", "BertModel"));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "BertModel");
	json_object_set_new(j, "architectures", json_pack("[s]", "LlamaForCausalLM"));
	json_object_set_new(j, "intermediate_size", json_integer(48));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "model.safetensors", "config.json implies [48, 32]");
	json_object_set_new(j, "intermediate_size", json_integer(64));
	json_object_set_new(j, "vocab_size", json_integer(1 << 24));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "bad", "describes at least");
	json_object_set_new(j, "vocab_size", json_integer(64));
	/* every RoPE type and key is read or refused by name, never ignored */
	json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f}", "type", "longrope", "factor", 2.0));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "rope_scaling.rope_type \"longrope\"");
	json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f,s:f}", "type", "yarn", "factor", 2.0,
	    "mscale", 1.0));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "rope_scaling.mscale");
	json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f,s:i}", "type", "dynamic", "factor", 2.0,
	    "original_max_position_embeddings", 32));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "rope_scaling.original_max_position_embeddings");
	json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f,s:i}", "rope_type", "yarn", "factor", 4.0,
	    "original_max_position_embeddings", 32));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "transformers versions");
	json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f,s:f}", "rope_type", "llama3",
	    "factor", 8.0, "low_freq_factor", 1.0));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "config.json", "rope_scaling has no \"high_freq_factor\"");
	json_object_set_new(j, "rope_scaling", json_pack("{s:s}", "type", "linear"));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "config.json", "rope_scaling has no \"factor\"");
	json_object_set_new(j, "partial_rotary_factor", json_real(0.5));
	json_object_set_new(j, "rope_scaling", json_null());
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "partial_rotary_factor");
	json_object_del(j, "partial_rotary_factor");
	json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f}", "type", "linear", "factor", 2.0));
	json_write(cfg, json_deep_copy(j));
	{
		fte_model *ls = NULL;
		CHECK(fte_model_load(d, &ls) == FTE_OK && ls != NULL &&
		    fte_model_config(ls)->rope.type == FTE_ROPE_LINEAR &&
		    fte_model_config(ls)->rope.factor == 2.0);
		fte_model_free(ls);
	}
	/* newer transformers: rope_parameters, read or refused, never ignored */
	json_object_set_new(j, "rope_parameters", json_pack("{s:s,s:f,s:f}", "rope_type", "linear",
	    "rope_theta", 10000.0, "factor", 8.0));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "config.json", "both rope_scaling and rope_parameters");
	json_object_del(j, "rope_scaling");
	json_object_set_new(j, "rope_parameters", json_pack("{s:s,s:f,s:f}", "rope_type", "su",
	    "rope_theta", 500000.0, "factor", 8.0));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "rope_parameters.rope_type \"su\"");
	json_object_set_new(j, "rope_parameters", json_pack("{s:s,s:f,s:f,s:f,s:f,s:i}", "rope_type",
	    "llama3", "rope_theta", 10000.0, "factor", 8.0, "low_freq_factor", 1.0,
	    "high_freq_factor", 4.0, "original_max_position_embeddings", 8192));
	json_write(cfg, json_deep_copy(j));
	{
		fte_model *l3 = NULL;
		CHECK(fte_model_load(d, &l3) == FTE_OK && l3 != NULL &&
		    fte_model_config(l3)->rope.type == FTE_ROPE_LLAMA3 &&
		    fte_model_config(l3)->rope.orig_ctx == 8192);
		fte_model_free(l3);
	}
	json_object_set_new(j, "rope_parameters", json_pack("{s:{s:s,s:f}}", "full_attention",
	    "rope_type", "default", "rope_theta", 1e6));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "per attention type");
	json_object_set_new(j, "rope_parameters", json_pack("{s:s,s:f}", "rope_type", "default",
	    "rope_theta", 1e6));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "config.json", "differ");
	json_object_del(j, "rope_theta");
	json_write(cfg, json_deep_copy(j));
	{
		fte_model *rp = NULL;
		CHECK(fte_model_load(d, &rp) == FTE_OK && rp != NULL &&
		    fte_model_config(rp)->rope_theta == 1e6f);
		fte_model_free(rp);
	}
	json_object_del(j, "rope_parameters");
	json_object_set_new(j, "rope_theta", json_real(10000.0));
	json_object_set_new(j, "quantization_config", json_pack("{s:s,s:b}", "quant_method",
	    "bitsandbytes", "load_in_8bit", 1));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_ENOTSUP, "config.json", "quantization_config (quant_method bitsandbytes)");
	json_object_del(j, "quantization_config");
	json_object_del(j, "hidden_size");
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "config.json", "missing \"hidden_size\"");
	json_object_set_new(j, "hidden_size", json_integer(32));
	json_object_set_new(j, "num_key_value_heads", json_integer(3));
	json_write(cfg, json_deep_copy(j));
	expect_fail(d, FTE_EFORMAT, "config.json", "n_kv_heads");
	json_object_set_new(j, "num_key_value_heads", json_integer(2));
	json_write(cfg, json_deep_copy(j));

	/* weights: a tensor missing, a file cut short, none at all */
	{
		fte_st_entry e[64];
		int n = 0;
		memset(e, 0, sizeof(e));
		for (int i = 0; i < fte_model_num_tensors(m) && n < 64; i++) {
			fte_tensor *t = fte_model_tensor(m, i);
			if (strcmp(t->name, "norm.weight") == 0)
				continue;
			snprintf(e[n].name, sizeof(e[n].name), "%s", t->name);
			e[n].ndim = t->ndim;
			e[n].shape[0] = t->shape[0];
			e[n].shape[1] = t->shape[1];
			e[n].data = t->data;
			n++;
		}
		CHECK(fte_st_write(st, e, n, FTE_ST_F32, NULL) == FTE_OK);
		expect_fail(d, FTE_EFORMAT, "bad", "missing tensor \"model.embed_tokens.weight\"");
	}
	CHECK(truncate(st, 4000) == 0);
	expect_fail(d, FTE_EFORMAT, "model.safetensors", "outside");
	CHECK(unlink(st) == 0);
	expect_fail(d, FTE_ENOENT, "bad", "no model.safetensors");

	/* a shard index that points outside the directory */
	snprintf(st, sizeof(st), "%s/model.safetensors.index.json", d);
	text_write(st, "{\"weight_map\": {\"lm_head.weight\": \"../evil.safetensors\"}}");
	expect_fail(d, FTE_EFORMAT, "index.json", "bad shard file name");
	text_write(st, "{\"weight_map\": {\"lm_head.weight\": \"nope.safetensors\"}}");
	expect_fail(d, FTE_ENOENT, "nope.safetensors", "not found");

	/* GPT-2 variants the engine does not compute */
	json_decref(j);
	j = json_pack("{s:[s],s:i,s:i,s:i,s:i,s:s}", "architectures", "GPT2LMHeadModel",
	    "n_embd", 8, "n_head", 2, "n_layer", 1, "vocab_size", 10,
	    "activation_function", "relu");
	json_write(cfg, j);
	expect_fail(d, FTE_ENOTSUP, "config.json", "relu");
	fte_model_free(m);
}

/* merged_check verifies an exported adapter against the trainer's own merge:
 * for every adapted module, base + (alpha / r) * B @ A (transposed for
 * GPT-2's Conv1D) must equal the merged model's weight, all three read back
 * from the files as transformers + PEFT would. */
static void
merged_check(const char *base_dir, const char *merged_dir, const char *adapter_dir,
    float scale, int conv1d, int *n_modules)
{
	char path[4096];
	fte_st_file *base = NULL, *merged = NULL, *ad = NULL;
	double maxerr = 0;

	snprintf(path, sizeof(path), "%s/model.safetensors", base_dir);
	CHECK(fte_st_open(path, &base) == FTE_OK);
	snprintf(path, sizeof(path), "%s/model.safetensors", merged_dir);
	CHECK(fte_st_open(path, &merged) == FTE_OK);
	snprintf(path, sizeof(path), "%s/adapter_model.safetensors", adapter_dir);
	CHECK(fte_st_open(path, &ad) == FTE_OK);
	*n_modules = 0;
	for (int i = 0; ad != NULL && base != NULL && merged != NULL && i < ad->n_tensors; i++) {
		const fte_st_tensor *ta = &ad->tensors[i], *tb, *tw, *tm;
		const char *pre = "base_model.model.";
		char module[256], name[300];
		size_t len = strlen(ta->name);
		if (len < 15 || strcmp(ta->name + len - 14, ".lora_A.weight") != 0)
			continue;
		CHECK(strncmp(ta->name, pre, strlen(pre)) == 0);
		snprintf(module, sizeof(module), "%.*s", (int)(len - 14 - strlen(pre)), ta->name + strlen(pre));
		snprintf(name, sizeof(name), "%s%s.lora_B.weight", pre, module);
		tb = fte_st_find(ad, name);
		snprintf(name, sizeof(name), "%s.weight", module);
		tw = fte_st_find(base, name);
		tm = fte_st_find(merged, name);
		CHECK(tb != NULL && tw != NULL && tm != NULL);
		if (tb == NULL || tw == NULL || tm == NULL)
			continue;
		int r = (int)ta->shape[0], in = (int)ta->shape[1], out = (int)tb->shape[0];
		CHECK(tb->shape[1] == r);
		CHECK(conv1d ? tw->shape[0] == in && tw->shape[1] == out
		    : tw->shape[0] == out && tw->shape[1] == in);
		float *A = malloc(ta->numel * 4), *B = malloc(tb->numel * 4);
		float *W = malloc(tw->numel * 4), *M = malloc(tm->numel * 4);
		CHECK(fte_st_read_f32(ad, ta, A) == FTE_OK && fte_st_read_f32(ad, tb, B) == FTE_OK &&
		    fte_st_read_f32(base, tw, W) == FTE_OK && fte_st_read_f32(merged, tm, M) == FTE_OK);
		for (int o = 0; o < out; o++)
			for (int k = 0; k < in; k++) {
				double d = 0;
				for (int q = 0; q < r; q++)
					d += (double)B[o * r + q] * A[q * in + k];
				size_t at = conv1d ? (size_t)k * out + o : (size_t)o * in + k;
				maxerr = fmax(maxerr, fabs(W[at] + scale * d - M[at]));
			}
		free(A);
		free(B);
		free(W);
		free(M);
		(*n_modules)++;
	}
	printf("%s: %d adapted modules, merge vs adapter max abs err %.3g\n", adapter_dir,
	    *n_modules, maxerr);
	CHECK(maxerr < 1e-5);
	fte_st_close(ad);
	fte_st_close(merged);
	fte_st_close(base);
}

/* PEFT export: adapters from a real LoRA trainer (filled with values, since
 * B starts at zero), checked against the trainer's merge. */
static void
peft_case(fte_model *m, const char *tag, int conv1d, int want_modules, int want_targets)
{
	fte_train_config tc;
	fte_trainer *tr = NULL;
	char base[4096], merged[4096], adapter[4096], cfgpath[4200];
	int n, n_modules = 0;
	uint32_t seed = 12345;

	snprintf(base, sizeof(base), "%s", ft_test_tmp("peft_base"));
	snprintf(merged, sizeof(merged), "%s_%s", ft_test_tmp("peft_merged"), tag);
	snprintf(adapter, sizeof(adapter), "%s_%s", ft_test_tmp("peft_adapter"), tag);
	fte_train_config_default(&tc);
	tc.seq = 8;
	tc.lora.rank = 4;
	tc.lora.alpha = 8;
	tc.lora.targets = FTE_LORA_ALL;
	CHECK(fte_trainer_create(m, &tc, &tr) == FTE_OK);
	if (tr == NULL)
		return;
	n = fte_trainer_num_trainable(tr);
	fte_tensor **ts = calloc((size_t)n, sizeof(*ts));
	for (int i = 0; i < n; i++) {
		fte_tensor *g;
		CHECK(fte_trainer_trainable(tr, i, &ts[i], &g) == FTE_OK);
		for (size_t k = 0; k < ts[i]->numel; k++) {
			seed = seed * 1664525u + 1013904223u;
			ts[i]->data[k] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
		}
	}
	fte_peft_adapter ad = {tc.lora.rank, tc.lora.alpha, 0.0f, "base", n, ts};
	CHECK(fte_peft_save(m, &ad, adapter) == FTE_OK);
	CHECK(fte_hf_save(m, NULL, base) == FTE_OK);
	CHECK(fte_trainer_lora_merge(tr) == FTE_OK);
	CHECK(fte_hf_save(m, NULL, merged) == FTE_OK);
	merged_check(base, merged, adapter, tc.lora.alpha / tc.lora.rank, conv1d, &n_modules);
	CHECK(n_modules == want_modules);

	snprintf(cfgpath, sizeof(cfgpath), "%s/adapter_config.json", adapter);
	json_t *j = json_load_file(cfgpath, 0, NULL);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "peft_type")), "LORA");
	CHECK_STR(json_string_value(json_object_get(j, "task_type")), "CAUSAL_LM");
	CHECK(json_integer_value(json_object_get(j, "r")) == 4);
	CHECK(json_number_value(json_object_get(j, "lora_alpha")) == 8.0);
	CHECK(json_is_true(json_object_get(j, "fan_in_fan_out")) == conv1d);
	CHECK(json_array_size(json_object_get(j, "target_modules")) == (size_t)want_targets);
	if (conv1d) {
		CHECK(json_integer_value(json_object_get(json_object_get(j, "rank_pattern"), "c_attn")) == 12);
		CHECK(json_number_value(json_object_get(json_object_get(j, "alpha_pattern"), "c_attn")) == 24.0);
	}
	if (strcmp(tag, "phi3") == 0) {
		/* q, k, v in one adapter of rank 12, gate and up in one of rank 8 */
		json_t *rp = json_object_get(j, "rank_pattern"), *ap = json_object_get(j, "alpha_pattern");
		CHECK(json_integer_value(json_object_get(rp, "qkv_proj")) == 12 &&
		    json_integer_value(json_object_get(rp, "gate_up_proj")) == 8);
		CHECK(json_number_value(json_object_get(ap, "qkv_proj")) == 24.0 &&
		    json_number_value(json_object_get(ap, "gate_up_proj")) == 16.0);
	}
	json_decref(j);

	/* a tensor that does not fit the model is refused */
	fte_tensor bad = *ts[0];
	bad.shape[0] = 3;
	fte_tensor *badv[1] = {&bad};
	fte_peft_adapter ad2 = {tc.lora.rank, tc.lora.alpha, 0.0f, NULL, 1, badv};
	CHECK(fte_peft_save(m, &ad2, adapter) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "lora_A") != NULL);
	free(ts);
	fte_trainer_free(tr);
}

static void
test_peft(void)
{
	fte_model *m = NULL, *il = NULL;
	fte_config c;

	CHECK(fte_model_load(fixture_dir("llama_bf16"), &m) == FTE_OK);
	if (m == NULL)
		return;
	c = *fte_model_config(m);
	c.rope_style = FTE_ROPE_INTERLEAVED;
	CHECK(fte_model_create(&c, &il) == FTE_OK);
	for (int i = 0; i < fte_model_num_tensors(il); i++)
		memcpy(fte_model_tensor(il, i)->data, fte_model_tensor(m, i)->data,
		    fte_model_tensor(il, i)->numel * sizeof(float));
	peft_case(m, "llama", 0, 2 * 7, 7);
	peft_case(il, "interleaved", 0, 2 * 7, 7);
	fte_model_free(il);
	fte_model_free(m);
	m = NULL;
	CHECK(fte_model_load(fixture_dir("gpt2"), &m) == FTE_OK);
	if (m != NULL)
		peft_case(m, "gpt2", 1, 2 * 4, 3);
	fte_model_free(m);
	m = NULL;
	/* fused qkv_proj and gate_up_proj, against the fused base weights */
	CHECK(fte_model_load(fixture_dir("phi3"), &m) == FTE_OK);
	if (m != NULL)
		peft_case(m, "phi3", 0, 2 * 4, 4);
	fte_model_free(m);
	m = NULL;
	CHECK(fte_model_load(fixture_dir("gemma3"), &m) == FTE_OK);
	if (m != NULL)
		peft_case(m, "gemma3", 0, 6 * 7, 7);
	fte_model_free(m);
}

/* Half-precision export: a model whose values are already BF16 (or F16)
 * comes back bit for bit; config.json names the dtype. */
static void
test_save_dtype(void)
{
	static const struct { const char *fixture; int dtype; const char *torch; } cases[] = {
		{"llama_bf16", FTE_DTYPE_BF16, "bfloat16"},
		{"llama_f16", FTE_DTYPE_F16, "float16"},
	};

	for (int k = 0; k < 2; k++) {
		fte_model *m = NULL, *m2 = NULL;
		const char *out = ft_test_tmp(cases[k].torch);
		char cfg[4200];
		CHECK(fte_model_load(fixture_dir(cases[k].fixture), &m) == FTE_OK);
		if (m == NULL)
			continue;
		CHECK(fte_hf_save_dtype(m, NULL, out, cases[k].dtype) == FTE_OK);
		CHECK(fte_model_load(out, &m2) == FTE_OK);
		CHECK(m2 != NULL && same_tensors(m, m2));
		snprintf(cfg, sizeof(cfg), "%s/config.json", out);
		json_t *j = json_load_file(cfg, 0, NULL);
		CHECK_STR(json_string_value(json_object_get(j, "torch_dtype")), cases[k].torch);
		json_decref(j);
		CHECK(fte_hf_save_dtype(m, NULL, out, 9) == FTE_EINVAL);
		fte_model_free(m2);
		fte_model_free(m);
	}
}

/* The real llama2.c checkpoint exported to HF and read back must compute
 * the logits that gen_hf_fixtures.py got by converting it independently
 * (standard q/k permutation, HF rotate-half forward). */
static void
test_llama2c_export(void)
{
	const char *root = getenv("FT_ASSETS");
	char src[4096], path[4096];
	fte_model *l2c = NULL, *hf = NULL;
	json_t *exp;
	int tokens[16], T, V;

	snprintf(src, sizeof(src), "%s/llama2c/stories260K.bin", root ? root : "../shared/assets");
	if (access(src, R_OK) != 0) {
		printf("SKIP: %s not found\n", src);
		return;
	}
	snprintf(path, sizeof(path), "%sstories260K_hf_logits.json", ft_test_fixture("hf/"));
	exp = json_load_file(path, 0, NULL);
	CHECK(exp != NULL);
	CHECK(fte_model_load(src, &l2c) == FTE_OK);
	if (exp == NULL || l2c == NULL) {
		json_decref(exp);
		fte_model_free(l2c);
		return;
	}
	CHECK(fte_model_config(l2c)->rope_style == FTE_ROPE_INTERLEAVED);
	CHECK(fte_hf_save(l2c, NULL, ft_test_tmp("stories260K")) == FTE_OK);
	CHECK(fte_model_load(ft_test_tmp("stories260K"), &hf) == FTE_OK);
	T = (int)json_array_size(json_object_get(exp, "tokens"));
	V = fte_model_config(l2c)->vocab_size;
	for (int t = 0; t < T; t++)
		tokens[t] = (int)json_integer_value(json_array_get(json_object_get(exp, "tokens"), (size_t)t));
	float *a = calloc((size_t)T * V, sizeof(float)), *b = calloc((size_t)T * V, sizeof(float));
	CHECK(logits_compute(l2c, tokens, T, a) == FTE_OK);
	CHECK(hf != NULL && logits_compute(hf, tokens, T, b) == FTE_OK);
	double err_l2c = 0, err_hf = 0, maxref = 0;
	for (int t = 0; t < T; t++)
		for (int k = 0; k < V; k++) {
			double ref = json_number_value(json_array_get(json_array_get(
			    json_object_get(exp, "logits"), (size_t)t), (size_t)k));
			err_l2c = fmax(err_l2c, fabs(a[t * V + k] - ref));
			err_hf = fmax(err_hf, fabs(b[t * V + k] - ref));
			maxref = fmax(maxref, fabs(ref));
		}
	printf("stories260K: llama2.c logits err %.3g, exported HF err %.3g (max |logit| %.3g)\n",
	    err_l2c, err_hf, maxref);
	CHECK(maxref > 1.0);
	CHECK(err_l2c <= 1e-4 * maxref);
	CHECK(err_hf <= 1e-4 * maxref);
	free(a);
	free(b);
	fte_model_free(hf);
	fte_model_free(l2c);
	json_decref(exp);
}

/* A tied checkpoint that keeps the head and names the embedding as its
 * alias in __metadata__ (what safetensors.torch.save_model writes when it
 * keeps lm_head.weight) loads the same weights as the opposite alias. */
static void
test_alias_kept_head(void)
{
	const char *d = ft_test_tmp("alias_head");
	char src[4096], dst[4096];
	fte_st_file *f = NULL;
	fte_st_entry e[64];
	float *buf[64] = { 0 };
	fte_model *a = NULL, *b = NULL;
	int n = 0;

	snprintf(src, sizeof(src), "%s/model.safetensors", fixture_dir("llama_alias"));
	CHECK(mkdir(d, 0755) == 0 && fte_st_open(src, &f) == FTE_OK);
	for (int i = 0; f != NULL && i < f->n_tensors && n < 64; i++, n++) {
		const fte_st_tensor *t = &f->tensors[i];

		memset(&e[n], 0, sizeof(e[n]));
		snprintf(e[n].name, sizeof(e[n].name), "%s", strcmp(t->name, "model.embed_tokens.weight") ?
		    t->name : "lm_head.weight");
		e[n].ndim = t->ndim;
		memcpy(e[n].shape, t->shape, sizeof(e[n].shape));
		CHECK((buf[n] = malloc(t->numel * sizeof(float))) != NULL &&
		    fte_st_read_f32(f, t, buf[n]) == FTE_OK);
		e[n].data = buf[n];
	}
	snprintf(dst, sizeof(dst), "%s/model.safetensors", d);
	CHECK(fte_st_write(dst, e, n, FTE_ST_F32, (const char *const[]){ "model.embed_tokens.weight",
	    "lm_head.weight", NULL }) == FTE_OK);
	snprintf(src, sizeof(src), "%s/config.json", fixture_dir("llama_alias"));
	snprintf(dst, sizeof(dst), "%s/config.json", d);
	{
		size_t len = 0;
		char *cfg = ft_test_file_read(src, &len);

		CHECK(cfg != NULL);
		if (cfg != NULL)
			ft_test_file_write(dst, cfg, len);
		free(cfg);
	}
	CHECK(fte_model_load(fixture_dir("llama_alias"), &a) == FTE_OK);
	CHECK(fte_model_load(d, &b) == FTE_OK);
	if (a != NULL && b != NULL) {
		CHECK(fte_model_num_tensors(a) == fte_model_num_tensors(b));
		for (int i = 0; i < fte_model_num_tensors(a) && i < fte_model_num_tensors(b); i++) {
			const fte_tensor *x = fte_model_tensor(a, i), *y = fte_model_tensor(b, i);
			CHECK(strcmp(x->name, y->name) == 0 && x->numel == y->numel &&
			    memcmp(x->data, y->data, x->numel * sizeof(float)) == 0);
		}
	}
	fte_model_free(a);
	fte_model_free(b);
	for (int i = 0; i < n; i++)
		free(buf[i]);
	fte_st_close(f);
}

/* file_same reports whether path holds exactly text. */
static int
file_same(const char *path, const char *text)
{
	char buf[256] = "";
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return strcmp(buf, text) == 0;
}

/* A symbolic link inside a model or tokenizer directory is refused, never
 * followed; a side file that is not JSON is refused without its bytes; a
 * link planted at a temporary name the old writer used is not followed. */
static void
test_links(void)
{
	static const char *const names[] = {
		"config.json", "generation_config.json", "model.safetensors",
	};
	const char *d = ft_test_tmp("links"), *tok = ft_test_tmp("links_tok");
	const char *secret = ft_test_tmp("secret"), *out = ft_test_tmp("links_out");
	char p[4096], q[4096];
	fte_model *m = NULL;

	text_write(secret, "{\"root\": \"hunter2\"}");
	CHECK(fte_model_load(fixture_dir("llama_tied"), &m) == FTE_OK);
	if (m == NULL)
		return;
	CHECK(fte_hf_save(m, NULL, d) == FTE_OK);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fte_model *x = NULL;

		snprintf(p, sizeof(p), "%s/%s", d, names[i]);
		snprintf(q, sizeof(q), "%s/%s.keep", d, names[i]);
		CHECK(rename(p, q) == 0);
		CHECK(symlink(secret, p) == 0);
		CHECK(fte_model_load(d, &x) != FTE_OK && x == NULL);
		CHECK(strstr(fte_last_error(), "symbolic link") != NULL);
		CHECK(strstr(fte_last_error(), "hunter2") == NULL);
		CHECK(unlink(p) == 0 && rename(q, p) == 0);
	}
	/* tokenizer side files for fte_hf_save: a link, then a file not JSON */
	CHECK(mkdir(tok, 0755) == 0);
	snprintf(p, sizeof(p), "%s/special_tokens_map.json", tok);
	CHECK(symlink(secret, p) == 0);
	CHECK(fte_hf_save(m, tok, out) != FTE_OK);
	CHECK(strstr(fte_last_error(), "symbolic link") != NULL);
	snprintf(q, sizeof(q), "%s/special_tokens_map.json", out);
	CHECK(access(q, F_OK) != 0);
	CHECK(unlink(p) == 0);
	text_write(p, "root:$6$hunter2:19000::::::\n");
	CHECK(fte_hf_save(m, tok, out) != FTE_OK);
	CHECK(strstr(fte_last_error(), "not valid JSON (line 1, column") != NULL);
	CHECK(strstr(fte_last_error(), "hunter2") == NULL && strstr(fte_last_error(), "root") == NULL);
	CHECK(access(q, F_OK) != 0);
	CHECK(unlink(p) == 0);
	/* the writer once used <path>.tmp.<pid>.<n>: links there stay untouched */
	for (int n = 0; n < 1024; n++) {
		snprintf(p, sizeof(p), "%s/config.json.tmp.%ld.%d", out, (long)getpid(), n);
		CHECK(symlink(secret, p) == 0);
		snprintf(p, sizeof(p), "%s/model.safetensors.tmp.%ld.%d", out, (long)getpid(), n);
		CHECK(symlink(secret, p) == 0);
	}
	CHECK(fte_hf_save(m, tok, out) == FTE_OK);
	CHECK(file_same(secret, "{\"root\": \"hunter2\"}"));
	fte_model_free(m);
}

int
main(void)
{
	test_fixtures();
	test_configs();
	test_generate_rope("llama3_rope");
	test_generate_rope("qwen2_yarn");
	test_generate_rope("qwen3");
	test_generate_rope("gemma2");
	test_generate_rope("gemma3");
	test_generate_rope("phi3");
	test_generate_rope("mistral_window");
	test_generate_rope("phi3_longrope");
	test_families();
	test_bad_families();
	test_qwen3();
	test_interleaved();
	test_bad();
	test_alias_kept_head();
	test_links();
	test_peft();
	test_save_dtype();
	test_llama2c_export();
	printf("worst logits error relative to the largest logit: %.3g\n", worst_rel);
	test_tiny_gpt2();
	ft_test_tmp_remove();
	return ft_test_done();
}
