/*
 * rpc_pool.c - worker threads for slow control requests.
 *
 * One lock guards a ring of waiting work and a table of uids with work
 * running or waiting; both hold at most threads + queue_max entries (work
 * waits in the ring until a thread takes it, so a burst may briefly fill
 * it past queue_max), and the table is scanned rather than hashed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "rpc_pool.h"

struct work {
	rpc_pool_fn fn;
	void *arg;
	uint64_t uid;
};

struct user {
	uint64_t uid;
	int n;                        /* running or waiting; 0: a free row */
};

struct rpc_pool {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	int n_threads, queue_max, per_user;
	int running, stop, started;
	struct work *ring;            /* n_threads + queue_max slots */
	int head, len;
	struct user *users;           /* n_threads + queue_max rows */
	pthread_t *threads;
};

static struct user *
user_row(struct rpc_pool *p, uint64_t uid, int add)
{
	struct user *free_row = NULL;

	for (int i = 0; i < p->n_threads + p->queue_max; i++) {
		if (p->users[i].n > 0 && p->users[i].uid == uid)
			return &p->users[i];
		if (p->users[i].n == 0 && free_row == NULL)
			free_row = &p->users[i];
	}
	if (add && free_row != NULL)
		free_row->uid = uid;
	return add ? free_row : NULL;
}

static void *
worker(void *arg)
{
	struct rpc_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct work w;
		int cancelled;

		while (p->len == 0 && !p->stop)
			pthread_cond_wait(&p->ready, &p->lock);
		if (p->len == 0)
			break;
		w = p->ring[p->head];
		p->head = (p->head + 1) % (p->n_threads + p->queue_max);
		p->len--;
		cancelled = p->stop;
		p->running++;
		pthread_mutex_unlock(&p->lock);
		w.fn(w.arg, cancelled);
		pthread_mutex_lock(&p->lock);
		p->running--;
		user_row(p, w.uid, 0)->n--;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int
rpc_pool_start(int threads, int queue_max, int per_user, struct rpc_pool **out)
{
	struct rpc_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return -1;
	p->n_threads = threads;
	p->queue_max = queue_max;
	p->per_user = per_user;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->ready, NULL);
	if ((p->ring = calloc((size_t)(threads + queue_max), sizeof(*p->ring))) == NULL ||
	    (p->users = calloc((size_t)(threads + queue_max), sizeof(*p->users))) == NULL ||
	    (p->threads = calloc((size_t)threads, sizeof(*p->threads))) == NULL) {
		rpc_pool_free(p);
		return -1;
	}
	for (; p->started < threads; p->started++)
		if (pthread_create(&p->threads[p->started], NULL, worker, p) != 0) {
			rpc_pool_free(p);
			return -1;
		}
	*out = p;
	return 0;
}

int
rpc_pool_submit(struct rpc_pool *p, uint64_t uid, rpc_pool_fn fn, void *arg,
    char *why, size_t why_len)
{
	struct user *u;
	int rc = -1;

	pthread_mutex_lock(&p->lock);
	if (p->stop)
		snprintf(why, why_len, "ftuned is stopping");
	else if ((u = user_row(p, uid, 1)) != NULL && u->n >= p->per_user)
		snprintf(why, why_len, "you have %d slow requests (generate, import, export, "
		    "init, data add or show) running or waiting, the most one user may "
		    "(rpc_slow_per_user); retry when one is done", u->n);
	else if (u == NULL || p->running + p->len >= p->n_threads + p->queue_max)
		snprintf(why, why_len, "the daemon is serving %d slow requests and %d more "
		    "wait (rpc_slow_threads, rpc_slow_queue); retry later", p->running, p->len);
	else {
		p->ring[(p->head + p->len) % (p->n_threads + p->queue_max)] = (struct work){ fn, arg, uid };
		p->len++;
		u->n++;
		pthread_cond_signal(&p->ready);
		rc = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void
rpc_pool_stop(struct rpc_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->ready);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->threads[i], NULL);
	p->started = 0;
}

void
rpc_pool_free(struct rpc_pool *p)
{
	if (p == NULL)
		return;
	rpc_pool_stop(p);
	pthread_cond_destroy(&p->ready);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p->ring);
	free(p->users);
	free(p);
}
