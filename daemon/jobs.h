/*
 * jobs.h - job rows in SQLite: the specification, state, progress,
 * metrics and logs of training jobs.  The queue (queue.c) decides what runs;
 * the code running a job (train_job.c) reports through these functions, so
 * ftctl and the dashboard read progress from the same rows.
 */
#ifndef FT_JOBS_H
#define FT_JOBS_H

#include <stdint.h>

#include "arena.h"
#include "ft_wire.h"
#include "ftuned.h"

/* ft.proto's JobState values by shorter names; SQLite stores their words
 * (ft_enum.h), which only jobs.c reads and writes. */
enum job_state {
	JOB_QUEUED = FT__JOB_STATE__JOB_STATE_QUEUED,
	JOB_RUNNING = FT__JOB_STATE__JOB_STATE_RUNNING,
	JOB_SUCCEEDED = FT__JOB_STATE__JOB_STATE_SUCCEEDED,
	JOB_FAILED = FT__JOB_STATE__JOB_STATE_FAILED,
	JOB_CANCELLED = FT__JOB_STATE__JOB_STATE_CANCELLED,
};

struct job_info {
	int64_t id;
	Ft__JobSpec *spec;          /* unpacked; free with job_info_free */
	enum job_state state;       /* 0 for a word this build does not know */
	char stage[16];
	uint32_t owner_uid;
	int64_t created_at, started_at, finished_at;
	int64_t base_id, dataset_id;
	uint32_t step, total_steps, epoch, checkpoint_step;
	double loss, val_loss, base_val_loss, tokens_per_s; /* NAN when unknown */
	char error[512];
	char result_model[101];
	uint64_t memory_bytes;
	Ft__JobKind kind;
};

/* jobs_insert stores a QUEUED job (spec packed as protobuf) with the
 * client's request id (0 for none) and the id of its --general-data
 * dataset (0 for none). FT__CODE__*. */
int jobs_insert(struct ftuned *d, uint32_t uid, uint64_t request_id, const Ft__JobSpec *spec,
    int64_t base_id, int64_t dataset_id, int64_t general_id, uint64_t memory_bytes, int64_t *id,
    char *err, size_t err_len);

/* jobs_insert_row is jobs_insert inside the caller's transaction, the
 * store locked, for a job of another kind (an evaluation) whose rows go in
 * the same transaction.  FT__CODE__OK, RESOURCE_EXHAUSTED, or INTERNAL
 * with the reason in sqlite3_errmsg(db). */
int jobs_insert_row(struct sqlite3 *db, Ft__JobKind kind, uint32_t uid, uint64_t request_id,
    const Ft__JobSpec *spec, int64_t base_id, int64_t dataset_id, int64_t general_id,
    uint64_t memory_bytes, int64_t *id);

/* jobs_find_request returns the job uid submitted with request_id, or 0. */
int64_t jobs_find_request(struct ftuned *d, uint32_t uid, uint64_t request_id);

/* jobs_get loads one job (0) or returns -1 when there is none. */
int jobs_get(struct ftuned *d, int64_t id, struct job_info *out);

/* jobs_list returns jobs newest first, filtered by state (UNSPECIFIED =
 * any) and owner (UINT32_MAX = any), at most limit. */
int jobs_list(struct ftuned *d, Ft__JobState state, uint32_t owner, int limit,
    struct job_info **out, size_t *n);

/* jobs_next returns the id of the QUEUED job to run next (priority, then
 * submission order) or 0. */
int64_t jobs_next(struct ftuned *d);

/* jobs_count_active counts a user's QUEUED and RUNNING jobs. */
int jobs_count_active(struct ftuned *d, uint32_t uid);

/* State changes, each in its own transaction.  jobs_set_state from RUNNING
 * or QUEUED only (a finished job never changes again); returns 0 when the
 * row changed. */
int jobs_set_state(struct ftuned *d, int64_t id, enum job_state to, const char *error);
void jobs_set_stage(struct ftuned *d, int64_t id, const char *stage);
void jobs_set_progress(struct ftuned *d, int64_t id, uint32_t step, uint32_t total,
    uint32_t epoch, double loss, double tokens_per_s);
void jobs_set_checkpoint(struct ftuned *d, int64_t id, uint32_t step);
void jobs_set_val_loss(struct ftuned *d, int64_t id, double val_loss, int is_base);
void jobs_set_result(struct ftuned *d, int64_t id, int64_t model_id);

/* jobs_requeue_running puts jobs left RUNNING by a crash or shutdown back
 * in the queue; they resume from their last checkpoint.  Returns how many. */
int jobs_requeue_running(struct ftuned *d);

/* Metrics: one row per step; a step seen again after a resume replaces its
 * row.  jobs_metric_val adds the validation loss measured after a step
 * (step 0: before training).  jobs_metric_add keeps at most
 * cfg.metrics_max_per_job per-step rows, thinning older ones evenly in the
 * same transaction (first, last and validation rows stay). */
void jobs_metric_add(struct ftuned *d, int64_t id, uint32_t step, double loss, double lr,
    double grad_norm, double tokens_per_s);
void jobs_metric_val(struct ftuned *d, int64_t id, uint32_t step, double val_loss);
int jobs_metrics(struct ftuned *d, int64_t id, uint32_t after_step, uint32_t limit,
    Ft__Metric ***out, size_t *n);
void jobs_metrics_free(Ft__Metric **m, size_t n);

/* jobs_log appends to the job's log (and the daemon's).  Beyond
 * cfg.log_max_per_job lines the oldest info and debug lines are dropped in
 * the same transaction, and one warn line says how many. */
void jobs_log(struct ftuned *d, int64_t id, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int jobs_logs(struct ftuned *d, int64_t id, int64_t after, uint32_t limit,
    Ft__LogLine ***out, size_t *n);
void jobs_logs_free(Ft__LogLine **l, size_t n);

void job_info_free(struct job_info *j);

/* Rows of other tables that jobs link to, for the modules removing them
 * (registry.c, datasets.c), the store locked, inside their transaction.
 * jobs_active_with_model counts QUEUED and RUNNING jobs that train on the
 * model or whose evaluation compares it (reading evals.c's tables);
 * jobs_active_with_dataset those that use the dataset, as data, general
 * data or evaluation data; -1 on error.  jobs_unlink_model and
 * jobs_unlink_dataset clear the finished jobs' links to a row about to go
 * (their specs and the models' lineage keep its name and hash).  0 or -1. */
int64_t jobs_active_with_model(struct sqlite3 *db, int64_t model_id);
int64_t jobs_active_with_dataset(struct sqlite3 *db, int64_t dataset_id);
int jobs_unlink_model(struct sqlite3 *db, int64_t model_id);
int jobs_unlink_dataset(struct sqlite3 *db, int64_t dataset_id);

/* Reply objects, allocated from arena a (a reply's): the RPC handlers
 * (rpc_job.c) and the JSON API (web_api.c) build the same ones.  Each
 * returns FT__CODE__OK with *out set, NOT_FOUND for an unknown job,
 * RESOURCE_EXHAUSTED or INTERNAL.  jobs_info_proto copies one row (eta_s
 * NaN unless the job runs and has taken a step); jobs_reply adds the
 * evaluations the job queued; jobs_list_reply takes jobs_list's filters;
 * jobs_metrics_reply and jobs_logs_reply take jobs_metrics' and
 * jobs_logs' pages, the former with the job row read before the metrics. */
int jobs_info_proto(struct arena *a, const struct job_info *j, Ft__JobInfo **out);
int jobs_reply(struct ftuned *d, struct arena *a, int64_t id, Ft__JobReply **out);
int jobs_list_reply(struct ftuned *d, struct arena *a, Ft__JobState state, uint32_t owner,
    int limit, Ft__JobListReply **out);
int jobs_metrics_reply(struct ftuned *d, struct arena *a, int64_t id, uint32_t after,
    uint32_t limit, Ft__JobMetricsReply **out);
int jobs_logs_reply(struct ftuned *d, struct arena *a, int64_t id, int64_t after,
    uint32_t limit, Ft__JobLogsReply **out);

#endif
