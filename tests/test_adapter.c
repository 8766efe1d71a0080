/* test_adapter.c - LoRA adapter files (engine/adapter.c): adapters trained
 * for a few steps on small random Llama and GPT-2 models are saved, loaded
 * for a fresh copy of the base and applied; the result must equal the
 * trainer's own merge (tolerance 0: the same arithmetic in the same order),
 * and export as PEFT the same bytes as the trainer's adapters; attached
 * unmerged to the base (fte_adapter_attach) it must score and generate as
 * the merged model does while holding only the adapter.  Truncated,
 * garbage, foreign and mismatched files are refused with FTE_EFORMAT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "ft_test.h"

static int
same_file(const char *a, const char *b)
{
	size_t na = 0, nb = 0;
	char *pa = ft_test_file_read(a, &na), *pb = ft_test_file_read(b, &nb);
	int same = pa != NULL && pb != NULL && na == nb && memcmp(pa, pb, na) == 0;

	free(pa);
	free(pb);
	return same;
}

/* max_diff returns the largest |a - b| over every parameter. */
static double
max_diff(fte_model *a, fte_model *b)
{
	double worst = 0;

	for (int i = 0; i < fte_model_num_tensors(a); i++) {
		const fte_tensor *x = fte_model_tensor(a, i), *y = fte_model_tensor(b, i);

		for (size_t k = 0; k < x->numel; k++) {
			double d = fabs((double)x->data[k] - y->data[k]);
			worst = d > worst ? d : worst;
		}
	}
	return worst;
}

/* train_lora runs three LoRA steps on random tokens (lr high enough that
 * every B moves away from zero). */
static fte_trainer *
train_lora(fte_model *m, unsigned targets)
{
	const fte_config *c = fte_model_config(m);
	int tokens[2 * 16], targets_ids[2 * 16];
	fte_train_config tc;
	fte_trainer *t = NULL;
	uint32_t seed = 99;

	fte_train_config_default(&tc);
	tc.batch = 2;
	tc.seq = 16;
	tc.lr = 1e-2f;
	tc.lora.rank = 4;
	tc.lora.alpha = 6;
	tc.lora.targets = targets;
	CHECK(fte_trainer_create(m, &tc, &t) == FTE_OK);
	if (t == NULL)
		return NULL;
	for (int step = 0; step < 3; step++) {
		for (int i = 0; i < 2 * 16; i++) {
			seed = seed * 1664525u + 1013904223u;
			tokens[i] = (int)(seed >> 8) % c->vocab_size;
		}
		for (int i = 0; i < 2 * 16; i++)
			targets_ids[i] = i % 16 == 15 ? -1 : tokens[i + 1];
		fte_batch b = { tokens, targets_ids, NULL, 2, 16 };
		CHECK(fte_trainer_step(t, &b, 1, NULL) == FTE_OK);
	}
	return t;
}

/* refused checks that loading path for c fails with FTE_EFORMAT and a
 * message that names the file and contains want. */
static void
refused(const char *path, const fte_config *c, const char *want)
{
	fte_peft_adapter *a = NULL;

	CHECK(fte_adapter_load(path, c, &a) == FTE_EFORMAT);
	CHECK(a == NULL);
	CHECK(strstr(fte_last_error(), path) != NULL);
	if (strstr(fte_last_error(), want) == NULL) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", fte_last_error(), want);
		CHECK(0);
	}
}

/* attached_case: base with the adapter attached unmerged computes what the
 * merged model (applied) does: teacher-forced log-probabilities within
 * float rounding (the product is grouped differently), the same greedy
 * tokens, and it holds only the adapter's bytes. */
static void
attached_case(const fte_config *c, fte_model *base, fte_model *applied,
    const fte_peft_adapter *a)
{
	int toks[16], g1[16], g2[16], n1 = 0, n2 = 0;
	fte_logprob lp1[15], lp2[15];
	fte_model *view = NULL;
	fte_sampler sm;
	fte_trainer *t = NULL;
	fte_train_config tc;
	double worst = 0;
	size_t want = 0;

	CHECK(fte_adapter_attach(base, a, &view) == FTE_OK);
	if (view == NULL)
		return;
	for (int i = 0; i < 16; i++)
		toks[i] = (i * 7 + 3) % c->vocab_size;
	CHECK(fte_model_logprobs(view, toks, 16, 3, lp1) == FTE_OK);
	CHECK(fte_model_logprobs(applied, toks, 16, 3, lp2) == FTE_OK);
	for (int i = 0; i < 15; i++) {
		double d = fabs((double)lp1[i].logprob - lp2[i].logprob);
		worst = d > worst ? d : worst;
		CHECK(lp1[i].top_id[0] == lp2[i].top_id[0]);
	}
	fte_sampler_default(&sm);
	sm.max_new_tokens = 12;
	sm.stop_at_eos = sm.stop_at_bos = 0;
	CHECK(fte_generate(view, toks, 3, &sm, NULL, NULL, g1, &n1) == FTE_OK);
	CHECK(fte_generate(applied, toks, 3, &sm, NULL, NULL, g2, &n2) == FTE_OK);
	CHECK(n1 == 12 && n1 == n2 && memcmp(g1, g2, sizeof(int) * (size_t)n1) == 0);
	for (int i = 0; i < a->n_tensors; i++)
		want += a->tensors[i]->numel * sizeof(float);
	printf("  attached unmerged vs merged: max |logprob diff| %.3g; greedy %d tokens equal; "
	    "%zu adapter bytes beside %zu base bytes\n", worst, n1, fte_model_own_bytes(view),
	    fte_model_own_bytes(base));
	CHECK(worst < 1e-4);
	CHECK(fte_model_own_bytes(view) == want);
	CHECK(fte_model_num_params(view) == fte_model_num_params(base));
	/* the base's weights are borrowed: no training, no apply, no second adapter */
	fte_train_config_default(&tc);
	CHECK(fte_trainer_create(view, &tc, &t) == FTE_EINVAL && t == NULL);
	CHECK(fte_adapter_apply(view, a) == FTE_EINVAL);
	{
		fte_model *two = NULL;

		CHECK(fte_adapter_attach(view, a, &two) == FTE_EINVAL && two == NULL);
	}
	fte_model_free(view);
}

static void
adapter_case(const char *tag, const fte_config *c, unsigned targets)
{
	char file[4096], peft_trained[4096], peft_loaded[4096], base_dir[4096], p1[4200], p2[4200];
	fte_model *trained = NULL, *base = NULL, *applied = NULL;
	fte_peft_adapter *loaded = NULL;
	fte_trainer *t;
	fte_tensor **ts;
	int n;

	printf("%s\n", tag);
	snprintf(file, sizeof(file), "%s", ft_test_tmp(tag));
	strcat(file, ".safetensors");
	snprintf(peft_trained, sizeof(peft_trained), "%s_peft_trained", ft_test_tmp(tag));
	snprintf(peft_loaded, sizeof(peft_loaded), "%s_peft_loaded", ft_test_tmp(tag));
	snprintf(base_dir, sizeof(base_dir), "%s_base", ft_test_tmp(tag));
	CHECK(fte_model_create(c, &trained) == FTE_OK);
	CHECK(fte_model_create(c, &base) == FTE_OK);
	CHECK(fte_model_create(c, &applied) == FTE_OK);
	if (trained == NULL || base == NULL || applied == NULL)
		goto out;
	CHECK(fte_model_init_random(trained, 5) == FTE_OK);
	CHECK(fte_model_init_random(base, 5) == FTE_OK);
	CHECK(fte_model_init_random(applied, 5) == FTE_OK);
	if ((t = train_lora(trained, targets)) == NULL)
		goto out;
	n = fte_trainer_num_trainable(t);
	ts = calloc((size_t)n, sizeof(*ts));
	for (int i = 0; i < n; i++)
		CHECK(fte_trainer_trainable(t, i, &ts[i], NULL) == FTE_OK);
	fte_peft_adapter a = { 4, 6.0f, 0.0f, "base", n, ts };
	CHECK(fte_adapter_save(c, &a, file) == FTE_OK);
	CHECK(fte_peft_save(trained, &a, peft_trained) == FTE_OK);

	/* an adapter without one of its tensors is not written */
	a.n_tensors = n - 1;
	CHECK(fte_adapter_save(c, &a, ft_test_tmp("never.safetensors")) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "lacks its lora_B") != NULL);
	CHECK(access(ft_test_tmp("never.safetensors"), F_OK) != 0);
	a.n_tensors = n;

	/* base + file equals the trainer's merge */
	CHECK(fte_adapter_load(file, c, &loaded) == FTE_OK);
	if (loaded != NULL) {
		double moved, diff;

		CHECK(loaded->rank == 4 && loaded->alpha == 6.0f && loaded->n_tensors == n);
		CHECK(fte_trainer_lora_merge(t) == FTE_OK);
		CHECK(fte_adapter_apply(applied, loaded) == FTE_OK);
		moved = max_diff(applied, base);
		diff = max_diff(applied, trained);
		printf("  %d adapter tensors; weights moved by up to %.3g; applied vs merged: "
		    "max |diff| %.3g (tolerance 0)\n", n, moved, diff);
		CHECK(moved > 1e-4);
		CHECK(diff == 0);
		/* the loaded adapter exports as PEFT exactly as the trainer's */
		CHECK(fte_peft_save(base, loaded, peft_loaded) == FTE_OK);
		snprintf(p1, sizeof(p1), "%s/adapter_model.safetensors", peft_trained);
		snprintf(p2, sizeof(p2), "%s/adapter_model.safetensors", peft_loaded);
		CHECK(same_file(p1, p2));
		snprintf(p1, sizeof(p1), "%s/adapter_config.json", peft_trained);
		snprintf(p2, sizeof(p2), "%s/adapter_config.json", peft_loaded);
		loaded->base_model = "base";
		CHECK(fte_peft_save(base, loaded, peft_loaded) == FTE_OK);
		CHECK(same_file(p1, p2));
		attached_case(c, base, applied, loaded);
	}

	/* an adapter that does not fit a model leaves it unchanged */
	{
		fte_config small = *c;
		fte_model *other = NULL;

		small.n_layers = 1;
		CHECK(fte_model_create(&small, &other) == FTE_OK);
		if (other != NULL && loaded != NULL) {
			CHECK(fte_adapter_apply(other, loaded) == FTE_EINVAL);
			CHECK(fte_model_tensor(other, 1)->data[0] == 0.0f);
		}
		fte_model_free(other);
		refused(file, &small, "is not a LoRA adapter of this model");
		small = *c;
		small.dim *= 2;
		small.head_dim *= 2;
		refused(file, &small, "has shape");
	}
	/* a model's own weights file is not an adapter */
	CHECK(fte_hf_save(base, NULL, base_dir) == FTE_OK);
	snprintf(p1, sizeof(p1), "%s/model.safetensors", base_dir);
	refused(p1, c, "not a LoRA adapter file");
	fte_adapter_free(loaded);
	free(ts);
	fte_trainer_free(t);
out:
	fte_model_free(trained);
	fte_model_free(base);
	fte_model_free(applied);
}

/* Damaged files: truncated, garbage, wrong metadata, a missing or
 * misshapen tensor; every one FTE_EFORMAT. */
static void
damaged_cases(const fte_config *c)
{
	const char *good = ft_test_tmp("llama.safetensors");
	char path[4096];
	size_t len = 0;
	char *bytes = ft_test_file_read(good, &len);
	fte_st_file *f = NULL;
	fte_st_entry *e;

	printf("damaged files\n");
	CHECK(bytes != NULL && len > 100);
	if (bytes == NULL)
		return;
	snprintf(path, sizeof(path), "%s", ft_test_tmp("truncated.safetensors"));
	ft_test_file_write(path, bytes, len - 7);
	refused(path, c, "");
	ft_test_file_write(path, bytes, 5);
	refused(path, c, "truncated");
	snprintf(path, sizeof(path), "%s", ft_test_tmp("garbage.safetensors"));
	for (size_t i = 0; i < len; i++)
		bytes[i] = (char)(i * 131 + 7);
	ft_test_file_write(path, bytes, len);
	refused(path, c, "");
	free(bytes);

	/* rewrite the good file's tensors with altered metadata or tensors */
	CHECK(fte_st_open(good, &f) == FTE_OK);
	if (f == NULL)
		return;
	e = calloc((size_t)f->n_tensors, sizeof(*e));
	for (int i = 0; i < f->n_tensors; i++) {
		float *d = malloc(f->tensors[i].numel * sizeof(float));

		CHECK(fte_st_read_f32(f, &f->tensors[i], d) == FTE_OK);
		snprintf(e[i].name, sizeof(e[i].name), "%s", f->tensors[i].name);
		e[i].ndim = 2;
		e[i].shape[0] = f->tensors[i].shape[0];
		e[i].shape[1] = f->tensors[i].shape[1];
		e[i].data = d;
	}
	snprintf(path, sizeof(path), "%s", ft_test_tmp("altered.safetensors"));
	{
		const char *no_rank[] = { "adapter", "lora", "alpha", "6", "dropout", "0",
			"targets", "q,v", NULL };
		const char *rank3[] = { "adapter", "lora", "rank", "3", "alpha", "6", "dropout", "0",
			"targets", "q,v", NULL };
		const char *only_q[] = { "adapter", "lora", "rank", "4", "alpha", "6", "dropout", "0",
			"targets", "q", NULL };
		const char *ok[] = { "adapter", "lora", "rank", "4", "alpha", "6", "dropout", "0",
			"targets", "q,v", NULL };
		int64_t saved;

		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, ok) == FTE_OK);
		{
			fte_peft_adapter *a = NULL;

			CHECK(fte_adapter_load(path, c, &a) == FTE_OK);
			fte_adapter_free(a);
		}
		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, no_rank) == FTE_OK);
		refused(path, c, "needs a whole rank");
		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, rank3) == FTE_OK);
		refused(path, c, "has shape");
		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, only_q) == FTE_OK);
		refused(path, c, "not among the adapter's targets");
		CHECK(fte_st_write(path, e, f->n_tensors - 1, FTE_ST_F32, ok) == FTE_OK);
		refused(path, c, "lacks its lora_B");
		saved = e[1].shape[0];
		e[1].shape[0] = saved / 2;
		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, ok) == FTE_OK);
		refused(path, c, "has shape");
		e[1].shape[0] = saved;
		snprintf(e[1].name, sizeof(e[1].name), "layers.0.attn.wz.lora_B.weight");
		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, ok) == FTE_OK);
		refused(path, c, "is not a LoRA adapter of this model");
		memcpy(e[1].name, e[0].name, sizeof(e[1].name));
		CHECK(fte_st_write(path, e, f->n_tensors, FTE_ST_F32, ok) == FTE_OK);
		refused(path, c, "");
	}
	for (int i = 0; i < f->n_tensors; i++)
		free((void *)e[i].data);
	free(e);
	fte_st_close(f);
}

int
main(void)
{
	fte_config llama = { .arch = FTE_ARCH_LLAMA, .n_layers = 2, .dim = 32,
		.n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 64,
		.vocab_size = 64, .max_seq_len = 16, .norm_eps = 1e-5f,
		.rope_theta = 10000.0f, .rope_style = FTE_ROPE_INTERLEAVED, .bos_id = 1,
		.eos_id = 2 };
	fte_config gpt2 = { .arch = FTE_ARCH_GPT2, .n_layers = 2, .dim = 32,
		.n_heads = 4, .n_kv_heads = 4, .head_dim = 8, .ffn_dim = 128,
		.vocab_size = 64, .max_seq_len = 16, .norm_eps = 1e-5f,
		.tied_embeddings = 1, .bos_id = -1, .eos_id = 0 };
	fte_threads_set(1);
	adapter_case("llama", &llama, FTE_LORA_Q | FTE_LORA_V);
	adapter_case("llama_all", &llama, FTE_LORA_ALL);
	adapter_case("gpt2", &gpt2, FTE_LORA_ALL);
	damaged_cases(&llama);
	ft_test_tmp_remove();
	return ft_test_done();
}
