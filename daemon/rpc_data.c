/* rpc_data.c - dataset registry RPCs: DataAdd, DataValidate, DataList,
 * DataShow, DataRemove. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets.h"
#include "log.h"
#include "registry.h"
#include "rpc.h"
#include "tokcache.h"

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

static int
data_add(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep, int validate_only)
{
	const Ft__DataAddRequest *q = validate_only ? req->data_validate : req->data_add;
	struct datasets_add a = {
		.file_name = q->file_name[0] ? q->file_name : "data",
		.content = q->content.data, .len = q->content.len,
		.kind = q->kind, .name = q->name, .validation_split = q->validation_split,
		.validation_content = q->validation_content.data,
		.validation_len = q->validation_content.len,
		.validation_file_name = q->validation_file_name[0] ? q->validation_file_name : "validation",
		.skip_invalid = q->skip_invalid, .seed = q->seed,
	};
	Ft__DataReply *r = rpc_alloc(call, sizeof(*r));
	char err[1024], *report = NULL;
	uint64_t errors, warnings;
	struct dataset_info di;
	int64_t id = 0;
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = datasets_add(call->d, (uint32_t)call->uid, &a, validate_only, &id, &report, &errors,
	    &warnings, err, sizeof(err));
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
	if (!validate_only) {
		char idbuf[32];

		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
		if (datasets_find(call->d, idbuf, &di) == 0) {
			r->dataset = dataset_to_proto(call, &di, 0);
			dataset_info_free(&di);
		}
	}
	rep->body_case = validate_only ? FT__REPLY__BODY_DATA_VALIDATE : FT__REPLY__BODY_DATA_ADD;
	rep->data_add = r; /* data_add and data_validate share the DataReply type */
	return FT__CODE__OK;
}

int
rpc_data_add(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	return data_add(call, req, rep, 0);
}

int
rpc_data_validate(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	return data_add(call, req, rep, 1);
}

/* One TokenCount per distinct tokenizer among the registered models, made
 * by the first model that has it, with every model's context length.  A
 * tokenizer that cannot count is logged and left out: the rest of data
 * show still answers.  0, or -1 when memory runs out. */
static int
token_counts(struct rpc_call *call, const struct dataset_info *di, Ft__DatasetInfo *p)
{
	const char *tmpl = strcmp(di->kind, "text") == 0 ? "" : "alpaca";
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
		int hit;

		while (first < i && strcmp(hash[first], hash[i]) != 0)
			first++;
		if (hash[i][0] == '\0' || first < i)
			continue;   /* no tokenizer, or counted with an earlier model */
		if (tokcache_dataset_form(call->d, di, &models[i], "alpaca", &f, &hit, err,
		    sizeof(err)) != FT__CODE__OK) {
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
		tc->template_ = rpc_strdup(call, tmpl);
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
