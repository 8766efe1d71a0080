/* cmd_model.c - ftctl model import, ls, show, rm. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ftctl.h"

struct import_args {
	const char *name;
	const char *tokenizer;
};

struct init_args {
	const char *tokenizer;
	int arch;                   /* Ft__ModelArch */
	uint32_t layers, dim, heads, kv_heads, ffn, seq_len;
	uint64_t seed;
};

struct export_args {
	int format;                 /* Ft__ExportFormat */
	const char *out;
	const char *dtype;
};

struct quiet_args {
	int quiet;
};

struct force_args {
	int force;
};

/* The daemon opens the files itself, so it is sent absolute paths: the
 * folder resolved, the last name as given, so that the daemon sees (and
 * refuses) a symbolic link there rather than the file it points to. */
static int
path_absolute(const char *what, const char *path, char *out)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	struct stat st;
	int whole = name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (realpath(whole ? path : dir[0] ? dir : "/", out) == NULL ||
	    (!whole && strlen(out) + strlen(name) + 2 > PATH_MAX)) {
		fprintf(stderr, "ftctl: model import: %s %s: %s\n", what, path,
		    strerror(errno ? errno : ENAMETOOLONG));
		return EXIT_USAGE;
	}
	if (!whole)
		snprintf(out + strlen(out), PATH_MAX - strlen(out), "%s%s",
		    strcmp(out, "/") == 0 ? "" : "/", name);
	if (lstat(out, &st) != 0) {
		fprintf(stderr, "ftctl: model import: %s %s: %s\n", what, path, strerror(errno));
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static void
model_print(const Ft__ModelInfo *m)
{
	char size[32], params[32], when[64], owner[64];
	int lora = m->format == FT__MODEL_FORMAT__MODEL_FORMAT_LORA;
	json_t *j;

	size_format(m->size, size, sizeof(size));
	count_format(m->params, params, sizeof(params));
	time_format(m->created_at, when, sizeof(when));
	user_format(m->owner_uid, owner, sizeof(owner));
	printf("model %s (id %lld)\n", m->name, (long long)m->id);
	printf("  kind       %s, %s format, %s\n", enum_word(&ft__model_kind__descriptor, m->kind),
	    enum_word(&ft__model_format__descriptor, m->format),
	    enum_word(&ft__model_arch__descriptor, m->arch));
	printf("  params     %s (%llu)%s\n", params, (unsigned long long)m->params,
	    lora ? ", with its base" : "");
	printf("  size       %s in %zu file%s\n", size, m->n_files, m->n_files == 1 ? "" : "s");
	printf("  tokenizer  %s\n", m->tokenizer[0] ? m->tokenizer : "-");
	printf("  owner      %s\n", owner);
	printf("  created    %s\n", when);
	if (m->base_model[0] != '\0')
		printf("  base       %s%s\n", m->base_model,
		    lora ? " (a LoRA adapter on it: the base's weights are not copied)" : "");
	if (m->job_id != 0)
		printf("  job        %lld\n", (long long)m->job_id);
	if (m->n_files > 0) {
		printf("  files\n");
		for (size_t i = 0; i < m->n_files; i++) {
			size_format(m->files[i]->size, size, sizeof(size));
			printf("    %-24s %9s  blake2b %s\n", m->files[i]->name, size,
			    m->files[i]->blake2b);
		}
	}
	if (m->config_json[0] != '\0' && (j = json_loads(m->config_json, 0, NULL)) != NULL) {
		printf("  config\n");
		json_inline_print(stdout, j, 4, term_width());
		json_decref(j);
	}
	/* Base models have no lineage: "" or {}. */
	if (m->lineage_json[0] != '\0' && (j = json_loads(m->lineage_json, 0, NULL)) != NULL) {
		if (json_object_size(j) > 0) {
			printf("  lineage\n");
			json_fields_print(stdout, j, 4);
		}
		json_decref(j);
	}
}

static int
cmd_model_import(const struct opts *o, void *args, int argc, char **argv)
{
	struct import_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__ModelImportRequest mreq = FT__MODEL_IMPORT_REQUEST__INIT;
	char path[PATH_MAX], tok[PATH_MAX];
	Ft__Reply *rep;
	int rc;

	(void)argc;
	if ((rc = path_absolute("model", argv[0], path)) != EXIT_OK)
		return rc;
	mreq.path = path;
	mreq.name = (char *)a->name;
	if (a->tokenizer[0] != '\0') {
		if ((rc = path_absolute("tokenizer", a->tokenizer, tok)) != EXIT_OK)
			return rc;
		mreq.tokenizer = tok;
	}
	req.body_case = FT__REQUEST__BODY_MODEL_IMPORT;
	req.model_import = &mreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(ft_json_message((const ProtobufCMessage *)rep->model_import->model));
	else if (rep->model_import->model != NULL)
		model_print(rep->model_import->model);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_model_init(const struct opts *o, void *args, int argc, char **argv)
{
	struct init_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__ModelInitRequest mreq = FT__MODEL_INIT_REQUEST__INIT;
	char tok[PATH_MAX];
	Ft__Reply *rep;
	int rc;

	(void)argc;
	if ((rc = path_absolute("tokenizer", a->tokenizer, tok)) != EXIT_OK)
		return rc;
	mreq.name = argv[0];
	mreq.tokenizer = tok;
	mreq.arch = (Ft__ModelArch)a->arch;
	mreq.layers = a->layers;
	mreq.dim = a->dim;
	mreq.heads = a->heads;
	mreq.kv_heads = a->kv_heads;
	mreq.ffn = a->ffn;
	mreq.max_seq_len = a->seq_len;
	mreq.seed = a->seed;
	req.body_case = FT__REQUEST__BODY_MODEL_INIT;
	req.model_init = &mreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(ft_json_message((const ProtobufCMessage *)rep->model_init->model));
	else if (rep->model_init->model != NULL)
		model_print(rep->model_init->model);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_model_export(const struct opts *o, void *args, int argc, char **argv)
{
	struct export_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__ModelExportRequest mreq = FT__MODEL_EXPORT_REQUEST__INIT;
	char out[PATH_MAX], parent[PATH_MAX], *slash;
	Ft__Reply *rep;
	int rc;

	(void)argc;
	/* The daemon creates the folder; its parent must exist here. */
	snprintf(parent, sizeof(parent), "%s", a->out);
	slash = strrchr(parent, '/');
	if (slash != NULL)
		*slash = '\0';
	if (realpath(slash == NULL ? "." : parent[0] ? parent : "/", out) == NULL) {
		fprintf(stderr, "ftctl: model export: --out %s: %s\n", a->out, strerror(errno));
		return EXIT_USAGE;
	}
	snprintf(out + strlen(out), sizeof(out) - strlen(out), "/%s", slash ? slash + 1 : a->out);
	mreq.name = argv[0];
	mreq.format = (Ft__ExportFormat)a->format;
	mreq.out_dir = out;
	mreq.dtype = (char *)a->dtype;
	req.body_case = FT__REQUEST__BODY_MODEL_EXPORT;
	req.model_export = &mreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(ft_json_message(&rep->model_export->base));
	else
		printf("exported %s as %s to %s\n", argv[0],
		    enum_word(&ft__export_format__descriptor, a->format), out);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_model_ls(const struct opts *o, void *args, int argc, char **argv)
{
	struct quiet_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__ModelListRequest mreq = FT__MODEL_LIST_REQUEST__INIT;
	static const char *const heads[] = {
		"ID", "NAME", "KIND", "ARCH", "PARAMS", "SIZE", "FORMAT", "BASE", "OWNER", "CREATED",
	};
	Ft__ModelListReply *l;
	struct table *t;
	Ft__Reply *rep;
	int rc;

	(void)argc, (void)argv;
	req.body_case = FT__REQUEST__BODY_MODEL_LIST;
	req.model_list = &mreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->model_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if (a->quiet) {
		for (size_t i = 0; i < l->n_models; i++)
			printf("%s\n", l->models[i]->name);
	} else if ((t = table_new(10, heads, "rslLrrlsLL")) != NULL) {
		for (size_t i = 0; i < l->n_models; i++) {
			const Ft__ModelInfo *m = l->models[i];
			char id[24], params[32], size[32], owner[64], when[64];

			snprintf(id, sizeof(id), "%lld", (long long)m->id);
			count_format(m->params, params, sizeof(params));
			size_format(m->size, size, sizeof(size));
			user_format(m->owner_uid, owner, sizeof(owner));
			time_format(m->created_at, when, sizeof(when));
			when[16] = '\0'; /* minutes are enough in a table */
			table_add(t, id, m->name, enum_word(&ft__model_kind__descriptor, m->kind),
			    enum_word(&ft__model_arch__descriptor, m->arch), params, size,
			    enum_word(&ft__model_format__descriptor, m->format),
			    m->base_model[0] ? m->base_model : "-", owner, when);
		}
		table_print(t, stdout, term_width());
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_model_show(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__ModelShowRequest mreq = FT__MODEL_SHOW_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)args, (void)argc;
	mreq.name = argv[0];
	req.body_case = FT__REQUEST__BODY_MODEL_SHOW;
	req.model_show = &mreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(ft_json_message((const ProtobufCMessage *)rep->model_show->model));
	else if (rep->model_show->model != NULL)
		model_print(rep->model_show->model);
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_model_rm(const struct opts *o, void *args, int argc, char **argv)
{
	struct force_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__ModelRemoveRequest mreq = FT__MODEL_REMOVE_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)argc;
	mreq.name = argv[0];
	mreq.force = a->force;
	req.body_case = FT__REQUEST__BODY_MODEL_REMOVE;
	req.model_remove = &mreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(json_pack("{s:s,s:b}", "removed", argv[0], "forced", a->force));
	else
		printf("removed model %s\n", argv[0]);
	ft_reply_free(rep);
	return EXIT_OK;
}

static const struct ftctl_option import_options[] = {
	{ "name", OPT_STR, offsetof(struct import_args, name), "NAME", NULL, 0,
	  "name in the registry (default: the file or directory name)", NULL },
	{ "tokenizer", OPT_STR, offsetof(struct import_args, tokenizer), "FILE", NULL, OPT_FILE,
	  "llama2.c tokenizer.bin (default: the one beside the checkpoint)", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

static const struct ftctl_option init_options[] = {
	{ "tokenizer", OPT_STR, offsetof(struct init_args, tokenizer), "FILE", NULL,
	  OPT_REQUIRED | OPT_FILE, "tokenizer.json to use (its folder's tokenizer_config.json comes along)", NULL },
	{ "arch", OPT_ENUM, offsetof(struct init_args, arch), "ARCH", NULL, 0,
	  "architecture (default llama)", &ft__model_arch__descriptor },
	{ "layers", OPT_U32, offsetof(struct init_args, layers), "N", NULL, OPT_REQUIRED,
	  "transformer layers", NULL },
	{ "dim", OPT_U32, offsetof(struct init_args, dim), "N", NULL, OPT_REQUIRED, "residual width", NULL },
	{ "heads", OPT_U32, offsetof(struct init_args, heads), "N", NULL, OPT_REQUIRED,
	  "attention heads", NULL },
	{ "kv-heads", OPT_U32, offsetof(struct init_args, kv_heads), "N", NULL, 0,
	  "key/value heads (default: heads)", NULL },
	{ "ffn", OPT_U32, offsetof(struct init_args, ffn), "N", NULL, 0,
	  "MLP width (default 8/3 dim for Llama, 4 dim for GPT-2)", NULL },
	{ "seq-len", OPT_U32, offsetof(struct init_args, seq_len), "N", NULL, 0,
	  "context length (default 256)", NULL },
	{ "seed", OPT_U64, offsetof(struct init_args, seed), "N", NULL, 0,
	  "initialisation seed (default 1)", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

static const struct ftctl_option export_options[] = {
	{ "format", OPT_ENUM, offsetof(struct export_args, format), "FORMAT", NULL, OPT_REQUIRED,
	  "hf: a Hugging Face directory; gguf: model.gguf for llama.cpp and ollama (Llama only); "
	  "ollama: model.gguf and its Modelfile (chat template, stop tokens), "
	  "both merged for a LoRA model; peft: a LoRA model's adapter for PEFT",
	  &ft__export_format__descriptor },
	{ "out", OPT_STR, offsetof(struct export_args, out), "DIR", NULL, OPT_REQUIRED | OPT_FILE,
	  "folder to create, inside the daemon's export_roots", NULL },
	{ "dtype", OPT_STR, offsetof(struct export_args, dtype), "DTYPE", "f32|f16|bf16|q8_0|q4_k_m", 0,
	  "weight precision (default f32; bf16 for hf only; q8_0 and llama.cpp's q4_k_m mix for gguf only)", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

static const struct ftctl_option ls_options[] = {
	{ "quiet", OPT_FLAG, offsetof(struct quiet_args, quiet), NULL, NULL, 0,
	  "print only the names", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

static const struct ftctl_option rm_options[] = {
	{ "force", OPT_FLAG, offsetof(struct force_args, force), NULL, NULL, 0,
	  "remove even while tuned models derive from it", NULL },
	{ NULL, 0, 0, NULL, NULL, 0, NULL, NULL },
};

const struct command model_commands[] = {
	{ "import", "PATH", 1, 1, ARG_FILE,
	  "Register a base model: a Hugging Face directory or llama2.c file.\n"
	  "The daemon reads PATH itself (sent as an absolute path), validates it with\n"
	  "the engine's loader and stores it once per content hash.",
	  import_options, sizeof(struct import_args), cmd_model_import, NULL },
	{ "init", "NAME", 1, 1, ARG_NONE,
	  "Register a new model with freshly initialised weights, for pretraining.\n"
	  "Its shape comes from the options; its vocabulary from the tokenizer.",
	  init_options, sizeof(struct init_args), cmd_model_init, NULL },
	{ "export", "NAME", 1, 1, ARG_MODEL,
	  "Write a model for other tools: a Hugging Face directory, a GGUF file or,\n"
	  "for a LoRA model, its PEFT adapter.\n"
	  "The daemon writes the folder itself, inside its export_roots.",
	  export_options, sizeof(struct export_args), cmd_model_export, NULL },
	{ "ls", "", 0, 0, ARG_NONE, "List the registered models.",
	  ls_options, sizeof(struct quiet_args), cmd_model_ls, NULL },
	{ "show", "NAME", 1, 1, ARG_MODEL,
	  "Show a model: parameters, files and hashes, config, lineage.\n"
	  "NAME may also be the model's id.",
	  NULL, 0, cmd_model_show, NULL },
	{ "rm", "NAME", 1, 1, ARG_MODEL,
	  "Remove a model, unless jobs or tuned models use it.\n"
	  "--force removes it even while tuned models derive from it, but never while a\n"
	  "queued or running job uses it or LoRA adapters run on it.",
	  rm_options, sizeof(struct force_args), cmd_model_rm, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};
