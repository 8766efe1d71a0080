/*
 * web_api.h - the dashboard's read-only JSON API under /api/v1/, served by
 * web.c's civetweb handler from the same state the RPCs read.
 */
#ifndef FT_WEB_API_H
#define FT_WEB_API_H

#include <civetweb.h>
#include <jansson.h>

#include "ftuned.h"

/* Sent with every response, static or API: no inline scripts or styles,
 * nothing loaded from elsewhere, no framing. */
#define WEB_SECURITY_HEADERS \
	"Content-Security-Policy: default-src 'self'; script-src 'self'; " \
	"style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n" \
	"X-Content-Type-Options: nosniff\r\n" \
	"Referrer-Policy: no-referrer"

/* Largest page any list endpoint returns, whatever the query asks. */
#define WEB_API_PAGE_MAX 1000

/* web_api_serve answers one GET under /api/v1/ (ri->local_uri): 200 with
 * the JSON, or 400/404/500 with {"error": {"code", "message"}}. */
void web_api_serve(struct mg_connection *conn, struct ftuned *d);

/* web_send_json sends body (consumed) with status and the dashboard's
 * security headers; web_send_error sends {"error": {code, message}}. */
void web_send_json(struct mg_connection *conn, int status, json_t *body);
void web_send_error(struct mg_connection *conn, int status, const char *message);

#endif
