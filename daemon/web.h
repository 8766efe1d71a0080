/*
 * web.h - the embedded HTTP server (civetweb): the static dashboard from
 * web_root and the JSON API under /api/v1/.  Read-only, loopback only.
 */
#ifndef FT_WEB_H
#define FT_WEB_H

#include <stddef.h>

#include "ftuned.h"

struct web_server;

/* web_server_start listens on d->cfg.http_listen and records the URL it
 * bound in d->http_url.  Returns 0 and sets *out, or -1 with a message in
 * err.  With an empty http_listen it succeeds and sets *out to NULL. */
int web_server_start(struct ftuned *d, struct web_server **out, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* web_server_stop stops the server and waits for its threads. NULL is
 * allowed. */
void web_server_stop(struct web_server *w);

#endif
