/* rpc_eval.c - evaluation RPCs: EvalRun, EvalShow, EvalList, EvalExport,
 * and Generate, GeneratePoll, GenerateCancel.
 *
 * Generate without stream runs on the RPC thread, so it is limited to small
 * models and short generations (GENERATE_MAX_PARAMS, GENERATE_MAX_NEW_TOKENS)
 * to keep handlers fast, and answers with one reply.  With stream it opens a
 * session on the serving threads (genstream.h) that GeneratePoll reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "chat_template.h"
#include "eval_job.h"
#include "eval_metrics.h"
#include "evals.h"
#include "ft_enum.h"
#include "fte.h"
#include "genstream.h"
#include "registry.h"
#include "rpc.h"

#define GENERATE_MAX_PARAMS 50000000ULL
#define GENERATE_MAX_NEW_TOKENS 512
#define GENERATE_MAX_PROMPT 65536         /* bytes; far over any context we run */
#define EVAL_LIST_MAX 1000
#define SHOW_TOP_DEFAULT 5
#define SHOW_PAGE_MAX 1000
#define EXPORT_PAGE 1000

/* The evaluation with id, with its summary; NULL with *code set when
 * there is none. */
static Ft__EvalInfo *
eval_info_get(struct rpc_call *call, int64_t id, int *code)
{
	Ft__EvalInfo *p = NULL;

	*code = evals_get(store_lock(call->d->store), &call->mem, id, 1, &p);
	store_unlock(call->d->store);
	return *code == FT__CODE__OK ? p : NULL;
}

int
rpc_eval_run(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__EvalReply *r = rpc_alloc(call, sizeof(*r));
	char err[1024];
	int64_t eval_id, job_id;
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (req->eval_run->spec == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "eval run needs a specification");
	code = eval_submit(call->d, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    req->eval_run->spec, 0, &eval_id, &job_id, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__eval_reply__init(r);
	if ((r->eval = eval_info_get(call, eval_id, &code)) == NULL)
		return rpc_error(call, rep, code, "evaluation %lld vanished", (long long)eval_id);
	rep->body_case = FT__REPLY__BODY_EVAL_RUN;
	rep->eval_run = r;
	return FT__CODE__OK;
}

int
rpc_eval_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__EvalListReply *r = rpc_alloc(call, sizeof(*r));
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	ft__eval_list_reply__init(r);
	code = evals_list(store_lock(call->d->store), &call->mem, req->eval_list->all_users,
	    (uint32_t)call->uid, EVAL_LIST_MAX, &r->evals, &r->n_evals);
	store_unlock(call->d->store);
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "cannot list evaluations");
	rep->body_case = FT__REPLY__BODY_EVAL_LIST;
	rep->eval_list = r;
	return FT__CODE__OK;
}

/* The metric wins and losses are sorted by: the request's, else the
 * computed metric of lowest sort rank in the metric table (a generation
 * metric before the loss). */
static const char *
sort_metric(const Ft__EvalInfo *e, const char *asked)
{
	const char *best = "loss";
	int rank = 0;

	if (asked[0])
		return asked;
	for (const char *p = e->metrics; *p;) {
		size_t n = strcspn(p, ",");
		int m = eval_metric_find(p, n);

		if (m >= 0 && eval_metrics[m].sort_rank > 0 && (rank == 0 || eval_metrics[m].sort_rank < rank)) {
			rank = eval_metrics[m].sort_rank;
			best = eval_metrics[m].name;
		}
		p += n + (p[n] == ',');
	}
	return best;
}

int
rpc_eval_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__EvalShowRequest *q = req->eval_show;
	Ft__EvalShowReply *r = rpc_alloc(call, sizeof(*r));
	uint32_t top = q->top ? q->top : SHOW_TOP_DEFAULT;
	struct evals_page page = { .filter = "" };
	const char *metric;
	int64_t total;
	sqlite3 *db;
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	ft__eval_show_reply__init(r);
	if ((r->eval = eval_info_get(call, q->id, &code)) == NULL)
		return rpc_error(call, rep, code, "no evaluation %lld", (long long)q->id);
	metric = sort_metric(r->eval, q->sort);
	if (strstr(r->eval->metrics, metric) == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--sort: evaluation %lld has no "
		    "metric '%s' (it has %s)", (long long)q->id, metric, r->eval->metrics);
	if (top > SHOW_PAGE_MAX || q->limit > SHOW_PAGE_MAX)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "at most %d examples at once",
		    SHOW_PAGE_MAX);
	r->sort = rpc_strdup(call, metric);
	page.metric = metric;
	page.higher_is_better = eval_metric_higher_is_better(metric);
	db = store_lock(call->d->store);
	if (r->eval->n_models >= 2) {
		page.order = EVALS_ORDER_WINS;
		page.limit = top;
		code = evals_examples(db, &call->mem, r->eval, &page, &r->wins, &r->n_wins, &total);
		page.order = EVALS_ORDER_LOSSES;
		if (code == FT__CODE__OK)
			code = evals_examples(db, &call->mem, r->eval, &page, &r->losses, &r->n_losses, &total);
	}
	page.order = EVALS_ORDER_CHANGE;
	page.offset = q->offset;
	page.limit = q->limit;
	if (code == FT__CODE__OK)
		code = evals_examples(db, &call->mem, r->eval, &page, &r->examples, &r->n_examples, &total);
	store_unlock(call->d->store);
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "cannot read the examples");
	rep->body_case = FT__REPLY__BODY_EVAL_SHOW;
	rep->eval_show = r;
	return FT__CODE__OK;
}

/* Text output for export, grown as needed. */
struct sbuf {
	char *p;
	size_t len;
	FILE *f;
};

static void
csv_field(FILE *f, const char *s, int last)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputs(last ? "\"\r\n" : "\",", f);
}

/* Markdown table cell: pipes escaped, line breaks as <br>. */
static void
md_cell(FILE *f, const char *s)
{
	fputc(' ', f);
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '\n')
			fputs("<br>", f);
		else if (*s != '\r')
			fputc(*s, f);
	}
	fputs(" |", f);
}

static void
export_summary_md(FILE *f, const Ft__EvalInfo *e)
{
	char split[FT_ENUM_WORD_MAX];

	fprintf(f, "# Evaluation %lld%s%s\n\n", (long long)e->id, e->name[0] ? ": " : "", e->name);
	fprintf(f, "Dataset %s (blake2b %s), split %s, %u examples; template %s; max_new_tokens %u, "
	    "temperature %g, top_p %g, seed %llu.\n\n", e->dataset, e->dataset_blake2b,
	    ft_enum_word(&ft__eval_split__descriptor, e->spec->split, split),
	    e->examples, e->spec->template_[0] ? e->spec->template_ : "each model's own",
	    e->spec->max_new_tokens, (double)e->spec->temperature,
	    (double)e->spec->top_p, (unsigned long long)e->spec->seed);
	for (size_t k = 0; k < e->n_models; k++)
		fprintf(f, "- model %zu: %s (id %lld)\n", k, e->models[k]->name, (long long)e->models[k]->id);
	fprintf(f, "\n| metric | model | mean | 95%% CI | vs | W/T/L |\n|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < e->n_stats; i++) {
		const Ft__EvalStat *s = e->stats[i];

		if (s->versus < 0)
			fprintf(f, "| %s | %s | %.4f | [%.4f, %.4f] | | |\n", s->metric,
			    e->models[s->model]->name, s->mean, s->lo, s->hi);
		else
			fprintf(f, "| %s | %s - %s | %+.4f | [%+.4f, %+.4f] | | %u/%u/%u |\n", s->metric,
			    e->models[s->model]->name, e->models[s->versus]->name, s->mean, s->lo, s->hi,
			    s->wins, s->ties, s->losses);
	}
	fputc('\n', f);
}

#define CSV FT__EVAL_EXPORT_FORMAT__EVAL_EXPORT_FORMAT_CSV
#define JSONL FT__EVAL_EXPORT_FORMAT__EVAL_EXPORT_FORMAT_JSONL
#define MD FT__EVAL_EXPORT_FORMAT__EVAL_EXPORT_FORMAT_MD

/* One example as a line of the export's format. */
static void
export_example(FILE *f, Ft__EvalExportFormat fmt, const Ft__EvalExample *x)
{
	char idx[16];

	snprintf(idx, sizeof(idx), "%u", x->index);
	if (fmt == CSV) {
		csv_field(f, idx, 0);
		csv_field(f, x->prompt, 0);
		csv_field(f, x->reference, 0);
		for (size_t k = 0; k < x->n_outputs; k++)
			csv_field(f, x->outputs[k], 0);
		csv_field(f, x->metrics_json, 1);
	} else if (fmt == JSONL) {
		json_t *outs = json_array(), *o;
		char *line;

		/* in model order: the same model may be evaluated twice */
		for (size_t k = 0; k < x->n_outputs; k++)
			json_array_append_new(outs, json_string(x->outputs[k]));
		o = json_pack("{s:I,s:s,s:s,s:o,s:o}", "index", (json_int_t)x->index, "prompt",
		    x->prompt, "reference", x->reference, "outputs", outs, "metrics",
		    json_loads(x->metrics_json, 0, NULL));
		line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
		if (line != NULL)
			fprintf(f, "%s\n", line);
		free(line);
		json_decref(o);
	} else {
		fprintf(f, "| %s |", idx);
		md_cell(f, x->prompt);
		md_cell(f, x->reference);
		for (size_t k = 0; k < x->n_outputs; k++)
			md_cell(f, x->outputs[k]);
		md_cell(f, x->metrics_json);
		fputc('\n', f);
	}
}

int
rpc_eval_export(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__EvalExportRequest *q = req->eval_export;
	Ft__EvalExportReply *r = rpc_alloc(call, sizeof(*r));
	Ft__EvalInfo *e;
	struct sbuf b = { NULL, 0, NULL };
	Ft__EvalExportFormat fmt = q->format;
	char words[64];
	int code;
	struct evals_page page = { .filter = "" };
	sqlite3 *db;
	int more;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (fmt == FT__EVAL_EXPORT_FORMAT__EVAL_EXPORT_FORMAT_UNSPECIFIED ||
	    protobuf_c_enum_descriptor_get_value(&ft__eval_export_format__descriptor, fmt) == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--format must be one of %s",
		    ft_enum_words(&ft__eval_export_format__descriptor, ", ", words, sizeof(words)));
	if ((e = eval_info_get(call, q->id, &code)) == NULL)
		return rpc_error(call, rep, code, "no evaluation %lld", (long long)q->id);
	if ((b.f = open_memstream(&b.p, &b.len)) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (fmt == MD) {
		export_summary_md(b.f, e);
		fprintf(b.f, "| # | prompt | reference |");
		for (size_t k = 0; k < e->n_models; k++)
			fprintf(b.f, " %s |", e->models[k]->name);
		fprintf(b.f, " metrics |\n|---|---|---|");
		for (size_t k = 0; k <= e->n_models; k++)
			fprintf(b.f, "---|");
		fputc('\n', b.f);
	} else if (fmt == CSV) {
		csv_field(b.f, "index", 0);
		csv_field(b.f, "prompt", 0);
		csv_field(b.f, "reference", 0);
		for (size_t k = 0; k < e->n_models; k++) {
			char head[160];

			snprintf(head, sizeof(head), "output:%s", e->models[k]->name);
			csv_field(b.f, head, 0);
		}
		csv_field(b.f, "metrics", 1);
	}
	page.metric = "";
	page.order = EVALS_ORDER_INDEX;
	page.limit = EXPORT_PAGE;
	db = store_lock(call->d->store);
	do {
		Ft__EvalExample **xs;
		size_t n;
		int64_t total;

		if ((code = evals_examples(db, &call->mem, e, &page, &xs, &n, &total)) != FT__CODE__OK)
			break;
		for (size_t i = 0; i < n; i++)
			export_example(b.f, fmt, xs[i]);
		page.offset += EXPORT_PAGE;
		more = n == EXPORT_PAGE;
	} while (more);
	store_unlock(call->d->store);
	fclose(b.f);
	if (b.p == NULL || code != FT__CODE__OK) {
		free(b.p);
		return rpc_error(call, rep, b.p ? code : FT__CODE__RESOURCE_EXHAUSTED,
		    "cannot read the examples");
	}
	if ((int64_t)b.len + 4096 > call->d->cfg.rpc_max_message) {
		free(b.p);
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "the export is %zu bytes, over "
		    "rpc_max_message; export fewer examples", b.len);
	}
	ft__eval_export_reply__init(r);
	r->text = rpc_strdup(call, b.p);
	free(b.p);
	if (r->text == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_EVAL_EXPORT;
	rep->eval_export = r;
	return FT__CODE__OK;
}

/* Generate with stream: a session on the serving threads, with the same
 * sampler settings as the reply below so that the text is the same. */
static int
generate_open(struct rpc_call *call, const Ft__GenerateRequest *q, const struct model_info *mi,
    Ft__Reply *rep)
{
	Ft__GenerateReply *r = rpc_alloc(call, sizeof(*r));
	struct deploy_params p = { 0 };
	char err[512];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->genstream == NULL)
		return rpc_error(call, rep, FT__CODE__UNAVAILABLE, "streamed generation is not running");
	p.model = mi->name;
	p.model_id = mi->id;
	p.prompt = q->prompt;
	p.template_ = q->raw ? NULL : q->template_;
	p.max_tokens = q->max_new_tokens ? (int)q->max_new_tokens : 64;
	p.temperature = q->temperature;
	p.top_p = q->top_p > 0 ? q->top_p : 1;
	p.seed = q->seed ? q->seed : 1;
	ft__generate_reply__init(r);
	code = genstream_open(call->d->genstream, (uint32_t)call->uid, &p, &r->session, err,
	    sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	rep->body_case = FT__REPLY__BODY_GENERATE;
	rep->generate = r;
	return FT__CODE__OK;
}

int
rpc_generate_poll(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__GeneratePollRequest *q = req->generate_poll;
	Ft__GenerateReply *r = rpc_alloc(call, sizeof(*r));
	struct genstream_chunk c;
	char err[512];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->genstream == NULL)
		return rpc_error(call, rep, FT__CODE__UNAVAILABLE, "streamed generation is not running");
	code = genstream_poll(call->d->genstream, (uint32_t)call->uid, q->session, q->from_offset, &c,
	    err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__generate_reply__init(r);
	r->session = q->session;
	r->text = rpc_strdup(call, c.text);
	r->finish_reason = rpc_strdup(call, c.finish_reason);
	free(c.text);
	if (r->text == NULL || r->finish_reason == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	r->done = c.done;
	r->tokens = (uint32_t)c.tokens;
	r->prompt_tokens = (uint32_t)c.prompt_tokens;
	r->stopped_at_eos = c.done && strcmp(c.finish_reason, "stop") == 0;
	r->ms = c.ms;
	rep->body_case = FT__REPLY__BODY_GENERATE_POLL;
	rep->generate_poll = r;
	return FT__CODE__OK;
}

int
rpc_generate_cancel(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__Empty *r = rpc_alloc(call, sizeof(*r));
	char err[512];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->genstream == NULL)
		return rpc_error(call, rep, FT__CODE__UNAVAILABLE, "streamed generation is not running");
	code = genstream_cancel(call->d->genstream, (uint32_t)call->uid, req->generate_cancel->session,
	    err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__empty__init(r);
	rep->body_case = FT__REPLY__BODY_GENERATE_CANCEL;
	rep->generate_cancel = r;
	return FT__CODE__OK;
}

int
rpc_generate(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__GenerateRequest *q = req->generate;
	Ft__GenerateReply *r = rpc_alloc(call, sizeof(*r));
	struct model_info mi;
	fte_model *m = NULL;
	fte_tokenizer *tok = NULL;
	struct chat_format fmt = { 0 };
	fte_sampler sm;
	int *ids = NULL, *out = NULL, n_out = 0, code = FT__CODE__OK;
	size_t n_ids = 0, len;
	char *text = NULL, err[1024];
	struct timespec t0, t1;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (q->max_new_tokens > GENERATE_MAX_NEW_TOKENS)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--max-new-tokens %u is over %d, "
		    "the most generate answers at once; queue an evaluation for longer outputs",
		    q->max_new_tokens, GENERATE_MAX_NEW_TOKENS);
	if (!(q->temperature >= 0 && q->temperature <= 2) || !(q->top_p >= 0 && q->top_p <= 1))
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--temperature must be in [0, 2] "
		    "and --top-p in (0, 1]");
	if (strlen(q->prompt) > GENERATE_MAX_PROMPT || strlen(q->template_) > GENERATE_MAX_PROMPT)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "the prompt and the template "
		    "may have at most %d bytes each", GENERATE_MAX_PROMPT);
	if (registry_model_find(call->d, q->model, &mi) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no model '%s'", q->model);
	if (q->stream) {
		code = generate_open(call, q, &mi, rep);
		model_info_free(&mi);
		return code;
	}
	if (mi.params > GENERATE_MAX_PARAMS) {
		code = rpc_error(call, rep, FT__CODE__FAILED_PRECONDITION, "model %s has %llu parameters; "
		    "generate runs on the control socket only for models up to %llu (use eval run for "
		    "larger ones)", mi.name, (unsigned long long)mi.params, GENERATE_MAX_PARAMS);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (registry_model_load(call->d, &mi, &m, err, sizeof(err)) != 0) {
		code = rpc_error(call, rep, FT__CODE__INTERNAL, "%s", err);
		goto out;
	}
	if (fte_tokenizer_load(mi.tokenizer, &tok) != FTE_OK) {
		code = rpc_error(call, rep, FT__CODE__INTERNAL, "loading %s: %s", mi.name, fte_last_error());
		goto out;
	}
	/* the model's own template (and stop ids) unless the request names one */
	{
		char *spec = NULL, cdir[PATH_MAX];

		if (registry_model_config_dir(call->d, &mi, cdir, sizeof(cdir)) != 0)
			snprintf(cdir, sizeof(cdir), "%s", mi.dir);
		if (q->template_[0] == '\0' &&
		    chat_format_of_model(&call->d->cfg, mi.lineage_json, mi.dir, &spec) != 0) {
			code = rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
		if (chat_format_open(&call->d->cfg, spec ? spec : q->template_, mi.dir, cdir, tok, &fmt, err,
		    sizeof(err)) != 0) {
			free(spec);
			code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "%s", err);
			goto out;
		}
		free(spec);
	}
	if (q->raw) {
		if (fte_tokenizer_encode(tok, q->prompt, strlen(q->prompt), 1, &ids, &n_ids) != FTE_OK) {
			code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "prompt: %s", fte_last_error());
			goto out;
		}
	} else {
		fte_message one = { "user", q->prompt };

		if (chat_format_messages_prompt(&fmt, tok, &one, 1, &ids, &n_ids) != FTE_OK) {
			code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "template: %s",
			    fte_last_error());
			goto out;
		}
	}
	fte_sampler_default(&sm);
	sm.stop_ids = fmt.stop_ids;
	sm.n_stop_ids = fmt.n_stop;
	sm.temperature = q->temperature;
	sm.top_p = q->top_p > 0 ? q->top_p : 1;
	sm.seed = q->seed ? q->seed : 1;
	sm.max_new_tokens = q->max_new_tokens ? (int)q->max_new_tokens : 64;
	if (n_ids == 0 || (int)n_ids >= fte_model_config(m)->max_seq_len) {
		code = rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "the prompt is %zu tokens; the "
		    "model's context is %d", n_ids, fte_model_config(m)->max_seq_len);
		goto out;
	}
	if ((out = malloc((size_t)sm.max_new_tokens * sizeof(int))) == NULL ||
	    fte_generate(m, ids, (int)n_ids, &sm, NULL, NULL, out, &n_out) != FTE_OK ||
	    fte_tokenizer_decode_flags(tok, out, (size_t)n_out, FTE_TOK_SKIP_SPECIAL, &text, &len) != FTE_OK) {
		code = rpc_error(call, rep, FT__CODE__INTERNAL, "generate: %s", fte_last_error());
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ft__generate_reply__init(r);
	r->text = rpc_strdup(call, text);
	r->tokens = (uint32_t)n_out;
	r->stopped_at_eos = n_out < sm.max_new_tokens &&
	    (int)n_ids + n_out < fte_model_config(m)->max_seq_len;
	r->done = 1;
	r->finish_reason = rpc_strdup(call, r->stopped_at_eos ? "stop" : "length");
	r->prompt_tokens = (uint32_t)n_ids;
	r->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (r->text == NULL || r->finish_reason == NULL) {
		code = rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	rep->body_case = FT__REPLY__BODY_GENERATE;
	rep->generate = r;
out:
	free(text);
	free(out);
	free(ids);
	chat_format_free(&fmt);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	model_info_free(&mi);
	return code;
}
