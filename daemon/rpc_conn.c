/*
 * rpc_conn.c - bounds on the control socket's connections.
 *
 * nng calls pipe_added for a new pipe after its SP handshake and before
 * the protocol sees it (NNG_PIPE_EV_ADD_PRE): a pipe closed there is
 * refused, and nng reports the removal of only those pipes it told us
 * about, so the table holds exactly the accepted pipes.  The table is a
 * flat array scanned under one lock: it holds at most the configured
 * maxima, a few thousand entries.
 *
 * nng 1.5 gives a connection that has not finished its handshake 10 s (a
 * constant of its ipc and tcp transports) and then closes it; those are
 * bounded only by that timeout and the descriptor limit main.c raises.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ftuned.h"
#include "log.h"
#include "rpc_conn.h"

struct conn {
	uint32_t pipe;
	int cls;
	uint8_t peer[16];             /* uid, or IPv4/IPv6 address */
	int busy;                     /* requests being served */
	uint64_t last_ms;             /* last message or reply */
};

struct rpc_conns {
	struct rpc_conn_limits lim[RPC_CONN_CLASSES];
	pthread_mutex_t lock;         /* guards everything below */
	struct conn *v;
	int n, cap;
	int count[RPC_CONN_CLASSES];
	uint64_t refused, refused_logged_ms;
	pthread_cond_t wake;
	pthread_t reaper;
	int reaping, stop;
};

/* The peer of p: its uid on IPC, its address without the port on TCP;
 * who names it for the log. */
static int
peer_of(nng_pipe p, int cls, uint8_t peer[16], char *who, size_t who_len)
{
	nng_sockaddr sa;
	uint64_t uid;

	memset(peer, 0, 16);
	snprintf(who, who_len, "an unknown peer");
	if (cls == RPC_CONN_IPC) {
		if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0)
			return -1;
		memcpy(peer, &uid, sizeof(uid));
		snprintf(who, who_len, "uid %llu", (unsigned long long)uid);
		return 0;
	}
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return -1;
	if (sa.s_family == NNG_AF_INET)
		memcpy(peer, &sa.s_in.sa_addr, sizeof(sa.s_in.sa_addr));
	else if (sa.s_family == NNG_AF_INET6)
		memcpy(peer, sa.s_in6.sa_addr, 16);
	else
		return -1;
	inet_ntop(sa.s_family == NNG_AF_INET ? AF_INET : AF_INET6, peer, who, (socklen_t)who_len);
	return 0;
}

static int
class_of(struct rpc_conns *c, nng_pipe p)
{
	int id = nng_listener_id(nng_pipe_listener(p));

	for (int i = 0; i < RPC_CONN_CLASSES; i++)
		if (id > 0 && nng_listener_id(c->lim[i].listener) == id)
			return i;
	return -1;
}

static int
conn_find(struct rpc_conns *c, uint32_t pipe)
{
	for (int i = 0; i < c->n; i++)
		if (c->v[i].pipe == pipe)
			return i;
	return -1;
}

/* Admits p into the table, or returns why not. */
static const char *
conn_admit(struct rpc_conns *c, nng_pipe p, int cls, const uint8_t peer[16])
{
	const struct rpc_conn_limits *l = &c->lim[cls];
	int same = 0;

	if (c->count[cls] >= l->max)
		return l->max_why;
	for (int i = 0; i < c->n; i++)
		if (c->v[i].cls == cls && memcmp(c->v[i].peer, peer, 16) == 0)
			same++;
	if (same >= l->max_per_peer)
		return l->per_peer_why;
	if (c->n == c->cap) {
		int cap = c->cap ? 2 * c->cap : 64;
		struct conn *v = realloc(c->v, (size_t)cap * sizeof(*v));

		if (v == NULL)
			return "out of memory";
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n] = (struct conn){ .pipe = (uint32_t)nng_pipe_id(p), .cls = cls,
	    .last_ms = ftuned_now_ms() };
	memcpy(c->v[c->n].peer, peer, 16);
	c->n++;
	c->count[cls]++;
	return NULL;
}

static void
pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct rpc_conns *c = arg;
	const char *bound = "peer unknown";
	uint8_t peer[16];
	uint64_t now = ftuned_now_ms(), refused = 0;
	char who[INET6_ADDRSTRLEN + 32];
	int cls;

	(void)ev;
	pthread_mutex_lock(&c->lock);
	if ((cls = class_of(c, p)) < 0) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (peer_of(p, cls, peer, who, sizeof(who)) == 0 &&
	    (bound = conn_admit(c, p, cls, peer)) == NULL) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	/* One line a second at most: the refused are often a flood. */
	c->refused++;
	if (now - c->refused_logged_ms >= 1000) {
		refused = c->refused;
		c->refused = 0;
		c->refused_logged_ms = now;
	}
	pthread_mutex_unlock(&c->lock);
	nng_pipe_close(p);
	if (refused > 0)
		log_warn("rpc: %s connection from %s refused: %s (%llu refused since the "
		    "last such line)", cls == RPC_CONN_IPC ? "control" : "remote", who, bound,
		    (unsigned long long)refused);
}

static void
pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct rpc_conns *c = arg;
	int i;

	(void)ev;
	pthread_mutex_lock(&c->lock);
	if ((i = conn_find(c, (uint32_t)nng_pipe_id(p))) >= 0) {
		c->count[c->v[i].cls]--;
		c->v[i] = c->v[--c->n];
	}
	pthread_mutex_unlock(&c->lock);
}

static void
mark(struct rpc_conns *c, nng_pipe p, int delta)
{
	int i;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	if ((i = conn_find(c, (uint32_t)nng_pipe_id(p))) >= 0) {
		c->v[i].busy += delta;
		c->v[i].last_ms = ftuned_now_ms();
	}
	pthread_mutex_unlock(&c->lock);
}

void
rpc_conns_listener_set(struct rpc_conns *c, int cls, nng_listener l)
{
	pthread_mutex_lock(&c->lock);
	c->lim[cls].listener = l;
	pthread_mutex_unlock(&c->lock);
}

void
rpc_conns_busy(struct rpc_conns *c, nng_pipe p)
{
	mark(c, p, 1);
}

void
rpc_conns_idle(struct rpc_conns *c, nng_pipe p)
{
	mark(c, p, -1);
}

/* Once a second: close the pipes of classes with an idle timeout that
 * completed no message for that long, outside the lock (closing calls
 * pipe_removed). */
static void *
reaper(void *arg)
{
	struct rpc_conns *c = arg;
	struct timespec ts;
	nng_pipe *victims = NULL;
	int n, cap = 0, reaped;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		uint64_t now = ftuned_now_ms();

		n = 0;
		for (int i = 0; i < c->n; i++) {
			const struct conn *e = &c->v[i];
			int idle_s = c->lim[e->cls].idle_s;

			if (idle_s == 0 || e->busy > 0 || now - e->last_ms < (uint64_t)idle_s * 1000)
				continue;
			if (n == cap) {
				nng_pipe *v = realloc(victims, (size_t)(cap ? 2 * cap : 64) * sizeof(*v));

				if (v == NULL)
					break;
				victims = v;
				cap = cap ? 2 * cap : 64;
			}
			victims[n].id = e->pipe;
			n++;
		}
		pthread_mutex_unlock(&c->lock);
		reaped = 0;
		for (int i = 0; i < n; i++)
			reaped += nng_pipe_close(victims[i]) == 0;
		if (reaped > 0)
			log_info("rpc: closed %d remote connection%s idle or sending for over %d s",
			    reaped, reaped == 1 ? "" : "s", c->lim[RPC_CONN_TCP].idle_s);
		pthread_mutex_lock(&c->lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec++;
		while (!c->stop && pthread_cond_timedwait(&c->wake, &c->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&c->lock);
	free(victims);
	return NULL;
}

int
rpc_conns_open(nng_socket sock, const struct rpc_conn_limits lim[RPC_CONN_CLASSES],
    struct rpc_conns **out, char *err, size_t err_len)
{
	struct rpc_conns *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	int rv, reap = 0;

	if (c == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	memcpy(c->lim, lim, sizeof(c->lim));
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((rv = nng_pipe_notify(sock, NNG_PIPE_EV_ADD_PRE, pipe_added, c)) != 0 ||
	    (rv = nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, pipe_removed, c)) != 0) {
		snprintf(err, err_len, "control socket: %s", nng_strerror(rv));
		rpc_conns_close(c);
		return -1;
	}
	for (int i = 0; i < RPC_CONN_CLASSES; i++)
		reap |= nng_listener_id(lim[i].listener) > 0 && lim[i].idle_s > 0;
	if (reap) {
		if (pthread_create(&c->reaper, NULL, reaper, c) != 0) {
			snprintf(err, err_len, "cannot start the connection reaper");
			rpc_conns_close(c);
			return -1;
		}
		c->reaping = 1;
	}
	*out = c;
	return 0;
}

void
rpc_conns_close(struct rpc_conns *c)
{
	if (c == NULL)
		return;
	if (c->reaping) {
		pthread_mutex_lock(&c->lock);
		c->stop = 1;
		pthread_cond_signal(&c->wake);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->reaper, NULL);
	}
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c->v);
	free(c);
}
