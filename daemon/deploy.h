/*
 * deploy.h - deployed models: the registry of deployments (names clients
 * ask for, each naming a registered model), the API keys that may call
 * them, and the serving side: a cache of loaded models and a small pool of
 * generation threads fed by a bounded queue.
 *
 * Models load lazily, on the first request that needs them; requests for a
 * model that is loading wait for it.  A loaded model is shared by every
 * deployment of it and refcounted while requests use it; one unused for
 * serve_idle_unload seconds is freed.  Requests beyond serve_threads
 * running and serve_queue_max waiting are refused at once (DEPLOY_FULL),
 * so a burst cannot pile up unbounded work behind a training job.
 *
 * Memory.  A job the queue starts reserves its need of memory_budget
 * (deploy_memory_reserve); serving memory, as the engine counts it (each
 * loaded model's weights and the generation memory of each request using
 * it), must fit beside it: idle models are unloaded, least recently used
 * first, a model in use when its last request ends, and a request whose
 * memory does not fit waits serve_memory_wait seconds for the job's memory,
 * then fails (DEPLOY_BUSY).  serve_yield_to_training = 0 turns this off.
 */
#ifndef FT_DEPLOY_H
#define FT_DEPLOY_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "ft_wire.h"
#include "fte_tok.h"
#include "fte_train.h"
#include "ftuned.h"
#include "registry.h"

#define DEPLOY_KEY_TEXT_MAX 64       /* longest key text, without the NUL */

struct deploy_info {
	char name[REGISTRY_NAME_MAX + 1];
	int64_t model_id;
	char model[REGISTRY_NAME_MAX + 1];
	uint32_t owner_uid;
	int64_t created_at;
	int loaded;                  /* the model is in memory now */
	uint64_t memory;             /* loaded: bytes of weights of its own (a
	                              * shared adapter: the adapter alone) */
	char base[REGISTRY_NAME_MAX + 1];  /* the shared base it runs on, or "" */
	uint64_t base_memory;        /* that base's bytes, shared by its adapters */
	uint64_t request_memory;     /* loaded: what each request generating holds */
};

struct deploy_key_info {
	char name[REGISTRY_NAME_MAX + 1];
	uint32_t owner_uid;
	int64_t created_at;
	int64_t last_used_at;        /* 0 = never */
	uint64_t requests;
	uint64_t tokens;
	int64_t revoked_at;          /* 0 = active */
};

struct deploy;

/* deploy_start starts serve_threads generation threads for d.  Returns 0
 * and sets *out, or -1 with a message in err. */
int deploy_start(struct ftuned *d, struct deploy **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* deploy_stop refuses new requests (DEPLOY_STOPPING), cancels running
 * ones, fails waiting ones and joins the threads.  The state stays valid
 * for handlers still holding jobs until deploy_free.  NULL is allowed. */
void deploy_stop(struct deploy *s);

/* deploy_free unloads every model and frees s (after deploy_stop and after
 * the HTTP server has stopped).  NULL is allowed. */
void deploy_free(struct deploy *s);

/* A running job's claim on memory_budget.  The caller owns it and fills
 * the first three fields; it stays recorded from deploy_memory_reserve to
 * deploy_memory_release. */
struct deploy_reservation {
	int64_t job_id;
	const char *kind;            /* "training" or "evaluation", for messages */
	uint64_t bytes;
	struct deploy_reservation *next;
};

/* deploy_memory_reserve records r and makes room for it: loaded models no
 * request uses are unloaded, least recently used first, until serving
 * memory and every reservation fit queue_memory_budget; if they still do
 * not, models in use are unloaded as their last requests end.  Until
 * deploy_memory_release, requests that do not fit wait (see above).
 * Returns how many models it unloaded.  Does nothing (0) when s is NULL or
 * serve_yield_to_training is 0. */
int deploy_memory_reserve(struct deploy *s, struct deploy_reservation *r);

/* deploy_memory_release forgets r (if it was recorded) and wakes requests
 * waiting for memory.  s may be NULL. */
void deploy_memory_release(struct deploy *s, struct deploy_reservation *r);

/* deploy_memory_used: the bytes serving holds now (weights of loaded and
 * loading models, generation memory of the requests using them). */
uint64_t deploy_memory_used(struct deploy *s);

/* deploy_create deploys the registered model name_or_id under alias (NULL
 * or "" = the model's name) for uid.  FT__CODE__* with a message in err;
 * on success *out is filled. */
int deploy_create(struct ftuned *d, uint32_t uid, const char *name_or_id,
    const char *alias, struct deploy_info *out, char *err, size_t err_len);

/* deploy_list returns every deployment, by name, in a malloc'd array. 0,
 * or -1 on a database error. */
int deploy_list(struct ftuned *d, struct deploy_info **out, size_t *n);

/* deploy_find looks a deployment up by name: 0 and *out, or -1. */
int deploy_find(struct ftuned *d, const char *name, struct deploy_info *out);

/* deploy_remove undeploys name (its owner or an admin) and unloads the
 * model when nothing else uses it.  FT__CODE__* with a message. */
int deploy_remove(struct ftuned *d, uint32_t uid, int admin, const char *name,
    char *err, size_t err_len);

/* deploy_key_create makes a new random API key named name for uid: the
 * text goes to key (room for DEPLOY_KEY_TEXT_MAX + 1) and only its BLAKE2b
 * hash is stored.  FT__CODE__* with a message; *out filled on success. */
int deploy_key_create(struct ftuned *d, uint32_t uid, const char *name, char *key,
    struct deploy_key_info *out, char *err, size_t err_len);

/* deploy_key_list returns uid's keys, or everyone's with all, revoked ones
 * included, in a malloc'd array.  0, or -1 on a database error. */
int deploy_key_list(struct ftuned *d, uint32_t uid, int all, struct deploy_key_info **out,
    size_t *n);

/* deploy_key_proto copies one key's row into a KeyInfo from arena a (a
 * reply's); deploy_key_list_reply is deploy_key_list as the KeyListReply
 * the RPC and the JSON API both send.  FT__CODE__OK with *out, or
 * RESOURCE_EXHAUSTED / INTERNAL. */
int deploy_key_proto(struct arena *a, const struct deploy_key_info *k, Ft__KeyInfo **out);
int deploy_key_list_reply(struct ftuned *d, struct arena *a, uint32_t uid, int all,
    Ft__KeyListReply **out);

/* deploy_key_revoke revokes uid's active key name; an admin without a key
 * of that name revokes another user's (the lowest uid's, when several have
 * one).  Key names are per user: another user's are never told (NOT_FOUND).
 * FT__CODE__* with a message. */
int deploy_key_revoke(struct ftuned *d, uint32_t uid, int admin, const char *name,
    char *err, size_t err_len);

/* deploy_key_check: 1 and *id and *uid (the key's owner, whom a request
 * with it acts as) when key is an active key, else 0. */
int deploy_key_check(struct ftuned *d, const char *key, size_t len, int64_t *id, uint32_t *uid);

/* deploy_key_used counts one request of tokens tokens against key id. */
void deploy_key_used(struct ftuned *d, int64_t id, uint64_t tokens);

/* What one request asks for.  deploy_submit copies everything. */
struct deploy_params {
	const char *model;               /* deployment name */
	int64_t model_id;                /* > 0: this registered model instead, which model
	                                  * then only names (ftctl generate) */
	const char *prompt;              /* completion: the raw prompt */
	const char *template_;           /* with prompt: not NULL makes it a user message in
	                                  * this format ("": the model's own; chat_template.h) */
	const char *conversation;        /* chat: {"messages", "tools"?} as
	                                  * chat_request_conversation writes it */
	int max_tokens;                  /* 0 = up to the context length */
	float temperature;               /* 0 = greedy */
	float top_p;                     /* (0, 1] */
	uint64_t seed;
	const char *const *stop;         /* stop strings, not included in the text */
	size_t n_stop;
	int logprobs;                    /* record each token's log-probability */
	int top_logprobs;                /* with logprobs: alternatives per token, at most
	                                  * FTE_TOP_LOGPROBS_MAX */
	int echo;                        /* record the prompt's tokens too */
};

/* One token of the output (or of the prompt, with echo) and its
 * log-probabilities under the model's own distribution (fte_logprob). */
struct deploy_token {
	char *text;                      /* its bytes (malloc'd, len of them) */
	size_t offset, len;              /* where they are in the output (the prompt) text */
	int has_logprob;                 /* 0 only for the prompt's first token */
	float logprob;
	int n_top;
	float top_lp[FTE_TOP_LOGPROBS_MAX];
	char *top_text[FTE_TOP_LOGPROBS_MAX];  /* each alternative's bytes, malloc'd */
	size_t top_len[FTE_TOP_LOGPROBS_MAX];
};

enum deploy_status {
	DEPLOY_OK = 0,
	DEPLOY_NOT_FOUND,                /* no such deployment (404) */
	DEPLOY_FULL,                     /* queue full (429) */
	DEPLOY_STOPPING,                 /* shutting down (503) */
	DEPLOY_BAD_REQUEST,              /* e.g. prompt longer than the context (400) */
	DEPLOY_FAILED,                   /* the model would not load (500) */
	DEPLOY_NO_MEMORY,
	DEPLOY_BUSY,                     /* memory held by a running job (503) */
};

/* The outcome of a finished job. */
struct deploy_result {
	enum deploy_status status;
	char message[256];               /* why, when status is not DEPLOY_OK */
	char model[REGISTRY_NAME_MAX + 1];
	int prompt_tokens;
	int completion_tokens;
	const char *finish_reason;       /* "stop" or "length" */
};

struct deploy_job;

/* deploy_submit queues a request.  DEPLOY_OK and *out (release it with
 * deploy_job_release), or DEPLOY_NOT_FOUND, DEPLOY_FULL, DEPLOY_STOPPING,
 * DEPLOY_NO_MEMORY with a message in err. */
enum deploy_status deploy_submit(struct deploy *s, const struct deploy_params *p,
    struct deploy_job **out, char *err, size_t err_len);

/* deploy_job_wait blocks until the job has text beyond off bytes, or is
 * finished.  Returns 1 while it runs, 0 when finished; *started is 1 once
 * the prompt was accepted (the model loaded and the prompt fits), and
 * *chunk (malloc'd, or NULL when nothing is new) the new text.  Text is
 * released only at UTF-8 character boundaries and never includes a stop
 * string or a prefix of one that may still complete. */
int deploy_job_wait(struct deploy_job *j, size_t off, int *started, char **chunk, size_t *len);

/* deploy_job_wait_for is deploy_job_wait giving up after timeout_ms
 * (0 = only look): then it returns 1 with *chunk NULL. */
int deploy_job_wait_for(struct deploy_job *j, size_t off, int timeout_ms, int *started,
    char **chunk, size_t *len);

/* deploy_job_tokens: with logprobs, the output's tokens whose bytes lie
 * within its first upto bytes (once finished: that begin there), in *n;
 * the array stays valid until deploy_job_release. */
const struct deploy_token *deploy_job_tokens(struct deploy_job *j, size_t upto, size_t *n);

/* deploy_job_prompt: with echo, once started, the prompt's tokens (*n of
 * them) and *text, the prompt as they decode (*len bytes). */
const struct deploy_token *deploy_job_prompt(const struct deploy_job *j, size_t *n,
    const char **text, size_t *len);

/* deploy_job_result is the outcome; valid once deploy_job_wait returned 0. */
const struct deploy_result *deploy_job_result(const struct deploy_job *j);

/* deploy_job_cancel asks the job to stop (the client went away). */
void deploy_job_cancel(struct deploy_job *j);

/* deploy_job_release waits for the job to finish and frees it. */
void deploy_job_release(struct deploy_job *j);

#endif
