/*
 * threads.c - the engine's thread count and its thread pool.
 *
 * POLICY.  All parallelism in the engine goes through this pool
 * (fte__parallel_for / fte__parallel_range), and OpenBLAS always runs
 * single-threaded (openblas_set_num_threads(1) on first use):
 *
 *   - kernels split rows, columns or (batch, head, block) items among the
 *     pool's threads; large products are cut into one fte__gemm call per
 *     thread (matmul.c) or per work item (attention.c).
 *   - nothing calls BLAS expecting it to start threads of its own.
 *
 * Why one pool: Debian's OpenBLAS is the pthread build, whose workers
 * busy-wait (sched_yield) for a long while after each call.  Two pools of
 * spinning threads on two cores steal each other's cycles; a single pool
 * cannot.  Measured on 2 cores, a loop of SwiGLU, a 256x768x768 product and
 * RMSNorm took 6.1 ms per iteration with OpenBLAS at 2 threads beside an
 * OpenMP pool, 2.4-3.1 ms with one pool, while a lone 1024x768x3072
 * product runs at the same speed either way (24.7 ms split, 23.9 ms
 * OpenBLAS-threaded).  OpenBLAS still starts its own workers when it loads;
 * as it never hands them work, they go to sleep after its spin timeout.
 *
 * Why not OpenMP: libgomp's workers spin for milliseconds after every
 * parallel region (300000 pause loops unless OMP_WAIT_POLICY says
 * otherwise, read once when libgomp loads, so a library cannot change it).
 * While other processes compete for the cores, every region then waits on
 * descheduled spinners: on the shared 2-core development machine (load ~5)
 * RMSNorm over 1024x768 took 8-12 ms in an OpenMP region against 0.25 ms
 * with OMP_WAIT_POLICY=PASSIVE and 0.36 ms in this pool; `ftengine bench`
 * on a 4-layer Llama took 0.57-1.26 s/step against 1.53-1.95 s/step with
 * OpenMP kernels (model code still in OpenMP regions).  This pool's
 * workers spin for at most POOL_SPIN_NS after a job, so back-to-back
 * kernels do not pay a wake-up, and then sleep on a condition variable.
 * Engine code outside the kernels should use fte__parallel_for/range too:
 * every OpenMP region it opens leaves libgomp spinners beside the pool.
 *
 * The count is global, so a count set by the daemon's main thread holds for
 * the training thread too.  One job runs at a time: a call made while
 * another thread's job holds the pool, or from inside a job, runs its items
 * on the calling thread instead of oversubscribing the cores.
 *
 * Determinism: no kernel uses atomics or a reduction whose order depends on
 * scheduling.  Work items are independent and each writes its own outputs,
 * so the same inputs and thread count give bit-identical results.  Only
 * matmul's blocks depend on the count; the engine's GEMM sums every
 * element in the same order in any block, so one and two threads give the
 * same bits (test_kernels and test_gemm check it); on the blas path that
 * rests on OpenBLAS doing the same, which test_kernels only reports.
 *
 * A child of fork() starts with an empty pool and grows its own workers.
 */
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fte.h"
#include "kernels/kernels.h"

/* How long an idle worker (or the caller awaiting workers) spins before
 * sleeping. */
#define POOL_SPIN_NS 50000
/* Work below this many float operations runs on the caller. */
#define POOL_MIN_WORK 32768.0

static struct {
	pthread_once_t once;
	atomic_int count;        /* threads a job uses, caller included */
	pthread_mutex_t submit;  /* held by the running job or a resize */
	pthread_mutex_t mu;      /* guards the sleeps below */
	pthread_cond_t work;     /* workers wait for a new generation */
	pthread_cond_t done;     /* the caller waits for the acks */
	pthread_t tid[FTE_THREADS_MAX];
	unsigned seen0[FTE_THREADS_MAX]; /* gen when each worker started */
	int started;             /* workers running, == count - 1 after a job */
	int stop_from;           /* workers with index >= stop_from exit */
	int sleepers, waiting;
	atomic_uint gen;         /* bumped once per job */
	atomic_int next, acked;
	fte__item_fn fn;         /* the current job */
	void *ctx;
	int n;
} pool = {
	.once = PTHREAD_ONCE_INIT,
	.submit = PTHREAD_MUTEX_INITIALIZER,
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
};

/* Set on pool workers and on a caller while its job runs: no nesting. */
static _Thread_local int pool_inside;

static int
threads_max(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	if (n > FTE_THREADS_MAX)
		n = FTE_THREADS_MAX;
	return n > 0 ? (int)n : 1;
}

/* A child of fork() has none of its parent's workers: it starts with an
 * empty pool (and fresh locks, which a parent's job may have held). */
static void
pool_atfork_child(void)
{
	pthread_mutex_init(&pool.submit, NULL);
	pthread_mutex_init(&pool.mu, NULL);
	pthread_cond_init(&pool.work, NULL);
	pthread_cond_init(&pool.done, NULL);
	pool.started = 0;
	pool.sleepers = 0;
	pool.waiting = 0;
	pool_inside = 0;
}

static void
threads_init(void)
{
	/* The default honours OMP_NUM_THREADS, as OpenMP programs do. */
	const char *env = getenv("OMP_NUM_THREADS");
	int n = env != NULL ? atoi(env) : 0;

	openblas_set_num_threads(1);
	pthread_atfork(NULL, NULL, pool_atfork_child);
	if (n < 1 || n > threads_max())
		n = threads_max();
	atomic_store(&pool.count, n);
}

static void
pool_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static int64_t
pool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* pool_spin_uint spins while *v == val, for at most POOL_SPIN_NS; it returns
 * whether *v changed. */
static int
pool_spin_uint(atomic_uint *v, unsigned val)
{
	int64_t t0 = pool_now_ns();

	for (int i = 1;; i++) {
		if (atomic_load_explicit(v, memory_order_acquire) != val)
			return 1;
		if ((i & 63) == 0 && pool_now_ns() - t0 > POOL_SPIN_NS)
			return 0;
		pool_relax();
	}
}

static void
pool_run_items(void)
{
	int i;

	while ((i = atomic_fetch_add(&pool.next, 1)) < pool.n)
		pool.fn(pool.ctx, i);
}

static void *
pool_worker(void *arg)
{
	int idx = (int)(intptr_t)arg;
	/* the generation before the first job this worker must run */
	unsigned seen = pool.seen0[idx];

	pool_inside = 1;
	for (;;) {
		if (!pool_spin_uint(&pool.gen, seen)) {
			pthread_mutex_lock(&pool.mu);
			pool.sleepers++;
			while (atomic_load(&pool.gen) == seen &&
			    idx < pool.stop_from)
				pthread_cond_wait(&pool.work, &pool.mu);
			pool.sleepers--;
			pthread_mutex_unlock(&pool.mu);
		}
		if (atomic_load(&pool.gen) == seen) {
			/* woken to exit (pool shrunk) */
			pthread_mutex_lock(&pool.mu);
			int stop = idx >= pool.stop_from;
			pthread_mutex_unlock(&pool.mu);
			if (stop)
				return NULL;
			continue;
		}
		seen = atomic_load_explicit(&pool.gen, memory_order_acquire);
		pool_run_items();
		if (atomic_fetch_add(&pool.acked, 1) + 1 == pool.started) {
			pthread_mutex_lock(&pool.mu);
			if (pool.waiting)
				pthread_cond_signal(&pool.done);
			pthread_mutex_unlock(&pool.mu);
		}
	}
}

/* pool_resize starts or stops workers so that `want` run; called with
 * submit held and no job running.  Fewer start if pthread_create fails,
 * and jobs then use the workers there are. */
static void
pool_resize(int want)
{
	if (want > pool.started) {
		pthread_mutex_lock(&pool.mu);
		pool.stop_from = want;
		pthread_mutex_unlock(&pool.mu);
		while (pool.started < want) {
			pool.seen0[pool.started] = atomic_load(&pool.gen);
			if (pthread_create(&pool.tid[pool.started], NULL,
			    pool_worker, (void *)(intptr_t)pool.started) != 0)
				break;
			pool.started++;
		}
		return;
	}
	if (want < pool.started) {
		pthread_mutex_lock(&pool.mu);
		pool.stop_from = want;
		pthread_cond_broadcast(&pool.work);
		pthread_mutex_unlock(&pool.mu);
		while (pool.started > want)
			pthread_join(pool.tid[--pool.started], NULL);
	}
}

/* fte_threads_set sets the thread count; counts above the processors this
 * process may run on are clamped to that number, so the engine never
 * oversubscribes the cores.  Waits for a job running on another thread (so
 * it must not be called from inside a kernel).  Returns FTE_EINVAL for
 * n < 1. */
int
fte_threads_set(int n)
{
	if (n < 1)
		return fte_error_set(FTE_EINVAL,
		    "fte_threads_set: thread count %d, need at least 1", n);
	pthread_once(&pool.once, threads_init);
	return fte__threads_set_exact(n > threads_max() ? threads_max() : n);
}

int
fte__threads_set_exact(int n)
{
	if (n < 1 || n > FTE_THREADS_MAX)
		return fte_error_set(FTE_EINVAL,
		    "fte__threads_set_exact: thread count %d, need 1..%d", n, FTE_THREADS_MAX);
	pthread_once(&pool.once, threads_init);
	pthread_mutex_lock(&pool.submit);
	atomic_store(&pool.count, n);
	pool_resize(n - 1);
	pthread_mutex_unlock(&pool.submit);
	return FTE_OK;
}

int
fte_threads_get(void)
{
	return fte__threads();
}

int
fte__threads(void)
{
	pthread_once(&pool.once, threads_init);
	return atomic_load_explicit(&pool.count, memory_order_relaxed);
}

void
fte__parallel_for(int n, double work, fte__item_fn fn, void *ctx)
{
	int count = fte__threads();

	if (n < 2 || count < 2 || work < POOL_MIN_WORK || pool_inside ||
	    pthread_mutex_trylock(&pool.submit) != 0) {
		for (int i = 0; i < n; i++)
			fn(ctx, i);
		return;
	}
	if (pool.started != count - 1)
		pool_resize(count - 1);
	pool.fn = fn;
	pool.ctx = ctx;
	pool.n = n;
	atomic_store(&pool.next, 0);
	atomic_store(&pool.acked, 0);
	pthread_mutex_lock(&pool.mu);
	atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
	if (pool.sleepers > 0)
		pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.mu);

	pool_inside = 1;
	pool_run_items();
	pool_inside = 0;

	/* Workers read the job until they ack it; wait for all of them. */
	int64_t t0 = pool_now_ns();
	for (int i = 1; atomic_load(&pool.acked) < pool.started; i++) {
		if ((i & 63) == 0 && pool_now_ns() - t0 > POOL_SPIN_NS) {
			pthread_mutex_lock(&pool.mu);
			pool.waiting = 1;
			while (atomic_load(&pool.acked) < pool.started)
				pthread_cond_wait(&pool.done, &pool.mu);
			pool.waiting = 0;
			pthread_mutex_unlock(&pool.mu);
			break;
		}
		pool_relax();
	}
	pthread_mutex_unlock(&pool.submit);
}

struct range_job {
	fte__range_fn fn;
	void *ctx;
	int n, parts;
};

static void
range_item(void *arg, int p)
{
	const struct range_job *j = arg;
	int lo = (int)((int64_t)j->n * p / j->parts);
	int hi = (int)((int64_t)j->n * (p + 1) / j->parts);

	if (hi > lo)
		j->fn(j->ctx, lo, hi);
}

void
fte__parallel_range(int n, double work, fte__range_fn fn, void *ctx)
{
	int count = fte__threads();
	struct range_job j = { fn, ctx, n, count < n ? count : n };

	if (n < 1)
		return;
	if (j.parts < 2 || work < POOL_MIN_WORK) {
		fn(ctx, 0, n);
		return;
	}
	fte__parallel_for(j.parts, work, range_item, &j);
}
