/*
 * test_model.c - the whole model against PyTorch (tests/fixtures/model_*.bin,
 * written by gen_fixtures.py): logits, loss, every gradient and a 10-step
 * AdamW loss curve, Llama and GPT-2, full fine-tuning and LoRA, plus
 * packing, masking, accumulation, determinism and checkpoint resume.
 */
#include <stdint.h>

#include "ft_test.h"
#include "fte.h"

/* Float32 against a float64 reference: errors are relative to the tensor's
 * largest magnitude (element-wise ratios of near-zero values mean nothing). */
#define TOL_REL 1e-4
/* logits, which one product from the last norm leaves at float rounding */
#define TOL_LOGITS 1e-6

typedef struct record {
	char name[128];
	int dtype;
	uint32_t count;
	void *data;
} record;

typedef struct fixture {
	int n;
	record r[512];
} fixture;

static int
fixture_load(const char *path, fixture *fx)
{
	FILE *f = fopen(path, "rb");
	char magic[8];
	uint32_t n;

	memset(fx, 0, sizeof(*fx));
	if (f == NULL || fread(magic, 1, 8, f) != 8 || memcmp(magic, "FTEFIX01", 8) != 0 ||
	    fread(&n, 4, 1, f) != 1 || n > 512) {
		fprintf(stderr, "cannot read fixture %s\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		record *r = &fx->r[i];
		uint32_t len, dt;

		if (fread(&len, 4, 1, f) != 1 || len >= sizeof(r->name) ||
		    fread(r->name, 1, len, f) != len || fread(&dt, 4, 1, f) != 1 ||
		    fread(&r->count, 4, 1, f) != 1)
			goto bad;
		r->dtype = (int)dt;
		r->data = malloc((size_t)r->count * 4 + 4);
		if (fread(r->data, 4, r->count, f) != r->count)
			goto bad;
		fx->n++;
	}
	fclose(f);
	return 0;
bad:
	fprintf(stderr, "truncated fixture %s\n", path);
	fclose(f);
	return -1;
}

static void
fixture_free(fixture *fx)
{
	for (int i = 0; i < fx->n; i++)
		free(fx->r[i].data);
}

static record *
fx_get(fixture *fx, const char *name)
{
	for (int i = 0; i < fx->n; i++)
		if (strcmp(fx->r[i].name, name) == 0)
			return &fx->r[i];
	return NULL;
}

static float *
fx_f(fixture *fx, const char *fmt, const char *arg)
{
	char name[160];
	record *r;

	snprintf(name, sizeof(name), fmt, arg);
	r = fx_get(fx, name);
	return r ? r->data : NULL;
}

/* rel_err returns max|a - ref| / max|ref|, printing both. */
static double
rel_err(const char *what, const float *a, const float *ref, size_t n, int verbose)
{
	double maxd = 0, maxr = 0, e;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - ref[i]);

		if (!(d <= maxd))
			maxd = d;
		if (fabs(ref[i]) > maxr)
			maxr = fabs(ref[i]);
	}
	/* tensors whose true gradient is 0 (key biases) get an absolute floor */
	e = maxd / (maxr > 1e-3 ? maxr : 1e-3);
	if (verbose || !(e <= TOL_REL))
		printf("  %-40s max abs err %.3e  rel %.3e%s\n", what, maxd, e,
		    e <= TOL_REL ? "" : "  <-- FAIL");
	return e;
}

typedef struct setup {
	fixture fx;
	fte_config mc;
	fte_train_config tc;
	int B, T, steps, packed;
	int *tokens, *targets, *segments;
	fte_batch batch;
} setup;

static int
setup_load(const char *name, setup *s)
{
	char file[256];
	int32_t *ci;
	float *cf;

	memset(s, 0, sizeof(*s));
	snprintf(file, sizeof(file), "model_%s.bin", name);
	if (fixture_load(ft_test_fixture(file), &s->fx) != 0)
		return -1;
	ci = fx_get(&s->fx, "config.i")->data;
	cf = fx_get(&s->fx, "config.f")->data;
	s->mc = (fte_config){ .arch = ci[0], .n_layers = ci[1], .dim = ci[2],
		.n_heads = ci[3], .n_kv_heads = ci[4], .head_dim = ci[5], .ffn_dim = ci[6],
		.vocab_size = ci[7], .max_seq_len = ci[8], .rope_style = ci[9],
		.tied_embeddings = ci[10], .norm_eps = cf[0],
		.rope_theta = cf[1], .bos_id = -1, .eos_id = -1 };
	/* the first fixtures say "Llama with q/k/v biases" for the Qwen2 row */
	if (ci[0] == FTE_ARCH_LLAMA && ci[11])
		s->mc.arch = FTE_ARCH_QWEN2;
	/* families after Llama and GPT-2 add their attention's numbers */
	if (fx_get(&s->fx, "config.xi") != NULL) {
		int32_t *xi = fx_get(&s->fx, "config.xi")->data;
		float *xf = fx_get(&s->fx, "config.xf")->data;

		s->mc.sliding_window = xi[0];
		s->mc.sliding_pattern = xi[1];
		s->mc.query_scale = xf[0];
		s->mc.attn_softcap = xf[1];
		s->mc.final_softcap = xf[2];
		s->mc.rope_local_theta = xf[3];
		if (xf[4] > 0)
			s->mc.rope = (fte_rope_scaling){ .type = FTE_ROPE_LINEAR, .factor = xf[4] };
	}
	s->B = ci[12];
	s->T = ci[13];
	s->steps = ci[14];
	s->packed = ci[17];
	fte_train_config_default(&s->tc);
	s->tc.batch = s->B;
	s->tc.seq = s->T;
	s->tc.lr = cf[2];
	s->tc.beta1 = cf[3];
	s->tc.beta2 = cf[4];
	s->tc.eps = cf[5];
	s->tc.weight_decay = cf[6];
	s->tc.lora.rank = ci[15];
	s->tc.lora.targets = (unsigned)ci[16];
	s->tc.lora.alpha = cf[7];
	s->tc.schedule = ci[18];
	s->tc.warmup_steps = ci[19];
	s->tc.total_steps = ci[20];
	s->tc.decay_1d = ci[21];
	s->tc.clip = cf[8];
	s->tokens = fx_get(&s->fx, "tokens")->data;
	s->targets = fx_get(&s->fx, "targets")->data;
	s->segments = s->packed ? fx_get(&s->fx, "segments")->data : NULL;
	s->batch = (fte_batch){ s->tokens, s->targets, s->segments, s->B, s->T };
	return 0;
}

/* model_from copies the fixture's parameters into a new model. */
static fte_model *
model_from(setup *s)
{
	fte_model *m;

	if (fte_model_create(&s->mc, &m) != FTE_OK) {
		fprintf(stderr, "model: %s\n", fte_last_error());
		return NULL;
	}
	for (int i = 0; i < fte_model_num_tensors(m); i++) {
		fte_tensor *t = fte_model_tensor(m, i);
		record *r;
		char name[160];

		snprintf(name, sizeof(name), "param.%s", t->name);
		r = fx_get(&s->fx, name);
		CHECK(r != NULL && r->count == t->numel);
		if (r != NULL && r->count == t->numel)
			memcpy(t->data, r->data, t->numel * sizeof(float));
	}
	return m;
}

static fte_trainer *
trainer_from(setup *s, fte_model *m)
{
	fte_trainer *t;

	if (fte_trainer_create(m, &s->tc, &t) != FTE_OK) {
		fprintf(stderr, "trainer: %s\n", fte_last_error());
		return NULL;
	}
	if (s->tc.lora.rank > 0)
		for (int i = 0; i < fte_trainer_num_trainable(t); i++) {
			fte_tensor *p;
			float *init;

			CHECK(fte_trainer_trainable(t, i, &p, NULL) == FTE_OK);
			init = fx_f(&s->fx, "lora.%s", p->name);
			CHECK(init != NULL);
			if (init != NULL)
				memcpy(p->data, init, p->numel * sizeof(float));
		}
	return t;
}

/* check_merge: the merged model alone gives the adapted model's logits. */
static void
check_merge(setup *s, fte_model *m, fte_trainer *t)
{
	size_t nl = (size_t)s->B * s->T * s->mc.vocab_size;
	float *a = malloc(nl * sizeof(float)), *b = malloc(nl * sizeof(float)), la, lb;
	fte_train_config full = s->tc;
	fte_trainer *t2;

	CHECK(fte_trainer_backward(t, &s->batch, 1, a, &la) == FTE_OK);
	CHECK(fte_trainer_lora_merge(t) == FTE_OK);
	full.lora.rank = 0;
	CHECK(fte_trainer_create(m, &full, &t2) == FTE_OK);
	CHECK(fte_trainer_backward(t2, &s->batch, 1, b, &lb) == FTE_OK);
	CHECK(rel_err("merged model logits", b, a, nl, 1) <= 1e-5);
	CHECK(fte_trainer_lora_merge(t2) == FTE_EINVAL);
	fte_trainer_free(t2);
	free(a);
	free(b);
}

/* check_case: logits, loss, gradients and the loss curve against PyTorch. */
static void
check_case(const char *name)
{
	setup s;
	fte_model *m;
	fte_trainer *t;
	float *logits, loss, *ref;
	float *base_copy = NULL;
	fte_step_stats st = { 0 };
	double e, worst = 0;
	size_t nl;

	printf("%s\n", name);
	if (setup_load(name, &s) != 0) {
		CHECK(0);
		return;
	}
	m = model_from(&s);
	t = m ? trainer_from(&s, m) : NULL;
	CHECK(t != NULL);
	if (t == NULL)
		return;
	nl = (size_t)s.B * s.T * s.mc.vocab_size;
	logits = malloc(nl * sizeof(float));
	CHECK(fte_trainer_backward(t, &s.batch, 1, logits, &loss) == FTE_OK);
	{
		float ev = -1;

		CHECK(fte_trainer_eval(t, &s.batch, 1, &ev) == FTE_OK);
		CHECK(ev == loss);
	}
	ref = fx_f(&s.fx, "%slogits", "");
	CHECK(rel_err("logits", logits, ref, nl, 1) <= TOL_LOGITS);
	ref = fx_f(&s.fx, "%sloss", "");
	printf("  loss %.7f (torch %.7f)\n", loss, ref[0]);
	CHECK_NEAR(loss, ref[0], TOL_REL * fabs(ref[0]));
	for (int i = 0; i < fte_trainer_num_trainable(t); i++) {
		fte_tensor *p, *g;

		CHECK(fte_trainer_trainable(t, i, &p, &g) == FTE_OK);
		ref = fx_f(&s.fx, "grad.%s", p->name);
		CHECK(ref != NULL);
		if (ref == NULL)
			continue;
		e = rel_err(p->name, g->data, ref, g->numel, 0);
		CHECK(e <= TOL_REL);
		if (e > worst)
			worst = e;
	}
	printf("  %d gradient tensors, worst rel err %.3e\n", fte_trainer_num_trainable(t), worst);
	if (s.tc.lora.rank > 0) {
		base_copy = malloc(fte_model_num_params(m) * sizeof(float));
		memcpy(base_copy, fte_model_tensor(m, 0)->data, fte_model_num_params(m) * sizeof(float));
	}
	ref = fx_f(&s.fx, "%slosses", "");
	worst = 0;
	for (int i = 0; i < s.steps; i++) {
		CHECK(fte_trainer_step(t, &s.batch, 1, &st) == FTE_OK);
		e = fabs(st.loss - ref[i]) / fabs(ref[i]);
		if (e > worst)
			worst = e;
		CHECK(e <= TOL_REL);
	}
	printf("  %d AdamW steps: final loss %.6f (torch %.6f), worst rel err %.3e\n",
	    s.steps, st.loss, ref[s.steps - 1], worst);
	if (base_copy != NULL) {
		/* frozen base weights are bit for bit untouched by LoRA training */
		CHECK(memcmp(base_copy, fte_model_tensor(m, 0)->data,
		    fte_model_num_params(m) * sizeof(float)) == 0);
		free(base_copy);
		check_merge(&s, m, t);
	}
	free(logits);
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

/* A batch whose targets are all masked: loss 0, gradients 0, no NaN. */
static void
check_all_masked(void)
{
	setup s;
	fte_model *m;
	fte_trainer *t;
	int masked[64];
	float loss = -1;
	int finite = 1, zero = 1;

	printf("all-masked batch\n");
	if (setup_load("llama", &s) != 0 || (m = model_from(&s)) == NULL ||
	    (t = trainer_from(&s, m)) == NULL) {
		CHECK(0);
		return;
	}
	for (int i = 0; i < s.B * s.T; i++)
		masked[i] = -1;
	s.batch.targets = masked;
	CHECK(fte_trainer_backward(t, &s.batch, 1, NULL, &loss) == FTE_OK);
	CHECK(loss == 0.0f);
	for (int i = 0; i < fte_trainer_num_trainable(t); i++) {
		fte_tensor *g;

		CHECK(fte_trainer_trainable(t, i, NULL, &g) == FTE_OK);
		for (size_t j = 0; j < g->numel; j++) {
			finite &= isfinite(g->data[j]) != 0;
			zero &= g->data[j] == 0.0f;
		}
	}
	CHECK(finite);
	CHECK(zero);
	{
		fte_step_stats st;

		CHECK(fte_trainer_step(t, &s.batch, 1, &st) == FTE_OK);
		CHECK(st.loss == 0.0f && st.tokens == 0 && isfinite(st.grad_norm));
		CHECK(isfinite(fte_model_tensor(m, 0)->data[0]));
	}
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

static int
progress_stop_at_2(void *arg, const fte_step_stats *st)
{
	int *calls = arg;

	(*calls)++;
	return st->step == 2;
}

/* The abort flag stops a step before it changes anything; the progress
 * callback sees every step and can cancel. */
static void
check_abort_progress(void)
{
	setup s;
	fte_model *m;
	fte_trainer *t;
	atomic_int flag = 0;
	int calls = 0;
	float *copy;
	size_t n;

	printf("abort flag and progress callback\n");
	if (setup_load("llama", &s) != 0 || (m = model_from(&s)) == NULL ||
	    (t = trainer_from(&s, m)) == NULL) {
		CHECK(0);
		return;
	}
	fte_trainer_set_progress(t, progress_stop_at_2, &calls);
	fte_trainer_set_abort(t, &flag);
	CHECK(fte_trainer_step(t, &s.batch, 1, NULL) == FTE_OK);
	CHECK(fte_trainer_step(t, &s.batch, 1, NULL) == FTE_ECANCELED);
	CHECK(calls == 2 && fte_trainer_steps(t) == 2);
	n = fte_model_num_params(m);
	copy = malloc(n * sizeof(float));
	memcpy(copy, fte_model_tensor(m, 0)->data, n * sizeof(float));
	atomic_store(&flag, 1);
	CHECK(fte_trainer_step(t, &s.batch, 1, NULL) == FTE_ECANCELED);
	CHECK(fte_trainer_steps(t) == 2 && calls == 2);
	CHECK(memcmp(copy, fte_model_tensor(m, 0)->data, n * sizeof(float)) == 0);
	free(copy);
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

/* Two micro-batches of one row give the loss and gradients of one batch. */
static void
check_accumulation(void)
{
	setup s;
	fte_model *m;
	fte_trainer *t;
	float l1, l2, *g1;
	fte_batch micro[2];
	size_t n;
	fte_tensor *g;

	printf("gradient accumulation\n");
	if (setup_load("gpt2", &s) != 0 || (m = model_from(&s)) == NULL ||
	    (t = trainer_from(&s, m)) == NULL) {
		CHECK(0);
		return;
	}
	CHECK(fte_trainer_backward(t, &s.batch, 1, NULL, &l1) == FTE_OK);
	n = fte_model_num_params(m);
	g1 = malloc(n * sizeof(float));
	CHECK(fte_trainer_trainable(t, 0, NULL, &g) == FTE_OK);
	memcpy(g1, g->data, n * sizeof(float));   /* full mode: one block */
	for (int b = 0; b < 2; b++)
		micro[b] = (fte_batch){ s.tokens + b * s.T, s.targets + b * s.T, NULL, 1, s.T };
	CHECK(fte_trainer_backward(t, micro, 2, NULL, &l2) == FTE_OK);
	CHECK_NEAR(l1, l2, 1e-5 * l1);
	CHECK(rel_err("accumulated gradients", g->data, g1, n, 1) <= 1e-5);
	free(g1);
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

/* run_steps trains n steps from the fixture's start (or a checkpoint) and
 * records the losses; with save_at > 0 it saves there and stops. */
static int
run_steps(setup *s, int n, const char *restore, const char *save, float *losses)
{
	fte_model *m = model_from(s);
	fte_trainer *t = m ? trainer_from(s, m) : NULL;
	uint64_t pos = 0;
	int rc = 0;

	if (t == NULL)
		return -1;
	if (restore != NULL) {
		rc |= fte_trainer_restore(t, restore, &pos) != FTE_OK;
		rc |= pos != 3;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		fte_step_stats st;

		rc |= fte_trainer_step(t, &s->batch, 1, &st) != FTE_OK;
		losses[i] = st.loss;
	}
	if (save != NULL)
		rc |= fte_trainer_save(t, save, (uint64_t)fte_trainer_steps(t)) != FTE_OK;
	if (rc)
		fprintf(stderr, "run_steps: %s\n", fte_last_error());
	fte_trainer_free(t);
	fte_model_free(m);
	return rc;
}

/* 6 steps straight == 3 steps, save, restore into a fresh model, 3 steps. */
static void
check_resume(const char *name, float dropout)
{
	setup s;
	float straight[6], part[6];
	char path[] = "/tmp/fte_test_ckpt_XXXXXX";
	int fd = mkstemp(path);

	printf("checkpoint resume (%s, dropout %.1f)\n", name, dropout);
	if (fd < 0 || setup_load(name, &s) != 0) {
		CHECK(0);
		return;
	}
	close(fd);
	s.tc.lora.dropout = dropout;
	CHECK(run_steps(&s, 6, NULL, NULL, straight) == 0);
	CHECK(run_steps(&s, 3, NULL, path, part) == 0);
	CHECK(run_steps(&s, 3, path, NULL, part + 3) == 0);
	CHECK(memcmp(straight, part, sizeof(straight)) == 0);
	for (int i = 0; i < 6; i++)
		printf("  step %d  %.7f  %.7f\n", i + 1, straight[i], part[i]);
	/* the same seed twice gives the same curve */
	CHECK(run_steps(&s, 6, NULL, NULL, part) == 0);
	CHECK(memcmp(straight, part, sizeof(straight)) == 0);
	unlink(path);
	fixture_free(&s.fx);
}

/* Recomputing activations in backward gives bit-identical gradients and
 * losses (dropout masks replayed) with less activation memory. */
static void
check_recompute(const char *name, float dropout)
{
	setup s;
	fte_model *m[2];
	fte_trainer *t[2];
	float loss[2][3];
	fte_memory mem[2];
	int same = 1;

	printf("activation recomputation (%s, dropout %.1f)\n", name, dropout);
	if (setup_load(name, &s) != 0) {
		CHECK(0);
		return;
	}
	s.tc.lora.dropout = dropout;
	for (int i = 0; i < 2; i++) {
		s.tc.recompute = i;
		CHECK(fte_train_memory(&s.mc, &s.tc, &mem[i]) == FTE_OK);
		m[i] = model_from(&s);
		t[i] = m[i] ? trainer_from(&s, m[i]) : NULL;
		if (t[i] == NULL) {
			CHECK(0);
			return;
		}
		for (int j = 0; j < 3; j++) {
			fte_step_stats st;

			CHECK(fte_trainer_step(t[i], &s.batch, 1, &st) == FTE_OK);
			loss[i][j] = st.loss;
		}
	}
	CHECK(memcmp(loss[0], loss[1], sizeof(loss[0])) == 0);
	for (int k = 0; k < fte_trainer_num_trainable(t[0]); k++) {
		fte_tensor *g0, *g1;

		CHECK(fte_trainer_trainable(t[0], k, NULL, &g0) == FTE_OK);
		CHECK(fte_trainer_trainable(t[1], k, NULL, &g1) == FTE_OK);
		same &= memcmp(g0->data, g1->data, g0->numel * sizeof(float)) == 0;
	}
	CHECK(same);
	CHECK(mem[1].activations < mem[0].activations);
	printf("  activations %zu -> %zu bytes, losses %.7f %.7f %.7f\n", mem[0].activations,
	    mem[1].activations, loss[1][0], loss[1][1], loss[1][2]);
	for (int i = 0; i < 2; i++) {
		fte_trainer_free(t[i]);
		fte_model_free(m[i]);
	}
	fixture_free(&s.fx);
}

/* KV-cache generation picks, at every step, the argmax of the full
 * forward pass over the tokens so far. */
static void
check_generate(const char *name)
{
	setup s;
	fte_model *m;
	fte_trainer *t;
	fte_sampler smp;
	int seq[8], tgt[8], gen[5], n = 0, agree = 1;
	float *logits, loss;
	int V;

	printf("KV-cache generation (%s)\n", name);
	if (setup_load(name, &s) != 0 || (m = model_from(&s)) == NULL ||
	    (t = trainer_from(&s, m)) == NULL) {
		CHECK(0);
		return;
	}
	V = s.mc.vocab_size;
	fte_sampler_default(&smp);
	smp.max_new_tokens = 5;
	smp.stop_at_eos = smp.stop_at_bos = 0;
	CHECK(fte_generate(m, s.tokens, 3, &smp, NULL, NULL, gen, &n) == FTE_OK);
	CHECK(n == 5);
	memcpy(seq, s.tokens, 3 * sizeof(int));
	memcpy(seq + 3, gen, 5 * sizeof(int));
	for (int i = 0; i < 8; i++)
		tgt[i] = -1;
	logits = malloc(8 * (size_t)V * sizeof(float));
	for (int k = 0; k < 5; k++) {
		int T = 3 + k, best = 0;
		fte_batch b = { seq, tgt, NULL, 1, T };
		const float *row = logits + (size_t)(T - 1) * V;

		CHECK(fte_trainer_backward(t, &b, 1, logits, &loss) == FTE_OK);
		for (int v = 1; v < V; v++)
			if (row[v] > row[best])
				best = v;
		agree &= best == gen[k];
	}
	CHECK(agree);
	printf("  generated %d %d %d %d %d\n", gen[0], gen[1], gen[2], gen[3], gen[4]);
	free(logits);
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

/* Generated tokens' log-probabilities, collected by the callback. */
typedef struct lp_log {
	int n;
	float lp[64];
} lp_log;

static int
lp_collect(void *arg, int token, const fte_logprob *lp)
{
	lp_log *l = arg;

	(void)token;
	if (l->n < 64)
		l->lp[l->n++] = lp->logprob;
	return 0;
}

/* check_generate_exact: every step of KV-cache generation, far past the
 * sliding window, gives the log-probability the full forward (the training
 * attention) gives the same token, to float rounding. */
static void
check_generate_exact(const char *name)
{
	setup s;
	fte_model *m;
	fte_sampler smp;
	fte_logprob full[40];
	lp_log got = { 0 };
	int seq[41], n = 0, want;
	double worst = 0;

	printf("KV-cache generation, log-probabilities (%s)\n", name);
	if (setup_load(name, &s) != 0 || (m = model_from(&s)) == NULL) {
		CHECK(0);
		return;
	}
	/* to the end of the context, or 37 tokens */
	want = s.mc.max_seq_len - 3 < 37 ? s.mc.max_seq_len - 3 : 37;
	fte_sampler_default(&smp);
	smp.max_new_tokens = want;
	smp.temperature = 1.0f;   /* sampled: the path is not the argmax's */
	smp.seed = 7;
	smp.stop_at_eos = smp.stop_at_bos = 0;
	memcpy(seq, s.tokens, 4 * sizeof(int));
	CHECK(fte_generate_logprobs(m, seq, 4, &smp, 0, lp_collect, &got, seq + 4, &n) == FTE_OK);
	CHECK(n == want && got.n == want);
	CHECK(fte_model_logprobs(m, seq, 4 + n, 0, full) == FTE_OK);
	for (int i = 0; i < n; i++) {
		double d = fabs((double)got.lp[i] - full[3 + i].logprob);
		worst = d > worst ? d : worst;
	}
	printf("  %d tokens (window %d), worst |logprob difference| %.3g\n", n,
	    s.mc.sliding_window, worst);
	CHECK(worst < 1e-5);
	fte_model_free(m);
	fixture_free(&s.fx);
}

/* check_loss_rows: rows of different lengths in one batch, padded at the
 * end, each get the loss they get alone: fte_model_loss for a whole
 * sequence, a trainer's masked mean for a row with a masked prompt. */
static void
check_loss_rows(const char *name)
{
	setup s;
	fte_model *m;
	fte_trainer *t;
	int T, V, len[3], *seq, *tok, *tgt, count[3];
	double sum[3], worst = 0;

	printf("batched per-row loss (%s)\n", name);
	if (setup_load(name, &s) != 0 || (m = model_from(&s)) == NULL ||
	    (t = trainer_from(&s, m)) == NULL) {
		CHECK(0);
		return;
	}
	T = s.T;
	V = s.mc.vocab_size;
	len[0] = T;
	len[1] = T - 3;
	len[2] = 2;
	seq = malloc((size_t)(T + 1) * sizeof(int));
	tok = malloc(3 * (size_t)T * sizeof(int));
	tgt = malloc(3 * (size_t)T * sizeof(int));
	for (int i = 0; i <= T; i++)
		seq[i] = (i * 7 + 3) % V;
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < T; i++) {
			tok[r * T + i] = i < len[r] ? seq[i] : 0;
			/* row 1 masks its first two targets, as a prompt */
			tgt[r * T + i] = i < len[r] && !(r == 1 && i < 2) ? seq[i + 1] : -1;
		}
	{
		fte_batch b = { tok, tgt, NULL, 3, T };

		CHECK(fte_model_loss_rows(m, &b, sum, count) == FTE_OK);
	}
	CHECK(count[0] == len[0] && count[1] == len[1] - 2 && count[2] == len[2]);
	for (int r = 0; r < 3; r++) {
		double ref, e;
		int n;

		if (r == 1) {
			fte_batch one = { tok + T, tgt + T, NULL, 1, len[1] };
			float mean;

			CHECK(fte_trainer_eval(t, &one, 1, &mean) == FTE_OK);
			ref = (double)mean * count[1];
		} else {
			CHECK(fte_model_loss(m, seq, len[r] + 1, &ref, &n) == FTE_OK && n == count[r]);
		}
		e = fabs(sum[r] - ref) / fabs(ref);
		CHECK(e <= 1e-5);
		if (e > worst)
			worst = e;
	}
	printf("  rows of %d, %d (2 masked) and %d tokens: worst rel err %.3e\n", len[0], len[1],
	    len[2], worst);
	{
		fte_batch b = { tok, tgt, NULL, 1, s.mc.max_seq_len + 1 };

		CHECK(fte_model_loss_rows(m, &b, sum, count) == FTE_EINVAL);
		b.T = T;
		tgt[1] = V;
		CHECK(fte_model_loss_rows(m, &b, sum, count) == FTE_EINVAL);
		CHECK(strstr(fte_last_error(), "outside the vocabulary") != NULL);
	}
	free(seq);
	free(tok);
	free(tgt);
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

/* Bad input is an error with a message, never a crash or a silent result. */
static void
check_errors(void)
{
	setup s;
	fte_model *m;
	fte_trainer *t, *tl;
	fte_train_config tc;
	fte_batch b;
	fte_sampler smp;
	int bad[16], out[4], n = 0;
	unsigned bits = 0;
	char path[] = "/tmp/fte_test_err_XXXXXX";
	int fd = mkstemp(path);
	float loss;

	printf("errors\n");
	if (fd < 0 || setup_load("gpt2", &s) != 0 || (m = model_from(&s)) == NULL ||
	    (t = trainer_from(&s, m)) == NULL) {
		CHECK(0);
		return;
	}
	close(fd);
	memcpy(bad, s.tokens, sizeof(bad));
	bad[3] = s.mc.vocab_size;
	b = s.batch;
	b.tokens = bad;
	CHECK(fte_trainer_step(t, &b, 1, NULL) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "outside the vocabulary") != NULL);
	b = s.batch;
	b.B = s.B + 1;
	CHECK(fte_trainer_backward(t, &b, 1, NULL, &loss) == FTE_EINVAL);
	CHECK(fte_trainer_steps(t) == 0);

	tc = s.tc;
	tc.seq = s.mc.max_seq_len + 1;
	CHECK(fte_trainer_create(m, &tc, &tl) == FTE_EINVAL);
	tc = s.tc;
	tc.lora.rank = 2;
	tc.lora.dropout = 1.0f;
	CHECK(fte_trainer_create(m, &tc, &tl) == FTE_EINVAL);
	tc.lora.dropout = 0.0f;
	tc.lora.targets = FTE_LORA_GATE;   /* GPT-2 has no gate */
	CHECK(fte_trainer_create(m, &tc, &tl) == FTE_EINVAL);
	CHECK(fte_lora_targets_parse("q,zz", &bits) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "zz") != NULL);
	CHECK(fte_lora_targets_parse("all", &bits) == FTE_OK && bits == FTE_LORA_ALL);
	CHECK(fte_lora_targets_parse("q,V", &bits) == FTE_OK && bits == (FTE_LORA_Q | FTE_LORA_V));

	/* a LoRA checkpoint does not fit a full fine-tuning trainer */
	tc.lora.targets = FTE_LORA_Q | FTE_LORA_V;
	CHECK(fte_trainer_create(m, &tc, &tl) == FTE_OK);
	CHECK(fte_trainer_save(tl, path, 0) == FTE_OK);
	CHECK(fte_trainer_restore(t, path, NULL) == FTE_EFORMAT);
	CHECK(strstr(fte_last_error(), "another model shape") != NULL);
	CHECK(fte_trainer_restore(tl, path, NULL) == FTE_OK);
	CHECK(fte_trainer_restore(tl, "/nonexistent/ckpt", NULL) == FTE_EIO);
	fte_trainer_free(tl);
	unlink(path);

	fte_sampler_default(&smp);
	smp.max_new_tokens = 4;
	CHECK(fte_generate(m, bad + 3, 1, &smp, NULL, NULL, out, &n) == FTE_EINVAL);
	smp.top_p = 0.0f;
	CHECK(fte_generate(m, s.tokens, 2, &smp, NULL, NULL, out, &n) == FTE_EINVAL);
	smp.top_p = 1.0f;
	CHECK(fte_generate(m, s.tokens, 2, &smp, NULL, NULL, out, &n) == FTE_OK && n == 4);
	fte_trainer_free(t);
	fte_model_free(m);
	fixture_free(&s.fx);
}

static void
check_init_and_memory(void)
{
	fte_config c = { .arch = FTE_ARCH_LLAMA, .n_layers = 2, .dim = 32,
		.n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 64,
		.vocab_size = 64, .max_seq_len = 16, .norm_eps = 1e-5f,
		.rope_theta = 10000.0f, .bos_id = 1, .eos_id = 2 };
	fte_model *a, *b;
	fte_train_config tc;
	fte_memory full, lora;

	printf("init and memory\n");
	CHECK(fte_model_create(&c, &a) == FTE_OK);
	CHECK(fte_model_create(&c, &b) == FTE_OK);
	CHECK(fte_model_init_random(a, 7) == FTE_OK);
	CHECK(fte_model_init_random(b, 7) == FTE_OK);
	CHECK(memcmp(fte_model_tensor(a, 0)->data, fte_model_tensor(b, 0)->data,
	    fte_model_num_params(a) * sizeof(float)) == 0);
	CHECK(fte_config_num_params(&c) == fte_model_num_params(a));
	CHECK(fte_model_find(a, "layers.1.ffn.w2.weight") != NULL);
	CHECK(fte_model_find(a, "output.weight") != NULL);
	CHECK(fte_model_find(a, "layers.1.attn.wq.bias") == NULL);
	CHECK(fte_model_find(a, "norm.weight")->data[0] == 1.0f);
	fte_train_config_default(&tc);
	tc.batch = 2;
	tc.seq = 16;
	CHECK(fte_train_memory(&c, &tc, &full) == FTE_OK);
	CHECK(full.weights == fte_model_num_params(a) * sizeof(float));
	CHECK(full.grads == full.weights && full.optimizer == 2 * full.weights);
	tc.lora.rank = 4;
	CHECK(fte_train_memory(&c, &tc, &lora) == FTE_OK);
	CHECK(lora.grads < full.grads / 4 && lora.activations > 0);
	c.n_kv_heads = 3;
	CHECK(fte_config_check(&c) == FTE_EINVAL);
	printf("  full %zu B, lora %zu B; bad config: %s\n", full.total, lora.total,
	    fte_last_error());
	fte_model_free(a);
	fte_model_free(b);
}

int
main(void)
{
	fte_threads_set(2);
	check_case("llama");
	check_case("gpt2");
	check_case("llama_packed");
	check_case("llama_sched");
	check_case("gpt2_sched");
	check_case("llama_lora");
	check_case("gpt2_lora");
	check_case("gemma2");
	check_case("gemma2_packed");
	check_case("gemma3");
	check_case("phi3");
	check_case("gemma2_lora");
	check_case("gemma3_lora");
	check_case("phi3_lora");
	check_all_masked();
	check_abort_progress();
	check_accumulation();
	check_resume("llama", 0.0f);
	check_resume("gpt2_lora", 0.1f);
	check_recompute("llama_packed", 0.0f);
	check_recompute("gpt2_lora", 0.1f);
	check_recompute("gemma2_packed", 0.0f);
	check_recompute("gemma3_lora", 0.1f);
	check_generate("llama");
	check_generate("gpt2");
	check_generate("llama_packed");
	check_generate("gemma2");
	check_generate("gemma3");
	check_generate("phi3");
	check_generate_exact("llama");
	check_generate_exact("gpt2");
	check_generate_exact("gemma2");
	check_generate_exact("gemma3");
	check_generate_exact("phi3");
	check_loss_rows("llama");
	check_loss_rows("gpt2");
	check_errors();
	check_init_and_memory();
	return ft_test_done();
}
