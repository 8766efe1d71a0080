/*
 * web_conn.c - HTTP connections per client (see web_conn.h).
 *
 * The table holds every connection of the last scan, found by the
 * socket's inode, with the scan that first saw it: a few dozen entries
 * (civetweb's workers and queue), scanned flat under one lock.  Only
 * descriptors that are sockets on the server's port are duplicated: a dup
 * of another file, closed again, would drop the POSIX locks SQLite holds
 * on it.
 *
 * A connection the guard closes is always one first seen in that scan:
 * an older one has no more older ones than when it was kept.  So civetweb
 * has neither read from it nor written to it (every connection passes
 * init_connection, and so a scan, before its worker reads), and on plain
 * HTTP the guard may answer it, 429 in OpenAI's error shape (whose
 * error.message the dashboard reads too), before shutting it down.  Under
 * TLS it is only shut down: the guard cannot speak TLS.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "web_conn.h"
#include "web_peer.h"

struct web_conn_guard {
	pthread_mutex_t lock;         /* guards everything below */
	int per_client;
	int reply;                    /* plain HTTP: answer 429 before closing */
	struct web_conn *v;
	int *fd;                      /* our dup of v[i]'s socket during a scan, or -1 */
	uint8_t *excess;
	size_t n, cap;
	uint64_t scans;
	time_t logged;                /* last log line: at most one a second */
	size_t unlogged;              /* closed since, not logged */
};

int
web_conn_guard_new(int per_client, int reply, struct web_conn_guard **out)
{
	struct web_conn_guard *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return -1;
	pthread_mutex_init(&g->lock, NULL);
	g->per_client = per_client;
	g->reply = reply;
	*out = g;
	return 0;
}

void
web_conn_guard_free(struct web_conn_guard *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g->v);
	free(g->fd);
	free(g->excess);
	free(g);
}

size_t
web_conn_excess(const struct web_conn *v, size_t n, int per_client, uint8_t *excess)
{
	size_t marked = 0;

	for (size_t i = 0; i < n; i++) {
		int older = 0;

		excess[i] = 0;
		if (v[i].shut)
			continue;
		for (size_t j = 0; j < n; j++)
			if (j != i && !v[j].shut && memcmp(v[j].client, v[i].client,
			    sizeof(v[i].client)) == 0 && (v[j].seen < v[i].seen ||
			    (v[j].seen == v[i].seen && v[j].ino < v[i].ino)))
				older++;
		if (older >= per_client) {
			excess[i] = 1;
			marked++;
		}
	}
	return marked;
}

/* The port of a TCP socket address, or -1. */
static int
sockaddr_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return -1;
}

/* The client of peer: its uid when the kernel knows it (loopback), else
 * its address as IPv6.  -1 for a loopback peer whose uid is gone (it has
 * closed its end): not counted. */
static int
client_of(struct web_peer_tables *t, const struct sockaddr_storage *peer, int server_port,
    uint8_t client[17])
{
	char text[INET6_ADDRSTRLEN];
	uint8_t a6[16];
	uint32_t uid;
	int v4 = peer->ss_family == AF_INET;

	if (v4) {
		memset(a6, 0, 10);
		a6[10] = a6[11] = 0xff;
		memcpy(a6 + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	} else {
		memcpy(a6, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
	}
	inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a6 + 12 : a6, text, sizeof(text));
	memset(client, 0, 17);
	if (web_peer_uid_in(t, text, sockaddr_port(peer), server_port, &uid) == 0) {
		client[0] = 'u';
		memcpy(client + 1, &uid, sizeof(uid));
		return 0;
	}
	if (IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a6) ||
	    (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a6) && a6[12] == 127))
		return -1;
	client[0] = 'a';
	memcpy(client + 1, a6, 16);
	return 0;
}

static int
guard_grow(struct web_conn_guard *g)
{
	size_t cap = g->cap ? 2 * g->cap : 64;
	struct web_conn *v = realloc(g->v, cap * sizeof(*v));
	int *fd;
	uint8_t *ex;

	if (v == NULL)
		return -1;
	g->v = v;
	if ((fd = realloc(g->fd, cap * sizeof(*fd))) == NULL)
		return -1;
	g->fd = fd;
	if ((ex = realloc(g->excess, cap)) == NULL)
		return -1;
	g->excess = ex;
	g->cap = cap;
	return 0;
}

/* Our dup of descriptor n when it is a connected TCP socket on
 * server_port (its peer in *peer, its inode in *ino), else -1. */
static int
conn_dup(int n, int server_port, struct sockaddr_storage *peer, uint64_t *ino)
{
	struct sockaddr_storage local;
	struct stat sb, sb2;
	socklen_t len = sizeof(local);
	int fd;

	if (fstat(n, &sb) != 0 || !S_ISSOCK(sb.st_mode) ||
	    getsockname(n, (struct sockaddr *)&local, &len) != 0 ||
	    sockaddr_port(&local) != server_port)
		return -1;
	/* n may have been closed and reused since: check the dup itself. */
	if ((fd = fcntl(n, F_DUPFD_CLOEXEC, 0)) < 0)
		return -1;
	len = sizeof(*peer);
	if (fstat(fd, &sb2) != 0 || sb2.st_ino != sb.st_ino ||
	    getpeername(fd, (struct sockaddr *)peer, &len) != 0 ||
	    sockaddr_port(peer) < 0) {
		close(fd);
		return -1;
	}
	*ino = (uint64_t)sb.st_ino;
	return fd;
}

/* Finds our connections to server_port: g->v[0..n) are those alive, with
 * g->fd our dups.  Called with the lock held. */
static void
guard_scan(struct web_conn_guard *g, int server_port)
{
	struct web_peer_tables t = { NULL, NULL };
	struct sockaddr_storage peer;
	struct dirent *e;
	DIR *dir = opendir("/proc/self/fd");
	size_t i, kept = 0;

	g->scans++;
	for (i = 0; i < g->n; i++) {
		g->v[i].live = 0;
		g->fd[i] = -1;
	}
	while (dir != NULL && (e = readdir(dir)) != NULL) {
		char *end;
		long n = strtol(e->d_name, &end, 10);
		uint64_t ino;
		int fd;

		if (*end != '\0' || n < 0 || n == dirfd(dir) ||
		    (fd = conn_dup((int)n, server_port, &peer, &ino)) < 0)
			continue;
		for (i = 0; i < g->n && g->v[i].ino != ino; i++)
			;
		if (i == g->n) {
			if ((g->n == g->cap && guard_grow(g) != 0) ||
			    client_of(&t, &peer, server_port, g->v[i].client) != 0) {
				close(fd);
				continue;
			}
			g->v[i].ino = ino;
			g->v[i].seen = g->scans;
			g->v[i].shut = 0;
			g->v[i].live = 0;
			g->n++;
		}
		if (g->v[i].live) {       /* a second descriptor of the same socket */
			close(fd);
			continue;
		}
		g->v[i].live = 1;
		g->fd[i] = fd;
	}
	if (dir != NULL)
		closedir(dir);
	web_peer_tables_free(&t);
	for (i = 0; i < g->n; i++) {
		if (!g->v[i].live)
			continue;
		g->v[kept] = g->v[i];
		g->fd[kept++] = g->fd[i];
	}
	g->n = kept;
}

/* Names client for people: "uid 1001" or its address. */
static void
client_name(const uint8_t client[17], char *out, size_t len)
{
	uint32_t uid;

	if (client[0] == 'u') {
		memcpy(&uid, client + 1, sizeof(uid));
		snprintf(out, len, "uid %u", uid);
	} else {
		inet_ntop(AF_INET6, client + 1, out, (socklen_t)len);
	}
}

/* The 429 for an excess connection of who, sent without waiting: the
 * socket's buffer is empty, so it fits or the client is not reading. */
static void
reply_busy(int fd, const char *who, int per_client)
{
	char body[256], head[256];
	int bn, hn;

	bn = snprintf(body, sizeof(body), "{\"error\": {\"message\": \"%s has %d HTTP connections "
	    "open, as many as http_max_conns_per_user allows; retry when one has ended\", "
	    "\"type\": \"requests\", \"param\": null, \"code\": \"rate_limit_exceeded\"}}\n", who,
	    per_client);
	hn = snprintf(head, sizeof(head), "HTTP/1.1 429 Too Many Requests\r\n"
	    "Content-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n\r\n", bn);
	if (send(fd, head, (size_t)hn, MSG_DONTWAIT | MSG_NOSIGNAL) == hn)
		(void)!send(fd, body, (size_t)bn, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void
web_conn_guard_check(struct web_conn_guard *g, int server_port)
{
	char who[INET6_ADDRSTRLEN + 8] = "";
	size_t closed = 0, had = 0;
	time_t now;

	pthread_mutex_lock(&g->lock);
	guard_scan(g, server_port);
	if (g->n > 0 && web_conn_excess(g->v, g->n, g->per_client, g->excess) > 0) {
		for (size_t i = 0; i < g->n; i++) {
			char name[INET6_ADDRSTRLEN + 8];

			if (!g->excess[i])
				continue;
			client_name(g->v[i].client, name, sizeof(name));
			if (g->reply)
				reply_busy(g->fd[i], name, g->per_client);
			shutdown(g->fd[i], SHUT_RDWR);
			g->v[i].shut = 1;
			closed++;
			if (who[0] != '\0')
				continue;
			memcpy(who, name, sizeof(who));
			for (size_t j = 0; j < g->n; j++)
				had += memcmp(g->v[j].client, g->v[i].client, sizeof(g->v[i].client)) == 0;
		}
	}
	for (size_t i = 0; i < g->n; i++)
		if (g->fd[i] >= 0)
			close(g->fd[i]);
	now = time(NULL);
	if (closed > 0 && now != g->logged) {
		log_warn("http: %s had %zu connections (http_max_conns_per_user %d): closed %zu%s",
		    who, had, g->per_client, closed, g->unlogged ? " and more since the last such line" : "");
		g->logged = now;
		g->unlogged = 0;
	} else {
		g->unlogged += closed;
	}
	pthread_mutex_unlock(&g->lock);
}
