/*
 * rpc.c - control socket server and request dispatch.
 *
 * DESIGN: one nng rep0 socket, cfg.rpc_contexts contexts, each a two-state
 * machine (receive, then send) driven by its aio callback, as in nng's
 * demo/async server.  A slow handler therefore holds only its own context.
 * Every request is decoded by ft_wire (version and RPC checked), tied to the
 * peer's Unix uid from the IPC transport, looked up in the dispatch table
 * by its oneof case, and answered with exactly one reply.  Messages larger
 * than rpc_max_message are refused by nng itself, which closes the pipe.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "auth.h"
#include "log.h"
#include "rpc.h"

/* Dispatch table: one row per RPC. */
#define RPC_WRITE 0x1 /* changes state: logged at info level */

static const struct rpc_method {
	int body_case;
	const char *name;
	rpc_handler fn;
	int flags;
} methods[] = {
	{ FT__REQUEST__BODY_PING, "Ping", rpc_ping, 0 },
	{ FT__REQUEST__BODY_STATUS, "Status", rpc_status, 0 },
	{ FT__REQUEST__BODY_MODEL_IMPORT, "ModelImport", rpc_model_import, RPC_WRITE },
	{ FT__REQUEST__BODY_MODEL_LIST, "ModelList", rpc_model_list, 0 },
	{ FT__REQUEST__BODY_MODEL_SHOW, "ModelShow", rpc_model_show, 0 },
	{ FT__REQUEST__BODY_MODEL_REMOVE, "ModelRemove", rpc_model_remove, RPC_WRITE },
	{ FT__REQUEST__BODY_MODEL_INIT, "ModelInit", rpc_model_init, RPC_WRITE },
	{ FT__REQUEST__BODY_MODEL_EXPORT, "ModelExport", rpc_model_export, RPC_WRITE },
	{ FT__REQUEST__BODY_DATA_ADD, "DataAdd", rpc_data_add, RPC_WRITE },
	{ FT__REQUEST__BODY_DATA_VALIDATE, "DataValidate", rpc_data_validate, 0 },
	{ FT__REQUEST__BODY_DATA_LIST, "DataList", rpc_data_list, 0 },
	{ FT__REQUEST__BODY_DATA_SHOW, "DataShow", rpc_data_show, 0 },
	{ FT__REQUEST__BODY_DATA_REMOVE, "DataRemove", rpc_data_remove, RPC_WRITE },
	{ FT__REQUEST__BODY_JOB_SUBMIT, "JobSubmit", rpc_job_submit, RPC_WRITE },
	{ FT__REQUEST__BODY_JOB_LIST, "JobList", rpc_job_list, 0 },
	{ FT__REQUEST__BODY_JOB_SHOW, "JobShow", rpc_job_show, 0 },
	{ FT__REQUEST__BODY_JOB_CANCEL, "JobCancel", rpc_job_cancel, RPC_WRITE },
	{ FT__REQUEST__BODY_JOB_METRICS, "JobMetrics", rpc_job_metrics, 0 },
	{ FT__REQUEST__BODY_JOB_LOGS, "JobLogs", rpc_job_logs, 0 },
	{ FT__REQUEST__BODY_EVAL_RUN, "EvalRun", rpc_eval_run, RPC_WRITE },
	{ FT__REQUEST__BODY_EVAL_SHOW, "EvalShow", rpc_eval_show, 0 },
	{ FT__REQUEST__BODY_EVAL_LIST, "EvalList", rpc_eval_list, 0 },
	{ FT__REQUEST__BODY_EVAL_EXPORT, "EvalExport", rpc_eval_export, 0 },
	{ FT__REQUEST__BODY_GENERATE, "Generate", rpc_generate, 0 },
	{ FT__REQUEST__BODY_GENERATE_POLL, "GeneratePoll", rpc_generate_poll, 0 },
	{ FT__REQUEST__BODY_GENERATE_CANCEL, "GenerateCancel", rpc_generate_cancel, 0 },
	{ FT__REQUEST__BODY_DEPLOY_CREATE, "DeployCreate", rpc_deploy_create, RPC_WRITE },
	{ FT__REQUEST__BODY_DEPLOY_LIST, "DeployList", rpc_deploy_list, 0 },
	{ FT__REQUEST__BODY_DEPLOY_REMOVE, "DeployRemove", rpc_deploy_remove, RPC_WRITE },
	{ FT__REQUEST__BODY_KEY_CREATE, "KeyCreate", rpc_key_create, RPC_WRITE },
	{ FT__REQUEST__BODY_KEY_LIST, "KeyList", rpc_key_list, 0 },
	{ FT__REQUEST__BODY_KEY_REVOKE, "KeyRevoke", rpc_key_revoke, RPC_WRITE },
};

struct rpc_mem {
	struct rpc_mem *next;
};

void *
rpc_alloc(struct rpc_call *call, size_t size)
{
	struct rpc_mem *m = calloc(1, sizeof(*m) + size);

	if (m == NULL)
		return NULL;
	m->next = call->mem;
	call->mem = m;
	return m + 1;
}

static void *
allocator_alloc(void *data, size_t size)
{
	return rpc_alloc(data, size);
}

static void
allocator_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr; /* freed with the call */
}

ProtobufCAllocator
rpc_allocator(struct rpc_call *call)
{
	return (ProtobufCAllocator){ allocator_alloc, allocator_free, call };
}

char *
rpc_strdup(struct rpc_call *call, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *p = rpc_alloc(call, n + 1);

	if (p != NULL && n > 0)
		memcpy(p, s, n);
	return p;
}

int
rpc_caller_is_admin(const struct rpc_call *call)
{
	const char *group = call->d->cfg.admin_group;
	struct passwd pw, *pwp;
	struct group gr, *grp;
	char buf[4096];

	if (call->uid == 0)
		return 1;
	if (group[0] == '\0' || getgrnam_r(group, &gr, buf, sizeof(buf), &grp) != 0 || grp == NULL)
		return 0;
	if (call->gid == grp->gr_gid)
		return 1;
	{
		gid_t gid = grp->gr_gid;
		char pbuf[4096];

		if (getpwuid_r((uid_t)call->uid, &pw, pbuf, sizeof(pbuf), &pwp) != 0 || pwp == NULL)
			return 0;
		if (pwp->pw_gid == gid)
			return 1;
		for (char **m = grp->gr_mem; *m; m++)
			if (strcmp(*m, pwp->pw_name) == 0)
				return 1;
	}
	return 0;
}

int
rpc_error(struct rpc_call *call, Ft__Reply *rep, int code, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n >= 0 && (s = rpc_alloc(call, (size_t)n + 1)) != NULL) {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
		rep->message = s;
	}
	return code;
}

static const struct rpc_method *
method_find(int body_case)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].body_case == body_case)
			return &methods[i];
	return NULL;
}

int
rpc_dispatch(struct ftuned *d, uint64_t uid, uint64_t gid, uint64_t pid,
    const void *msg, size_t len, uint8_t **out, size_t *out_len)
{
	struct rpc_call call = { .d = d, .uid = uid, .gid = gid, .pid = pid };
	const struct rpc_method *m = NULL;
	Ft__Reply rep = FT__REPLY__INIT;
	Ft__Request *req = NULL;
	uint64_t t0 = ftuned_now_ms();
	char why[256];
	int code, rc;

	rep.protocol_version = FT_PROTOCOL_VERSION;
	code = ft_request_decode(msg, len, &req, &rep.request_id, why, sizeof(why));
	if (code != FT__CODE__OK) {
		rpc_error(&call, &rep, code, "%s", why);
		log_warn("rpc: uid %llu: %s", (unsigned long long)uid, why);
	} else if ((m = method_find(req->body_case)) == NULL) {
		/* Known to the wire but not served by this build. */
		code = rpc_error(&call, &rep, FT__CODE__INVALID_ARGUMENT,
		    "RPC %d is not served by this daemon", (int)req->body_case);
	} else {
		call.request_id = req->request_id;
		code = m->fn(&call, req, &rep);
		if (code != FT__CODE__OK)
			rep.body_case = FT__REPLY__BODY__NOT_SET;
		if ((m->flags & RPC_WRITE) || code != FT__CODE__OK)
			log_info("rpc %s uid %llu: %s%s%s (%llu ms)", m->name,
			    (unsigned long long)uid, ft_code_name(code),
			    rep.message[0] ? ": " : "", rep.message,
			    (unsigned long long)(ftuned_now_ms() - t0));
		else
			log_debug("rpc %s uid %llu: OK (%llu ms)", m->name,
			    (unsigned long long)uid,
			    (unsigned long long)(ftuned_now_ms() - t0));
	}
	rep.code = (Ft__Code)code;
	rc = ft_reply_encode(&rep, out, out_len);
	ft_request_free(req);
	while (call.mem != NULL) {
		struct rpc_mem *next = call.mem->next;

		free(call.mem);
		call.mem = next;
	}
	return rc;
}

/* One context: receive a request, send its reply, repeat. */
struct rpc_ctx {
	enum { CTX_RECV, CTX_SEND } state;
	nng_ctx ctx;
	nng_aio *aio;
	struct rpc_server *srv;
};

struct rpc_server {
	struct ftuned *d;
	struct auth *auth;            /* signed requests over remote_listen */
	nng_socket sock;
	int n_ctx;
	struct rpc_ctx *ctxs;
};

/* An error reply for a request that never reached the dispatcher. */
static int
reply_error(int code, const char *message, uint8_t **out, size_t *out_len)
{
	Ft__Reply rep = FT__REPLY__INIT;

	rep.protocol_version = FT_PROTOCOL_VERSION;
	rep.code = (Ft__Code)code;
	rep.message = (char *)message;
	return ft_reply_encode(&rep, out, out_len);
}

/* Serves one message.  IPC peers are identified by their socket
 * credentials; TCP peers only by a valid signature (auth.c). */
static int
ctx_handle(struct rpc_server *srv, nng_msg *msg, uint8_t **out, size_t *out_len)
{
	nng_pipe p = nng_msg_get_pipe(msg);
	uint64_t uid = UINT64_MAX, gid = UINT64_MAX, pid = 0;
	nng_sockaddr sa;
	uint8_t *req;
	size_t req_len;
	char why[256];
	int code, rc;

	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 &&
	    (sa.s_family == NNG_AF_INET || sa.s_family == NNG_AF_INET6)) {
		if (srv->auth == NULL)
			return reply_error(FT__CODE__UNAUTHENTICATED, "remote access is off", out, out_len);
		code = auth_verify(srv->auth, nng_msg_body(msg), nng_msg_len(msg), &uid, &req,
		    &req_len, why, sizeof(why));
		if (code != FT__CODE__OK) {
			log_warn("rpc: remote request refused: %s", why);
			return reply_error(code, why, out, out_len);
		}
		rc = rpc_dispatch(srv->d, uid, gid, pid, req, req_len, out, out_len);
		free(req);
		return rc;
	}
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0)
		uid = UINT64_MAX;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_GID, &gid) != 0)
		gid = UINT64_MAX;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) != 0)
		pid = 0;
	return rpc_dispatch(srv->d, uid, gid, pid, nng_msg_body(msg), nng_msg_len(msg), out, out_len);
}

static void
ctx_serve(struct rpc_ctx *c, nng_msg *msg)
{
	uint8_t *out;
	size_t out_len;
	nng_msg *reply;

	if (ctx_handle(c->srv, msg, &out, &out_len) != 0) {
		log_error("rpc: out of memory, request dropped");
		nng_msg_free(msg);
		c->state = CTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	nng_msg_free(msg);
	if (nng_msg_alloc(&reply, 0) != 0 || nng_msg_append(reply, out, out_len) != 0) {
		log_error("rpc: out of memory, reply dropped");
		free(out);
		c->state = CTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	free(out);
	nng_aio_set_msg(c->aio, reply);
	c->state = CTX_SEND;
	nng_ctx_send(c->ctx, c->aio);
}

static void
ctx_cb(void *arg)
{
	struct rpc_ctx *c = arg;
	int rv = nng_aio_result(c->aio);

	switch (c->state) {
	case CTX_RECV:
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		if (rv != 0) {
			log_warn("rpc: receive: %s", nng_strerror(rv));
			nng_ctx_recv(c->ctx, c->aio);
			return;
		}
		ctx_serve(c, nng_aio_get_msg(c->aio));
		return;
	case CTX_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
		}
		c->state = CTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
}

int
rpc_server_start(struct ftuned *d, struct rpc_server **out, char *err, size_t err_len)
{
	struct rpc_server *srv;
	nng_listener l;
	int rv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL ||
	    (srv->ctxs = calloc(d->cfg.rpc_contexts, sizeof(*srv->ctxs))) == NULL) {
		free(srv);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	srv->d = d;
	if ((rv = nng_rep0_open(&srv->sock)) != 0 ||
	    (rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
	    (size_t)d->cfg.rpc_max_message)) != 0) {
		snprintf(err, err_len, "control socket: %s", nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_listener_create(&l, srv->sock, d->cfg.socket_url)) != 0) {
		snprintf(err, err_len, "%s: %s", d->cfg.socket_url, nng_strerror(rv));
		goto fail;
	}
	/* Owner and group only: users in the daemon's group may connect. */
	if (strncmp(d->cfg.socket_url, "ipc://", 6) == 0 &&
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0660)) != 0) {
		snprintf(err, err_len, "%s: permissions: %s", d->cfg.socket_url, nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		snprintf(err, err_len, "listen on %s: %s", d->cfg.socket_url, nng_strerror(rv));
		goto fail;
	}
	if (d->cfg.remote_listen[0] != '\0') {
		if (auth_open(d->cfg.remote_keys, d->cfg.remote_max_skew, &srv->auth, err, err_len) != 0)
			goto fail;
		if ((rv = nng_listen(srv->sock, d->cfg.remote_listen, NULL, 0)) != 0) {
			snprintf(err, err_len, "listen on %s: %s", d->cfg.remote_listen, nng_strerror(rv));
			goto fail;
		}
		log_info("remote access on %s (signed requests only)", d->cfg.remote_listen);
	}
	for (int i = 0; i < d->cfg.rpc_contexts; i++) {
		struct rpc_ctx *c = &srv->ctxs[i];

		c->srv = srv;
		if ((rv = nng_aio_alloc(&c->aio, ctx_cb, c)) != 0) {
			snprintf(err, err_len, "control socket context: %s", nng_strerror(rv));
			goto fail;
		}
		srv->n_ctx = i + 1;
		if ((rv = nng_ctx_open(&c->ctx, srv->sock)) != 0) {
			snprintf(err, err_len, "control socket context: %s", nng_strerror(rv));
			goto fail;
		}
	}
	for (int i = 0; i < srv->n_ctx; i++) {
		srv->ctxs[i].state = CTX_RECV;
		nng_ctx_recv(srv->ctxs[i].ctx, srv->ctxs[i].aio);
	}
	*out = srv;
	return 0;
fail:
	rpc_server_stop(srv);
	return -1;
}

struct auth *
rpc_server_auth(struct rpc_server *srv)
{
	return srv->auth;
}

void
rpc_server_stop(struct rpc_server *srv)
{
	if (srv == NULL)
		return;
	for (int i = 0; i < srv->n_ctx; i++)
		nng_aio_stop(srv->ctxs[i].aio);
	nng_close(srv->sock);
	for (int i = 0; i < srv->n_ctx; i++)
		nng_aio_free(srv->ctxs[i].aio);
	auth_close(srv->auth);
	free(srv->ctxs);
	free(srv);
}
