/*
 * rpc.h - the control socket: an nng rep0 socket served by several
 * contexts, and the dispatch table that maps each request to its handler.
 *
 * Handlers run on nng's callback threads and must finish in milliseconds,
 * unless their row in the dispatch table is marked RPC_SLOW: those run on
 * the bounded workers of rpc_pool.h; longer work is queued as a job.  A
 * handler borrows the request, fills the reply, and allocates whatever the
 * reply points to with rpc_alloc, which is freed after the reply is sent.
 */
#ifndef FT_RPC_H
#define FT_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "ft_wire.h"
#include "ftuned.h"

struct rpc_call {
	struct ftuned *d;
	uint64_t uid;                 /* peer credentials from the IPC socket */
	uint64_t gid;
	uint64_t pid;
	uint64_t request_id;          /* the client's id, for idempotent writes */
	struct arena mem;             /* allocations freed after the reply */
};

/* A handler returns an FT__CODE__*; on error it sets the reply message with
 * rpc_error. */
typedef int (*rpc_handler)(struct rpc_call *call, const Ft__Request *req,
    Ft__Reply *rep);

/* rpc_alloc returns zeroed memory that lives until the reply is sent, or
 * NULL when out of memory. */
void *rpc_alloc(struct rpc_call *call, size_t size);

/* rpc_allocator returns a protobuf-c allocator drawing on rpc_alloc, for
 * messages unpacked into a reply (freed with the call, never one by one). */
ProtobufCAllocator rpc_allocator(struct rpc_call *call);

/* rpc_strdup copies s into call memory ("" for NULL); NULL when out of
 * memory. */
char *rpc_strdup(struct rpc_call *call, const char *s);

/* rpc_caller_is_admin is 1 for root and members of cfg.admin_group. */
int rpc_caller_is_admin(const struct rpc_call *call);

/* rpc_error formats the reply's message and returns code. */
int rpc_error(struct rpc_call *call, Ft__Reply *rep, int code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Handlers (rpc_<service>.c). */
int rpc_ping(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_status(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_model_import(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_model_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_model_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_model_remove(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_model_init(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_model_export(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_upload_begin(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_upload_chunk(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_upload_status(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_upload_commit(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_data_remove(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_job_submit(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_job_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_job_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_job_cancel(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_job_metrics(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_job_logs(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_eval_run(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_eval_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_eval_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_eval_export(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_generate(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_generate_poll(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_generate_cancel(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_deploy_create(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_deploy_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_deploy_remove(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_key_create(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_key_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_key_revoke(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_audit_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);
int rpc_audit_verify(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep);

struct auth;
struct rpc_server;

/* rpc_server_start listens on d->cfg.socket_url (mode 0660 for ipc://)
 * and serves requests until rpc_server_stop.  Returns 0 and sets *out, or
 * -1 with a message in err. */
int rpc_server_start(struct ftuned *d, struct rpc_server **out, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* rpc_server_auth returns the checker of signed requests on remote_listen
 * (auth.h), so SIGHUP can reload its keys; NULL when remote access is off. */
struct auth *rpc_server_auth(struct rpc_server *srv);

/* rpc_server_stop stops serving, waits for handlers in flight, and frees
 * the server. NULL is allowed. */
void rpc_server_stop(struct rpc_server *srv);

/* rpc_dispatch handles one request message: decode, check, run the
 * handler, encode the reply.  Exposed for tests and fuzzing. On success
 * *out is a malloc'd reply of *out_len bytes. Returns 0, or -1 when out of
 * memory (the caller then drops the request). */
int rpc_dispatch(struct ftuned *d, uint64_t uid, uint64_t gid, uint64_t pid,
    const void *msg, size_t len, uint8_t **out, size_t *out_len)
    __attribute__((warn_unused_result));

#endif
