/* cmd_job.c - ftctl job submit, ls, show, cancel, logs, watch.
 *
 * watch and logs --follow poll the daemon every half second (JobMetrics
 * after the last step seen, JobLogs after the last line seen): requests
 * are cheap and the daemon keeps no per-client state. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ftctl.h"

#define POLL_MS 500
#define METRICS_PAGE 500
#define LOGS_PAGE 500

struct ls_args {
	const char *state;
	const char *user;
	int all;
	int quiet;
};

struct logs_args {
	int follow;
};

static int
job_id_parse(const char *cmd, const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end != '\0' || errno == ERANGE || v <= 0) {
		fprintf(stderr, "ftctl: %s: job ids are positive numbers, not '%s'\n", cmd, s);
		return FTCTL_USAGE;
	}
	*id = v;
	return 0;
}

static int
state_final(const char *state)
{
	return strcmp(state, "SUCCEEDED") == 0 || strcmp(state, "FAILED") == 0 ||
	    strcmp(state, "CANCELLED") == 0;
}

/* Set by ^C during watch and logs --follow, which then end their line
 * and say the job goes on. */
static volatile sig_atomic_t interrupted;

static void
on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
interrupt_catch(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
		;
}

/* loss_format prints a loss, or "-" before there is one. */
static void
loss_format(float v, int have, char *buf, size_t len)
{
	if (have && isfinite(v))
		snprintf(buf, len, "%.3f", v);
	else
		snprintf(buf, len, "-");
}

/* bar_format draws [#####.....] for step of total in width cells. */
static void
bar_format(uint32_t step, uint32_t total, int width, char *buf, size_t len)
{
	int fill = total > 0 ? (int)((uint64_t)step * (uint64_t)width / total) : 0;
	size_t pos = 0;

	if (fill > width)
		fill = width;
	if (len < (size_t)width + 3) {
		snprintf(buf, len, "[]");
		return;
	}
	buf[pos++] = '[';
	for (int i = 0; i < width; i++)
		buf[pos++] = i < fill ? '#' : '.';
	buf[pos++] = ']';
	buf[pos] = '\0';
}

static void
method_format(const Ft__JobSpec *s, char *buf, size_t len)
{
	if (strcmp(s->type, "eval") == 0)
		snprintf(buf, len, "eval");   /* an evaluation trains nothing */
	else
		snprintf(buf, len, "%s/%s", s->type, s->method[0] ? s->method : "full");
}

static int
cmd_job_submit(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__JobSpec *spec = args, init = FT__JOB_SPEC__INIT;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__JobSubmitRequest jreq = FT__JOB_SUBMIT_REQUEST__INIT;
	Ft__JobInfo *j;
	Ft__Reply *rep;
	char mem[32], *tmpl;
	int rc;

	(void)argc, (void)argv;
	/* The options filled the fields; the message header comes from INIT. */
	spec->base = init.base;
	if ((rc = template_arg("job submit", spec->template_, &tmpl)) != EXIT_OK)
		return rc;
	if (tmpl != NULL)
		spec->template_ = tmpl;
	jreq.spec = spec;
	req.body_case = FT__REQUEST__BODY_JOB_SUBMIT;
	req.job_submit = &jreq;
	rc = call(o, &req, &rep);
	free(tmpl);
	if (rc != EXIT_OK)
		return rc;
	j = rep->job_submit->job;
	if (o->json) {
		json_print(ft_json_message((const ProtobufCMessage *)j));
	} else if (j != NULL) {
		printf("job %lld %s", (long long)j->id, j->state);
		if (j->memory_bytes > 0) {
			size_format(j->memory_bytes, mem, sizeof(mem));
			printf(", needs %s", mem);
		}
		if (j->total_steps > 0)
			printf(", %u steps", j->total_steps);
		printf("\n");
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_job_ls(const struct opts *o, void *args, int argc, char **argv)
{
	struct ls_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__JobListRequest jreq = FT__JOB_LIST_REQUEST__INIT;
	static const char *const heads[] = {
		"ID", "STATE", "STAGE", "USER", "BASE", "DATA", "TYPE", "STEP", "LOSS", "VAL", "AGE",
	};
	Ft__JobListReply *l;
	struct table *t;
	Ft__Reply *rep;
	int rc;

	(void)argc, (void)argv;
	jreq.state = (char *)a->state;
	jreq.all_users = a->all;
	if (a->user[0] != '\0') {
		struct passwd *pw = getpwnam(a->user);
		char *end;
		unsigned long uid = strtoul(a->user, &end, 10);

		if (pw != NULL) {
			uid = pw->pw_uid;
		} else if (!isdigit((unsigned char)a->user[0]) || *end != '\0' || uid > UINT32_MAX) {
			fprintf(stderr, "ftctl: job ls: no user '%s'\n", a->user);
			return EXIT_USAGE;
		}
		jreq.owner_uid = (uint32_t)uid;
	}
	req.body_case = FT__REQUEST__BODY_JOB_LIST;
	req.job_list = &jreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->job_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if (a->quiet) {
		for (size_t i = 0; i < l->n_jobs; i++)
			printf("%lld\n", (long long)l->jobs[i]->id);
	} else if ((t = table_new(11, heads, "rlLLsslrrrR")) != NULL) {
		for (size_t i = 0; i < l->n_jobs; i++) {
			const Ft__JobInfo *j = l->jobs[i];
			const Ft__JobSpec *s = j->spec;
			char id[24], user[64], type[48], step[32], loss[16], val[16], age[16];

			snprintf(id, sizeof(id), "%lld", (long long)j->id);
			user_format(j->owner_uid, user, sizeof(user));
			if (s != NULL)
				method_format(s, type, sizeof(type));
			if (j->total_steps > 0)
				snprintf(step, sizeof(step), "%u/%u", j->step, j->total_steps);
			else
				snprintf(step, sizeof(step), "%u", j->step);
			loss_format(j->loss, j->step > 0, loss, sizeof(loss));
			loss_format(j->val_loss, 1, val, sizeof(val));
			age_format(j->created_at, age, sizeof(age));
			table_add(t, id, j->state, j->stage[0] ? j->stage : "-", user,
			    s ? s->base_model : "", s ? s->data : "", s ? type : "", step, loss, val, age);
		}
		table_print(t, stdout, term_width());
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

/* job_fetch runs JobShow for one job. */
static int
job_fetch(const struct opts *o, int64_t id, Ft__Reply **rep)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__JobShowRequest jreq = FT__JOB_SHOW_REQUEST__INIT;

	jreq.id = id;
	req.body_case = FT__REQUEST__BODY_JOB_SHOW;
	req.job_show = &jreq;
	return call(o, &req, rep);
}

static void
job_print(const Ft__JobInfo *j)
{
	const Ft__JobSpec *s = j->spec;
	char buf[64], buf2[64], bar[40], user[64];

	user_format(j->owner_uid, user, sizeof(user));
	printf("job %lld  %s%s%s%s  owner %s\n", (long long)j->id, j->state,
	    j->stage[0] ? " (" : "", j->stage, j->stage[0] ? ")" : "", user);
	if (s != NULL) {
		printf("  base        %s\n", s->base_model);
		printf("  data        %s\n", s->data);
		if (s->general_data[0] != '\0')
			printf("  general     %s (base and tuned loss on it after training)\n",
			    s->general_data);
		printf("  type        %s, %s", s->type, s->method[0] ? s->method : "full");
		if (strcmp(s->method, "lora") == 0)
			printf(" (rank %u, alpha %g, targets %s, dropout %g)", s->lora_rank,
			    s->lora_alpha, s->lora_targets[0] ? s->lora_targets : "default",
			    s->lora_dropout);
		printf("\n");
		printf("  training    %u epoch%s", s->epochs, s->epochs == 1 ? "" : "s");
		if (s->max_steps > 0)
			printf(" (at most %u steps)", s->max_steps);
		printf(", lr %g %s, warmup %u, batch %u x %u, seq %u\n", s->lr,
		    s->schedule[0] ? s->schedule : "constant", s->warmup, s->batch_size,
		    s->grad_accum, s->seq_len);
		printf("  optimizer   weight decay %g, clip %g, seed %llu\n", s->weight_decay,
		    s->clip, (unsigned long long)s->seed);
		printf("  eval        ");
		if (s->eval_every > 0)
			printf("every %u steps", s->eval_every);
		else
			printf("at the end");
		if (s->early_stop > 0)
			printf(", early stop after %u without improvement", s->early_stop);
		if (s->save_every > 0)
			printf(", checkpoint every %u steps", s->save_every);
		if (s->time_limit > 0)
			printf(", time limit %u s", s->time_limit);
		printf("\n");
		if (strstr(s->template_, "{%") != NULL)
			printf("  output      %s, Jinja template (%zu bytes)", s->name[0] ? s->name :
			    "(default name)", strlen(s->template_));
		else
			printf("  output      %s, template %s", s->name[0] ? s->name : "(default name)",
			    s->template_[0] ? s->template_ : "alpaca");
		if (strcmp(s->type, "sft") == 0 && s->train_on[0] != '\0')
			printf(", train on %s turns, packing %s", s->train_on, s->packing);
		printf(", priority %d\n", s->priority);
	}
	bar_format(j->step, j->total_steps, 20, bar, sizeof(bar));
	printf("  progress    %s step %u/%u, epoch %u", bar, j->step, j->total_steps, j->epoch);
	if (strcmp(j->state, "RUNNING") == 0 && j->eta_s > 0) {
		clock_format(j->eta_s, buf, sizeof(buf));
		printf(", ETA %s", buf);
	}
	printf("\n");
	if (j->step > 0) {
		loss_format(j->loss, 1, buf, sizeof(buf));
		printf("  loss        %s", buf);
		loss_format(j->val_loss, 1, buf, sizeof(buf));
		loss_format(j->base_val_loss, 1, buf2, sizeof(buf2));
		printf(", validation %s (base model %s), %.0f tok/s\n", buf, buf2, j->tokens_per_s);
	}
	if (j->memory_bytes > 0) {
		size_format(j->memory_bytes, buf, sizeof(buf));
		printf("  memory      %s\n", buf);
	}
	if (j->checkpoint_step > 0)
		printf("  checkpoint  step %u\n", j->checkpoint_step);
	time_format(j->created_at, buf, sizeof(buf));
	printf("  submitted   %s\n", buf);
	if (j->started_at > 0) {
		time_format(j->started_at, buf, sizeof(buf));
		printf("  started     %s\n", buf);
	}
	if (j->finished_at > 0) {
		time_format(j->finished_at, buf, sizeof(buf));
		duration_format((uint64_t)(j->finished_at - (j->started_at > 0 ? j->started_at :
		    j->created_at)) * 1000, buf2, sizeof(buf2));
		printf("  finished    %s (ran %s)\n", buf, buf2);
	}
	if (j->error[0] != '\0')
		printf("  error       %s\n", j->error);
	if (j->result_model[0] != '\0')
		printf("  result      model %s\n", j->result_model);
	for (size_t i = 0; i < j->n_evals; i++)
		printf("  %-11s %lld %s (job %lld, %s): ftctl eval show %lld\n", i == 0 ? "evaluation" : "",
		    (long long)j->evals[i]->id, j->evals[i]->name, (long long)j->evals[i]->job_id,
		    j->evals[i]->state, (long long)j->evals[i]->id);
}

static int
cmd_job_show(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Reply *rep;
	int64_t id;
	int rc;

	(void)args, (void)argc;
	if ((rc = job_id_parse("job show", argv[0], &id)) != 0)
		return rc;
	if ((rc = job_fetch(o, id, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(ft_json_message((const ProtobufCMessage *)rep->job_show->job));
	else if (rep->job_show->job != NULL)
		job_print(rep->job_show->job);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_job_cancel(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__JobCancelRequest jreq = FT__JOB_CANCEL_REQUEST__INIT;
	Ft__JobInfo *j;
	Ft__Reply *rep;
	int rc;

	(void)args, (void)argc;
	if ((rc = job_id_parse("job cancel", argv[0], &jreq.id)) != 0)
		return rc;
	req.body_case = FT__REQUEST__BODY_JOB_CANCEL;
	req.job_cancel = &jreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	j = rep->job_cancel->job;
	if (o->json)
		json_print(ft_json_message((const ProtobufCMessage *)j));
	else if (j != NULL && state_final(j->state))
		printf("job %lld %s\n", (long long)j->id, j->state);
	else if (j != NULL)
		printf("job %lld %s: cancel requested; it stops at the next step\n",
		    (long long)j->id, j->state);
	ft_reply_free(rep);
	return EXIT_OK;
}

static void
log_line_print(const struct opts *o, const Ft__LogLine *l)
{
	char when[64];

	if (o->json) {
		json_t *j = ft_json_message(&l->base);

		json_dumpf(j, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(j);
		return;
	}
	time_format(l->time, when, sizeof(when));
	printf("%s %-5s %s\n", when, l->level, l->message);
}

static int
cmd_job_logs(const struct opts *o, void *args, int argc, char **argv)
{
	struct logs_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__JobLogsRequest jreq = FT__JOB_LOGS_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)argc;
	if ((rc = job_id_parse("job logs", argv[0], &jreq.id)) != 0)
		return rc;
	jreq.limit = LOGS_PAGE;
	req.body_case = FT__REQUEST__BODY_JOB_LOGS;
	req.job_logs = &jreq;
	if (a->follow)
		interrupt_catch();
	for (;;) {
		size_t n;
		int final;

		if ((rc = call(o, &req, &rep)) != EXIT_OK)
			return rc;
		n = rep->job_logs->n_lines;
		for (size_t i = 0; i < n; i++) {
			log_line_print(o, rep->job_logs->lines[i]);
			jreq.after = rep->job_logs->lines[i]->seq;
		}
		ft_reply_free(rep);
		fflush(stdout);
		if (n == LOGS_PAGE)
			continue;
		if (!a->follow)
			return EXIT_OK;
		/* Follow until the job is over and its last lines are out. */
		if ((rc = job_fetch(o, jreq.id, &rep)) != EXIT_OK)
			return rc;
		final = rep->job_show->job != NULL && state_final(rep->job_show->job->state);
		ft_reply_free(rep);
		if (final && n == 0)
			return EXIT_OK;
		if (n == 0)
			sleep_ms(POLL_MS);
		if (interrupted)
			return EXIT_OK;
	}
}

/* watch_line draws the progress line for metric m (NULL before the first).
 * Epoch, stage and ETA describe the job now, so they are shown only on a
 * live line, not on the backlog of steps a poll brings at once. */
static void
watch_line(const Ft__JobInfo *j, const Ft__Metric *m, float val, int live, char *buf,
    size_t len)
{
	char bar[32], eta[32];
	size_t pos = 0;

#define APPEND(...) pos += (size_t)snprintf(buf + pos, pos < len ? len - pos : 0, __VA_ARGS__)
	bar_format(m != NULL ? m->step : j->step, j->total_steps, 10, bar, sizeof(bar));
	APPEND("%s", bar);
	if (m == NULL) {
		APPEND(" %s", j->state);
	} else {
		APPEND(" step %u/%u", m->step, j->total_steps);
		if (live)
			APPEND(" epoch %u", j->epoch);
		APPEND(" loss %.3f", m->loss);
		if (isfinite(val))
			APPEND(" val %.3f", val);
		APPEND(" lr %.1e %.0f tok/s", m->lr, m->tokens_per_s);
	}
	if (!live)
		return;
	if (j->stage[0] != '\0' && strcmp(j->stage, "training") != 0)
		APPEND(" (%s)", j->stage);
	if (strcmp(j->state, "RUNNING") == 0 && j->eta_s > 0) {
		clock_format(j->eta_s, eta, sizeof(eta));
		APPEND(" ETA %s", eta);
	}
#undef APPEND
}

static void
json_line(json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15));
	printf("\n");
	fflush(stdout);
	json_decref(j);
}

/* metric_json is one --json line of job watch: the metric and where the
 * job stands. */
static void
metric_json(const Ft__JobInfo *j, const Ft__Metric *m)
{
	json_t *js = ft_json_message(&m->base);

	json_object_set_new(js, "total_steps", json_integer(j->total_steps));
	json_object_set_new(js, "epoch", json_integer(j->epoch));
	json_object_set_new(js, "state", json_string(j->state));
	json_line(js);
}

static int
cmd_job_watch(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__JobMetricsRequest jreq = FT__JOB_METRICS_REQUEST__INIT;
	int tty = isatty(STDOUT_FILENO), width = term_width(), drawn = 0, rc, done = 0;
	Ft__Metric seen = FT__METRIC__INIT;  /* the latest metric, for the line */
	int last_has_val = 0, have_seen = 0;
	uint32_t last = 0;
	char line[512], prev[512] = "";
	float val = NAN;
	Ft__Reply *rep = NULL;
	Ft__JobInfo *j;

	(void)args, (void)argc;
	if ((rc = job_id_parse("job watch", argv[0], &jreq.id)) != 0)
		return rc;
	jreq.limit = METRICS_PAGE;
	req.body_case = FT__REQUEST__BODY_JOB_METRICS;
	req.job_metrics = &jreq;
	interrupt_catch();
	for (;;) {
		size_t n, fresh = 0;

		if (rep != NULL)
			ft_reply_free(rep);
		/* The validation loss of a step may land after its metric row, so
		 * the last step seen is asked for again until it has one. */
		jreq.after_step = last > 0 && !last_has_val ? last - 1 : last;
		if ((rc = call(o, &req, &rep)) != EXIT_OK) {
			if (drawn && tty)
				printf("\n");
			return rc;
		}
		if ((j = rep->job_metrics->job) == NULL) {
			fprintf(stderr, "ftctl: job watch: the reply names no job\n");
			ft_reply_free(rep);
			return EXIT_UNREACHABLE;
		}
		n = rep->job_metrics->n_metrics;
		for (size_t i = 0; i < n; i++) {
			const Ft__Metric *x = rep->job_metrics->metrics[i];
			int has_val = isfinite(x->val_loss);

			if (x->step < last || (x->step == last && (!has_val || last_has_val)))
				continue; /* seen already */
			seen = *x;
			have_seen = 1;
			fresh++;
			last = x->step;
			last_has_val = has_val;
			if (has_val)
				val = x->val_loss;
			if (o->json) {
				metric_json(j, x);
			} else if (!tty) {
				watch_line(j, x, val, i == n - 1 && strcmp(j->state, "RUNNING") == 0,
				    line, sizeof(line));
				printf("%s\n", line);
			}
		}
		if (!o->json) {
			if (isfinite(j->val_loss))
				val = j->val_loss;
			watch_line(j, have_seen ? &seen : NULL, val, 1, line, sizeof(line));
			if (tty && strcmp(line, prev) != 0) {
				/* Redraw in place, cut to the terminal, clearing what was longer. */
				printf("\r%.*s\033[K", width - 1, line);
				drawn = 1;
			} else if (!tty && fresh == 0 && !have_seen && strcmp(line, prev) != 0) {
				printf("%s\n", line); /* before training: state changes */
			}
			snprintf(prev, sizeof(prev), "%s", line);
			fflush(stdout);
		}
		if (n == METRICS_PAGE)
			continue;
		/* One more poll after the final state, for the last metrics. */
		if (done)
			break;
		if (state_final(j->state)) {
			done = 1;
			continue;
		}
		sleep_ms(POLL_MS);
		if (interrupted) {
			if (drawn && tty)
				printf("\n");
			fprintf(stderr, "ftctl: stopped watching; job %lld goes on "
			    "(ftctl job cancel %lld stops it)\n", (long long)j->id, (long long)j->id);
			ft_reply_free(rep);
			return EXIT_REFUSED;
		}
	}
	if (drawn && tty)
		printf("\n");
	rc = strcmp(j->state, "SUCCEEDED") == 0 ? EXIT_OK : EXIT_REFUSED;
	if (o->json) {
		json_line(ft_json_message(&j->base));
	} else {
		printf("job %lld %s", (long long)j->id, j->state);
		if (j->result_model[0] != '\0')
			printf(": model %s", j->result_model);
		if (j->error[0] != '\0')
			printf(": %s", j->error);
		printf("\n");
	}
	ft_reply_free(rep);
	return rc;
}

static const struct ftctl_option submit_options[] = {
	{ "base", OPT_STR, offsetof(Ft__JobSpec, base_model), "MODEL", NULL, OPT_REQUIRED,
	  "the model to tune, by name or id" },
	{ "data", OPT_STR, offsetof(Ft__JobSpec, data), "DATASET", NULL, OPT_REQUIRED,
	  "the dataset, by name or id" },
	{ "general-data", OPT_STR, offsetof(Ft__JobSpec, general_data), "DATASET", NULL, 0,
	  "a text dataset; after training, base and tuned are also evaluated on it, to measure forgetting" },
	{ "type", OPT_STR, offsetof(Ft__JobSpec, type), NULL, "sft|cpt", OPT_REQUIRED,
	  "instruction tuning, or continued pre-training on text" },
	{ "method", OPT_STR, offsetof(Ft__JobSpec, method), NULL, "full|lora", 0,
	  "train every weight, or low-rank adapters (default full)" },
	{ "lora-rank", OPT_U32, offsetof(Ft__JobSpec, lora_rank), "R", NULL, 0,
	  "LoRA rank" },
	{ "lora-alpha", OPT_FLOAT, offsetof(Ft__JobSpec, lora_alpha), "A", NULL, 0,
	  "LoRA alpha; the update is scaled by alpha/rank" },
	{ "lora-targets", OPT_STR, offsetof(Ft__JobSpec, lora_targets), "LIST", NULL, 0,
	  "weights to adapt: comma-separated q,k,v,o,gate,up,down or all" },
	{ "lora-dropout", OPT_FLOAT, offsetof(Ft__JobSpec, lora_dropout), "P", NULL, 0,
	  "dropout on the LoRA input" },
	{ "epochs", OPT_U32, offsetof(Ft__JobSpec, epochs), "E", NULL, 0,
	  "passes over the training records" },
	{ "lr", OPT_FLOAT, offsetof(Ft__JobSpec, lr), "LR", NULL, 0,
	  "peak learning rate, e.g. 3e-4" },
	{ "batch-size", OPT_U32, offsetof(Ft__JobSpec, batch_size), "B", NULL, 0,
	  "sequences per micro-batch" },
	{ "grad-accum", OPT_U32, offsetof(Ft__JobSpec, grad_accum), "G", NULL, 0,
	  "micro-batches per optimizer step" },
	{ "seq-len", OPT_U32, offsetof(Ft__JobSpec, seq_len), "T", NULL, 0,
	  "tokens per sequence" },
	{ "warmup", OPT_U32, offsetof(Ft__JobSpec, warmup), "W", NULL, 0,
	  "steps of linear learning-rate warmup" },
	{ "schedule", OPT_STR, offsetof(Ft__JobSpec, schedule), NULL, "constant|linear|cosine", 0,
	  "learning-rate schedule after the warmup" },
	{ "weight-decay", OPT_FLOAT, offsetof(Ft__JobSpec, weight_decay), "D", NULL, 0,
	  "AdamW weight decay" },
	{ "clip", OPT_FLOAT, offsetof(Ft__JobSpec, clip), "C", NULL, 0,
	  "clip the gradient norm to C" },
	{ "eval-every", OPT_U32, offsetof(Ft__JobSpec, eval_every), "N", NULL, 0,
	  "steps between validation evaluations (default: at the end)" },
	{ "save-every", OPT_U32, offsetof(Ft__JobSpec, save_every), "N", NULL, 0,
	  "steps between checkpoints" },
	{ "early-stop", OPT_U32, offsetof(Ft__JobSpec, early_stop), "PATIENCE", NULL, 0,
	  "stop after PATIENCE evaluations without a better validation loss" },
	{ "max-steps", OPT_U32, offsetof(Ft__JobSpec, max_steps), "N", NULL, 0,
	  "stop after N optimizer steps" },
	{ "time-limit", OPT_U32, offsetof(Ft__JobSpec, time_limit), "SECONDS", NULL, 0,
	  "fail the job (after a checkpoint) once it has run this long since it first started" },
	{ "seed", OPT_U64, offsetof(Ft__JobSpec, seed), "S", NULL, 0,
	  "seed for initialisation, shuffling and dropout" },
	{ "priority", OPT_I32, offsetof(Ft__JobSpec, priority), "P", NULL, 0,
	  "higher runs first, equal in submission order; above user_priority_max for admins only" },
	{ "name", OPT_STR, offsetof(Ft__JobSpec, name), "NAME", NULL, 0,
	  "name of the tuned model (default: BASE-JOBID)" },
	{ "template", OPT_STR, offsetof(Ft__JobSpec, template_), "T", NULL, 0,
	  "the tuned model's prompt template: alpaca, chat (the base's chat template), a Jinja "
	  "FILE or STRING, or a string with {instruction} {input} {output} (default: the base's own)" },
	{ "train-on", OPT_STR, offsetof(Ft__JobSpec, train_on), NULL, "all|last", 0,
	  "sft: learn every assistant turn of a conversation, or only the last (default all)" },
	{ "packing", OPT_STR, offsetof(Ft__JobSpec, packing), NULL, "on|off", 0,
	  "sft: several conversations a row, attending only within each (default on)" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option ls_options[] = {
	{ "state", OPT_STR, offsetof(struct ls_args, state), NULL,
	  "QUEUED|RUNNING|SUCCEEDED|FAILED|CANCELLED", 0, "only jobs in this state" },
	{ "user", OPT_STR, offsetof(struct ls_args, user), "USER", NULL, 0,
	  "only this user's jobs (login name or uid)" },
	{ "all", OPT_FLAG, offsetof(struct ls_args, all), NULL, NULL, 0,
	  "every user's jobs, not only yours" },
	{ "quiet", OPT_FLAG, offsetof(struct ls_args, quiet), NULL, NULL, 0,
	  "print only the job ids" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option logs_options[] = {
	{ "follow", OPT_FLAG, offsetof(struct logs_args, follow), NULL, NULL, 0,
	  "keep printing new lines until the job ends" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

const struct command job_commands[] = {
	{ "submit", "", 0, 0, ARG_NONE,
	  "Queue a fine-tuning job; prints its id and state.\n"
	  "Options left out take the daemon's defaults; the daemon checks every range and\n"
	  "refuses a job whose memory need exceeds its budget, saying what to change.",
	  submit_options, sizeof(Ft__JobSpec), cmd_job_submit, NULL },
	{ "ls", "", 0, 0, ARG_NONE, "List jobs, newest first.",
	  ls_options, sizeof(struct ls_args), cmd_job_ls, NULL },
	{ "show", "ID", 1, 1, ARG_JOB,
	  "Show a job: spec, state, progress, losses, result.",
	  NULL, 0, cmd_job_show, NULL },
	{ "cancel", "ID", 1, 1, ARG_JOB,
	  "Cancel a queued or running job.\n"
	  "Only your own jobs, unless you are in the daemon's admin group.",
	  NULL, 0, cmd_job_cancel, NULL },
	{ "logs", "ID", 1, 1, ARG_JOB, "Print a job's log.\n"
	  "With --json, one JSON object per line.",
	  logs_options, sizeof(struct logs_args), cmd_job_logs, NULL },
	{ "watch", "ID", 1, 1, ARG_JOB,
	  "Follow a job live until it ends.\n"
	  "A progress line with step, epoch, loss, validation loss, learning rate,\n"
	  "tokens/s and ETA, redrawn in place on a terminal (one line per step when\n"
	  "stdout is not a terminal).  With --json, one JSON object per metric, with\n"
	  "the job's state, epoch and total steps when it was read, then the final job.\n"
	  "Exits 0 when the job succeeded, 1 otherwise.",
	  NULL, 0, cmd_job_watch, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};
