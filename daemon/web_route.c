/*
 * web_route.c - URL routing, percent-decoding, query parameters and the
 * static file mapping of the dashboard, without civetweb (see web_route.h).
 */
#include <stdio.h>
#include <string.h>

#include "web_route.h"

#define QUERY_KEY_MAX 64 /* a longer parameter name matches no key */

int
web_parse_id(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* The next segment of p (up to '/' or the end): its length, or -1 when it
 * is empty, "." or "..", which a normalised path never holds. */
static int
segment(const char *p, size_t *len)
{
	size_t n = strcspn(p, "/");

	if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return -1;
	*len = n;
	return 0;
}

static int
fail(struct web_route *r, const char *why)
{
	r->why = why;
	return -1;
}

int
web_route_parse(const char *path, struct web_route *r)
{
	static const struct {
		const char *name;
		enum web_endpoint list, one, sub_ep;
		const char *sub, *missing;
		int by_id;
	} coll[] = {
		{ "jobs", WEB_EP_JOBS, WEB_EP_JOB, WEB_EP_JOB_METRICS, "metrics", "no such job", 1 },
		{ "evals", WEB_EP_EVALS, WEB_EP_EVAL, WEB_EP_EVAL_EXAMPLES, "examples",
		  "no such evaluation", 1 },
		{ "models", WEB_EP_MODELS, WEB_EP_MODEL, WEB_EP_MODEL, NULL, "no such model", 0 },
		{ "datasets", WEB_EP_DATASETS, WEB_EP_DATASET, WEB_EP_DATASET_TOKENS, "tokens",
		  "no such dataset", 0 },
	};
	const char *p, *id;
	size_t n, id_len, i;

	memset(r, 0, sizeof(*r));
	if (strncmp(path, "/api/v1/", 8) != 0)
		return fail(r, "no such API endpoint");
	p = path + 8;
	if (strcmp(p, "status") == 0) {
		r->ep = WEB_EP_STATUS;
		return 0;
	}
	if (strcmp(p, "keys") == 0) {
		r->ep = WEB_EP_KEYS;
		return 0;
	}
	if (segment(p, &n) != 0)
		return fail(r, "no such API endpoint");
	for (i = 0; i < sizeof(coll) / sizeof(coll[0]); i++)
		if (strlen(coll[i].name) == n && memcmp(p, coll[i].name, n) == 0)
			break;
	if (i == sizeof(coll) / sizeof(coll[0]))
		return fail(r, "no such API endpoint");
	p += n;
	if (*p == '\0') {
		r->ep = coll[i].list;
		return 0;
	}
	p++;
	if (segment(p, &id_len) != 0)
		return fail(r, coll[i].missing);
	id = p;
	if (coll[i].by_id ? web_parse_id(id, id_len, &r->id) != 0 : id_len > WEB_ROUTE_NAME_MAX)
		return fail(r, coll[i].missing);
	if (!coll[i].by_id)
		memcpy(r->name, id, id_len);
	p += id_len;
	if (*p == '\0') {
		r->ep = coll[i].one;
		return 0;
	}
	p++;
	/* Jobs have two sub-resources; the table names the first. */
	if (i == 0 && strcmp(p, "logs") == 0) {
		r->ep = WEB_EP_JOB_LOGS;
		return 0;
	}
	if (coll[i].sub != NULL && strcmp(p, coll[i].sub) == 0) {
		r->ep = coll[i].sub_ep;
		return 0;
	}
	return fail(r, "no such API endpoint");
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
web_url_decode(const char *s, size_t len, int form, char *out, size_t out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3 || (hi = hex_value(s[i + 1])) < 0 ||
			    (lo = hex_value(s[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		if (c == '\0' || o + 1 >= out_len)
			return -1;
		out[o++] = (char)c;
	}
	if (out_len == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

int
web_query_find(const char *qs, size_t len, const char *key, char *out, size_t out_len)
{
	const char *p = qs, *end = qs + len;
	int found = 0;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *name_end = eq ? eq : stop;
		char name[QUERY_KEY_MAX + 1];

		/* A name too long for any key, or malformed, matches none. */
		if (web_url_decode(p, (size_t)(name_end - p), 1, name, sizeof(name)) >= 0 &&
		    strcmp(name, key) == 0) {
			if (found)
				return -2;
			found = 1;
			if (eq == NULL) {
				if (out_len == 0)
					return -1;
				out[0] = '\0';
			} else if (web_url_decode(eq + 1, (size_t)(stop - eq - 1), 1, out, out_len) < 0) {
				return -1;
			}
		}
		p = stop + 1;
	}
	return found;
}

int
web_static_path(const char *path, char *out, size_t out_len)
{
	const char *p;
	size_t o = 0, n;

	if (path[0] != '/')
		return -1;
	for (p = path + 1; *p != '\0'; p += n + (p[n] == '/')) {
		if (segment(p, &n) != 0 || p[0] == '.')
			return -1;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
				return -1;
		if (o + n + 1 >= out_len)
			return -1;
		memcpy(out + o, p, n + (p[n] == '/'));
		o += n + (p[n] == '/');
	}
	if (o == 0 || out[o - 1] == '/') {
		if (o + sizeof("index.html") > out_len)
			return -1;
		memcpy(out + o, "index.html", sizeof("index.html"));
		return 0;
	}
	out[o] = '\0';
	return 0;
}
