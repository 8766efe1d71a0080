/*
 * web.c - civetweb embedded as a small, safe dashboard server.
 *
 * civetweb's defaults suit a file server, not a daemon: we turn directory
 * listing off, size the thread pool, answer only GET and HEAD (and POST
 * /login), and send a Content-Security-Policy that forbids inline scripts
 * and styles.  /api/v1/ is served by web_api.c from the same state the
 * RPCs read.
 *
 * On a loopback listener a local user who may use the control socket
 * (root, the daemon's user, admin_group, the socket's group) is let in by
 * the uid the kernel records for the client's socket (web_peer.h); anyone
 * else, and every client of another address, needs a token or an API key.
 * `ftuned --new-dashboard-token` prints a fresh random token once and keeps
 * only its BLAKE2b hash in state_dir/dashboard-token.  A client sends it
 * as `Authorization: Bearer` or in the HttpOnly cookie the login page sets.
 * The hash file is read on each check, so a new token replaces the old at
 * once.  Requests must name this server in Host (DNS rebinding) and, when
 * they write, come from our own Origin.
 */
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <civetweb.h>
#include <jansson.h>
#include <sodium.h>

#include "deploy.h"
#include "fsutil.h"
#include "log.h"
#include "openai.h"
#include "web.h"
#include "web_api.h"
#include "web_conn.h"
#include "web_peer.h"
#include "web_route.h"

#define TOKEN_BYTES 32                       /* random bytes in a token */
#define TOKEN_HASH_BYTES crypto_generichash_BYTES
#define TOKEN_COOKIE "ftuned_token"
#define TOKEN_TEXT_MAX 128                   /* longest token we look at */

/* Against slowloris: civetweb 1.15 gives a connection's worker thread
 * request_timeout_ms in all to receive the request head (and each later
 * read or write that much), instead of our old 10 s; accepted connections
 * wait in a bounded queue, then in the kernel's backlog.  One client may
 * hold at most http_max_conns_per_user of them (web_conn.h), so the other
 * workers stay free for everyone else. */
#define REQUEST_TIMEOUT_MS "2000"
#define CONNECTION_QUEUE "32"
#define LISTEN_BACKLOG "64"

struct web_server {
	struct mg_context *ctx;
	struct web_conn_guard *guard;
	struct ftuned *d;
	int need_token;              /* no loopback peer is let in without a credential */
	int tls;
	int port;                    /* the bound port, which Host must name */
	char addr[64];               /* http_listen's address, "[::1]" style for IPv6 */
};

static void
token_path(const struct ft_config *cfg, char *out, size_t len)
{
	snprintf(out, len, "%s/dashboard-token", cfg->state_dir);
}

/* Reads the stored hash; -1 when there is no usable one. */
static int
token_hash_load(const struct ft_config *cfg, unsigned char hash[TOKEN_HASH_BYTES])
{
	char path[PATH_MAX + 32], hex[2 * TOKEN_HASH_BYTES + 2];
	size_t bin_len;
	ssize_t n;
	int fd;

	token_path(cfg, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, hex, sizeof(hex) - 1);
	close(fd);
	if (n < 2 * TOKEN_HASH_BYTES)
		return -1;
	hex[2 * TOKEN_HASH_BYTES] = '\0';
	if (sodium_hex2bin(hash, TOKEN_HASH_BYTES, hex, 2 * TOKEN_HASH_BYTES, NULL, &bin_len,
	    NULL) != 0 || bin_len != TOKEN_HASH_BYTES)
		return -1;
	return 0;
}

int
web_token_new(const struct ft_config *cfg, char *token, size_t token_len, char *err,
    size_t err_len)
{
	unsigned char raw[TOKEN_BYTES], hash[TOKEN_HASH_BYTES];
	char path[PATH_MAX + 32], hex[2 * TOKEN_HASH_BYTES + 2];
	char text[sodium_base64_ENCODED_LEN(TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

	if (sodium_init() < 0) {
		snprintf(err, err_len, "libsodium cannot start");
		return -1;
	}
	if (token_len < sizeof(text)) {
		snprintf(err, err_len, "token buffer too small");
		return -1;
	}
	if (fs_mkdirs(cfg->state_dir, 0750) != 0) {
		snprintf(err, err_len, "state_dir %s: %s", cfg->state_dir, strerror(errno));
		return -1;
	}
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(text, sizeof(text), raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)text, strlen(text), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
	strcat(hex, "\n");
	token_path(cfg, path, sizeof(path));
	if (fs_write_atomic(path, hex, strlen(hex), err, err_len) != 0)
		return -1;
	memcpy(token, text, strlen(text) + 1);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(text, sizeof(text));
	return 0;
}

/* 1 when text is the current token (compared in constant time by hash). */
static int
token_check(const struct ft_config *cfg, const char *text, size_t len)
{
	unsigned char want[TOKEN_HASH_BYTES], got[TOKEN_HASH_BYTES];

	if (len == 0 || len > TOKEN_TEXT_MAX || token_hash_load(cfg, want) != 0)
		return 0;
	crypto_generichash(got, sizeof(got), (const unsigned char *)text, len, NULL, 0);
	return sodium_memcmp(want, got, sizeof(want)) == 0;
}

int
web_request_refusal(struct mg_connection *conn, const char **why)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct web_server *w = mg_get_user_data(mg_get_context(conn));
	const char *host = mg_get_header(conn, "Host"), *origin = mg_get_header(conn, "Origin");

	if (!web_host_ok(host, w->d->cfg.http_host_names, w->addr, w->port, w->tls)) {
		*why = "the Host header does not name this server (see http_host_names)";
		return 400;
	}
	if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0 &&
	    origin != NULL && !web_origin_ok(origin, host, w->tls)) {
		*why = "cross-origin requests may not write: the Origin header is not this server";
		return 403;
	}
	return 0;
}

int
web_caller_identify(struct mg_connection *conn, struct web_caller *who, char *why,
    size_t why_len)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct web_server *w = mg_get_user_data(mg_get_context(conn));
	const char *auth = mg_get_header(conn, "Authorization");
	const char *cookies = mg_get_header(conn, "Cookie"), *cred;
	const struct ft_config *cfg = &w->d->cfg;
	char tok[TOKEN_TEXT_MAX + 2];
	int n;

	memset(who, 0, sizeof(*who));
	if (auth != NULL) {
		if ((cred = web_bearer(auth)) == NULL) {
			snprintf(why, why_len, "send the token or key as 'Authorization: Bearer ...'");
			return -1;
		}
		if (deploy_key_check(w->d, cred, strlen(cred), &who->key_id, &who->uid)) {
			who->by = WEB_CALLER_KEY;
			return 0;
		}
		if (token_check(cfg, cred, strlen(cred))) {
			who->by = WEB_CALLER_TOKEN;
			who->admin = 1;
			return 0;
		}
		snprintf(why, why_len, "not an active API key or the dashboard token");
		return -1;
	}
	if (cookies != NULL && (n = mg_get_cookie(cookies, TOKEN_COOKIE, tok, sizeof(tok))) > 0 &&
	    token_check(cfg, tok, (size_t)n)) {
		who->by = WEB_CALLER_TOKEN;
		who->admin = 1;
		return 0;
	}
	if (w->need_token) {
		snprintf(why, why_len, "a dashboard token or an API key is required "
		    "(Authorization: Bearer)");
		return -1;
	}
	if (web_peer_uid(ri->remote_addr, ri->remote_port, ri->server_port, &who->uid) != 0) {
		snprintf(why, why_len, "a dashboard token or an API key is required: the client's "
		    "user is unknown (only loopback clients are known)");
		return -1;
	}
	if (!web_peer_may_control(who->uid, cfg->socket_url, cfg->admin_group)) {
		snprintf(why, why_len, "a dashboard token or an API key is required: uid %u may not "
		    "use the control socket", who->uid);
		return -1;
	}
	who->by = WEB_CALLER_PEER;
	who->admin = web_peer_admin(who->uid, cfg->admin_group);
	return 0;
}

static void
send_redirect(struct mg_connection *conn, const char *to, const char *cookie)
{
	mg_printf(conn, "HTTP/1.1 303 See Other\r\n"
	    "Location: %s\r\n"
	    "%s"
	    "Content-Length: 0\r\n"
	    "Cache-Control: no-store\r\n"
	    WEB_SECURITY_HEADERS "\r\n"
	    "Connection: close\r\n\r\n", to, cookie);
}

/* POST /login with token=...: the only request that is not a GET.  A good
 * token becomes an HttpOnly, SameSite=Strict cookie; scripts never see it. */
static void
login(struct web_server *w, struct mg_connection *conn)
{
	char body[512], tok[TOKEN_TEXT_MAX + 2], cookie[TOKEN_TEXT_MAX + 128];
	int n = 0, r;

	while (n < (int)sizeof(body) - 1 && (r = mg_read(conn, body + n, sizeof(body) - 1 - n)) > 0)
		n += r;
	body[n] = '\0';
	r = mg_get_var(body, (size_t)n, "token", tok, sizeof(tok));
	if (r <= 0 || !token_check(&w->d->cfg, tok, (size_t)r)) {
		log_warn("http: dashboard login refused");
		send_redirect(conn, "/login.html?failed", "");
		return;
	}
	snprintf(cookie, sizeof(cookie), "Set-Cookie: " TOKEN_COOKIE "=%s; Path=/; HttpOnly; "
	    "SameSite=Strict%s\r\n", tok, w->tls ? "; Secure" : "");
	sodium_memzero(tok, sizeof(tok));
	send_redirect(conn, "/", cookie);
}

/* civetweb serves a static file only if its path maps to a regular file
 * under web_root (web_static_path): never a directory, so never a listing,
 * and never a dot segment or hidden file.  Non-zero means answered here. */
static int
static_file_check(struct web_server *w, struct mg_connection *conn, const char *uri)
{
	char rel[PATH_MAX], path[2 * PATH_MAX + 2];
	struct stat sb;

	if (web_static_path(uri, rel, sizeof(rel)) != 0) {
		web_send_error(conn, 404, "no such file");
		return 404;
	}
	snprintf(path, sizeof(path), "%s/%s", w->d->cfg.web_root, rel);
	if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		web_send_error(conn, 404, "no such file");
		return 404;
	}
	return 0;
}

/* Every request passes here first: Host and Origin, method, caller; then
 * web_api.c answers the JSON or civetweb serves the file.  Non-zero means
 * answered here. */
static int
begin_request(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct web_server *w = mg_get_user_data(mg_get_context(conn));
	const char *uri = ri->local_uri ? ri->local_uri : "", *refusal;
	int api = strncmp(uri, "/api/", 5) == 0, status;
	int is_get = strcmp(ri->request_method, "GET") == 0 ||
	    strcmp(ri->request_method, "HEAD") == 0;
	struct web_caller who;
	char why[160];

	/* The OpenAI-compatible API makes the same checks with OpenAI's errors. */
	if (strncmp(uri, "/v1/", 4) == 0)
		return 0;
	if ((status = web_request_refusal(conn, &refusal)) != 0) {
		web_send_error(conn, status, refusal);
		return status;
	}
	if (strcmp(uri, "/login") == 0 && strcmp(ri->request_method, "POST") == 0) {
		login(w, conn);
		return 303;
	}
	if (!is_get) {
		web_send_error(conn, 405, "the dashboard is read-only: only GET is allowed");
		return 405;
	}
	/* The login page and its stylesheet are the only files open to all. */
	if (strcmp(uri, "/login.html") == 0 || strcmp(uri, "/style.css") == 0 ||
	    strcmp(uri, "/login.js") == 0)
		return static_file_check(w, conn, uri);
	if (web_caller_identify(conn, &who, why, sizeof(why)) != 0) {
		if (api) {
			web_send_error(conn, 401, why);
			return 401;
		}
		send_redirect(conn, "/login.html", "");
		return 303;
	}
	if (api) {
		web_api_serve(conn, w->d, &who);
		return 200;
	}
	return static_file_check(w, conn, uri);
}

/* A new connection on its worker, before anything is read: the client's
 * excess connections (this one, if it is one) are shut down. */
static int
init_connection(const struct mg_connection *conn, void **conn_data)
{
	struct mg_context *ctx = mg_get_context(conn);
	struct web_server *w = mg_get_user_data(ctx);
	struct mg_server_port port;

	*conn_data = NULL;
	if (mg_get_server_ports(ctx, 1, &port) == 1)
		web_conn_guard_check(w->guard, port.port);
	return 0;
}

static int
log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	log_warn("http: %s", message);
	return 1;
}

int
web_server_start(struct ftuned *d, struct web_server **out, char *err, size_t err_len)
{
	char threads[16], host[64], ports[144];
	unsigned char hash[TOKEN_HASH_BYTES];
	struct mg_callbacks cb;
	struct mg_server_port port;
	struct web_server *w;
	int loopback;

	if (d->cfg.http_listen[0] == '\0') {
		*out = NULL;
		return 0;
	}
	/* The config table's checks have refused a malformed http_listen and
	 * http_auth, and a certificate this civetweb cannot serve. */
	loopback = config_listen_loopback(d->cfg.http_listen, host, sizeof(host)) == 1;
	if (sodium_init() < 0) {
		snprintf(err, err_len, "libsodium cannot start");
		return -1;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if (web_conn_guard_new(d->cfg.http_max_conns_per_user, d->cfg.http_tls_certificate[0] == '\0',
	    &w->guard) != 0) {
		snprintf(err, err_len, "out of memory");
		free(w);
		return -1;
	}
	w->d = d;
	w->need_token = !loopback || strcmp(d->cfg.http_auth, "token") == 0;
	w->tls = d->cfg.http_tls_certificate[0] != '\0';
	if (w->need_token && token_hash_load(&d->cfg, hash) != 0) {
		snprintf(err, err_len, "http_listen %s needs a dashboard token and %s/dashboard-token "
		    "has none: run ftuned --new-dashboard-token", d->cfg.http_listen, d->cfg.state_dir);
		web_conn_guard_free(w->guard);
		free(w);
		return -1;
	}
	snprintf(threads, sizeof(threads), "%d", d->cfg.http_threads);
	snprintf(ports, sizeof(ports), "%s%s", d->cfg.http_listen, w->tls ? "s" : "");
	const char *options[] = {
		"listening_ports", ports,
		"document_root", d->cfg.web_root,
		"enable_directory_listing", "no",
		"num_threads", threads,
		"request_timeout_ms", REQUEST_TIMEOUT_MS,
		"connection_queue", CONNECTION_QUEUE,
		"listen_backlog", LISTEN_BACKLOG,
		"additional_header", WEB_SECURITY_HEADERS,
		"index_files", "index.html",
		/* Last, so that without TLS the NULL ends the list here. */
		w->tls ? "ssl_certificate" : NULL, d->cfg.http_tls_certificate,
		"ssl_protocol_version", "4", /* TLS 1.2 and later */
		NULL,
	};
	memset(&cb, 0, sizeof(cb));
	cb.log_message = log_message;
	cb.begin_request = begin_request;
	cb.init_connection = init_connection;
	/* Not MG_FEATURES_TLS: Debian 12's civetweb 1.15 then half-loads
	 * OpenSSL 3 (it asks for SSL_get_peer_certificate, gone in 3.0) and
	 * crashes on the first connection; mg_start loads it itself and fails
	 * cleanly instead. */
	mg_init_library(0);
	if ((w->ctx = mg_start(&cb, w, options)) == NULL) {
		snprintf(err, err_len, "http: cannot listen on %s%s (see log)", d->cfg.http_listen,
		    w->tls ? " with TLS: civetweb could not set up OpenSSL or the certificate" : "");
		web_conn_guard_free(w->guard);
		free(w);
		mg_exit_library();
		return -1;
	}
	openai_register(w->ctx, d);
	if (mg_get_server_ports(w->ctx, 1, &port) != 1) {
		snprintf(err, err_len, "http: no listening port");
		web_server_stop(w);
		return -1;
	}
	w->port = port.port;
	/* A wildcard address is no name: such a server needs http_host_names. */
	if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
		snprintf(w->addr, sizeof(w->addr), strchr(host, ':') ? "[%s]" : "%s", host);
	snprintf(d->http_url, sizeof(d->http_url), strchr(host, ':') ? "%s://[%s]:%d/" :
	    "%s://%s:%d/", w->tls ? "https" : "http", host, port.port);
	if (w->need_token)
		log_info("http: dashboard requires a token");
	*out = w;
	return 0;
}

void
web_server_stop(struct web_server *w)
{
	if (w == NULL)
		return;
	mg_stop(w->ctx);
	mg_exit_library();
	web_conn_guard_free(w->guard);
	free(w);
}
