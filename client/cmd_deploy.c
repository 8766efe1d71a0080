/* cmd_deploy.c - ftctl deploy, undeploy and key create/ls/revoke. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_deploy.h"

struct key_create_args {
	const char *name;
};

struct key_ls_args {
	int all;
};

static int
deploy_ls(const struct opts *o)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DeployListRequest dreq = FT__DEPLOY_LIST_REQUEST__INIT;
	static const char *const heads[] = { "NAME", "MODEL", "LOADED", "MEMORY", "SHARED BASE",
		"OWNER", "CREATED" };
	Ft__DeployListReply *l;
	struct table *t;
	Ft__Reply *rep;
	int rc;

	req.body_case = FT__REQUEST__BODY_DEPLOY_LIST;
	req.deploy_list = &dreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->deploy_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if ((t = table_new(7, heads, "ssslsLL")) != NULL) {
		for (size_t i = 0; i < l->n_deploys; i++) {
			const Ft__DeployInfo *d = l->deploys[i];
			char owner[64], when[64], mem[32], base[160], bb[32];

			user_format(d->owner_uid, owner, sizeof(owner));
			time_format(d->created_at, when, sizeof(when));
			when[16] = '\0';
			size_format(d->memory_bytes, mem, sizeof(mem));
			size_format(d->base_bytes, bb, sizeof(bb));
			snprintf(base, sizeof(base), "%s%s%s%s", d->shared_base, d->shared_base[0] ? " (" :
			    "-", d->shared_base[0] ? bb : "", d->shared_base[0] ? ")" : "");
			table_add(t, d->name, d->model, d->loaded ? "yes" : "no", d->loaded ? mem : "-",
			    base, owner, when);
		}
		table_print(t, stdout, term_width());
		{
			char total[32];

			size_format(l->serving_bytes, total, sizeof(total));
			printf("serving memory: %s (each shared base counted once)\n", total);
		}
		if (l->url[0])
			printf("API: %s\n", l->url);
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

int
cmd_deploy(const struct opts *o, void *args, int argc, char **argv)
{
	struct deploy_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DeployCreateRequest dreq = FT__DEPLOY_CREATE_REQUEST__INIT;
	const Ft__DeployReply *r;
	Ft__Reply *rep;
	int rc;

	(void)argc;
	if (strcmp(argv[0], "ls") == 0 && a->name[0] == '\0')
		return deploy_ls(o);
	dreq.model = argv[0];
	dreq.name = (char *)a->name;
	req.body_case = FT__REQUEST__BODY_DEPLOY_CREATE;
	req.deploy_create = &dreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	r = rep->deploy_create;
	if (o->json)
		json_print(ft_json_message(&r->base));
	else if (r->deploy != NULL)
		printf("deployed %s as %s%s%s%s\n", r->deploy->model, r->deploy->name,
		    r->url[0] ? " at " : " (the HTTP server is off)", r->url,
		    r->url[0] ? " (loaded on its first request)" : "");
	ft_reply_free(rep);
	return EXIT_OK;
}

int
cmd_undeploy(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DeployRemoveRequest dreq = FT__DEPLOY_REMOVE_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)args, (void)argc;
	dreq.name = argv[0];
	req.body_case = FT__REQUEST__BODY_DEPLOY_REMOVE;
	req.deploy_remove = &dreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(json_pack("{s:s}", "undeployed", argv[0]));
	else
		printf("undeployed %s\n", argv[0]);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_key_create(const struct opts *o, void *args, int argc, char **argv)
{
	struct key_create_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__KeyCreateRequest kreq = FT__KEY_CREATE_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)argc, (void)argv;
	kreq.name = (char *)a->name;
	req.body_case = FT__REQUEST__BODY_KEY_CREATE;
	req.key_create = &kreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json) {
		json_print(ft_json_message(&rep->key_create->base));
	} else {
		printf("%s\n", rep->key_create->secret);
		fprintf(stderr, "API key %s created. It is shown only now: the daemon keeps only "
		    "its hash.\nSend it as 'Authorization: Bearer KEY'.\n", a->name);
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_key_ls(const struct opts *o, void *args, int argc, char **argv)
{
	struct key_ls_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__KeyListRequest kreq = FT__KEY_LIST_REQUEST__INIT;
	static const char *const heads[] = {
		"NAME", "REQUESTS", "TOKENS", "LAST USED", "CREATED", "OWNER", "STATE",
	};
	Ft__KeyListReply *l;
	struct table *t;
	Ft__Reply *rep;
	int rc;

	(void)argc, (void)argv;
	kreq.all_users = a->all;
	req.body_case = FT__REQUEST__BODY_KEY_LIST;
	req.key_list = &kreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->key_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if ((t = table_new(7, heads, "srrlLLl")) != NULL) {
		for (size_t i = 0; i < l->n_keys; i++) {
			const Ft__KeyInfo *k = l->keys[i];
			char reqs[32], toks[32], used[64], when[64], owner[64];

			snprintf(reqs, sizeof(reqs), "%llu", (unsigned long long)k->requests);
			snprintf(toks, sizeof(toks), "%llu", (unsigned long long)k->tokens);
			if (k->last_used_at)
				age_format(k->last_used_at, used, sizeof(used));
			else
				snprintf(used, sizeof(used), "never");
			time_format(k->created_at, when, sizeof(when));
			when[16] = '\0';
			user_format(k->owner_uid, owner, sizeof(owner));
			table_add(t, k->name, reqs, toks, used, when, owner,
			    k->revoked_at ? "revoked" : "active");
		}
		table_print(t, stdout, term_width());
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_key_revoke(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__KeyRevokeRequest kreq = FT__KEY_REVOKE_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)args, (void)argc;
	kreq.name = argv[0];
	req.body_case = FT__REQUEST__BODY_KEY_REVOKE;
	req.key_revoke = &kreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(json_pack("{s:s}", "revoked", argv[0]));
	else
		printf("revoked key %s\n", argv[0]);
	ft_reply_free(rep);
	return EXIT_OK;
}

const struct ftctl_option deploy_options[] = {
	{ "name", OPT_STR, offsetof(struct deploy_args, name), "ALIAS", NULL, 0,
	  "the name clients ask for (default: the model's name)", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

static const struct ftctl_option key_create_options[] = {
	{ "name", OPT_STR, offsetof(struct key_create_args, name), "NAME", NULL, OPT_REQUIRED,
	  "a name for the key, to list and revoke it by", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

static const struct ftctl_option key_ls_options[] = {
	{ "all", OPT_FLAG, offsetof(struct key_ls_args, all), NULL, NULL, 0,
	  "every user's keys (admins)", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

const struct command key_commands[] = {
	{ "create", "", 0, 0, ARG_NONE,
	  "Create an API key for the OpenAI-compatible API; it is printed once.\n"
	  "The daemon stores only its BLAKE2b hash.",
	  key_create_options, sizeof(struct key_create_args), cmd_key_create, NULL },
	{ "ls", "", 0, 0, ARG_NONE, "List your API keys with their usage (requests, tokens).",
	  key_ls_options, sizeof(struct key_ls_args), cmd_key_ls, NULL },
	{ "revoke", "NAME", 1, 1, ARG_NONE, "Revoke an API key at once.",
	  NULL, 0, cmd_key_revoke, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};
