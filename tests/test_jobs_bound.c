/* test_jobs_bound.c - a job's metrics and log stay bounded: jobs.c's real
 * insert functions against a state store in a temporary directory, with
 * small caps.  Prints what a per-step insert costs with and without
 * thinning. */
#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

#include "fsutil.h"
#include "ft_test.h"
#include "jobs.h"
#include "log.h"

static struct ftuned d;

static int64_t
count(const char *sql, int64_t id)
{
	sqlite3 *db = store_lock(d.store);
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	store_unlock(d.store);
	return v;
}

static int64_t
job_new(void)
{
	sqlite3 *db = store_lock(d.store);
	int64_t id = -1;

	if (sqlite3_exec(db, "INSERT INTO jobs (owner_uid, state, priority, created_at, spec) "
	    "VALUES (1000, 'RUNNING', 0, 0, x'')", NULL, NULL, NULL) == SQLITE_OK)
		id = sqlite3_last_insert_rowid(db);
	store_unlock(d.store);
	return id;
}

#define PER_STEP "SELECT count(*) FROM metrics WHERE job_id = ? AND val_loss IS NULL"

/* Microseconds per jobs_metric_add over steps 1..n of a new job. */
static double
metric_cost(int cap, uint32_t n)
{
	int64_t id = job_new();
	struct timespec a, b;

	d.cfg.metrics_max_per_job = cap;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint32_t s = 1; s <= n; s++)
		jobs_metric_add(&d, id, s, 1.0 / s, 1e-3, 1.0, 100.0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) / n;
}

static void
test_metrics(void)
{
	const uint32_t steps = 6000, every = 500, cap = 64;
	int64_t id = job_new(), most = 0, stride = 0, kept = 0;
	Ft__Metric **m;
	size_t n;
	int even = 1;

	d.cfg.metrics_max_per_job = (int)cap;
	jobs_metric_val(&d, id, 0, 9.0);
	for (uint32_t s = 1; s <= steps; s++) {
		int64_t c;

		jobs_metric_add(&d, id, s, 10.0 / s, 1e-3, 1.0, 100.0);
		if (s % every == 0)
			jobs_metric_val(&d, id, s, 5.0 / s);
		if ((c = count(PER_STEP, id)) > most)
			most = c;
	}
	printf("metrics: %u steps, cap %u: at most %lld per-step rows held, %lld at the end\n",
	    steps, cap, (long long)most, (long long)count(PER_STEP, id));
	CHECK(most <= cap);
	CHECK(jobs_metrics(&d, id, 0, 0, &m, &n) == 0);
	/* Rows come back with step > 0 (after_step is exclusive): step 0's val row is there too. */
	CHECK(count("SELECT count(*) FROM metrics WHERE job_id = ? AND step = 0 AND val_loss = 9",
	    id) == 1);
	CHECK(n > 0 && m[0]->step == 1 && m[n - 1]->step == steps);
	CHECK(count("SELECT count(*) FROM metrics WHERE job_id = ? AND val_loss IS NOT NULL", id) ==
	    1 + steps / every);
	/* The middle points sit on one stride: an even resolution, not only recent ones. */
	for (size_t i = 1; i + 1 < n; i++) {
		if (!isnan(m[i]->val_loss))
			continue;
		kept++;
		if (stride == 0)
			stride = m[i]->step & -m[i]->step;
		even &= (m[i]->step % stride) == 0 && (m[i]->step & -m[i]->step) >= stride;
	}
	CHECK(even);
	CHECK(kept >= (int64_t)cap / 4);
	CHECK(stride > 0 && (int64_t)steps / stride <= (int64_t)cap);
	printf("metrics: %lld middle points kept every %lld steps\n", (long long)kept,
	    (long long)stride);
	/* A resumed job replaces a step's row; the loss curve's values are its own. */
	CHECK_NEAR(m[n - 1]->loss, 10.0 / steps, 1e-6);
	jobs_metrics_free(m, n);
}

static void
test_logs(void)
{
	const int cap = 32, lines = 200;
	int64_t id = job_new(), most = 0, c;
	unsigned long long said = 0;
	Ft__LogLine **l;
	size_t n, notes = 0, warn_error = 0;
	int last = 0;

	d.cfg.log_max_per_job = cap;
	for (int i = 1; i <= lines; i++) {
		if (i % 50 == 0)
			jobs_log(&d, id, "error", "line %d", i);
		else if (i % 20 == 0)
			jobs_log(&d, id, "warn", "line %d", i);
		else
			jobs_log(&d, id, "info", "line %d", i);
		if ((c = count("SELECT count(*) FROM job_logs WHERE job_id = ?", id)) > most)
			most = c;
	}
	CHECK(most <= cap);
	/* What ftctl job logs and the dashboard read. */
	CHECK(jobs_logs(&d, id, 0, 0, &l, &n) == 0);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(l[i]->message, "log_max_per_job: ", 17) == 0) {
			notes++;
			CHECK_STR(l[i]->level, "warn");
			sscanf(l[i]->message, "log_max_per_job: %llu earlier lines dropped", &said);
			printf("logs: %s %s\n", l[i]->level, l[i]->message);
		} else if (strcmp(l[i]->level, "info") != 0) {
			warn_error++;
		}
		if (i + 1 == n)
			sscanf(l[i]->message, "line %d", &last);
	}
	CHECK(notes == 1);
	CHECK(warn_error == (size_t)(lines / 20 + lines / 50 - lines / 100)); /* every one kept */
	CHECK(said == (unsigned long long)lines - (n - 1));
	CHECK(last == lines);
	jobs_logs_free(l, n);

	/* Warnings alone beyond the cap: they go too, oldest first; still bounded. */
	id = job_new();
	for (int i = 1; i <= 100; i++)
		jobs_log(&d, id, "warn", "warning %d", i);
	c = count("SELECT count(*) FROM job_logs WHERE job_id = ?", id);
	CHECK(c <= cap);
	CHECK(count("SELECT count(*) FROM job_logs WHERE job_id = ? AND message = 'warning 100'",
	    id) == 1);
	CHECK(count("SELECT count(*) FROM job_logs WHERE job_id = ? AND message LIKE "
	    "'log_max_per_job: % earlier lines dropped%'", id) == 1);
}

int
main(void)
{
	char dir[] = "/tmp/ft_test_jobs_bound_XXXXXX", err[512];
	double best[3] = { 1e30, 1e30, 1e30 };
	const int caps[3] = { 100000000, 10000, 64 };

	if (mkdtemp(dir) == NULL)
		return 1;
	config_defaults(&d.cfg);
	log_init(LOG_LEVEL_ERROR);
	if (store_open(dir, &d.store, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	test_metrics();
	test_logs();
	/* Interleaved and best of three: the machine's fsync times vary more
	 * than the bounding costs. */
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3; i++) {
			double us = metric_cost(caps[i], 2000);

			best[i] = us < best[i] ? us : best[i];
		}
	printf("jobs_metric_add: %.1f us per step unbounded, %.1f with the default cap, "
	    "%.1f with cap 64 (a count every 16 steps, thinning every 32)\n", best[0], best[1],
	    best[2]);
	store_close(d.store);
	fs_rm_rf(dir);
	return ft_test_done();
}
