/* rpc_job.c - training queue RPCs: JobSubmit, JobList, JobShow, JobCancel,
 * JobMetrics, JobLogs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval_job.h"
#include "jobs.h"
#include "queue.h"
#include "rpc.h"

#define JOB_LIST_MAX 1000

static Ft__JobInfo *
job_to_proto(struct rpc_call *call, const struct job_info *j)
{
	ProtobufCAllocator a = rpc_allocator(call);
	Ft__JobInfo *p = rpc_alloc(call, sizeof(*p));

	if (p == NULL)
		return NULL;
	ft__job_info__init(p);
	p->id = j->id;
	p->spec = j->spec ? (Ft__JobSpec *)ft_message_copy(&j->spec->base, &a) : NULL;
	p->state = rpc_strdup(call, j->state);
	p->stage = rpc_strdup(call, j->stage);
	p->owner_uid = j->owner_uid;
	p->created_at = j->created_at;
	p->started_at = j->started_at;
	p->finished_at = j->finished_at;
	p->step = j->step;
	p->total_steps = j->total_steps;
	p->epoch = j->epoch;
	p->loss = (float)j->loss;
	p->val_loss = (float)j->val_loss;
	p->base_val_loss = (float)j->base_val_loss;
	p->tokens_per_s = isnan(j->tokens_per_s) ? 0 : (float)j->tokens_per_s;
	p->error = rpc_strdup(call, j->error);
	p->result_model = rpc_strdup(call, j->result_model);
	p->memory_bytes = j->memory_bytes;
	p->checkpoint_step = j->checkpoint_step;
	if (strcmp(j->state, "RUNNING") == 0 && j->step > 0 && j->total_steps > j->step) {
		double elapsed = difftime(time(NULL), (time_t)j->started_at);

		p->eta_s = elapsed / j->step * (j->total_steps - j->step);
	}
	return p->spec && p->error && p->result_model ? p : NULL;
}

/* evals_to_proto adds the evaluations training job p queued.  0 or -1. */
static int
evals_to_proto(struct rpc_call *call, Ft__JobInfo *p)
{
	struct eval_ref *refs;
	size_t n;
	int rc = 0;

	if (eval_refs_of_job(call->d, p->id, &refs, &n) != 0)
		return -1;
	if (n > 0 && (p->evals = rpc_alloc(call, n * sizeof(*p->evals))) == NULL)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		Ft__EvalRef *e = rpc_alloc(call, sizeof(*e));

		if (e == NULL) {
			rc = -1;
			break;
		}
		ft__eval_ref__init(e);
		e->id = refs[i].id;
		e->job_id = refs[i].job_id;
		e->name = rpc_strdup(call, refs[i].name);
		e->state = rpc_strdup(call, refs[i].state);
		if (e->name == NULL || e->state == NULL)
			rc = -1;
		p->evals[p->n_evals++] = e;
	}
	free(refs);
	return rc;
}

static int
job_reply(struct rpc_call *call, Ft__Reply *rep, int64_t id, int body_case)
{
	Ft__JobReply *r = rpc_alloc(call, sizeof(*r));
	struct job_info j;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (jobs_get(call->d, id, &j) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no job %lld", (long long)id);
	ft__job_reply__init(r);
	r->job = job_to_proto(call, &j);
	job_info_free(&j);
	if (r->job == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (evals_to_proto(call, r->job) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "job %lld: cannot list its "
		    "evaluations", (long long)id);
	rep->body_case = body_case;
	rep->job_show = r; /* job_submit, job_show and job_cancel share JobReply */
	return FT__CODE__OK;
}

int
rpc_job_submit(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__JobSpec *spec = req->job_submit->spec;
	char err[1024];
	int64_t id;
	int code;

	if (spec == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "job submit needs a specification");
	code = queue_submit(call->d->queue, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    call->request_id, spec, &id, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	return job_reply(call, rep, id, FT__REPLY__BODY_JOB_SUBMIT);
}

int
rpc_job_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	return job_reply(call, rep, req->job_show->id, FT__REPLY__BODY_JOB_SHOW);
}

int
rpc_job_cancel(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	char err[512];
	int code = queue_cancel(call->d->queue, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    req->job_cancel->id, err, sizeof(err));

	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	return job_reply(call, rep, req->job_cancel->id, FT__REPLY__BODY_JOB_CANCEL);
}

int
rpc_job_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__JobListRequest *q = req->job_list;
	Ft__JobListReply *r = rpc_alloc(call, sizeof(*r));
	struct job_info *list;
	uint32_t owner = q->all_users ? UINT32_MAX : q->owner_uid ? q->owner_uid : (uint32_t)call->uid;
	size_t n;

	if (q->state[0] && strcmp(q->state, "QUEUED") && strcmp(q->state, "RUNNING") &&
	    strcmp(q->state, "SUCCEEDED") && strcmp(q->state, "FAILED") && strcmp(q->state, "CANCELLED"))
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "state must be one of QUEUED, "
		    "RUNNING, SUCCEEDED, FAILED, CANCELLED");
	if (r == NULL || jobs_list(call->d, q->state, owner, JOB_LIST_MAX, &list, &n) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot list jobs");
	ft__job_list_reply__init(r);
	r->jobs = rpc_alloc(call, (n + 1) * sizeof(*r->jobs));
	for (size_t i = 0; i < n; i++) {
		if (r->jobs != NULL && (r->jobs[r->n_jobs] = job_to_proto(call, &list[i])) != NULL)
			r->n_jobs++;
		job_info_free(&list[i]);
	}
	free(list);
	if (r->n_jobs != n)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_JOB_LIST;
	rep->job_list = r;
	return FT__CODE__OK;
}

int
rpc_job_metrics(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__JobMetricsRequest *q = req->job_metrics;
	Ft__JobMetricsReply *r = rpc_alloc(call, sizeof(*r));
	Ft__Metric **list;
	struct job_info j;
	size_t n;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (jobs_get(call->d, q->id, &j) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no job %lld", (long long)q->id);
	ft__job_metrics_reply__init(r);
	r->job = job_to_proto(call, &j);
	job_info_free(&j);
	if (r->job == NULL || jobs_metrics(call->d, q->id, q->after_step, q->limit ? q->limit : 10000,
	    &list, &n) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot read metrics");
	r->metrics = rpc_alloc(call, (n + 1) * sizeof(*r->metrics));
	for (size_t i = 0; i < n && r->metrics != NULL; i++) {
		Ft__Metric *m = rpc_alloc(call, sizeof(*m));

		if (m == NULL)
			break;
		*m = *list[i];
		r->metrics[r->n_metrics++] = m;
	}
	jobs_metrics_free(list, n);
	rep->body_case = FT__REPLY__BODY_JOB_METRICS;
	rep->job_metrics = r;
	return FT__CODE__OK;
}

int
rpc_job_logs(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__JobLogsRequest *q = req->job_logs;
	Ft__JobLogsReply *r = rpc_alloc(call, sizeof(*r));
	Ft__LogLine **list;
	struct job_info j;
	size_t n;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (jobs_get(call->d, q->id, &j) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no job %lld", (long long)q->id);
	job_info_free(&j);
	if (jobs_logs(call->d, q->id, q->after, q->limit ? q->limit : 1000, &list, &n) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot read the log");
	ft__job_logs_reply__init(r);
	r->lines = rpc_alloc(call, (n + 1) * sizeof(*r->lines));
	for (size_t i = 0; i < n && r->lines != NULL; i++) {
		Ft__LogLine *l = rpc_alloc(call, sizeof(*l));

		if (l == NULL)
			break;
		*l = *list[i];
		l->level = rpc_strdup(call, list[i]->level);
		l->message = rpc_strdup(call, list[i]->message);
		r->lines[r->n_lines++] = l;
	}
	jobs_logs_free(list, n);
	rep->body_case = FT__REPLY__BODY_JOB_LOGS;
	rep->job_logs = r;
	return FT__CODE__OK;
}
