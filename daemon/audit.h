/*
 * audit.h - the audit log: who did what, one hash-chained JSON line per
 * state-changing request, in STATE_DIR/audit.log.
 *
 * Each line is {"seq":N,"time":T,"uid":U,"admin":B,"action":A,"object":O,
 * "outcome":C,"message":M,"request_id":R,"prev":P,"hash":H} where P is the
 * previous line's H (64 zeros for the first) and H is the BLAKE2b-256 of
 * everything before ',"hash"' (so of P and the line's content).  The file is
 * opened O_APPEND and every line is fsync'd before the request is answered.
 * STATE_DIR/audit.head holds the last seq and hash, so that lines cut off
 * the end are found too.  The chain is not keyed: whoever can write the
 * state directory can rewrite the whole log consistently; keep the head
 * that audit_verify returns somewhere else to detect that.
 */
#ifndef FT_AUDIT_H
#define FT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "ft.pb-c.h"

#define AUDIT_HASH_HEX 64

struct audit;

/* audit_open opens (creating, mode 0640) the log in state_dir and resumes
 * its chain.  Returns 0 and sets *out, or -1 with a message in err. */
int audit_open(const char *state_dir, struct audit **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* audit_close frees a; NULL is allowed. */
void audit_close(struct audit *a);

struct audit_event {
	uint64_t uid;
	int admin;
	const char *action;           /* "job.submit" */
	const char *object;           /* may be NULL */
	const char *outcome;          /* a Code name */
	const char *message;          /* may be NULL */
	uint64_t request_id;
};

/* audit_append writes and syncs one line.  Returns 0, or -1 (logged) when
 * the line could not be written; the chain then continues from the last
 * line that was.  a may be NULL (no log: tests). */
int audit_append(struct audit *a, const struct audit_event *ev);

/* audit_rpc records a state-changing request and its outcome, if body_case
 * is one the log records (audit.c's table names the action and object). */
struct rpc_call;
void audit_rpc(struct rpc_call *call, const Ft__Request *req, const Ft__Reply *rep, int code);

struct audit_filter {
	int64_t uid;                  /* -1: everyone */
	const char *action;           /* NULL: all; "x." matches a prefix */
	int64_t since;                /* Unix seconds */
	uint32_t limit;               /* the last N matching */
};

/* audit_list calls fn for the last f->limit lines matching f, oldest
 * first.  Returns 0, or -1 with a message in err. */
int audit_list(struct audit *a, const struct audit_filter *f,
    int (*fn)(void *arg, const Ft__AuditEntry *e), void *arg, char *err, size_t err_len);

struct audit_verdict {
	uint64_t lines;
	uint64_t first_bad;           /* 0: the chain holds */
	char head[AUDIT_HASH_HEX + 1];
	char problems[8][160];
	int n_problems;
};

/* audit_verify checks every line up to the current head: its own hash,
 * its link to the line before, its seq, and that no line is missing at
 * the end.  Returns 0 with the verdict, or -1 with a message in err when
 * the log cannot be read. */
int audit_verify(struct audit *a, struct audit_verdict *v, char *err, size_t err_len);

#endif
