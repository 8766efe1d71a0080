/*
 * web_peer.h - who is at the other end of an HTTP connection, and which
 * requests the HTTP listener accepts at all, as pure functions apart from
 * civetweb so that they are unit-tested (tests/test_web_peer.c).
 *
 * On a loopback connection the kernel knows the client: its socket is the
 * row of /proc/net/tcp (tcp6) whose local address and port are the
 * client's and whose remote port is ours, and that row names the uid that
 * made it.  web.c lets such a peer in without a token exactly when that
 * uid could use the control socket (web_peer_may_control), so HTTP grants
 * nobody more than the 0660 socket does.
 */
#ifndef FT_WEB_PEER_H
#define FT_WEB_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* web_peer_find looks the client socket up in table, the text of
 * /proc/net/tcp (v6 = 0, addr 4 bytes) or /proc/net/tcp6 (v6 = 1, addr 16
 * bytes, an IPv4 client as ::ffff:a.b.c.d): the row whose local address is
 * addr:port and whose remote port is server_port.  Returns 0 and *uid, or
 * -1 when no row matches. */
int web_peer_find(const char *table, int v6, const unsigned char *addr, int port,
    int server_port, uint32_t *uid) __attribute__((warn_unused_result));

/* web_peer_uid finds the uid of a loopback client (remote_addr as civetweb
 * prints it, "127.0.0.1" or "::1") connected to server_port, from the
 * kernel's tables.  0 and *uid, or -1 (not loopback, or not found). */
int web_peer_uid(const char *remote_addr, int remote_port, int server_port, uint32_t *uid)
    __attribute__((warn_unused_result));

/* The kernel's socket tables, read once for many look-ups. */
struct web_peer_tables {
	char *tcp, *tcp6;           /* /proc/net/tcp and tcp6, read on first use */
};

/* web_peer_uid_in: web_peer_uid in tables t (start them {NULL, NULL}, end
 * them with web_peer_tables_free). */
int web_peer_uid_in(struct web_peer_tables *t, const char *remote_addr, int remote_port,
    int server_port, uint32_t *uid) __attribute__((warn_unused_result));
void web_peer_tables_free(struct web_peer_tables *t);

/* web_peer_in_group: 1 when uid's primary or supplementary groups hold gid. */
int web_peer_in_group(uint32_t uid, gid_t gid);

/* web_peer_may_control: 1 when uid could connect to the control socket at
 * socket_url: root, the daemon's own uid, a member of admin_group, or a
 * user the socket file's owner, group and mode let write to it.  A socket
 * that is not ipc:// (or is missing) admits only the first three. */
int web_peer_may_control(uint32_t uid, const char *socket_url, const char *admin_group);

/* web_peer_admin: root, the daemon's uid or a member of admin_group. */
int web_peer_admin(uint32_t uid, const char *admin_group);

/* web_peer_conn_fd finds our descriptor of the connection from
 * remote_addr:remote_port to server_port (civetweb 1.15 does not give it
 * out), so that a handler can notice the client leave: the descriptor, or
 * -1.  It stays ours while the handler runs. */
int web_peer_conn_fd(const char *remote_addr, int remote_port, int server_port);

/* web_peer_gone: 1 when the client on fd has closed or reset the
 * connection (fd -1: never). */
int web_peer_gone(int fd);

/* web_host_ok: 1 when the Host header host names this server: one of the
 * comma-separated names (with any port or none; "*" matches all), or a
 * loopback name (localhost, 127.0.0.1, [::1]) or listen_addr (the address
 * of http_listen, "[::1]" style for IPv6) followed by ":port", or bare
 * when port is the scheme's default (80, or 443 with tls). */
int web_host_ok(const char *host, const char *names, const char *listen_addr, int port,
    int tls);

/* web_origin_ok: 1 when origin (the Origin header) is this server as the
 * client reached it: "http://" or "https://" (by tls) followed by host,
 * the request's own Host header. */
int web_origin_ok(const char *origin, const char *host, int tls);

/* web_bearer: the credential of an Authorization header using the Bearer
 * scheme (its name in any case, RFC 9110), or NULL. */
const char *web_bearer(const char *authorization);

/* web_content_json: 1 when a Content-Type header is application/json
 * (any case, parameters such as charset allowed). */
int web_content_json(const char *content_type);

#endif
