/*
 * conn_flood.c - holds many raw connections to a daemon's ipc:// or tcp://
 * address, as a hostile client would, and reports how many the daemon
 * keeps.  Used by test_security_conn.sh:
 *
 *     conn_flood URL N raw|idle|send [ANNOUNCE SEND] [SPREAD]
 *
 * raw: connect and say nothing (no SP handshake); idle: complete the
 * handshake as a req0 peer, then say nothing; send: also announce a message
 * of ANNOUNCE bytes and send only its first SEND bytes.  With SPREAD, TCP
 * connections come from 127.0.0.2 .. 127.0.0.(SPREAD+1) in turn.
 * After setup and a second to settle it prints "open K of N" and then a
 * new line whenever K changes; it exits when K reaches 0, or on SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int is_tcp;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
dial(const char *url, int i, int spread)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd;

	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", url + 6);
		len = sizeof(*un);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		char host[64];
		const char *colon = strrchr(url + 6, ':');

		if (strncmp(url, "tcp://", 6) != 0 || colon == NULL)
			return -1;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - (url + 6)), url + 6);
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -1;
		len = sizeof(*in);
		is_tcp = 1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (is_tcp && spread > 0) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % spread));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The SP handshake of a req0 peer (protocol 0x30); 0 when the daemon
 * answered with its own header. */
static int
handshake(int fd)
{
	static const uint8_t hello[8] = { 0, 'S', 'P', 0, 0x00, 0x30, 0, 0 };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t reply[8];
	size_t got = 0;

	if (write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello))
		return -1;
	while (got < sizeof(reply)) {
		ssize_t n;

		if (poll(&p, 1, 1000) != 1 || (n = read(fd, reply + got, sizeof(reply) - got)) <= 0)
			return -1;
		got += (size_t)n;
	}
	return reply[1] == 'S' && reply[2] == 'P' ? 0 : -1;
}

/* Writes the message header and the first `send` bytes on every open
 * connection, without blocking on any one of them. */
static void
send_partial(int *fds, int n, uint64_t announce, uint64_t want)
{
	static uint8_t chunk[65536];
	uint64_t *sent = calloc((size_t)n, sizeof(*sent));
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	uint8_t hdr[9];
	size_t hlen = 0;
	double deadline = now_s() + 30;

	if (sent == NULL || p == NULL)
		exit(2);
	if (!is_tcp)
		hdr[hlen++] = 1;  /* ipc: a message frame */
	for (int b = 7; b >= 0; b--)
		hdr[hlen++] = (uint8_t)(announce >> (8 * b));
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0 && (write(fds[i], hdr, hlen) != (ssize_t)hlen ||
		    fcntl(fds[i], F_SETFL, O_NONBLOCK) != 0)) {
			close(fds[i]);
			fds[i] = -1;
		}
	for (;;) {
		int waiting = 0;

		for (int i = 0; i < n; i++) {
			p[i] = (struct pollfd){ .fd = -1 };
			if (fds[i] < 0 || sent[i] >= want)
				continue;
			p[i] = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
			waiting++;
		}
		if (waiting == 0 || now_s() > deadline || poll(p, (nfds_t)n, 1000) < 0)
			break;
		for (int i = 0; i < n; i++) {
			ssize_t w;

			if (p[i].fd < 0 || !(p[i].revents & (POLLOUT | POLLERR | POLLHUP)))
				continue;
			w = send(fds[i], chunk, (size_t)(want - sent[i] < sizeof(chunk) ?
			    want - sent[i] : sizeof(chunk)), MSG_NOSIGNAL);
			if (w > 0)
				sent[i] += (uint64_t)w;
			else if (w < 0 && errno != EAGAIN) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
	}
	free(sent);
	free(p);
}

/* Connections the daemon has not closed; closed ones are forgotten. */
static int
count_open(int *fds, int n)
{
	int open = 0;

	for (int i = 0; i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		char c;

		if (fds[i] < 0)
			continue;
		if (poll(&p, 1, 0) == 1 && recv(fds[i], &c, 1, MSG_DONTWAIT) <= 0) {
			close(fds[i]);
			fds[i] = -1;
			continue;
		}
		open++;
	}
	return open;
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	int n, spread = 0, *fds, last = -1, mode;
	uint64_t announce = 0, want = 0;

	if (argc < 4 || (strcmp(argv[3], "send") == 0 && argc < 6)) {
		fprintf(stderr, "usage: conn_flood URL N raw|idle|send [ANNOUNCE SEND] [SPREAD]\n");
		return 2;
	}
	n = atoi(argv[2]);
	mode = strcmp(argv[3], "raw") == 0 ? 0 : strcmp(argv[3], "idle") == 0 ? 1 : 2;
	if (mode == 2) {
		announce = strtoull(argv[4], NULL, 10);
		want = strtoull(argv[5], NULL, 10);
	}
	if (argc > (mode == 2 ? 6 : 4))
		spread = atoi(argv[mode == 2 ? 6 : 4]);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (n < 1 || (fds = calloc((size_t)n, sizeof(*fds))) == NULL)
		return 2;
	for (int i = 0; i < n; i++) {
		fds[i] = dial(argv[1], i, spread);
		if (fds[i] >= 0 && mode > 0 && handshake(fds[i]) != 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
	if (mode == 2)
		send_partial(fds, n, announce, want);
	sleep(1);
	for (;;) {
		int k = count_open(fds, n);

		if (k != last) {
			printf("open %d of %d\n", k, n);
			fflush(stdout);
			last = k;
		}
		if (k == 0)
			return 0;
		usleep(200000);
	}
}
