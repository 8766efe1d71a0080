/* rpc_data.c - dataset registry RPCs: DataUploadBegin, DataUploadChunk,
 * DataUploadStatus, DataUploadCommit, DataList, DataShow, DataRemove. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chat_template.h"
#include "datasets.h"
#include "log.h"
#include "registry.h"
#include "rpc.h"
#include "tokcache.h"
#include "upload.h"

#define SAMPLES_SHOWN 3

static Ft__DatasetInfo *
dataset_to_proto(struct rpc_call *call, const struct dataset_info *di, int with_samples)
{
	Ft__DatasetInfo *p = rpc_alloc(call, sizeof(*p));

	if (p == NULL)
		return NULL;
	ft__dataset_info__init(p);
	p->id = di->id;
	p->name = rpc_strdup(call, di->name);
	p->kind = rpc_strdup(call, di->kind);
	p->blake2b = rpc_strdup(call, di->hash);
	p->records = di->records;
	p->validation_records = di->validation_records;
	p->bytes = di->bytes;
	p->owner_uid = di->owner_uid;
	p->created_at = di->created_at;
	p->stats_json = rpc_strdup(call, di->stats_json);
	p->screen_rules = rpc_strdup(call, di->screen_rules);
	if (with_samples) {
		FILE *f = fopen(di->train_path, "r");
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;

		p->samples = rpc_alloc(call, SAMPLES_SHOWN * sizeof(char *));
		while (f != NULL && p->samples != NULL && p->n_samples < SAMPLES_SHOWN &&
		    (n = getline(&line, &cap, f)) > 0) {
			if (line[n - 1] == '\n')
				line[n - 1] = '\0';
			p->samples[p->n_samples++] = rpc_strdup(call, line);
		}
		free(line);
		if (f != NULL)
			fclose(f);
	}
	return p->stats_json != NULL ? p : NULL;
}

static Ft__DataUploadReply *
upload_reply(struct rpc_call *call, const char *id, uint64_t size, uint64_t received)
{
	Ft__DataUploadReply *r = rpc_alloc(call, sizeof(*r));

	if (r == NULL)
		return NULL;
	ft__data_upload_reply__init(r);
	r->id = rpc_strdup(call, id);
	r->size = size;
	r->received = received;
	r->chunk_max = uploads_chunk_max(call->d->uploads);
	return r->id != NULL ? r : NULL;
}

int
rpc_data_upload_begin(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__DataUploadBeginRequest *q = req->data_upload_begin;
	char id[UPLOAD_ID_LEN + 1], err[512];
	uint64_t received;
	int code;

	code = uploads_begin(call->d->uploads, (uint32_t)call->uid, q->size, q->blake2b, id,
	    &received, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	if ((rep->data_upload_begin = upload_reply(call, id, q->size, received)) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_DATA_UPLOAD_BEGIN;
	return FT__CODE__OK;
}

int
rpc_data_upload_chunk(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__DataUploadChunkRequest *q = req->data_upload_chunk;
	uint64_t size, received;
	char err[512];
	int code;

	code = uploads_append(call->d->uploads, (uint32_t)call->uid, q->id, q->offset,
	    q->data.data, q->data.len, &size, &received, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	if ((rep->data_upload_chunk = upload_reply(call, q->id, size, received)) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_DATA_UPLOAD_CHUNK;
	return FT__CODE__OK;
}

int
rpc_data_upload_status(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__DataUploadStatusRequest *q = req->data_upload_status;
	uint64_t size, received;
	char err[512];
	int code;

	code = uploads_status(call->d->uploads, (uint32_t)call->uid, q->id, &size, &received,
	    err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	if ((rep->data_upload_status = upload_reply(call, q->id, size, received)) == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_DATA_UPLOAD_STATUS;
	return FT__CODE__OK;
}

/* A taken upload, mapped for the parser: the page cache holds the bytes,
 * not the daemon's heap. */
struct upload_map {
	int fd;
	void *data;
	size_t len;
};

static int
upload_map(struct rpc_call *call, const char *id, struct upload_map *m, char *err,
    size_t err_len)
{
	uint64_t size;
	int code = uploads_take(call->d->uploads, (uint32_t)call->uid, id, &m->fd, &size, err,
	    err_len);

	if (code != FT__CODE__OK)
		return code;
	m->len = (size_t)size;
	m->data = NULL;
	if (m->len > 0 && (m->data = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, m->fd, 0)) ==
	    MAP_FAILED) {
		snprintf(err, err_len, "upload %s: %s", id, strerror(errno));
		close(m->fd);
		m->fd = -1;
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	return FT__CODE__OK;
}

static void
upload_unmap(struct upload_map *m)
{
	if (m->data != NULL)
		munmap(m->data, m->len);
	if (m->fd >= 0)
		close(m->fd);
}

int
rpc_data_upload_commit(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__DataUploadCommitRequest *q = req->data_upload_commit;
	struct upload_map main = { .fd = -1 }, val = { .fd = -1 };
	Ft__DataReply *r = rpc_alloc(call, sizeof(*r));
	char err[1024], *report = NULL;
	uint64_t errors, warnings;
	struct dataset_info di;
	int64_t id = 0;
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if ((code = upload_map(call, q->id, &main, err, sizeof(err))) != FT__CODE__OK ||
	    (q->validation_id[0] != '\0' &&
	    (code = upload_map(call, q->validation_id, &val, err, sizeof(err))) != FT__CODE__OK)) {
		upload_unmap(&main);
		return rpc_error(call, rep, code, "%s", err);
	}
	{
		struct datasets_add a = {
			.file_name = q->file_name[0] ? q->file_name : "data",
			.content = main.data, .len = main.len,
			.kind = q->kind, .name = q->name, .validation_split = q->validation_split,
			.validation_content = val.data, .validation_len = val.len,
			.validation_file_name = q->validation_file_name[0] ? q->validation_file_name :
			    "validation",
			.skip_invalid = q->skip_invalid, .seed = q->seed, .text_column = q->text_column,
		};

		code = datasets_add(call->d, (uint32_t)call->uid, &a, q->validate_only, &id, &report,
		    &errors, &warnings, err, sizeof(err));
	}
	upload_unmap(&main);
	upload_unmap(&val);
	if (code != FT__CODE__OK) {
		/* The report travels in the message: a refused reply has no body. */
		code = rpc_error(call, rep, code, "%s%s", report ? report : "", err);
		free(report);
		return code;
	}
	ft__data_reply__init(r);
	r->report = rpc_strdup(call, report);
	r->errors = errors;
	r->warnings = warnings;
	free(report);
	if (!q->validate_only) {
		char idbuf[32];

		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
		if (datasets_find(call->d, idbuf, &di) == 0) {
			r->dataset = dataset_to_proto(call, &di, 0);
			dataset_info_free(&di);
		}
	}
	rep->body_case = FT__REPLY__BODY_DATA_UPLOAD_COMMIT;
	rep->data_upload_commit = r;
	return FT__CODE__OK;
}

/* One TokenCount per distinct tokenizer among the registered models, made
 * by the first model that has it, with every model's context length.  A
 * tokenizer that cannot count is logged and left out: the rest of data
 * show still answers.  0, or -1 when memory runs out. */
static int
token_counts(struct rpc_call *call, const struct dataset_info *di, Ft__DatasetInfo *p)
{
	int text = strcmp(di->kind, "text") == 0;
	struct model_info *models;
	char (*hash)[65] = NULL;
	size_t n;
	int rc = -1;

	if (registry_model_list(call->d, &models, &n) != 0) {
		log_warn("data show %s: cannot list the models for token counts", di->name);
		return 0;
	}
	if ((hash = calloc(n ? n : 1, sizeof(*hash))) == NULL ||
	    (p->token_counts = rpc_alloc(call, (n ? n : 1) * sizeof(*p->token_counts))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (tokcache_tokenizer_hash(&models[i], hash[i]) != 0)
			hash[i][0] = '\0';
	for (size_t i = 0; i < n; i++) {
		struct tokcache_form f = { 0 };
		struct tokcache_stats st;
		Ft__TokenCount *tc;
		char err[512];
		size_t first = 0;
		char *tmpl = NULL;
		const char *spec;
		int hit, code;

		while (first < i && strcmp(hash[first], hash[i]) != 0)
			first++;
		if (hash[i][0] == '\0' || first < i)
			continue;   /* no tokenizer, or counted with an earlier model */
		/* through the model's own template, as it trains and serves */
		if (chat_format_of_model(&call->d->cfg, models[i].lineage_json, models[i].dir,
		    &tmpl) != 0)
			goto out;
		code = tokcache_dataset_form(call->d, di, &models[i], tmpl, &f, &hit, err,
		    sizeof(err));
		spec = rpc_strdup(call, text ? "" : tmpl);
		free(tmpl);
		if (code != FT__CODE__OK) {
			log_warn("data show %s: tokens for %s: %s", di->name, models[i].name, err);
			continue;
		}
		tokcache_form_stats(&f, 0, &st);
		if ((tc = rpc_alloc(call, sizeof(*tc))) == NULL) {
			tokcache_form_free(&f);
			goto out;
		}
		ft__token_count__init(tc);
		if ((tc->models = rpc_alloc(call, n * sizeof(*tc->models))) == NULL) {
			tokcache_form_free(&f);
			goto out;
		}
		tc->tokenizer = rpc_strdup(call, hash[i]);
		tc->template_ = (char *)spec;
		tc->counted = st.counted;
		tc->tokens = st.tokens;
		tc->mean_tokens = st.counted ? (double)st.tokens / (double)st.counted : 0;
		tc->max_tokens = st.max;
		for (size_t k = i; k < n; k++) {
			Ft__TokenModel *tm;
			fte_config cfg;

			if (strcmp(hash[k], hash[i]) != 0)
				continue;
			if ((tm = rpc_alloc(call, sizeof(*tm))) == NULL) {
				tokcache_form_free(&f);
				goto out;
			}
			ft__token_model__init(tm);
			tm->model = rpc_strdup(call, models[k].name);
			if (registry_model_config(&models[k], &cfg) == 0) {
				tm->context = (uint32_t)cfg.max_seq_len;
				tokcache_form_stats(&f, (uint64_t)cfg.max_seq_len, &st);
				tm->over_context = st.longer;
			}
			tc->models[tc->n_models++] = tm;
		}
		tokcache_form_free(&f);
		p->token_counts[p->n_token_counts++] = tc;
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		model_info_free(&models[i]);
	free(models);
	free(hash);
	return rc;
}

int
rpc_data_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__DataReply *r = rpc_alloc(call, sizeof(*r));
	struct dataset_info di;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (datasets_find(call->d, req->data_show->name, &di) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no dataset '%s'", req->data_show->name);
	ft__data_reply__init(r);
	r->dataset = dataset_to_proto(call, &di, 1);
	r->report = rpc_strdup(call, di.report);
	if (r->dataset == NULL || token_counts(call, &di, r->dataset) != 0) {
		dataset_info_free(&di);
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	}
	dataset_info_free(&di);
	rep->body_case = FT__REPLY__BODY_DATA_SHOW;
	rep->data_show = r;
	return FT__CODE__OK;
}

int
rpc_data_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__DataListReply *r = rpc_alloc(call, sizeof(*r));
	struct dataset_info *list;
	size_t n;

	(void)req;
	if (r == NULL || datasets_list(call->d, &list, &n) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot list datasets");
	ft__data_list_reply__init(r);
	r->datasets = rpc_alloc(call, (n + 1) * sizeof(*r->datasets));
	for (size_t i = 0; i < n; i++) {
		if (r->datasets != NULL &&
		    (r->datasets[r->n_datasets] = dataset_to_proto(call, &list[i], 0)) != NULL)
			r->n_datasets++;
		dataset_info_free(&list[i]);
	}
	free(list);
	if (r->n_datasets != n)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_DATA_LIST;
	rep->data_list = r;
	return FT__CODE__OK;
}

int
rpc_data_remove(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__Empty *e = rpc_alloc(call, sizeof(*e));
	char err[1024];
	int code;

	if (e == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = datasets_remove(call->d, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    req->data_remove->name, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__empty__init(e);
	rep->body_case = FT__REPLY__BODY_DATA_REMOVE;
	rep->data_remove = e;
	return FT__CODE__OK;
}
