/* cmd_eval.c - ftctl eval run, show, ls, export, and ftctl generate.
 *
 * An evaluation is queued as a job (kind eval): `job watch JOB` follows it,
 * `job cancel JOB` stops it; `eval show` reads the summary and examples
 * once it has run.  `generate` on a terminal streams: it opens a session and
 * polls it, printing text as it comes; ^C cancels the session. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_eval.h"

#define CELL_MAX 400

struct run_args {
	const char *models;
	const char *data;
	const char *split;
	const char *metrics;
	uint32_t max_new_tokens;
	float temperature;
	float top_p;
	uint64_t seed;
	uint32_t limit;
	const char *name;
	const char *template_;
	int32_t priority;
};

struct show_args {
	const char *sort;
	uint32_t top;
	uint32_t examples;
};

struct ls_args {
	int all;
	int quiet;
};

struct export_args {
	const char *format;
};

static int
eval_id_parse(const char *cmd, const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end != '\0' || errno == ERANGE || v <= 0) {
		fprintf(stderr, "ftctl: %s: evaluation ids are positive numbers, not '%s'\n", cmd, s);
		return FTCTL_USAGE;
	}
	*id = v;
	return 0;
}

static int
cmd_eval_run(const struct opts *o, void *args, int argc, char **argv)
{
	struct run_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__EvalRunRequest er = FT__EVAL_RUN_REQUEST__INIT;
	Ft__EvalSpec spec = FT__EVAL_SPEC__INIT;
	char *list = strdup(a->models), *models[16], *save = NULL;
	Ft__EvalInfo *e;
	Ft__Reply *rep;
	size_t n = 0;
	char *tmpl = NULL;
	int rc;

	(void)argc, (void)argv;
	if (list == NULL)
		return EXIT_REFUSED;
	for (char *w = strtok_r(list, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
		if (n == sizeof(models) / sizeof(models[0])) {
			fprintf(stderr, "ftctl: eval run: too many models in --models\n");
			free(list);
			return EXIT_USAGE;
		}
		models[n++] = w;
	}
	spec.models = models;
	spec.n_models = n;
	spec.data = (char *)a->data;
	spec.split = (char *)a->split;
	spec.metrics = (char *)a->metrics;
	spec.max_new_tokens = a->max_new_tokens;
	spec.temperature = a->temperature;
	spec.top_p = a->top_p;
	spec.seed = a->seed;
	spec.limit = a->limit;
	spec.name = (char *)a->name;
	if ((rc = template_arg("eval run", a->template_, &tmpl)) != EXIT_OK) {
		free(list);
		return rc;
	}
	spec.template_ = tmpl ? tmpl : (char *)a->template_;
	spec.priority = a->priority;
	er.spec = &spec;
	req.body_case = FT__REQUEST__BODY_EVAL_RUN;
	req.eval_run = &er;
	rc = call(o, &req, &rep);
	free(list);
	free(tmpl);
	if (rc != EXIT_OK)
		return rc;
	e = rep->eval_run->eval;
	if (o->json)
		json_print(ft_json_message(&e->base));
	else if (e != NULL)
		printf("eval %lld (job %lld) %s: %zu model%s on %s, metrics %s\n", (long long)e->id,
		    (long long)e->job_id, e->state, e->n_models, e->n_models == 1 ? "" : "s", e->dataset,
		    e->spec->metrics);
	ft_reply_free(rep);
	return EXIT_OK;
}

/* Copies s into buf on one line (newlines and tabs as spaces), cut to
 * fit with "..." . */
static void
cell_format(const char *s, char *buf, size_t len)
{
	size_t k = 0;

	for (; *s && k + 4 < len; s++)
		buf[k++] = *s == '\n' || *s == '\t' || *s == '\r' ? ' ' : *s;
	if (*s) {
		/* do not cut a UTF-8 sequence: back up to its first byte */
		while (k > 0 && ((unsigned char)*s & 0xc0) == 0x80) {
			k--;
			s--;
		}
		memcpy(buf + k, "...", 3);
		k += 3;
	}
	buf[k] = '\0';
}

static void
ci_format(const Ft__EvalStat *s, int sign, char *buf, size_t len)
{
	if (sign)
		snprintf(buf, len, "%+.4f [%+.4f, %+.4f]", s->mean, s->lo, s->hi);
	else
		snprintf(buf, len, "%.4f [%.4f, %.4f]", s->mean, s->lo, s->hi);
}

static void
examples_print(const char *title, const Ft__EvalInfo *e, Ft__EvalExample **x, size_t n)
{
	static const char *const heads[] = { "#", "DELTA", "REFERENCE", "FIRST", "LAST" };
	char h3[CELL_MAX], h4[CELL_MAX];
	const char *hs[5];
	struct table *t;

	if (n == 0)
		return;
	snprintf(h3, sizeof(h3), "%s", e->models[0]->name);
	snprintf(h4, sizeof(h4), "%s", e->models[e->n_models - 1]->name);
	hs[0] = heads[0], hs[1] = heads[1], hs[2] = heads[2], hs[3] = h3, hs[4] = h4;
	printf("\n%s\n", title);
	if ((t = table_new(5, hs, "rrsss")) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		char idx[16], d[32], ref[CELL_MAX], a[CELL_MAX], b[CELL_MAX];

		snprintf(idx, sizeof(idx), "%u", x[i]->index);
		snprintf(d, sizeof(d), "%+.3f", x[i]->delta);
		cell_format(x[i]->reference, ref, sizeof(ref));
		cell_format(x[i]->n_outputs ? x[i]->outputs[0] : "", a, sizeof(a));
		cell_format(x[i]->n_outputs ? x[i]->outputs[x[i]->n_outputs - 1] : "", b, sizeof(b));
		table_add(t, idx, d, ref, a, b);
	}
	table_print(t, stdout, term_width());
}

static int
cmd_eval_show(const struct opts *o, void *args, int argc, char **argv)
{
	struct show_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__EvalShowRequest sr = FT__EVAL_SHOW_REQUEST__INIT;
	static const char *const heads[] = { "METRIC", "MODEL", "MEAN [95% CI]",
		"VS FIRST [95% CI]", "W/T/L" };
	Ft__EvalShowReply *s;
	Ft__EvalInfo *e;
	Ft__Reply *rep;
	struct table *t;
	int rc;

	(void)argc;
	if ((rc = eval_id_parse("eval show", argv[0], &sr.id)) != 0)
		return rc;
	sr.sort = (char *)a->sort;
	sr.top = a->top;
	sr.limit = a->examples;
	req.body_case = FT__REQUEST__BODY_EVAL_SHOW;
	req.eval_show = &sr;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	s = rep->eval_show;
	e = s->eval;
	if (o->json) {
		json_print(ft_json_message(&s->base));
		ft_reply_free(rep);
		return EXIT_OK;
	}
	printf("eval %lld%s%s (job %lld) %s", (long long)e->id, e->name[0] ? " " : "", e->name,
	    (long long)e->job_id, e->state);
	if (strcmp(e->state, "RUNNING") == 0)
		printf(" %s, %u of %u example runs", e->stage, e->done,
		    e->examples * (uint32_t)e->n_models);
	printf("\n");
	if (e->error[0])
		printf("error       %s\n", e->error);
	printf("dataset     %s, %s split, %u examples (blake2b %.16s...)\n", e->dataset,
	    e->spec->split, e->examples, e->dataset_blake2b);
	for (size_t k = 0; k < e->n_models; k++)
		printf("model %-5zu %s (id %lld)\n", k, e->models[k]->name, (long long)e->models[k]->id);
	printf("decoding    template %s, max %u new tokens, temperature %g, top_p %g, seed %llu\n",
	    e->spec->template_[0] ? e->spec->template_ : "each model's own", e->spec->max_new_tokens,
	    (double)e->spec->temperature,
	    (double)e->spec->top_p, (unsigned long long)e->spec->seed);
	if (e->examples_per_s > 0)
		printf("speed       %.1f examples/s (per model)\n", e->examples_per_s);
	if (e->n_stats > 0 && (t = table_new(5, heads, "llrrr")) != NULL) {
		printf("\n");
		for (size_t i = 0; i < e->n_stats; i++) {
			const Ft__EvalStat *st = e->stats[i];
			char mean[96] = "-", diff[96] = "-", wtl[48] = "-";

			if (st->versus >= 0)
				continue;
			ci_format(st, 0, mean, sizeof(mean));
			/* the difference of this model against the first, if any */
			for (size_t j = 0; j < e->n_stats; j++) {
				const Ft__EvalStat *p = e->stats[j];

				if (p->versus == 0 && p->model == st->model && strcmp(p->metric, st->metric) == 0) {
					ci_format(p, 1, diff, sizeof(diff));
					snprintf(wtl, sizeof(wtl), "%u/%u/%u", p->wins, p->ties, p->losses);
				}
			}
			table_add(t, st->metric, e->models[st->model]->name, mean, diff, wtl);
		}
		table_print(t, stdout, term_width());
		if (e->n_models > 1)
			printf("(differences are paired: model minus %s on the same examples; "
			    "W/T/L counts examples where it is better/equal/worse)\n", e->models[0]->name);
	}
	examples_print("Biggest wins", e, s->wins, s->n_wins);
	examples_print("Biggest losses", e, s->losses, s->n_losses);
	if (s->n_wins + s->n_losses > 0)
		printf("(sorted by %s; DELTA is %s minus %s)\n", s->sort, e->models[e->n_models - 1]->name,
		    e->models[0]->name);
	examples_print("Examples by largest difference", e, s->examples, s->n_examples);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_eval_ls(const struct opts *o, void *args, int argc, char **argv)
{
	struct ls_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__EvalListRequest lr = FT__EVAL_LIST_REQUEST__INIT;
	static const char *const heads[] = { "ID", "NAME", "JOB", "STATE", "USER", "MODELS", "DATA",
		"EXAMPLES", "AGE" };
	Ft__EvalListReply *l;
	Ft__Reply *rep;
	struct table *t;
	int rc;

	(void)argc, (void)argv;
	lr.all_users = a->all;
	req.body_case = FT__REQUEST__BODY_EVAL_LIST;
	req.eval_list = &lr;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->eval_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if (a->quiet) {
		for (size_t i = 0; i < l->n_evals; i++)
			printf("%lld\n", (long long)l->evals[i]->id);
	} else if ((t = table_new(9, heads, "rsrllslrr")) != NULL) {
		for (size_t i = 0; i < l->n_evals; i++) {
			const Ft__EvalInfo *e = l->evals[i];
			char id[24], job[24], user[64], models[CELL_MAX] = "", ex[32], age[32];
			size_t pos = 0;

			snprintf(id, sizeof(id), "%lld", (long long)e->id);
			snprintf(job, sizeof(job), "%lld", (long long)e->job_id);
			user_format(e->owner_uid, user, sizeof(user));
			for (size_t k = 0; k < e->n_models && pos < sizeof(models); k++)
				pos += (size_t)snprintf(models + pos, sizeof(models) - pos, "%s%s", k ? "," : "",
				    e->models[k]->name);
			snprintf(ex, sizeof(ex), "%u", e->examples);
			age_format(e->created_at, age, sizeof(age));
			table_add(t, id, e->name[0] ? e->name : "-", job, e->state, user, models, e->dataset,
			    ex, age);
		}
		table_print(t, stdout, term_width());
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_eval_export(const struct opts *o, void *args, int argc, char **argv)
{
	struct export_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__EvalExportRequest xr = FT__EVAL_EXPORT_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)argc;
	if ((rc = eval_id_parse("eval export", argv[0], &xr.id)) != 0)
		return rc;
	xr.format = (char *)a->format;
	req.body_case = FT__REQUEST__BODY_EVAL_EXPORT;
	req.eval_export = &xr;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(ft_json_message(&rep->eval_export->base));
	else
		fputs(rep->eval_export->text, stdout);
	ft_reply_free(rep);
	return EXIT_OK;
}

static volatile sig_atomic_t interrupted;

static void
on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Polls session until its end, printing the text as it comes.  ^C cancels
 * it in the daemon (if this process dies instead, the daemon lets the
 * session expire). */
static int
generate_follow(const struct opts *o, uint64_t session)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__GeneratePollRequest pr = FT__GENERATE_POLL_REQUEST__INIT;
	Ft__GenerateCancelRequest cr = FT__GENERATE_CANCEL_REQUEST__INIT;
	Ft__Reply *rep;
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	pr.session = session;
	req.body_case = FT__REQUEST__BODY_GENERATE_POLL;
	req.generate_poll = &pr;
	while (!interrupted) {
		if ((rc = call(o, &req, &rep)) != EXIT_OK)
			return rc;
		fputs(rep->generate_poll->text, stdout);
		fflush(stdout);
		pr.from_offset += strlen(rep->generate_poll->text);
		if (rep->generate_poll->done) {
			printf("\n");
			fprintf(stderr, "(%u tokens%s, %.0f ms)\n", rep->generate_poll->tokens,
			    rep->generate_poll->stopped_at_eos ? ", stopped at EOS" : "",
			    rep->generate_poll->ms);
			ft_reply_free(rep);
			return EXIT_OK;
		}
		ft_reply_free(rep);
	}
	printf("\n");
	cr.session = session;
	req.body_case = FT__REQUEST__BODY_GENERATE_CANCEL;
	req.generate_cancel = &cr;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	ft_reply_free(rep);
	fprintf(stderr, "ftctl: generation cancelled\n");
	return EXIT_REFUSED;
}

int
cmd_generate(const struct opts *o, void *args, int argc, char **argv)
{
	struct generate_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__GenerateRequest gr = FT__GENERATE_REQUEST__INIT;
	Ft__Reply *rep;
	uint64_t session;
	char *tmpl;
	int rc;

	(void)argc;
	gr.model = argv[0];
	gr.prompt = argv[1];
	gr.raw = a->raw;
	gr.max_new_tokens = a->max_new_tokens;
	gr.temperature = a->temperature;
	gr.top_p = a->top_p;
	gr.seed = a->seed;
	if (a->stream && (a->no_stream || o->json)) {
		fprintf(stderr, "ftctl: generate: --stream goes with neither --no-stream nor --json\n");
		return FTCTL_USAGE;
	}
	if ((rc = template_arg("generate", a->template_, &tmpl)) != EXIT_OK)
		return rc;
	gr.template_ = tmpl ? tmpl : (char *)a->template_;
	gr.stream = a->stream || (!a->no_stream && !o->json && isatty(STDOUT_FILENO));
	req.body_case = FT__REQUEST__BODY_GENERATE;
	req.generate = &gr;
	rc = call(o, &req, &rep);
	free(tmpl);
	if (rc != EXIT_OK)
		return rc;
	if (gr.stream) {
		session = rep->generate->session;
		ft_reply_free(rep);
		return generate_follow(o, session);
	}
	if (o->json) {
		json_print(ft_json_message(&rep->generate->base));
	} else {
		printf("%s\n", rep->generate->text);
		fprintf(stderr, "(%u tokens%s, %.0f ms)\n", rep->generate->tokens,
		    rep->generate->stopped_at_eos ? ", stopped at EOS" : "", rep->generate->ms);
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static const struct ftctl_option run_options[] = {
	{ "models", OPT_STR, offsetof(struct run_args, models), "A,B[,C]", NULL, OPT_REQUIRED,
	  "models to compare, by name or id; the first is the baseline" },
	{ "data", OPT_STR, offsetof(struct run_args, data), "DATASET", NULL, OPT_REQUIRED,
	  "the dataset, by name or id" },
	{ "split", OPT_STR, offsetof(struct run_args, split), NULL, "validation|all", 0,
	  "held-out records (default) or train and validation together" },
	{ "metrics", OPT_STR, offsetof(struct run_args, metrics), "LIST", NULL, 0,
	  "comma-separated metric names, e.g. loss,token_f1 (default: all that apply; "
	  "an unknown name is answered with the list)" },
	{ "max-new-tokens", OPT_U32, offsetof(struct run_args, max_new_tokens), "N", NULL, 0,
	  "generation length cap (default 64)" },
	{ "temperature", OPT_FLOAT, offsetof(struct run_args, temperature), "T", NULL, 0,
	  "sampling temperature; 0 is greedy (default)" },
	{ "top-p", OPT_FLOAT, offsetof(struct run_args, top_p), "P", NULL, 0,
	  "nucleus sampling mass (default 1)" },
	{ "seed", OPT_U64, offsetof(struct run_args, seed), "S", NULL, 0,
	  "sampling and bootstrap seed (default 1)" },
	{ "limit", OPT_U32, offsetof(struct run_args, limit), "N", NULL, 0,
	  "only the first N examples" },
	{ "name", OPT_STR, offsetof(struct run_args, name), "NAME", NULL, 0,
	  "a name for the evaluation" },
	{ "template", OPT_STR, offsetof(struct run_args, template_), "T", NULL, 0,
	  "prompt template: alpaca, chat, a Jinja FILE or STRING, or a {instruction}/{input}/{output} "
	  "string (default: each model's own)" },
	{ "priority", OPT_I32, offsetof(struct run_args, priority), "P", NULL, 0,
	  "queue priority, higher first" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option show_options[] = {
	{ "sort", OPT_STR, offsetof(struct show_args, sort), "METRIC", NULL, 0,
	  "metric for wins, losses and the example order (default: the first generation metric)" },
	{ "top", OPT_U32, offsetof(struct show_args, top), "N", NULL, 0,
	  "biggest wins and losses to show (default 5)" },
	{ "examples", OPT_U32, offsetof(struct show_args, examples), "N", NULL, 0,
	  "also list N examples by largest difference" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option ls_options[] = {
	{ "all", OPT_FLAG, offsetof(struct ls_args, all), NULL, NULL, 0,
	  "every user's evaluations, not only yours" },
	{ "quiet", OPT_FLAG, offsetof(struct ls_args, quiet), NULL, NULL, 0,
	  "print only the ids" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option export_options[] = {
	{ "format", OPT_STR, offsetof(struct export_args, format), NULL, "csv|jsonl|md",
	  OPT_REQUIRED, "one row per example with every model's output and metric values" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

const struct ftctl_option generate_options[] = {
	{ "raw", OPT_FLAG, offsetof(struct generate_args, raw), NULL, NULL, 0,
	  "continue the prompt as it is, without the template" },
	{ "max-new-tokens", OPT_U32, offsetof(struct generate_args, max_new_tokens), "N", NULL, 0,
	  "at most this many tokens (default 64, at most 512)" },
	{ "temperature", OPT_FLOAT, offsetof(struct generate_args, temperature), "T", NULL, 0,
	  "sampling temperature; 0 is greedy (default)" },
	{ "top-p", OPT_FLOAT, offsetof(struct generate_args, top_p), "P", NULL, 0,
	  "nucleus sampling mass (default 1)" },
	{ "seed", OPT_U64, offsetof(struct generate_args, seed), "S", NULL, 0,
	  "sampling seed (default 1)" },
	{ "template", OPT_STR, offsetof(struct generate_args, template_), "T", NULL, 0,
	  "prompt template: alpaca, chat, a Jinja FILE or STRING, or a {instruction}/{input}/{output} "
	  "string (default: each model's own)" },
	{ "stream", OPT_FLAG, offsetof(struct generate_args, stream), NULL, NULL, 0,
	  "print the text as it is generated (the default on a terminal)" },
	{ "no-stream", OPT_FLAG, offsetof(struct generate_args, no_stream), NULL, NULL, 0,
	  "print the text once it is complete (the default otherwise and with --json)" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

const struct command eval_commands[] = {
	{ "run", "", 0, 0, ARG_NONE,
	  "Queue an evaluation of models on a dataset; prints its id and job.\n"
	  "Every model sees the same examples, prompt template and decoding settings.\n"
	  "Follow it with `job watch JOB`; read it with `eval show ID`.",
	  run_options, sizeof(struct run_args), cmd_eval_run, NULL },
	{ "show", "ID", 1, 1, ARG_NONE,
	  "Show an evaluation: each metric's mean per model with its 95% bootstrap interval,\n"
	  "the paired difference against the first model with its interval and win/tie/loss\n"
	  "counts, then the biggest wins and losses side by side.",
	  show_options, sizeof(struct show_args), cmd_eval_show, NULL },
	{ "ls", "", 0, 0, ARG_NONE, "List evaluations, newest first.",
	  ls_options, sizeof(struct ls_args), cmd_eval_ls, NULL },
	{ "export", "ID", 1, 1, ARG_NONE,
	  "Print every example of an evaluation as CSV, JSON lines or a Markdown report.",
	  export_options, sizeof(struct export_args), cmd_eval_export, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};
