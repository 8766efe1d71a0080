/*
 * deploy.c - deployments, API keys, the model cache and the serving pool.
 *
 * Rows: `deployments` names a registered model by id (the name clients use
 * may differ from the model's), `api_keys` keeps a key's BLAKE2b hash,
 * never the key, with its usage.  A random 256-bit key needs no slow
 * password hash: nobody can search its space, and the lookup by hash
 * leaks nothing about the key itself.
 *
 * Serving.  Generation runs on serve_threads threads of our own, not on
 * civetweb's: an HTTP thread queues a job and then only copies text to its
 * client, so slow clients never hold a generation thread, and the number
 * of models computing at once is bounded whatever http_threads is.  Kernels
 * go through the engine's single thread pool (kernels/threads.c): a
 * serving thread that finds the pool busy with a training step runs its
 * kernels on its own thread instead of waiting or adding threads, so
 * training keeps its pool and serving costs at most serve_threads cores.
 *
 * Memory: a job's reservation (deploy_memory_reserve) and serving share
 * memory_budget.  Serving's part is counted, not sampled: the weights the
 * engine allocated for each model, and fte_generate_memory for each
 * request holding one (the KV cache and prefill of the longest prompt,
 * allocated per call), so the sum bounds what serving can hold.  A model
 * that is not loaded is sized from its registered shape before it loads.
 *
 * Adapters on one base: a LoRA model whose base has weights of its own is
 * loaded as its adapter alone, attached unmerged (fte_adapter_attach) to
 * the base's cache entry, which it holds (users) until it is unloaded; so
 * N adapters of a base cost the base once and N adapters, and the base
 * stays in memory while any of them is (and goes with the last when no
 * request asked for it itself).  An adapter on an adapter is loaded
 * merged, a copy of its own.
 *
 * Streaming: after each token the job's whole output is decoded again (the
 * outputs are short; this is what keeps multi-token characters and
 * decoder rules such as the leading-space strip right) and the text up to
 * the last safe point is published: a partial UTF-8 character or a tail
 * that may still grow into a stop string is held back.  With logprobs a
 * token's bytes are what its decode added, and deploy_job_tokens hands
 * out a token only with the text that holds it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "chat_template.h"
#include "deploy.h"
#include "ft_wire.h"
#include "fte_model.h"
#include "fte_train.h"
#include "log.h"
#include "queue.h"

#define KEY_BYTES 32
#define KEY_PREFIX "ft-"
#define KEY_HASH_HEX (2 * crypto_generichash_BYTES + 1)
#define SWEEP_MS 1000                /* how often idle models are looked at */

enum cache_state { CACHE_LOADING, CACHE_READY, CACHE_FAILED };

/* One loaded model, shared by the deployments that name it. */
struct cached {
	struct cached *next;
	int64_t model_id;
	char name[REGISTRY_NAME_MAX + 1];
	enum cache_state state;
	int refs;                    /* jobs using it (or waiting for the load) */
	int users;                   /* adapters loaded on it (their base) */
	struct cached *base;         /* the shared base this adapter runs on, or NULL */
	int served;                  /* requested for itself, not only as a base */
	int linked;                  /* in the cache list; else freed at refs 0 */
	uint64_t last_used_ms;
	uint64_t weights;            /* bytes of weights (registered shape until loaded) */
	uint64_t per_request;        /* bytes each request generating with it holds */
	fte_model *model;
	fte_tokenizer *tok;          /* a shared adapter's: its base's */
	struct chat_format fmt;      /* the model's prompt format and stop ids */
	char dir[PATH_MAX];          /* the model's directory, for other formats */
	char config_dir[PATH_MAX];   /* where its eos ids are (an adapter's base) */
	enum deploy_status fail;
	char err[200];
};

struct deploy_job {
	struct deploy *s;
	struct deploy_job *next;     /* in the queue */
	int64_t model_id;
	char name[REGISTRY_NAME_MAX + 1];
	char *prompt;
	char *template_;             /* not NULL: prompt is a user message in this format
	                              * ("": the model's own) */
	char *conversation;          /* a chat request's (chat_template.h) */
	int max_tokens;
	float temperature, top_p;
	uint64_t seed;
	char **stop;
	size_t n_stop;
	int logprobs, top_logprobs, echo;
	atomic_int cancel;
	/* Under s->lock. */
	int started, done;
	char *text;                  /* the decoded output so far */
	size_t visible;              /* bytes of text that may be sent */
	struct deploy_result result;
	size_t n_toks;               /* entries of toks filled */
	/* Set before started. */
	struct deploy_token *toks;   /* with logprobs: room for every output token */
	struct deploy_token *ptoks;  /* with echo: the prompt's tokens */
	size_t n_ptoks;
	char *ptext;                 /* with echo: the prompt decoded */
	size_t ptext_len;
	/* The generating thread's own. */
	int *ids;
	int n_ids;
	size_t prev_len;             /* bytes the output decoded to before the last token */
	fte_tokenizer *tok;
	int stop_at;                 /* offset of a stop string found, or -1 */
};

struct deploy {
	struct ftuned *d;
	pthread_mutex_t lock;
	pthread_cond_t work;         /* a job was queued, or stopping */
	pthread_cond_t progress;     /* a job advanced, or a model loaded */
	pthread_cond_t memory;       /* serving memory or a reservation shrank */
	struct deploy_job *head, *tail;
	int n_queued, n_idle;
	atomic_int stopping;
	struct cached *cache;
	struct deploy_reservation *reserved;  /* running jobs' memory */
	pthread_t *threads;
	int n_threads;
};

/* ---- rows ---- */

static void
row_copy(char *dst, size_t len, const unsigned char *src)
{
	snprintf(dst, len, "%s", src ? (const char *)src : "");
}

static void
deploy_row(sqlite3_stmt *st, struct deploy_info *out)
{
	memset(out, 0, sizeof(*out));
	row_copy(out->name, sizeof(out->name), sqlite3_column_text(st, 0));
	out->model_id = sqlite3_column_int64(st, 1);
	row_copy(out->model, sizeof(out->model), sqlite3_column_text(st, 2));
	out->owner_uid = (uint32_t)sqlite3_column_int64(st, 3);
	out->created_at = sqlite3_column_int64(st, 4);
}

/* Fills out's loaded, memory and shared base from the cache. */
static void
cache_memory(struct deploy *s, struct deploy_info *out)
{
	out->loaded = 0;
	out->memory = out->base_memory = out->request_memory = 0;
	out->base[0] = '\0';
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	for (struct cached *c = s->cache; c != NULL; c = c->next)
		if (c->model_id == out->model_id && c->state == CACHE_READY) {
			out->loaded = 1;
			out->memory = c->weights;
			out->request_memory = c->per_request;
			if (c->base != NULL) {
				snprintf(out->base, sizeof(out->base), "%s", c->base->name);
				out->base_memory = c->base->weights;
			}
		}
	pthread_mutex_unlock(&s->lock);
}

int
deploy_create(struct ftuned *d, uint32_t uid, const char *name_or_id, const char *alias,
    struct deploy_info *out, char *err, size_t err_len)
{
	struct model_info mi;
	struct deploy_info info;
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	int rc;

	/* checked before the copy into info.name, which would cut it */
	if (alias != NULL && alias[0] && registry_name_check(alias, err, err_len) != 0)
		return FT__CODE__INVALID_ARGUMENT;
	if (registry_model_find(d, name_or_id, &mi) != 0) {
		snprintf(err, err_len, "no model '%s' in the registry", name_or_id);
		return FT__CODE__NOT_FOUND;
	}
	memset(&info, 0, sizeof(info));
	snprintf(info.name, sizeof(info.name), "%s", alias != NULL && alias[0] ? alias : mi.name);
	snprintf(info.model, sizeof(info.model), "%s", mi.name);
	info.model_id = mi.id;
	info.owner_uid = uid;
	info.created_at = (int64_t)time(NULL);
	model_info_free(&mi);
	if (registry_name_check(info.name, err, err_len) != 0)
		return FT__CODE__INVALID_ARGUMENT;
	db = store_lock(d->store);
	if (sqlite3_prepare_v2(db, "INSERT INTO deployments (name, model_id, model_name, owner_uid, "
	    "created_at) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "deployments: %s", sqlite3_errmsg(db));
		store_unlock(d->store);
		return FT__CODE__INTERNAL;
	}
	sqlite3_bind_text(st, 1, info.name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, info.model_id);
	sqlite3_bind_text(st, 3, info.model, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, info.owner_uid);
	sqlite3_bind_int64(st, 5, info.created_at);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		snprintf(err, err_len, "a deployment named '%s' exists; undeploy it or pick another "
		    "--name", info.name);
	else if (rc != SQLITE_DONE)
		snprintf(err, err_len, "deployments: %s", sqlite3_errmsg(db));
	store_unlock(d->store);
	if (rc != SQLITE_DONE)
		return rc == SQLITE_CONSTRAINT ? FT__CODE__ALREADY_EXISTS : FT__CODE__INTERNAL;
	cache_memory(d->deploy, &info);
	*out = info;
	log_info("deploy: %s serves model %s (uid %u)", info.name, info.model, uid);
	return FT__CODE__OK;
}

int
deploy_list(struct ftuned *d, struct deploy_info **out, size_t *n)
{
	struct deploy_info *v = NULL, *nv;
	size_t count = 0;
	sqlite3_stmt *st;
	sqlite3 *db = store_lock(d->store);
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT name, model_id, model_name, owner_uid, created_at "
	    "FROM deployments ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
		log_error("deployments: %s", sqlite3_errmsg(db));
		store_unlock(d->store);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (count + 1) * sizeof(*v))) == NULL)
			break;
		v = nv;
		deploy_row(st, &v[count++]);
	}
	sqlite3_finalize(st);
	store_unlock(d->store);
	if (rc != SQLITE_DONE) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < count; i++)
		cache_memory(d->deploy, &v[i]);
	*out = v;
	*n = count;
	return 0;
}

int
deploy_find(struct ftuned *d, const char *name, struct deploy_info *out)
{
	sqlite3_stmt *st;
	sqlite3 *db = store_lock(d->store);
	int found = 0;

	if (sqlite3_prepare_v2(db, "SELECT name, model_id, model_name, owner_uid, created_at "
	    "FROM deployments WHERE name = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			deploy_row(st, out);
			found = 1;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	if (!found)
		return -1;
	cache_memory(d->deploy, out);
	return 0;
}

static int memory_fits(const struct deploy *s, uint64_t add);
static void cached_free(struct deploy *s, struct cached *c);

/* Unlinks c from the cache list when it is there.  Locked. */
static void
cache_unlink(struct deploy *s, struct cached *c)
{
	for (struct cached **pp = &s->cache; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->linked = 0;
}

/* An adapter on base b was unloaded: when nothing else uses b, it is
 * unloaded too if it was undeployed, no deployment asks for it itself, or a
 * job needs the memory. */
static void
base_release(struct deploy *s, struct cached *b)
{
	int dead;

	pthread_mutex_lock(&s->lock);
	b->last_used_ms = ftuned_now_ms();
	/* a base no deployment asks for itself goes with its last adapter */
	if (--b->users == 0 && b->refs == 0 && b->linked && (!b->served || !memory_fits(s, 0)))
		cache_unlink(s, b);
	dead = b->users == 0 && b->refs == 0 && !b->linked;
	pthread_cond_broadcast(&s->memory);
	pthread_mutex_unlock(&s->lock);
	if (dead) {
		log_info("deploy: model %s unloaded with the last adapter on it", b->name);
		cached_free(s, b);
	}
}

/* Frees c (its adapter view before the base it borrows from).  Unlocked. */
static void
cached_free(struct deploy *s, struct cached *c)
{
	chat_format_free(&c->fmt);
	if (c->base == NULL)
		fte_tokenizer_free(c->tok);   /* else the base's, borrowed */
	fte_model_free(c->model);
	if (c->base != NULL)
		base_release(s, c->base);
	free(c);
}

/* Unlinks model_id's entry; it is freed now or by its last user. */
static void
cache_drop(struct deploy *s, int64_t model_id)
{
	struct cached **pp, *c, *dead = NULL;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->cache; (c = *pp) != NULL;) {
		/* a base adapters run on stays while they do */
		if (c->model_id == model_id && c->users > 0)
			c->served = 0;
		if (c->model_id == model_id && c->state != CACHE_LOADING && c->users == 0) {
			*pp = c->next;
			c->linked = 0;
			if (c->refs == 0) {
				c->next = dead;
				dead = c;
			}
			continue;
		}
		pp = &c->next;
	}
	pthread_cond_broadcast(&s->memory);
	pthread_mutex_unlock(&s->lock);
	while ((c = dead) != NULL) {
		dead = c->next;
		cached_free(s, c);
	}
}

int
deploy_remove(struct ftuned *d, uint32_t uid, int admin, const char *name, char *err,
    size_t err_len)
{
	struct deploy_info info;
	sqlite3_stmt *st;
	sqlite3 *db;
	int rc, others = 0;

	if (deploy_find(d, name, &info) != 0) {
		snprintf(err, err_len, "no deployment '%s'", name);
		return FT__CODE__NOT_FOUND;
	}
	if (info.owner_uid != uid && !admin) {
		snprintf(err, err_len, "deployment '%s' belongs to uid %u", name, info.owner_uid);
		return FT__CODE__PERMISSION_DENIED;
	}
	db = store_lock(d->store);
	rc = sqlite3_prepare_v2(db, "DELETE FROM deployments WHERE name = ?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_DONE && sqlite3_prepare_v2(db, "SELECT count(*) FROM deployments "
	    "WHERE model_id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, info.model_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			others = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		snprintf(err, err_len, "deployments: %s", sqlite3_errmsg(db));
	store_unlock(d->store);
	if (rc != SQLITE_DONE)
		return FT__CODE__INTERNAL;
	if (others == 0 && d->deploy != NULL)
		cache_drop(d->deploy, info.model_id);
	log_info("deploy: %s undeployed (uid %u)", name, uid);
	return FT__CODE__OK;
}

/* ---- API keys ---- */

static void
key_hash(const char *key, size_t len, char hex[KEY_HASH_HEX])
{
	unsigned char h[crypto_generichash_BYTES];

	crypto_generichash(h, sizeof(h), (const unsigned char *)key, len, NULL, 0);
	sodium_bin2hex(hex, KEY_HASH_HEX, h, sizeof(h));
}

static void
key_row(sqlite3_stmt *st, struct deploy_key_info *k)
{
	memset(k, 0, sizeof(*k));
	row_copy(k->name, sizeof(k->name), sqlite3_column_text(st, 0));
	k->owner_uid = (uint32_t)sqlite3_column_int64(st, 1);
	k->created_at = sqlite3_column_int64(st, 2);
	k->last_used_at = sqlite3_column_int64(st, 3);
	k->requests = (uint64_t)sqlite3_column_int64(st, 4);
	k->tokens = (uint64_t)sqlite3_column_int64(st, 5);
	k->revoked_at = sqlite3_column_int64(st, 6);
}

int
deploy_key_create(struct ftuned *d, uint32_t uid, const char *name, char *key,
    struct deploy_key_info *out, char *err, size_t err_len)
{
	unsigned char raw[KEY_BYTES];
	char text[DEPLOY_KEY_TEXT_MAX + 1], hex[KEY_HASH_HEX];
	sqlite3_stmt *st;
	sqlite3 *db;
	int rc;

	if (registry_name_check(name, err, err_len) != 0)
		return FT__CODE__INVALID_ARGUMENT;
	if (sodium_init() < 0) {
		snprintf(err, err_len, "libsodium cannot start");
		return FT__CODE__INTERNAL;
	}
	randombytes_buf(raw, sizeof(raw));
	memcpy(text, KEY_PREFIX, sizeof(KEY_PREFIX));
	sodium_bin2base64(text + strlen(KEY_PREFIX), sizeof(text) - strlen(KEY_PREFIX), raw,
	    sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	key_hash(text, strlen(text), hex);
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->owner_uid = uid;
	out->created_at = (int64_t)time(NULL);
	db = store_lock(d->store);
	rc = sqlite3_prepare_v2(db, "INSERT INTO api_keys (name, hash, owner_uid, created_at) "
	    "VALUES (?, ?, ?, ?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, uid);
		sqlite3_bind_int64(st, 4, out->created_at);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_CONSTRAINT)
		snprintf(err, err_len, "you have an active key named '%s'; revoke it first", name);
	else if (rc != SQLITE_DONE)
		snprintf(err, err_len, "api_keys: %s", sqlite3_errmsg(db));
	store_unlock(d->store);
	if (rc != SQLITE_DONE) {
		sodium_memzero(text, sizeof(text));
		return rc == SQLITE_CONSTRAINT ? FT__CODE__ALREADY_EXISTS : FT__CODE__INTERNAL;
	}
	memcpy(key, text, strlen(text) + 1);
	sodium_memzero(text, sizeof(text));
	log_info("deploy: API key %s created (uid %u)", name, uid);
	return FT__CODE__OK;
}

int
deploy_key_list(struct ftuned *d, uint32_t uid, int all, struct deploy_key_info **out, size_t *n)
{
	struct deploy_key_info *v = NULL, *nv;
	size_t count = 0;
	sqlite3_stmt *st;
	sqlite3 *db = store_lock(d->store);
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT name, owner_uid, created_at, last_used_at, requests, "
	    "tokens, revoked_at FROM api_keys WHERE ? OR owner_uid = ? ORDER BY revoked_at != 0, "
	    "name, id", -1, &st, NULL) != SQLITE_OK) {
		log_error("api_keys: %s", sqlite3_errmsg(db));
		store_unlock(d->store);
		return -1;
	}
	sqlite3_bind_int(st, 1, all != 0);
	sqlite3_bind_int64(st, 2, uid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (count + 1) * sizeof(*v))) == NULL)
			break;
		v = nv;
		key_row(st, &v[count++]);
	}
	sqlite3_finalize(st);
	store_unlock(d->store);
	if (rc != SQLITE_DONE) {
		free(v);
		return -1;
	}
	*out = v;
	*n = count;
	return 0;
}

/* The id of uid's active key name or, for an admin without one, of the
 * lowest uid's.  0, or -1 with a message that names no other user's key. */
static int
key_revoke_find(sqlite3 *db, uint32_t uid, int admin, const char *name, int64_t *id,
    char *err, size_t err_len)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT id FROM api_keys WHERE name = ? AND revoked_at = 0 "
	    "AND (owner_uid = ? OR ?) ORDER BY owner_uid != ?, owner_uid LIMIT 1", -1, &st,
	    NULL) != SQLITE_OK) {
		snprintf(err, err_len, "api_keys: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int(st, 3, admin != 0);
	sqlite3_bind_int64(st, 4, uid);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	else
		snprintf(err, err_len, "you have no active key named '%s'", name);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int
deploy_key_revoke(struct ftuned *d, uint32_t uid, int admin, const char *name, char *err,
    size_t err_len)
{
	sqlite3_stmt *st;
	sqlite3 *db = store_lock(d->store);
	int64_t id = 0;
	int rc = FT__CODE__OK;

	if (key_revoke_find(db, uid, admin, name, &id, err, err_len) != 0) {
		rc = FT__CODE__NOT_FOUND;
	} else if (sqlite3_prepare_v2(db, "UPDATE api_keys SET revoked_at = ? WHERE id = ?", -1,
	    &st, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "api_keys: %s", sqlite3_errmsg(db));
		rc = FT__CODE__INTERNAL;
	} else {
		sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
		sqlite3_bind_int64(st, 2, id);
		if (sqlite3_step(st) != SQLITE_DONE) {
			snprintf(err, err_len, "api_keys: %s", sqlite3_errmsg(db));
			rc = FT__CODE__INTERNAL;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	if (rc == FT__CODE__OK)
		log_info("deploy: API key %s (id %lld) revoked (uid %u)", name, (long long)id, uid);
	return rc;
}

int
deploy_key_check(struct ftuned *d, const char *key, size_t len, int64_t *id, uint32_t *uid)
{
	char hex[KEY_HASH_HEX];
	sqlite3_stmt *st;
	sqlite3 *db;
	int ok = 0;

	if (len == 0 || len > DEPLOY_KEY_TEXT_MAX)
		return 0;
	key_hash(key, len, hex);
	db = store_lock(d->store);
	if (sqlite3_prepare_v2(db, "SELECT id, owner_uid FROM api_keys WHERE hash = ? AND "
	    "revoked_at = 0", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*id = sqlite3_column_int64(st, 0);
			*uid = (uint32_t)sqlite3_column_int64(st, 1);
			ok = 1;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return ok;
}

void
deploy_key_used(struct ftuned *d, int64_t id, uint64_t tokens)
{
	sqlite3_stmt *st;
	sqlite3 *db = store_lock(d->store);

	if (sqlite3_prepare_v2(db, "UPDATE api_keys SET requests = requests + 1, tokens = tokens "
	    "+ ?, last_used_at = ? WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)tokens);
		sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
		sqlite3_bind_int64(st, 3, id);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_warn("api_keys: usage not counted: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
}

/* ---- the model cache ---- */

static struct cached *cache_acquire(struct deploy *s, int64_t model_id,
    struct deploy_result *r);
static void cache_release(struct deploy *s, struct cached *c);

/* 1 when LoRA model m runs shared on its base: the base has weights of its
 * own (an adapter on an adapter is loaded merged). */
static int
adapter_shared(struct ftuned *d, const struct model_info *m)
{
	struct model_info b;
	char id[24];
	int shared;

	if (m->format != MODEL_LORA)
		return 0;
	snprintf(id, sizeof(id), "%lld", (long long)m->base_id);
	if (registry_model_find(d, id, &b) != 0)
		return 0;       /* registry_model_load names the missing base */
	shared = b.format != MODEL_LORA;
	model_info_free(&b);
	return shared;
}

/* Loads m's adapter onto its base's cache entry, which c then holds.  0, or
 * -1 with c->fail and c->err set. */
static int
cached_attach(struct deploy *s, struct cached *c, const struct model_info *m)
{
	struct deploy_result br;
	struct cached *b;

	memset(&br, 0, sizeof(br));
	if ((b = cache_acquire(s, m->base_id, &br)) == NULL) {
		c->fail = br.status;
		snprintf(c->err, sizeof(c->err), "the base of %s: %s", m->name, br.message);
		return -1;
	}
	if (registry_adapter_attach(s->d, m, b->model, &c->model, c->err, sizeof(c->err)) != 0) {
		c->fail = DEPLOY_FAILED;
		cache_release(s, b);
		return -1;
	}
	/* the request's reference becomes the adapter's hold */
	pthread_mutex_lock(&s->lock);
	b->refs--;
	b->users++;
	pthread_mutex_unlock(&s->lock);
	c->base = b;
	return 0;
}

/* Loads c's model (called without the lock; c is LOADING, so no one else
 * touches it).  0, or -1 with c->fail and c->err set. */
static int
cached_load(struct deploy *s, struct cached *c)
{
	struct model_info mi;
	char id[24], *spec = NULL;
	int rc;

	snprintf(id, sizeof(id), "%lld", (long long)c->model_id);
	if (registry_model_find(s->d, id, &mi) != 0) {
		c->fail = DEPLOY_NOT_FOUND;
		snprintf(c->err, sizeof(c->err), "the deployed model (id %s) was removed from the "
		    "registry", id);
		return -1;
	}
	if (adapter_shared(s->d, &mi))
		rc = cached_attach(s, c, &mi);
	else if ((rc = registry_model_load(s->d, &mi, &c->model, c->err, sizeof(c->err))) != 0)
		c->fail = DEPLOY_FAILED;
	if (rc != 0) {
		model_info_free(&mi);
		return -1;
	}
	/* an adapter's tokenizer files are its base's (registry_adapter_add) */
	if (c->base != NULL)
		c->tok = c->base->tok;
	else if (fte_tokenizer_load(mi.tokenizer, &c->tok) != FTE_OK) {
		c->fail = DEPLOY_FAILED;
		snprintf(c->err, sizeof(c->err), "loading model %s: %s", mi.name, fte_last_error());
		model_info_free(&mi);
		return -1;
	}
	/* the template it was trained with (chat_template.h) */
	if (registry_model_config_dir(s->d, &mi, c->config_dir, sizeof(c->config_dir)) != 0)
		snprintf(c->config_dir, sizeof(c->config_dir), "%s", mi.dir);
	if (chat_format_of_model(&s->d->cfg, mi.lineage_json, mi.dir, &spec) != 0 ||
	    chat_format_open(&s->d->cfg, spec, mi.dir, c->config_dir, c->tok, &c->fmt, c->err,
	    sizeof(c->err)) != 0) {
		c->fail = DEPLOY_FAILED;
		if (spec == NULL)
			snprintf(c->err, sizeof(c->err), "out of memory");
		free(spec);
		model_info_free(&mi);
		/* a failed entry is freed under the lock: let the base go now */
		if (c->base != NULL) {
			fte_model_free(c->model);
			c->model = NULL;
			c->tok = NULL;
			base_release(s, c->base);
			c->base = NULL;
		}
		return -1;
	}
	snprintf(c->name, sizeof(c->name), "%s", mi.name);
	snprintf(c->dir, sizeof(c->dir), "%s", mi.dir);
	log_info("deploy: model %s loaded (%.1f MiB of its own%s%s, template %.40s)", mi.name,
	    (double)fte_model_own_bytes(c->model) / (1 << 20), c->base ? " on shared base " : "",
	    c->base ? c->base->name : "", c->fmt.chat && strcmp(spec, "chat") != 0 ? "Jinja" : spec);
	free(spec);
	model_info_free(&mi);
	return 0;
}

/* Serving memory: every listed model's weights and the generation memory
 * of each request holding it.  Locked. */
static uint64_t
memory_serving(const struct deploy *s)
{
	uint64_t n = 0;

	for (const struct cached *c = s->cache; c != NULL; c = c->next)
		n += c->weights + (uint64_t)c->refs * c->per_request;
	return n;
}

/* 1 when serving may hold add more bytes beside the running jobs'
 * reservations (always, while no job holds one).  Locked. */
static int
memory_fits(const struct deploy *s, uint64_t add)
{
	uint64_t n = memory_serving(s) + add;

	if (s->reserved == NULL)
		return 1;
	for (const struct deploy_reservation *r = s->reserved; r != NULL; r = r->next)
		n += r->bytes;
	return n <= queue_memory_budget(s->d);
}

/* What model_id will hold once loaded, from its registered shape (an
 * adapter: its base's weights and its files, whether or not the base is
 * loaded).  0, or -1 with the reason in r. */
static int
model_memory(struct deploy *s, int64_t model_id, struct deploy_result *r, uint64_t *weights,
    uint64_t *per_request)
{
	struct model_info mi;
	fte_config mc;
	char id[24];

	snprintf(id, sizeof(id), "%lld", (long long)model_id);
	if (registry_model_find(s->d, id, &mi) != 0) {
		r->status = DEPLOY_NOT_FOUND;
		snprintf(r->message, sizeof(r->message), "the deployed model (id %s) "
		    "was removed from the registry", id);
		return -1;
	}
	if (registry_model_config(&mi, &mc, r->message, sizeof(r->message)) != 0) {
		r->status = DEPLOY_FAILED;
		model_info_free(&mi);
		return -1;
	}
	*weights = mi.params * sizeof(float) + (mi.format == MODEL_LORA ? mi.size : 0);
	*per_request = fte_generate_memory(&mc);
	model_info_free(&mi);
	return 0;
}

/* While a job holds memory, waits up to serve_memory_wait seconds until a
 * generation with model_id, and its weights when it is not listed, fit
 * beside it.  Locked; 0 with *c the listed entry or NULL, or -1 with the
 * reason in r. */
static int
memory_wait(struct deploy *s, int64_t model_id, struct deploy_result *r, struct cached **c,
    uint64_t *weights, uint64_t *per_request)
{
	struct timespec until = { 0, 0 };
	int sized = 0, rc, late = 0;

	for (;;) {
		for (*c = s->cache; *c != NULL && (*c)->model_id != model_id; *c = (*c)->next)
			;
		if (atomic_load(&s->stopping)) {
			r->status = DEPLOY_STOPPING;
			snprintf(r->message, sizeof(r->message), "the server is shutting "
			    "down");
			return -1;
		}
		if (s->reserved == NULL)
			return 0;
		if (*c == NULL && !sized) {
			/* Sized without the lock: it reads the registry. */
			pthread_mutex_unlock(&s->lock);
			rc = model_memory(s, model_id, r, weights, per_request);
			pthread_mutex_lock(&s->lock);
			if (rc != 0)
				return -1;
			sized = 1;
			continue;
		}
		if (memory_fits(s, *c != NULL ? (*c)->per_request : *weights + *per_request))
			return 0;
		if (late) {
			r->status = DEPLOY_BUSY;
			snprintf(r->message, sizeof(r->message), "the server's memory is "
			    "in use by %s job %lld; retry later", s->reserved->kind,
			    (long long)s->reserved->job_id);
			return -1;
		}
		if (until.tv_sec == 0) {
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += s->d->cfg.serve_memory_wait;
		}
		late = pthread_cond_timedwait(&s->memory, &s->lock, &until) == ETIMEDOUT;
	}
}

/* Returns model_id's loaded entry with a reference, loading it on this
 * thread or waiting for the thread that is; NULL with the reason in r. */
static struct cached *
cache_acquire(struct deploy *s, int64_t model_id, struct deploy_result *r)
{
	struct cached *c;
	uint64_t weights = 0, per_request = 0;
	int rc;

	pthread_mutex_lock(&s->lock);
	if (memory_wait(s, model_id, r, &c, &weights, &per_request) != 0) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			pthread_mutex_unlock(&s->lock);
			r->status = DEPLOY_NO_MEMORY;
			snprintf(r->message, sizeof(r->message), "out of memory");
			return NULL;
		}
		c->model_id = model_id;
		c->state = CACHE_LOADING;
		c->refs = 1;
		c->linked = 1;
		c->weights = weights;
		c->per_request = per_request;
		c->next = s->cache;
		s->cache = c;
		pthread_mutex_unlock(&s->lock);
		rc = cached_load(s, c);
		pthread_mutex_lock(&s->lock);
		c->state = rc == 0 ? CACHE_READY : CACHE_FAILED;
		if (rc == 0) {
			/* What the engine allocated, now that it has. */
			c->weights = fte_model_own_bytes(c->model);
			c->per_request = fte_model_generate_memory(c->model);
		} else {
			/* Unlinked, so the next request tries again. */
			cache_unlink(s, c);
			pthread_cond_broadcast(&s->memory);
		}
		pthread_cond_broadcast(&s->progress);
	} else {
		c->refs++;
		while (c->state == CACHE_LOADING)
			pthread_cond_wait(&s->progress, &s->lock);
	}
	if (c->state == CACHE_FAILED) {
		r->status = c->fail;
		snprintf(r->message, sizeof(r->message), "%s", c->err);
		if (--c->refs == 0)
			cached_free(s, c);  /* holds no base: cached_attach let it go */
		c = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	return c;
}

/* Drops a request's reference.  A model whose last request ends while
 * serving and the jobs' memory do not fit the budget is unloaded. */
static void
cache_release(struct deploy *s, struct cached *c)
{
	int64_t job_id = 0;
	int dead, evict;

	pthread_mutex_lock(&s->lock);
	c->last_used_ms = ftuned_now_ms();
	evict = --c->refs == 0 && c->users == 0 && c->linked && !memory_fits(s, 0);
	if (evict) {
		cache_unlink(s, c);
		job_id = s->reserved->job_id;
	}
	dead = c->refs == 0 && c->users == 0 && !c->linked;
	pthread_cond_broadcast(&s->memory);
	pthread_mutex_unlock(&s->lock);
	if (evict)
		log_info("deploy: model %s unloaded after its last request: job %lld needs the "
		    "memory (serve_yield_to_training)", c->name, (long long)job_id);
	if (dead)
		cached_free(s, c);
}

/* Unlinks models idle for serve_idle_unload seconds into *dead. Locked. */
static void
cache_sweep(struct deploy *s, struct cached **dead)
{
	uint64_t idle_ms = (uint64_t)s->d->cfg.serve_idle_unload * 1000, now = ftuned_now_ms();
	struct cached **pp, *c;

	if (idle_ms == 0)
		return;
	for (pp = &s->cache; (c = *pp) != NULL;) {
		if (c->state == CACHE_READY && c->refs == 0 && c->users == 0 &&
		    now - c->last_used_ms >= idle_ms) {
			*pp = c->next;
			c->linked = 0;
			c->next = *dead;
			*dead = c;
			continue;
		}
		pp = &c->next;
	}
}

int
deploy_memory_reserve(struct deploy *s, struct deploy_reservation *r)
{
	struct cached **pp, **lru, *c, *dead = NULL;
	uint64_t busy = 0;
	int n = 0;

	if (s == NULL || !s->d->cfg.serve_yield_to_training)
		return 0;
	pthread_mutex_lock(&s->lock);
	r->next = s->reserved;
	s->reserved = r;
	while (!memory_fits(s, 0)) {
		lru = NULL;
		for (pp = &s->cache; *pp != NULL; pp = &(*pp)->next)
			if ((*pp)->state == CACHE_READY && (*pp)->refs == 0 && (*pp)->users == 0 &&
			    (lru == NULL || (*pp)->last_used_ms < (*lru)->last_used_ms))
				lru = pp;
		/* The rest are in use: cache_release unloads them as they end. */
		if (lru == NULL)
			break;
		c = *lru;
		*lru = c->next;
		c->linked = 0;
		c->next = dead;
		dead = c;
		n++;
	}
	if (!memory_fits(s, 0))
		busy = memory_serving(s);
	pthread_mutex_unlock(&s->lock);
	while ((c = dead) != NULL) {
		dead = c->next;
		log_info("deploy: model %s unloaded (%.1f MiB): %s job %lld needs %.1f MiB of "
		    "memory_budget (serve_yield_to_training)", c->name, (double)c->weights / (1 << 20),
		    r->kind, (long long)r->job_id, (double)r->bytes / (1 << 20));
		cached_free(s, c);
	}
	if (busy > 0)
		log_info("deploy: %.1f MiB of models in use beside %s job %lld, unloaded as their "
		    "requests end", (double)busy / (1 << 20), r->kind, (long long)r->job_id);
	return n;
}

void
deploy_memory_release(struct deploy *s, struct deploy_reservation *r)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	for (struct deploy_reservation **pp = &s->reserved; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	pthread_cond_broadcast(&s->memory);
	pthread_mutex_unlock(&s->lock);
}

uint64_t
deploy_memory_used(struct deploy *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = memory_serving(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- jobs ---- */

/* Length of the longest prefix of text[0..len) that does not end inside a
 * UTF-8 character. */
static size_t
utf8_complete(const char *text, size_t len)
{
	size_t i = len, need;
	unsigned char b;

	for (int back = 0; back < 4 && i > 0; back++) {
		b = (unsigned char)text[--i];
		if ((b & 0xc0) != 0x80) {
			need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
			return len - i >= need ? len : i;
		}
	}
	return len;
}

/* Finds the first stop string in text; returns its offset or -1, and in
 * *hold the bytes at the end that could begin one. */
static int
stop_find(const struct deploy_job *j, const char *text, size_t len, size_t *hold)
{
	int at = -1;

	*hold = 0;
	for (size_t i = 0; i < j->n_stop; i++) {
		const char *p = strstr(text, j->stop[i]);
		size_t sl = strlen(j->stop[i]);

		if (p != NULL && (at < 0 || p - text < at))
			at = (int)(p - text);
		for (size_t k = sl - 1; k > *hold && k > 0; k--)
			if (k <= len && memcmp(text + len - k, j->stop[i], k) == 0) {
				*hold = k;
				break;
			}
	}
	return at;
}

static void
token_free(struct deploy_token *t)
{
	free(t->text);
	for (int i = 0; i < t->n_top; i++)
		free(t->top_text[i]);
}

static char *
bytes_dup(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* token_fill describes ids[n - 1], which took the decoded text of ids[0..n)
 * (len bytes) from prev_len to len, and lp (NULL: no log-probability).
 * An alternative's bytes are what it would have added in its place (what
 * it decodes to alone when that is not an extension).  0, or -1 with t
 * left empty. */
static int
token_fill(struct deploy_token *t, const fte_tokenizer *tok, int *ids, size_t n,
    const char *text, size_t len, size_t prev_len, const fte_logprob *lp, int k)
{
	int id = ids[n - 1], bad = 0;

	memset(t, 0, sizeof(*t));
	t->offset = prev_len < len ? prev_len : len;
	t->len = len - t->offset;
	if ((t->text = bytes_dup(text + t->offset, t->len)) == NULL)
		return -1;
	if (lp == NULL)
		return 0;
	t->has_logprob = 1;
	t->logprob = lp->logprob;
	for (int i = 0; i < lp->n_top && i < k && !bad; i++) {
		char *alt = NULL;
		size_t alen = 0;

		ids[n - 1] = lp->top_id[i];
		if (fte_tokenizer_decode_flags(tok, ids, n, FTE_TOK_SKIP_SPECIAL, &alt, &alen) !=
		    FTE_OK) {
			bad = 1;
		} else if (alen >= t->offset && memcmp(alt, text, t->offset) == 0) {
			t->top_len[i] = alen - t->offset;
			bad = (t->top_text[i] = bytes_dup(alt + t->offset, t->top_len[i])) == NULL;
		} else {
			free(alt);
			alt = NULL;
			bad = fte_tokenizer_decode_flags(tok, &lp->top_id[i], 1, FTE_TOK_SKIP_SPECIAL,
			    &alt, &alen) != FTE_OK;
			if (!bad) {
				t->top_len[i] = alen;
				bad = (t->top_text[i] = bytes_dup(alt, alen)) == NULL;
			}
		}
		free(alt);
		t->top_lp[i] = lp->top_lp[i];
		t->n_top = i + 1;
	}
	ids[n - 1] = id;
	if (bad) {
		token_free(t);
		memset(t, 0, sizeof(*t));
		return -1;
	}
	return 0;
}

/* fte_generate's callback: decode, record the token's log-probabilities
 * (lp not NULL), look for stops, publish safe text. */
static int
job_step(struct deploy_job *j, int token, const fte_logprob *lp)
{
	struct deploy *s = j->s;
	char *text = NULL;
	size_t len, hold, visible;
	int at;

	j->ids[j->n_ids++] = token;
	if (fte_tokenizer_decode_flags(j->tok, j->ids, (size_t)j->n_ids, FTE_TOK_SKIP_SPECIAL,
	    &text, &len) != FTE_OK)
		return 1;
	if (lp != NULL && token_fill(&j->toks[j->n_ids - 1], j->tok, j->ids, (size_t)j->n_ids,
	    text, len, j->prev_len, lp, j->top_logprobs) != 0) {
		free(text);
		return 1;
	}
	j->prev_len = len;
	at = stop_find(j, text, len, &hold);
	if (at >= 0) {
		j->stop_at = at;
		visible = (size_t)at;
	} else {
		visible = utf8_complete(text, len - hold);
	}
	pthread_mutex_lock(&s->lock);
	if (lp != NULL)
		j->n_toks = (size_t)j->n_ids;
	/* Published text never changes: decoders here extend their output. */
	if (visible >= j->visible && memcmp(text, j->text ? j->text : "", j->visible) == 0) {
		free(j->text);
		j->text = text;
		j->visible = visible;
		text = NULL;
		pthread_cond_broadcast(&s->progress);
	}
	pthread_mutex_unlock(&s->lock);
	free(text);
	return at >= 0 || atomic_load(&j->cancel) || atomic_load(&s->stopping);
}

static int
job_token(void *arg, int token)
{
	return job_step(arg, token, NULL);
}

static int
job_token_lp(void *arg, int token, const fte_logprob *lp)
{
	return job_step(arg, token, lp);
}

/* job_echo records the prompt's tokens with their teacher-forced
 * log-probabilities (the first has none).  0, or -1 with a message. */
static int
job_echo(struct deploy_job *j, struct cached *c, int *ids, size_t n)
{
	fte_logprob *lp = calloc(n, sizeof(*lp));
	char *text = NULL;
	size_t len = 0, prev = 0;
	int rc = -1;

	if (lp == NULL || (j->ptoks = calloc(n, sizeof(*j->ptoks))) == NULL) {
		fte_error_set(FTE_ENOMEM, "out of memory");
		goto out;
	}
	if (n > 1 && fte_model_logprobs(c->model, ids, (int)n, j->top_logprobs, lp + 1) != FTE_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		free(text);
		text = NULL;
		if (fte_tokenizer_decode_flags(c->tok, ids, i + 1, FTE_TOK_SKIP_SPECIAL, &text,
		    &len) != FTE_OK)
			goto out;
		if (token_fill(&j->ptoks[i], c->tok, ids, i + 1, text, len, prev, i ? &lp[i] : NULL,
		    j->top_logprobs) != 0) {
			fte_error_set(FTE_ENOMEM, "out of memory");
			goto out;
		}
		j->n_ptoks++;
		prev = len;
	}
	j->ptext = text;
	j->ptext_len = len;
	text = NULL;
	rc = 0;
out:
	free(text);
	free(lp);
	return rc;
}

/* The prompt's ids in format f: a completion's raw prompt as it is, a
 * generate prompt as one user message, a chat request's messages. */
static int
job_prompt_ids(struct deploy_job *j, struct cached *c, const struct chat_format *f, int **ids,
    size_t *n)
{
	fte_message one = { "user", j->prompt };

	if (j->template_ != NULL)
		return chat_format_messages_prompt(f, c->tok, &one, 1, ids, n);
	if (j->conversation == NULL)
		return fte_tokenizer_encode(c->tok, j->prompt, strlen(j->prompt), 1, ids, n);
	return chat_format_conversation_prompt(f, c->tok, j->conversation, NULL, ids, n);
}

/* Generates j on this serving thread; the caller marks it done. */
static void
job_run(struct deploy *s, struct deploy_job *j)
{
	struct deploy_result *r = &j->result;
	struct cached *c;
	const fte_config *mc;
	fte_sampler sm;
	struct chat_format other = { 0 };
	const struct chat_format *fmt;
	int *ids = NULL, n_out = 0, max_new;
	size_t n_ids = 0, len;
	char *text = NULL;

	/* Cancelled while queued (a generate session let go): no model load. */
	if (atomic_load(&j->cancel) || (c = cache_acquire(s, j->model_id, &j->result)) == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	c->served = 1;
	pthread_mutex_unlock(&s->lock);
	mc = fte_model_config(c->model);
	fmt = &c->fmt;
	/* a generate request may name another template than the model's */
	if (j->template_ != NULL && j->template_[0] != '\0') {
		if (chat_format_open(&s->d->cfg, j->template_, c->dir, c->config_dir, c->tok, &other, r->message,
		    sizeof(r->message)) != 0) {
			r->status = DEPLOY_BAD_REQUEST;
			goto out;
		}
		fmt = &other;
	}
	if (job_prompt_ids(j, c, fmt, &ids, &n_ids) != FTE_OK) {
		r->status = DEPLOY_BAD_REQUEST;
		snprintf(r->message, sizeof(r->message), "prompt: %s", fte_last_error());
		goto out;
	}
	if (n_ids == 0 || (int)n_ids >= mc->max_seq_len) {
		r->status = DEPLOY_BAD_REQUEST;
		snprintf(r->message, sizeof(r->message), "the prompt is %zu tokens; the model's "
		    "context is %d", n_ids, mc->max_seq_len);
		goto out;
	}
	max_new = mc->max_seq_len - (int)n_ids;
	if (j->max_tokens > 0 && j->max_tokens < max_new)
		max_new = j->max_tokens;
	fte_sampler_default(&sm);
	sm.temperature = j->temperature;
	sm.top_p = j->top_p;
	sm.seed = j->seed;
	sm.max_new_tokens = max_new;
	sm.stop_ids = fmt->stop_ids;
	sm.n_stop_ids = fmt->n_stop;
	if ((j->ids = malloc((size_t)max_new * sizeof(int))) == NULL ||
	    (j->logprobs && (j->toks = calloc((size_t)max_new, sizeof(*j->toks))) == NULL)) {
		r->status = DEPLOY_NO_MEMORY;
		snprintf(r->message, sizeof(r->message), "out of memory");
		goto out;
	}
	if (j->echo && job_echo(j, c, ids, n_ids) != 0) {
		r->status = DEPLOY_FAILED;
		snprintf(r->message, sizeof(r->message), "echo: %s", fte_last_error());
		goto out;
	}
	j->tok = c->tok;
	pthread_mutex_lock(&s->lock);
	j->started = 1;
	r->prompt_tokens = (int)n_ids;
	pthread_cond_broadcast(&s->progress);
	pthread_mutex_unlock(&s->lock);
	if ((j->logprobs ? fte_generate_logprobs(c->model, ids, (int)n_ids, &sm, j->top_logprobs,
	    job_token_lp, j, NULL, &n_out) : fte_generate(c->model, ids, (int)n_ids, &sm, job_token,
	    j, NULL, &n_out)) != FTE_OK ||
	    fte_tokenizer_decode_flags(c->tok, j->ids, (size_t)j->n_ids, FTE_TOK_SKIP_SPECIAL,
	    &text, &len) != FTE_OK) {
		r->status = DEPLOY_FAILED;
		snprintf(r->message, sizeof(r->message), "generate: %s", fte_last_error());
		goto out;
	}
	if (j->stop_at >= 0)
		len = (size_t)j->stop_at;
	text[len] = '\0';
	r->completion_tokens = n_out;
	r->finish_reason = j->stop_at >= 0 || (n_out < max_new &&
	    (int)n_ids + n_out < mc->max_seq_len) ? "stop" : "length";
	if (atomic_load(&s->stopping) && !atomic_load(&j->cancel) && j->stop_at < 0 &&
	    n_out < max_new) {
		r->status = DEPLOY_STOPPING;
		snprintf(r->message, sizeof(r->message), "the server is shutting down");
	}
	pthread_mutex_lock(&s->lock);
	free(j->text);
	j->text = text;
	j->visible = len;
	text = NULL;
	pthread_mutex_unlock(&s->lock);
out:
	free(text);
	free(ids);
	chat_format_free(&other);
	cache_release(s, c);
}

static void *
worker_main(void *arg)
{
	struct deploy *s = arg;
	struct deploy_job *j;
	struct cached *dead, *c;
	struct timespec until;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!atomic_load(&s->stopping) && s->head == NULL) {
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += SWEEP_MS / 1000;
			pthread_cond_timedwait(&s->work, &s->lock, &until);
			dead = NULL;
			cache_sweep(s, &dead);
			if (dead == NULL)
				continue;
			pthread_mutex_unlock(&s->lock);
			while ((c = dead) != NULL) {
				dead = c->next;
				log_info("deploy: model %s unloaded after %d s idle", c->name,
				    s->d->cfg.serve_idle_unload);
				cached_free(s, c);
			}
			pthread_mutex_lock(&s->lock);
		}
		if (atomic_load(&s->stopping))
			break;
		j = s->head;
		if ((s->head = j->next) == NULL)
			s->tail = NULL;
		s->n_queued--;
		s->n_idle--;
		pthread_mutex_unlock(&s->lock);
		job_run(s, j);
		/* Idle again before the client hears of it, so that its next
		 * request finds this thread free. */
		pthread_mutex_lock(&s->lock);
		s->n_idle++;
		j->done = 1;
		pthread_cond_broadcast(&s->progress);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void
job_free(struct deploy_job *j)
{
	free(j->prompt);
	free(j->template_);
	free(j->conversation);
	for (size_t i = 0; i < j->n_stop; i++)
		free(j->stop[i]);
	free(j->stop);
	free(j->text);
	free(j->ids);
	for (size_t i = 0; i < j->n_toks; i++)
		token_free(&j->toks[i]);
	free(j->toks);
	for (size_t i = 0; i < j->n_ptoks; i++)
		token_free(&j->ptoks[i]);
	free(j->ptoks);
	free(j->ptext);
	free(j);
}

/* Copies what p asks for into a new job. NULL when out of memory. */
static struct deploy_job *
job_new(struct deploy *s, const struct deploy_params *p, const struct deploy_info *info)
{
	struct deploy_job *j = calloc(1, sizeof(*j));
	int bad = 0;

	if (j == NULL)
		return NULL;
	j->s = s;
	j->model_id = info->model_id;
	snprintf(j->name, sizeof(j->name), "%s", info->name);
	snprintf(j->result.model, sizeof(j->result.model), "%s", info->name);
	j->max_tokens = p->max_tokens;
	j->temperature = p->temperature;
	j->top_p = p->top_p;
	j->seed = p->seed;
	j->logprobs = p->logprobs;
	j->top_logprobs = p->top_logprobs;
	j->echo = p->echo;
	j->stop_at = -1;
	atomic_init(&j->cancel, 0);
	j->prompt = strdup(p->prompt ? p->prompt : "");
	j->stop = calloc(p->n_stop + 1, sizeof(*j->stop));
	bad = j->prompt == NULL || j->stop == NULL;
	if (!bad && p->template_ != NULL)
		bad = (j->template_ = strdup(p->template_)) == NULL;
	if (!bad && p->conversation != NULL)
		bad = (j->conversation = strdup(p->conversation)) == NULL;
	for (size_t i = 0; !bad && i < p->n_stop; i++) {
		bad = (j->stop[i] = strdup(p->stop[i])) == NULL;
		j->n_stop += !bad;
	}
	if (bad) {
		job_free(j);
		return NULL;
	}
	return j;
}

enum deploy_status
deploy_submit(struct deploy *s, const struct deploy_params *p, struct deploy_job **out,
    char *err, size_t err_len)
{
	struct deploy_info info;
	struct deploy_job *j;

	if (atomic_load(&s->stopping)) {
		snprintf(err, err_len, "the server is shutting down");
		return DEPLOY_STOPPING;
	}
	if (p->model_id > 0) {
		memset(&info, 0, sizeof(info));
		info.model_id = p->model_id;
		snprintf(info.name, sizeof(info.name), "%s", p->model);
	} else if (deploy_find(s->d, p->model, &info) != 0) {
		snprintf(err, err_len, "The model '%s' does not exist (ftctl deploy ls lists the "
		    "deployed ones)", p->model);
		return DEPLOY_NOT_FOUND;
	}
	if ((j = job_new(s, p, &info)) == NULL) {
		snprintf(err, err_len, "out of memory");
		return DEPLOY_NO_MEMORY;
	}
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&s->stopping) || s->n_queued + 1 > s->n_idle + s->d->cfg.serve_queue_max) {
		int stopping = atomic_load(&s->stopping);

		pthread_mutex_unlock(&s->lock);
		job_free(j);
		if (stopping) {
			snprintf(err, err_len, "the server is shutting down");
			return DEPLOY_STOPPING;
		}
		snprintf(err, err_len, "too many requests: %d generating and %d waiting (serve_threads, "
		    "serve_queue_max); retry later", s->n_threads, s->d->cfg.serve_queue_max);
		return DEPLOY_FULL;
	}
	if (s->tail != NULL)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	s->n_queued++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	*out = j;
	return DEPLOY_OK;
}

int
deploy_job_wait(struct deploy_job *j, size_t off, int *started, char **chunk, size_t *len)
{
	return deploy_job_wait_for(j, off, -1, started, chunk, len);
}

int
deploy_job_wait_for(struct deploy_job *j, size_t off, int timeout_ms, int *started,
    char **chunk, size_t *len)
{
	struct deploy *s = j->s;
	struct timespec until;
	int running;

	*chunk = NULL;
	*len = 0;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ms > 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&s->lock);
	while (!j->done && (!j->started || j->visible <= off)) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->progress, &s->lock);
		else if (timeout_ms == 0 ||
		    pthread_cond_timedwait(&s->progress, &s->lock, &until) == ETIMEDOUT)
			break;
	}
	*started = j->started;
	if (j->visible > off && (*chunk = malloc(j->visible - off + 1)) != NULL) {
		memcpy(*chunk, j->text + off, j->visible - off);
		(*chunk)[j->visible - off] = '\0';
		*len = j->visible - off;
	}
	running = !j->done;
	pthread_mutex_unlock(&s->lock);
	return running;
}

const struct deploy_token *
deploy_job_tokens(struct deploy_job *j, size_t upto, size_t *n)
{
	struct deploy *s = j->s;
	size_t k = 0;

	pthread_mutex_lock(&s->lock);
	while (k < j->n_toks && (j->toks[k].offset + j->toks[k].len <= upto ||
	    (j->done && j->toks[k].offset < upto)))
		k++;
	pthread_mutex_unlock(&s->lock);
	*n = k;
	return j->toks;
}

const struct deploy_token *
deploy_job_prompt(const struct deploy_job *j, size_t *n, const char **text, size_t *len)
{
	*n = j->n_ptoks;
	*text = j->ptext ? j->ptext : "";
	*len = j->ptext_len;
	return j->ptoks;
}

const struct deploy_result *
deploy_job_result(const struct deploy_job *j)
{
	return &j->result;
}

void
deploy_job_cancel(struct deploy_job *j)
{
	atomic_store(&j->cancel, 1);
}

void
deploy_job_release(struct deploy_job *j)
{
	struct deploy *s = j->s;

	pthread_mutex_lock(&s->lock);
	while (!j->done)
		pthread_cond_wait(&s->progress, &s->lock);
	pthread_mutex_unlock(&s->lock);
	job_free(j);
}

/* ---- start and stop ---- */

int
deploy_start(struct ftuned *d, struct deploy **out, char *err, size_t err_len)
{
	struct deploy *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	if (s == NULL || (s->threads = calloc((size_t)d->cfg.serve_threads,
	    sizeof(*s->threads))) == NULL) {
		free(s);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	s->d = d;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->work, &ca);
	pthread_cond_init(&s->progress, &ca);
	pthread_cond_init(&s->memory, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&s->stopping, 0);
	for (int i = 0; i < d->cfg.serve_threads; i++) {
		if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) {
			snprintf(err, err_len, "serving thread: %s", strerror(errno));
			deploy_stop(s);
			deploy_free(s);
			return -1;
		}
		s->n_threads++;
		pthread_mutex_lock(&s->lock);
		s->n_idle++;
		pthread_mutex_unlock(&s->lock);
	}
	*out = s;
	return 0;
}

void
deploy_stop(struct deploy *s)
{
	struct deploy_job *j;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->stopping, 1);
	while ((j = s->head) != NULL) {
		s->head = j->next;
		j->result.status = DEPLOY_STOPPING;
		snprintf(j->result.message, sizeof(j->result.message), "the server is shutting down");
		j->done = 1;
	}
	s->tail = NULL;
	s->n_queued = 0;
	pthread_cond_broadcast(&s->work);
	pthread_cond_broadcast(&s->progress);
	pthread_cond_broadcast(&s->memory);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	s->n_threads = 0;
}

void
deploy_free(struct deploy *s)
{
	struct cached *c;

	if (s == NULL)
		return;
	/* adapters let their bases go first, so that each is freed once */
	for (c = s->cache; c != NULL; c = c->next)
		if (c->base != NULL) {
			c->base->users--;
			c->base = NULL;
			c->tok = NULL;        /* the base's */
		}
	while ((c = s->cache) != NULL) {
		s->cache = c->next;
		cached_free(s, c);
	}
	pthread_cond_destroy(&s->memory);
	pthread_cond_destroy(&s->progress);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s->threads);
	free(s);
}

/* ---- reply objects ---- */

int
deploy_key_proto(struct arena *a, const struct deploy_key_info *k, Ft__KeyInfo **out)
{
	Ft__KeyInfo *p = arena_alloc(a, sizeof(*p));

	if (p == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__key_info__init(p);
	if ((p->name = arena_strdup(a, k->name)) == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	p->owner_uid = k->owner_uid;
	p->created_at = k->created_at;
	p->last_used_at = k->last_used_at;
	p->requests = k->requests;
	p->tokens = k->tokens;
	p->revoked_at = k->revoked_at;
	*out = p;
	return FT__CODE__OK;
}

int
deploy_key_list_reply(struct ftuned *d, struct arena *a, uint32_t uid, int all,
    Ft__KeyListReply **out)
{
	Ft__KeyListReply *r = arena_alloc(a, sizeof(*r));
	struct deploy_key_info *v;
	size_t n;
	int code = FT__CODE__OK;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (deploy_key_list(d, uid, all, &v, &n) != 0)
		return FT__CODE__INTERNAL;
	ft__key_list_reply__init(r);
	if ((r->keys = arena_alloc(a, (n + 1) * sizeof(*r->keys))) == NULL)
		code = FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; code == FT__CODE__OK && i < n; i++)
		if ((code = deploy_key_proto(a, &v[i], &r->keys[r->n_keys])) == FT__CODE__OK)
			r->n_keys++;
	free(v);
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}
