/* rpc_model.c - model registry RPCs: ModelImport, ModelList, ModelShow,
 * ModelRemove. */
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "rpc.h"

/* Copies a registry row into a reply message in call memory. */
static Ft__ModelInfo *
model_to_proto(struct rpc_call *call, const struct model_info *m)
{
	Ft__ModelInfo *p = rpc_alloc(call, sizeof(*p));

	if (p == NULL)
		return NULL;
	ft__model_info__init(p);
	p->id = m->id;
	p->name = rpc_strdup(call, m->name);
	p->kind = rpc_strdup(call, m->kind);
	p->format = rpc_strdup(call, m->format);
	p->arch = rpc_strdup(call, m->arch);
	p->params = m->params;
	p->config_json = rpc_strdup(call, m->config_json);
	p->owner_uid = m->owner_uid;
	p->created_at = m->created_at;
	p->size = m->size;
	p->base_model = rpc_strdup(call, m->base_name);
	p->job_id = m->job_id;
	p->lineage_json = rpc_strdup(call, m->lineage_json);
	p->tokenizer = rpc_strdup(call, strrchr(m->tokenizer, '/') + 1);
	p->files = rpc_alloc(call, (m->n_files + 1) * sizeof(*p->files));
	if (p->name == NULL || p->files == NULL || p->lineage_json == NULL || p->tokenizer == NULL)
		return NULL;
	for (size_t i = 0; i < m->n_files; i++) {
		Ft__ModelFile *f = rpc_alloc(call, sizeof(*f));

		if (f == NULL)
			return NULL;
		ft__model_file__init(f);
		f->name = rpc_strdup(call, m->files[i].name);
		f->blake2b = rpc_strdup(call, m->files[i].hash);
		f->size = m->files[i].size;
		p->files[p->n_files++] = f;
	}
	return p;
}

static int
model_reply(struct rpc_call *call, Ft__Reply *rep, const char *name, int body_case)
{
	Ft__ModelReply *r = rpc_alloc(call, sizeof(*r));
	struct model_info m;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (registry_model_find(call->d, name, &m) != 0)
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no model '%s'", name);
	ft__model_reply__init(r);
	r->model = model_to_proto(call, &m);
	model_info_free(&m);
	if (r->model == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = body_case;
	rep->model_show = r; /* model_import and model_show share the ModelReply slot type */
	return FT__CODE__OK;
}

int
rpc_model_import(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__ModelImportRequest *q = req->model_import;
	char err[1024], idbuf[32];
	int64_t id;
	int code;

	if (q->path[0] == '\0')
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "model import needs a path");
	code = registry_model_import(call->d, (uint32_t)call->uid, q->path, q->name, q->tokenizer,
	    &id, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	return model_reply(call, rep, idbuf, FT__REPLY__BODY_MODEL_IMPORT);
}

int
rpc_model_show(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	return model_reply(call, rep, req->model_show->name, FT__REPLY__BODY_MODEL_SHOW);
}

int
rpc_model_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__ModelListReply *r = rpc_alloc(call, sizeof(*r));
	struct model_info *list;
	size_t n;

	(void)req;
	if (r == NULL || registry_model_list(call->d, &list, &n) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "cannot list models");
	ft__model_list_reply__init(r);
	r->models = rpc_alloc(call, (n + 1) * sizeof(*r->models));
	for (size_t i = 0; i < n; i++) {
		if (r->models != NULL && (r->models[r->n_models] = model_to_proto(call, &list[i])) != NULL)
			r->n_models++;
		model_info_free(&list[i]);
	}
	free(list);
	if (r->n_models != n)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_MODEL_LIST;
	rep->model_list = r;
	return FT__CODE__OK;
}

int
rpc_model_remove(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__ModelRemoveRequest *q = req->model_remove;
	Ft__Empty *e = rpc_alloc(call, sizeof(*e));
	char err[1024];
	int code;

	if (e == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = registry_model_remove(call->d, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    q->name, q->force, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__empty__init(e);
	rep->body_case = FT__REPLY__BODY_MODEL_REMOVE;
	rep->model_remove = e;
	return FT__CODE__OK;
}
