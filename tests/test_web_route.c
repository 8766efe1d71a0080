/* test_web_route.c - the dashboard's URL handling (web_route.c, and
 * web_api.c's query readers) on hand-written hostile cases. */
#include <stdint.h>
#include <string.h>

#include "ft_test.h"
#include "web_api.h"
#include "web_route.h"

static int
route(const char *path, enum web_endpoint ep, int64_t id, const char *name)
{
	struct web_route r;

	return web_route_parse(path, &r) == 0 && r.ep == ep && r.id == id &&
	    strcmp(r.name, name) == 0;
}

static const char *
refused(const char *path)
{
	struct web_route r;

	return web_route_parse(path, &r) == 0 ? "(accepted)" : r.why;
}

static const char *
static_path(const char *path)
{
	static char out[64];

	return web_static_path(path, out, sizeof(out)) == 0 ? out : "(refused)";
}

/* web_query_uint over qs for key in [0, max], default 7; the problem, if
 * any, in bad. */
static uint64_t
query_uint(const char *qs, const char *key, uint64_t max, char *bad)
{
	struct web_query q = { qs, strlen(qs), "" };
	uint64_t v = 7;

	web_query_uint(&q, key, max, &v);
	strcpy(bad, q.bad);
	return v;
}

int
main(void)
{
	char out[16], bad[160], name[WEB_ROUTE_NAME_MAX + 32];
	int64_t id;

	/* Every endpoint. */
	CHECK(route("/api/v1/status", WEB_EP_STATUS, 0, ""));
	CHECK(route("/api/v1/keys", WEB_EP_KEYS, 0, ""));
	CHECK(route("/api/v1/jobs", WEB_EP_JOBS, 0, ""));
	CHECK(route("/api/v1/jobs/12", WEB_EP_JOB, 12, ""));
	CHECK(route("/api/v1/jobs/12/metrics", WEB_EP_JOB_METRICS, 12, ""));
	CHECK(route("/api/v1/jobs/12/logs", WEB_EP_JOB_LOGS, 12, ""));
	CHECK(route("/api/v1/models", WEB_EP_MODELS, 0, ""));
	CHECK(route("/api/v1/models/stories260K", WEB_EP_MODEL, 0, "stories260K"));
	CHECK(route("/api/v1/datasets", WEB_EP_DATASETS, 0, ""));
	CHECK(route("/api/v1/datasets/lines", WEB_EP_DATASET, 0, "lines"));
	CHECK(route("/api/v1/datasets/lines/tokens", WEB_EP_DATASET_TOKENS, 0, "lines"));
	CHECK(route("/api/v1/evals", WEB_EP_EVALS, 0, ""));
	CHECK(route("/api/v1/evals/3", WEB_EP_EVAL, 3, ""));
	CHECK(route("/api/v1/evals/3/examples", WEB_EP_EVAL_EXAMPLES, 3, ""));
	/* A path is decoded once, by civetweb: never again here. */
	CHECK(route("/api/v1/models/a%41", WEB_EP_MODEL, 0, "a%41"));

	/* Ids: positive, decimal, at most 18 digits. */
	CHECK_STR(refused("/api/v1/jobs/0"), "no such job");
	CHECK_STR(refused("/api/v1/jobs/-1"), "no such job");
	CHECK_STR(refused("/api/v1/jobs/+1"), "no such job");
	CHECK_STR(refused("/api/v1/jobs/1e3"), "no such job");
	CHECK_STR(refused("/api/v1/jobs/9999999999999999999"), "no such job");
	CHECK_STR(refused("/api/v1/evals/12345678901234567890123/examples"), "no such evaluation");
	CHECK(route("/api/v1/jobs/999999999999999999", WEB_EP_JOB, 999999999999999999LL, ""));
	CHECK(web_parse_id("007", 3, &id) == 0 && id == 7);
	CHECK(web_parse_id("", 0, &id) != 0);
	CHECK(web_parse_id("1 ", 2, &id) != 0);

	/* Names: at most WEB_ROUTE_NAME_MAX bytes. */
	memset(name, 0, sizeof(name));
	strcpy(name, "/api/v1/models/");
	memset(name + strlen(name), 'm', WEB_ROUTE_NAME_MAX);
	CHECK(route(name, WEB_EP_MODEL, 0, name + strlen("/api/v1/models/")));
	strcat(name, "m");
	CHECK_STR(refused(name), "no such model");

	/* Dot segments, empty segments, unknown endpoints and sub-resources. */
	CHECK_STR(refused("/api/v1/models/.."), "no such model");
	CHECK_STR(refused("/api/v1/models/."), "no such model");
	CHECK_STR(refused("/api/v1/datasets/../status"), "no such dataset");
	CHECK_STR(refused("/api/v1/jobs/"), "no such job");
	CHECK_STR(refused("/api/v1/jobs//1"), "no such job");
	CHECK_STR(refused("/api/v1//jobs"), "no such API endpoint");
	CHECK_STR(refused("//api/v1/jobs"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/jobs/1/metrics/"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/jobs/1/files"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/models/m/files"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/evals/1/metrics"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/status/1"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/keys/dash"), "no such API endpoint");
	CHECK_STR(refused("/api/v1/job"), "no such API endpoint");
	CHECK_STR(refused("/api/v2/status"), "no such API endpoint");
	CHECK_STR(refused(""), "no such API endpoint");

	/* Static files: never a dot segment, hidden name, or escape. */
	CHECK_STR(static_path("/"), "index.html");
	CHECK_STR(static_path("/app.js"), "app.js");
	CHECK_STR(static_path("/folder/"), "folder/index.html");
	CHECK_STR(static_path("/a/b.css"), "a/b.css");
	CHECK_STR(static_path("/../etc/passwd"), "(refused)");
	CHECK_STR(static_path("/a/../../etc/passwd"), "(refused)");
	CHECK_STR(static_path("/a/./b"), "(refused)");
	CHECK_STR(static_path("/.git/config"), "(refused)");
	CHECK_STR(static_path("/.."), "(refused)");
	CHECK_STR(static_path("//etc/passwd"), "(refused)");
	CHECK_STR(static_path("/a//b"), "(refused)");
	CHECK_STR(static_path("/a\\..\\b"), "(refused)");
	CHECK_STR(static_path("/a\nb"), "(refused)");
	CHECK_STR(static_path("etc/passwd"), "(refused)");
	CHECK_STR(static_path("/%2e%2e/x"), "%2e%2e/x"); /* a name, not a dot segment */
	CHECK_STR(static_path("/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789"),
	    "(refused)");
	CHECK_STR(static_path("/0123456789/0123456789/0123456789/0123456789/0123456789/01234/"),
	    "(refused)");

	/* Percent-decoding. */
	CHECK(web_url_decode("a%2e%2E+b", 9, 1, out, sizeof(out)) == 5 && strcmp(out, "a.. b") == 0);
	CHECK(web_url_decode("a+b", 3, 0, out, sizeof(out)) == 3 && strcmp(out, "a+b") == 0);
	CHECK(web_url_decode("a%00b", 5, 1, out, sizeof(out)) == -1);
	CHECK(web_url_decode("a%", 2, 1, out, sizeof(out)) == -1);
	CHECK(web_url_decode("a%4", 3, 1, out, sizeof(out)) == -1);
	CHECK(web_url_decode("%zz", 3, 1, out, sizeof(out)) == -1);
	CHECK(web_url_decode("%41%42", 4, 1, out, sizeof(out)) == -1); /* cut inside an escape */
	CHECK(web_url_decode("0123456789abcdef", 16, 1, out, sizeof(out)) == -1);
	CHECK(web_url_decode("0123456789abcde", 15, 1, out, sizeof(out)) == 15);
	CHECK(web_url_decode("", 0, 1, out, sizeof(out)) == 0 && out[0] == '\0');

	/* Query parameters: found once, absent, repeated, malformed. */
	CHECK(web_query_find("a=1&limit=5", 11, "limit", out, sizeof(out)) == 1 && strcmp(out, "5") == 0);
	CHECK(web_query_find("limit=5", 7, "lim", out, sizeof(out)) == 0);
	CHECK(web_query_find("l%69mit=6", 9, "limit", out, sizeof(out)) == 1 && strcmp(out, "6") == 0);
	CHECK(web_query_find("flag&x=1", 8, "flag", out, sizeof(out)) == 1 && out[0] == '\0');
	CHECK(web_query_find("limit=1&limit=2", 15, "limit", out, sizeof(out)) == -2);
	CHECK(web_query_find("limit=1%00", 10, "limit", out, sizeof(out)) == -1);
	CHECK(web_query_find("&&=&limit=3&", 12, "limit", out, sizeof(out)) == 1 && strcmp(out, "3") == 0);
	CHECK(web_query_find("limit=3", 5, "limit", out, sizeof(out)) == 1 && strcmp(out, "") == 0);

	CHECK(query_uint("limit=20", "limit", 1000, bad) == 20 && bad[0] == '\0');
	CHECK(query_uint("after=0", "after", 1000, bad) == 0 && bad[0] == '\0');
	CHECK(query_uint("other=20", "limit", 1000, bad) == 7 && bad[0] == '\0');
	CHECK(query_uint("limit=1001", "limit", 1000, bad) == 7 && strstr(bad, "[0, 1000]") != NULL);
	CHECK(query_uint("limit=18446744073709551616", "limit", UINT64_MAX, bad) == 7 && bad[0]);
	CHECK(query_uint("limit=99999999999999999999999999999999999", "limit", 1000, bad) == 7 &&
	    bad[0]);
	CHECK(query_uint("limit=-1", "limit", 1000, bad) == 7 && bad[0]);
	CHECK(query_uint("limit=+1", "limit", 1000, bad) == 7 && bad[0]);
	CHECK(query_uint("limit=%201", "limit", 1000, bad) == 7 && bad[0]);
	CHECK(query_uint("limit=", "limit", 1000, bad) == 7 && bad[0]);
	CHECK(query_uint("limit=5&limit=5", "limit", 1000, bad) == 7 &&
	    strstr(bad, "more than once") != NULL);
	CHECK(query_uint("limit=%zz", "limit", 1000, bad) == 7 && strstr(bad, "malformed") != NULL);
	return ft_test_done();
}
