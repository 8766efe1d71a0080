/*
 * web.h - the embedded HTTP server (civetweb): the static dashboard from
 * web_root and the JSON API under /api/v1/.  Read-only; a listener on a
 * non-loopback address (or http_auth = token) requires the dashboard token.
 */
#ifndef FT_WEB_H
#define FT_WEB_H

#include <stddef.h>

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

/* web_server_stop stops the server and waits for its threads. NULL is
 * allowed. */
void web_server_stop(struct web_server *w);

#endif
