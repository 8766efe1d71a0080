/*
 * test_llama2c.c - a real pretrained model: stories260K (llama2.c format)
 * generates its documented text greedily from BOS, scores it with a low
 * teacher-forced loss, and learns from a few lines of Shakespeare with full
 * fine-tuning and with LoRA.  Broken checkpoint and model files fail with
 * FTE_EFORMAT and a message.
 */
#include <fcntl.h>

#include "ft_test.h"
#include "fte.h"

/* llama2.c doc/stories260K.md: greedy output from BOS. */
static const char *expected =
    "Once upon a time, there was a little girl named Lily. She loved to play "
    "outside in the park. One day, she saw a big, red ball.";

/* The opening of the tinyshakespeare corpus (read from the assets). */
static char shakespeare[400];

static void
check_generate(fte_model *m, fte_tokenizer *tok)
{
	fte_sampler s;
	int bos = 1, out[80], n = 0;
	char *text = NULL;
	size_t len;
	const char *p;

	fte_sampler_default(&s);
	s.max_new_tokens = 80;
	CHECK(fte_generate(m, &bos, 1, &s, NULL, NULL, out, &n) == FTE_OK);
	CHECK(n > 30);
	CHECK(fte_tokenizer_decode(tok, out, (size_t)n, &text, &len) == FTE_OK);
	if (text == NULL)
		return;
	for (p = text; *p == ' '; p++)
		;
	printf("greedy: %s\n", p);
	CHECK(strncmp(p, expected, strlen(expected)) == 0);
	free(text);
	{
		/* sampling: same seed, same text; a tiny top-p is greedy */
		int a[20], b[20], g[20], na, nb, ng;

		s.max_new_tokens = 20;
		s.temperature = 1.0f;
		s.top_k = 40;
		s.seed = 42;
		CHECK(fte_generate(m, &bos, 1, &s, NULL, NULL, a, &na) == FTE_OK);
		CHECK(fte_generate(m, &bos, 1, &s, NULL, NULL, b, &nb) == FTE_OK);
		CHECK(na == nb && memcmp(a, b, (size_t)na * sizeof(int)) == 0);
		s.top_k = 0;
		s.top_p = 1e-6f;
		CHECK(fte_generate(m, &bos, 1, &s, NULL, NULL, g, &ng) == FTE_OK);
		CHECK(ng == 20 && memcmp(g, out, 20 * sizeof(int)) == 0);
	}
}

static void
check_loss(fte_model *m, fte_tokenizer *tok)
{
	int *ids;
	size_t n;
	double sum;
	int count;

	CHECK(fte_tokenizer_encode(tok, expected, strlen(expected), 1, &ids, &n) == FTE_OK);
	CHECK(n > 10 && ids[0] == 1);
	CHECK(fte_model_loss(m, ids, (int)n, &sum, &count) == FTE_OK);
	printf("teacher-forced loss on the documented text: %.4f nats/token over %d\n",
	    sum / count, count);
	CHECK(count == (int)n - 1);
	CHECK(sum / count < 0.6);
	free(ids);
}

/* finetune trains a few steps on Shakespeare; returns first and last loss. */
static void
finetune(const char *what, fte_model *m, fte_tokenizer *tok, int rank,
    float lr, const char *ckpt)
{
	fte_train_config tc;
	fte_trainer *t;
	int *ids, tokens[64], targets[64];
	size_t n;
	float first = 0, last = 0;
	fte_batch b;

	CHECK(fte_tokenizer_encode(tok, shakespeare, strlen(shakespeare), 1, &ids, &n) == FTE_OK);
	CHECK(n > 33);
	if (n <= 33)
		return;
	for (int i = 0; i < 32; i++) {
		tokens[i] = ids[i];
		targets[i] = ids[i + 1];
	}
	free(ids);
	fte_train_config_default(&tc);
	tc.batch = 1;
	tc.seq = 32;
	tc.lr = lr;
	tc.lora.rank = rank;
	tc.lora.alpha = 2.0f * rank;
	tc.lora.targets = FTE_LORA_ALL;
	CHECK(fte_trainer_create(m, &tc, &t) == FTE_OK);
	b = (fte_batch){ tokens, targets, NULL, 1, 32 };
	for (int i = 0; i < 15; i++) {
		fte_step_stats st;

		CHECK(fte_trainer_step(t, &b, 1, &st) == FTE_OK);
		if (i == 0)
			first = st.loss;
		last = st.loss;
	}
	printf("%s fine-tuning on Shakespeare: loss %.4f -> %.4f\n", what, first, last);
	CHECK(last < 0.8f * first);
	if (ckpt != NULL) {
		/* broken checkpoints are errors with a message, never a crash */
		FILE *f;
		char buf[4096];
		size_t k;
		uint64_t pos = 7;
		int steps = fte_trainer_steps(t);

		CHECK(fte_trainer_save(t, ckpt, 15) == FTE_OK);
		f = fopen(ckpt, "rb");
		k = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (f)
			fclose(f);
		CHECK(k == sizeof(buf));
		f = fopen(ckpt, "wb");
		fwrite(buf, 1, k, f);   /* truncated */
		fclose(f);
		CHECK(fte_trainer_restore(t, ckpt, &pos) == FTE_EFORMAT);
		printf("truncated checkpoint: %s\n", fte_last_error());
		CHECK(strstr(fte_last_error(), ckpt) != NULL);
		for (size_t i = 0; i < k; i++)
			buf[i] = (char)(i * 7919u >> 3);
		f = fopen(ckpt, "wb");
		fwrite(buf, 1, k, f);   /* garbage */
		fclose(f);
		CHECK(fte_trainer_restore(t, ckpt, &pos) == FTE_EFORMAT);
		printf("garbage checkpoint: %s\n", fte_last_error());
		CHECK(pos == 7 && fte_trainer_steps(t) == steps);
		unlink(ckpt);
	}
	fte_trainer_free(t);
}

static void
check_broken_model(const char *src)
{
	char path[] = "/tmp/fte_test_l2c_XXXXXX";
	int fd = mkstemp(path);
	FILE *in = fopen(src, "rb");
	char buf[100000];
	size_t k = in ? fread(buf, 1, sizeof(buf), in) : 0;
	fte_model *m = NULL;
	int32_t bad = -5;

	if (in)
		fclose(in);
	CHECK(fd >= 0 && k == sizeof(buf));
	CHECK(write(fd, buf, k) == (ssize_t)k);   /* truncated */
	close(fd);
	CHECK(fte_llama2c_load(path, &m) == FTE_EFORMAT && m == NULL);
	printf("truncated model: %s\n", fte_last_error());
	memcpy(buf + 8, &bad, 4);                 /* n_layers = -5 */
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, buf, 28) == 28);
	close(fd);
	CHECK(fte_llama2c_load(path, &m) == FTE_EFORMAT && m == NULL);
	printf("bad header: %s\n", fte_last_error());
	unlink(path);
}

int
main(void)
{
	const char *model_path = ft_test_asset("llama2c/stories260K.bin");
	char mp[4096], tp[4096], ckpt[64];
	fte_model *m = NULL;
	fte_tokenizer *tok = NULL;
	const fte_config *c;
	float *copy;
	size_t np;

	snprintf(mp, sizeof(mp), "%s", model_path);
	snprintf(tp, sizeof(tp), "%s", ft_test_asset("llama2c/tok512.bin"));
	{
		FILE *f = fopen(ft_test_asset("corpora/tinyshakespeare/input.txt"), "rb");
		size_t k = f ? fread(shakespeare, 1, sizeof(shakespeare) - 1, f) : 0;

		if (f)
			fclose(f);
		CHECK(k == sizeof(shakespeare) - 1);
	}
	fte_threads_set(2);
	CHECK(fte_llama2c_load(mp, &m) == FTE_OK);
	CHECK(fte_tokenizer_load(tp, &tok) == FTE_OK);
	if (m == NULL || tok == NULL) {
		fprintf(stderr, "%s\n", fte_last_error());
		return ft_test_done();
	}
	c = fte_model_config(m);
	CHECK(c->dim == 64 && c->n_layers == 5 && c->n_heads == 8 && c->n_kv_heads == 4);
	CHECK(c->ffn_dim == 172 && c->vocab_size == 512 && c->max_seq_len == 512);
	CHECK(c->tied_embeddings && c->rope_style == FTE_ROPE_INTERLEAVED && c->bos_id == 1);
	check_generate(m, tok);
	check_loss(m, tok);

	np = fte_model_num_params(m);
	copy = malloc(np * sizeof(float));
	memcpy(copy, fte_model_tensor(m, 0)->data, np * sizeof(float));
	snprintf(ckpt, sizeof(ckpt), "/tmp/fte_test_l2c_ckpt_%d", (int)getpid());
	finetune("LoRA r=4", m, tok, 4, 1e-2f, ckpt);
	CHECK(memcmp(copy, fte_model_tensor(m, 0)->data, np * sizeof(float)) == 0);
	finetune("full", m, tok, 0, 2e-3f, NULL);
	CHECK(memcmp(copy, fte_model_tensor(m, 0)->data, np * sizeof(float)) != 0);
	free(copy);
	check_broken_model(mp);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	return ft_test_done();
}
