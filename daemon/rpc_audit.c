/* rpc_audit.c - AuditList and AuditVerify (audit.h). */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "rpc.h"

#define LIST_DEFAULT 1000
#define LIST_MAX 10000

/* user_uid resolves a login name or a number; -1 when unknown. */
static int64_t
user_uid(const char *user)
{
	struct passwd pw, *pwp;
	char buf[4096], *end;
	unsigned long n;

	errno = 0;
	n = strtoul(user, &end, 10);
	if (*user != '\0' && *end == '\0' && errno == 0 && n <= UINT32_MAX)
		return (int64_t)n;
	if (getpwnam_r(user, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
		return -1;
	return (int64_t)pwp->pw_uid;
}

struct collect {
	struct rpc_call *call;
	Ft__AuditListReply *r;
	size_t cap;
};

static int
collect_entry(void *arg, const Ft__AuditEntry *e)
{
	struct collect *c = arg;
	Ft__AuditEntry *copy;

	if (c->r->n_entries == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		Ft__AuditEntry **v = rpc_alloc(c->call, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		if (c->cap)
			memcpy(v, c->r->entries, c->cap * sizeof(*v));
		c->r->entries = v;
		c->cap = cap;
	}
	if ((copy = rpc_alloc(c->call, sizeof(*copy))) == NULL)
		return -1;
	*copy = *e;
	if ((copy->action = rpc_strdup(c->call, e->action)) == NULL ||
	    (copy->object = rpc_strdup(c->call, e->object)) == NULL ||
	    (copy->outcome = rpc_strdup(c->call, e->outcome)) == NULL ||
	    (copy->message = rpc_strdup(c->call, e->message)) == NULL)
		return -1;
	c->r->entries[c->r->n_entries++] = copy;
	return 0;
}

/* Users see their own lines; admins everyone's, or one user's. */
int
rpc_audit_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__AuditListRequest *q = req->audit_list;
	Ft__AuditListReply *r = rpc_alloc(call, sizeof(*r));
	struct audit_filter f = { .uid = -1, .action = q->action, .since = q->since };
	struct collect c = { .call = call, .r = r };
	int admin = rpc_caller_is_admin(call);
	char err[256];

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (call->d->audit == NULL)
		return rpc_error(call, rep, FT__CODE__FAILED_PRECONDITION, "no audit log");
	ft__audit_list_reply__init(r);
	if (q->user[0] != '\0' && (f.uid = user_uid(q->user)) < 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no user %s", q->user);
	if (!admin) {
		if (f.uid >= 0 && (uint64_t)f.uid != call->uid)
			return rpc_error(call, rep, FT__CODE__PERMISSION_DENIED,
			    "only admins read other users' audit entries");
		f.uid = (int64_t)call->uid;
	}
	f.limit = q->limit == 0 ? LIST_DEFAULT : q->limit > LIST_MAX ? LIST_MAX : q->limit;
	if (audit_list(call->d->audit, &f, collect_entry, &c, err, sizeof(err)) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "%s", err);
	rep->body_case = FT__REPLY__BODY_AUDIT_LIST;
	rep->audit_list = r;
	return FT__CODE__OK;
}

/* Admins only: the verdict tells how many lines everyone wrote. */
int
rpc_audit_verify(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__AuditVerifyReply *r = rpc_alloc(call, sizeof(*r));
	struct audit_verdict v;
	char err[256];

	(void)req;
	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (!rpc_caller_is_admin(call))
		return rpc_error(call, rep, FT__CODE__PERMISSION_DENIED,
		    "only admins verify the audit log");
	if (call->d->audit == NULL)
		return rpc_error(call, rep, FT__CODE__FAILED_PRECONDITION, "no audit log");
	if (audit_verify(call->d->audit, &v, err, sizeof(err)) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "%s", err);
	ft__audit_verify_reply__init(r);
	r->ok = v.first_bad == 0;
	r->lines = v.lines;
	r->first_bad_line = v.first_bad;
	if ((r->head = rpc_strdup(call, v.head)) == NULL ||
	    (v.n_problems > 0 &&
	    (r->problems = rpc_alloc(call, (size_t)v.n_problems * sizeof(char *))) == NULL))
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	for (int i = 0; i < v.n_problems; i++)
		if ((r->problems[r->n_problems++] = rpc_strdup(call, v.problems[i])) == NULL)
			return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_AUDIT_VERIFY;
	rep->audit_verify = r;
	return FT__CODE__OK;
}
