/* test_web_peer.c - the HTTP listener's checks (web_peer.c): the client's
 * uid from a sample /proc/net/tcp and tcp6 (little-endian, as x86 and arm64
 * Linux print them), who may use the control socket, and the Host, Origin,
 * Authorization and Content-Type rules, on hand-written hostile cases. */
#include <arpa/inet.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ft_test.h"
#include "web_peer.h"

/* The server listens on 127.0.0.1:38763 (976B); the client 127.0.0.1:48514
 * (BD82) belongs to uid 1001; a TIME_WAIT row of an old connection from
 * the same port shows uid 0, as the kernel prints for such rows. */
static const char tcp[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 0100007F:976B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 93125 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:976B 0100007F:BD82 01 00000000:00000000 00:00000000 00000000     0        0 93200 1 0000000000000000 20 4 30 10 -1\n"
    "   2: 0100007F:BD82 0100007F:976B 01 00000000:00000000 00:00000000 00000000  1001        0 93199 1 0000000000000000 20 4 30 10 -1\n"
    "   3: 0100007F:BD90 0100007F:976B 06 00000000:00000000 03:000014C1 00000000     0        0 0 3 0000000000000000\n"
    "   4: 0200007F:BD83 0100007F:976B 01 00000000:00000000 00:00000000 00000000  1002        0 93300 1 0000000000000000 20 4 30 10 -1\n"
    "   5: 0100007F:BD84 0100007F:976B 01 00000000:00000000 00:00000000 00000000  1003        0 93301 1 0000000000000000 20 4 30 10 -1\n"
    "   6: 0100007F:BD84 0200007F:976B 01 00000000:00000000 00:00000000 00000000  1004        0 93302 1 0000000000000000 20 4 30 10 -1\n"
    "   7: garbage\n";

/* [::1]:8080 (1F90) serves [::1]:53999 (D2EF), uid 1005; an IPv4 client
 * 127.0.0.1:54000 (D2F0) of a dual-stack socket, uid 1006. */
static const char tcp6[] =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D2EF 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1\n"
    "   1: 00000000000000000000000001000000:D2EF 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1005        0 2 1 0 20 4 30 10 -1\n"
    "   2: 0000000000000000FFFF00000100007F:D2F0 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1006        0 3 1 0 20 4 30 10 -1\n";

static long
find4(const char *table, const char *addr, int port, int server_port)
{
	struct in_addr a;
	uint32_t uid;

	inet_pton(AF_INET, addr, &a);
	return web_peer_find(table, 0, (unsigned char *)&a, port, server_port, &uid) == 0 ?
	    (long)uid : -1;
}

static long
find6(const char *table, const char *addr, int port, int server_port)
{
	unsigned char a[16];
	uint32_t uid;

	inet_pton(AF_INET6, addr, a);
	return web_peer_find(table, 1, a, port, server_port, &uid) == 0 ? (long)uid : -1;
}

int
main(void)
{
	const char *sock = ft_test_tmp("ctl.sock");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char url[PATH_MAX + 8];
	int fd;

	/* The client's own row, not the server's, not TIME_WAIT, not another
	 * address; two live rows for one address and port that disagree are
	 * ambiguous. */
	CHECK(find4(tcp, "127.0.0.1", 0xBD82, 0x976B) == 1001);
	CHECK(find4(tcp, "127.0.0.1", 0x976B, 0xBD82) == 0);        /* the server's own socket */
	CHECK(find4(tcp, "127.0.0.1", 0xBD82, 0x976C) == -1);       /* another server port */
	CHECK(find4(tcp, "127.0.0.1", 0xBD90, 0x976B) == -1);       /* TIME_WAIT: uid 0 is no one */
	CHECK(find4(tcp, "127.0.0.1", 0xBD83, 0x976B) == -1);       /* 127.0.0.2's port, not ours */
	CHECK(find4(tcp, "127.0.0.2", 0xBD83, 0x976B) == 1002);
	CHECK(find4(tcp, "127.0.0.1", 0xBD84, 0x976B) == -1);       /* ambiguous */
	CHECK(find4("", "127.0.0.1", 0xBD82, 0x976B) == -1);
	CHECK(find4("   0: 0100007F:BD82", "127.0.0.1", 0xBD82, 0x976B) == -1);
	CHECK(find6(tcp6, "::1", 0xD2EF, 0x1F90) == 1005);
	CHECK(find6(tcp6, "::1", 0x1F90, 0xD2EF) == 0);
	CHECK(find6(tcp6, "::ffff:127.0.0.1", 0xD2F0, 0x1F90) == 1006);
	CHECK(find6(tcp6, "::1", 0xD2F0, 0x1F90) == -1);
	CHECK(find6(tcp, "::1", 0xBD82, 0x976B) == -1);             /* v4 rows never match v6 */

	/* Only loopback clients are looked up. */
	{
		uint32_t uid;

		CHECK(web_peer_uid("10.0.0.1", 40000, 8631, &uid) == -1);
		CHECK(web_peer_uid("2001:db8::1", 40000, 8631, &uid) == -1);
		CHECK(web_peer_uid("not an address", 40000, 8631, &uid) == -1);
	}

	/* The control socket's own permissions decide, beside root, the
	 * daemon's user and admin_group. */
	CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	snprintf(url, sizeof(url), "ipc://%s", sock);
	CHECK(chmod(sock, 0660) == 0);
	CHECK(web_peer_may_control(0, url, "") == 1);
	CHECK(web_peer_may_control((uint32_t)geteuid(), url, "") == 1);
	/* A uid with no account: in no group, so "other" bits apply. */
	CHECK(web_peer_may_control(3999999, url, "") == 0);
	CHECK(chmod(sock, 0666) == 0);
	CHECK(web_peer_may_control(3999999, url, "") == 1);
	CHECK(web_peer_may_control(3999999, "tcp://127.0.0.1:1", "") == 0);
	CHECK(web_peer_may_control(3999999, "ipc:///nonexistent/ftuned.sock", "") == 0);
	CHECK(web_peer_may_control(3999999, url, "no-such-group-ftht") == 1);
	CHECK(chmod(sock, 0600) == 0);
	CHECK(web_peer_may_control(3999999, url, "no-such-group-ftht") == 0);
	close(fd);

	/* Host: loopback names and the listen address with our port, the
	 * configured names with any port; nothing else. */
	CHECK(web_host_ok("127.0.0.1:8631", "", "127.0.0.1", 8631, 0) == 1);
	CHECK(web_host_ok("localhost:8631", "", "127.0.0.1", 8631, 0) == 1);
	CHECK(web_host_ok("LocalHost:8631", "", "127.0.0.1", 8631, 0) == 1);
	CHECK(web_host_ok("[::1]:8631", "", "127.0.0.1", 8631, 0) == 1);
	CHECK(web_host_ok("192.168.1.5:8631", "", "192.168.1.5", 8631, 0) == 1);
	CHECK(web_host_ok("192.168.1.5:8631", "", "", 8631, 0) == 0);
	CHECK(web_host_ok("evil.example:8631", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("127.0.0.1:8632", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("127.0.0.1", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("127.0.0.1", "", "127.0.0.1", 80, 0) == 1);
	CHECK(web_host_ok("127.0.0.1", "", "127.0.0.1", 443, 1) == 1);
	CHECK(web_host_ok("127.0.0.1:", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("127.0.0.1:x8631", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("127.0.0.1:8631:8631", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("localhost.:8631", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("127.0.0.1.evil.example:8631", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("[::1]", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("", "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok(NULL, "", "127.0.0.1", 8631, 0) == 0);
	CHECK(web_host_ok("dash.example.org", "dash.example.org, other", "", 8631, 1) == 1);
	CHECK(web_host_ok("DASH.example.org:443", "dash.example.org,other", "", 8631, 1) == 1);
	CHECK(web_host_ok("other:1", "dash.example.org,other", "", 8631, 1) == 1);
	CHECK(web_host_ok("dash.example.org.evil", "dash.example.org", "", 8631, 1) == 0);
	CHECK(web_host_ok("dash.example", "dash.example.org", "", 8631, 1) == 0);
	CHECK(web_host_ok("anything:1", "*", "", 8631, 0) == 1);

	/* Origin: exactly our scheme and the request's Host. */
	CHECK(web_origin_ok("http://127.0.0.1:8631", "127.0.0.1:8631", 0) == 1);
	CHECK(web_origin_ok("https://127.0.0.1:8631", "127.0.0.1:8631", 0) == 0);
	CHECK(web_origin_ok("http://127.0.0.1:8631", "127.0.0.1:8631", 1) == 0);
	CHECK(web_origin_ok("http://evil.example:8631", "127.0.0.1:8631", 0) == 0);
	CHECK(web_origin_ok("http://127.0.0.1:8631.evil", "127.0.0.1:8631", 0) == 0);
	CHECK(web_origin_ok("null", "127.0.0.1:8631", 0) == 0);
	CHECK(web_origin_ok(NULL, "127.0.0.1:8631", 0) == 0);

	/* Authorization: the Bearer scheme in any case (RFC 9110). */
	CHECK_STR(web_bearer("Bearer ft-x") ? web_bearer("Bearer ft-x") : "(none)", "ft-x");
	CHECK_STR(web_bearer("bearer ft-x") ? web_bearer("bearer ft-x") : "(none)", "ft-x");
	CHECK_STR(web_bearer("BEARER \tft-x") ? web_bearer("BEARER \tft-x") : "(none)", "ft-x");
	CHECK(web_bearer("Basic ft-x") == NULL);
	CHECK(web_bearer("Bearerft-x") == NULL);
	CHECK(web_bearer("Bear") == NULL);
	CHECK(web_bearer(NULL) == NULL);

	/* Content-Type of the JSON endpoints. */
	CHECK(web_content_json("application/json") == 1);
	CHECK(web_content_json("application/json; charset=utf-8") == 1);
	CHECK(web_content_json("Application/JSON") == 1);
	CHECK(web_content_json("text/plain") == 0);
	CHECK(web_content_json("application/jsonp") == 0);
	CHECK(web_content_json("application/x-www-form-urlencoded") == 0);
	CHECK(web_content_json("") == 0);
	CHECK(web_content_json(NULL) == 0);
	ft_test_tmp_remove();
	return ft_test_done();
}
