/*
 * queue.c - the training queue.
 *
 * DESIGN: jobs live in SQLite (jobs.c); the queue is a scheduler thread
 * that, whenever it is woken (a submission, a job ending, a cancel) or once
 * a second, asks the executor for free slots and starts the next QUEUED job
 * by priority, then submission order.  Starting marks the row RUNNING in
 * the same critical section, so a cancel (which takes the same lock) sees
 * either a queued job it can cancel in the table, or a running one it asks
 * the executor to stop.  Nothing about a job lives only in memory: after a
 * crash, rows left RUNNING go back to QUEUED and resume from their last
 * checkpoint.  RPC handlers only validate and insert; all slow work happens
 * on the executor's threads.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_template.h"
#include "datasets.h"
#include "executor.h"
#include "fte.h"
#include "jobs.h"
#include "log.h"
#include "queue.h"
#include "quota.h"
#include "registry.h"

struct queue {
	struct ftuned *d;
	struct executor *ex;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stopping;
	int woken;
};

static void
queue_wake(void *arg)
{
	struct queue *q = arg;

	pthread_mutex_lock(&q->lock);
	q->woken = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

static void *
scheduler(void *arg)
{
	struct queue *q = arg;
	char err[512];

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		int64_t id;

		while (q->ex->ops->slots_free(q->ex) > 0 && (id = jobs_next(q->d)) > 0) {
			/* Claimed under the lock, so a cancel sees QUEUED or RUNNING. */
			if (jobs_set_state(q->d, id, JOB_RUNNING, NULL) != 0)
				break;
			/* Started outside it: a finishing job's thread wakes us. */
			pthread_mutex_unlock(&q->lock);
			jobs_log(q->d, id, "info", "started on the %s executor", q->ex->ops->name);
			if (q->ex->ops->start(q->ex, id, err, sizeof(err)) != 0) {
				jobs_log(q->d, id, "error", "%s", err);
				jobs_set_state(q->d, id, JOB_FAILED, err);
			}
			pthread_mutex_lock(&q->lock);
		}
		if (!q->woken) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&q->wake, &q->lock, &ts);
		}
		q->woken = 0;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int
queue_start(struct ftuned *d, struct queue **out, char *err, size_t err_len)
{
	struct queue *q = calloc(1, sizeof(*q));
	int n;

	if (q == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	q->d = d;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	if ((n = jobs_requeue_running(d)) > 0)
		log_info("queue: %d interrupted job%s queued again, to resume from checkpoints",
		    n, n == 1 ? "" : "s");
	if ((q->ex = executor_local_create(d, 1, queue_wake, q)) == NULL) {
		snprintf(err, err_len, "cannot create the local executor");
		free(q);
		return -1;
	}
	if ((errno = pthread_create(&q->thread, NULL, scheduler, q)) != 0) {
		snprintf(err, err_len, "scheduler thread: %s", strerror(errno));
		q->ex->ops->shutdown(q->ex);
		free(q);
		return -1;
	}
	*out = q;
	return 0;
}

void
queue_stop(struct queue *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	q->ex->ops->shutdown(q->ex);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	free(q);
}

/* Gives an empty string field of the (malloc-unpacked) spec its default,
 * so that free_unpacked still frees it correctly. */
static void
spec_default_str(char **field, const char *def)
{
	char *s;

	if ((*field != NULL && (*field)[0] != '\0') || (s = strdup(def)) == NULL)
		return;
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = s;
}

uint64_t
queue_memory_budget(const struct ftuned *d)
{
	if (d->cfg.memory_budget > 0)
		return (uint64_t)d->cfg.memory_budget;
	return (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 4 * 3;
}

#define BAD(...) do { snprintf(err, err_len, __VA_ARGS__); return FT__CODE__INVALID_ARGUMENT; } while (0)

/*
 * The numeric fields of a training spec: a field left 0 takes def (0: it
 * stays 0), then must lie in [min, max], an end open where the flag says;
 * LoRA rows apply to LoRA jobs only.  The learning rate's default depends
 * on the method and the sequence length's bound on the model, so those two
 * are set in spec_check; their ranges are still here.
 */
#define PRIORITY_MAX 100        /* of every kind of job (queue_admit) */

enum bound_type { B_U32, B_I32, B_U64, B_F32 };
#define B_MIN_OPEN 1
#define B_MAX_OPEN 2
#define B_LORA 4

static const struct spec_bound {
	const char *option;
	size_t offset;
	enum bound_type type;
	double def, min, max;
	int flags;
	const char *note;           /* appended to the refusal */
} spec_bounds[] = {
#define F(f) offsetof(Ft__JobSpec, f)
	{ "--lora-rank", F(lora_rank), B_U32, 8, 1, 1024, B_LORA, "" },
	{ "--lora-alpha", F(lora_alpha), B_F32, 16, 0, 1e6, B_LORA | B_MIN_OPEN | B_MAX_OPEN, "" },
	{ "--lora-dropout", F(lora_dropout), B_F32, 0, 0, 1, B_LORA | B_MAX_OPEN, "" },
	{ "--epochs", F(epochs), B_U32, 1, 1, 1000, 0, "" },
	{ "--lr", F(lr), B_F32, 0, 0, 1, B_MIN_OPEN, "" },
	{ "--batch-size", F(batch_size), B_U32, 4, 1, 4096, 0, "" },
	{ "--grad-accum", F(grad_accum), B_U32, 1, 1, 4096, 0, "" },
	{ "--weight-decay", F(weight_decay), B_F32, 0, 0, 1, 0, "" },
	{ "--clip", F(clip), B_F32, 0, 0, 1e6, B_MAX_OPEN, " (0 turns clipping off)" },
	{ "--warmup", F(warmup), B_U32, 0, 0, 1000000, 0, "" },
	{ "--eval-every", F(eval_every), B_U32, 0, 0, 1000000, 0, " (0: at the end only)" },
	{ "--save-every", F(save_every), B_U32, 0, 0, 1000000, 0, "" },
	{ "--max-steps", F(max_steps), B_U32, 0, 0, 10000000, 0, " (0: the epochs decide)" },
	{ "--early-stop", F(early_stop), B_U32, 0, 0, 1000, 0, " (0 turns it off)" },
	{ "--time-limit", F(time_limit), B_U32, 0, 0, 365 * 86400, 0, " seconds (0: none)" },
	{ "--priority", F(priority), B_I32, 0, -PRIORITY_MAX, PRIORITY_MAX, 0, "" },
	{ "--seed", F(seed), B_U64, 1, 0, 18446744073709551615.0, 0, "" },
#undef F
};

static double
bound_get(const Ft__JobSpec *s, const struct spec_bound *b)
{
	const char *p = (const char *)s + b->offset;

	switch (b->type) {
	case B_U32: return *(const uint32_t *)p;
	case B_I32: return *(const int32_t *)p;
	case B_U64: return (double)*(const uint64_t *)p;
	case B_F32: return *(const float *)p;
	}
	return NAN;
}

static void
bound_set(Ft__JobSpec *s, const struct spec_bound *b, double v)
{
	char *p = (char *)s + b->offset;

	switch (b->type) {
	case B_U32: *(uint32_t *)p = (uint32_t)v; break;
	case B_I32: *(int32_t *)p = (int32_t)v; break;
	case B_U64: *(uint64_t *)p = (uint64_t)v; break;
	case B_F32: *(float *)p = (float)v; break;
	}
}

/* Defaults and ranges of every row of spec_bounds that applies. */
static int
spec_bounds_check(Ft__JobSpec *s, int lora, char *err, size_t err_len)
{
	for (size_t i = 0; i < sizeof(spec_bounds) / sizeof(spec_bounds[0]); i++) {
		const struct spec_bound *b = &spec_bounds[i];
		double v;

		if ((b->flags & B_LORA) && !lora)
			continue;
		if (bound_get(s, b) == 0 && b->def != 0)
			bound_set(s, b, b->def);
		if (b->type == B_U64)
			continue;   /* every value is in range */
		v = bound_get(s, b);
		if (!(b->flags & B_MIN_OPEN ? v > b->min : v >= b->min) ||
		    !(b->flags & B_MAX_OPEN ? v < b->max : v <= b->max)) {
			int prec = b->type == B_F32 ? 6 : 15;   /* integers in full */

			BAD("%s %.*g is out of range %c%.*g, %.*g%c%s", b->option, prec, v,
			    b->flags & B_MIN_OPEN ? '(' : '[', prec, b->min, prec, b->max,
			    b->flags & B_MAX_OPEN ? ')' : ']', b->note);
		}
	}
	return FT__CODE__OK;
}

/* Fills defaults and range-checks every hyperparameter. */
static int
spec_check(Ft__JobSpec *s, const fte_config *mc, const char *dataset_kind, char *err, size_t err_len)
{
	unsigned targets;
	int lora, code;

	spec_default_str(&s->type, "sft");
	spec_default_str(&s->method, "full");
	spec_default_str(&s->schedule, "cosine");
	spec_default_str(&s->train_on, "all");
	spec_default_str(&s->packing, "on");
	if (strcmp(s->type, "sft") != 0 && strcmp(s->type, "cpt") != 0)
		BAD("--type must be sft or cpt, not '%s'", s->type);
	if (strcmp(s->type, "sft") == 0 && strcmp(dataset_kind, "instruct") != 0)
		BAD("an sft job needs an instruct dataset; this one holds %s", dataset_kind);
	if (strcmp(s->type, "cpt") == 0 && strcmp(dataset_kind, "text") != 0)
		BAD("a cpt job needs a text dataset; this one holds %s", dataset_kind);
	if (strcmp(s->method, "full") != 0 && strcmp(s->method, "lora") != 0)
		BAD("--method must be full or lora, not '%s'", s->method);
	lora = strcmp(s->method, "lora") == 0;
	if (!lora && s->lora_rank != 0)
		BAD("--lora-rank needs --method lora");
	if (s->lr == 0)
		s->lr = lora ? 2e-4f : 1e-4f;
	if ((code = spec_bounds_check(s, lora, err, err_len)) != FT__CODE__OK)
		return code;
	if (lora) {
		spec_default_str(&s->lora_targets, "q,v");
		if (fte_lora_targets_parse(s->lora_targets, &targets) != FTE_OK)
			BAD("--lora-targets: %s", fte_last_error());
		if (fte_arch_get(mc->arch)->mlp == FTE_MLP_GELU && (targets & FTE_LORA_GATE))
			BAD("--lora-targets: %s has no gate projection", fte_arch_get(mc->arch)->title);
	}
	if (s->seq_len == 0)
		s->seq_len = mc->max_seq_len < 256 ? (uint32_t)mc->max_seq_len : 256;
	if (s->seq_len < 2 || s->seq_len > (uint32_t)mc->max_seq_len)
		BAD("--seq-len %u is out of range [2, %d] (the model's context)", s->seq_len, mc->max_seq_len);
	if (strcmp(s->schedule, "constant") && strcmp(s->schedule, "linear") && strcmp(s->schedule, "cosine"))
		BAD("--schedule must be constant, linear or cosine, not '%s'", s->schedule);
	if (s->name[0] != '\0' && registry_name_check(s->name, err, err_len) != 0)
		return FT__CODE__INVALID_ARGUMENT;
	if (strcmp(s->train_on, "all") != 0 && strcmp(s->train_on, "last") != 0)
		BAD("--train-on must be all or last, not '%s'", s->train_on);
	if (strcmp(s->packing, "on") != 0 && strcmp(s->packing, "off") != 0)
		BAD("--packing must be on or off, not '%s'", s->packing);
	if (strcmp(s->type, "cpt") == 0 && strcmp(s->packing, "off") == 0)
		BAD("--packing off: cpt always packs its documents");
	return FT__CODE__OK;
}

/* The trainer configuration a spec describes (also used by train_job.c). */
void queue_train_config(const Ft__JobSpec *s, fte_train_config *tc);

void
queue_train_config(const Ft__JobSpec *s, fte_train_config *tc)
{
	fte_train_config_default(tc);
	tc->batch = (int)s->batch_size;
	tc->seq = (int)s->seq_len;
	tc->lr = s->lr;
	tc->weight_decay = s->weight_decay;
	tc->clip = s->clip;
	tc->schedule = strcmp(s->schedule, "linear") == 0 ? FTE_SCHEDULE_LINEAR :
	    strcmp(s->schedule, "cosine") == 0 ? FTE_SCHEDULE_COSINE : FTE_SCHEDULE_CONSTANT;
	tc->warmup_steps = (int)s->warmup;
	tc->seed = s->seed;
	/* The job sets the real count once the data is tokenized. */
	tc->total_steps = s->max_steps ? (int)s->max_steps : 1;
	if (strcmp(s->method, "lora") == 0) {
		tc->lora.rank = (int)s->lora_rank;
		tc->lora.alpha = s->lora_alpha;
		tc->lora.dropout = s->lora_dropout;
		if (fte_lora_targets_parse(s->lora_targets, &tc->lora.targets) != FTE_OK)
			tc->lora.targets = FTE_LORA_Q | FTE_LORA_V;
	}
}

static void
size_format(uint64_t b, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f MiB", (double)b / (1 << 20));
}

int
queue_admit(struct queue *q, const struct queue_admission *a, int64_t *id, char *err,
    size_t err_len)
{
	struct ftuned *d = q->d;
	int code;

	if (a->priority < -PRIORITY_MAX || a->priority > PRIORITY_MAX) {
		snprintf(err, err_len, "--priority %d is out of range [%d, %d]", a->priority,
		    -PRIORITY_MAX, PRIORITY_MAX);
		return FT__CODE__INVALID_ARGUMENT;
	}
	if (!a->admin && !a->followup && a->priority > d->cfg.user_priority_max) {
		snprintf(err, err_len, "--priority %d is above %d, the highest a user outside the "
		    "admin group may set (user_priority_max)", a->priority, d->cfg.user_priority_max);
		return FT__CODE__PERMISSION_DENIED;
	}
	if (a->memory > queue_memory_budget(d)) {
		char need[32], have[32];

		size_format(a->memory, need, sizeof(need));
		size_format(queue_memory_budget(d), have, sizeof(have));
		snprintf(err, err_len, "the job needs %s (%s) but the memory budget is %s: %s", need,
		    a->memory_detail, have, a->memory_hint);
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	pthread_mutex_lock(&q->lock);
	if (a->request_id != 0 && (*id = jobs_find_request(d, a->uid, a->request_id)) > 0) {
		pthread_mutex_unlock(&q->lock);
		return FT__CODE__OK; /* a resend of a submission already queued */
	}
	if (!a->followup && jobs_count_active(d, a->uid) >= d->cfg.max_queued_per_user) {
		snprintf(err, err_len, "you have %d jobs queued or running, the most allowed "
		    "(max_queued_per_user)", d->cfg.max_queued_per_user);
		code = FT__CODE__RESOURCE_EXHAUSTED;
	} else {
		code = a->insert(d, a->arg, id, err, err_len);
	}
	pthread_mutex_unlock(&q->lock);
	if (code == FT__CODE__OK)
		queue_wake(q);
	return code;
}

/* A training job's row, inserted by queue_admit. */
struct train_insert {
	uint32_t uid;
	uint64_t request_id;
	const Ft__JobSpec *spec;
	int64_t base_id, dataset_id, general_id;
	uint64_t memory;
	const char *base_name, *data_name;
};

static int
train_insert(struct ftuned *d, void *arg, int64_t *id, char *err, size_t err_len)
{
	const struct train_insert *t = arg;

	int code;

	/* Store names as resolved ids can be renamed later; the spec keeps the names. */
	code = jobs_insert(d, t->uid, t->request_id, t->spec, t->base_id, t->dataset_id,
	    t->general_id, t->memory, id, err, err_len);
	if (code == FT__CODE__OK)
		jobs_log(d, *id, "info", "queued by uid %u: %s %s of %s on %s, needs %.1f MiB", t->uid,
		    t->spec->type, t->spec->method, t->base_name, t->data_name,
		    (double)t->memory / (1 << 20));
	return code;
}

int
queue_submit(struct queue *q, uint32_t uid, int admin, uint64_t request_id,
    const Ft__JobSpec *in, int64_t *id, char *err, size_t err_len)
{
	struct ftuned *d = q->d;
	struct model_info m;
	struct dataset_info ds, gen;
	struct train_insert ti = { uid, request_id, NULL, 0, 0, 0, 0, NULL, NULL };
	struct queue_admission a = { uid, admin, 0, request_id, 0, 0, NULL,
	    "lower --batch-size or --seq-len, or use --method lora", train_insert, &ti };
	Ft__JobSpec *spec;
	fte_config mc;
	fte_train_config tc;
	fte_memory mem;
	char detail[160];
	int code;

	if (in->base_model[0] == '\0' || in->data[0] == '\0') {
		snprintf(err, err_len, "a job needs --base MODEL and --data DATASET");
		return FT__CODE__INVALID_ARGUMENT;
	}
	/* a copy, which spec_check may change: the caller's spec is borrowed */
	if ((spec = (Ft__JobSpec *)ft_message_copy(&in->base, NULL)) == NULL) {
		snprintf(err, err_len, "out of memory");
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	if (registry_model_find(d, spec->base_model, &m) != 0) {
		snprintf(err, err_len, "no model '%s' (see ftctl model ls)", spec->base_model);
		ft__job_spec__free_unpacked(spec, NULL);
		return FT__CODE__NOT_FOUND;
	}
	if (datasets_find(d, spec->data, &ds) != 0) {
		snprintf(err, err_len, "no dataset '%s' (see ftctl data ls)", spec->data);
		model_info_free(&m);
		ft__job_spec__free_unpacked(spec, NULL);
		return FT__CODE__NOT_FOUND;
	}
	if (registry_model_config(&m, &mc) != 0) {
		snprintf(err, err_len, "model '%s' has an unreadable configuration", m.name);
		code = FT__CODE__INTERNAL;
		goto out;
	}
	if ((code = spec_check(spec, &mc, ds.kind, err, err_len)) != FT__CODE__OK)
		goto out;
	/* The template becomes the tuned model's: the base's own unless named. */
	if (spec->template_[0] == '\0') {
		char *t;

		if (chat_format_of_model(&d->cfg, m.lineage_json, m.dir, &t) != 0) {
			snprintf(err, err_len, "out of memory");
			code = FT__CODE__RESOURCE_EXHAUSTED;
			goto out;
		}
		spec_default_str(&spec->template_, t);
		free(t);
	}
	if (chat_format_check(&d->cfg, spec->template_, m.dir, err, err_len) != 0) {
		code = FT__CODE__INVALID_ARGUMENT;
		goto out;
	}
	/* The forgetting check's text: named like --data, and held as in use. */
	if (spec->general_data[0] != '\0') {
		if (datasets_find(d, spec->general_data, &gen) != 0) {
			snprintf(err, err_len, "no dataset '%s' for --general-data (see ftctl data ls)",
			    spec->general_data);
			code = FT__CODE__NOT_FOUND;
			goto out;
		}
		if (strcmp(gen.kind, "text") != 0) {
			snprintf(err, err_len, "--general-data needs a text dataset; '%s' holds %s",
			    gen.name, gen.kind);
			code = FT__CODE__INVALID_ARGUMENT;
		}
		ti.general_id = gen.id;
		dataset_info_free(&gen);
		if (code != FT__CODE__OK)
			goto out;
	}
	queue_train_config(spec, &tc);
	if (fte_train_memory(&mc, &tc, &mem) != FTE_OK) {
		snprintf(err, err_len, "invalid training configuration: %s", fte_last_error());
		code = FT__CODE__INVALID_ARGUMENT;
		goto out;
	}
	/* the model it registers: its trainable tensors, saved in F32 */
	if ((code = quota_check(d, uid, QUOTA_MODEL, mem.grads, err, err_len)) != FT__CODE__OK)
		goto out;
	snprintf(detail, sizeof(detail), "weights %.1f, gradients %.1f, optimizer %.1f, "
	    "activations %.1f MiB", (double)mem.weights / (1 << 20), (double)mem.grads / (1 << 20),
	    (double)mem.optimizer / (1 << 20), (double)mem.activations / (1 << 20));
	ti.spec = spec;
	ti.base_id = m.id;
	ti.dataset_id = ds.id;
	ti.memory = a.memory = mem.total;
	ti.base_name = m.name;
	ti.data_name = ds.name;
	a.priority = spec->priority;
	a.memory_detail = detail;
	code = queue_admit(q, &a, id, err, err_len);
out:
	model_info_free(&m);
	dataset_info_free(&ds);
	ft__job_spec__free_unpacked(spec, NULL);
	return code;
}

int
queue_cancel(struct queue *q, uint32_t uid, int admin, int64_t id, char *err, size_t err_len)
{
	struct job_info j;
	int code = FT__CODE__OK;

	if (jobs_get(q->d, id, &j) != 0) {
		snprintf(err, err_len, "no job %lld", (long long)id);
		return FT__CODE__NOT_FOUND;
	}
	if (j.owner_uid != uid && !admin) {
		snprintf(err, err_len, "job %lld belongs to uid %u", (long long)id, j.owner_uid);
		job_info_free(&j);
		return FT__CODE__PERMISSION_DENIED;
	}
	job_info_free(&j);
	pthread_mutex_lock(&q->lock);
	if (q->ex->ops->cancel(q->ex, id) == 0) {
		jobs_log(q->d, id, "info", "cancel requested by uid %u", uid);
	} else if (jobs_set_state(q->d, id, JOB_CANCELLED, "cancelled before it started") == 0) {
		jobs_log(q->d, id, "info", "cancelled by uid %u while queued", uid);
	} else {
		snprintf(err, err_len, "job %lld has already finished", (long long)id);
		code = FT__CODE__FAILED_PRECONDITION;
	}
	pthread_mutex_unlock(&q->lock);
	return code;
}
