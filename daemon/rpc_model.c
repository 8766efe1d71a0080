/* rpc_model.c - model registry RPCs: ModelImport, ModelList, ModelShow,
 * ModelRemove, ModelInit, ModelExport. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "chat_template.h"
#include "fsutil.h"
#include "log.h"
#include "quota.h"
#include "registry.h"
#include "rpc.h"
#include "testhook.h"

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

/* Largest model ModelInit builds on the RPC thread (initialising 200M
 * parameters takes about a second). */
#define INIT_MAX_PARAMS 200000000ULL

static int
init_config(const Ft__ModelInitRequest *q, int vocab, fte_config *c, char *err, size_t err_len)
{
	int arch = q->arch[0] ? fte_arch_find(q->arch) : FTE_ARCH_LLAMA, gpt2;

	if (arch == 0) {
		char list[256];

		fte_arch_list(list, sizeof(list));
		snprintf(err, err_len, "--arch must be one of %s, not '%s'", list, q->arch);
		return -1;
	}
	/* learned positions: GPT-2's shape rules */
	gpt2 = !fte_arch_get(arch)->rope;
	memset(c, 0, sizeof(*c));
	c->arch = arch;
	c->n_layers = (int)q->layers;
	c->dim = (int)q->dim;
	c->n_heads = (int)q->heads;
	c->n_kv_heads = gpt2 || q->kv_heads == 0 ? (int)q->heads : (int)q->kv_heads;
	c->head_dim = q->heads ? (int)(q->dim / q->heads) : 0;
	c->ffn_dim = q->ffn ? (int)q->ffn : gpt2 ? 4 * c->dim : (8 * c->dim / 3 + 31) / 32 * 32;
	c->vocab_size = vocab;
	c->max_seq_len = q->max_seq_len ? (int)q->max_seq_len : 256;
	c->norm_eps = 1e-5f;
	c->rope_theta = 10000.0f;
	c->rope_style = FTE_ROPE_HALF;
	c->tied_embeddings = 1;
	if (q->layers < 1 || q->layers > 128 || q->dim < 8 || q->dim > 8192 || q->heads < 1 ||
	    q->heads > q->dim || q->kv_heads > q->heads || q->dim % q->heads != 0 ||
	    c->n_heads % c->n_kv_heads != 0 || q->ffn > 32768 || q->max_seq_len > 32768 ||
	    c->max_seq_len < 8) {
		snprintf(err, err_len, "model shape out of range: 1..128 layers, dim 8..8192 divisible "
		    "by heads, kv heads dividing heads, ffn up to 32768, context 8..32768");
		return -1;
	}
	if (fte_config_check(c) != FTE_OK) {
		snprintf(err, err_len, "%s", fte_last_error());
		return -1;
	}
	return 0;
}

int
rpc_model_init(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__ModelInitRequest *q = req->model_init;
	char err[1024], tok_dir[PATH_MAX], base[128], pin[64], tok_path[128], tmp[PATH_MAX];
	char idbuf[32], tok_json[PATH_MAX + 16], *lineage = NULL;
	fte_tokenizer *tok = NULL;
	fte_model *m = NULL;
	fte_config c;
	struct stat sb;
	size_t params;
	json_t *lj;
	int64_t id;
	int tfd = -1, code = FT__CODE__INVALID_ARGUMENT;

	if (registry_name_check(q->name, err, sizeof(err)) != 0)
		return rpc_error(call, rep, code, "%s", err);
	/* The tokenizer's folder is read only through its descriptor. */
	if (fs_file_inside(q->tokenizer, call->d->cfg.import_roots, "import", &tfd, tok_dir, base,
	    err, sizeof(err)) != 0)
		return rpc_error(call, rep, FT__CODE__PERMISSION_DENIED, "%s", err);
	fte_dir_path(tfd, pin, sizeof(pin));
	snprintf(tok_path, sizeof(tok_path), "%s/tokenizer.json", pin);
	if (strcmp(base, "tokenizer.json") != 0) {
		snprintf(err, sizeof(err), "--tokenizer must name a tokenizer.json (its folder's "
		    "tokenizer_config.json comes along)");
		goto out;
	}
	if (fte_tokenizer_load(tok_path, &tok) != FTE_OK) {
		snprintf(err, sizeof(err), "%s", fte_last_error());
		goto out;
	}
	/* its folder's tokenizer_config.json, chat template and all, comes along */
	if (chat_template_check(&call->d->cfg, tok_path, err, sizeof(err)) != 0)
		goto out;
	if (init_config(q, fte_tokenizer_vocab_size(tok), &c, err, sizeof(err)) != 0)
		goto out;
	c.bos_id = fte_tokenizer_bos(tok);
	c.eos_id = fte_tokenizer_eos(tok);
	/* Sized from the shape before anything is allocated or written. */
	if ((params = fte_config_num_params(&c)) > INIT_MAX_PARAMS) {
		snprintf(err, sizeof(err), "%zu parameters: ModelInit builds at most %llu",
		    params, INIT_MAX_PARAMS);
		goto out;
	}
	/* saved in F32, beside a copy of the tokenizer */
	if (stat(tok_path, &sb) != 0)
		sb.st_size = 0;
	if ((code = quota_check(call->d, (uint32_t)call->uid, QUOTA_MODEL,
	    params * sizeof(float) + (uint64_t)sb.st_size, err, sizeof(err))) != FT__CODE__OK)
		goto out;
	code = FT__CODE__INVALID_ARGUMENT;
	if (fte_model_create(&c, &m) != FTE_OK) {
		snprintf(err, sizeof(err), "%s", fte_last_error());
		goto out;
	}
	if (fte_model_init_random(m, q->seed ? q->seed : 1) != FTE_OK) {
		snprintf(err, sizeof(err), "%s", fte_last_error());
		goto out;
	}
	/* Saved as the engine saves any model, then registered like a tuned one. */
	snprintf(tmp, sizeof(tmp), "%s/tmp-init-XXXXXX", call->d->cfg.state_dir);
	if (mkdtemp(tmp) == NULL) {
		snprintf(err, sizeof(err), "%s: %s", tmp, strerror(errno));
		code = FT__CODE__INTERNAL;
		goto out;
	}
	/* the tokenizer folder's side files are parsed before they are kept */
	if (fte_hf_save(m, pin, tmp) != FTE_OK) {
		snprintf(err, sizeof(err), "%s", fte_last_error());
		fs_rm_rf(tmp);
		goto out;
	}
	/* built as JSON, so a folder name cannot add keys */
	snprintf(tok_json, sizeof(tok_json), "%s/tokenizer.json", tok_dir);
	lj = json_pack("{s:{s:I,s:s}}", "init", "seed", (json_int_t)(q->seed ? q->seed : 1),
	    "tokenizer", tok_json);
	lineage = lj ? json_dumps(lj, JSON_COMPACT) : NULL;
	json_decref(lj);
	code = registry_model_add(call->d, (uint32_t)call->uid, tmp, q->name, "base", 0, 0,
	    lineage, &id, err, sizeof(err));
	free(lineage);
	fs_rm_rf(tmp);
out:
	fte_model_free(m);
	fte_tokenizer_free(tok);
	close(tfd);
	if (code != FT__CODE__OK) {
		fs_unpin(err, sizeof(err), pin, tok_dir);
		return rpc_error(call, rep, code, "%s", err);
	}
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	return model_reply(call, rep, idbuf, FT__REPLY__BODY_MODEL_INIT);
}

/* peft_export writes the LoRA model mi as a PEFT directory out (for its
 * base, which fte_peft_save needs for module names and row order); hf and
 * gguf (ollama: plus a Modelfile) write any model as it runs, a LoRA model
 * merged into its base.
 * FT__CODE__*. */
static int
peft_export(struct ftuned *d, const struct model_info *mi, const char *out, char *err,
    size_t err_len)
{
	struct model_info base;
	fte_peft_adapter *a = NULL;
	fte_model *bm = NULL;
	char idbuf[32];
	int code = FT__CODE__INTERNAL;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)mi->base_id);
	if (registry_model_find(d, idbuf, &base) != 0) {
		snprintf(err, err_len, "the base model of '%s' is missing from the registry", mi->name);
		return code;
	}
	if (registry_model_load(d, &base, &bm, err, err_len) == 0) {
		if (fte_adapter_load(mi->entry, fte_model_config(bm), &a) != FTE_OK) {
			snprintf(err, err_len, "%s", fte_last_error());
		} else {
			a->base_model = base.name;
			if (fte_peft_save(bm, a, out) != FTE_OK) {
				snprintf(err, err_len, "%s", fte_last_error());
			} else {
				code = FT__CODE__OK;
			}
		}
	}
	fte_adapter_free(a);
	fte_model_free(bm);
	model_info_free(&base);
	return code;
}

/* export_dir_make creates the export folder base in the export root pfd
 * with mkdirat (an existing name, a planted link included, is an error) and
 * mode 0700 while it is filled, and opens it without following links.
 * FT__CODE__*. */
static int
export_dir_make(int pfd, const char *base, const char *out, int *ofd, char *err,
    size_t err_len)
{
	struct stat st;
	int e;

	testhook_pause("export");
	if (mkdirat(pfd, base, 0700) != 0) {
		e = errno;
		snprintf(err, err_len, e == EEXIST ? "%s exists: --out must name a folder that does "
		    "not exist yet" : "%s: %s", out, strerror(e));
		return e == EEXIST ? FT__CODE__ALREADY_EXISTS : FT__CODE__INTERNAL;
	}
	if ((*ofd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(*ofd, &st) != 0 || st.st_uid != geteuid()) {
		snprintf(err, err_len, "%s was replaced while it was being created", out);
		if (*ofd >= 0)
			close(*ofd);
		*ofd = -1;
		return FT__CODE__FAILED_PRECONDITION;
	}
	return FT__CODE__OK;
}

/* export_dir_each applies fn to every entry of the export folder ofd. */
static int
export_dir_each(int ofd, int (*fn)(int, const char *, void *), void *arg)
{
	struct dirent *e;
	DIR *dp;
	int fd = dup(ofd), rc = 0;

	if (fd < 0 || (dp = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((e = readdir(dp)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			rc |= fn(ofd, e->d_name, arg);
	closedir(dp);
	return rc;
}

static int
entry_unlink(int ofd, const char *name, void *arg)
{
	(void)arg;
	return unlinkat(ofd, name, 0);
}

/* Who gets the exported files, and with which mode. */
struct export_owner {
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
};

static int
entry_give(int ofd, const char *name, void *arg)
{
	const struct export_owner *o = arg;

	return fchownat(ofd, name, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) != 0 ||
	    fchmodat(ofd, name, o->file_mode, 0) != 0 ? -1 : 0;
}

/* export_give hands the export to the user who asked.  A daemon running as
 * root gives the folder and files to that user and their primary group
 * (0750 and 0640).  Otherwise it cannot, so they stay the daemon's, in its
 * group, which every user of the control socket belongs to, readable and
 * writable by that group (0770 and 0660): the user can read, move and
 * remove them. */
static int
export_give(int ofd, uint32_t uid, const char *out, char *err, size_t err_len)
{
	struct export_owner o = {(uid_t)-1, (gid_t)-1, 0660};
	mode_t dir_mode = 0770;

	if (geteuid() == 0) {
		struct passwd pw, *res = NULL;
		char buf[1024];

		o.uid = uid;
		if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
			o.gid = pw.pw_gid;
		o.file_mode = 0640;
		dir_mode = 0750;
	}
	if (export_dir_each(ofd, entry_give, &o) != 0 || fchown(ofd, o.uid, o.gid) != 0 ||
	    fchmod(ofd, dir_mode) != 0) {
		snprintf(err, err_len, "%s: cannot give the files to uid %u: %s", out, uid,
		    strerror(errno));
		return FT__CODE__INTERNAL;
	}
	return FT__CODE__OK;
}

int
rpc_model_export(struct rpc_call *call, const Ft__Request *req, Ft__Reply *rep)
{
	const Ft__ModelExportRequest *q = req->model_export;
	Ft__ModelExportReply *r = rpc_alloc(call, sizeof(*r));
	char parent[PATH_MAX], real[PATH_MAX], out[PATH_MAX + 130], err[1024] = "", base[128];
	char pin[64], path[96], *slash;
	int ollama = strcmp(q->format, "ollama") == 0;
	int gguf = ollama || strcmp(q->format, "gguf") == 0, peft = strcmp(q->format, "peft") == 0;
	int dtype = FTE_DTYPE_F32, code = FT__CODE__OK, pfd = -1, ofd = -1;
	fte_vocab *vocab = NULL;
	fte_model *m = NULL;
	struct model_info mi;

	if (r == NULL)
		return rpc_error(call, rep, FT__CODE__RESOURCE_EXHAUSTED, "out of memory");
	if (!gguf && !peft && strcmp(q->format, "hf") != 0)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--format must be hf, gguf, "
		    "ollama or peft, not '%s'", q->format);
	if (q->dtype[0] && strcmp(q->dtype, "f32") != 0) {
		if (peft)
			return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "a PEFT adapter is "
			    "written in f32; --dtype is for hf and gguf");
		if (strcmp(q->dtype, "f16") == 0)
			dtype = FTE_DTYPE_F16;
		else if (strcmp(q->dtype, "bf16") == 0 && !gguf)
			dtype = FTE_DTYPE_BF16;
		else if (strcmp(q->dtype, "q8_0") == 0 && gguf)
			dtype = FTE_DTYPE_Q8_0;
		else if (strcmp(q->dtype, "q4_k_m") == 0 && gguf)
			dtype = FTE_DTYPE_Q4_K_M;
		else
			return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT, "--dtype must be f32 or f16%s",
			    gguf ? ", q8_0 or q4_k_m" : " or bf16");
	}
	/* The folder to create must not exist; its parent must be an export
	 * root, and is held open from the check to the last write. */
	snprintf(parent, sizeof(parent), "%s", q->out_dir);
	slash = strrchr(parent, '/');
	if (parent[0] != '/' || slash[1] == '\0' || strlen(slash + 1) >= sizeof(base) ||
	    strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0)
		return rpc_error(call, rep, FT__CODE__INVALID_ARGUMENT,
		    "--out must be an absolute path to a folder that does not exist yet");
	snprintf(base, sizeof(base), "%s", slash + 1);
	*slash = '\0';
	if (fs_dir_inside(parent[0] ? parent : "/", call->d->cfg.export_roots, "export", &pfd, real,
	    err, sizeof(err)) != 0)
		return rpc_error(call, rep, FT__CODE__PERMISSION_DENIED, "%s", err);
	snprintf(out, sizeof(out), "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
	if (registry_model_find(call->d, q->name, &mi) != 0) {
		close(pfd);
		return rpc_error(call, rep, FT__CODE__NOT_FOUND, "no model '%s'", q->name);
	}
	if (peft && strcmp(mi.format, "lora") != 0) {
		snprintf(err, sizeof(err), "'%s' is a full model, not a LoRA adapter: --format peft "
		    "exports models tuned with --method lora (use hf or gguf)", mi.name);
		code = FT__CODE__FAILED_PRECONDITION;
	} else if (registry_model_verify(call->d, &mi, err, sizeof(err)) != 0 ||
	    (!peft && registry_model_load(call->d, &mi, &m, err, sizeof(err)) != 0)) {
		code = FT__CODE__INTERNAL;
	} else if (gguf && fte_vocab_load(mi.tokenizer, &vocab) != FTE_OK) {
		snprintf(err, sizeof(err), "%s", fte_last_error());
		code = FT__CODE__INTERNAL;
	}
	if (code == FT__CODE__OK)
		code = export_dir_make(pfd, base, out, &ofd, err, sizeof(err));
	if (code == FT__CODE__OK) {
		/* written through the descriptor of the folder just made */
		fte_dir_path(ofd, pin, sizeof(pin));
		snprintf(path, sizeof(path), "%s/model.gguf", pin);
		if (peft) {
			code = peft_export(call->d, &mi, pin, err, sizeof(err));
		} else if (gguf) {
			int grc = fte_gguf_save(m, vocab, path, dtype);

			if (grc != FTE_OK) {
				snprintf(err, sizeof(err), "%s", fte_last_error());
				/* a family or feature GGUF cannot hold */
				code = grc == FTE_ENOTSUP ? FT__CODE__FAILED_PRECONDITION : FT__CODE__INTERNAL;
			} else if (ollama && (snprintf(path, sizeof(path), "%s/Modelfile", pin),
			    fte_gguf_modelfile(vocab, "model.gguf", path)) != FTE_OK) {
				snprintf(err, sizeof(err), "%s", fte_last_error());
				code = FT__CODE__INTERNAL;
			}
		} else if (fte_hf_save_dtype(m, mi.dir, pin, dtype) != FTE_OK) {
			snprintf(err, sizeof(err), "%s", fte_last_error());
			code = FT__CODE__INTERNAL;
		} else if (fs_copy_into(mi.tokenizer, pin, err, sizeof(err)) != 0) {
			code = FT__CODE__INTERNAL; /* a llama2.c tokenizer.bin, which fte_hf_save leaves */
		}
		if (code == FT__CODE__OK)
			code = export_give(ofd, (uint32_t)call->uid, out, err, sizeof(err));
		if (code != FT__CODE__OK) {
			fs_unpin(err, sizeof(err), pin, out);
			export_dir_each(ofd, entry_unlink, NULL);
			unlinkat(pfd, base, AT_REMOVEDIR);
		}
		close(ofd);
	}
	close(pfd);
	fte_vocab_free(vocab);
	fte_model_free(m);
	model_info_free(&mi);
	if (code != FT__CODE__OK)
		return rpc_error(call, rep, code, "%s", err);
	log_info("registry: uid %u exported model '%s' to %s", (unsigned)call->uid, q->name, out);
	ft__model_export_reply__init(r);
	r->files = rpc_alloc(call, sizeof(char *));
	if (r->files != NULL) {
		r->files[0] = rpc_strdup(call, out);
		r->n_files = 1;
	}
	rep->body_case = FT__REPLY__BODY_MODEL_EXPORT;
	rep->model_export = r;
	return FT__CODE__OK;
}
