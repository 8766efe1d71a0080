/*
 * web_route.h - the dashboard's URL handling as pure functions, apart from
 * civetweb so that they are unit-tested and fuzzed (tests/fuzz/fuzz_web.c):
 * which /api/v1/ endpoint a path names, percent-decoding and query
 * parameters, and which static file under web_root a path may serve.
 *
 * Paths are civetweb's local_uri: already percent-decoded once, with dot
 * segments and repeated slashes removed.  They are never decoded again
 * (a name "a%41" stays "a%41"); the checks below still refuse what the
 * normalisation should have removed, in case it ever does not.
 */
#ifndef FT_WEB_ROUTE_H
#define FT_WEB_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#define WEB_ROUTE_NAME_MAX 100  /* longest model or dataset name in a path */

enum web_endpoint {
	WEB_EP_STATUS, WEB_EP_KEYS,
	WEB_EP_JOBS, WEB_EP_JOB, WEB_EP_JOB_METRICS, WEB_EP_JOB_LOGS,
	WEB_EP_MODELS, WEB_EP_MODEL,
	WEB_EP_DATASETS, WEB_EP_DATASET, WEB_EP_DATASET_TOKENS,
	WEB_EP_EVALS, WEB_EP_EVAL, WEB_EP_EVAL_EXAMPLES,
};

struct web_route {
	enum web_endpoint ep;
	int64_t id;                          /* jobs and evaluations, else 0 */
	char name[WEB_ROUTE_NAME_MAX + 1];   /* models and datasets, else "" */
	const char *why;                     /* the 404's message when parsing fails */
};

/* web_route_parse fills r with the endpoint that path (from "/api/v1/")
 * names and its id or name.  Returns 0, or -1 with r->why set ("no such
 * job", "no such API endpoint", ...) for an answer of 404. */
int web_route_parse(const char *path, struct web_route *r)
    __attribute__((warn_unused_result));

/* web_parse_id: a positive decimal id of len bytes (no sign, no spaces, at
 * most 18 digits).  0 and *out, or -1 for anything else. */
int web_parse_id(const char *s, size_t len, int64_t *out)
    __attribute__((warn_unused_result));

/* web_url_decode percent-decodes len bytes of s into out, NUL-terminated:
 * %XX with two hex digits, and '+' as a space when form is set (query
 * strings).  Returns the decoded length, or -1 for a bad escape, an encoded
 * NUL, or a result longer than out_len - 1. */
int web_url_decode(const char *s, size_t len, int form, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/* web_query_find decodes the value of key in the query string qs (len
 * bytes, "a=1&b=2"; a key without '=' has the value "") into out.  Returns
 * 1 when key is there once, 0 when it is absent, -1 when a value or name
 * is malformed or too long for out, -2 when key is given more than once
 * (so "limit=1&limit=9" is never read as either). */
int web_query_find(const char *qs, size_t len, const char *key, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/* web_static_path maps a request path to the file it may serve, relative
 * to web_root, into out: "/" and paths ending in '/' get "index.html".
 * Refused (-1): a path not starting with '/', empty, "." or ".." segments,
 * hidden names (a segment starting with '.'), backslashes, control bytes,
 * and results longer than out_len - 1.  Returns 0 on success. */
int web_static_path(const char *path, char *out, size_t out_len)
    __attribute__((warn_unused_result));

#endif
