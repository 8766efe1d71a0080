/*
 * registry.h - the model registry: base models imported from Hugging Face
 * directories, llama2.c checkpoints and GGUF files, and tuned models made by
 * jobs.
 *
 * Files live once in a content-addressed store (state_dir/blobs/<BLAKE2b>)
 * and are hard-linked into each model's directory (state_dir/models/<id>),
 * so a model directory is what the engine loads, and the same weights are
 * stored once.  Rows point only at complete files: the directory is built
 * under a temporary name and renamed in place before the row commits.
 *
 * A LoRA-tuned model (format "lora") stores only its adapter file
 * (REGISTRY_ADAPTER_FILE, fte_adapter_save's format) and its base's
 * tokenizer files; base_id names the base, which may itself be an adapter.
 * It reports its base's engine configuration and parameter count, since
 * that is what runs: registry_model_load loads the base chain and applies
 * the adapters in memory.  A base with adapters on it is never removed.
 */
#ifndef FT_REGISTRY_H
#define FT_REGISTRY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "fte.h"
#include "ft_wire.h"
#include "ftuned.h"

#define REGISTRY_NAME_MAX 100
#define REGISTRY_ADAPTER_FILE "adapter.safetensors"

struct model_file {
	char name[128];
	char hash[65];
	uint64_t size;
	int64_t ino;                /* recorded when stored (0: before they were) */
	int64_t mtime_ns;
	int64_t ctime_ns;           /* as last checked: a link elsewhere moves it */
};

/* ft.proto's ModelKind and ModelFormat values by shorter names; SQLite
 * stores their words (ft_enum.h), which only registry.c converts. */
enum model_kind {
	MODEL_BASE = FT__MODEL_KIND__MODEL_KIND_BASE,
	MODEL_TUNED = FT__MODEL_KIND__MODEL_KIND_TUNED,
};
enum model_format {
	MODEL_HF = FT__MODEL_FORMAT__MODEL_FORMAT_HF,
	MODEL_LLAMA2C = FT__MODEL_FORMAT__MODEL_FORMAT_LLAMA2C,
	MODEL_LORA = FT__MODEL_FORMAT__MODEL_FORMAT_LORA,     /* an adapter on base_id */
	MODEL_GGUF = FT__MODEL_FORMAT__MODEL_FORMAT_GGUF,     /* a GGUF file as imported */
};

struct model_info {
	int64_t id;
	char name[REGISTRY_NAME_MAX + 1];
	uint32_t owner_uid;
	int64_t created_at;
	enum model_kind kind;
	enum model_format format;
	Ft__ModelArch arch;
	uint64_t params;            /* of the model as it runs (a lora row: its base's) */
	uint64_t size;
	char *config_json;          /* malloc'd */
	char *lineage_json;         /* malloc'd */
	char dir[PATH_MAX];         /* absolute model directory */
	char entry[PATH_MAX];       /* absolute path fte_model_load takes */
	char tokenizer[PATH_MAX];   /* absolute path fte_tokenizer_load takes */
	int64_t base_id;            /* 0 for base models */
	char base_name[REGISTRY_NAME_MAX + 1];
	int64_t job_id;
	struct model_file *files;   /* malloc'd */
	size_t n_files;
};

/* registry_init creates the store's directories and removes what a crash
 * can leave: model directories that no committed row names, and the
 * state directory's tmp-gguf-* / tmp-init-* folders of unfinished imports
 * and inits. */
int registry_init(struct ftuned *d, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* registry_name_check: 1..100 of [A-Za-z0-9._-], not only digits (those
 * are ids), not starting with '.'.  0 or -1 with a message. */
int registry_name_check(const char *name, char *err, size_t err_len);

/* registry_model_import validates path with the engine's loader (and the
 * tokenizer), stores its files and registers a base model owned by uid.  A
 * file starting with GGUF's magic is stored as it is (format "gguf") with
 * its vocabulary as tokenizer.gguf and its chat template in a
 * tokenizer_config.json; a file is opened below its folder, a link at its
 * name refused.
 * Returns an FT__CODE__* with a message in err on failure. */
int registry_model_import(struct ftuned *d, uint32_t uid, const char *path,
    const char *name, const char *tokenizer, int64_t *id, char *err,
    size_t err_len);

/* registry_model_add registers the model directory src_dir (HF layout, as
 * the engine writes it) as a model of kind MODEL_BASE (a new
 * initialisation) or MODEL_TUNED (of base_id, made by job_id), with the
 * lineage JSON; the files are copied into the store. FT__CODE__*. */
int registry_model_add(struct ftuned *d, uint32_t uid, const char *src_dir,
    const char *name, enum model_kind kind, int64_t base_id, int64_t job_id,
    const char *lineage, int64_t *id, char *err, size_t err_len);

/* registry_adapter_add registers the adapter file at path adapter (written
 * by fte_adapter_save) as a tuned model of format "lora" on base_id, made by
 * job_id, after checking it against the base's configuration.  The model
 * directory holds the adapter and the base's tokenizer files (the chat
 * template's tokenizer_config.json included).  FT__CODE__*. */
int registry_adapter_add(struct ftuned *d, uint32_t uid, const char *adapter,
    const char *name, int64_t base_id, int64_t job_id, const char *lineage,
    int64_t *id, char *err, size_t err_len);

/* registry_model_find looks a model up by name or id.  0 and *out filled
 * (release with model_info_free), or -1 when there is none. */
int registry_model_find(struct ftuned *d, const char *name_or_id,
    struct model_info *out);

/* registry_model_of_job returns the id of the model training job job_id
 * registered (its job_id is set in the transaction that registers it), or
 * 0 when there is none. */
int64_t registry_model_of_job(struct ftuned *d, int64_t job_id);

/* registry_model_list returns every model, oldest first (free each with
 * model_info_free, then the array). */
int registry_model_list(struct ftuned *d, struct model_info **out, size_t *n);

/* registry_model_remove deletes a model the caller may delete (owner or
 * admin).  Refused while a queued or running job uses it or a tuned model
 * derives from it, unless force; refused even with force while LoRA
 * adapters are registered on it (they cannot run without it), naming them.
 * FT__CODE__*. */
int registry_model_remove(struct ftuned *d, uint32_t uid, int admin,
    const char *name, int force, char *err, size_t err_len);

/* registry_model_verify rehashes the model's files and compares them with
 * the registry: a corrupted file is found before it is used.  A LoRA model's
 * base chain is verified too.  0 or -1. */
int registry_model_verify(struct ftuned *d, const struct model_info *m,
    char *err, size_t err_len);

/* registry_model_load loads the model's weights as the engine runs them,
 * after checking that every file is still the read-only file stored at
 * import (inode, size and mtime as recorded; a mismatch refuses the load):
 * every caller that runs a registered model goes through here, so the
 * model's kind decides how it is assembled: a LoRA model is its base,
 * loaded the same way, with the adapter applied.  The caller frees *out with
 * fte_model_free.  0, or -1 with a message in err (nothing allocated). */
int registry_model_load(struct ftuned *d, const struct model_info *m,
    fte_model **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* registry_adapter_attach loads LoRA model m's adapter, after the checks of
 * registry_model_load, onto base, its base as loaded by registry_model_load,
 * unmerged (fte_adapter_attach): *out shares base's weights, which must
 * outlive it.  0, or -1 with a message in err. */
int registry_adapter_attach(struct ftuned *d, const struct model_info *m,
    const fte_model *base, fte_model **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* registry_model_config reads the model's engine configuration back from
 * the registry (no weights loaded).  0, or -1 with the reason in err (an
 * architecture or RoPE style this build does not know is named, never
 * read as another; err may be NULL with err_len 0). */
int registry_model_config(const struct model_info *m, fte_config *out, char *err,
    size_t err_len);

/* registry_arch_wire and registry_arch_engine map between ft.proto's
 * ModelArch and the engine's fte_arch (UNSPECIFIED / 0 for none). */
Ft__ModelArch registry_arch_wire(int fte_arch);
int registry_arch_engine(Ft__ModelArch arch);

/* registry_model_hashes_json: {"file": "blake2b", ...} of m's files, keys
 * sorted, so two readings of the same files compare equal as text
 * (malloc'd; NULL when out of memory). */
char *registry_model_hashes_json(const struct model_info *m);

/* registry_model_config_dir writes the directory whose config.json and
 * generation_config.json describe m as it runs: m's own, or for a LoRA
 * adapter its base chain's.  0, or -1 when the base is missing. */
int registry_model_config_dir(struct ftuned *d, const struct model_info *m, char *dir,
    size_t len);

void model_info_free(struct model_info *m);

/* Reply objects from arena a (a reply's), which the RPC handlers
 * (rpc_model.c) and the JSON API (web_api.c) both serialise:
 * registry_model_proto copies one row (the tokenizer by its file name),
 * registry_list_reply every model.  FT__CODE__OK with *out, or
 * RESOURCE_EXHAUSTED / INTERNAL. */
int registry_model_proto(struct arena *a, const struct model_info *m, Ft__ModelInfo **out);
int registry_list_reply(struct ftuned *d, struct arena *a, Ft__ModelListReply **out);

#endif
