/*
 * rpc_conn.h - bounds on the control socket's connections (nng pipes).
 *
 * Every pipe belongs to a listener class: the IPC socket, whose peers are
 * Unix uids, or remote_listen, whose peers are source addresses (nobody is
 * authenticated before a signature is checked).  A class holds at most
 * `max` pipes and at most `max_per_peer` from one peer; the excess is closed
 * as nng adds it, so one user's connections never take the descriptors
 * everyone else needs.  A class with an idle timeout also loses pipes that
 * completed no message for that long while no request of theirs was being
 * served: idle clients and slow senders of half a message.
 */
#ifndef FT_RPC_CONN_H
#define FT_RPC_CONN_H

#include <nng/nng.h>

enum rpc_conn_class { RPC_CONN_IPC, RPC_CONN_TCP, RPC_CONN_CLASSES };

struct rpc_conn_limits {
	nng_listener listener;        /* pipes it accepts are in this class */
	int max;                      /* pipes at once */
	int max_per_peer;             /* pipes from one uid or address */
	int idle_s;                   /* 0: never reaped */
	const char *max_why;          /* logged when a pipe is refused */
	const char *per_peer_why;
};

struct rpc_conns;

/* rpc_conns_open watches the pipes of sock, classed by the listener that
 * accepted them (a class whose listener id is 0 is unused), and starts the
 * reaper when a class has an idle timeout.  Call it before the listeners
 * start.  Returns 0 and *out, or -1 with a message in err. */
int rpc_conns_open(nng_socket sock, const struct rpc_conn_limits lim[RPC_CONN_CLASSES],
    struct rpc_conns **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* rpc_conns_busy marks p as having a request being served: it has
 * completed a message and is not idle until rpc_conns_idle. */
/* rpc_conns_listener_set classes the pipes of l as cls from now on (a
 * listener started again in place of a broken one). */
void rpc_conns_listener_set(struct rpc_conns *c, int cls, nng_listener l);

void rpc_conns_busy(struct rpc_conns *c, nng_pipe p);

/* rpc_conns_idle marks the reply to p's request as handed to nng; its idle
 * time counts from now. */
void rpc_conns_idle(struct rpc_conns *c, nng_pipe p);

/* rpc_conns_close stops the reaper and frees c; call it after the socket is
 * closed (nng has then run every pipe's removal).  NULL is allowed. */
void rpc_conns_close(struct rpc_conns *c);

#endif
