/*
 * config.c - the single configuration table.
 *
 * Every option is one row: name, type, where it lives in struct ft_config,
 * default, bounds, a line of documentation, the check that refuses a value
 * the daemon could not use, and whether SIGHUP applies it.  Parsing,
 * defaults, checks (ftuned -n, start and reload alike), reload and the
 * documented default file all come from this table.
 */
#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <grp.h>
#include <nng/nng.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "upload.h"

/* Rows that end at doc (check NULL, flags 0) compile unchanged: the new
 * fields are last and positional rows may stop before them. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

enum cfg_type { CFG_STRING, CFG_INT, CFG_SIZE, CFG_LOGLEVEL };

enum { CFG_RELOAD = 1 };      /* SIGHUP applies the key; others wait for a restart */

/* A check refuses a value (already within its type and bounds) that the
 * daemon would refuse or misuse later, with why[] saying what is wrong. */
typedef int (*cfg_check)(const char *value, char *why, size_t why_len);

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t offset;
	size_t size;          /* buffer size for strings */
	const char *def;
	int64_t min, max;     /* for numbers */
	const char *doc;
	cfg_check check;      /* NULL: the type and bounds are the whole check */
	int flags;            /* CFG_RELOAD */
};

#define STR(field) CFG_STRING, offsetof(struct ft_config, field), sizeof(((struct ft_config *)0)->field)
#define NUM(type, field) type, offsetof(struct ft_config, field), 0

static int
check_path(const char *v, char *why, size_t why_len)
{
	if (v[0] != '/') {
		snprintf(why, why_len, "'%s' is not an absolute path", v);
		return -1;
	}
	return 0;
}

static int
check_path_or_empty(const char *v, char *why, size_t why_len)
{
	return v[0] == '\0' ? 0 : check_path(v, why, why_len);
}

/* import_roots, export_roots: absolute directories, so a root does not
 * depend on the directory the daemon was started from. */
static int
check_roots(const char *v, char *why, size_t why_len)
{
	char list[PATH_MAX], *save = NULL;

	snprintf(list, sizeof(list), "%s", v);
	for (char *r = strtok_r(list, ":", &save); r != NULL; r = strtok_r(NULL, ":", &save))
		if (check_path(r, why, why_len) != 0)
			return -1;
	return 0;
}

int
config_listen_loopback(const char *listen, char *host, size_t host_len)
{
	const char *colon = strrchr(listen, ':');
	struct in6_addr a6;
	struct in_addr a4;
	char *end;
	long port;
	size_t n;

	if (colon == NULL || colon == listen)
		return -1;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || errno != 0 || port < 0 || port > 65535)
		return -1;
	n = (size_t)(colon - listen);
	if (listen[0] == '[' && colon[-1] == ']') {
		listen++;
		n -= 2;
	}
	if (n >= host_len)
		return -1;
	memcpy(host, listen, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return -1;
}

static int
check_http_listen(const char *v, char *why, size_t why_len)
{
	char host[64];

	if (v[0] != '\0' && config_listen_loopback(v, host, sizeof(host)) < 0) {
		snprintf(why, why_len, "'%s': expected ADDR:PORT with a numeric address, "
		    "e.g. 127.0.0.1:8631 or [::1]:8631", v);
		return -1;
	}
	return 0;
}

static int
check_http_auth(const char *v, char *why, size_t why_len)
{
	if (strcmp(v, "auto") != 0 && strcmp(v, "token") != 0) {
		snprintf(why, why_len, "'%s': expected auto or token", v);
		return -1;
	}
	return 0;
}

static int
check_tls_certificate(const char *v, char *why, size_t why_len)
{
	if (v[0] == '\0')
		return 0;
	if (check_path(v, why, why_len) != 0)
		return -1;
	if (mg_check_feature(2) == 0) {
		snprintf(why, why_len, "set, but this civetweb has no TLS");
		return -1;
	}
	if (access(v, R_OK) != 0) {
		snprintf(why, why_len, "%s: %s", v, strerror(errno));
		return -1;
	}
	return 0;
}

/* url_check parses an nng address and checks its scheme is one of schemes
 * (space-separated). */
static int
url_check(const char *v, const char *schemes, char *why, size_t why_len)
{
	nng_url *u;
	int ok;

	if (nng_url_parse(&u, v) != 0) {
		snprintf(why, why_len, "'%s' is not an nng address", v);
		return -1;
	}
	size_t n = strlen(u->u_scheme);
	const char *at = strstr(schemes, u->u_scheme);
	ok = at != NULL && (at == schemes || at[-1] == ' ') && (at[n] == ' ' || at[n] == '\0');
	if (ok && strcmp(u->u_scheme, "tcp") == 0)
		ok = u->u_port[0] != '\0';
	else if (ok)
		ok = u->u_path[0] != '\0';
	nng_url_free(u);
	if (!ok) {
		snprintf(why, why_len, "'%s': expected %s", v, strcmp(schemes, "tcp") == 0 ?
		    "tcp://ADDR:PORT" : "ipc:///PATH or tcp://ADDR:PORT");
		return -1;
	}
	return 0;
}

static int
check_socket(const char *v, char *why, size_t why_len)
{
	return url_check(v, "ipc tcp", why, why_len);
}

static int
check_remote_listen(const char *v, char *why, size_t why_len)
{
	return v[0] == '\0' ? 0 : url_check(v, "tcp", why, why_len);
}

/* admin_group: a group that does not exist would leave the daemon without
 * administrators, silently. */
static int
check_group(const char *v, char *why, size_t why_len)
{
	struct group gr, *grp = NULL;
	char buf[4096];
	int rc;

	if (v[0] == '\0')
		return 0;
	if ((rc = getgrnam_r(v, &gr, buf, sizeof(buf), &grp)) != 0 || grp == NULL) {
		snprintf(why, why_len, "no group '%s'%s%s", v, rc ? ": " : "", rc ? strerror(rc) : "");
		return -1;
	}
	return 0;
}

static const struct cfg_key keys[] = {
	{ "state_dir", STR(state_dir), "/var/lib/ftuned", 0, 0,
	  "Directory for the SQLite state, models and datasets.", check_path },
	{ "socket", STR(socket_url), "ipc:///run/ftuned/ftuned.sock", 0, 0,
	  "nng address of the control socket (created mode 0660).", check_socket },
	{ "http_listen", STR(http_listen), "127.0.0.1:8631", 0, 0,
	  "ADDR:PORT for the dashboard and JSON API; empty disables it. Port 0 picks a free port.", check_http_listen },
	{ "web_root", STR(web_root), FT_WEB_ROOT, 0, 0,
	  "Directory of the static dashboard files.", check_path },
	{ "http_threads", NUM(CFG_INT, http_threads), "16", 1, 64,
	  "Worker threads of the HTTP server: each half-sent request holds one for up to 2 s." },
	{ "http_max_conns_per_user", NUM(CFG_INT, http_max_conns_per_user), "8", 1, 64,
	  "HTTP connections from one client at once (its uid on loopback, else its address); "
	  "more are closed as they reach a worker. Keep it below http_threads." },
	{ "http_auth", STR(http_auth), "auto", 0, 0,
	  "auto: the dashboard needs a token (ftuned --new-dashboard-token) unless http_listen is loopback; token: always.", check_http_auth },
	{ "http_tls_certificate", STR(http_tls_certificate), "", 0, 0,
	  "PEM file with the dashboard's TLS certificate and private key; empty serves plain HTTP.", check_tls_certificate },
	{ "http_host_names", STR(http_host_names), "", 0, 0,
	  "Comma-separated host names the dashboard and API answer to besides localhost, 127.0.0.1, [::1] and http_listen's address (the Host header; others get 400, against DNS rebinding). * allows any." },
	{ "rpc_contexts", NUM(CFG_INT, rpc_contexts), "8", 1, 256,
	  "Fast control requests served concurrently; slow ones (rpc_slow_threads) have contexts of their own." },
	{ "rpc_max_message", NUM(CFG_SIZE, rpc_max_message), "16M", 1024, (int64_t)1 << 30,
	  "Largest control message accepted (suffix K, M, G); larger ones close the connection." },
	{ "rpc_max_conns", NUM(CFG_INT, rpc_max_conns), "4096", 1, 1 << 20,
	  "Connections to the control socket at once; more are closed as they arrive." },
	{ "rpc_max_conns_per_user", NUM(CFG_INT, rpc_max_conns_per_user), "128", 1, 1 << 20,
	  "Connections to the control socket from one uid at once; more are closed as they arrive." },
	{ "rpc_slow_threads", NUM(CFG_INT, rpc_slow_threads), "4", 1, 256,
	  "Threads for slow requests (generate without --stream, model import, init and export, "
	  "data add and show, eval export)." },
	{ "rpc_slow_queue", NUM(CFG_INT, rpc_slow_queue), "16", 0, 4096,
	  "Slow requests that may wait for one of those threads; more get RESOURCE_EXHAUSTED." },
	{ "rpc_slow_per_user", NUM(CFG_INT, rpc_slow_per_user), "2", 1, 4096,
	  "Slow requests one uid may have running or waiting; more get RESOURCE_EXHAUSTED." },
	{ "training_threads", NUM(CFG_INT, training_threads), "0", 0, 1024,
	  "Threads for training; 0 means one per online CPU." },
	{ "log_level", NUM(CFG_LOGLEVEL, log_level), "info", 0, 0,
	  "Minimum level logged: debug, info, warn or error.", NULL, CFG_RELOAD },
	{ "import_roots", STR(import_roots), "/srv/ftuned/import", 0, 0,
	  "Colon-separated directories that model imports may read from (symlinks resolved).", check_roots },
	{ "export_roots", STR(export_roots), "/srv/ftuned/export", 0, 0,
	  "Colon-separated directories that model exports may write into.", check_roots },
	{ "admin_group", STR(admin_group), "", 0, 0,
	  "Unix group whose members may act on every user's jobs, models and datasets.", check_group },
	{ "max_queued_per_user", NUM(CFG_INT, max_queued_per_user), "16", 1, 100000,
	  "Jobs one user may have queued or running at once." },
	{ "user_priority_max", NUM(CFG_INT, user_priority_max), "0", -100, 100,
	  "Highest job priority a user outside admin_group may set (admins up to 100)." },
	{ "memory_budget", NUM(CFG_SIZE, memory_budget), "0", 0, (int64_t)1 << 50,
	  "Memory a training job may use (suffix K, M, G); 0 means three quarters of RAM." },
	{ "checkpoint_keep", NUM(CFG_INT, checkpoint_keep), "2", 1, 100,
	  "Checkpoints kept per job; older ones are deleted." },
	{ "metrics_max_per_job", NUM(CFG_INT, metrics_max_per_job), "10000", 16, 100000000,
	  "Per-step metric points kept per job; beyond it they are thinned to an even stride "
	  "(first, last and validation points stay), so a long job's curve keeps its shape." },
	{ "log_max_per_job", NUM(CFG_INT, log_max_per_job), "10000", 16, 100000000,
	  "Log lines kept per job; beyond it the oldest info and debug lines go first, and one "
	  "line says how many were dropped." },
	{ "token_cache_max", NUM(CFG_SIZE, token_cache_max), "1G", 0, (int64_t)1 << 50,
	  "Disk for tokenized datasets (state_dir/cache/tokens, suffix K, M, G); least recently used go first; 0 disables." },
	{ "screen_rules", STR(screen_rules), "", 0, 0,
	  "Rule set that screens datasets at data add for personal data and secrets (format in "
	  "README); empty: the built-in rules.", check_path_or_empty },
	{ "remote_listen", STR(remote_listen), "", 0, 0,
	  "nng address (tcp://ADDR:PORT) for remote ftctl; every request there must be signed "
	  "with a key from remote_keys. Empty: the IPC socket only.", check_remote_listen },
	{ "remote_keys", STR(remote_keys), "/etc/ftuned/remote_keys", 0, 0,
	  "Keys allowed over remote_listen, one 'NAME UID PUBLIC_KEY_HEX' a line (ftctl keygen).", check_path_or_empty, CFG_RELOAD },
	{ "remote_max_skew", NUM(CFG_INT, remote_max_skew), "60", 5, 3600,
	  "Seconds a signed request's timestamp may differ from the daemon's clock." },
	{ "remote_max_conns", NUM(CFG_INT, remote_max_conns), "256", 1, 1 << 20,
	  "Connections to remote_listen at once; more are closed as they arrive." },
	{ "remote_max_conns_per_addr", NUM(CFG_INT, remote_max_conns_per_addr), "16", 1, 1 << 20,
	  "Connections to remote_listen from one IP address at once." },
	{ "remote_max_message", NUM(CFG_SIZE, remote_max_message), "1M", 1024, (int64_t)1 << 30,
	  "Largest message accepted on remote_listen (suffix K, M, G), before its signature is "
	  "checked; larger ones close the connection." },
	{ "remote_idle_timeout", NUM(CFG_INT, remote_idle_timeout), "30", 1, 86400,
	  "Seconds a remote connection may go without completing a message (idle, or sending "
	  "slowly) while none of its requests is being served; then it is closed." },
	{ "serve_threads", NUM(CFG_INT, serve_threads), "1", 1, 64,
	  "Threads generating for the OpenAI-compatible API (/v1/): requests served at once." },
	{ "serve_queue_max", NUM(CFG_INT, serve_queue_max), "8", 0, 4096,
	  "API requests that may wait for a serving thread; more are answered 429." },
	{ "serve_idle_unload", NUM(CFG_INT, serve_idle_unload), "300", 0, 86400,
	  "Seconds a deployed model stays loaded without requests; 0 keeps it loaded." },
	{ "serve_yield_to_training", NUM(CFG_INT, serve_yield_to_training), "1", 0, 1,
	  "1: a starting training or evaluation job unloads deployed models until serving and the job fit memory_budget; 0: serving memory is not counted." },
	{ "serve_memory_wait", NUM(CFG_INT, serve_memory_wait), "10", 0, 3600,
	  "Seconds an API request waits for memory a running job holds before it is answered 503." },
	{ "serve_require_key", NUM(CFG_INT, serve_require_key), "0", 0, 1,
	  "1: the API needs a key (ftctl key create) even on a loopback http_listen; off loopback it always does." },
	{ "serve_max_body", NUM(CFG_SIZE, serve_max_body), "1M", 1024, (int64_t)1 << 30,
	  "Largest API request body (suffix K, M, G); larger ones are answered 413." },
	{ "template_max_iterations", NUM(CFG_INT, template_max_iterations), "100000", 1000, 100000000,
	  "Loop iterations one render of a model's chat template may take; a model whose template "
	  "exceeds it on the largest conversation the API accepts is refused at import." },
	{ "template_max_bytes", NUM(CFG_SIZE, template_max_bytes), "16M", 64 * 1024, (int64_t)1 << 30,
	  "Bytes one chat-template render may output, and separately build on the way (suffix K, M, G)." },
	{ "quota_bytes_per_user", NUM(CFG_SIZE, quota_bytes_per_user), "20G", 0, (int64_t)1 << 50,
	  "Bytes of models and datasets one user may store (suffix K, M, G), admins included; "
	  "checked before anything is written; 0 means no limit." },
	{ "quota_models_per_user", NUM(CFG_INT, quota_models_per_user), "100", 0, 1000000,
	  "Models one user may own, tuned ones included; 0 means no limit." },
	{ "quota_datasets_per_user", NUM(CFG_INT, quota_datasets_per_user), "100", 0, 1000000,
	  "Datasets one user may own; 0 means no limit." },
	{ "data_max_bytes", NUM(CFG_SIZE, data_max_bytes), "8G", 1024, (int64_t)1 << 50,
	  "Largest dataset file ftctl data add may upload (suffix K, M, G)." },
	{ "data_uploads_per_user", NUM(CFG_INT, data_uploads_per_user), "2", 1, UPLOADS_MAX,
	  "Dataset uploads one user may have open at once." },
	{ "data_upload_timeout", NUM(CFG_INT, data_upload_timeout), "3600", 1, 604800,
	  "Seconds an upload may go untouched before its file is deleted." },
};

static const struct cfg_key *
key_find(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static int
parse_number(const struct cfg_key *k, const char *value, int64_t *out,
    char *err, size_t err_len)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (end == value || errno != 0) {
		snprintf(err, err_len, "%s: '%s' is not a number", k->name, value);
		return -1;
	}
	if (k->type == CFG_SIZE && *end != '\0' && end[1] == '\0') {
		int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : -1;

		if (shift < 0 || v > (INT64_MAX >> shift)) {
			snprintf(err, err_len, "%s: '%s' is not a size (use K, M or G)", k->name, value);
			return -1;
		}
		v <<= shift;
		end++;
	}
	if (*end != '\0') {
		snprintf(err, err_len, "%s: '%s' is not a number", k->name, value);
		return -1;
	}
	if (v < k->min || v > k->max) {
		snprintf(err, err_len, "%s: %lld is out of range [%lld, %lld]", k->name,
		    v, (long long)k->min, (long long)k->max);
		return -1;
	}
	*out = v;
	return 0;
}

int
config_set(struct ft_config *cfg, const char *key, const char *value,
    char *err, size_t err_len)
{
	const struct cfg_key *k = key_find(key);
	char why[PATH_MAX + 128];
	char *field;
	int64_t v = 0;

	if (k == NULL) {
		snprintf(err, err_len, "unknown key '%s'", key);
		return -1;
	}
	switch (k->type) {
	case CFG_STRING:
		if (strlen(value) >= k->size) {
			snprintf(err, err_len, "%s: value longer than %zu bytes", key, k->size - 1);
			return -1;
		}
		break;
	case CFG_INT:
	case CFG_SIZE:
		if (parse_number(k, value, &v, err, err_len) != 0)
			return -1;
		break;
	case CFG_LOGLEVEL:
		if ((v = log_level_parse(value)) < 0) {
			snprintf(err, err_len, "%s: '%s' is not one of debug, info, warn, error", key, value);
			return -1;
		}
		break;
	}
	if (k->check != NULL && k->check(value, why, sizeof(why)) != 0) {
		snprintf(err, err_len, "%s: %s", key, why);
		return -1;
	}
	field = (char *)cfg + k->offset;
	switch (k->type) {
	case CFG_STRING: strcpy(field, value); break;
	case CFG_INT: case CFG_LOGLEVEL: *(int *)field = (int)v; break;
	case CFG_SIZE: *(int64_t *)field = v; break;
	}
	return 0;
}

void
config_defaults(struct ft_config *cfg)
{
	char err[256];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (config_set(cfg, keys[i].name, keys[i].def, err, sizeof(err)) != 0)
			abort(); /* a bad default is a programming error */
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
config_load(struct ft_config *cfg, const char *path, char *err, size_t err_len)
{
	char line[PATH_MAX + 256], why[PATH_MAX + 128];
	FILE *f;
	int lineno = 0;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *eq, *key, *value;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, err_len, "%s:%d: line too long", path, lineno);
			fclose(f);
			return -1;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(err, err_len, "%s:%d: expected 'key = value'", path, lineno);
			fclose(f);
			return -1;
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (config_set(cfg, key, value, why, sizeof(why)) != 0) {
			snprintf(err, err_len, "%s:%d: %s", path, lineno, why);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

void
config_write(const struct ft_config *cfg, FILE *f)
{
	static const char *levels[] = { "debug", "info", "warn", "error" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct cfg_key *k = &keys[i];
		const char *field = (const char *)cfg + k->offset;

		fprintf(f, "# %s\n# default: %s", k->doc, *k->def ? k->def : "(empty)");
		if (k->type == CFG_INT || k->type == CFG_SIZE)
			fprintf(f, ", range %lld..%lld", (long long)k->min, (long long)k->max);
		fprintf(f, "%s\n", k->flags & CFG_RELOAD ? "; SIGHUP reloads it" : "");
		switch (k->type) {
		case CFG_STRING: fprintf(f, "%s = %s\n\n", k->name, field); break;
		case CFG_INT: fprintf(f, "%s = %d\n\n", k->name, *(const int *)field); break;
		case CFG_SIZE: fprintf(f, "%s = %lld\n\n", k->name, (long long)*(const int64_t *)field); break;
		case CFG_LOGLEVEL: fprintf(f, "%s = %s\n\n", k->name, levels[*(const int *)field]); break;
		}
	}
}

/* key_differs: whether key k holds different values in a and b. */
static int
key_differs(const struct cfg_key *k, const struct ft_config *a, const struct ft_config *b)
{
	const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;

	switch (k->type) {
	case CFG_STRING: return strcmp(fa, fb) != 0;
	case CFG_INT: case CFG_LOGLEVEL: return *(const int *)fa != *(const int *)fb;
	case CFG_SIZE: return *(const int64_t *)fa != *(const int64_t *)fb;
	}
	return 0;
}

int
config_reload(struct ft_config *cfg, const struct ft_config *fresh, char *kept, size_t kept_len)
{
	size_t used = 0;
	int n = 0;

	kept[0] = '\0';
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct cfg_key *k = &keys[i];
		size_t size = k->type == CFG_STRING ? k->size : k->type == CFG_SIZE ?
		    sizeof(int64_t) : sizeof(int);

		if (!key_differs(k, cfg, fresh))
			continue;
		if (k->flags & CFG_RELOAD) {
			memcpy((char *)cfg + k->offset, (const char *)fresh + k->offset, size);
			continue;
		}
		if (used < kept_len)
			used += (size_t)snprintf(kept + used, kept_len - used, "%s%s", n ? ", " : "", k->name);
		n++;
	}
	return n;
}
