/*
 * fuzz_web.c - libFuzzer target for the dashboard's URL handling
 * (web_route.c, and web_api.c's query readers): an input is a path with an
 * optional "?query", as civetweb hands them over.  Besides not crashing,
 * every result must keep its promise: routes carry a positive id or a
 * short name, static paths never leave web_root, query numbers stay in
 * range, and decoding round-trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web_api.h"
#include "web_route.h"

/* A static path is relative, has no empty, dot or hidden segment. */
static void
check_static(const char *rel)
{
	const char *p = rel;

	if (rel[0] == '/' || rel[0] == '\0')
		abort();
	for (;;) {
		size_t n = strcspn(p, "/");

		if (n == 0 || p[0] == '.' || memchr(p, '\\', n) != NULL)
			abort();
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
}

static void
check_route(const struct web_route *r)
{
	switch (r->ep) {
	case WEB_EP_JOB: case WEB_EP_JOB_METRICS: case WEB_EP_JOB_LOGS:
	case WEB_EP_EVAL: case WEB_EP_EVAL_EXAMPLES:
		if (r->id <= 0 || r->name[0] != '\0')
			abort();
		break;
	case WEB_EP_MODEL: case WEB_EP_DATASET: case WEB_EP_DATASET_TOKENS:
		if (r->id != 0 || r->name[0] == '\0' || strchr(r->name, '/') != NULL ||
		    strcmp(r->name, ".") == 0 || strcmp(r->name, "..") == 0)
			abort();
		break;
	default:
		if (r->id != 0 || r->name[0] != '\0')
			abort();
	}
}

/* Decoding what was decoded and re-encoded gives the same bytes. */
static void
check_decode(const char *s, size_t len)
{
	char out[512], enc[3 * sizeof(out)], again[sizeof(out)];
	int n = web_url_decode(s, len, 1, out, sizeof(out)), m;
	size_t e = 0;

	if (n < 0)
		return;
	if ((size_t)n > len || strlen(out) != (size_t)n)
		abort();
	for (int i = 0; i < n; i++)
		e += (size_t)snprintf(enc + e, sizeof(enc) - e, "%%%02X", (unsigned char)out[i]);
	m = web_url_decode(enc, e, 0, again, sizeof(again));
	if (m != n || memcmp(out, again, (size_t)n) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *keys[] = { "limit", "after", "offset", "samples", "state", "sort",
	    "q", "metric", "model", "template", "seq_len", "user" };
	char *path, *qs, rel[256], val[64];
	struct web_route r;
	uint64_t v;

	if ((path = malloc(size + 1)) == NULL)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0'; /* civetweb's strings end at the first NUL */
	if ((qs = strchr(path, '?')) != NULL)
		*qs++ = '\0';
	if (web_route_parse(path, &r) == 0)
		check_route(&r);
	else if (r.why == NULL)
		abort();
	if (web_static_path(path, rel, sizeof(rel)) == 0)
		check_static(rel);
	check_decode(path, strlen(path));
	if (qs != NULL) {
		struct web_query q = { qs, strlen(qs), "" };

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			v = 7;
			web_query_uint(&q, keys[i], 1000, &v);
			if (v > 1000)
				abort();
			if (web_query_str(&q, keys[i], val, sizeof(val)) && strlen(val) >= sizeof(val))
				abort();
		}
		check_decode(qs, strlen(qs));
	}
	free(path);
	return 0;
}
