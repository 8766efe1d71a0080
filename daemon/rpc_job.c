/* rpc_job.c - training queue RPCs: JobSubmit, JobList, JobShow, JobCancel,
 * JobMetrics, JobLogs. */
#include "ft_enum.h"
#include "jobs.h"
#include "queue.h"
#include "rpc.h"

#define JOB_LIST_MAX 1000

/* The error reply for a jobs.c code. */
static int
job_error(struct rpc_call *call, Ft__Reply *rep, int code, int64_t id)
{
	if (code == FT__CODE__NOT_FOUND)
		return rpc_error(call, rep, code, "no job %lld", (long long)id);
	return rpc_error(call, rep, code, code == FT__CODE__RESOURCE_EXHAUSTED ? "out of memory" :
	    "job %lld: cannot read its rows", (long long)id);
}

static int
job_reply(struct rpc_call *call, Ft__Reply *rep, int64_t id, int body_case)
{
	Ft__JobReply *r;
	int code = jobs_reply(call->d, &call->mem, id, &r);

	if (code != FT__CODE__OK)
		return job_error(call, rep, code, id);
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
	uint32_t owner = q->all_users ? UINT32_MAX : q->owner_uid ? q->owner_uid : (uint32_t)call->uid;
	Ft__JobListReply *r;
	char words[96];
	int code;

	if (protobuf_c_enum_descriptor_get_value(&ft__job_state__descriptor, q->state) == NULL)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "state must be one of %s",
		    ft_enum_words(&ft__job_state__descriptor, ", ", words, sizeof(words)));
	if ((code = jobs_list_reply(call->d, &call->mem, q->state, owner, JOB_LIST_MAX, &r)) !=
	    FT__CODE__OK)
		return rpc_error(call, rep, code, code == FT__CODE__RESOURCE_EXHAUSTED ?
		    "out of memory" : "cannot list jobs");
	rep->body_case = FT__REPLY__BODY_JOB_LIST;
	rep->job_list = r;
	return FT__CODE__OK;
}

int
rpc_job_metrics(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__JobMetricsRequest *q = req->job_metrics;
	Ft__JobMetricsReply *r;
	int code = jobs_metrics_reply(call->d, &call->mem, q->id, q->after_step,
	    q->limit ? q->limit : 10000, &r);

	if (code != FT__CODE__OK)
		return job_error(call, rep, code, q->id);
	rep->body_case = FT__REPLY__BODY_JOB_METRICS;
	rep->job_metrics = r;
	return FT__CODE__OK;
}

int
rpc_job_logs(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__JobLogsRequest *q = req->job_logs;
	Ft__JobLogsReply *r;
	int code = jobs_logs_reply(call->d, &call->mem, q->id, q->after, q->limit ? q->limit : 1000,
	    &r);

	if (code != FT__CODE__OK)
		return job_error(call, rep, code, q->id);
	rep->body_case = FT__REPLY__BODY_JOB_LOGS;
	rep->job_logs = r;
	return FT__CODE__OK;
}
