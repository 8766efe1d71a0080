/*
 * audit.c - the hash-chained audit log (audit.h).
 *
 * DESIGN: one writer at a time under a mutex keeps the chain (seq, last
 * hash) in memory; a line is built with jansson, hashed, written with one
 * write(2) on an O_APPEND descriptor and fsync'd, then audit.head is
 * rewritten in place (not synced: after a crash it may lag the log by one
 * line, which verify accepts; it never runs ahead of it).  Readers (list,
 * verify) open the file again and read up to the head they saw, so they
 * never wait for the writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"
#include "ft_enum.h"
#include "log.h"
#include "rpc.h"

#define AUDIT_LINE_MAX 4096           /* a longer line is malformed */
#define AUDIT_FIELD_MAX 256           /* object and message are cut to this */
#define HASH_KEY ",\"hash\":\""
#define HEAD_LEN (20 + 1 + AUDIT_HASH_HEX + 1)

struct audit {
	pthread_mutex_t mu;
	int fd;                       /* audit.log, O_APPEND */
	int head_fd;                  /* audit.head */
	char path[4096];
	uint64_t seq;                 /* of the last line written */
	char last[AUDIT_HASH_HEX + 1];
};

static const char zero_hash[AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void
hash_hex(const char *body, size_t len, char hex[AUDIT_HASH_HEX + 1])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)body, len, NULL, 0);
	sodium_bin2hex(hex, AUDIT_HASH_HEX + 1, h, sizeof(h));
}

static int
is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* A parsed line: its JSON, the stored hash, and whether that hash is the
 * hash of the body before it. */
struct line {
	json_t *j;
	char hash[AUDIT_HASH_HEX + 1];
	int hash_ok;
};

/* line_parse splits s (without its newline); -1 with why when malformed. */
static int
line_parse(const char *s, size_t len, struct line *l, char *why, size_t why_len)
{
	size_t tail = strlen(HASH_KEY) + AUDIT_HASH_HEX + 2;
	char computed[AUDIT_HASH_HEX + 1];
	json_error_t je;

	memset(l, 0, sizeof(*l));
	if (len < tail + 2 || memcmp(s + len - tail, HASH_KEY, strlen(HASH_KEY)) != 0 ||
	    memcmp(s + len - 2, "\"}", 2) != 0 ||
	    !is_hex(s + len - tail + strlen(HASH_KEY), AUDIT_HASH_HEX)) {
		snprintf(why, why_len, "malformed (no hash at its end)");
		return -1;
	}
	if ((l->j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    !json_is_object(l->j) || !json_is_integer(json_object_get(l->j, "seq")) ||
	    !json_is_string(json_object_get(l->j, "prev"))) {
		snprintf(why, why_len, "malformed JSON");
		json_decref(l->j);
		l->j = NULL;
		return -1;
	}
	memcpy(l->hash, s + len - tail + strlen(HASH_KEY), AUDIT_HASH_HEX);
	l->hash[AUDIT_HASH_HEX] = '\0';
	hash_hex(s, len - tail, computed);
	l->hash_ok = strcmp(computed, l->hash) == 0;
	return 0;
}

/* Reads lines of a's log one by one: fn(arg, lineno, text, len) until it
 * returns nonzero or max lines were read.  A last line without its
 * newline is passed too (it was torn or cut). */
static int
lines_each(struct audit *a, uint64_t max, int (*fn)(void *, uint64_t, const char *, size_t),
    void *arg, char *err, size_t err_len)
{
	FILE *f;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	int fd, rc = 0;

	if ((fd = open(a->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (f = fdopen(fd, "r")) == NULL) {
		snprintf(err, err_len, "audit log: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (lineno < max && (n = getline(&buf, &cap, f)) > 0) {
		if (buf[n - 1] == '\n')
			buf[--n] = '\0';
		if ((rc = fn(arg, ++lineno, buf, (size_t)n)) != 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, err_len, "audit log: read: %s", strerror(errno));
		rc = -1;
	}
	free(buf);
	fclose(f);
	return rc < 0 ? -1 : 0;
}

struct resume {
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1];
};

static int
resume_line(void *arg, uint64_t lineno, const char *s, size_t len)
{
	struct resume *r = arg;
	struct line l;
	char why[64];

	(void)lineno;
	if (line_parse(s, len, &l, why, sizeof(why)) != 0)
		return 0;
	r->seq = (uint64_t)json_integer_value(json_object_get(l.j, "seq"));
	memcpy(r->hash, l.hash, sizeof(r->hash));
	json_decref(l.j);
	return 0;
}

/* head_read parses audit.head: 0, or -1 when absent or unreadable. */
static int
head_read(int fd, uint64_t *seq, char hash[AUDIT_HASH_HEX + 1])
{
	char buf[HEAD_LEN + 1];
	unsigned long long s;

	if (pread(fd, buf, HEAD_LEN, 0) != HEAD_LEN)
		return -1;
	buf[HEAD_LEN] = '\0';
	if (sscanf(buf, "%20llu", &s) != 1 || buf[20] != ' ' || !is_hex(buf + 21, AUDIT_HASH_HEX))
		return -1;
	*seq = s;
	memcpy(hash, buf + 21, AUDIT_HASH_HEX);
	hash[AUDIT_HASH_HEX] = '\0';
	return 0;
}

/* A last line without its newline (a crash mid-write, or a cut) is ended,
 * so that the next line stands on its own and verify names the torn one. */
static int
torn_end(struct audit *a, char *err, size_t err_len)
{
	char c;
	off_t end;
	int fd;

	if ((fd = open(a->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (end = lseek(fd, 0, SEEK_END)) < 0) {
		snprintf(err, err_len, "%s: %s", a->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (end > 0 && (pread(fd, &c, 1, end - 1) != 1 || c != '\n') && write(a->fd, "\n", 1) != 1) {
		snprintf(err, err_len, "%s: %s", a->path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
audit_open(const char *state_dir, struct audit **out, char *err, size_t err_len)
{
	struct audit *a;
	struct resume r = { 0, "" };
	char head_path[4096];
	uint64_t head_seq;
	char head_hash[AUDIT_HASH_HEX + 1];

	if (sodium_init() < 0) {
		snprintf(err, err_len, "libsodium failed to initialise");
		return -1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	a->head_fd = -1;
	snprintf(a->path, sizeof(a->path), "%s/audit.log", state_dir);
	snprintf(head_path, sizeof(head_path), "%s/audit.head", state_dir);
	a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (a->fd < 0 ||
	    (a->head_fd = open(head_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640)) < 0) {
		snprintf(err, err_len, "%s: %s", a->fd < 0 ? a->path : head_path, strerror(errno));
		audit_close(a);
		return -1;
	}
	memcpy(r.hash, zero_hash, sizeof(r.hash));
	if (lines_each(a, UINT64_MAX, resume_line, &r, err, err_len) != 0 ||
	    torn_end(a, err, err_len) != 0) {
		audit_close(a);
		return -1;
	}
	a->seq = r.seq;
	memcpy(a->last, r.hash, sizeof(a->last));
	/* A head beyond the log means lines were cut off its end: chain on
	 * from the head, so that verify keeps naming the gap. */
	if (head_read(a->head_fd, &head_seq, head_hash) == 0 && head_seq > r.seq) {
		log_warn("audit: %s ends at line %" PRIu64 " but audit.head records %" PRIu64
		    " lines: lines were removed", a->path, r.seq, head_seq);
		a->seq = head_seq;
		memcpy(a->last, head_hash, sizeof(a->last));
	}
	pthread_mutex_init(&a->mu, NULL);
	*out = a;
	return 0;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		close(a->fd);
		pthread_mutex_destroy(&a->mu);
	}
	if (a->head_fd >= 0)
		close(a->head_fd);
	free(a);
}

/* A string field cut to AUDIT_FIELD_MAX bytes on a UTF-8 boundary;
 * jansson refuses invalid UTF-8, which becomes "?". */
static json_t *
field(const char *s)
{
	size_t n;

	if (s == NULL)
		s = "";
	n = strnlen(s, AUDIT_FIELD_MAX);
	while (n > 0 && n < strlen(s) && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	json_t *j = json_stringn(s, n);
	return j != NULL ? j : json_string("?");
}

int
audit_append(struct audit *a, const struct audit_event *ev)
{
	json_t *j;
	char *body = NULL, *line = NULL, hash[AUDIT_HASH_HEX + 1], head[HEAD_LEN + 1];
	size_t blen, len;
	int rc = -1;

	if (a == NULL)
		return 0;
	pthread_mutex_lock(&a->mu);
	j = json_pack("{s:I,s:I,s:I,s:b,s:s,s:o,s:s,s:o,s:I,s:s}",
	    "seq", (json_int_t)(a->seq + 1), "time", (json_int_t)time(NULL),
	    "uid", (json_int_t)ev->uid, "admin", ev->admin, "action", ev->action,
	    "object", field(ev->object), "outcome", ev->outcome, "message", field(ev->message),
	    "request_id", (json_int_t)ev->request_id, "prev", a->last);
	if (j == NULL || (body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	blen = strlen(body) - 1;              /* without the closing brace */
	hash_hex(body, blen, hash);
	len = blen + strlen(HASH_KEY) + AUDIT_HASH_HEX + 3;
	if ((line = malloc(len + 1)) == NULL)
		goto out;
	snprintf(line, len + 1, "%.*s%s%s\"}\n", (int)blen, body, HASH_KEY, hash);
	if (write(a->fd, line, len) != (ssize_t)len || fsync(a->fd) != 0) {
		log_error("audit: %s: %s; the event is lost: %s", a->path, strerror(errno), line);
		goto out;
	}
	a->seq++;
	memcpy(a->last, hash, sizeof(a->last));
	snprintf(head, sizeof(head), "%020" PRIu64 " %s\n", a->seq, hash);
	if (pwrite(a->head_fd, head, HEAD_LEN, 0) != HEAD_LEN)
		log_warn("audit: audit.head: %s", strerror(errno));
	rc = 0;
out:
	pthread_mutex_unlock(&a->mu);
	if (j == NULL || body == NULL || line == NULL)
		log_error("audit: out of memory; an event is lost: %s uid %" PRIu64, ev->action,
		    ev->uid);
	free(line);
	free(body);
	json_decref(j);
	return rc;
}

static void
head_get(struct audit *a, uint64_t *seq, char hash[AUDIT_HASH_HEX + 1])
{
	pthread_mutex_lock(&a->mu);
	*seq = a->seq;
	memcpy(hash, a->last, AUDIT_HASH_HEX + 1);
	pthread_mutex_unlock(&a->mu);
}

/* Verification. */

struct verify {
	struct audit_verdict *v;
	char prev[AUDIT_HASH_HEX + 1];  /* the stored hash of the line before */
	uint64_t prev_seq;
	char line_hash[AUDIT_HASH_HEX + 1]; /* of the line numbered head seq */
};

static void
problem(struct verify *vf, uint64_t lineno, const char *why)
{
	struct audit_verdict *v = vf->v;

	if (v->first_bad == 0)
		v->first_bad = lineno;
	if (v->n_problems < (int)(sizeof(v->problems) / sizeof(v->problems[0])))
		snprintf(v->problems[v->n_problems++], sizeof(v->problems[0]), "line %" PRIu64 ": %s",
		    lineno, why);
}

static int
verify_line(void *arg, uint64_t lineno, const char *s, size_t len)
{
	struct verify *vf = arg;
	struct line l;
	char why[128];
	uint64_t seq;

	vf->v->lines = lineno;
	if (line_parse(s, len, &l, why, sizeof(why)) != 0) {
		problem(vf, lineno, why);
		/* Chain on past it: the next line then fails its link. */
		memcpy(vf->prev, "?", 2);
		vf->prev_seq++;
		return 0;
	}
	seq = (uint64_t)json_integer_value(json_object_get(l.j, "seq"));
	if (!l.hash_ok)
		problem(vf, lineno, "its hash does not match its content (edited)");
	else if (strcmp(json_string_value(json_object_get(l.j, "prev")), vf->prev) != 0)
		problem(vf, lineno, "it does not follow the line before "
		    "(a line was removed, inserted or reordered here)");
	else if (seq != vf->prev_seq + 1)
		problem(vf, lineno, "its seq does not follow the line before");
	memcpy(vf->prev, l.hash, sizeof(vf->prev));
	vf->prev_seq = seq;
	memcpy(vf->line_hash, l.hash, sizeof(vf->line_hash));
	json_decref(l.j);
	return 0;
}

int
audit_verify(struct audit *a, struct audit_verdict *v, char *err, size_t err_len)
{
	struct verify vf = { .v = v };
	uint64_t head_seq;
	char why[160];

	memset(v, 0, sizeof(*v));
	memcpy(vf.prev, zero_hash, sizeof(vf.prev));
	head_get(a, &head_seq, v->head);
	if (lines_each(a, head_seq, verify_line, &vf, err, err_len) != 0)
		return -1;
	if (v->lines < head_seq) {
		snprintf(why, sizeof(why), "missing: the log ends at line %" PRIu64
		    " but %" PRIu64 " lines were written", v->lines, head_seq);
		problem(&vf, v->lines + 1, why);
	} else if (head_seq > 0 && strcmp(vf.line_hash, v->head) != 0 && v->first_bad == 0) {
		problem(&vf, head_seq, "its hash is not the head's (the end was rewritten)");
	}
	return 0;
}

/* Listing. */

struct lister {
	const struct audit_filter *f;
	json_t **ring;                /* the last f->limit matches */
	uint64_t n;
};

static int
list_line(void *arg, uint64_t lineno, const char *s, size_t len)
{
	struct lister *ls = arg;
	const struct audit_filter *f = ls->f;
	const char *action;
	struct line l;
	char why[64];
	size_t alen;

	(void)lineno;
	if (line_parse(s, len, &l, why, sizeof(why)) != 0)
		return 0;
	action = json_string_value(json_object_get(l.j, "action"));
	if (action == NULL ||
	    (f->uid >= 0 && json_integer_value(json_object_get(l.j, "uid")) != f->uid) ||
	    json_integer_value(json_object_get(l.j, "time")) < f->since) {
		json_decref(l.j);
		return 0;
	}
	if (f->action != NULL && f->action[0] != '\0') {
		alen = strlen(f->action);
		if (f->action[alen - 1] == '.' ? strncmp(action, f->action, alen) != 0
		    : strcmp(action, f->action) != 0) {
			json_decref(l.j);
			return 0;
		}
	}
	json_decref(ls->ring[ls->n % f->limit]);
	ls->ring[ls->n++ % f->limit] = l.j;
	return 0;
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

int
audit_list(struct audit *a, const struct audit_filter *f,
    int (*fn)(void *arg, const Ft__AuditEntry *e), void *arg, char *err, size_t err_len)
{
	struct lister ls = { .f = f };
	uint64_t head_seq, first, count;
	char head[AUDIT_HASH_HEX + 1];
	int rc = 0;

	if (f->limit == 0 || (ls.ring = calloc(f->limit, sizeof(*ls.ring))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	head_get(a, &head_seq, head);
	if (lines_each(a, head_seq, list_line, &ls, err, err_len) != 0)
		rc = -1;
	count = ls.n < f->limit ? ls.n : f->limit;
	first = ls.n - count;
	for (uint64_t i = 0; i < count && rc == 0; i++) {
		const json_t *o = ls.ring[(first + i) % f->limit];
		Ft__AuditEntry e = FT__AUDIT_ENTRY__INIT;

		e.seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
		e.time = json_integer_value(json_object_get(o, "time"));
		e.uid = (uint32_t)json_integer_value(json_object_get(o, "uid"));
		e.admin = json_is_true(json_object_get(o, "admin"));
		e.action = (char *)jstr(o, "action");
		e.object = (char *)jstr(o, "object");
		e.outcome = (char *)jstr(o, "outcome");
		e.message = (char *)jstr(o, "message");
		e.request_id = (uint64_t)json_integer_value(json_object_get(o, "request_id"));
		if (fn(arg, &e) != 0) {
			snprintf(err, err_len, "out of memory");
			rc = -1;
		}
	}
	for (uint32_t i = 0; i < f->limit; i++)
		json_decref(ls.ring[i]);
	free(ls.ring);
	return rc;
}

/* What the log records of each state-changing RPC: the action's name and
 * the object, from the reply when the request created it. */

static const char *objf(struct rpc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An object's name in call memory; "" when out of memory. */
static const char *
objf(struct rpc_call *call, const char *fmt, ...)
{
	char buf[AUDIT_FIELD_MAX + 64];
	const char *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s = rpc_strdup(call, buf);
	return s != NULL ? s : "";
}

static const char *
obj_model_import(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call;
	if (p->body_case == FT__REPLY__BODY_MODEL_IMPORT && p->model_import->model != NULL)
		return p->model_import->model->name;
	return q->model_import->name[0] ? q->model_import->name : q->model_import->path;
}

static const char *
obj_model_init(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call, (void)p;
	return q->model_init->name;
}

static const char *
obj_model_export(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	char w[FT_ENUM_WORD_MAX];
	const char *f = ft_enum_word(&ft__export_format__descriptor, q->model_export->format, w);

	(void)p;
	return objf(call, "%s as %s", q->model_export->name, f == NULL ? "?" : f[0] ? f : "hf");
}

static const char *
obj_model_remove(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call, (void)p;
	return q->model_remove->name;
}

static const char *
obj_data_commit(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	if (p->body_case == FT__REPLY__BODY_DATA_UPLOAD_COMMIT &&
	    p->data_upload_commit->dataset != NULL)
		return objf(call, "%s (%" PRId64 ")",
		    p->data_upload_commit->dataset->name, p->data_upload_commit->dataset->id);
	return q->data_upload_commit->name[0] ? q->data_upload_commit->name
	    : q->data_upload_commit->file_name;
}

static const char *
obj_data_remove(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call, (void)p;
	return q->data_remove->name;
}

static const char *
obj_job_submit(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	const Ft__JobSpec *s = q->job_submit->spec;

	if (p->body_case == FT__REPLY__BODY_JOB_SUBMIT && p->job_submit->job != NULL)
		return objf(call, "job %" PRId64, p->job_submit->job->id);
	return s != NULL ? objf(call, "%s on %s", s->base_model, s->data) : "";
}

static const char *
obj_job_cancel(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)p;
	return objf(call, "job %" PRId64, q->job_cancel->id);
}

static const char *
obj_eval_run(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	if (p->body_case == FT__REPLY__BODY_EVAL_RUN && p->eval_run->eval != NULL)
		return objf(call, "eval %" PRId64, p->eval_run->eval->id);
	return q->eval_run->spec != NULL ? q->eval_run->spec->data : "";
}

static const char *
obj_deploy_create(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	if (p->body_case == FT__REPLY__BODY_DEPLOY_CREATE && p->deploy_create->deploy != NULL)
		return objf(call, "%s (model %s)", p->deploy_create->deploy->name,
		    p->deploy_create->deploy->model);
	return q->deploy_create->model;
}

static const char *
obj_deploy_remove(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call, (void)p;
	return q->deploy_remove->name;
}

static const char *
obj_key_create(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call, (void)p;
	return q->key_create->name;
}

static const char *
obj_key_revoke(struct rpc_call *call, const Ft__Request *q, const Ft__Reply *p)
{
	(void)call, (void)p;
	return q->key_revoke->name;
}

static const struct audit_rpc_row {
	int body_case;
	const char *action;
	const char *(*object)(struct rpc_call *, const Ft__Request *, const Ft__Reply *);
} audited[] = {
	{ FT__REQUEST__BODY_MODEL_IMPORT, "model.import", obj_model_import },
	{ FT__REQUEST__BODY_MODEL_INIT, "model.init", obj_model_init },
	{ FT__REQUEST__BODY_MODEL_EXPORT, "model.export", obj_model_export },
	{ FT__REQUEST__BODY_MODEL_REMOVE, "model.remove", obj_model_remove },
	{ FT__REQUEST__BODY_DATA_UPLOAD_COMMIT, "data.add", obj_data_commit },
	{ FT__REQUEST__BODY_DATA_REMOVE, "data.remove", obj_data_remove },
	{ FT__REQUEST__BODY_JOB_SUBMIT, "job.submit", obj_job_submit },
	{ FT__REQUEST__BODY_JOB_CANCEL, "job.cancel", obj_job_cancel },
	{ FT__REQUEST__BODY_EVAL_RUN, "eval.run", obj_eval_run },
	{ FT__REQUEST__BODY_DEPLOY_CREATE, "deploy.create", obj_deploy_create },
	{ FT__REQUEST__BODY_DEPLOY_REMOVE, "deploy.remove", obj_deploy_remove },
	{ FT__REQUEST__BODY_KEY_CREATE, "key.create", obj_key_create },
	{ FT__REQUEST__BODY_KEY_REVOKE, "key.revoke", obj_key_revoke },
};

void
audit_rpc(struct rpc_call *call, const Ft__Request *req, const Ft__Reply *rep, int code)
{
	struct audit_event ev;

	if (call->d->audit == NULL)
		return;
	for (size_t i = 0; i < sizeof(audited) / sizeof(audited[0]); i++) {
		if (audited[i].body_case != (int)req->body_case)
			continue;
		/* Validating only stores nothing. */
		if (req->body_case == FT__REQUEST__BODY_DATA_UPLOAD_COMMIT &&
		    req->data_upload_commit->validate_only)
			return;
		ev = (struct audit_event){
			.uid = call->uid, .admin = rpc_caller_is_admin(call), .action = audited[i].action,
			.object = audited[i].object(call, req, rep), .outcome = ft_code_name(code),
			.message = code != FT__CODE__OK ? rep->message : NULL,
			.request_id = call->request_id,
		};
		audit_append(call->d->audit, &ev);
		return;
	}
}
