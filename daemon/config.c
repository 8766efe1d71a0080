/*
 * config.c - the single configuration table.
 *
 * Every option is one row: name, type, where it lives in struct ft_config,
 * default, bounds and a line of documentation.  Parsing, defaults, range
 * checks and the documented default file all come from this table.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

enum cfg_type { CFG_STRING, CFG_INT, CFG_SIZE, CFG_LOGLEVEL };

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t offset;
	size_t size;          /* buffer size for strings */
	const char *def;
	int64_t min, max;     /* for numbers */
	const char *doc;
};

#define STR(field) CFG_STRING, offsetof(struct ft_config, field), sizeof(((struct ft_config *)0)->field)
#define NUM(type, field) type, offsetof(struct ft_config, field), 0

static const struct cfg_key keys[] = {
	{ "state_dir", STR(state_dir), "/var/lib/ftuned", 0, 0,
	  "Directory for the SQLite state, models and datasets." },
	{ "socket", STR(socket_url), "ipc:///run/ftuned/ftuned.sock", 0, 0,
	  "nng address of the control socket (created mode 0660)." },
	{ "http_listen", STR(http_listen), "127.0.0.1:8631", 0, 0,
	  "ADDR:PORT for the dashboard and JSON API; empty disables it. Port 0 picks a free port." },
	{ "web_root", STR(web_root), FT_WEB_ROOT, 0, 0,
	  "Directory of the static dashboard files." },
	{ "http_threads", NUM(CFG_INT, http_threads), "4", 1, 64,
	  "Worker threads of the HTTP server." },
	{ "http_auth", STR(http_auth), "auto", 0, 0,
	  "auto: the dashboard needs a token (ftuned --new-dashboard-token) unless http_listen is loopback; token: always." },
	{ "http_tls_certificate", STR(http_tls_certificate), "", 0, 0,
	  "PEM file with the dashboard's TLS certificate and private key; empty serves plain HTTP." },
	{ "rpc_contexts", NUM(CFG_INT, rpc_contexts), "8", 1, 256,
	  "Control requests served concurrently." },
	{ "rpc_max_message", NUM(CFG_SIZE, rpc_max_message), "16M", 1024, (int64_t)1 << 30,
	  "Largest control message accepted (suffix K, M, G); larger ones close the connection." },
	{ "training_threads", NUM(CFG_INT, training_threads), "0", 0, 1024,
	  "Threads for training; 0 means one per online CPU." },
	{ "log_level", NUM(CFG_LOGLEVEL, log_level), "info", 0, 0,
	  "Minimum level logged: debug, info, warn or error." },
	{ "import_roots", STR(import_roots), "/srv/ftuned/import", 0, 0,
	  "Colon-separated directories that model imports may read from (symlinks resolved)." },
	{ "export_roots", STR(export_roots), "/srv/ftuned/export", 0, 0,
	  "Colon-separated directories that model exports may write into." },
	{ "admin_group", STR(admin_group), "", 0, 0,
	  "Unix group whose members may act on every user's jobs, models and datasets." },
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
	{ "remote_listen", STR(remote_listen), "", 0, 0,
	  "nng address (tcp://ADDR:PORT) for remote ftctl; every request there must be signed "
	  "with a key from remote_keys. Empty: the IPC socket only." },
	{ "remote_keys", STR(remote_keys), "/etc/ftuned/remote_keys", 0, 0,
	  "Keys allowed over remote_listen, one 'NAME UID PUBLIC_KEY_HEX' a line (ftctl keygen)." },
	{ "remote_max_skew", NUM(CFG_INT, remote_max_skew), "60", 5, 3600,
	  "Seconds a signed request's timestamp may differ from the daemon's clock." },
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
	char *field;
	int64_t v;
	int level;

	if (k == NULL) {
		snprintf(err, err_len, "unknown key '%s'", key);
		return -1;
	}
	field = (char *)cfg + k->offset;
	switch (k->type) {
	case CFG_STRING:
		if (strlen(value) >= k->size) {
			snprintf(err, err_len, "%s: value longer than %zu bytes", key, k->size - 1);
			return -1;
		}
		strcpy(field, value);
		return 0;
	case CFG_INT:
		if (parse_number(k, value, &v, err, err_len) != 0)
			return -1;
		*(int *)field = (int)v;
		return 0;
	case CFG_SIZE:
		if (parse_number(k, value, &v, err, err_len) != 0)
			return -1;
		*(int64_t *)field = v;
		return 0;
	case CFG_LOGLEVEL:
		if ((level = log_level_parse(value)) < 0) {
			snprintf(err, err_len, "%s: '%s' is not one of debug, info, warn, error", key, value);
			return -1;
		}
		*(int *)field = level;
		return 0;
	}
	return -1;
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
		fprintf(f, "\n");
		switch (k->type) {
		case CFG_STRING: fprintf(f, "%s = %s\n\n", k->name, field); break;
		case CFG_INT: fprintf(f, "%s = %d\n\n", k->name, *(const int *)field); break;
		case CFG_SIZE: fprintf(f, "%s = %lld\n\n", k->name, (long long)*(const int64_t *)field); break;
		case CFG_LOGLEVEL: fprintf(f, "%s = %s\n\n", k->name, levels[*(const int *)field]); break;
		}
	}
}
