/*
 * web_api.h - the dashboard's read-only JSON API under /api/v1/, served by
 * web.c's civetweb handler from the same state the RPCs read.
 */
#ifndef FT_WEB_API_H
#define FT_WEB_API_H

#include <civetweb.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ft_json.h"
#include "ftuned.h"
#include "web.h"
#include "web_route.h"

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

/* web_api_serve answers one GET under /api/v1/ (ri->local_uri) from who
 * (web.c identified it): 200 with the JSON, or 400/404/500/503 with
 * {"error": {"code", "message"}}. */
void web_api_serve(struct mg_connection *conn, struct ftuned *d, const struct web_caller *who);

/* web_send_json sends body (consumed) with status and the dashboard's
 * security headers; web_send_error sends {"error": {code, message}}. */
void web_send_json(struct mg_connection *conn, int status, json_t *body);
void web_send_error(struct mg_connection *conn, int status, const char *message);

/* A request's query string.  A missing key leaves the output as it is; a
 * malformed or out-of-range value records the first problem in bad, which
 * the endpoint answers with a 400, so a typo is never silently ignored. */
struct web_query {
	const char *qs;         /* NULL when there is none */
	size_t len;
	char bad[160];          /* "" while every value was good */
};

/* web_query_str copies key's url-decoded value into out; 1 when present.
 * A value that is malformed, too long, or given twice is a problem in bad. */
int web_query_str(struct web_query *q, const char *key, char *out, size_t len);

/* web_query_uint parses key as a decimal integer in [0, max] into *out. */
void web_query_uint(struct web_query *q, const char *key, uint64_t max, uint64_t *out);

/* web_json_num: a real, or null for NaN and infinities (unknown values). */
json_t *web_json_num(double v);

/* Evaluations (web_eval.c), read from the eval tables: the list, one
 * evaluation with its summary, and a sorted, filtered page of examples. */
void web_eval_list(struct mg_connection *conn, struct ftuned *d);
void web_eval_show(struct mg_connection *conn, struct ftuned *d, int64_t id);
void web_eval_examples(struct mg_connection *conn, struct ftuned *d, int64_t id,
    struct web_query *q);

#endif
