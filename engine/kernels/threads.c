/*
 * threads.c - the engine's thread count.
 *
 * POLICY.  All parallelism in the engine is OpenMP's, and OpenBLAS always
 * runs single-threaded (openblas_set_num_threads(1) on first use):
 *
 *   - kernels open `#pragma omp parallel ... num_threads(fte__threads())`
 *     regions and split rows, columns or (batch, head, block) items among
 *     the threads; large products are cut into one cblas_sgemm call per
 *     thread (matmul.c) or per work item (attention.c).
 *   - nothing calls BLAS expecting it to start threads of its own.
 *
 * Why one pool: Debian's OpenBLAS is the pthread build, whose workers
 * busy-wait (sched_yield) for a long while after each call, and libgomp's
 * workers spin after each parallel region.  Two pools of spinning threads
 * on two cores steal each other's cycles; a single pool cannot.  Measured
 * on 2 cores, a loop of SwiGLU (OpenMP), a 256x768x768 product and RMSNorm
 * took 6.1 ms per iteration with OpenBLAS at 2 threads and 2.4-3.1 ms with
 * this policy, while a lone 1024x768x3072 product runs at the same speed
 * either way (24.7 ms split, 23.9 ms OpenBLAS-threaded).  OpenBLAS still
 * starts its own workers when it loads; as it never hands them work, they
 * go to sleep after its spin timeout.  Parallel regions are kept coarse
 * (one per kernel call, with an `if` clause so small calls stay serial) so
 * libgomp's spin between regions is short.
 *
 * libgomp's workers still spin for a few milliseconds after every region
 * (300000 pause loops unless OMP_WAIT_POLICY or GOMP_SPINCOUNT says
 * otherwise), and it reads that setting once, when it loads, so the engine
 * cannot change it.  On an otherwise idle machine the spin only burns an
 * idle core; when other processes compete for the cores it makes every
 * region's barrier wait for descheduled spinners.  On the shared 2-core
 * development machine (load 3-4) `ftengine bench` on a 4-layer Llama ran
 * 0.55-1.2 s/step with OMP_WAIT_POLICY=PASSIVE against 1.1-2.5 s/step with
 * the default in six of seven paired runs (the seventh went the other way).
 * Programs that share their cores should run with OMP_WAIT_POLICY=PASSIVE.
 *
 * The count is global (not OpenMP's per-thread ICV), so a count set by the
 * daemon's main thread holds for the training thread too.
 *
 * Determinism: no kernel uses atomics or a reduction whose order depends on
 * scheduling.  Work items are independent and each writes its own outputs,
 * so the same inputs and thread count give bit-identical results.  Only
 * matmul's blocks depend on the count; that one and two threads give the
 * same bits (test_kernels checks it) rests on OpenBLAS summing the inner
 * dimension in the same order for a block as for the whole product.
 */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "fte.h"
#include "kernels/kernels.h"

static atomic_int threads_count;
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

static int
threads_max(void)
{
	int n = omp_get_num_procs();

	return n > 0 ? n : 1;
}

static void
threads_init(void)
{
	/* The default honours OMP_NUM_THREADS, within the processors. */
	int n = omp_get_max_threads();

	openblas_set_num_threads(1);
	if (n > threads_max())
		n = threads_max();
	atomic_store(&threads_count, n < 1 ? 1 : n);
}

/* fte_threads_set sets the thread count; counts above the processors this
 * process may run on are clamped to that number, so the engine never
 * oversubscribes the cores.  Returns FTE_EINVAL for n < 1. */
int
fte_threads_set(int n)
{
	if (n < 1)
		return fte_error_set(FTE_EINVAL,
		    "fte_threads_set: thread count %d, need at least 1", n);
	pthread_once(&threads_once, threads_init);
	if (n > threads_max())
		n = threads_max();
	atomic_store(&threads_count, n);
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
	pthread_once(&threads_once, threads_init);
	return atomic_load_explicit(&threads_count, memory_order_relaxed);
}
