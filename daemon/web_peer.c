/*
 * web_peer.c - the HTTP client's Unix uid from the kernel's socket tables,
 * and the checks of Host, Origin, Authorization and Content-Type headers
 * (see web_peer.h).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web_peer.h"

#define TCP_ESTABLISHED_STATE 1   /* the st column; others (TIME_WAIT) show uid 0 */
#define PEER_TABLE_MAX (4 << 20)  /* bytes of /proc/net/tcp6 read at most */
#define GROUPS_MAX 1024

/* Parses the kernel's hex address: 32-bit words printed as numbers in
 * host order, so copying each word back gives the address's bytes. */
static int
hex_addr(const char *hex, size_t len, unsigned char *out, size_t out_len)
{
	if (len != 2 * out_len)
		return -1;
	for (size_t w = 0; w < out_len / 4; w++) {
		char word[9];
		char *end;
		uint32_t v;

		memcpy(word, hex + 8 * w, 8);
		word[8] = '\0';
		v = (uint32_t)strtoul(word, &end, 16);
		if (*end != '\0')
			return -1;
		memcpy(out + 4 * w, &v, 4);
	}
	return 0;
}

int
web_peer_find(const char *table, int v6, const unsigned char *addr, int port,
    int server_port, uint32_t *uid)
{
	size_t alen = v6 ? 16 : 4;
	const char *line = table, *next;
	int found = 0;
	uint32_t who = 0;

	/* Every row that matches must agree: two sockets with the same local
	 * address and port towards our port would be ambiguous. */
	for (; line != NULL && *line != '\0'; line = next) {
		char local[33], remote[33];
		unsigned char a[16];
		unsigned lport, rport, st, u;

		if ((next = strchr(line, '\n')) != NULL)
			next++;
		if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %32[0-9A-Fa-f]:%x %x %*s %*s %*s %u",
		    local, &lport, remote, &rport, &st, &u) != 6)
			continue;
		if (st != TCP_ESTABLISHED_STATE || (int)lport != port || (int)rport != server_port ||
		    hex_addr(local, strlen(local), a, alen) != 0 || memcmp(a, addr, alen) != 0)
			continue;
		if (found && u != who)
			return -1;
		found = 1;
		who = u;
	}
	if (!found)
		return -1;
	*uid = who;
	return 0;
}

/* Reads a /proc file (its size is unknown to stat) into a string. */
static char *
proc_read(const char *path)
{
	size_t n = 0, cap = 1 << 16;
	char *buf = malloc(cap), *nb;
	FILE *f = fopen(path, "re");
	size_t r;

	if (buf == NULL || f == NULL) {
		free(buf);
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	while ((r = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
		n += r;
		if (n == cap - 1) {
			if (cap >= PEER_TABLE_MAX || (nb = realloc(buf, 2 * cap)) == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* The table of v6 (0: /proc/net/tcp, 1: tcp6), read on first use. */
static const char *
table_get(struct web_peer_tables *t, int v6)
{
	char **slot = v6 ? &t->tcp6 : &t->tcp;

	if (*slot == NULL)
		*slot = proc_read(v6 ? "/proc/net/tcp6" : "/proc/net/tcp");
	return *slot;
}

void
web_peer_tables_free(struct web_peer_tables *t)
{
	free(t->tcp);
	free(t->tcp6);
	t->tcp = t->tcp6 = NULL;
}

int
web_peer_uid_in(struct web_peer_tables *t, const char *remote_addr, int remote_port,
    int server_port, uint32_t *uid)
{
	unsigned char a6[16];
	struct in_addr a4;
	const char *table;

	if (inet_pton(AF_INET, remote_addr, &a4) == 1) {
		if ((ntohl(a4.s_addr) >> 24) != 127)
			return -1;
		/* A v4 client of a dual-stack socket sits in tcp6 as ::ffff:a.b.c.d. */
		if ((table = table_get(t, 0)) != NULL &&
		    web_peer_find(table, 0, (unsigned char *)&a4, remote_port, server_port, uid) == 0)
			return 0;
		memset(a6, 0, 10);
		a6[10] = a6[11] = 0xff;
		memcpy(a6 + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, remote_addr, a6) != 1 ||
	    !(IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a6) ||
	    (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a6) && a6[12] == 127))) {
		return -1;
	}
	if ((table = table_get(t, 1)) == NULL)
		return -1;
	return web_peer_find(table, 1, a6, remote_port, server_port, uid);
}

int
web_peer_uid(const char *remote_addr, int remote_port, int server_port, uint32_t *uid)
{
	struct web_peer_tables t = { NULL, NULL };
	int rc = web_peer_uid_in(&t, remote_addr, remote_port, server_port, uid);

	web_peer_tables_free(&t);
	return rc;
}

int
web_peer_in_group(uint32_t uid, gid_t gid)
{
	struct passwd pw, *pwp;
	gid_t groups[GROUPS_MAX];
	int n = GROUPS_MAX;
	char buf[4096];

	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
		return 0;
	if (pwp->pw_gid == gid)
		return 1;
	if (getgrouplist(pwp->pw_name, pwp->pw_gid, groups, &n) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

int
web_peer_admin(uint32_t uid, const char *admin_group)
{
	struct group gr, *grp;
	char buf[4096];

	if (uid == 0 || uid == (uint32_t)geteuid())
		return 1;
	return admin_group[0] != '\0' && getgrnam_r(admin_group, &gr, buf, sizeof(buf), &grp) == 0 &&
	    grp != NULL && web_peer_in_group(uid, grp->gr_gid);
}

int
web_peer_may_control(uint32_t uid, const char *socket_url, const char *admin_group)
{
	struct stat sb;

	if (web_peer_admin(uid, admin_group))
		return 1;
	/* connect(2) on a Unix socket needs write permission on its file. */
	if (strncmp(socket_url, "ipc://", 6) != 0 || stat(socket_url + 6, &sb) != 0 ||
	    !S_ISSOCK(sb.st_mode))
		return 0;
	if (uid == (uint32_t)sb.st_uid)
		return (sb.st_mode & S_IWUSR) != 0;
	if (web_peer_in_group(uid, sb.st_gid))
		return (sb.st_mode & S_IWGRP) != 0;
	return (sb.st_mode & S_IWOTH) != 0;
}

/* 1 when s (len bytes) is name, compared without case. */
static int
name_is(const char *s, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

int
web_host_ok(const char *host, const char *names, const char *listen_addr, int port, int tls)
{
	static const char *const loopback[] = { "localhost", "127.0.0.1", "[::1]" };
	const char *colon, *p;
	size_t hlen;
	int hport;

	if (host == NULL || host[0] == '\0')
		return 0;
	/* The port follows the last ':' after any "[v6]". */
	colon = strrchr(host, ':');
	if (colon != NULL && strchr(host, ']') > colon)
		colon = NULL;
	hlen = colon ? (size_t)(colon - host) : strlen(host);
	if (colon != NULL) {
		char *end;
		long v = strtol(colon + 1, &end, 10);

		if (colon[1] == '\0' || *end != '\0' || v <= 0 || v > 65535)
			return 0;
		hport = (int)v;
	} else {
		hport = tls ? 443 : 80;
	}
	for (p = names; *p != '\0';) {
		size_t n = strcspn(p, ", ");

		if ((n == 1 && *p == '*') || (n > 0 && n == hlen && strncasecmp(host, p, n) == 0))
			return 1;
		p += n;
		p += strspn(p, ", ");
	}
	if (hport != port)
		return 0;
	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++)
		if (name_is(host, hlen, loopback[i]))
			return 1;
	return listen_addr[0] != '\0' && name_is(host, hlen, listen_addr);
}

int
web_origin_ok(const char *origin, const char *host, int tls)
{
	const char *scheme = tls ? "https://" : "http://";

	return origin != NULL && host != NULL && strncasecmp(origin, scheme, strlen(scheme)) == 0 &&
	    strcasecmp(origin + strlen(scheme), host) == 0;
}

const char *
web_bearer(const char *auth)
{
	if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' &&
	    auth[6] != '\t'))
		return NULL;
	auth += 6;
	auth += strspn(auth, " \t");
	return auth;
}

int
web_content_json(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL)
		return 0;
	ct += strspn(ct, " \t");
	return strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* 1 when sa is addr (civetweb's text) port; a v4-mapped IPv6 peer matches
 * its IPv4 text as civetweb may print either. */
static int
sockaddr_is(const struct sockaddr_storage *sa, const char *addr, int port)
{
	unsigned char want[16];
	struct in_addr a4;

	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		return ntohs(s4->sin_port) == port && inet_pton(AF_INET, addr, &a4) == 1 &&
		    s4->sin_addr.s_addr == a4.s_addr;
	}
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (ntohs(s6->sin6_port) != port)
			return 0;
		if (inet_pton(AF_INET6, addr, want) == 1)
			return memcmp(want, &s6->sin6_addr, 16) == 0;
		return inet_pton(AF_INET, addr, &a4) == 1 &&
		    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    memcmp(s6->sin6_addr.s6_addr + 12, &a4, 4) == 0;
	}
	return 0;
}

int
web_peer_conn_fd(const char *remote_addr, int remote_port, int server_port)
{
	struct sockaddr_storage local, peer;
	struct dirent *e;
	socklen_t len;
	DIR *dir = opendir("/proc/self/fd");
	int fd = -1;

	if (dir == NULL)
		return -1;
	while (fd < 0 && (e = readdir(dir)) != NULL) {
		char *end;
		long n = strtol(e->d_name, &end, 10);
		struct stat sb;

		if (*end != '\0' || n < 0 || n == dirfd(dir) || fstat((int)n, &sb) != 0 ||
		    !S_ISSOCK(sb.st_mode))
			continue;
		len = sizeof(local);
		if (getsockname((int)n, (struct sockaddr *)&local, &len) != 0)
			continue;
		len = sizeof(peer);
		if (getpeername((int)n, (struct sockaddr *)&peer, &len) != 0)
			continue;
		if ((local.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&local)->sin_port) :
		    local.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&local)->sin6_port) :
		    -1) == server_port && sockaddr_is(&peer, remote_addr, remote_port))
			fd = (int)n;
	}
	closedir(dir);
	return fd;
}

int
web_peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}
