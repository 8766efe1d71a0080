/*
 * ftctl.c - the ftuned command-line client: the command table, option
 * parsing, help and bash completion generated from the table, and the
 * status and ping commands.  The model, data and job commands live in
 * cmd_model.c, cmd_data.c and cmd_job.c.
 *
 * Commands are matched by prefix ("j sub" is "job submit"); global options
 * may stand anywhere on the line.  Exit status: 0 success, 1 the daemon
 * refused the request, 2 usage error, 3 the daemon is unreachable.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd_audit.h"
#include "cmd_deploy.h"
#include "cmd_eval.h"
#include "ftctl.h"

#define FTCTL_VERSION "0.1.0"
#define DEFAULT_SOCKET "ipc:///run/ftuned/ftuned.sock"

static int cmd_status(const struct opts *o, void *args, int argc, char **argv);
static int cmd_ping(const struct opts *o, void *args, int argc, char **argv);
static int cmd_completion(const struct opts *o, void *args, int argc, char **argv);
static int cmd_keygen(const struct opts *o, void *args, int argc, char **argv);
static int cmd_help(const struct opts *o, void *args, int argc, char **argv);

static const struct command commands[] = {
	{ "status", "", 0, 0, ARG_NONE,
	  "Show the daemon's version, uptime, queue, your uid, and what you store against your quotas.",
	  NULL, 0, cmd_status, NULL },
	{ "ping", "[TEXT]", 0, 1, ARG_NONE,
	  "Check that the daemon answers; prints the round trip.",
	  NULL, 0, cmd_ping, NULL },
	{ "model", "", 0, 0, ARG_NONE, "Base and tuned models in the registry.",
	  NULL, 0, NULL, model_commands },
	{ "data", "", 0, 0, ARG_NONE, "Training datasets in the registry.",
	  NULL, 0, NULL, data_commands },
	{ "job", "", 0, 0, ARG_NONE, "Fine-tuning jobs in the training queue.",
	  NULL, 0, NULL, job_commands },
	{ "eval", "", 0, 0, ARG_NONE, "Evaluations: models compared on a dataset.",
	  NULL, 0, NULL, eval_commands },
	{ "generate", "MODEL PROMPT", 2, 2, ARG_MODEL,
	  "Generate a continuation of PROMPT with a model, in its template unless --raw.\n"
	  "Streams on a terminal (--stream, --no-stream); one reply only for models up to 50M.",
	  generate_options, sizeof(struct generate_args), cmd_generate, NULL },
	{ "deploy", "MODEL|ls", 1, 1, ARG_MODEL,
	  "Serve a registered model over the OpenAI-compatible API (/v1/ on http_listen).\n"
	  "It loads on its first request. `ftctl deploy ls` lists the deployments\n"
	  "(deploy a model named ls by its id).",
	  deploy_options, sizeof(struct deploy_args), cmd_deploy, NULL },
	{ "undeploy", "NAME", 1, 1, ARG_NONE, "Stop serving a deployment; its model is unloaded.",
	  NULL, 0, cmd_undeploy, NULL },
	{ "key", "", 0, 0, ARG_NONE, "API keys for the OpenAI-compatible API.",
	  NULL, 0, NULL, key_commands },
	{ "audit", "", 0, 0, ARG_NONE, "The audit log: who did what, hash-chained.",
	  NULL, 0, NULL, audit_commands },
	{ "keygen", "NAME FILE", 2, 2, ARG_FILE,
	  "Create a signing key for remote access (a daemon's remote_listen) in FILE.\n"
	  "Prints the line to add to the daemon's remote_keys file; then use\n"
	  "--key FILE (or $FTUNED_KEY) with --socket tcp://HOST:PORT.",
	  NULL, 0, cmd_keygen, NULL },
	{ "completion", "bash", 1, 1, ARG_NONE,
	  "Print a bash completion script for ftctl.\n"
	  "Load it with: source <(ftctl completion bash)",
	  NULL, 0, cmd_completion, NULL },
	{ "help", "[COMMAND [SUBCOMMAND]]", 0, 2, ARG_COMMAND,
	  "Show help for all commands or one.", NULL, 0, cmd_help, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};

/* command_find matches word against a table by prefix, as relayctl does:
 * "stat" finds "status".  NULL when nothing or more than one matches. */
static const struct command *
command_find(const struct command *table, const char *word)
{
	const struct command *found = NULL;
	size_t n = strlen(word);

	for (const struct command *c = table; c->name != NULL; c++) {
		if (strcmp(c->name, word) == 0)
			return c;
		if (n > 0 && strncmp(c->name, word, n) == 0) {
			if (found != NULL)
				return NULL;
			found = c;
		}
	}
	return found;
}

static void
command_names(FILE *f, const struct command *table)
{
	for (const struct command *c = table; c->name != NULL; c++)
		fprintf(f, " %s", c->name);
	fprintf(f, "\n");
}

static const char *
option_value_name(const struct ftctl_option *opt)
{
	return opt->choices != NULL ? opt->choices : opt->metavar;
}

/* usage_line writes "model import PATH [--name NAME] ..." for c, which
 * belongs to group (NULL at the top level).  Required options come first;
 * up to three optional ones are spelled out, more become [OPTIONS]. */
static void
usage_line(char *buf, size_t len, const struct command *group, const struct command *c)
{
	size_t pos = 0;
	int optional = 0;

#define APPEND(...) pos += (size_t)snprintf(buf + pos, pos < len ? len - pos : 0, __VA_ARGS__)
	if (group != NULL)
		APPEND("%s ", group->name);
	APPEND("%s", c->name);
	if (c->args != NULL && c->args[0] != '\0')
		APPEND(" %s", c->args);
	for (const struct ftctl_option *opt = c->options; opt && opt->name; opt++) {
		if (opt->flags & OPT_REQUIRED)
			APPEND(" --%s %s", opt->name, option_value_name(opt));
		else
			optional++;
	}
	if (optional > 3) {
		APPEND(" [OPTIONS]");
	} else {
		for (const struct ftctl_option *opt = c->options; opt && opt->name; opt++) {
			if (opt->flags & OPT_REQUIRED)
				continue;
			if (opt->type == OPT_FLAG)
				APPEND(" [--%s]", opt->name);
			else
				APPEND(" [--%s %s]", opt->name, option_value_name(opt));
		}
	}
	if (c->sub != NULL)
		APPEND(" COMMAND");
#undef APPEND
	if (pos >= len && len > 0)
		buf[len - 1] = '\0';
}

/* usage_entry prints one command of the overview: usage, then the first
 * line of its help, on the next line when the usage is long. */
static void
usage_entry(FILE *f, const struct command *group, const struct command *c)
{
	char line[512];
	const char *nl = strchr(c->help, '\n');
	int n = nl != NULL ? (int)(nl - c->help) : (int)strlen(c->help);

	if (n > term_width() - 33)
		n = term_width() - 33;
	usage_line(line, sizeof(line), group, c);
	if (strlen(line) > 30)
		fprintf(f, "  %s\n  %-30s %.*s\n", line, "", n, c->help);
	else
		fprintf(f, "  %-30s %.*s\n", line, n, c->help);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: ftctl [--socket URL] [--key FILE] [--json] [--timeout MS] COMMAND [ARGS]\n\ncommands:\n");
	for (const struct command *c = commands; c->name != NULL; c++) {
		if (c->sub == NULL) {
			usage_entry(f, NULL, c);
			continue;
		}
		for (const struct command *s = c->sub; s->name != NULL; s++)
			usage_entry(f, c, s);
	}
	fprintf(f, "\nCommands and subcommands may be shortened to a unique prefix.\n"
	    "`ftctl help COMMAND` shows a command's options; every command takes --json.\n"
	    "The daemon is found through --socket, then $FTUNED_SOCKET, then %s.\n"
	    "Exit status: 0 ok, 1 refused by the daemon, 2 usage error, 3 daemon unreachable.\n",
	    DEFAULT_SOCKET);
}

/* command_usage prints "usage: ftctl ..." for a command or a group. */
static void
command_usage(FILE *f, const struct command *group, const struct command *c)
{
	char line[512];

	if (c->sub != NULL) {
		fprintf(f, "usage: ftctl %s COMMAND\n\n%s commands:\n", c->name, c->name);
		for (const struct command *s = c->sub; s->name != NULL; s++)
			usage_entry(f, c, s);
		return;
	}
	usage_line(line, sizeof(line), group, c);
	fprintf(f, "usage: ftctl %s\n", line);
}

/* command_help prints the usage, the whole help text and every option. */
static void
command_help(FILE *f, const struct command *group, const struct command *c)
{
	command_usage(f, group, c);
	if (c->sub != NULL)
		return;
	fprintf(f, "\n%s\n", c->help);
	if (c->options != NULL && c->options[0].name != NULL) {
		fprintf(f, "\noptions:\n");
		for (const struct ftctl_option *opt = c->options; opt->name; opt++) {
			char left[80];

			if (opt->type == OPT_FLAG)
				snprintf(left, sizeof(left), "--%s", opt->name);
			else
				snprintf(left, sizeof(left), "--%s %s", opt->name, option_value_name(opt));
			if (strlen(left) > 26)
				fprintf(f, "  %s\n  %-26s %s%s\n", left, "", opt->help,
				    opt->flags & OPT_REQUIRED ? " (required)" : "");
			else
				fprintf(f, "  %-26s %s%s\n", left, opt->help,
				    opt->flags & OPT_REQUIRED ? " (required)" : "");
		}
	}
	fprintf(f, "\nglobal options: --json (machine-readable output), --socket URL, --key FILE, --timeout MS\n");
}

/* choice_take accepts word when it is one of choices in any case, and
 * rewrites it in place to the table's spelling ("running" -> "RUNNING"). */
static int
choice_take(const char *choices, char *word)
{
	size_t n = strlen(word);

	for (const char *p = choices; *p != '\0';) {
		size_t k = strcspn(p, "|");

		if (k == n && strncasecmp(p, word, n) == 0) {
			memcpy(word, p, n);
			return 1;
		}
		p += k + (p[k] == '|');
	}
	return 0;
}

/* option_set stores value into the field of args that opt names.  Returns
 * 0, or FTCTL_USAGE after saying what is wrong with the value. */
static int
option_set(const char *cmdname, const struct ftctl_option *opt, char *value, char *args)
{
	void *dst = args + opt->offset;
	char *end;

	errno = 0;
	switch (opt->type) {
	case OPT_FLAG:
		*(int *)dst = 1;
		return 0;
	case OPT_STR:
		if (opt->choices != NULL && !choice_take(opt->choices, value)) {
			fprintf(stderr, "ftctl: %s: --%s must be one of %s, not '%s'\n",
			    cmdname, opt->name, opt->choices, value);
			return FTCTL_USAGE;
		}
		*(const char **)dst = value;
		return 0;
	case OPT_U32:
	case OPT_U64: {
		unsigned long long v = strtoull(value, &end, 10);

		if (value[0] == '\0' || value[0] == '-' || value[0] == '+' || *end != '\0' ||
		    errno == ERANGE || (opt->type == OPT_U32 && v > UINT32_MAX)) {
			fprintf(stderr, "ftctl: %s: --%s takes a whole number from 0 to %llu, not '%s'\n",
			    cmdname, opt->name, opt->type == OPT_U32 ? (unsigned long long)UINT32_MAX :
			    (unsigned long long)UINT64_MAX, value);
			return FTCTL_USAGE;
		}
		if (opt->type == OPT_U32)
			*(uint32_t *)dst = (uint32_t)v;
		else
			*(uint64_t *)dst = v;
		return 0;
	}
	case OPT_I32: {
		long long v = strtoll(value, &end, 10);

		if (value[0] == '\0' || *end != '\0' || errno == ERANGE ||
		    v < INT32_MIN || v > INT32_MAX) {
			fprintf(stderr, "ftctl: %s: --%s takes an integer, not '%s'\n",
			    cmdname, opt->name, value);
			return FTCTL_USAGE;
		}
		*(int32_t *)dst = (int32_t)v;
		return 0;
	}
	case OPT_FLOAT:
	case OPT_DOUBLE: {
		double v = strtod(value, &end);

		if (value[0] == '\0' || *end != '\0' || !isfinite(v) ||
		    (opt->type == OPT_FLOAT && fabs(v) > 3.4e38)) {
			fprintf(stderr, "ftctl: %s: --%s takes a number such as 0.5 or 1e-4, not '%s'\n",
			    cmdname, opt->name, value);
			return FTCTL_USAGE;
		}
		if (opt->type == OPT_FLOAT)
			*(float *)dst = (float)v;
		else
			*(double *)dst = v;
		return 0;
	}
	}
	return FTCTL_USAGE;
}

/* options_parse fills args from words[0..n), leaving the positionals in
 * pos (*npos of them).  "--opt VALUE" and "--opt=VALUE" both work; "--"
 * ends the options.  Returns 0 or FTCTL_USAGE after saying why. */
static int
options_parse(const char *cmdname, const struct command *c, char **words, int n,
    char *args, char **pos, int *npos)
{
	const struct ftctl_option *opts = c->options;
	int seen[64] = { 0 }, rest = 0, rc;

	*npos = 0;
	for (int k = 0; opts != NULL && opts[k].name != NULL; k++)
		if (opts[k].type == OPT_STR)
			*(const char **)(args + opts[k].offset) = "";
	for (int i = 0; i < n; i++) {
		char *w = words[i], *value = NULL, *eq;
		const struct ftctl_option *opt = NULL;
		size_t len;

		if (rest || strncmp(w, "--", 2) != 0 || w[2] == '\0') {
			if (!rest && strcmp(w, "--") == 0)
				rest = 1;
			else
				pos[(*npos)++] = words[i];
			continue;
		}
		eq = strchr(w + 2, '=');
		len = eq != NULL ? (size_t)(eq - w - 2) : strlen(w + 2);
		for (int k = 0; opts != NULL && opts[k].name != NULL; k++)
			if (strlen(opts[k].name) == len && strncmp(opts[k].name, w + 2, len) == 0)
				opt = &opts[k];
		if (opt == NULL) {
			fprintf(stderr, "ftctl: %s: unknown option %.*s\n", cmdname, (int)len + 2, w);
			return FTCTL_USAGE;
		}
		if (opt->type == OPT_FLAG) {
			if (eq != NULL) {
				fprintf(stderr, "ftctl: %s: --%s takes no value\n", cmdname, opt->name);
				return FTCTL_USAGE;
			}
		} else if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < n) {
			value = words[++i];
		} else {
			fprintf(stderr, "ftctl: %s: --%s needs a value (%s)\n", cmdname,
			    opt->name, option_value_name(opt));
			return FTCTL_USAGE;
		}
		if ((rc = option_set(cmdname, opt, value, args)) != 0)
			return rc;
		if (opt - opts < 64)
			seen[opt - opts] = 1;
	}
	for (int k = 0; opts != NULL && opts[k].name != NULL && k < 64; k++)
		if ((opts[k].flags & OPT_REQUIRED) && !seen[k]) {
			fprintf(stderr, "ftctl: %s: --%s %s is required\n", cmdname,
			    opts[k].name, option_value_name(&opts[k]));
			return FTCTL_USAGE;
		}
	if (*npos < c->min_args) {
		fprintf(stderr, "ftctl: %s: missing %s\n", cmdname, c->args);
		return FTCTL_USAGE;
	}
	if (*npos > c->max_args) {
		fprintf(stderr, "ftctl: %s: unexpected argument '%s'\n", cmdname, pos[c->max_args]);
		return FTCTL_USAGE;
	}
	return 0;
}

/* usage_print shows the caller's storage against the quotas (0: none). */
int
template_arg(const char *cmd, const char *value, char **text)
{
	struct stat st;
	FILE *f;
	size_t n;

	*text = NULL;
	if (value[0] == '\0' || strchr(value, '{') != NULL || strcmp(value, "alpaca") == 0 ||
	    strcmp(value, "chat") == 0 || stat(value, &st) != 0)
		return EXIT_OK;
	if (!S_ISREG(st.st_mode) || st.st_size > (1 << 20) || (f = fopen(value, "r")) == NULL) {
		fprintf(stderr, "ftctl: %s: --template %s: %s\n", cmd, value,
		    S_ISREG(st.st_mode) ? st.st_size > (1 << 20) ? "over 1 MiB" : strerror(errno) :
		    "not a regular file");
		return EXIT_USAGE;
	}
	if ((*text = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return EXIT_USAGE;
	}
	n = fread(*text, 1, (size_t)st.st_size, f);
	(*text)[n] = '\0';
	fclose(f);
	return EXIT_OK;
}

static void
usage_print(const Ft__QuotaUsage *u)
{
	char used[32], limit[32], models[16], datasets[16];

	size_format(u->bytes, used, sizeof(used));
	size_format(u->bytes_limit, limit, sizeof(limit));
	snprintf(models, sizeof(models), "%u", u->models_limit);
	snprintf(datasets, sizeof(datasets), "%u", u->datasets_limit);
	printf("  storage    %s of %s\n", used, u->bytes_limit ? limit : "no limit");
	printf("  models     %u of %s\n", u->models, u->models_limit ? models : "no limit");
	printf("  datasets   %u of %s\n", u->datasets, u->datasets_limit ? datasets : "no limit");
}

static int
cmd_status(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__StatusRequest sreq = FT__STATUS_REQUEST__INIT;
	Ft__StatusReply *s;
	Ft__Reply *rep;
	char up[32];
	int rc;

	(void)args, (void)argc, (void)argv;
	req.body_case = FT__REQUEST__BODY_STATUS;
	req.status = &sreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	s = rep->status;
	if (o->json) {
		json_t *j = json_pack("{s:s,s:I,s:i,s:s,s:I,s:I,s:I,s:s,s:s,s:I}",
		    "version", s->version, "uptime_ms", (json_int_t)s->uptime_ms,
		    "pid", s->pid, "state_dir", s->state_dir,
		    "queue_length", (json_int_t)s->queue_length,
		    "training_threads", (json_int_t)s->training_threads,
		    "caller_uid", (json_int_t)s->caller_uid,
		    "http_url", s->http_url, "socket_url", s->socket_url,
		    "schema_version", (json_int_t)s->schema_version);

		if (s->usage != NULL)
			json_object_set_new(j, "usage", ft_json_message(&s->usage->base));
		json_print(j);
	} else {
		duration_format(s->uptime_ms, up, sizeof(up));
		printf("ftuned %s, up %s, pid %d\n", s->version, up, s->pid);
		printf("  state      %s (schema %u)\n", s->state_dir, s->schema_version);
		printf("  socket     %s\n", s->socket_url);
		printf("  dashboard  %s\n", s->http_url[0] ? s->http_url : "off");
		printf("  queue      %u job%s queued or running\n", s->queue_length,
		    s->queue_length == 1 ? "" : "s");
		printf("  training   %u thread%s\n", s->training_threads,
		    s->training_threads == 1 ? "" : "s");
		printf("  you        uid %u\n", s->caller_uid);
		if (s->usage != NULL)
			usage_print(s->usage);
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_ping(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__PingRequest preq = FT__PING_REQUEST__INIT;
	const char *text = argc > 0 ? argv[0] : "ping";
	struct timespec t0, t1;
	Ft__Reply *rep;
	double ms;
	int rc;

	(void)args;
	preq.payload.data = (uint8_t *)text;
	preq.payload.len = strlen(text);
	req.body_case = FT__REQUEST__BODY_PING;
	req.ping = &preq;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (rep->ping == NULL || rep->ping->payload.len != preq.payload.len ||
	    memcmp(rep->ping->payload.data, text, preq.payload.len) != 0) {
		fprintf(stderr, "ftctl: ping reply does not echo the payload\n");
		ft_reply_free(rep);
		return EXIT_UNREACHABLE;
	}
	if (o->json)
		json_print(json_pack("{s:s,s:f}", "payload", text, "round_trip_ms", ms));
	else
		printf("%s from %s in %.2f ms\n", text, o->socket, ms);
	ft_reply_free(rep);
	return EXIT_OK;
}

static const char *const arg_kind_word[] = {
	[ARG_NONE] = "", [ARG_FILE] = "file", [ARG_MODEL] = "model",
	[ARG_DATA] = "data", [ARG_JOB] = "job", [ARG_COMMAND] = "command",
};

/* completion_leaf writes the case branch that completes one command's
 * options, option values and positionals. */
static void
completion_leaf(FILE *f, const char *indent, const struct command *c)
{
	int values = 0;

	fprintf(f, "%s%s)\n%s\topts=\"", indent, c->name, indent);
	for (const struct ftctl_option *opt = c->options; opt && opt->name; opt++)
		fprintf(f, "%s--%s", opt == c->options ? "" : " ", opt->name);
	fprintf(f, "\"; args=%s", arg_kind_word[c->arg_kind]);
	for (const struct ftctl_option *opt = c->options; opt && opt->name; opt++) {
		if (opt->type == OPT_FLAG)
			continue;
		if (!values++)
			fprintf(f, "\n%s\tcase $prev in", indent);
		fprintf(f, "\n%s\t--%s) ", indent, opt->name);
		if (opt->choices != NULL) {
			fprintf(f, "COMPREPLY=($(compgen -W \"");
			for (const char *p = opt->choices; *p; p++)
				fputc(*p == '|' ? ' ' : *p, f);
			fprintf(f, "\" -- \"$cur\")); return ;;");
		} else if (opt->flags & OPT_FILE) {
			fprintf(f, "compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")); return ;;");
		} else {
			fprintf(f, "return ;;");
		}
	}
	fprintf(f, values ? "\n%s\tesac ;;\n" : " ;;\n", indent);
}

static int
cmd_keygen(const struct opts *o, void *args, int argc, char **argv)
{
	char pk[2 * 32 + 1], err[512];

	(void)args, (void)argc;
	if (ft_key_generate(argv[0], argv[1], pk, sizeof(pk), err, sizeof(err)) != 0) {
		fprintf(stderr, "ftctl: keygen: %s\n", err);
		return EXIT_USAGE;
	}
	if (o->json)
		json_print(json_pack("{s:s,s:s,s:s}", "name", argv[0], "key_file", argv[1],
		    "public_key", pk));
	else
		printf("wrote %s; add this line, with the Unix uid the key acts as, to the "
		    "daemon's remote_keys file:\n%s UID %s\n", argv[1], argv[0], pk);
	return EXIT_OK;
}

static int
cmd_completion(const struct opts *o, void *args, int argc, char **argv)
{
	FILE *f = stdout;

	(void)o, (void)args, (void)argc;
	if (strcmp(argv[0], "bash") != 0) {
		fprintf(stderr, "ftctl: completion: only bash is supported, not '%s'\n", argv[0]);
		return FTCTL_USAGE;
	}
	fprintf(f, "# bash completion for ftctl, generated by `ftctl completion bash`\n"
	    "# from ftctl %s's command table.\n\n"
	    "_ftctl_names() {\n"
	    "\t# Names in the model or data registry, or job ids, from the daemon.\n"
	    "\t\"${COMP_WORDS[0]}\" --timeout 2000 \"$1\" ls --quiet 2>/dev/null\n"
	    "}\n\n"
	    "_ftctl() {\n"
	    "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	    "\tlocal i w cmd= sub= opts= args=\n"
	    "\tCOMPREPLY=()\n"
	    "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	    "\t\tw=${COMP_WORDS[i]}\n"
	    "\t\tcase $w in\n"
	    "\t\t--socket|--timeout|--key) ((i++)) ;;\n"
	    "\t\t-*) ;;\n"
	    "\t\t*) if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then sub=$w; fi ;;\n"
	    "\t\tesac\n"
	    "\tdone\n"
	    "\tcase $prev in\n"
	    "\t--socket|--timeout|--key) return ;;\n"
	    "\tesac\n"
	    "\tcase $cmd in\n", FTCTL_VERSION);
	for (const struct command *c = commands; c->name != NULL; c++) {
		if (c->sub == NULL) {
			completion_leaf(f, "\t", c);
			continue;
		}
		fprintf(f, "\t%s)\n\t\tcase $sub in\n", c->name);
		for (const struct command *s = c->sub; s->name != NULL; s++)
			completion_leaf(f, "\t\t", s);
		fprintf(f, "\t\t*) COMPREPLY=($(compgen -W \"");
		for (const struct command *s = c->sub; s->name != NULL; s++)
			fprintf(f, "%s%s", s == c->sub ? "" : " ", s->name);
		fprintf(f, "\" -- \"$cur\")); return ;;\n\t\tesac ;;\n");
	}
	fprintf(f, "\t*)\n\t\tCOMPREPLY=($(compgen -W \"");
	for (const struct command *c = commands; c->name != NULL; c++)
		fprintf(f, "%s ", c->name);
	fprintf(f, "--json --socket --key --timeout --help --version\" -- \"$cur\"))\n"
	    "\t\treturn ;;\n"
	    "\tesac\n"
	    "\tif [[ $cur == -* ]]; then\n"
	    "\t\tCOMPREPLY=($(compgen -W \"$opts --json --help\" -- \"$cur\"))\n"
	    "\t\treturn\n"
	    "\tfi\n"
	    "\tcase $args in\n"
	    "\tfile) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
	    "\tmodel|data|job) COMPREPLY=($(compgen -W \"$(_ftctl_names $args)\" -- \"$cur\")) ;;\n"
	    "\tcommand) COMPREPLY=($(compgen -W \"");
	for (const struct command *c = commands; c->name != NULL; c++)
		fprintf(f, "%s%s", c == commands ? "" : " ", c->name);
	fprintf(f, "\" -- \"$cur\")) ;;\n"
	    "\tesac\n"
	    "}\n"
	    "complete -F _ftctl ftctl\n");
	return EXIT_OK;
}

static int
cmd_help(const struct opts *o, void *args, int argc, char **argv)
{
	const struct command *c = NULL, *group = NULL;

	(void)o, (void)args;
	if (argc == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if ((c = command_find(commands, argv[0])) != NULL && argc == 2) {
		group = c;
		c = c->sub != NULL ? command_find(c->sub, argv[1]) : NULL;
	}
	if (c == NULL) {
		fprintf(stderr, "ftctl: no command '%s%s%s'\n", argv[0],
		    argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
		return EXIT_USAGE;
	}
	command_help(stdout, group, c);
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct opts o = { .socket = getenv("FTUNED_SOCKET"), .timeout_ms = 10000,
	    .key_file = getenv("FTUNED_KEY") };
	char **words = calloc((size_t)argc + 1, sizeof(char *));
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	const struct command *c, *group = NULL;
	char name[64], *args = NULL;
	int n = 0, npos, help = 0, rc = EXIT_USAGE;

	if (words == NULL || pos == NULL) {
		fprintf(stderr, "ftctl: out of memory\n");
		return EXIT_UNREACHABLE;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o.json = 1;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			o.socket = argv[++i];
		} else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
			o.key_file = argv[++i];
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			o.timeout_ms = atoi(argv[++i]);
			if (o.timeout_ms <= 0) {
				fprintf(stderr, "ftctl: --timeout takes a positive number of milliseconds\n");
				goto out;
			}
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			help = 1;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("ftctl %s\n", FTCTL_VERSION);
			rc = EXIT_OK;
			goto out;
		} else if (strncmp(argv[i], "--", 2) == 0 && n == 0) {
			fprintf(stderr, "ftctl: unknown option %s\n", argv[i]);
			usage(stderr);
			goto out;
		} else {
			words[n++] = argv[i];
		}
	}
	if (o.socket == NULL || o.socket[0] == '\0')
		o.socket = DEFAULT_SOCKET;
	if (n == 0) {
		usage(help ? stdout : stderr);
		rc = help ? EXIT_OK : EXIT_USAGE;
		goto out;
	}
	if ((c = command_find(commands, words[0])) == NULL) {
		fprintf(stderr, "ftctl: unknown or ambiguous command '%s'; commands:", words[0]);
		command_names(stderr, commands);
		goto out;
	}
	if (c->sub != NULL) {
		group = c;
		if (n < 2) {
			command_usage(help ? stdout : stderr, NULL, group);
			rc = help ? EXIT_OK : EXIT_USAGE;
			goto out;
		}
		if ((c = command_find(group->sub, words[1])) == NULL) {
			fprintf(stderr, "ftctl: unknown or ambiguous command '%s %s'; %s commands:",
			    group->name, words[1], group->name);
			command_names(stderr, group->sub);
			goto out;
		}
	}
	if (help) {
		command_help(stdout, group, c);
		rc = EXIT_OK;
		goto out;
	}
	snprintf(name, sizeof(name), "%s%s%s", group ? group->name : "", group ? " " : "", c->name);
	if ((args = calloc(1, c->args_size > 0 ? c->args_size : 1)) == NULL) {
		fprintf(stderr, "ftctl: out of memory\n");
		rc = EXIT_UNREACHABLE;
		goto out;
	}
	rc = options_parse(name, c, words + 1 + (group != NULL), n - 1 - (group != NULL),
	    args, pos, &npos);
	if (rc == 0)
		rc = c->fn(&o, args, npos, pos);
	if (rc == FTCTL_USAGE) {
		command_usage(stderr, group, c);
		rc = EXIT_USAGE;
	}
out:
	free(args);
	free(pos);
	free(words);
	return rc;
}
