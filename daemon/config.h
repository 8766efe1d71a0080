/*
 * config.h - the daemon's configuration: one table of keys (config.c) with
 * type, default, bounds and documentation, read from a simple file of
 * `key = value` lines and overridable from the command line.
 */
#ifndef FT_CONFIG_H
#define FT_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ft_config {
	char state_dir[PATH_MAX];     /* SQLite state, models, datasets */
	char socket_url[PATH_MAX];    /* nng address of the control socket */
	char http_listen[128];        /* ADDR:PORT of the dashboard, "" = off */
	char web_root[PATH_MAX];      /* static dashboard files */
	int http_threads;
	int http_max_conns_per_user;  /* HTTP connections from one uid or address */
	char http_auth[8];            /* "auto": token off loopback; "token": always */
	char http_tls_certificate[PATH_MAX]; /* PEM cert + key; "" = plain HTTP */
	char http_host_names[512];    /* Host names served besides loopback's, "," separated */
	int rpc_contexts;             /* requests served concurrently */
	int64_t rpc_max_message;      /* bytes; larger messages close the pipe */
	int rpc_max_conns;            /* control socket pipes at once */
	int rpc_max_conns_per_user;   /* ... from one uid */
	int rpc_slow_threads;         /* threads running slow RPCs */
	int rpc_slow_queue;           /* slow RPCs waiting for them */
	int rpc_slow_per_user;        /* slow RPCs of one uid running or waiting */
	int training_threads;
	int log_level;                /* enum log_level */
	char import_roots[PATH_MAX];  /* ':'-separated dirs model imports may read */
	char export_roots[PATH_MAX];  /* ':'-separated dirs model exports may write */
	char admin_group[64];         /* members may act on every user's things */
	int max_queued_per_user;
	int user_priority_max;        /* highest --priority outside admin_group */
	int64_t memory_budget;        /* bytes a training job may use; 0 = 3/4 of RAM */
	int checkpoint_keep;          /* checkpoints kept per job */
	int metrics_max_per_job;      /* per-step metric rows kept per job (thinned) */
	int log_max_per_job;          /* log lines kept per job (oldest info first) */
	int64_t token_cache_max;      /* bytes of cached tokenized datasets; 0 = off */
	char screen_rules[PATH_MAX];  /* screening rule set (screen.h), "" = built in */
	char remote_listen[256];      /* nng tcp:// address for signed requests, "" = off */
	char remote_keys[PATH_MAX];   /* NAME UID PUBLIC_KEY_HEX lines */
	int remote_max_skew;          /* seconds a signed request's clock may be off */
	int remote_max_conns;         /* remote_listen pipes at once */
	int remote_max_conns_per_addr; /* ... from one IP address */
	int64_t remote_max_message;   /* bytes, checked before the signature */
	int remote_idle_timeout;      /* seconds without a message before a pipe is closed */
	int serve_threads;            /* generation threads of the OpenAI API */
	int serve_queue_max;          /* requests waiting beyond those; more get 429 */
	int serve_idle_unload;        /* seconds before an idle model is unloaded; 0 = never */
	int serve_yield_to_training;  /* 1: jobs unload served models to fit memory_budget */
	int serve_memory_wait;        /* seconds a request waits for a job's memory, then 503 */
	int serve_require_key;        /* 1: API keys even on a loopback listener */
	int64_t serve_max_body;       /* bytes of a request body; larger get 413 */
	int template_max_iterations;  /* loop iterations of one chat-template render */
	int64_t template_max_bytes;   /* its output, and separately its working memory */
	int64_t quota_bytes_per_user; /* bytes of models and datasets one uid stores; 0 = no limit */
	int quota_models_per_user;    /* models one uid owns; 0 = no limit */
	int quota_datasets_per_user;  /* datasets one uid owns; 0 = no limit */
	int64_t data_max_bytes;       /* bytes of one uploaded dataset file */
	int data_uploads_per_user;    /* uploads one uid may have open */
	int data_upload_timeout;      /* seconds before an untouched upload is deleted */
};

/* config_defaults fills every key with its table default. */
void config_defaults(struct ft_config *cfg);

/* config_set parses value for key, runs the key's check (the one ftuned -n,
 * start and SIGHUP share) and stores it.  Returns 0, or -1 with a message
 * in err ("unknown key", "out of range ...", "expected auto or token", ...). */
int config_set(struct ft_config *cfg, const char *key, const char *value,
    char *err, size_t err_len) __attribute__((warn_unused_result));

/* config_load reads a config file over the current values.  Returns 0, or
 * -1 with "path:line: problem" in err; on error cfg may be partly updated,
 * so load into a copy when the old values must survive (SIGHUP). */
int config_load(struct ft_config *cfg, const char *path, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* config_reload copies into cfg the keys of fresh that the table marks
 * reloadable, and names in kept ("http_threads, socket") the other keys
 * whose values differ: those wait for a restart.  Returns their number. */
int config_reload(struct ft_config *cfg, const struct ft_config *fresh, char *kept,
    size_t kept_len);

/* config_listen_loopback splits an http_listen ADDR:PORT, copying ADDR
 * into host; returns 1 for a loopback address, 0 for another, -1 when it
 * is not ADDR:PORT with a numeric address. */
int config_listen_loopback(const char *listen, char *host, size_t host_len);

/* config_write prints every key with its documentation and current value,
 * in config-file syntax (ftuned -n -v, and the default file's source). */
void config_write(const struct ft_config *cfg, FILE *f);

#endif
