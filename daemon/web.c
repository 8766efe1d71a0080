/*
 * web.c - civetweb embedded as a small, safe dashboard server.
 *
 * civetweb's defaults suit a file server, not a daemon: we bind loopback
 * only, turn directory listing off, size the thread pool, and send a
 * Content-Security-Policy that forbids inline scripts.  /api/v1/ is served
 * by api_handler from the same state the RPCs read.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>
#include <jansson.h>

#include "log.h"
#include "web.h"

struct web_server {
	struct mg_context *ctx;
};

#define SECURITY_HEADERS \
	"Content-Security-Policy: default-src 'self'; script-src 'self'; " \
	"style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n" \
	"X-Content-Type-Options: nosniff\r\n" \
	"Referrer-Policy: no-referrer"

static void
send_json(struct mg_connection *conn, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;

	mg_printf(conn, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    SECURITY_HEADERS "\r\n"
	    "Connection: close\r\n\r\n",
	    status, mg_get_response_code_text(conn, status), len);
	if (text != NULL)
		mg_write(conn, text, len);
	free(text);
	json_decref(body);
}

static void
send_error(struct mg_connection *conn, int status, const char *message)
{
	send_json(conn, status, json_pack("{s:{s:i,s:s}}", "error", "code",
	    status, "message", message));
}

static void
api_status(struct mg_connection *conn, struct ftuned *d)
{
	struct ft_status st;

	if (ftuned_status_collect(d, &st) != 0) {
		send_error(conn, 500, "state database unreadable");
		return;
	}
	send_json(conn, 200, json_pack("{s:s,s:I,s:i,s:s,s:I,s:I,s:s,s:s,s:I}",
	    "version", st.version,
	    "uptime_ms", (json_int_t)st.uptime_ms,
	    "pid", st.pid,
	    "state_dir", st.state_dir,
	    "queue_length", (json_int_t)st.queue_length,
	    "training_threads", (json_int_t)st.training_threads,
	    "http_url", st.http_url,
	    "socket_url", st.socket_url,
	    "schema_version", (json_int_t)st.schema_version));
}

static int
api_handler(struct mg_connection *conn, void *arg)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct ftuned *d = arg;
	const char *uri = ri->local_uri;

	if (strcmp(ri->request_method, "GET") != 0) {
		send_error(conn, 405, "the API is read-only: only GET is allowed");
		return 405;
	}
	if (strcmp(uri, "/api/v1/status") == 0) {
		api_status(conn, d);
		return 200;
	}
	send_error(conn, 404, "no such API endpoint");
	return 404;
}

static int
log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	log_warn("http: %s", message);
	return 1;
}

/* Only loopback addresses: the dashboard has no authentication yet. */
static int
is_loopback(const char *listen, char *host, size_t host_len)
{
	const char *colon = strrchr(listen, ':');
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	if (colon == NULL || colon == listen)
		return 0;
	n = (size_t)(colon - listen);
	if (listen[0] == '[' && colon[-1] == ']') {
		listen++;
		n -= 2;
	}
	if (n >= host_len)
		return 0;
	memcpy(host, listen, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int
web_server_start(struct ftuned *d, struct web_server **out, char *err, size_t err_len)
{
	char threads[16], host[64];
	struct mg_callbacks cb;
	struct mg_server_port port;
	struct web_server *w;

	if (d->cfg.http_listen[0] == '\0') {
		*out = NULL;
		return 0;
	}
	if (!is_loopback(d->cfg.http_listen, host, sizeof(host))) {
		snprintf(err, err_len, "http_listen %s: only loopback addresses "
		    "(127.0.0.0/8, [::1]) are allowed", d->cfg.http_listen);
		return -1;
	}
	snprintf(threads, sizeof(threads), "%d", d->cfg.http_threads);
	const char *options[] = {
		"listening_ports", d->cfg.http_listen,
		"document_root", d->cfg.web_root,
		"enable_directory_listing", "no",
		"num_threads", threads,
		"request_timeout_ms", "10000",
		"additional_header", SECURITY_HEADERS,
		"index_files", "index.html",
		NULL,
	};
	memset(&cb, 0, sizeof(cb));
	cb.log_message = log_message;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	mg_init_library(0);
	if ((w->ctx = mg_start(&cb, NULL, options)) == NULL) {
		snprintf(err, err_len, "http: cannot listen on %s (see log)", d->cfg.http_listen);
		free(w);
		mg_exit_library();
		return -1;
	}
	mg_set_request_handler(w->ctx, "/api/", api_handler, d);
	if (mg_get_server_ports(w->ctx, 1, &port) != 1) {
		snprintf(err, err_len, "http: no listening port");
		web_server_stop(w);
		return -1;
	}
	snprintf(d->http_url, sizeof(d->http_url), strchr(host, ':') ?
	    "http://[%s]:%d/" : "http://%s:%d/", host, port.port);
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
	free(w);
}
