/*
 * web.h - the embedded HTTP server (civetweb): the static dashboard from
 * web_root, the JSON API under /api/v1/ and the OpenAI API under /v1/.
 *
 * Who may use it (one rule for all three, web_caller_identify): a request
 * with a dashboard token or an API key; or, on a loopback listener with
 * http_auth = auto, a loopback client whose Unix uid (from the kernel's
 * socket table, web_peer.h) could use the control socket.  Everyone else
 * gets 401, so HTTP grants nobody more than the 0660 socket does.
 */
#ifndef FT_WEB_H
#define FT_WEB_H

#include <stddef.h>

#include <civetweb.h>
#include <stdint.h>

#include "config.h"
#include "ftuned.h"

struct web_server;

/* web_server_start listens on d->cfg.http_listen and records the URL it
 * bound in d->http_url.  Returns 0 and sets *out, or -1 with a message in
 * err.  With an empty http_listen it succeeds and sets *out to NULL. */
int web_server_start(struct ftuned *d, struct web_server **out, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* web_token_new makes a fresh random dashboard token, writes it (base64url,
 * NUL-terminated, at most 64 bytes) to token and stores only its BLAKE2b
 * hash in cfg->state_dir/dashboard-token, replacing the previous token.
 * Returns 0, or -1 with a message in err. */
int web_token_new(const struct ft_config *cfg, char *token, size_t token_len, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* Who sent a request, and by which credential. */
enum web_caller_by {
	WEB_CALLER_PEER = 1,         /* a local user who may use the control socket */
	WEB_CALLER_TOKEN,            /* the dashboard token (the operator's) */
	WEB_CALLER_KEY,              /* an API key: it acts as the user who made it */
};

struct web_caller {
	enum web_caller_by by;
	uint32_t uid;                /* the peer's or the key owner's; 0 with the token */
	int admin;                   /* sees every user's keys: the token, or an admin peer */
	int64_t key_id;              /* WEB_CALLER_KEY: the key, to count its usage */
};

/* web_request_refusal checks what every request must pass before any
 * credential is looked at: a Host header naming this server (web_host_ok,
 * against DNS rebinding) and, on anything but GET and HEAD, no Origin but
 * ours.  0, or the HTTP status to answer (400, 403) with *why. */
int web_request_refusal(struct mg_connection *conn, const char **why);

/* web_caller_identify fills *who for the request on conn: an
 * Authorization: Bearer header (scheme in any case) with an API key or the
 * dashboard token, the token's cookie, or else the loopback peer (see
 * above).  0, or -1 with a message for a 401 in why. */
int web_caller_identify(struct mg_connection *conn, struct web_caller *who, char *why,
    size_t why_len) __attribute__((warn_unused_result));

/* web_server_stop stops the server and waits for its threads. NULL is
 * allowed. */
void web_server_stop(struct web_server *w);

#endif
