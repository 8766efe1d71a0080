/*
 * web_conn.h - at most http_max_conns_per_user HTTP connections per
 * client, so that one user's half-sent requests cannot hold every civetweb
 * worker.
 *
 * civetweb 1.15 offers no such limit and, in its init_connection callback
 * (a worker thread, the connection taken from the queue, nothing read
 * yet), no way to learn the connection's descriptor or address.  So that
 * callback calls web_conn_guard_check, which takes the kernel's view
 * instead: every descriptor of ours that is a TCP socket on the server's
 * port, its peer, and the peer's uid from /proc/net/tcp{,6} (web_peer.h)
 * on loopback, its address otherwise.  A client with more than the limit
 * keeps its oldest connections; the newer ones get a 429 (plain HTTP
 * only) and are shut down (shutdown(2) on a dup of the descriptor, so a
 * reused number is never hit), and civetweb's worker or queue then sees
 * the end of the stream at once.  In total civetweb holds at most http_threads + its queue, and
 * the kernel's backlog the rest.
 */
#ifndef FT_WEB_CONN_H
#define FT_WEB_CONN_H

#include <stddef.h>
#include <stdint.h>

struct web_conn_guard;

/* web_conn_guard_new: a guard allowing per_client connections per client;
 * with reply (a plain HTTP server) the excess is answered 429 first.  0,
 * or -1 (out of memory). */
int web_conn_guard_new(int per_client, int reply, struct web_conn_guard **out)
    __attribute__((warn_unused_result));

void web_conn_guard_free(struct web_conn_guard *g);

/* web_conn_guard_check scans our connections to server_port and shuts
 * down each client's excess, logging what it closed.  Thread-safe. */
void web_conn_guard_check(struct web_conn_guard *g, int server_port);

/* One connection as the guard sees it: its client (a uid on loopback, an
 * address otherwise), when it was first seen, and whether it was shut. */
struct web_conn {
	uint64_t ino;               /* the socket's inode: unique while it lives */
	uint8_t client[17];         /* [0] = 'u' and a uid, or 'a' and an IPv6 address */
	uint64_t seen;              /* scan sequence of its first sighting */
	int shut;
	int live;                   /* found in the current scan */
};

/* web_conn_excess marks in excess[i] (1 or 0) the connections to shut:
 * those of v[0..n) that are not shut and have per_client older unshut
 * connections of the same client (older: smaller seen, then smaller
 * ino).  Returns how many it marked. */
size_t web_conn_excess(const struct web_conn *v, size_t n, int per_client, uint8_t *excess);

#endif
