/*
 * rpc_pool.h - worker threads for slow control requests.
 *
 * A handler that may take seconds (loading a model to generate, hashing an
 * export) runs here instead of on nng's few callback threads, so status,
 * ls and show keep answering whatever others run.  The pool is bounded
 * three ways: its threads, the requests waiting for them, and the requests
 * one uid may have running or waiting; a request over any bound is refused
 * at once rather than queued behind the others.
 */
#ifndef FT_RPC_POOL_H
#define FT_RPC_POOL_H

#include <stddef.h>
#include <stdint.h>

struct rpc_pool;

/* A unit of work: fn(arg, 0) on a worker thread, or fn(arg, 1) when the
 * pool stops before it started, so its owner can still answer. */
typedef void (*rpc_pool_fn)(void *arg, int cancelled);

/* rpc_pool_start starts threads workers; at most queue_max wait and at most
 * per_user belong to one uid.  Returns 0 and *out, or -1. */
int rpc_pool_start(int threads, int queue_max, int per_user, struct rpc_pool **out)
    __attribute__((warn_unused_result));

/* rpc_pool_submit queues fn(arg) for uid: 0, or -1 with the bound it would
 * pass in why (fn is then never called). */
int rpc_pool_submit(struct rpc_pool *p, uint64_t uid, rpc_pool_fn fn, void *arg,
    char *why, size_t why_len) __attribute__((warn_unused_result));

/* rpc_pool_stop lets running work finish, cancels what waits and joins the
 * threads; later submissions are refused. */
void rpc_pool_stop(struct rpc_pool *p);

/* rpc_pool_free stops p if need be and frees it.  NULL is allowed. */
void rpc_pool_free(struct rpc_pool *p);

#endif
