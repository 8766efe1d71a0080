/*
 * rpc.c - control socket server and request dispatch.
 *
 * DESIGN: one nng rep0 socket, each context a two-state machine (receive,
 * then send) driven by its aio callback, as in nng's demo/async server.
 * Every request is decoded by ft_wire (version and RPC checked), tied to the
 * peer's Unix uid from the IPC transport (or to a signed key's uid over
 * remote_listen), looked up in the dispatch table by its oneof case, and
 * answered with exactly one reply.  Fast handlers run on nng's callback
 * thread; those marked RPC_SLOW run on rpc_pool's workers, and there are
 * rpc_contexts contexts beyond those the pool can hold, so fast requests
 * always find one.  Messages larger than rpc_max_message (remote_max_message
 * on TCP) are refused by nng itself, which closes the pipe; rpc_conn.c
 * bounds the pipes.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "audit.h"
#include "auth.h"
#include "log.h"
#include "rpc.h"
#include "rpc_conn.h"
#include "rpc_pool.h"

/* Dispatch table: one row per RPC. */
#define RPC_WRITE 0x1 /* changes state: logged at info level */
#define RPC_SLOW 0x2  /* may take seconds: runs on a worker (rpc_pool.h) */

static const struct rpc_method {
	int body_case;
	const char *name;
	rpc_handler fn;
	int flags;
} methods[] = {
	{ FT__REQUEST__BODY_PING, "Ping", rpc_ping, 0 },
	{ FT__REQUEST__BODY_STATUS, "Status", rpc_status, 0 },
	{ FT__REQUEST__BODY_MODEL_IMPORT, "ModelImport", rpc_model_import, RPC_WRITE | RPC_SLOW },
	{ FT__REQUEST__BODY_MODEL_LIST, "ModelList", rpc_model_list, 0 },
	{ FT__REQUEST__BODY_MODEL_SHOW, "ModelShow", rpc_model_show, 0 },
	{ FT__REQUEST__BODY_MODEL_REMOVE, "ModelRemove", rpc_model_remove, RPC_WRITE },
	{ FT__REQUEST__BODY_MODEL_INIT, "ModelInit", rpc_model_init, RPC_WRITE | RPC_SLOW },
	{ FT__REQUEST__BODY_MODEL_EXPORT, "ModelExport", rpc_model_export, RPC_WRITE | RPC_SLOW },
	{ FT__REQUEST__BODY_DATA_LIST, "DataList", rpc_data_list, 0 },
	{ FT__REQUEST__BODY_DATA_SHOW, "DataShow", rpc_data_show, RPC_SLOW },
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
	{ FT__REQUEST__BODY_EVAL_EXPORT, "EvalExport", rpc_eval_export, RPC_SLOW },
	{ FT__REQUEST__BODY_GENERATE, "Generate", rpc_generate, RPC_SLOW },
	{ FT__REQUEST__BODY_GENERATE_POLL, "GeneratePoll", rpc_generate_poll, 0 },
	{ FT__REQUEST__BODY_GENERATE_CANCEL, "GenerateCancel", rpc_generate_cancel, 0 },
	{ FT__REQUEST__BODY_DEPLOY_CREATE, "DeployCreate", rpc_deploy_create, RPC_WRITE },
	{ FT__REQUEST__BODY_DEPLOY_LIST, "DeployList", rpc_deploy_list, 0 },
	{ FT__REQUEST__BODY_DEPLOY_REMOVE, "DeployRemove", rpc_deploy_remove, RPC_WRITE },
	{ FT__REQUEST__BODY_KEY_CREATE, "KeyCreate", rpc_key_create, RPC_WRITE },
	{ FT__REQUEST__BODY_KEY_LIST, "KeyList", rpc_key_list, 0 },
	{ FT__REQUEST__BODY_KEY_REVOKE, "KeyRevoke", rpc_key_revoke, RPC_WRITE },
	{ FT__REQUEST__BODY_DATA_UPLOAD_BEGIN, "DataUploadBegin", rpc_data_upload_begin, RPC_WRITE },
	{ FT__REQUEST__BODY_DATA_UPLOAD_CHUNK, "DataUploadChunk", rpc_data_upload_chunk, 0 },
	{ FT__REQUEST__BODY_DATA_UPLOAD_STATUS, "DataUploadStatus", rpc_data_upload_status, 0 },
	{ FT__REQUEST__BODY_DATA_UPLOAD_COMMIT, "DataUploadCommit", rpc_data_upload_commit,
	  RPC_WRITE | RPC_SLOW },
	{ FT__REQUEST__BODY_AUDIT_LIST, "AuditList", rpc_audit_list, RPC_SLOW },
	{ FT__REQUEST__BODY_AUDIT_VERIFY, "AuditVerify", rpc_audit_verify, RPC_SLOW },
};

void *
rpc_alloc(struct rpc_call *call, size_t size)
{
	return arena_alloc(&call->mem, size);
}

ProtobufCAllocator
rpc_allocator(struct rpc_call *call)
{
	return arena_allocator(&call->mem);
}

char *
rpc_strdup(struct rpc_call *call, const char *s)
{
	return arena_strdup(&call->mem, s);
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

/* One request between its message and its reply. */
struct rpc_req {
	struct rpc_call call;
	const struct rpc_method *m;   /* NULL: refused before a handler */
	Ft__Request *req;
	Ft__Reply rep;
	int code;
	uint64_t t0;
};

/* An empty request for the peer, with an OK reply to fill. */
static void
req_init(struct rpc_req *r, struct ftuned *d, uint64_t uid, uint64_t gid, uint64_t pid)
{
	memset(r, 0, sizeof(*r));
	r->call = (struct rpc_call){ .d = d, .uid = uid, .gid = gid, .pid = pid };
	r->rep = (Ft__Reply)FT__REPLY__INIT;
	r->rep.protocol_version = FT_PROTOCOL_VERSION;
	r->t0 = ftuned_now_ms();
}

/* Decodes msg for the peer; 1 when a handler is to run, 0 when r already
 * holds the refusal. */
static int
req_begin(struct rpc_req *r, struct ftuned *d, uint64_t uid, uint64_t gid, uint64_t pid,
    const void *msg, size_t len)
{
	char why[256];

	req_init(r, d, uid, gid, pid);
	r->code = ft_request_decode(msg, len, &r->req, &r->rep.request_id, why, sizeof(why));
	if (r->code != FT__CODE__OK) {
		rpc_error(&r->call, &r->rep, r->code, "%s", why);
		log_warn("rpc: uid %llu: %s", (unsigned long long)uid, why);
		return 0;
	}
	if ((r->m = method_find(r->req->body_case)) == NULL) {
		/* Known to the wire but not served by this build. */
		r->code = rpc_error(&r->call, &r->rep, FT__CODE__INVALID_ARGUMENT,
		    "RPC %d is not served by this daemon", (int)r->req->body_case);
		return 0;
	}
	r->call.request_id = r->req->request_id;
	return 1;
}

/* A streamed Generate only opens a session (genstream.c does the work). */
static int
req_is_slow(const struct rpc_req *r)
{
	return (r->m->flags & RPC_SLOW) &&
	    !(r->req->body_case == FT__REQUEST__BODY_GENERATE && r->req->generate->stream);
}

static void
req_log(const struct rpc_req *r)
{
	const struct rpc_method *m = r->m;
	unsigned long long uid = (unsigned long long)r->call.uid;
	unsigned long long ms = (unsigned long long)(ftuned_now_ms() - r->t0);

	if ((m->flags & RPC_WRITE) || r->code != FT__CODE__OK)
		log_info("rpc %s uid %llu: %s%s%s (%llu ms)", m->name, uid, ft_code_name(r->code),
		    r->rep.message[0] ? ": " : "", r->rep.message, ms);
	else
		log_debug("rpc %s uid %llu: OK (%llu ms)", m->name, uid, ms);
}

static void
req_run(struct rpc_req *r)
{
	r->code = r->m->fn(&r->call, r->req, &r->rep);
	if (r->m->flags & RPC_WRITE)
		audit_rpc(&r->call, r->req, &r->rep, r->code);
	if (r->code != FT__CODE__OK)
		r->rep.body_case = FT__REPLY__BODY__NOT_SET;
	req_log(r);
}

/* Encodes the reply and frees the request: 0, or -1 when out of memory. */
static int
req_finish(struct rpc_req *r, uint8_t **out, size_t *out_len)
{
	int rc;

	r->rep.code = (Ft__Code)r->code;
	rc = ft_reply_encode(&r->rep, out, out_len);
	ft_request_free(r->req);
	r->req = NULL;
	arena_release(&r->call.mem);
	return rc;
}

int
rpc_dispatch(struct ftuned *d, uint64_t uid, uint64_t gid, uint64_t pid,
    const void *msg, size_t len, uint8_t **out, size_t *out_len)
{
	struct rpc_req r;

	if (req_begin(&r, d, uid, gid, pid, msg, len))
		req_run(&r);
	return req_finish(&r, out, out_len);
}

/* One context: receive a request, send its reply, repeat. */
struct rpc_ctx {
	enum { CTX_RECV, CTX_SEND } state;
	nng_ctx ctx;
	nng_aio *aio;
	nng_pipe pipe;                /* the request's */
	struct rpc_req r;
	struct rpc_server *srv;
};

struct rpc_server {
	struct ftuned *d;
	struct auth *auth;            /* signed requests over remote_listen */
	nng_socket sock;
	nng_listener tcp;             /* remote_listen; id 0 when off */
	nng_listener ipc;             /* the control socket */
	pthread_t watch;              /* listener_watch, when the socket is ipc:// */
	int watching;
	pthread_mutex_t watch_lock;   /* guards stop */
	pthread_cond_t watch_wake;
	int stop;
	struct rpc_conns *conns;
	struct rpc_pool *pool;
	int n_ctx;
	struct rpc_ctx *ctxs;
};

/* Refuses c's request with code before any handler ran. */
static void
ctx_refuse(struct rpc_ctx *c, int code, const char *why)
{
	struct rpc_req *r = &c->r;

	r->code = rpc_error(&r->call, &r->rep, code, "%s", why);
}

/* Decodes msg into c->r: IPC peers are identified by their socket
 * credentials, TCP peers only by a valid signature (auth.c).  1 when a
 * handler is to run. */
static int
ctx_begin(struct rpc_ctx *c, nng_msg *msg)
{
	struct rpc_server *srv = c->srv;
	nng_pipe p = nng_msg_get_pipe(msg);
	uint64_t uid = UINT64_MAX, gid = UINT64_MAX, pid = 0;
	uint8_t *req;
	size_t req_len;
	char why[256];
	int code, run;

	if (nng_listener_id(srv->tcp) > 0 &&
	    nng_listener_id(nng_pipe_listener(p)) == nng_listener_id(srv->tcp)) {
		req_init(&c->r, srv->d, uid, gid, pid);
		if (srv->auth == NULL) {
			ctx_refuse(c, FT__CODE__UNAUTHENTICATED, "remote access is off");
			return 0;
		}
		code = auth_verify(srv->auth, nng_msg_body(msg), nng_msg_len(msg), &uid, &req,
		    &req_len, why, sizeof(why));
		if (code != FT__CODE__OK) {
			log_warn("rpc: remote request refused: %s", why);
			ctx_refuse(c, code, why);
			return 0;
		}
		run = req_begin(&c->r, srv->d, uid, gid, pid, req, req_len);
		free(req);
		return run;
	}
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0)
		uid = UINT64_MAX;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_GID, &gid) != 0)
		gid = UINT64_MAX;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) != 0)
		pid = 0;
	return req_begin(&c->r, srv->d, uid, gid, pid, nng_msg_body(msg), nng_msg_len(msg));
}

/* Sends c's reply (from any thread: a callback or a worker). */
static void
ctx_reply(struct rpc_ctx *c)
{
	uint8_t *out;
	size_t out_len;
	nng_msg *reply = NULL;

	if (req_finish(&c->r, &out, &out_len) != 0) {
		log_error("rpc: out of memory, request dropped");
		out = NULL;
	} else if (nng_msg_alloc(&reply, 0) != 0 || nng_msg_append(reply, out, out_len) != 0) {
		log_error("rpc: out of memory, reply dropped");
		nng_msg_free(reply);
		reply = NULL;
	}
	free(out);
	rpc_conns_idle(c->srv->conns, c->pipe);
	if (reply == NULL) {
		c->state = CTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	nng_aio_set_msg(c->aio, reply);
	c->state = CTX_SEND;
	nng_ctx_send(c->ctx, c->aio);
}

static void
ctx_slow(void *arg, int cancelled)
{
	struct rpc_ctx *c = arg;

	if (cancelled)
		ctx_refuse(c, FT__CODE__UNAVAILABLE, "ftuned is stopping");
	else
		req_run(&c->r);
	ctx_reply(c);
}

static void
ctx_serve(struct rpc_ctx *c, nng_msg *msg)
{
	char why[256];
	int run;

	c->pipe = nng_msg_get_pipe(msg);
	rpc_conns_busy(c->srv->conns, c->pipe);
	run = ctx_begin(c, msg);
	nng_msg_free(msg);
	if (run && req_is_slow(&c->r)) {
		if (rpc_pool_submit(c->srv->pool, c->r.call.uid, ctx_slow, c, why, sizeof(why)) == 0)
			return;
		c->r.code = rpc_error(&c->r.call, &c->r.rep, FT__CODE__RESOURCE_EXHAUSTED, "%s", why);
		req_log(&c->r);
	} else if (run) {
		req_run(&c->r);
	}
	ctx_reply(c);
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

/* nng 1.5.2 (Debian 12's) stops accepting on a listener for good once a
 * peer disconnects during the SP handshake (nng issue #1518, fixed in
 * 1.6.0): twenty connect-and-close calls by any member of the group
 * silenced the control socket for everyone.  So a thread pings the
 * socket every second as a client would, and when two pings in a row get
 * no reply, starts the listener again. */
#define WATCH_PROBE_MS 1000

/* 1 when the control socket answers a Ping within WATCH_PROBE_MS, as a
 * client on a fresh connection would see it. */
static int
listener_answers(const char *url)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__PingRequest ping = FT__PING_REQUEST__INIT;
	nng_socket s;
	nng_msg *m = NULL;
	uint8_t *buf;
	size_t len;
	int ok = 0;

	req.protocol_version = FT_PROTOCOL_VERSION;
	req.body_case = FT__REQUEST__BODY_PING;
	req.ping = &ping;
	if (ft_request_encode(&req, &buf, &len) != 0)
		return 1;       /* our own shortage, not the listener's */
	if (nng_req0_open(&s) != 0) {
		free(buf);
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, WATCH_PROBE_MS);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, WATCH_PROBE_MS);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK) == 0 && nng_send(s, buf, len, 0) == 0 &&
	    nng_recvmsg(s, &m, 0) == 0) {
		ok = 1;
		nng_msg_free(m);
	}
	nng_close(s);
	free(buf);
	return ok;
}

/* Closes the broken IPC listener and starts another on the same URL. */
static int
listener_restart(struct rpc_server *srv)
{
	const char *url = srv->d->cfg.socket_url;
	nng_listener l;
	int rv;

	nng_listener_close(srv->ipc);
	if ((rv = nng_listener_create(&l, srv->sock, url)) != 0 ||
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0660)) != 0) {
		log_error("rpc: %s: cannot listen again: %s", url, nng_strerror(rv));
		return -1;
	}
	rpc_conns_listener_set(srv->conns, RPC_CONN_IPC, l);
	if ((rv = nng_listener_start(l, 0)) != 0) {
		log_error("rpc: %s: cannot listen again: %s", url, nng_strerror(rv));
		nng_listener_close(l);
		return -1;
	}
	srv->ipc = l;
	return 0;
}

static void *
listener_watch(void *arg)
{
	struct rpc_server *srv = arg;
	struct timespec ts;
	int missed = 0;

	pthread_mutex_lock(&srv->watch_lock);
	while (!srv->stop) {
		pthread_mutex_unlock(&srv->watch_lock);
		missed = listener_answers(srv->d->cfg.socket_url) ? 0 : missed + 1;
		if (missed == 2) {
			log_warn("rpc: %s stopped accepting connections (a peer left during its "
			    "handshake: nng 1.5's listener bug); listening again", srv->d->cfg.socket_url);
			if (listener_restart(srv) == 0)
				missed = 0;
		}
		pthread_mutex_lock(&srv->watch_lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec++;
		while (!srv->stop && pthread_cond_timedwait(&srv->watch_wake, &srv->watch_lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&srv->watch_lock);
	return NULL;
}

/* Starts listener_watch for an ipc:// socket; 0, or -1 with err. */
static int
listener_watch_start(struct rpc_server *srv, char *err, size_t err_len)
{
	pthread_condattr_t ca;
	int rv;

	if (strncmp(srv->d->cfg.socket_url, "ipc://", 6) != 0)
		return 0;
	pthread_mutex_init(&srv->watch_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->watch_wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((rv = pthread_create(&srv->watch, NULL, listener_watch, srv)) != 0) {
		snprintf(err, err_len, "control socket watch: %s", strerror(rv));
		return -1;
	}
	srv->watching = 1;
	return 0;
}

int
rpc_server_start(struct ftuned *d, struct rpc_server **out, char *err, size_t err_len)
{
	const struct ft_config *cfg = &d->cfg;
	struct rpc_conn_limits lim[RPC_CONN_CLASSES] = {
		[RPC_CONN_IPC] = { .max = cfg->rpc_max_conns, .max_per_peer = cfg->rpc_max_conns_per_user,
		    .max_why = "rpc_max_conns reached", .per_peer_why = "rpc_max_conns_per_user reached" },
		[RPC_CONN_TCP] = { .max = cfg->remote_max_conns,
		    .max_per_peer = cfg->remote_max_conns_per_addr, .idle_s = cfg->remote_idle_timeout,
		    .max_why = "remote_max_conns reached",
		    .per_peer_why = "remote_max_conns_per_addr reached" },
	};
	struct rpc_server *srv;
	nng_listener l;
	int rv, n_ctx;

	/* Beyond rpc_contexts, one context for each slow request the pool can
	 * hold: those never take the contexts fast requests need. */
	n_ctx = cfg->rpc_contexts + cfg->rpc_slow_threads + cfg->rpc_slow_queue;
	if ((srv = calloc(1, sizeof(*srv))) == NULL ||
	    (srv->ctxs = calloc((size_t)n_ctx, sizeof(*srv->ctxs))) == NULL ||
	    rpc_pool_start(cfg->rpc_slow_threads, cfg->rpc_slow_queue, cfg->rpc_slow_per_user,
	    &srv->pool) != 0) {
		if (srv != NULL)
			free(srv->ctxs);
		free(srv);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	srv->d = d;
	if ((rv = nng_rep0_open(&srv->sock)) != 0 ||
	    (rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
	    (size_t)cfg->rpc_max_message)) != 0) {
		snprintf(err, err_len, "control socket: %s", nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_listener_create(&l, srv->sock, cfg->socket_url)) != 0) {
		snprintf(err, err_len, "%s: %s", cfg->socket_url, nng_strerror(rv));
		goto fail;
	}
	lim[RPC_CONN_IPC].listener = l;
	srv->ipc = l;
	/* Owner and group only: users in the daemon's group may connect. */
	if (strncmp(cfg->socket_url, "ipc://", 6) == 0 &&
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0660)) != 0) {
		snprintf(err, err_len, "%s: permissions: %s", cfg->socket_url, nng_strerror(rv));
		goto fail;
	}
	if (cfg->remote_listen[0] != '\0') {
		/* config.c's check made sure it is tcp:// */
		if (auth_open(cfg->remote_keys, cfg->remote_max_skew, &srv->auth, err, err_len) != 0)
			goto fail;
		/* Smaller than the socket's: nobody is known before the signature,
		 * and nng allocates what a message's header announces. */
		if ((rv = nng_listener_create(&srv->tcp, srv->sock, cfg->remote_listen)) != 0 ||
		    (rv = nng_listener_set_size(srv->tcp, NNG_OPT_RECVMAXSZ,
		    (size_t)cfg->remote_max_message)) != 0) {
			snprintf(err, err_len, "remote_listen %s: %s", cfg->remote_listen, nng_strerror(rv));
			goto fail;
		}
		lim[RPC_CONN_TCP].listener = srv->tcp;
	}
	if (rpc_conns_open(srv->sock, lim, &srv->conns, err, err_len) != 0)
		goto fail;
	if ((rv = nng_listener_start(l, 0)) != 0) {
		snprintf(err, err_len, "listen on %s: %s", cfg->socket_url, nng_strerror(rv));
		goto fail;
	}
	if (nng_listener_id(srv->tcp) > 0) {
		if ((rv = nng_listener_start(srv->tcp, 0)) != 0) {
			snprintf(err, err_len, "listen on %s: %s", cfg->remote_listen, nng_strerror(rv));
			goto fail;
		}
		log_info("remote access on %s (signed requests only)", cfg->remote_listen);
	}
	for (int i = 0; i < n_ctx; i++) {
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
	if (listener_watch_start(srv, err, err_len) != 0)
		goto fail;
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

/* Workers first: they finish their handlers and hand the replies to
 * contexts that are still running (which refuse slow requests from then
 * on); the pool is freed once no context runs. */
void
rpc_server_stop(struct rpc_server *srv)
{
	if (srv == NULL)
		return;
	if (srv->watching) {
		pthread_mutex_lock(&srv->watch_lock);
		srv->stop = 1;
		pthread_cond_signal(&srv->watch_wake);
		pthread_mutex_unlock(&srv->watch_lock);
		pthread_join(srv->watch, NULL);
	}
	if (srv->pool != NULL)
		rpc_pool_stop(srv->pool);
	for (int i = 0; i < srv->n_ctx; i++)
		nng_aio_stop(srv->ctxs[i].aio);
	nng_close(srv->sock);
	rpc_pool_free(srv->pool);
	rpc_conns_close(srv->conns);
	for (int i = 0; i < srv->n_ctx; i++)
		nng_aio_free(srv->ctxs[i].aio);
	auth_close(srv->auth);
	free(srv->ctxs);
	free(srv);
}
