/*
 * ftengine.c - the engine's command-line tool: a table of subcommands, and
 * the model, training, inference and benchmark ones (init, loss, train,
 * generate, bench).  Options are `--name value` pairs; --json switches the
 * output to one JSON object per line.
 */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "fte.h"
#include "ftengine.h"
#include "kernels/kernels.h"

/* ---- option parsing ---- */

typedef struct opts {
	int argc;
	char **argv;
	const char *cmd;
	int bad;                     /* a usage error was reported */
} opts;

/* opt_find returns the value after --name ("" for a flag), or NULL. */
static const char *
opt_find(opts *o, const char *name, int flag)
{
	for (int i = 1; i < o->argc; i++)
		if (o->argv[i][0] == '-' && o->argv[i][1] == '-' &&
		    strcmp(o->argv[i] + 2, name) == 0) {
			if (flag)
				return "";
			if (i + 1 >= o->argc) {
				fprintf(stderr, "ftengine %s: --%s needs a value\n", o->cmd, name);
				o->bad = 1;
				return NULL;
			}
			return o->argv[i + 1];
		}
	return NULL;
}

static int
opt_flag(opts *o, const char *name)
{
	return opt_find(o, name, 1) != NULL;
}

static const char *
opt_str(opts *o, const char *name, const char *def)
{
	const char *v = opt_find(o, name, 0);

	return v != NULL ? v : def;
}

static long
opt_int(opts *o, const char *name, long def)
{
	const char *v = opt_find(o, name, 0);
	char *end;
	long x;

	if (v == NULL)
		return def;
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || end == v) {
		fprintf(stderr, "ftengine %s: --%s wants an integer, got '%s'\n", o->cmd, name, v);
		o->bad = 1;
	}
	return x;
}

static double
opt_num(opts *o, const char *name, double def)
{
	const char *v = opt_find(o, name, 0);
	char *end;
	double x;

	if (v == NULL)
		return def;
	x = strtod(v, &end);
	if (*end != '\0' || end == v) {
		fprintf(stderr, "ftengine %s: --%s wants a number, got '%s'\n", o->cmd, name, v);
		o->bad = 1;
	}
	return x;
}

/* opts_check rejects words that are not --options of the command. */
static int
opts_check(opts *o, const char *const *known)
{
	for (int i = 1; i < o->argc; i++) {
		const char *a = o->argv[i];
		int ok = 0, flag = 0;

		if (a[0] != '-' || a[1] != '-') {
			fprintf(stderr, "ftengine %s: unexpected argument '%s'\n", o->cmd, a);
			return 2;
		}
		for (const char *const *k = known; *k != NULL; k++) {
			size_t n = strlen(*k);
			int is_flag = (*k)[n - 1] == '!';

			if (strncmp(a + 2, *k, n - (size_t)is_flag) == 0 &&
			    a[2 + n - (size_t)is_flag] == '\0') {
				ok = 1;
				flag = is_flag;
				break;
			}
		}
		if (!ok) {
			fprintf(stderr, "ftengine %s: unknown option '%s'\n", o->cmd, a);
			return 2;
		}
		i += !flag;
	}
	return 0;
}

static int
fail(const char *cmd, const char *what)
{
	fprintf(stderr, "ftengine %s: %s: %s\n", cmd, what, fte_last_error());
	return 1;
}

static int
threads_apply(opts *o)
{
	long n = opt_int(o, "threads", 0);

	if (n > 0 && fte_threads_set((int)n) != FTE_OK)
		return fail(o->cmd, "threads");
	return 0;
}

static void
json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));

	if (s != NULL)
		puts(s);
	free(s);
	json_decref(j);
	fflush(stdout);
}

/* ---- token files: one sequence of whitespace-separated ids per line ---- */

typedef struct seqs {
	int n;
	int *len;
	int **ids;
} seqs;

static void
seqs_free(seqs *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->ids[i]);
	free(s->ids);
	free(s->len);
}

static int
seqs_read(const char *path, seqs *s)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = FTE_OK;

	memset(s, 0, sizeof(*s));
	if (f == NULL)
		return fte_error_set(FTE_ENOENT, "%s: cannot open: %m", path);
	while (getline(&line, &cap, f) >= 0 && rc == FTE_OK) {
		int n = 0, room = 64, *ids = malloc(64 * sizeof(int));
		char *p = line, *end;

		lineno++;
		for (;;) {
			long v;

			while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ',')
				p++;
			if (*p == '\0')
				break;
			errno = 0;
			v = strtol(p, &end, 10);
			if (end == p || errno != 0 || v < 0 || v > INT32_MAX) {
				rc = fte_error_set(FTE_EFORMAT, "%s:%d: not a token id: '%.20s'", path, lineno, p);
				break;
			}
			if (n == room)
				ids = realloc(ids, (size_t)(room *= 2) * sizeof(int));
			ids[n++] = (int)v;
			p = end;
		}
		if (rc != FTE_OK || n == 0) {
			free(ids);
			continue;
		}
		s->ids = realloc(s->ids, (size_t)(s->n + 1) * sizeof(*s->ids));
		s->len = realloc(s->len, (size_t)(s->n + 1) * sizeof(int));
		s->ids[s->n] = ids;
		s->len[s->n++] = n;
	}
	free(line);
	fclose(f);
	if (rc == FTE_OK && s->n == 0)
		rc = fte_error_set(FTE_EFORMAT, "%s: no token sequences", path);
	if (rc != FTE_OK)
		seqs_free(s);
	return rc;
}

/* ---- init ---- */

typedef struct shape {
	const char *name;
	fte_config cfg;
} shape;

static const shape presets[] = {
	{ "smollm-135m", { .arch = FTE_ARCH_LLAMA, .n_layers = 30, .dim = 576,
		.n_heads = 9, .n_kv_heads = 3, .head_dim = 64, .ffn_dim = 1536,
		.vocab_size = 49152, .max_seq_len = 2048, .norm_eps = 1e-5f,
		.rope_theta = 10000.0f, .tied_embeddings = 1, .bos_id = 0, .eos_id = 0 } },
	{ "gpt2-124m", { .arch = FTE_ARCH_GPT2, .n_layers = 12, .dim = 768,
		.n_heads = 12, .n_kv_heads = 12, .head_dim = 64, .ffn_dim = 3072,
		.vocab_size = 50257, .max_seq_len = 1024, .norm_eps = 1e-5f,
		.tied_embeddings = 1, .bos_id = 50256, .eos_id = 50256 } },
	/* Qwen/Qwen2.5-0.5B's config.json */
	{ "qwen2.5-0.5b", { .arch = FTE_ARCH_QWEN2, .n_layers = 24, .dim = 896,
		.n_heads = 14, .n_kv_heads = 2, .head_dim = 64, .ffn_dim = 4864,
		.vocab_size = 151936, .max_seq_len = 32768, .norm_eps = 1e-6f,
		.rope_theta = 1000000.0f, .tied_embeddings = 1, .bos_id = -1,
		.eos_id = 151643 } },
	/* meta-llama/Llama-3.2-1B's config.json */
	{ "llama-3.2-1b", { .arch = FTE_ARCH_LLAMA, .n_layers = 16, .dim = 2048,
		.n_heads = 32, .n_kv_heads = 8, .head_dim = 64, .ffn_dim = 8192,
		.vocab_size = 128256, .max_seq_len = 131072, .norm_eps = 1e-5f,
		.rope_theta = 500000.0f, .rope = { .type = FTE_ROPE_LLAMA3, .factor = 32,
		.low_freq_factor = 1, .high_freq_factor = 4, .orig_ctx = 8192 },
		.tied_embeddings = 1, .bos_id = 128000, .eos_id = 128001 } },
};

/* preset_list writes the preset names, comma-separated. */
static void
preset_list(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]) && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", presets[i].name);
}

/* shape_from_opts reads --preset or --arch/--layers/... into *c. */
static int
shape_from_opts(opts *o, fte_config *c)
{
	const char *preset = opt_str(o, "preset", NULL);
	const char *arch = opt_str(o, "arch", NULL);

	if (preset != NULL) {
		for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
			if (strcmp(preset, presets[i].name) == 0) {
				*c = presets[i].cfg;
				return 0;
			}
		char list[256];

		preset_list(list, sizeof(list));
		fprintf(stderr, "ftengine %s: unknown preset '%s' (%s)\n", o->cmd, preset, list);
		return 2;
	}
	if (fte_arch_find(arch) == 0) {
		char list[256];

		fte_arch_list(list, sizeof(list));
		fprintf(stderr, "ftengine %s: --arch %s (or --preset) is required\n", o->cmd, list);
		return 2;
	}
	memset(c, 0, sizeof(*c));
	c->arch = fte_arch_find(arch);
	c->n_layers = (int)opt_int(o, "layers", 0);
	c->dim = (int)opt_int(o, "dim", 0);
	c->n_heads = (int)opt_int(o, "heads", 0);
	c->n_kv_heads = (int)opt_int(o, "kv-heads", c->n_heads);
	c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
	c->ffn_dim = (int)opt_int(o, "ffn", 4L * c->dim);
	c->vocab_size = (int)opt_int(o, "vocab", 0);
	c->max_seq_len = (int)opt_int(o, "seq-len", 1024);
	c->norm_eps = (float)opt_num(o, "norm-eps", 1e-5);
	c->rope_theta = (float)opt_num(o, "rope-theta", 10000.0);
	c->tied_embeddings = fte_arch_get(c->arch)->always_tied || opt_flag(o, "tied");
	c->bos_id = (int)opt_int(o, "bos", -1);
	c->eos_id = (int)opt_int(o, "eos", -1);
	if (o->bad)
		return 2;
	if (fte_config_check(c) != FTE_OK) {
		fprintf(stderr, "ftengine %s: %s\n", o->cmd, fte_last_error());
		return 2;
	}
	return 0;
}

int
ftengine_init(int argc, char **argv)
{
	static const char *const known[] = { "arch", "layers", "dim", "heads",
		"kv-heads", "ffn", "vocab", "seq-len", "norm-eps", "rope-theta",
		"tied!", "bos", "eos", "seed", "out", "preset", "json!", NULL };
	opts o = { argc, argv, "init", 0 };
	fte_config c;
	fte_model *m;
	const char *out;
	int rc;

	if ((rc = opts_check(&o, known)) != 0 || (rc = shape_from_opts(&o, &c)) != 0)
		return rc;
	if ((out = opt_str(&o, "out", NULL)) == NULL) {
		fprintf(stderr, "ftengine init: --out DIR is required\n");
		return 2;
	}
	if (fte_model_create(&c, &m) != FTE_OK)
		return fail("init", "model");
	fte_model_init_random(m, (uint64_t)opt_int(&o, "seed", 1234));
	if (fte_hf_save(m, NULL, out) != FTE_OK) {
		fte_model_free(m);
		return fail("init", out);
	}
	if (opt_flag(&o, "json")) {
		json_print(json_pack("{s:s, s:I}", "out", out, "params",
		    (json_int_t)fte_model_num_params(m)));
	} else {
		printf("wrote %s: %zu parameters\n", out, fte_model_num_params(m));
	}
	fte_model_free(m);
	return 0;
}

/* ---- loss ---- */

int
ftengine_loss(int argc, char **argv)
{
	static const char *const known[] = { "model", "tokens", "json!", "threads", NULL };
	opts o = { argc, argv, "loss", 0 };
	const char *model = opt_str(&o, "model", NULL), *tokens = opt_str(&o, "tokens", NULL);
	fte_model *m;
	seqs s;
	double total = 0;
	long count = 0;
	int rc;

	if ((rc = opts_check(&o, known)) != 0)
		return rc;
	if (model == NULL || tokens == NULL) {
		fprintf(stderr, "usage: ftengine loss --model PATH --tokens FILE [--json]\n");
		return 2;
	}
	if (threads_apply(&o) != 0)
		return 1;
	if (fte_model_load(model, &m) != FTE_OK)
		return fail("loss", "model");
	if (seqs_read(tokens, &s) != FTE_OK) {
		fte_model_free(m);
		return fail("loss", "tokens");
	}
	for (int i = 0; i < s.n; i++) {
		double sum;
		int n;

		if (s.len[i] < 2)
			continue;
		if (fte_model_loss(m, s.ids[i], s.len[i], &sum, &n) != FTE_OK) {
			fprintf(stderr, "ftengine loss: line %d: %s\n", i + 1, fte_last_error());
			seqs_free(&s);
			fte_model_free(m);
			return 1;
		}
		total += sum;
		count += n;
	}
	seqs_free(&s);
	fte_model_free(m);
	if (count == 0) {
		fprintf(stderr, "ftengine loss: no line has two tokens\n");
		return 1;
	}
	if (opt_flag(&o, "json"))
		json_print(json_pack("{s:f, s:I}", "loss", total / count, "tokens", (json_int_t)count));
	else
		printf("loss %.6f over %ld tokens\n", total / count, count);
	return 0;
}

/* ---- train ---- */

/* is_dir: a Hugging Face directory also holds the tokenizer to copy. */
static int
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
schedule_parse(const char *s, int *out)
{
	if (strcmp(s, "constant") == 0)
		*out = FTE_SCHEDULE_CONSTANT;
	else if (strcmp(s, "linear") == 0)
		*out = FTE_SCHEDULE_LINEAR;
	else if (strcmp(s, "cosine") == 0)
		*out = FTE_SCHEDULE_COSINE;
	else
		return -1;
	return 0;
}

/* adapter_save writes the LoRA adapters as a PEFT directory (before any
 * merge, which zeroes B). */
static int
adapter_save(fte_model *m, fte_trainer *t, const fte_train_config *tc,
    const char *model, const char *dir)
{
	int n = fte_trainer_num_trainable(t), rc;
	fte_tensor **ts;
	fte_peft_adapter a;

	if (tc->lora.rank == 0) {
		fprintf(stderr, "ftengine train: --adapter-out needs --lora-rank\n");
		return 1;
	}
	if ((ts = calloc((size_t)n, sizeof(*ts))) == NULL)
		return fail("train", "adapter");
	for (int i = 0; i < n; i++)
		fte_trainer_trainable(t, i, &ts[i], NULL);
	a = (fte_peft_adapter){ tc->lora.rank, tc->lora.alpha, tc->lora.dropout, model,
		n, ts };
	rc = fte_peft_save(m, &a, dir);
	free(ts);
	return rc != FTE_OK ? fail("train", dir) : 0;
}

int
ftengine_train(int argc, char **argv)
{
	static const char *const known[] = { "model", "tokens", "steps", "lr",
		"weight-decay", "beta1", "beta2", "eps", "clip", "schedule", "warmup",
		"lora-rank", "lora-alpha", "lora-dropout", "lora-targets", "seed",
		"out", "json!", "threads", "decay-norms!", "recompute!", "micro-batch",
		"adapter-out", NULL };
	opts o = { argc, argv, "train", 0 };
	const char *model = opt_str(&o, "model", NULL), *tokens = opt_str(&o, "tokens", NULL);
	const char *out = opt_str(&o, "out", NULL);
	const char *adapter_out = opt_str(&o, "adapter-out", NULL);
	fte_train_config tc;
	fte_model *m = NULL;
	fte_trainer *t = NULL;
	seqs s;
	int *tok = NULL, *tgt = NULL, T = 0, steps, rc, json = opt_flag(&o, "json");
	int micro, n_micro;
	fte_batch *mb = NULL;

	if ((rc = opts_check(&o, known)) != 0)
		return rc;
	fte_train_config_default(&tc);
	steps = (int)opt_int(&o, "steps", 0);
	tc.lr = (float)opt_num(&o, "lr", -1);
	tc.weight_decay = (float)opt_num(&o, "weight-decay", 0.0);
	tc.decay_1d = opt_flag(&o, "decay-norms");
	tc.recompute = opt_flag(&o, "recompute");
	tc.beta1 = (float)opt_num(&o, "beta1", 0.9);
	tc.beta2 = (float)opt_num(&o, "beta2", 0.999);
	tc.eps = (float)opt_num(&o, "eps", 1e-8);
	tc.clip = (float)opt_num(&o, "clip", 1.0);
	tc.warmup_steps = (int)opt_int(&o, "warmup", 0);
	tc.total_steps = steps;
	tc.seed = (uint64_t)opt_int(&o, "seed", 1234);
	tc.lora.rank = (int)opt_int(&o, "lora-rank", 0);
	tc.lora.alpha = (float)opt_num(&o, "lora-alpha", 2.0 * tc.lora.rank);
	tc.lora.dropout = (float)opt_num(&o, "lora-dropout", 0.0);
	if (schedule_parse(opt_str(&o, "schedule", "constant"), &tc.schedule) != 0) {
		fprintf(stderr, "ftengine train: --schedule constant|linear|cosine\n");
		return 2;
	}
	if (opt_str(&o, "lora-targets", NULL) != NULL &&
	    fte_lora_targets_parse(opt_str(&o, "lora-targets", NULL), &tc.lora.targets) != FTE_OK) {
		fprintf(stderr, "ftengine train: %s\n", fte_last_error());
		return 2;
	}
	if (o.bad || model == NULL || tokens == NULL || steps <= 0 || tc.lr < 0) {
		fprintf(stderr, "usage: ftengine train --model PATH --tokens FILE --steps N --lr LR "
		    "[--weight-decay W] [--beta1 B1] [--beta2 B2] [--eps E] [--clip C] "
		    "[--schedule constant|linear|cosine] [--warmup K] [--lora-rank R "
		    "--lora-alpha A --lora-targets LIST [--lora-dropout P]] [--seed S] "
		    "[--decay-norms] [--recompute] [--micro-batch ROWS] [--threads K] [--out DIR] "
		    "[--adapter-out DIR] [--json]\n");
		return 2;
	}
	if (threads_apply(&o) != 0)
		return 1;
	if (fte_model_load(model, &m) != FTE_OK)
		return fail("train", "model");
	if (seqs_read(tokens, &s) != FTE_OK) {
		fte_model_free(m);
		return fail("train", "tokens");
	}
	/* every line is one row of the batch; shorter rows are padded with
	 * masked targets */
	for (int i = 0; i < s.n; i++)
		if (s.len[i] - 1 > T)
			T = s.len[i] - 1;
	/* rows per micro-batch: the step accumulates gradients over all lines */
	micro = (int)opt_int(&o, "micro-batch", s.n);
	if (micro < 1 || micro > s.n)
		micro = s.n;
	n_micro = (s.n + micro - 1) / micro;
	tc.batch = micro;
	tc.seq = T;
	rc = 1;
	if (T < 1) {
		fprintf(stderr, "ftengine train: lines need at least two tokens\n");
		goto done;
	}
	tok = calloc((size_t)s.n * T, sizeof(int));
	tgt = malloc((size_t)s.n * T * sizeof(int));
	for (int i = 0; i < s.n; i++)
		for (int j = 0; j < T; j++) {
			int ok = j + 1 < s.len[i];

			tok[i * T + j] = j < s.len[i] ? s.ids[i][j] : 0;
			tgt[i * T + j] = ok ? s.ids[i][j + 1] : -1;
		}
	if (fte_trainer_create(m, &tc, &t) != FTE_OK) {
		fail("train", "trainer");
		goto done;
	}
	mb = calloc((size_t)n_micro, sizeof(*mb));
	for (int j = 0; j < n_micro; j++) {
		int rows = s.n - j * micro < micro ? s.n - j * micro : micro;

		mb[j] = (fte_batch){ tok + (size_t)j * micro * T, tgt + (size_t)j * micro * T,
			NULL, rows, T };
	}
	for (int i = 0; i < steps; i++) {
		fte_step_stats st;

		if (fte_trainer_step(t, mb, n_micro, &st) != FTE_OK) {
			fail("train", "step");
			goto done;
		}
		if (json)
			json_print(json_pack("{s:i, s:f, s:f, s:f}", "step", i, "loss", (double)st.loss,
			    "lr", (double)st.lr, "grad_norm", (double)st.grad_norm));
		else
			printf("step %d  loss %.6f  lr %.3g  grad_norm %.4f  %.0f tok/s\n", i, st.loss,
			    st.lr, st.grad_norm, st.tokens_per_s);
		fflush(stdout);
	}
	if (adapter_out != NULL && adapter_save(m, t, &tc, model, adapter_out) != 0)
		goto done;
	if (out != NULL) {
		if (tc.lora.rank > 0 && fte_trainer_lora_merge(t) != FTE_OK) {
			fail("train", "merge");
			goto done;
		}
		if (fte_hf_save(m, is_dir(model) ? model : NULL, out) != FTE_OK) {
			fail("train", out);
			goto done;
		}
	}
	rc = 0;
done:
	free(mb);
	free(tok);
	free(tgt);
	seqs_free(&s);
	fte_trainer_free(t);
	fte_model_free(m);
	return rc;
}

/* ---- generate ---- */

typedef struct stream {
	const fte_tokenizer *tok;
	int *ids;
	int n, cap;
	size_t printed;              /* bytes of decoded text already written */
	int echo;
	const char *stop;            /* stop sequence (text), or NULL */
	char *text;                  /* decoded output, cut before the stop */
	size_t len;
} stream;

/* stream_token decodes the whole output again (a token may complete a
 * multi-byte character, or drop a leading space only in context), prints
 * what is new and stops at the stop sequence, which is not printed. */
static int
stream_token(void *arg, int id)
{
	stream *s = arg;
	char *hit = NULL;
	size_t keep;

	if (s->n == s->cap)
		s->ids = realloc(s->ids, (size_t)(s->cap = s->cap * 2 + 16) * sizeof(int));
	s->ids[s->n++] = id;
	if (s->tok == NULL)
		return 0;
	free(s->text);
	s->text = NULL;
	if (fte_tokenizer_decode(s->tok, s->ids, (size_t)s->n, &s->text, &s->len) != FTE_OK)
		return 0;
	if (s->stop != NULL && *s->stop != '\0' && (hit = strstr(s->text, s->stop)) != NULL) {
		s->len = (size_t)(hit - s->text);
		s->text[s->len] = '\0';
	}
	/* hold back a tail that may be the start of the stop sequence */
	keep = s->len;
	if (hit == NULL && s->stop != NULL)
		for (size_t k = strlen(s->stop) - 1; k > 0; k--)
			if (keep >= k && strncmp(s->text + keep - k, s->stop, k) == 0) {
				keep -= k;
				break;
			}
	if (s->echo && keep > s->printed) {
		fwrite(s->text + s->printed, 1, keep - s->printed, stdout);
		fflush(stdout);
		s->printed = keep;
	}
	return hit != NULL;
}

/* ids_parse reads "1,2,3" or "1 2 3". */
static int
ids_parse(const char *str, int **out, int *n)
{
	int cap = 16, k = 0, *ids = malloc(16 * sizeof(int));
	const char *p = str;
	char *end;

	while (*p != '\0') {
		long v;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		v = strtol(p, &end, 10);
		if (end == p || v < 0 || v > INT32_MAX) {
			free(ids);
			return -1;
		}
		if (k == cap)
			ids = realloc(ids, (size_t)(cap *= 2) * sizeof(int));
		ids[k++] = (int)v;
		p = end;
	}
	*out = ids;
	*n = k;
	return 0;
}

/* tokenizer_default: a directory holds its tokenizer, a GGUF file embeds
 * it; a llama2.c file has tokenizer.bin beside it. */
static int
is_gguf(const char *path)
{
	char magic[4] = {0};
	FILE *fp = fopen(path, "rb");

	if (fp == NULL)
		return 0;
	if (fread(magic, 1, 4, fp) != 4)
		magic[0] = '\0';
	fclose(fp);
	return memcmp(magic, "GGUF", 4) == 0;
}

static int
tokenizer_default(const char *model, const char *given, fte_tokenizer **out)
{
	char path[4096];
	const char *slash;

	if (given != NULL && !is_gguf(given))
		return fte_tokenizer_load(given, out);
	if (given != NULL || is_gguf(model))
		return fte_gguf_tokenizer_load(given ? given : model, out);
	if (is_dir(model))
		return fte_tokenizer_load(model, out);
	slash = strrchr(model, '/');
	snprintf(path, sizeof(path), "%.*stokenizer.bin",
	    slash ? (int)(slash - model + 1) : 0, model);
	return fte_tokenizer_load(path, out);
}

int
ftengine_generate(int argc, char **argv)
{
	static const char *const known[] = { "model", "tokenizer", "prompt",
		"prompt-tokens", "max-new-tokens", "temperature", "top-k", "top-p",
		"seed", "stop", "json!", "threads", NULL };
	opts o = { argc, argv, "generate", 0 };
	const char *model = opt_str(&o, "model", NULL), *prompt = opt_str(&o, "prompt", NULL);
	const char *ptoks = opt_str(&o, "prompt-tokens", NULL);
	int json = opt_flag(&o, "json"), *ids = NULL, n_ids = 0, n_out = 0, rc;
	fte_tokenizer *tok = NULL;
	fte_model *m = NULL;
	fte_sampler s;
	stream st = { 0 };

	if ((rc = opts_check(&o, known)) != 0)
		return rc;
	fte_sampler_default(&s);
	s.max_new_tokens = (int)opt_int(&o, "max-new-tokens", -1);
	s.temperature = (float)opt_num(&o, "temperature", 0.0);
	s.top_k = (int)opt_int(&o, "top-k", 0);
	s.top_p = (float)opt_num(&o, "top-p", 1.0);
	s.seed = (uint64_t)opt_int(&o, "seed", 1);
	if (o.bad || model == NULL || (prompt == NULL) == (ptoks == NULL) || s.max_new_tokens < 0) {
		fprintf(stderr, "usage: ftengine generate --model PATH [--tokenizer PATH] "
		    "(--prompt TEXT | --prompt-tokens IDS) --max-new-tokens N [--temperature T] "
		    "[--top-k K] [--top-p P] [--seed S] [--stop TEXT] [--json]\n");
		return 2;
	}
	if (threads_apply(&o) != 0)
		return 1;
	if (fte_model_load(model, &m) != FTE_OK)
		return fail("generate", "model");
	rc = 1;
	if (tokenizer_default(model, opt_str(&o, "tokenizer", NULL), &tok) == FTE_OK &&
	    fte_tokenizer_vocab_size(tok) != fte_model_config(m)->vocab_size) {
		fte_error_set(FTE_EINVAL, "tokenizer has %d tokens, the model %d",
		    fte_tokenizer_vocab_size(tok), fte_model_config(m)->vocab_size);
		fte_tokenizer_free(tok);
		tok = NULL;
	}
	if (tok == NULL && (prompt != NULL || opt_str(&o, "tokenizer", NULL) != NULL)) {
		fail("generate", "tokenizer");
		goto done;
	}
	if (prompt != NULL) {
		size_t n;

		if (fte_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &n) != FTE_OK) {
			fail("generate", "prompt");
			goto done;
		}
		n_ids = (int)n;
	} else if (ids_parse(ptoks, &ids, &n_ids) != 0 || n_ids == 0) {
		fprintf(stderr, "ftengine generate: --prompt-tokens wants ids like 1,2,3\n");
		rc = 2;
		goto done;
	}
	st.tok = tok;
	st.echo = !json;
	st.stop = opt_str(&o, "stop", NULL);
	if (st.stop != NULL && (tok == NULL || *st.stop == '\0')) {
		fprintf(stderr, "ftengine generate: --stop needs a tokenizer and some text\n");
		rc = 2;
		goto done;
	}
	if (fte_generate(m, ids, n_ids, &s, stream_token, &st, NULL, &n_out) != FTE_OK) {
		fail("generate", "generate");
		goto done;
	}
	if (json) {
		json_t *arr = json_array(), *j;

		for (int i = 0; i < st.n; i++)
			json_array_append_new(arr, json_integer(st.ids[i]));
		j = json_pack("{s:o}", "tokens", arr);
		if (st.text != NULL)
			json_object_set_new(j, "text", json_stringn(st.text, st.len));
		json_print(j);
	} else if (tok == NULL) {
		for (int i = 0; i < st.n; i++)
			printf(i ? " %d" : "%d", st.ids[i]);
		printf("\n");
	} else {
		if (st.len > st.printed)   /* a held-back tail that was no stop */
			fwrite(st.text + st.printed, 1, st.len - st.printed, stdout);
		printf("\n");
	}
	rc = 0;
done:
	free(ids);
	free(st.ids);
	free(st.text);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	return rc;
}

/* ---- bench ---- */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* cpu_now: CPU time of the calling thread or, with process set, of all
 * the process's threads; time the host gave to other processes is not
 * in it. */
static double
cpu_now(int process)
{
	struct timespec ts;

	clock_gettime(process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID,
	    &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct fma_job {
	const fte__gemm_kernel *k;
	double rate[FTE_THREADS_MAX];
} fma_job;

/* fma_item runs the FMA probe on one thread, timed by its CPU clock. */
static void
fma_item(void *ctx, int i)
{
	fma_job *j = ctx;
	double t0 = cpu_now(0), f = j->k->fma(1L << 20);

	j->rate[i] = f / (cpu_now(0) - t0);
}

/* fma_peak measures the FMA peak of the cores at kernel k's width: its
 * probe (independent FMA chains, no memory traffic) on every engine
 * thread at once, each timed by its own CPU clock, so that other
 * processes on a shared host do not lower it; the best of several short
 * runs (about 2 ms each). */
static double
fma_peak(const fte__gemm_kernel *k, int threads)
{
	fma_job j = { .k = k };
	double best = 0;

	for (int trial = 0; trial < 9; trial++) {
		double f = 0;

		fte__parallel_for(threads, 1e12, fma_item, &j);
		for (int i = 0; i < threads; i++)
			f += j.rate[i];
		if (f > best)
			best = f;
	}
	return best;
}

/* probe_kernel: the kernel whose width the peak is measured at, the one
 * in use or, on the blas path, the widest the CPU has (OpenBLAS runs at
 * most that wide). */
static const fte__gemm_kernel *
probe_kernel(void)
{
	const fte__gemm_kernel *k = fte__gemm_kernel_of(fte__isa());

	for (int isa = FTE_ISA_N - 1; k == NULL && isa > FTE_ISA_BLAS; isa--)
		k = fte__gemm_kernel_of(isa);
	return k;
}

/* One product of a training step: C[M,N] = op(A) op(B), inner size K, run
 * count times per step. */
typedef struct gshape {
	const char *name, *layout;
	int ta, tb, M, N, K, count;
} gshape;

#define GSHAPES_MAX 32

/* train_shapes lists the distinct products of a step on B*T = M tokens:
 * for each projection (in -> out), forward out = x W^T (NT), the input
 * gradient dx = dout W (NN) and, unless LoRA, the weight gradient
 * dW = dout^T x (TN). */
static int
train_shapes(const fte_config *c, int M, int lora, gshape *g)
{
	struct { const char *name; int in, out, count; } proj[8];
	int HD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
	int np = 0, n = 0, L = c->n_layers;

	if (fte_arch_get(c->arch)->mlp != FTE_MLP_GELU) {
		proj[np++] = (__typeof__(proj[0])){ "q", c->dim, HD, L };
		proj[np++] = (__typeof__(proj[0])){ "k,v", c->dim, KD, 2 * L };
		proj[np++] = (__typeof__(proj[0])){ "o", HD, c->dim, L };
		proj[np++] = (__typeof__(proj[0])){ "gate,up", c->dim, c->ffn_dim, 2 * L };
		proj[np++] = (__typeof__(proj[0])){ "down", c->ffn_dim, c->dim, L };
	} else {
		proj[np++] = (__typeof__(proj[0])){ "qkv", c->dim, 3 * HD, L };
		proj[np++] = (__typeof__(proj[0])){ "proj", HD, c->dim, L };
		proj[np++] = (__typeof__(proj[0])){ "fc", c->dim, c->ffn_dim, L };
		proj[np++] = (__typeof__(proj[0])){ "fc_proj", c->ffn_dim, c->dim, L };
	}
	proj[np++] = (__typeof__(proj[0])){ "head", c->dim, c->vocab_size, 1 };
	for (int i = 0; i < np; i++) {
		g[n++] = (gshape){ proj[i].name, "NT", 0, 1, M, proj[i].out,
		    proj[i].in, proj[i].count };
		g[n++] = (gshape){ proj[i].name, "NN", 0, 0, M, proj[i].in,
		    proj[i].out, proj[i].count };
		if (!lora || i == np - 1)
			g[n++] = (gshape){ proj[i].name, "TN", 1, 0,
			    proj[i].out, proj[i].in, M, proj[i].count };
	}
	return n;
}

/* time_shape: the best of reps runs of one product on the engine's
 * threads, on the path in use: wall[0] the elapsed seconds, wall[1] the
 * CPU seconds of all threads (busy time, whatever else the host runs);
 * -1 without memory. */
static int
time_shape(const gshape *g, int reps, double wall[2])
{
	size_t na = (size_t)g->M * g->K, nb = (size_t)g->K * g->N;
	float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
	float *c = malloc((size_t)g->M * g->N * sizeof(float));

	if (a == NULL || b == NULL || c == NULL) {
		free(a); free(b); free(c);
		return -1;
	}
	for (size_t i = 0; i < na; i++)
		a[i] = (float)(i % 13) * 0.01f - 0.06f;
	for (size_t i = 0; i < nb; i++)
		b[i] = (float)(i % 7) * 0.01f - 0.03f;
	wall[0] = wall[1] = INFINITY;
	for (int r = 0; r <= reps; r++) {      /* the first run warms up */
		double t0 = now(), c0 = cpu_now(1), t, cpu;

		fte__gemm_par(g->ta, g->tb, g->M, g->N, g->K, 1.0f, a,
		    g->ta ? g->M : g->K, b, g->tb ? g->K : g->N, 0.0f, c, g->N);
		t = now() - t0;
		cpu = cpu_now(1) - c0;
		if (r > 0 && t < wall[0])
			wall[0] = t;
		if (r > 0 && cpu < wall[1])
			wall[1] = cpu;
	}
	free(a); free(b); free(c);
	return 0;
}

/* blas_rate: OpenBLAS's FLOP/s over the products of a step on the
 * engine's threads when they have the cores (per CPU second, times the
 * threads; each shape's best of reps, weighted by its count), 0 on
 * failure. */
static double
blas_rate(const fte_config *c, int M, int lora, int reps)
{
	gshape g[GSHAPES_MAX];
	int n = train_shapes(c, M, lora, g), isa = fte__isa();
	double flops = 0, secs = 0, t[2];

	fte__isa_set(FTE_ISA_BLAS);
	for (int i = 0; i < n && secs >= 0; i++) {
		secs = time_shape(&g[i], reps, t) != 0 ? -1 :
		    secs + t[1] * g[i].count;
		flops += 2.0 * g[i].M * g[i].N * g[i].K * g[i].count;
	}
	fte__isa_set(isa);
	return secs > 0 ? flops / secs * fte_threads_get() : 0;
}

/* kernels_desc: which kernels ran, for the bench's report (the blocks
 * are those of the largest K). */
static const char *
kernels_desc(char *buf, size_t size)
{
	const fte__gemm_kernel *k = fte__gemm_kernel_of(fte__isa());
	int kc, mc, nc;

	if (k == NULL) {
		snprintf(buf, size, "blas (OpenBLAS sgemm)");
		return buf;
	}
	fte__gemm_blocks(1 << 20, &kc, &mc, &nc);
	snprintf(buf, size, "%s, KC %d MC %d NC %d", k->name, kc, mc, nc);
	return buf;
}

/* bench --gemm: the engine's GEMM beside OpenBLAS on the products of a
 * training step (the preset's, or both presets'), each the best of --reps
 * runs: GFLOP/s by the clock, and percent of the FMA peak by the CPU time
 * the threads were given (so other processes on the host do not count). */
static int
bench_gemm(opts *o)
{
	const char *only = opt_str(o, "preset", NULL);
	int M = (int)opt_int(o, "batch", 4) * (int)opt_int(o, "seq", 256);
	int reps = (int)opt_int(o, "reps", 3), isa, lora, th;
	const fte__gemm_kernel *pk;
	double peak;
	char kbuf[96];

	lora = opt_int(o, "lora-rank", 0) > 0;
	if (o->bad || M < 1 || reps < 1)
		return 2;
	if (threads_apply(o) != 0)
		return 1;
	isa = fte__isa();
	if (isa == FTE_ISA_BLAS) {
		fprintf(stderr, "ftengine bench --gemm: the blas path is forced "
		    "(FTE_ISA): nothing to compare\n");
		return 2;
	}
	th = fte_threads_get();
	pk = probe_kernel();
	peak = fma_peak(pk, th);
	printf("FMA peak %.1f GFLOP/s (%s probe, %d threads); engine: %s\n",
	    peak * 1e-9, fte__isa_name(pk->isa), th,
	    kernels_desc(kbuf, sizeof(kbuf)));
	printf("GFLOP/s by the clock; %%peak by CPU time (busy cores), best of %d\n",
	    reps);
	printf("%-12s %-8s %-2s %6s %6s %6s | %8s %6s | %8s %6s | %5s\n",
	    "preset", "proj", "", "M", "N", "K", "engine", "%peak", "OpenBLAS",
	    "%peak", "ratio");
	for (size_t p = 0; p < sizeof(presets) / sizeof(presets[0]); p++) {
		const fte_config *c = &presets[p].cfg;
		gshape g[GSHAPES_MAX];
		int n;
		double fl = 0, te[2] = { 0, 0 }, tb[2] = { 0, 0 };

		if (only != NULL && strcmp(only, presets[p].name) != 0)
			continue;
		n = train_shapes(c, M, lora, g);
		for (int i = 0; i < n; i++) {
			double f = 2.0 * g[i].M * g[i].N * g[i].K, e[2], b[2];
			int err;

			fte__isa_set(isa);
			err = time_shape(&g[i], reps, e);
			fte__isa_set(FTE_ISA_BLAS);
			err |= time_shape(&g[i], reps, b);
			fte__isa_set(isa);
			if (err)
				return fail("bench", "memory");
			fl += f * g[i].count;
			for (int t = 0; t < 2; t++) {
				te[t] += e[t] * g[i].count;
				tb[t] += b[t] * g[i].count;
			}
			printf("%-12s %-8s %-2s %6d %6d %6d | %8.1f %5.1f%% | "
			    "%8.1f %5.1f%% | %4.2fx\n", presets[p].name, g[i].name,
			    g[i].layout, g[i].M, g[i].N, g[i].K, f / e[0] * 1e-9,
			    100 * f * th / e[1] / peak, f / b[0] * 1e-9,
			    100 * f * th / b[1] / peak, b[1] / e[1]);
		}
		printf("%-12s %-8s %-2s %20s | %8.1f %5.1f%% | %8.1f %5.1f%% | "
		    "%4.2fx\n", presets[p].name, "step", "", "(weighted)",
		    fl / te[0] * 1e-9, 100 * fl * th / te[1] / peak,
		    fl / tb[0] * 1e-9, 100 * fl * th / tb[1] / peak,
		    tb[1] / te[1]);
	}
	return 0;
}

/* step_flops: matmul FLOPs of one step, PaLM-style: 6 per weight per token
 * for full training (forward 2, backward 4), 4 for LoRA (no weight
 * gradients), plus attention's QK^T and AV (causal half not discounted). */
static double
step_flops(const fte_config *c, int B, int T, int lora)
{
	double C = c->dim, HD = (double)c->n_heads * c->head_dim;
	double KD = (double)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
	double per_layer = C * HD * 2 + C * KD * 2 +
	    F * C * (fte_arch_get(c->arch)->mlp != FTE_MLP_GELU ? 3 : 2);
	double matw = per_layer * c->n_layers + (double)c->vocab_size * C;
	double attn = 2.0 * 2.0 * T * HD * c->n_layers;   /* forward, per token */

	return (double)B * T * ((lora ? 4.0 : 6.0) * matw + 3.0 * attn);
}

/* next_id: the bench's random token ids (an LCG). */
static int
next_id(uint64_t *rng, int vocab)
{
	*rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (int)((*rng >> 33) % (uint64_t)vocab);
}

/* bench --eval: what the daemon's evaluation does, timed: the batched
 * teacher-forced loss (fte_model_loss_rows, no gradients) over B x T random
 * ids, and greedy KV-cache generation at batch 1 of --new tokens after a
 * --prompt token prompt, run to the end (EOS and BOS do not stop it). */
static int
bench_eval(opts *o)
{
	const char *path = opt_str(o, "model", NULL);
	fte_config c;
	fte_model *m;
	fte_sampler sm;
	int *tok, *tgt, *prompt, *out, B, T, P, N, steps, warm, n_out, rc = 0;
	double *sum, lbest = INFINITY, gbest = INFINITY, lt = 0, gt = 0;
	int *count;
	uint64_t rng = 99;
	struct rusage ru;
	fte_batch b;

	if (path == NULL && (rc = shape_from_opts(o, &c)) != 0)
		return rc;
	B = (int)opt_int(o, "batch", 4);
	T = (int)opt_int(o, "seq", 256);
	P = (int)opt_int(o, "prompt", 64);
	N = (int)opt_int(o, "new", 64);
	steps = (int)opt_int(o, "steps", 5);
	warm = (int)opt_int(o, "warmup", 1);
	if (o->bad || B < 1 || T < 2 || P < 1 || N < 1 || steps < 1 || warm < 0)
		return 2;
	if (threads_apply(o) != 0)
		return 1;
	if (path != NULL ? fte_model_load(path, &m) != FTE_OK : fte_model_create(&c, &m) != FTE_OK)
		return fail("bench", path != NULL ? path : "model");
	if (path == NULL)
		fte_model_init_random(m, 1);
	c = *fte_model_config(m);
	if (T > c.max_seq_len || P + N > c.max_seq_len) {
		fprintf(stderr, "ftengine bench: --seq %d and --prompt + --new %d must fit the context, "
		    "%d\n", T, P + N, c.max_seq_len);
		fte_model_free(m);
		return 2;
	}
	tok = malloc((size_t)B * T * sizeof(int));
	tgt = malloc((size_t)B * T * sizeof(int));
	prompt = malloc((size_t)P * sizeof(int));
	out = malloc((size_t)N * sizeof(int));
	sum = malloc((size_t)B * sizeof(double));
	count = malloc((size_t)B * sizeof(int));
	if (tok == NULL || tgt == NULL || prompt == NULL || out == NULL || sum == NULL ||
	    count == NULL) {
		rc = fail("bench", "memory");
		goto done;
	}
	for (int i = 0; i < B * T; i++) {
		tok[i] = next_id(&rng, c.vocab_size);
		tgt[i] = next_id(&rng, c.vocab_size);
	}
	for (int i = 0; i < P; i++)
		prompt[i] = next_id(&rng, c.vocab_size);
	b = (fte_batch){ tok, tgt, NULL, B, T };
	fte_sampler_default(&sm);
	sm.max_new_tokens = N;
	sm.stop_at_eos = sm.stop_at_bos = 0;
	for (int i = 0; i < warm + steps; i++) {
		double s0 = now(), s1, s2;

		if (fte_model_loss_rows(m, &b, sum, count) != FTE_OK) {
			rc = fail("bench", "loss");
			goto done;
		}
		s1 = now();
		if (fte_generate(m, prompt, P, &sm, NULL, NULL, out, &n_out) != FTE_OK || n_out != N) {
			rc = fail("bench", "generate");
			goto done;
		}
		s2 = now();
		if (i < warm)
			continue;
		lt += s1 - s0;
		gt += s2 - s1;
		lbest = s1 - s0 < lbest ? s1 - s0 : lbest;
		gbest = s2 - s1 < gbest ? s2 - s1 : gbest;
	}
	getrusage(RUSAGE_SELF, &ru);
	if (opt_flag(o, "json")) {
		json_print(json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:I}",
		    "loss_examples_per_s", B * steps / lt, "loss_tokens_per_s", (double)B * T * steps / lt,
		    "loss_ms_best", 1e3 * lbest, "gen_tokens_per_s", (double)N * steps / gt,
		    "gen_ms_best", 1e3 * gbest, "peak_rss_mb", ru.ru_maxrss / 1024.0,
		    "threads", fte_threads_get(), "params", (json_int_t)fte_model_num_params(m)));
	} else {
		printf("loss %d x %d: %.1f examples/s, %.0f tokens/s (best %.1f ms); greedy "
		    "generation %d after %d: %.1f tokens/s (best %.1f ms); peak RSS %.0f MB, %d threads\n",
		    B, T, B * steps / lt, (double)B * T * steps / lt, 1e3 * lbest, N, P,
		    (double)N * steps / gt, 1e3 * gbest, ru.ru_maxrss / 1024.0, fte_threads_get());
	}
done:
	free(tok);
	free(tgt);
	free(prompt);
	free(out);
	free(sum);
	free(count);
	fte_model_free(m);
	return rc;
}

/* bench --estimate: what a run of this shape would hold, without running
 * it (the machine is shared; a 1B-parameter step takes a while). */
static int
bench_estimate(opts *o, const fte_config *c, const fte_train_config *tc, const fte_memory *mem)
{
	double mb = 1048576.0;
	size_t params = fte_config_num_params(c);

	if (opt_flag(o, "json")) {
		json_print(json_pack("{s:s,s:s,s:I,s:i,s:i,s:f,s:f,s:f,s:f,s:f}",
		    "arch", fte_arch_get(c->arch)->name, "mode", tc->lora.rank ? "lora" : "full",
		    "params", (json_int_t)params, "batch", tc->batch, "seq", tc->seq,
		    "weights_mb", mem->weights / mb, "grads_mb", mem->grads / mb,
		    "optimizer_mb", mem->optimizer / mb, "activations_mb", mem->activations / mb,
		    "total_mb", mem->total / mb));
		return 0;
	}
	printf("%s %s, %.1fM parameters, batch %d x %d tokens: weights %.0f MB, gradients %.0f MB, "
	    "AdamW %.0f MB, activations %.0f MB; total %.0f MB (estimated, not run)\n",
	    fte_arch_get(c->arch)->name, tc->lora.rank ? "LoRA" : "full", params / 1e6, tc->batch,
	    tc->seq, mem->weights / mb, mem->grads / mb, mem->optimizer / mb, mem->activations / mb,
	    mem->total / mb);
	return 0;
}

int
ftengine_bench(int argc, char **argv)
{
	static const char *const known[] = { "preset", "arch", "layers", "dim",
		"heads", "kv-heads", "ffn", "vocab", "seq-len", "batch", "seq", "steps",
		"warmup", "lora-rank", "lora-targets", "threads", "json!", "recompute!", "eval!",
		"model", "prompt", "new", "gemm!", "reps", "estimate!", NULL };
	opts o = { argc, argv, "bench", 0 };
	fte_config c;
	fte_train_config tc;
	fte_memory mem;
	fte_model *m;
	fte_trainer *t;
	int *tok, *tgt, B, T, steps, warm, rc;
	uint64_t rng = 99;
	double t0 = 0, t1, peak, blas, rate, flops, ms, best;
	char kbuf[96];
	struct rusage ru;
	fte_batch b;

	if ((rc = opts_check(&o, known)) != 0)
		return rc;
	if (opt_flag(&o, "eval"))
		return bench_eval(&o);
	if (opt_flag(&o, "gemm"))
		return bench_gemm(&o);
	if ((rc = shape_from_opts(&o, &c)) != 0)
		return rc;
	B = (int)opt_int(&o, "batch", 4);
	T = (int)opt_int(&o, "seq", 256);
	steps = (int)opt_int(&o, "steps", 5);
	warm = (int)opt_int(&o, "warmup", 1);
	fte_train_config_default(&tc);
	tc.batch = B;
	tc.seq = T;
	tc.lr = 1e-5f;
	tc.recompute = opt_flag(&o, "recompute");
	tc.lora.rank = (int)opt_int(&o, "lora-rank", 0);
	tc.lora.alpha = 2.0f * tc.lora.rank;
	tc.lora.targets = FTE_LORA_ALL;
	if (opt_str(&o, "lora-targets", NULL) != NULL &&
	    fte_lora_targets_parse(opt_str(&o, "lora-targets", NULL), &tc.lora.targets) != FTE_OK) {
		fprintf(stderr, "ftengine bench: %s\n", fte_last_error());
		return 2;
	}
	if (o.bad || B < 1 || T < 1 || steps < 1 || warm < 0)
		return 2;
	if (threads_apply(&o) != 0)
		return 1;
	if (fte_train_memory(&c, &tc, &mem) != FTE_OK)
		return fail("bench", "configuration");
	if (opt_flag(&o, "estimate"))
		return bench_estimate(&o, &c, &tc, &mem);
	if (fte_model_create(&c, &m) != FTE_OK)
		return fail("bench", "model");
	fte_model_init_random(m, 1);
	if (fte_trainer_create(m, &tc, &t) != FTE_OK) {
		fte_model_free(m);
		return fail("bench", "trainer");
	}
	tok = malloc((size_t)B * T * sizeof(int));
	tgt = malloc((size_t)B * T * sizeof(int));
	for (int i = 0; i < B * T; i++) {
		tok[i] = next_id(&rng, c.vocab_size);
		tgt[i] = next_id(&rng, c.vocab_size);
	}
	b = (fte_batch){ tok, tgt, NULL, B, T };
	rc = 0;
	best = INFINITY;
	for (int i = 0; i < warm + steps && rc == 0; i++) {
		double s0 = now();

		if (i == warm)
			t0 = s0;
		rc = fte_trainer_step(t, &b, 1, NULL);
		if (i >= warm && now() - s0 < best)
			best = now() - s0;
	}
	t1 = now();
	if (rc != FTE_OK) {
		fail("bench", "step");
		goto done;
	}
	ms = 1e3 * (t1 - t0) / steps;
	best *= 1e3;
	getrusage(RUSAGE_SELF, &ru);     /* before the probes' matrices */
	peak = fma_peak(probe_kernel(), fte_threads_get());
	blas = blas_rate(&c, B * T, tc.lora.rank > 0, 3);
	flops = step_flops(&c, B, T, tc.lora.rank > 0);
	rate = flops / (ms * 1e-3);
	kernels_desc(kbuf, sizeof(kbuf));
	if (opt_flag(&o, "json")) {
		json_print(json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:f, "
		    "s:s, s:s}",
		    "tokens_per_s", B * T / (ms * 1e-3), "ms_per_step", ms,
		    "ms_per_step_best", best, "mfu", rate / peak, "mfu_blas", rate / blas,
		    "peak_rss_mb", ru.ru_maxrss / 1024.0, "fma_peak_gflops", peak * 1e-9,
		    "blas_gflops", blas * 1e-9, "step_gflop", flops * 1e-9,
		    "threads", fte_threads_get(), "estimate_mb", mem.total / 1048576.0,
		    "isa", fte__isa_name(fte__isa()), "kernels", kbuf));
	} else {
		printf("%s %s: %.1f tokens/s, %.1f ms/step (best %.1f), MFU %.1f%% of the %.1f "
		    "GFLOP/s FMA peak, %.1f%% of OpenBLAS's %.1f GFLOP/s on the step's products; "
		    "peak RSS %.0f MB (estimated %.0f MB), %d threads; kernels: %s\n",
		    fte_arch_get(c.arch)->name, tc.lora.rank ? "LoRA" : "full",
		    B * T / (ms * 1e-3), ms, best, 100.0 * rate / peak, peak * 1e-9,
		    100.0 * rate / blas, blas * 1e-9, ru.ru_maxrss / 1024.0,
		    mem.total / 1048576.0, fte_threads_get(), kbuf);
	}
	rc = 0;
done:
	free(tok);
	free(tgt);
	fte_trainer_free(t);
	fte_model_free(m);
	return rc ? 1 : 0;
}

/* ---- main ---- */

typedef struct command {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} command;

static const command commands[] = {
	{ "init", ftengine_init, "create a randomly initialised model directory" },
	{ "loss", ftengine_loss, "teacher-forced loss of a model on token lines" },
	{ "train", ftengine_train, "fine-tune on token lines (full or LoRA)" },
	{ "generate", ftengine_generate, "generate text with a KV cache" },
	{ "bench", ftengine_bench, "time training steps on random weights (--eval: loss and generation; --estimate: memory only)" },
	{ "tokenize", ftengine_tokenize, "text to token ids" },
	{ "detokenize", ftengine_detokenize, "token ids to text" },
	{ "tokenizer-train", ftengine_tokenizer_train, "learn a byte-level BPE tokenizer from text" },
	{ "inspect", ftengine_inspect, "print a model file's configuration and tensors" },
	{ "export", ftengine_export, "convert a model to another format" },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: ftengine COMMAND [--option value ...]\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ftengine: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
