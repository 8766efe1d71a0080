/*
 * ftctl.c - the ftuned command-line client.
 *
 * Commands are rows of one table (name, usage, help, function); global
 * options may stand anywhere on the line.  Exit status: 0 success, 1 the
 * daemon refused the request, 2 usage error, 3 the daemon is unreachable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "call.h"

#define FTCTL_VERSION "0.1.0"
#define DEFAULT_SOCKET "ipc:///run/ftuned/ftuned.sock"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct opts {
	const char *socket;
	int json;
	int timeout_ms;
};

struct command {
	const char *name;
	const char *usage;
	const char *help;
	int (*fn)(const struct opts *o, int argc, char **argv);
};

static int cmd_status(const struct opts *o, int argc, char **argv);
static int cmd_ping(const struct opts *o, int argc, char **argv);
static int cmd_help(const struct opts *o, int argc, char **argv);

static const struct command commands[] = {
	{ "status", "status", "Show the daemon's version, uptime, state directory, queue and your uid.", cmd_status },
	{ "ping", "ping [TEXT]", "Check that the daemon answers; prints the round trip.", cmd_ping },
	{ "help", "help [COMMAND]", "Show help for all commands or one.", cmd_help },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	fprintf(f, "usage: ftctl [--socket URL] [--json] [--timeout MS] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-20s %s\n", commands[i].usage, commands[i].help);
	fprintf(f, "\nThe daemon is found through --socket, then $FTUNED_SOCKET, then %s.\n"
	    "Exit status: 0 ok, 1 refused by the daemon, 2 usage error, 3 daemon unreachable.\n",
	    DEFAULT_SOCKET);
}

/* Prefix matching, as relayctl does: "stat" finds "status". */
static const struct command *
command_find(const char *name)
{
	const struct command *found = NULL;
	size_t n = strlen(name);

	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
		if (strncmp(commands[i].name, name, n) == 0) {
			if (found != NULL)
				return NULL; /* ambiguous */
			found = &commands[i];
		}
	}
	return found;
}

/* call sends the request; on a refusal it prints the daemon's reason. */
static int
call(const struct opts *o, Ft__Request *req, Ft__Reply **rep)
{
	char err[512];

	if (ft_call(o->socket, req, o->timeout_ms, rep, err, sizeof(err)) != 0) {
		fprintf(stderr, "ftctl: %s\n", err);
		return EXIT_UNREACHABLE;
	}
	if ((*rep)->code != FT__CODE__OK) {
		if (o->json) {
			json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code",
			    ft_code_name((*rep)->code), "message", (*rep)->message);
			json_dumpf(j, stdout, JSON_INDENT(2));
			printf("\n");
			json_decref(j);
		}
		fprintf(stderr, "ftctl: %s: %s\n", ft_code_name((*rep)->code), (*rep)->message);
		ft_reply_free(*rep);
		return EXIT_REFUSED;
	}
	return EXIT_OK;
}

static void
json_print(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	printf("\n");
	json_decref(j);
}

static void
duration_format(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		snprintf(buf, len, "%llud %lluh", (unsigned long long)(s / 86400),
		    (unsigned long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, len, "%lluh %llum", (unsigned long long)(s / 3600),
		    (unsigned long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, len, "%llum %llus", (unsigned long long)(s / 60),
		    (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llu.%llus", (unsigned long long)s,
		    (unsigned long long)(ms % 1000 / 100));
}

static int
cmd_status(const struct opts *o, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__StatusRequest sreq = FT__STATUS_REQUEST__INIT;
	Ft__StatusReply *s;
	Ft__Reply *rep;
	char up[32];
	int rc;

	(void)argv;
	if (argc != 1)
		return EXIT_USAGE;
	req.body_case = FT__REQUEST__BODY_STATUS;
	req.status = &sreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	s = rep->status;
	if (s == NULL) {
		fprintf(stderr, "ftctl: reply carries no status\n");
		ft_reply_free(rep);
		return EXIT_UNREACHABLE;
	}
	if (o->json) {
		json_print(json_pack("{s:s,s:I,s:i,s:s,s:I,s:I,s:I,s:s,s:s,s:I}",
		    "version", s->version, "uptime_ms", (json_int_t)s->uptime_ms,
		    "pid", s->pid, "state_dir", s->state_dir,
		    "queue_length", (json_int_t)s->queue_length,
		    "training_threads", (json_int_t)s->training_threads,
		    "caller_uid", (json_int_t)s->caller_uid,
		    "http_url", s->http_url, "socket_url", s->socket_url,
		    "schema_version", (json_int_t)s->schema_version));
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
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_ping(const struct opts *o, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__PingRequest preq = FT__PING_REQUEST__INIT;
	const char *text = argc > 1 ? argv[1] : "ping";
	struct timespec t0, t1;
	Ft__Reply *rep;
	double ms;
	int rc;

	if (argc > 2)
		return EXIT_USAGE;
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

static int
cmd_help(const struct opts *o, int argc, char **argv)
{
	const struct command *c;

	(void)o;
	if (argc == 1) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc != 2 || (c = command_find(argv[1])) == NULL) {
		fprintf(stderr, "ftctl: no command '%s'\n", argc > 1 ? argv[1] : "");
		return EXIT_USAGE;
	}
	printf("usage: ftctl %s\n\n%s\n", c->usage, c->help);
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct opts o = { .socket = getenv("FTUNED_SOCKET"), .timeout_ms = 10000 };
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	const struct command *c;
	int n = 0, rc;

	if (rest == NULL)
		return EXIT_UNREACHABLE;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o.json = 1;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			o.socket = argv[++i];
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			o.timeout_ms = atoi(argv[++i]);
			if (o.timeout_ms <= 0) {
				fprintf(stderr, "ftctl: --timeout takes a positive number of milliseconds\n");
				free(rest);
				return EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			rest[n++] = "help";
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("ftctl %s\n", FTCTL_VERSION);
			free(rest);
			return EXIT_OK;
		} else if (strncmp(argv[i], "--", 2) == 0 && n == 0) {
			fprintf(stderr, "ftctl: unknown option %s\n", argv[i]);
			usage(stderr);
			free(rest);
			return EXIT_USAGE;
		} else {
			rest[n++] = argv[i];
		}
	}
	if (o.socket == NULL || o.socket[0] == '\0')
		o.socket = DEFAULT_SOCKET;
	if (n == 0) {
		usage(stderr);
		free(rest);
		return EXIT_USAGE;
	}
	if ((c = command_find(rest[0])) == NULL) {
		fprintf(stderr, "ftctl: unknown or ambiguous command '%s'; commands:", rest[0]);
		for (size_t i = 0; i < N_COMMANDS; i++)
			fprintf(stderr, " %s", commands[i].name);
		fprintf(stderr, "\n");
		free(rest);
		return EXIT_USAGE;
	}
	rc = c->fn(&o, n, rest);
	if (rc == EXIT_USAGE)
		fprintf(stderr, "usage: ftctl %s\n", c->usage);
	free(rest);
	return rc;
}
