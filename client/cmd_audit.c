/* cmd_audit.c - ftctl audit ls and audit verify. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_audit.h"

struct audit_ls_args {
	const char *user;
	const char *action;
	const char *since;
	uint32_t limit;
};

/* since_parse reads Unix seconds, a span back from now ("90s", "30m",
 * "12h", "7d") or a UTC date "YYYY-MM-DD[THH:MM[:SS]]"; -1 when none. */
static int64_t
since_parse(const char *s)
{
	static const struct { char unit; int64_t s; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	struct tm tm;
	char *end;
	long long n;

	n = strtoll(s, &end, 10);
	if (end != s && n >= 0 && *end == '\0')
		return n;
	if (end != s && n >= 0 && end[1] == '\0')
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (*end == units[i].unit)
				return (int64_t)time(NULL) - n * units[i].s;
	static const char *const formats[] = { "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, formats[i], &tm);
		if (end != NULL && *end == '\0')
			return (int64_t)timegm(&tm);
	}
	return -1;
}

static int
cmd_audit_ls(const struct opts *o, void *args, int argc, char **argv)
{
	const struct audit_ls_args *a = args;
	static const char *const heads[] = { "SEQ", "TIME", "USER", "ACTION", "OBJECT", "OUTCOME" };
	Ft__Request req = FT__REQUEST__INIT;
	Ft__AuditListRequest areq = FT__AUDIT_LIST_REQUEST__INIT;
	Ft__AuditListReply *l;
	struct table *t;
	Ft__Reply *rep;
	int rc;

	(void)argc, (void)argv;
	if (a->since[0] != '\0' && (areq.since = since_parse(a->since)) < 0) {
		fprintf(stderr, "ftctl: --since %s: not seconds, 30m/12h/7d or YYYY-MM-DD[THH:MM]\n",
		    a->since);
		return EXIT_USAGE;
	}
	areq.user = (char *)a->user;
	areq.action = (char *)a->action;
	areq.limit = a->limit;
	req.body_case = FT__REQUEST__BODY_AUDIT_LIST;
	req.audit_list = &areq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->audit_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if ((t = table_new(6, heads, "rlllLl")) != NULL) {
		for (size_t i = 0; i < l->n_entries; i++) {
			const Ft__AuditEntry *e = l->entries[i];
			char seq[32], when[64], user[80], outcome[320];

			snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->seq);
			time_format(e->time, when, sizeof(when));
			user_format(e->uid, user, sizeof(user));
			if (e->admin)
				strncat(user, " (admin)", sizeof(user) - strlen(user) - 1);
			snprintf(outcome, sizeof(outcome), "%s%s%s", e->outcome,
			    e->message[0] ? ": " : "", e->message);
			table_add(t, seq, when, user, e->action, e->object, outcome);
		}
		table_print(t, stdout, term_width());
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

/* Exits EXIT_REFUSED when the chain is broken, so scripts can alert. */
static int
cmd_audit_verify(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__AuditVerifyRequest vreq = FT__AUDIT_VERIFY_REQUEST__INIT;
	Ft__AuditVerifyReply *v;
	Ft__Reply *rep;
	int rc;

	(void)args, (void)argc, (void)argv;
	req.body_case = FT__REQUEST__BODY_AUDIT_VERIFY;
	req.audit_verify = &vreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	v = rep->audit_verify;
	if (o->json) {
		json_print(ft_json_message(&v->base));
	} else {
		for (size_t i = 0; i < v->n_problems; i++)
			printf("audit.log: %s\n", v->problems[i]);
		printf("%s: %llu lines, head %s\n", v->ok ? "ok" : "BROKEN",
		    (unsigned long long)v->lines, v->head);
	}
	rc = v->ok ? EXIT_OK : EXIT_REFUSED;
	ft_reply_free(rep);
	return rc;
}

static const struct ftctl_option audit_ls_options[] = {
	{ "user", OPT_STR, offsetof(struct audit_ls_args, user), "USER", NULL, 0,
	  "one user's entries (admins; others see only their own)", NULL },
	{ "action", OPT_STR, offsetof(struct audit_ls_args, action), "ACTION", NULL, 0,
	  "one action (job.submit), or a family ending in a dot (model.)", NULL },
	{ "since", OPT_STR, offsetof(struct audit_ls_args, since), "T", NULL, 0,
	  "Unix seconds, 30m/12h/7d ago, or a UTC YYYY-MM-DD[THH:MM]", NULL },
	{ "limit", OPT_U32, offsetof(struct audit_ls_args, limit), "N", NULL, 0,
	  "the last N entries (default 1000)", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

const struct command audit_commands[] = {
	{ "ls", "", 0, 0, ARG_NONE,
	  "List audit entries: who submitted, cancelled, imported, removed, deployed,\n"
	  "created or revoked what, and whether it was refused. Yours, or everyone's for admins.",
	  audit_ls_options, sizeof(struct audit_ls_args), cmd_audit_ls, NULL },
	{ "verify", "", 0, 0, ARG_NONE,
	  "Check the audit log's hash chain (admins); names the first edited, removed,\n"
	  "inserted or reordered line, and prints the head hash to keep elsewhere.",
	  NULL, 0, cmd_audit_verify, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};
