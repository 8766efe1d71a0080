/* test_web_conn.c - which HTTP connections the guard closes
 * (web_conn_excess): each client keeps its oldest per_client, by first
 * sighting then inode; connections already shut neither count nor are
 * closed again; clients are told apart by uid or address.  Then the guard
 * itself on real loopback connections of this process (one uid): the
 * excess reads a 429 and the end of the stream, the kept ones nothing,
 * and later connections are closed as they come while the oldest stay. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ft_test.h"
#include "web_conn.h"

static struct web_conn
conn(char kind, uint32_t id, uint64_t seen, uint64_t ino, int shut)
{
	struct web_conn c;

	memset(&c, 0, sizeof(c));
	c.client[0] = (uint8_t)kind;
	memcpy(c.client + 1, &id, sizeof(id));
	c.seen = seen;
	c.ino = ino;
	c.shut = shut;
	c.live = 1;
	return c;
}

/* How many of fds[0..n) the server has closed (readable: end of stream). */
static int
closed_count(const int *fds, int n)
{
	int closed = 0;

	for (int i = 0; i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };

		closed += poll(&p, 1, 0) == 1;
	}
	return closed;
}

static void
guard_on_sockets(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct web_conn_guard *g;
	int lfd = socket(AF_INET, SOCK_STREAM, 0), cl[12], sv[12], port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 16) == 0 &&
	    getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	CHECK(web_conn_guard_new(3, 1, &g) == 0);
	for (int i = 0; i < 12; i++) {
		cl[i] = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(connect(cl[i], (struct sockaddr *)&sa, sizeof(sa)) == 0);
		sv[i] = accept(lfd, NULL, NULL);
		if (i == 4 || i == 6 || i == 11) {
			/* 5 open: the 2 newest closed; then the others as they come. */
			web_conn_guard_check(g, port);
			usleep(20000);
			CHECK(closed_count(cl, i + 1) == i + 1 - 3);
		}
		if (i == 4) {
			char reply[512];
			ssize_t n = read(cl[4], reply, sizeof(reply) - 1);

			/* Plain HTTP: answered before the end of the stream. */
			reply[n > 0 ? n : 0] = '\0';
			CHECK(strncmp(reply, "HTTP/1.1 429 Too Many Requests\r\n", 32) == 0);
			CHECK(strstr(reply, "\"message\": \"uid ") != NULL &&
			    strstr(reply, " has 3 HTTP connections open") != NULL);
			CHECK(strstr(reply, "\"code\": \"rate_limit_exceeded\"") != NULL);
			/* As civetweb would: the closed ones leave the table. */
			close(sv[3]);
			close(sv[4]);
			sv[3] = sv[4] = -1;
		}
	}
	CHECK(closed_count(cl, 3) == 0);
	web_conn_guard_check(g, port);
	usleep(20000);
	CHECK(closed_count(cl, 12) == 9);
	/* The kept ones still work: the guard closed its duplicates only. */
	CHECK(write(sv[0], "x", 1) == 1);
	for (int i = 0; i < 12; i++) {
		close(cl[i]);
		if (sv[i] >= 0)
			close(sv[i]);
	}
	close(lfd);
	web_conn_guard_free(g);
}

int
main(void)
{
	uint8_t ex[16];
	struct web_conn v[16];
	size_t n = 0;

	/* uid 1001: two from scan 1, three from scan 2 (inodes out of order). */
	v[n++] = conn('u', 1001, 2, 50, 0);
	v[n++] = conn('u', 1001, 1, 90, 0);
	v[n++] = conn('u', 1001, 2, 40, 0);
	v[n++] = conn('u', 1001, 1, 95, 0);
	v[n++] = conn('u', 1001, 2, 45, 0);
	/* uid 1002 at the limit; an address whose bytes equal uid 1001's. */
	v[n++] = conn('u', 1002, 2, 60, 0);
	v[n++] = conn('u', 1002, 2, 61, 0);
	v[n++] = conn('a', 1001, 2, 70, 0);
	CHECK(web_conn_excess(v, n, 2, ex) == 3);
	CHECK(!ex[1] && !ex[3]);          /* scan 1's two are the oldest */
	CHECK(ex[0] && ex[2] && ex[4]);
	CHECK(!ex[5] && !ex[6] && !ex[7]);
	/* With a limit of 3 the next oldest, scan 2's smallest inode, stays. */
	CHECK(web_conn_excess(v, n, 3, ex) == 2);
	CHECK(!ex[2] && ex[0] && ex[4]);

	/* Shut ones are not counted and not marked again: with two of
	 * uid 1001's shut, its three others fit a limit of 3. */
	v[1].shut = v[3].shut = 1;
	CHECK(web_conn_excess(v, n, 3, ex) == 0);
	CHECK(web_conn_excess(v, n, 1, ex) == 3);
	CHECK(!ex[1] && !ex[3] && !ex[2] && ex[0] && ex[4] && ex[6]);
	CHECK(web_conn_excess(v, 0, 1, ex) == 0);
	guard_on_sockets();
	return ft_test_done();
}
