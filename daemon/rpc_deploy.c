/* rpc_deploy.c - deployment and API key RPCs: DeployCreate, DeployList,
 * DeployRemove, KeyCreate, KeyList, KeyRevoke. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "deploy.h"
#include "rpc.h"

static Ft__DeployInfo *
deploy_to_proto(struct rpc_call *call, const struct deploy_info *m)
{
	Ft__DeployInfo *p = rpc_alloc(call, sizeof(*p));

	if (p == NULL)
		return NULL;
	ft__deploy_info__init(p);
	p->name = rpc_strdup(call, m->name);
	p->model_id = m->model_id;
	p->model = rpc_strdup(call, m->model);
	p->owner_uid = m->owner_uid;
	p->created_at = m->created_at;
	p->loaded = m->loaded != 0;
	p->memory_bytes = m->memory;
	p->shared_base = rpc_strdup(call, m->base);
	p->base_bytes = m->base_memory;
	p->request_bytes = m->request_memory;
	return p->name && p->model && p->shared_base ? p : NULL;
}

/* The API's base URL, "" when the HTTP server is off. */
static char *
api_url(struct rpc_call *call)
{
	char url[sizeof(call->d->http_url) + 8];

	snprintf(url, sizeof(url), "%s%s", call->d->http_url, call->d->http_url[0] ? "v1" : "");
	return rpc_strdup(call, url);
}

int
rpc_deploy_create(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__DeployCreateRequest *q = req->deploy_create;
	Ft__DeployReply *r = rpc_alloc(call, sizeof(*r));
	struct deploy_info info;
	char err[256];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = deploy_create(call->d, (uint32_t)call->uid, q->model, q->name, &info, err,
	    sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__deploy_reply__init(r);
	r->deploy = deploy_to_proto(call, &info);
	r->url = api_url(call);
	if (r->deploy == NULL || r->url == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_DEPLOY_CREATE;
	rep->deploy_create = r;
	return FT__CODE__OK;
}

int
rpc_deploy_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__DeployListReply *r = rpc_alloc(call, sizeof(*r));
	struct deploy_info *v;
	size_t n;

	(void)req;
	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (deploy_list(call->d, &v, &n) != 0)
		return rpc_error(call, rep, FT__CODE__INTERNAL, "the deployments could not be read");
	ft__deploy_list_reply__init(r);
	r->url = api_url(call);
	r->serving_bytes = call->d->deploy != NULL ? deploy_memory_used(call->d->deploy) : 0;
	r->deploys = rpc_alloc(call, (n + 1) * sizeof(*r->deploys));
	for (size_t i = 0; r->deploys != NULL && i < n; i++) {
		if ((r->deploys[i] = deploy_to_proto(call, &v[i])) == NULL)
			break;
		r->n_deploys++;
	}
	free(v);
	if (r->url == NULL || r->n_deploys != n)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_DEPLOY_LIST;
	rep->deploy_list = r;
	return FT__CODE__OK;
}

int
rpc_deploy_remove(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__Empty *r = rpc_alloc(call, sizeof(*r));
	char err[256];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = deploy_remove(call->d, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    req->deploy_remove->name, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__empty__init(r);
	rep->body_case = FT__REPLY__BODY_DEPLOY_REMOVE;
	rep->deploy_remove = r;
	return FT__CODE__OK;
}

int
rpc_key_create(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__KeyCreateReply *r = rpc_alloc(call, sizeof(*r));
	struct deploy_key_info info;
	char key[DEPLOY_KEY_TEXT_MAX + 1], err[256];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = deploy_key_create(call->d, (uint32_t)call->uid, req->key_create->name, key, &info,
	    err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__key_create_reply__init(r);
	code = deploy_key_proto(&call->mem, &info, &r->key);
	r->secret = rpc_strdup(call, key);
	sodium_memzero(key, sizeof(key));
	if (code != FT__CODE__OK || r->secret == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	rep->body_case = FT__REPLY__BODY_KEY_CREATE;
	rep->key_create = r;
	return FT__CODE__OK;
}

int
rpc_key_list(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	int all = req->key_list->all_users, code;
	Ft__KeyListReply *r;

	if (all && !rpc_caller_is_admin(call))
		return rpc_error(call, rep, FT__CODE__PERMISSION_DENIED, "--all is for admins "
		    "(root and admin_group)");
	if ((code = deploy_key_list_reply(call->d, &call->mem, (uint32_t)call->uid, all, &r)) !=
	    FT__CODE__OK)
		return rpc_error(call, rep, code, code == FT__CODE__RESOURCE_EXHAUSTED ?
		    "out of memory" : "the API keys could not be read");
	rep->body_case = FT__REPLY__BODY_KEY_LIST;
	rep->key_list = r;
	return FT__CODE__OK;
}

int
rpc_key_revoke(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	Ft__Empty *r = rpc_alloc(call, sizeof(*r));
	char err[256];
	int code;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	code = deploy_key_revoke(call->d, (uint32_t)call->uid, rpc_caller_is_admin(call),
	    req->key_revoke->name, err, sizeof(err));
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	ft__empty__init(r);
	rep->body_case = FT__REPLY__BODY_KEY_REVOKE;
	rep->key_revoke = r;
	return FT__CODE__OK;
}
