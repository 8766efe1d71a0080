/*
 * genstream.c - streamed Generate sessions (see genstream.h).
 *
 * DESIGN: a session is a deploy job plus its owner and the time of its last
 * poll, in one list under g->lock.  A poll holds a reference while it waits
 * on the job, so the session outlives the wait even if it is cancelled or
 * expires meanwhile.  A session leaves the list when it ended (its last
 * text was returned), was cancelled or expired; once no poll holds it, it
 * moves to the dead list, and the reaper cancels and releases its job:
 * deploy_job_release waits for a running generation to notice, which must
 * not happen on an RPC thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "ft_wire.h"
#include "genstream.h"
#include "log.h"

#define REAP_MS 1000                 /* how often idle sessions are looked at */

struct session {
	struct session *next;
	uint64_t id;
	uint32_t uid;
	struct deploy_job *job;
	uint64_t opened_ms, polled_ms;
	int refs;                    /* polls waiting on it */
	int linked;                  /* in g->live; else dead at refs 0 */
};

struct genstream {
	struct ftuned *d;
	pthread_mutex_t lock;
	pthread_cond_t wake;         /* a session died, or stopping */
	struct session *live, *dead;
	int stopping;
	pthread_t reaper;
};

/* Moves s from the live list to the dead list, or leaves it to its last
 * poll.  Locked. */
static void
session_unlink(struct genstream *g, struct session *s)
{
	for (struct session **pp = &g->live; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	s->linked = 0;
	if (s->refs == 0) {
		s->next = g->dead;
		g->dead = s;
		pthread_cond_signal(&g->wake);
	}
}

static void
session_free(struct session *s)
{
	deploy_job_cancel(s->job);
	deploy_job_release(s->job);
	free(s);
}

static void *
reaper_main(void *arg)
{
	struct genstream *g = arg;
	struct session *s, *next, *dead;
	struct timespec until;
	uint64_t now;

	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		now = ftuned_now_ms();
		for (s = g->live; s != NULL; s = next) {
			next = s->next;
			if (s->refs == 0 && now - s->polled_ms >= GENSTREAM_IDLE_MS) {
				log_info("generate: session of uid %u not polled for %d s, cancelled", s->uid,
				    GENSTREAM_IDLE_MS / 1000);
				session_unlink(g, s);
			}
		}
		if ((dead = g->dead) != NULL) {
			g->dead = NULL;
			pthread_mutex_unlock(&g->lock);
			for (; dead != NULL; dead = next) {
				next = dead->next;
				session_free(dead);
			}
			pthread_mutex_lock(&g->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += REAP_MS / 1000;
		pthread_cond_timedwait(&g->wake, &g->lock, &until);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int
genstream_start(struct ftuned *d, struct genstream **out, char *err, size_t err_len)
{
	struct genstream *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;
	int rc;

	if (g == NULL || sodium_init() < 0) {
		free(g);
		snprintf(err, err_len, "generate sessions: out of memory");
		return -1;
	}
	g->d = d;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = pthread_create(&g->reaper, NULL, reaper_main, g)) != 0) {
		snprintf(err, err_len, "generate sessions: thread: %s", strerror(rc));
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return -1;
	}
	*out = g;
	return 0;
}

void
genstream_stop(struct genstream *g)
{
	struct session *s;

	if (g == NULL)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = 1;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->reaper, NULL);
	while ((s = g->live) != NULL) {
		g->live = s->next;
		session_free(s);
	}
	while ((s = g->dead) != NULL) {
		g->dead = s->next;
		session_free(s);
	}
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static struct session *
session_find(struct genstream *g, uint64_t id)
{
	struct session *s;

	for (s = g->live; s != NULL && s->id != id; s = s->next)
		;
	return s;
}

int
genstream_open(struct genstream *g, uint32_t uid, const struct deploy_params *p, uint64_t *id,
    char *err, size_t err_len)
{
	struct session *s;
	enum deploy_status st;
	int mine = 0, all = 0, code = FT__CODE__OK;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	pthread_mutex_lock(&g->lock);
	for (struct session *o = g->live; o != NULL; o = o->next) {
		mine += o->uid == uid;
		all++;
	}
	if (mine >= GENSTREAM_PER_UID || all >= GENSTREAM_MAX) {
		snprintf(err, err_len, "%d streamed generations open (at most %d per user, %d in all); "
		    "finish or cancel one, or wait %d s for an abandoned one to expire", mine,
		    GENSTREAM_PER_UID, GENSTREAM_MAX, GENSTREAM_IDLE_MS / 1000);
		code = FT__CODE__RESOURCE_EXHAUSTED;
		goto out;
	}
	/* Under g->lock, so that concurrent opens cannot pass the bound. */
	st = deploy_submit(g->d->deploy, p, &s->job, err, err_len);
	if (st != DEPLOY_OK) {
		code = st == DEPLOY_STOPPING ? FT__CODE__UNAVAILABLE : st == DEPLOY_NOT_FOUND ?
		    FT__CODE__NOT_FOUND : FT__CODE__RESOURCE_EXHAUSTED;
		goto out;
	}
	do
		randombytes_buf(&s->id, sizeof(s->id));
	while (s->id == 0 || session_find(g, s->id) != NULL);
	s->uid = uid;
	s->opened_ms = s->polled_ms = ftuned_now_ms();
	s->linked = 1;
	s->next = g->live;
	g->live = s;
	*id = s->id;
	s = NULL;
out:
	pthread_mutex_unlock(&g->lock);
	free(s);
	return code;
}

/* The session id of uid with a reference, or NULL with the reason. */
static struct session *
session_hold(struct genstream *g, uint32_t uid, uint64_t id, int *code, char *err,
    size_t err_len)
{
	struct session *s = session_find(g, id);

	if (s == NULL) {
		snprintf(err, err_len, "no generation session %llu (it ended, was cancelled, or "
		    "expired after %d s without a poll)", (unsigned long long)id,
		    GENSTREAM_IDLE_MS / 1000);
		*code = FT__CODE__NOT_FOUND;
		return NULL;
	}
	if (s->uid != uid) {
		snprintf(err, err_len, "generation session %llu belongs to uid %u",
		    (unsigned long long)id, s->uid);
		*code = FT__CODE__PERMISSION_DENIED;
		return NULL;
	}
	s->refs++;
	return s;
}

/* The FT code of a generation that failed. */
static int
result_code(enum deploy_status st)
{
	switch (st) {
	case DEPLOY_OK: return FT__CODE__OK;
	case DEPLOY_NOT_FOUND: return FT__CODE__NOT_FOUND;
	case DEPLOY_BAD_REQUEST: return FT__CODE__INVALID_ARGUMENT;
	case DEPLOY_STOPPING:
	case DEPLOY_BUSY: return FT__CODE__UNAVAILABLE;
	case DEPLOY_FULL:
	case DEPLOY_NO_MEMORY: return FT__CODE__RESOURCE_EXHAUSTED;
	default: return FT__CODE__INTERNAL;
	}
}

int
genstream_poll(struct genstream *g, uint32_t uid, uint64_t id, uint64_t off,
    struct genstream_chunk *out, char *err, size_t err_len)
{
	struct session *s;
	const struct deploy_result *r;
	char *all;
	size_t all_len;
	int started, running, bad_offset = 0, code = FT__CODE__OK;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&g->lock);
	if ((s = session_hold(g, uid, id, &code, err, err_len)) != NULL)
		s->polled_ms = ftuned_now_ms();
	pthread_mutex_unlock(&g->lock);
	if (s == NULL)
		return code;
	running = deploy_job_wait_for(s->job, (size_t)off, GENSTREAM_POLL_MS, &started, &out->text,
	    &out->len);
	if (out->text != NULL && ((unsigned char)out->text[0] & 0xc0) == 0x80) {
		snprintf(err, err_len, "offset %llu is inside a character", (unsigned long long)off);
		bad_offset = 1;
	} else if (!running && out->text == NULL && off > 0) {
		deploy_job_wait_for(s->job, 0, 0, &started, &all, &all_len);
		free(all);
		if (off > all_len) {
			snprintf(err, err_len, "offset %llu is past the text's %zu bytes",
			    (unsigned long long)off, all_len);
			bad_offset = 1;
		}
	}
	if (bad_offset) {
		code = FT__CODE__INVALID_ARGUMENT;
	} else if (!running) {
		r = deploy_job_result(s->job);
		if ((code = result_code(r->status)) != FT__CODE__OK) {
			snprintf(err, err_len, "%s", r->message);
		} else {
			out->done = 1;
			out->finish_reason = r->finish_reason;
			out->tokens = r->completion_tokens;
			out->prompt_tokens = r->prompt_tokens;
		}
	}
	out->ms = (double)(ftuned_now_ms() - s->opened_ms);
	pthread_mutex_lock(&g->lock);
	s->refs--;
	/* Ended (the client has the end or the failure), or let go meanwhile;
	 * a bad offset leaves the session for a correct poll. */
	if ((s->linked && !running && !bad_offset) || (!s->linked && s->refs == 0))
		session_unlink(g, s);
	pthread_mutex_unlock(&g->lock);
	if (code != FT__CODE__OK) {
		free(out->text);
		out->text = NULL;
	}
	return code;
}

int
genstream_cancel(struct genstream *g, uint32_t uid, uint64_t id, char *err, size_t err_len)
{
	struct session *s;
	int code = FT__CODE__OK;

	pthread_mutex_lock(&g->lock);
	if ((s = session_hold(g, uid, id, &code, err, err_len)) != NULL) {
		s->refs--;
		deploy_job_cancel(s->job);
		session_unlink(g, s);
	}
	pthread_mutex_unlock(&g->lock);
	return code;
}
