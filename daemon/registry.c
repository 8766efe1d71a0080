/* registry.c - model registry: import, tuned-model registration, lookup,
 * removal, and hash verification.  See registry.h for the storage layout. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "chat_template.h"
#include "fsutil.h"
#include "fte.h"
#include "ft_enum.h"
#include "ft_wire.h"
#include "jobs.h"
#include "log.h"
#include "quota.h"
#include "registry.h"

/* Files of a Hugging Face directory worth keeping, besides the weights. */
static const char *hf_files[] = {
	"config.json", "generation_config.json", "tokenizer.json",
	"tokenizer_config.json", "special_tokens_map.json",
	"model.safetensors.index.json",
};

static void
path_join(char *out, const char *a, const char *b)
{
	snprintf(out, PATH_MAX, "%s/%s", a, b);
}

/* tmp_prune removes the folders an import or init interrupted by a crash
 * was building in the state directory (tmp-gguf-*, tmp-init-*): nothing
 * refers to them. */
static void
tmp_prune(const char *state_dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dp = opendir(state_dir);

	while (dp != NULL && (e = readdir(dp)) != NULL)
		if (strncmp(e->d_name, "tmp-gguf-", 9) == 0 || strncmp(e->d_name, "tmp-init-", 9) == 0) {
			path_join(path, state_dir, e->d_name);
			log_warn("state: removing %s, left by an interrupted import", path);
			fs_rm_rf(path);
		}
	if (dp != NULL)
		closedir(dp);
}

int
registry_init(struct ftuned *d, char *err, size_t err_len)
{
	char blobs[PATH_MAX], models[PATH_MAX];

	path_join(blobs, d->cfg.state_dir, "blobs");
	path_join(models, d->cfg.state_dir, "models");
	if (fs_mkdirs(blobs, 0750) != 0 || fs_mkdirs(models, 0750) != 0) {
		snprintf(err, err_len, "%s: %s", models, strerror(errno));
		return -1;
	}
	tmp_prune(d->cfg.state_dir);
	return store_dir_prune(d->store, models, "models", err, err_len);
}

int
registry_name_check(const char *name, char *err, size_t err_len)
{
	size_t n = strlen(name), digits = 0;

	if (n == 0 || n > REGISTRY_NAME_MAX || name[0] == '.') {
		snprintf(err, err_len, "name must be 1 to %d characters, not starting with '.'",
		    REGISTRY_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
			snprintf(err, err_len, "name may hold only letters, digits, '.', '_' and '-'");
			return -1;
		}
		digits += isdigit(c) != 0;
	}
	if (digits == n) {
		snprintf(err, err_len, "name '%s' is all digits, which would read as an id", name);
		return -1;
	}
	return 0;
}

/* The wire's architectures and the engine's, the one place they meet. */
static const struct {
	Ft__ModelArch wire;
	int engine;                 /* enum fte_arch */
} archs[] = {
	{ FT__MODEL_ARCH__MODEL_ARCH_LLAMA, FTE_ARCH_LLAMA },
	{ FT__MODEL_ARCH__MODEL_ARCH_GPT2, FTE_ARCH_GPT2 },
	{ FT__MODEL_ARCH__MODEL_ARCH_MISTRAL, FTE_ARCH_MISTRAL },
	{ FT__MODEL_ARCH__MODEL_ARCH_QWEN2, FTE_ARCH_QWEN2 },
	{ FT__MODEL_ARCH__MODEL_ARCH_QWEN3, FTE_ARCH_QWEN3 },
	{ FT__MODEL_ARCH__MODEL_ARCH_GEMMA2, FTE_ARCH_GEMMA2 },
	{ FT__MODEL_ARCH__MODEL_ARCH_GEMMA3, FTE_ARCH_GEMMA3 },
	{ FT__MODEL_ARCH__MODEL_ARCH_PHI3, FTE_ARCH_PHI3 },
};

Ft__ModelArch
registry_arch_wire(int fte_arch)
{
	for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
		if (archs[i].engine == fte_arch)
			return archs[i].wire;
	return FT__MODEL_ARCH__MODEL_ARCH_UNSPECIFIED;
}

int
registry_arch_engine(Ft__ModelArch arch)
{
	for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
		if (archs[i].wire == arch)
			return archs[i].engine;
	return 0;
}

static char *
config_to_json(const fte_config *c)
{
	char arch[FT_ENUM_WORD_MAX];
	json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:s,s:b,s:i,s:i,"
	    "s:i,s:i,s:f,s:f,s:f,s:f}",
	    "arch", ft_enum_word(&ft__model_arch__descriptor, registry_arch_wire(c->arch), arch),
	    "n_layers", c->n_layers, "dim", c->dim, "n_heads", c->n_heads,
	    "n_kv_heads", c->n_kv_heads, "head_dim", c->head_dim, "ffn_dim", c->ffn_dim,
	    "vocab_size", c->vocab_size, "max_seq_len", c->max_seq_len,
	    "norm_eps", (double)c->norm_eps, "rope_theta", (double)c->rope_theta,
	    "rope_style", c->rope_style == FTE_ROPE_INTERLEAVED ? "interleaved" : "half",
	    "tied_embeddings", c->tied_embeddings, "bos_id", c->bos_id, "eos_id", c->eos_id,
	    "sliding_window", c->sliding_window, "sliding_pattern", c->sliding_pattern,
	    "query_scale", (double)c->query_scale, "attn_softcap", (double)c->attn_softcap,
	    "final_softcap", (double)c->final_softcap, "rope_local_theta",
	    (double)c->rope_local_theta);
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return s;
}

/* One file to put in a model directory: the directory it is read from
 * (a descriptor, borrowed) and its name there, its name in the model
 * directory, and once opened its bytes.  src names it in messages. */
struct import_file {
	char src[PATH_MAX];
	int dfd;
	char from[128];
	char name[128];
	void *map;
	size_t len;
	char hash[FS_HASH_HEX];
	uint64_t size;
	int64_t ino;
};

#define IMPORT_FILES_MAX 64

static int
file_add(struct import_file *f, size_t *n, int dfd, const char *dir, const char *from,
    const char *name)
{
	if (*n >= IMPORT_FILES_MAX)
		return -1;
	snprintf(f[*n].src, PATH_MAX, "%s/%s", dir, from);
	f[*n].dfd = dfd;
	snprintf(f[*n].from, sizeof(f->from), "%s", from);
	snprintf(f[*n].name, sizeof(f->name), "%s", name);
	(*n)++;
	return 0;
}

/* present: is there an entry called name in dfd (a link counts: it is
 * refused when opened, never skipped)? */
static int
present(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Lists the files of the HF directory dfd (shown as dir). */
static int
import_files_list(int dfd, const char *dir, struct import_file *f, size_t *n_out,
    char *tok_name, char *err, size_t err_len)
{
	struct dirent *e;
	size_t n = 0;
	DIR *dp;
	int fd;

	for (size_t i = 0; i < sizeof(hf_files) / sizeof(hf_files[0]); i++)
		if (present(dfd, hf_files[i]))
			file_add(f, &n, dfd, dir, hf_files[i], hf_files[i]);
	if ((fd = dup(dfd)) < 0 || (dp = fdopendir(fd)) == NULL) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(dp);
	while ((e = readdir(dp)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len > 12 && len < sizeof(f->name) &&
		    strcmp(e->d_name + len - 12, ".safetensors") == 0 &&
		    file_add(f, &n, dfd, dir, e->d_name, e->d_name) != 0) {
			snprintf(err, err_len, "%s: more than %d files to keep", dir, IMPORT_FILES_MAX);
			closedir(dp);
			return -1;
		}
	}
	closedir(dp);
	strcpy(tok_name, "tokenizer.json");
	/* Models of llama2.c descent carry their tokenizer.bin instead, those
	 * of GGUF descent their vocabulary as tokenizer.gguf. */
	for (size_t i = 0; i < 2 && !present(dfd, "tokenizer.json"); i++) {
		const char *alt = i == 0 ? "tokenizer.bin" : "tokenizer.gguf";
		if (present(dfd, alt)) {
			file_add(f, &n, dfd, dir, alt, alt);
			strcpy(tok_name, alt);
			break;
		}
	}
	*n_out = n;
	return 0;
}

static void
import_files_close(struct import_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].map != NULL)
			munmap(f[i].map, f[i].len);
}

/* file_error writes "src: why" from an engine message about the file
 * called name, which starts with that name. */
static void
file_error(const struct import_file *f, const char *name, char *err, size_t err_len)
{
	const char *msg = fte_last_error();
	size_t n = strlen(name);

	if (strncmp(msg, name, n) == 0 && msg[n] == ':')
		msg += n + 1;
	snprintf(err, err_len, "%s:%s%s", f->src, msg[0] == ' ' ? "" : " ", msg);
}

/* import_files_open opens every file below its directory with O_NOFOLLOW
 * (a link or anything but a regular file is refused), maps it, and parses
 * it as what its name says (fte_file_check), except the entry, the weights
 * the engine's loader has read.  What is stored is what was parsed.
 * 0, or -1 with a message that names the file but never quotes it. */
static int
import_files_open(struct import_file *f, size_t n, const char *entry, char *err, size_t err_len)
{
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int fd;

		if (fte_file_openat(f[i].dfd, f[i].from, &fd) != FTE_OK) {
			file_error(&f[i], f[i].from, err, err_len);
			return -1;
		}
		if (fstat(fd, &st) != 0) {
			snprintf(err, err_len, "%s: %s", f[i].src, strerror(errno));
			close(fd);
			return -1;
		}
		f[i].len = (size_t)st.st_size;
		f[i].map = f[i].len == 0 ? NULL : mmap(NULL, f[i].len, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		if (f[i].map == MAP_FAILED) {
			f[i].map = NULL;
			snprintf(err, err_len, "%s: %s", f[i].src, strerror(errno));
			return -1;
		}
		if (strcmp(f[i].name, entry) != 0 &&
		    fte_file_check(f[i].name, f[i].map ? f[i].map : "", f[i].len) != FTE_OK) {
			file_error(&f[i], f[i].name, err, err_len);
			return -1;
		}
	}
	return 0;
}

static int64_t
ns_of(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Stores files as blobs, links them into state/models/<id>, inserts rows
 * with what the registry checks before every load (size, inode, mtime).
 * Called inside a transaction on db. */
static int
model_store(struct ftuned *d, sqlite3 *db, int64_t id, struct import_file *f,
    size_t n, char *err, size_t err_len)
{
	char blobs[PATH_MAX], tmpdir[PATH_MAX], dir[PATH_MAX], blob[PATH_MAX], link_path[PATH_MAX];
	sqlite3_stmt *st;
	struct stat sb;

	path_join(blobs, d->cfg.state_dir, "blobs");
	snprintf(dir, sizeof(dir), "%s/models/%lld", d->cfg.state_dir, (long long)id);
	snprintf(tmpdir, sizeof(tmpdir), "%s/models/.%lld.tmp", d->cfg.state_dir, (long long)id);
	fs_rm_rf(tmpdir);
	if (fs_mkdirs(tmpdir, 0750) != 0) {
		snprintf(err, err_len, "%s: %s", tmpdir, strerror(errno));
		return -1;
	}
	if (sqlite3_prepare_v2(db, "INSERT INTO model_files (model_id, name, hash, size, ino, "
	    "mtime_ns, ctime_ns) VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (fs_store_blob(f[i].map ? f[i].map : "", f[i].len, blobs, f[i].hash, &f[i].size,
		    err, err_len) != 0)
			goto fail;
		path_join(blob, blobs, f[i].hash);
		path_join(link_path, tmpdir, f[i].name);
		if (link(blob, link_path) != 0 || lstat(link_path, &sb) != 0) {
			snprintf(err, err_len, "%s: %s", link_path, strerror(errno));
			goto fail;
		}
		f[i].ino = (int64_t)sb.st_ino;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, f[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, f[i].hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)f[i].size);
		sqlite3_bind_int64(st, 5, f[i].ino);
		sqlite3_bind_int64(st, 6, ns_of(sb.st_mtim));
		sqlite3_bind_int64(st, 7, ns_of(sb.st_ctim));
		if (sqlite3_step(st) != SQLITE_DONE) {
			snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
			goto fail;
		}
	}
	sqlite3_finalize(st);
	if (fs_fsync_dir(tmpdir, 1) != 0 || rename(tmpdir, dir) != 0 || fs_fsync_dir(dir, 0) != 0) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		fs_rm_rf(tmpdir);
		return -1;
	}
	return 0;
fail:
	sqlite3_finalize(st);
	fs_rm_rf(tmpdir);
	return -1;
}

/* files_size is what storing f takes, for the quota. */
static uint64_t
files_size(const struct import_file *f, size_t n)
{
	uint64_t total = 0;
	struct stat sb;

	for (size_t i = 0; i < n; i++)
		if (stat(f[i].src, &sb) == 0)
			total += (uint64_t)sb.st_size;
	return total;
}

/* Registers a model whose files are listed in f, in one transaction; c and
 * params describe the model as it runs. */
static int
model_insert(struct ftuned *d, uint32_t uid, const char *name, enum model_kind kind,
    enum model_format format, const fte_config *c, uint64_t params, const char *entry,
    const char *tok_name, int64_t base_id, int64_t job_id, const char *lineage,
    struct import_file *f, size_t n, int64_t *id_out, char *err, size_t err_len)
{
	char *config;
	sqlite3_stmt *st = NULL;
	uint64_t size = 0;
	int64_t id;
	int code = FT__CODE__INTERNAL;
	sqlite3 *db;

	if (registry_arch_wire(c->arch) == FT__MODEL_ARCH__MODEL_ARCH_UNSPECIFIED) {
		snprintf(err, err_len, "the engine's architecture %d has no ModelArch (registry.c)",
		    c->arch);
		return FT__CODE__INTERNAL;
	}
	config = config_to_json(c);
	db = store_lock(d->store);

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM models WHERE name = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			snprintf(err, err_len, "a model named '%s' exists", name);
			code = FT__CODE__ALREADY_EXISTS;
			goto rollback;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	/* A job's result was checked at submission and is counted, not refused. */
	if (kind != MODEL_TUNED && (code = quota_check_db(db, &d->cfg, uid, QUOTA_MODEL,
	    files_size(f, n), err, err_len)) != FT__CODE__OK)
		goto rollback;
	code = FT__CODE__INTERNAL;
	if (sqlite3_prepare_v2(db, "INSERT INTO models (name, owner_uid, created_at, kind, format, "
	    "arch, params, config, entry, tokenizer, size, base_id, job_id, lineage) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
		goto rollback;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
	store_bind_enum(st, 4, &ft__model_kind__descriptor, kind);
	store_bind_enum(st, 5, &ft__model_format__descriptor, format);
	store_bind_enum(st, 6, &ft__model_arch__descriptor, registry_arch_wire(c->arch));
	sqlite3_bind_int64(st, 7, (sqlite3_int64)params);
	sqlite3_bind_text(st, 8, config ? config : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, entry, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, tok_name, -1, SQLITE_STATIC);
	if (base_id > 0)
		sqlite3_bind_int64(st, 11, base_id);
	if (job_id > 0)
		sqlite3_bind_int64(st, 12, job_id);
	sqlite3_bind_text(st, 13, lineage ? lineage : "{}", -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
		goto rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	id = sqlite3_last_insert_rowid(db);
	if (model_store(d, db, id, f, n, err, err_len) != 0)
		goto rollback;
	for (size_t i = 0; i < n; i++)
		size += f[i].size;
	if (sqlite3_prepare_v2(db, "UPDATE models SET size = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		char dir[PATH_MAX];

		snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
		snprintf(dir, sizeof(dir), "%s/models/%lld", d->cfg.state_dir, (long long)id);
		fs_rm_rf(dir);
		goto rollback;
	}
	sqlite3_finalize(st);
	*id_out = id;
	code = FT__CODE__OK;
	goto out;
rollback:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	store_unlock(d->store);
	free(config);
	return code;
}

static const char *
base_name_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

static void
join3(char *out, size_t len, const char *a, const char *b)
{
	snprintf(out, len, "%s/%s", a, b);
}

/* entry_is_gguf opens the file name below dfd (shown as dir) as every
 * import does, with no link followed, and tells whether it starts with
 * GGUF's magic: 1 or 0, or -1 with a message when it cannot be opened. */
static int
entry_is_gguf(int dfd, const char *dir, const char *name, char *err, size_t err_len)
{
	char magic[4];
	int fd, yes;

	if (fte_file_openat(dfd, name, &fd) != FTE_OK) {
		struct import_file e;

		snprintf(e.src, sizeof(e.src), "%s/%s", dir, name);
		file_error(&e, name, err, err_len);
		return -1;
	}
	yes = read(fd, magic, 4) == 4 && memcmp(magic, "GGUF", 4) == 0;
	close(fd);
	return yes;
}

/* gguf_sidecars writes what a model imported from the GGUF file at load
 * keeps beside it, in a new folder tmp of the state directory (held as
 * *tmpfd), and lists them in f: its vocabulary alone as tokenizer.gguf (the
 * tokenizer every user of the model loads, and what a tuned model copies
 * instead of the weights) and, when the file has tokenizer.chat_template, a
 * tokenizer_config.json holding it with the BOS and EOS text it renders
 * with, which is where the registry's models keep their chat template.
 * 0, or -1 with a message (tmp may then exist, for the caller to remove). */
static int
gguf_sidecars(struct ftuned *d, const char *load, char tmp[PATH_MAX], int *tmpfd,
    struct import_file *f, size_t *n, char *err, size_t err_len)
{
	char path[PATH_MAX + 32], *text = NULL;
	fte_vocab *v = NULL;
	json_t *cfg;
	int rc = -1;

	if (fte_vocab_load(load, &v) != FTE_OK) {
		snprintf(err, err_len, "no usable tokenizer: %s", fte_last_error());
		return -1;
	}
	snprintf(tmp, PATH_MAX, "%s/tmp-gguf-XXXXXX", d->cfg.state_dir);
	if (mkdtemp(tmp) == NULL) {
		snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
		tmp[0] = '\0';
		goto out;
	}
	snprintf(path, sizeof(path), "%s/tokenizer.gguf", tmp);
	if (fte_gguf_vocab_save(v, path) != FTE_OK) {
		snprintf(err, err_len, "%s", fte_last_error());
		goto out;
	}
	if (v->chat_template != NULL) {
		/* built as JSON, so the template's text cannot add keys */
		cfg = json_pack("{s:s}", "chat_template", v->chat_template);
		if (cfg != NULL && v->bos_id >= 0)
			json_object_set_new(cfg, "bos_token", json_string(v->tokens[v->bos_id]));
		if (cfg != NULL && v->eos_id >= 0)
			json_object_set_new(cfg, "eos_token", json_string(v->tokens[v->eos_id]));
		text = cfg ? json_dumps(cfg, JSON_INDENT(2)) : NULL;
		json_decref(cfg);
		snprintf(path, sizeof(path), "%s/tokenizer_config.json", tmp);
		if (text == NULL) {
			snprintf(err, err_len, "out of memory");
			goto out;
		}
		if (fs_write_atomic(path, text, strlen(text), err, err_len) != 0)
			goto out;
	}
	if (fte_dir_open(tmp, tmpfd) != FTE_OK) {
		snprintf(err, err_len, "%s", fte_last_error());
		goto out;
	}
	file_add(f, n, *tmpfd, tmp, "tokenizer.gguf", "tokenizer.gguf");
	if (v->chat_template != NULL)
		file_add(f, n, *tmpfd, tmp, "tokenizer_config.json", "tokenizer_config.json");
	rc = 0;
out:
	free(text);
	fte_vocab_free(v);
	return rc;
}

/* gguf_lineage says where a GGUF model came from: the file, and what
 * fte_gguf_describe reads in it (architecture, types, tokenizer). */
static char *
gguf_lineage(const char *load, const char *shown)
{
	char *desc = NULL, *out = NULL;
	json_t *j;

	if (fte_gguf_describe(load, &desc) != FTE_OK)
		return NULL;
	j = json_pack("{s:{s:s,s:o?}}", "import", "file", shown, "gguf", json_loads(desc, 0, NULL));
	out = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	free(desc);
	return out;
}

int
registry_model_import(struct ftuned *d, uint32_t uid, const char *path,
    const char *name, const char *tokenizer, int64_t *id, char *err, size_t err_len)
{
	char real[PATH_MAX], tok_real[PATH_MAX], pin[64] = "", tpin[64] = "", load[PATH_MAX + 200];
	char tok_path[PATH_MAX + 200], base[128] = "", tbase[128] = "", entry[16] = ".";
	char tok_name[32] = "tokenizer.bin", auto_name[REGISTRY_NAME_MAX + 1], tmp[PATH_MAX] = "";
	char shown[PATH_MAX + 130], *lineage = NULL;
	struct import_file *f = calloc(IMPORT_FILES_MAX, sizeof(*f));
	fte_tokenizer *tok = NULL;
	fte_model *m = NULL;
	struct stat sb;
	size_t n = 0;
	int dfd = -1, tfd = -1, tmpfd = -1, is_dir, gguf = 0, code = FT__CODE__INVALID_ARGUMENT;

	if (f == NULL) {
		snprintf(err, err_len, "out of memory");
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	if (realpath(path, real) == NULL || stat(real, &sb) != 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		free(f);
		return FT__CODE__NOT_FOUND;
	}
	is_dir = S_ISDIR(sb.st_mode);
	/* From here on the directory is named only by its descriptor; a file is
	 * named as given, so that a link there is refused, not followed. */
	if ((is_dir ? fs_dir_inside(real, d->cfg.import_roots, "import", &dfd, real, err, err_len) :
	    fs_file_inside(path, d->cfg.import_roots, "import", &dfd, real, base, err, err_len)) != 0 ||
	    (tokenizer && tokenizer[0] &&
	    fs_file_inside(tokenizer, d->cfg.import_roots, "import", &tfd, tok_real, tbase, err, err_len) != 0)) {
		code = FT__CODE__PERMISSION_DENIED;
		goto out;
	}
	fte_dir_path(dfd, pin, sizeof(pin));
	if (!is_dir && (gguf = entry_is_gguf(dfd, real, base, err, err_len)) < 0)
		goto out;
	if (gguf && tfd >= 0) {
		snprintf(err, err_len, "%s/%s is a GGUF file, which carries its own tokenizer "
		    "(tokenizer.ggml.*): --tokenizer is for llama2.c checkpoints", real, base);
		goto out;
	}
	if (name == NULL || name[0] == '\0') {
		/* Default name: the file or directory name, without .bin or .gguf. */
		snprintf(auto_name, sizeof(auto_name), "%s", is_dir ? base_name_of(real) : base);
		char *dot = strrchr(auto_name, '.');
		if (dot && (strcmp(dot, ".bin") == 0 || strcmp(dot, ".gguf") == 0))
			*dot = '\0';
		name = auto_name;
	}
	if (registry_name_check(name, err, err_len) != 0)
		goto out;
	if (is_dir && chat_template_check(&d->cfg, pin, err, err_len) != 0)
		goto out;
	if (is_dir) {
		if (import_files_list(dfd, real, f, &n, tok_name, err, err_len) != 0)
			goto out;
		snprintf(load, sizeof(load), "%s", pin);
		join3(tok_path, sizeof(tok_path), pin, tok_name);
	} else if (gguf) {
		/* the tokenizer is written beside it once the model has loaded */
		file_add(f, &n, dfd, real, base, "model.gguf");
		join3(load, sizeof(load), pin, base);
		strcpy(entry, "model.gguf");
		strcpy(tok_name, "tokenizer.gguf");
	} else {
		file_add(f, &n, dfd, real, base, "model.bin");
		if (tfd >= 0) {
			fte_dir_path(tfd, tpin, sizeof(tpin));
			file_add(f, &n, tfd, tok_real, tbase, "tokenizer.bin");
			join3(tok_path, sizeof(tok_path), tpin, tbase);
		} else if (present(dfd, "tokenizer.bin")) {
			file_add(f, &n, dfd, real, "tokenizer.bin", "tokenizer.bin");
			join3(tok_path, sizeof(tok_path), pin, "tokenizer.bin");
		} else {
			snprintf(err, err_len, "%s/%s: a llama2.c checkpoint needs its tokenizer.bin: "
			    "none beside it, name one with --tokenizer", real, base);
			goto out;
		}
		join3(load, sizeof(load), pin, base);
		strcpy(entry, "model.bin");
	}
	/* The engine's loaders check every size and offset before reading. */
	if (fte_model_load(load, &m) != FTE_OK) {
		snprintf(err, err_len, "not a loadable model: %s", fte_last_error());
		goto out;
	}
	if (gguf) {
		snprintf(shown, sizeof(shown), "%s/%s", real, base);
		if (gguf_sidecars(d, load, tmp, &tmpfd, f, &n, err, err_len) != 0 ||
		    chat_template_check(&d->cfg, tmp, err, err_len) != 0)
			goto out;
		if ((lineage = gguf_lineage(load, shown)) == NULL) {
			snprintf(err, err_len, "%s", fte_last_error());
			goto out;
		}
		join3(tok_path, sizeof(tok_path), tmp, "tokenizer.gguf");
	}
	if (fte_tokenizer_load(tok_path, &tok) != FTE_OK) {
		snprintf(err, err_len, "no usable tokenizer: %s", fte_last_error());
		goto out;
	}
	if (fte_tokenizer_vocab_size(tok) > fte_model_config(m)->vocab_size) {
		snprintf(err, err_len, "tokenizer has %d tokens but the model only %d",
		    fte_tokenizer_vocab_size(tok), fte_model_config(m)->vocab_size);
		goto out;
	}
	if (import_files_open(f, n, entry, err, err_len) != 0)
		goto out;
	code = model_insert(d, uid, name, MODEL_BASE, is_dir ? MODEL_HF : gguf ? MODEL_GGUF :
	    MODEL_LLAMA2C, fte_model_config(m), fte_model_num_params(m), entry, tok_name, 0, 0,
	    lineage, f, n, id, err, err_len);
	if (code == FT__CODE__OK)
		log_info("registry: uid %u imported %s as model %lld '%s'", uid, real,
		    (long long)*id, name);
out:
	if (code != FT__CODE__OK) {
		fs_unpin(err, err_len, pin, real);
		fs_unpin(err, err_len, tpin, tok_real);
	}
	import_files_close(f, n);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	free(f);
	free(lineage);
	if (dfd >= 0)
		close(dfd);
	if (tfd >= 0)
		close(tfd);
	if (tmpfd >= 0)
		close(tmpfd);
	if (tmp[0])
		fs_rm_rf(tmp);
	return code;
}

/* Registers the files of dfd (shown as dir) listed in f. */
static int
files_insert(struct ftuned *d, uint32_t uid, const char *name, enum model_kind kind,
    enum model_format format, const fte_config *c, uint64_t params, const char *entry,
    const char *tok_name, int64_t base_id, int64_t job_id, const char *lineage,
    struct import_file *f, size_t n, int64_t *id, char *err, size_t err_len)
{
	int rc = FT__CODE__INTERNAL;

	if (import_files_open(f, n, entry, err, err_len) == 0)
		rc = model_insert(d, uid, name, kind, format, c, params, entry, tok_name, base_id,
		    job_id, lineage, f, n, id, err, err_len);
	import_files_close(f, n);
	return rc;
}

int
registry_model_add(struct ftuned *d, uint32_t uid, const char *src_dir,
    const char *name, enum model_kind kind, int64_t base_id, int64_t job_id,
    const char *lineage, int64_t *id, char *err, size_t err_len)
{
	char tok_name[32];
	struct import_file *f = calloc(IMPORT_FILES_MAX, sizeof(*f));
	fte_model *m = NULL;
	size_t n = 0;
	int dfd = -1, rc = FT__CODE__INTERNAL;

	if (f == NULL || fte_dir_open(src_dir, &dfd) != FTE_OK) {
		snprintf(err, err_len, "%s", f == NULL ? "out of memory" : fte_last_error());
		free(f);
		return FT__CODE__INTERNAL;
	}
	if (import_files_list(dfd, src_dir, f, &n, tok_name, err, err_len) != 0)
		goto out;
	if (fte_model_load(src_dir, &m) != FTE_OK) {
		snprintf(err, err_len, "model in %s does not load: %s", src_dir, fte_last_error());
		goto out;
	}
	rc = files_insert(d, uid, name, kind, MODEL_HF, fte_model_config(m), fte_model_num_params(m),
	    ".", tok_name, base_id, job_id, lineage, f, n, id, err, err_len);
out:
	fte_model_free(m);
	free(f);
	close(dfd);
	return rc;
}

/* Lists a LoRA model's files: the adapter (in adfd), and the tokenizer
 * files of its base (in bfd, already in the store, so they are linked, not
 * copied). */
static void
adapter_files_list(int adfd, const char *adapter, int bfd, const struct model_info *base,
    struct import_file *f, size_t *n, char *tok_name)
{
	static const char *extra[] = {
		"tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
	};
	const char *slash = strrchr(adapter, '/');

	snprintf(f[0].src, PATH_MAX, "%s", adapter);
	f[0].dfd = adfd;
	snprintf(f[0].from, sizeof(f->from), "%s", slash ? slash + 1 : adapter);
	strcpy(f[0].name, REGISTRY_ADAPTER_FILE);
	*n = 1;
	snprintf(tok_name, 32, "%s", strrchr(base->tokenizer, '/') + 1);
	file_add(f, n, bfd, base->dir, tok_name, tok_name);
	/* tokenizer_config.json carries the chat template deploy.c serves */
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (present(bfd, extra[i]))
			file_add(f, n, bfd, base->dir, extra[i], extra[i]);
}

int
registry_adapter_add(struct ftuned *d, uint32_t uid, const char *adapter,
    const char *name, int64_t base_id, int64_t job_id, const char *lineage,
    int64_t *id, char *err, size_t err_len)
{
	char tok_name[32], idbuf[32], adir[PATH_MAX];
	struct import_file f[5];
	struct model_info base;
	fte_peft_adapter *a = NULL;
	uint64_t params;
	fte_config c;
	size_t n = 0;
	int rc, adfd = -1, bfd = -1;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)base_id);
	if (base_id <= 0 || registry_model_find(d, idbuf, &base) != 0) {
		snprintf(err, err_len, "the adapter's base model (id %s) no longer exists", idbuf);
		return FT__CODE__FAILED_PRECONDITION;
	}
	params = base.params;
	if (registry_model_config(&base, &c, err, err_len) != 0) {
		model_info_free(&base);
		return FT__CODE__INTERNAL;
	}
	if (fte_adapter_load(adapter, &c, &a) != FTE_OK) {
		snprintf(err, err_len, "adapter does not fit its base '%s': %s", base.name,
		    fte_last_error());
		model_info_free(&base);
		return FT__CODE__INTERNAL;
	}
	fte_adapter_free(a);
	snprintf(adir, sizeof(adir), "%s", adapter);
	*(strrchr(adir, '/') ? strrchr(adir, '/') : adir) = '\0';
	memset(f, 0, sizeof(f));
	if (fte_dir_open(adir[0] ? adir : "/", &adfd) != FTE_OK ||
	    fte_dir_open(base.dir, &bfd) != FTE_OK) {
		snprintf(err, err_len, "%s", fte_last_error());
		rc = FT__CODE__INTERNAL;
	} else {
		adapter_files_list(adfd, adapter, bfd, &base, f, &n, tok_name);
		rc = files_insert(d, uid, name, MODEL_TUNED, MODEL_LORA, &c, params, REGISTRY_ADAPTER_FILE,
		    tok_name, base_id, job_id, lineage, f, n, id, err, err_len);
	}
	if (adfd >= 0)
		close(adfd);
	if (bfd >= 0)
		close(bfd);
	model_info_free(&base);
	return rc;
}

static void
row_to_info(struct ftuned *d, sqlite3 *db, sqlite3_stmt *st, struct model_info *m)
{
	const char *s;
	sqlite3_stmt *fs;

	memset(m, 0, sizeof(*m));
	m->id = sqlite3_column_int64(st, 0);
	snprintf(m->name, sizeof(m->name), "%s", sqlite3_column_text(st, 1));
	m->owner_uid = (uint32_t)sqlite3_column_int64(st, 2);
	m->created_at = sqlite3_column_int64(st, 3);
	/* SQLite's CHECKs admit only known kinds and formats; arch is checked
	 * where it is used (registry_model_config) */
	m->kind = (enum model_kind)store_column_enum(st, 4, &ft__model_kind__descriptor);
	m->format = (enum model_format)store_column_enum(st, 5, &ft__model_format__descriptor);
	m->arch = (Ft__ModelArch)store_column_enum(st, 6, &ft__model_arch__descriptor);
	m->params = (uint64_t)sqlite3_column_int64(st, 7);
	m->config_json = strdup((const char *)sqlite3_column_text(st, 8));
	snprintf(m->dir, sizeof(m->dir), "%s/models/%lld", d->cfg.state_dir, (long long)m->id);
	s = (const char *)sqlite3_column_text(st, 9);
	if (strcmp(s, ".") == 0)
		snprintf(m->entry, sizeof(m->entry), "%s", m->dir);
	else
		snprintf(m->entry, sizeof(m->entry), "%s/%s", m->dir, s);
	snprintf(m->tokenizer, sizeof(m->tokenizer), "%s/%s", m->dir, sqlite3_column_text(st, 10));
	m->size = (uint64_t)sqlite3_column_int64(st, 11);
	m->base_id = sqlite3_column_int64(st, 12);
	m->job_id = sqlite3_column_int64(st, 13);
	m->lineage_json = strdup((const char *)sqlite3_column_text(st, 14));
	if (sqlite3_column_type(st, 15) != SQLITE_NULL)
		snprintf(m->base_name, sizeof(m->base_name), "%s", sqlite3_column_text(st, 15));
	if (sqlite3_prepare_v2(db, "SELECT name, hash, size, ino, mtime_ns, ctime_ns FROM model_files "
	    "WHERE model_id = ? "
	    "ORDER BY name", -1, &fs, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(fs, 1, m->id);
	while (sqlite3_step(fs) == SQLITE_ROW) {
		struct model_file *nf = realloc(m->files, (m->n_files + 1) * sizeof(*nf));

		if (nf == NULL)
			break;
		m->files = nf;
		snprintf(nf[m->n_files].name, sizeof(nf->name), "%s", sqlite3_column_text(fs, 0));
		snprintf(nf[m->n_files].hash, sizeof(nf->hash), "%s", sqlite3_column_text(fs, 1));
		nf[m->n_files].ino = sqlite3_column_int64(fs, 3);
		nf[m->n_files].mtime_ns = sqlite3_column_int64(fs, 4);
		nf[m->n_files].ctime_ns = sqlite3_column_int64(fs, 5);
		nf[m->n_files++].size = (uint64_t)sqlite3_column_int64(fs, 2);
	}
	sqlite3_finalize(fs);
}

#define MODEL_COLUMNS "m.id, m.name, m.owner_uid, m.created_at, m.kind, m.format, m.arch, " \
	"m.params, m.config, m.entry, m.tokenizer, m.size, m.base_id, m.job_id, m.lineage, b.name"
#define MODEL_FROM " FROM models m LEFT JOIN models b ON b.id = m.base_id "

int
registry_model_find(struct ftuned *d, const char *name_or_id, struct model_info *out)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	char *end;
	long long id = strtoll(name_or_id, &end, 10);
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT " MODEL_COLUMNS MODEL_FROM
	    "WHERE m.name = ? OR m.id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name_or_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, *name_or_id && *end == '\0' ? id : -1);
		if (sqlite3_step(st) == SQLITE_ROW) {
			row_to_info(d, db, st, out);
			rc = 0;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return rc;
}

int64_t
registry_model_of_job(struct ftuned *d, int64_t job_id)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int64_t id = 0;

	if (sqlite3_prepare_v2(db, "SELECT id FROM models WHERE job_id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, job_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return id;
}

int
registry_model_list(struct ftuned *d, struct model_info **out, size_t *n)
{
	sqlite3 *db = store_lock(d->store);
	struct model_info *list = NULL;
	sqlite3_stmt *st;
	size_t count = 0;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT " MODEL_COLUMNS MODEL_FROM "ORDER BY m.id", -1, &st,
	    NULL) == SQLITE_OK) {
		rc = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct model_info *nl = realloc(list, (count + 1) * sizeof(*nl));

			if (nl == NULL) {
				rc = -1;
				break;
			}
			list = nl;
			row_to_info(d, db, st, &list[count++]);
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	*out = list;
	*n = count;
	return rc;
}

static long long
count_rows(sqlite3 *db, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Deletes blobs that no model file names any more. */
static void
blobs_collect(struct ftuned *d, sqlite3 *db, const struct model_info *m)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < m->n_files; i++) {
		sqlite3_stmt *st;
		int used = 1;

		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM model_files WHERE hash = ?", -1, &st,
		    NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, m->files[i].hash, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			used = sqlite3_column_int(st, 0) > 0;
		sqlite3_finalize(st);
		if (!used) {
			snprintf(path, sizeof(path), "%s/blobs/%s", d->cfg.state_dir, m->files[i].hash);
			unlink(path);
		}
	}
}

int
registry_model_remove(struct ftuned *d, uint32_t uid, int admin, const char *name,
    int force, char *err, size_t err_len)
{
	struct model_info m;
	sqlite3_stmt *st;
	sqlite3 *db;
	long long jobs, children;
	char *adapters = NULL;
	int code = FT__CODE__OK;

	if (registry_model_find(d, name, &m) != 0) {
		snprintf(err, err_len, "no model '%s'", name);
		return FT__CODE__NOT_FOUND;
	}
	if (m.owner_uid != uid && !admin) {
		snprintf(err, err_len, "model '%s' belongs to uid %u", m.name, m.owner_uid);
		model_info_free(&m);
		return FT__CODE__PERMISSION_DENIED;
	}
	db = store_lock(d->store);
	jobs = jobs_active_with_model(db, m.id);
	children = count_rows(db, "SELECT count(*) FROM models WHERE base_id = ?", m.id);
	if (sqlite3_prepare_v2(db, "SELECT group_concat(name, ', ') FROM models WHERE base_id = ? "
	    "AND format = 'lora'", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, m.id);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			adapters = strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	if (jobs > 0) {
		/* A running job holds the files open; even force waits for it. */
		snprintf(err, err_len, "model '%s' is used by %lld queued or running job%s; cancel "
		    "them first", m.name, jobs, jobs == 1 ? "" : "s");
		code = FT__CODE__FAILED_PRECONDITION;
	} else if (adapters != NULL) {
		/* An adapter holds no weights of its own: removing its base
		 * would leave models that cannot run, so even force refuses. */
		snprintf(err, err_len, "the LoRA adapter%s %s run%s on '%s'; remove %s first",
		    strchr(adapters, ',') ? "s" : "", adapters, strchr(adapters, ',') ? "" : "s",
		    m.name, strchr(adapters, ',') ? "them" : "it");
		code = FT__CODE__FAILED_PRECONDITION;
	} else if (children > 0 && !force) {
		snprintf(err, err_len, "%lld tuned model%s derive from '%s'; remove them first or "
		    "use --force", children, children == 1 ? "" : "s", m.name);
		code = FT__CODE__FAILED_PRECONDITION;
	} else {
		/* Finished jobs and derived models keep their lineage JSON; only
		 * the row links to the removed model are cleared. */
		static const char *sql[] = {
			"UPDATE models SET base_id = NULL WHERE base_id = ?",
			"DELETE FROM models WHERE id = ?",
		};
		int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
		    jobs_unlink_model(db, m.id) == 0;

		for (size_t i = 0; ok && i < sizeof(sql) / sizeof(sql[0]); i++) {
			ok = sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) == SQLITE_OK;
			if (ok) {
				sqlite3_bind_int64(st, 1, m.id);
				ok = sqlite3_step(st) == SQLITE_DONE;
				sqlite3_finalize(st);
			}
		}
		if (!ok || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, err_len, "registry: %s", sqlite3_errmsg(db));
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			code = FT__CODE__INTERNAL;
		} else {
			fs_rm_rf(m.dir);
			blobs_collect(d, db, &m);
			log_info("registry: uid %u removed model %lld '%s'", uid, (long long)m.id, m.name);
		}
	}
	store_unlock(d->store);
	free(adapters);
	model_info_free(&m);
	return code;
}

/* Looks up the base of a LoRA model.  Rows are numbered in creation order
 * and a base exists before its adapters, so a base id below the model's
 * ends every chain.  0 or -1 with a message. */
static int
adapter_base_find(struct ftuned *d, const struct model_info *m, struct model_info *base,
    char *err, size_t err_len)
{
	char idbuf[32];

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)m->base_id);
	if (m->base_id <= 0 || m->base_id >= m->id || registry_model_find(d, idbuf, base) != 0) {
		snprintf(err, err_len, "the base model of LoRA adapter '%s' is missing from the "
		    "registry", m->name);
		return -1;
	}
	return 0;
}

static int
registry_model_verify_file(struct ftuned *d, const struct model_info *m,
    const struct model_file *mf, char *err, size_t err_len)
{
	char path[PATH_MAX + 200], hex[FS_HASH_HEX];
	uint64_t size;

	(void)d;
	snprintf(path, sizeof(path), "%s/%s", m->dir, mf->name);
	if (fs_hash_file(path, hex, &size, err, err_len) != 0)
		return -1;
	if (strcmp(hex, mf->hash) != 0 || size != mf->size) {
		snprintf(err, err_len, "%s: content does not match the registry's hash "
		    "(corrupted); re-import the model", path);
		return -1;
	}
	return 0;
}

int
registry_model_verify(struct ftuned *d, const struct model_info *m, char *err, size_t err_len)
{
	struct model_info base;
	int rc;

	for (size_t i = 0; i < m->n_files; i++)
		if (registry_model_verify_file(d, m, &m->files[i], err, err_len) != 0)
			return -1;
	if (m->format != MODEL_LORA)
		return 0;
	if (adapter_base_find(d, m, &base, err, err_len) != 0)
		return -1;
	rc = registry_model_verify(d, &base, err, err_len);
	model_info_free(&base);
	return rc;
}

/* ctime_record notes the ctime a file was last verified at. */
static void
ctime_record(struct ftuned *d, const struct model_info *m, const struct model_file *mf,
    int64_t ctime_ns)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "UPDATE model_files SET ctime_ns = ? WHERE model_id = ? AND "
	    "name = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, ctime_ns);
		sqlite3_bind_int64(st, 2, m->id);
		sqlite3_bind_text(st, 3, mf->name, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
}

/* model_files_check compares each file of m's directory with what was
 * recorded when it was stored: a regular file, read-only, of the same
 * inode, size and mtime.  Writing a file, or changing its mode or times,
 * moves its ctime, which nobody but root can set back; so does a new hard
 * link (another model sharing the blob), so a ctime that moved means a
 * rehash, not a refusal, and the new ctime is kept when the hash still
 * matches.  Rows stored before these were recorded (inode 0) are rehashed.
 * Cheap (one fstat per file), so it runs before every load.  0 or -1. */
static int
model_files_check(struct ftuned *d, const struct model_info *m, char *err, size_t err_len)
{
	int dfd, rc = 0;

	if (fte_dir_open(m->dir, &dfd) != FTE_OK) {
		snprintf(err, err_len, "model '%s': %s", m->name, fte_last_error());
		return -1;
	}
	for (size_t i = 0; i < m->n_files && rc == 0; i++) {
		const struct model_file *mf = &m->files[i];
		struct stat st;
		int fd;

		if (mf->ino == 0) {
			rc = registry_model_verify_file(d, m, mf, err, err_len);
			continue;
		}
		if (fte_file_openat(dfd, mf->name, &fd) != FTE_OK) {
			snprintf(err, err_len, "model '%s': %s", m->name, fte_last_error());
			rc = -1;
			break;
		}
		if (fstat(fd, &st) != 0 || (st.st_mode & 0222) != 0 || (int64_t)st.st_ino != mf->ino ||
		    (uint64_t)st.st_size != mf->size || ns_of(st.st_mtim) != mf->mtime_ns ||
		    (ns_of(st.st_ctim) != mf->ctime_ns &&
		    registry_model_verify_file(d, m, mf, err, err_len) != 0)) {
			snprintf(err, err_len, "model '%s': %s was changed after it was stored "
			    "(its mode, inode, size, time or content differ); it is not used. Remove "
			    "the model and import it again", m->name, mf->name);
			rc = -1;
		} else if (ns_of(st.st_ctim) != mf->ctime_ns) {
			ctime_record(d, m, mf, ns_of(st.st_ctim));
		}
		close(fd);
	}
	close(dfd);
	return rc;
}

int
registry_model_load(struct ftuned *d, const struct model_info *m, fte_model **out,
    char *err, size_t err_len)
{
	struct model_info base;
	fte_peft_adapter *a = NULL;
	fte_model *bm = NULL;
	int rc;

	if (model_files_check(d, m, err, err_len) != 0)
		return -1;
	if (m->format != MODEL_LORA) {
		if (fte_model_load(m->entry, out) != FTE_OK) {
			snprintf(err, err_len, "loading %s: %s", m->name, fte_last_error());
			return -1;
		}
		return 0;
	}
	if (adapter_base_find(d, m, &base, err, err_len) != 0)
		return -1;
	rc = registry_model_load(d, &base, &bm, err, err_len);
	model_info_free(&base);
	if (rc != 0)
		return -1;
	if (fte_adapter_load(m->entry, fte_model_config(bm), &a) != FTE_OK ||
	    fte_adapter_apply(bm, a) != FTE_OK) {
		snprintf(err, err_len, "loading %s: %s", m->name, fte_last_error());
		fte_adapter_free(a);
		fte_model_free(bm);
		return -1;
	}
	fte_adapter_free(a);
	*out = bm;
	return 0;
}

int
registry_adapter_attach(struct ftuned *d, const struct model_info *m, const fte_model *base,
    fte_model **out, char *err, size_t err_len)
{
	fte_peft_adapter *a = NULL;
	int rc;

	if (model_files_check(d, m, err, err_len) != 0)
		return -1;
	rc = fte_adapter_load(m->entry, fte_model_config(base), &a) == FTE_OK &&
	    fte_adapter_attach(base, a, out) == FTE_OK ? 0 : -1;
	if (rc != 0)
		snprintf(err, err_len, "loading %s: %s", m->name, fte_last_error());
	fte_adapter_free(a);
	return rc;
}

void
model_info_free(struct model_info *m)
{
	free(m->config_json);
	free(m->lineage_json);
	free(m->files);
	m->config_json = m->lineage_json = NULL;
	m->files = NULL;
}

char *
registry_model_hashes_json(const struct model_info *m)
{
	json_t *o = json_object();
	char *s;

	for (size_t i = 0; i < m->n_files; i++)
		json_object_set_new(o, m->files[i].name, json_string(m->files[i].hash));
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

int
registry_model_config(const struct model_info *m, fte_config *out, char *err, size_t err_len)
{
	json_error_t jerr;
	json_t *j = json_loads(m->config_json, 0, &jerr);
	const char *arch = NULL, *rope = NULL;
	double eps = 0, theta = 0, qs = 0, acap = 0, fcap = 0, ltheta = 0;
	int tied = 0, qkv = 0, qk_norm = 0, wire;
	fte_config c;

	memset(&c, 0, sizeof(c));
	/* qkv_bias and qk_norm are in records written before the architecture
	 * table named Qwen2 and Qwen3; the attention's numbers are absent from
	 * records written before Gemma */
	if (j == NULL || json_unpack(j, "{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:F,s:F,s:s,s:b,s?b,"
	    "s?b,s:i,s:i,s?i,s?i,s?F,s?F,s?F,s?F}",
	    "arch", &arch, "n_layers", &c.n_layers, "dim", &c.dim, "n_heads", &c.n_heads,
	    "n_kv_heads", &c.n_kv_heads, "head_dim", &c.head_dim, "ffn_dim", &c.ffn_dim,
	    "vocab_size", &c.vocab_size, "max_seq_len", &c.max_seq_len, "norm_eps", &eps,
	    "rope_theta", &theta, "rope_style", &rope, "tied_embeddings", &tied,
	    "qkv_bias", &qkv, "qk_norm", &qk_norm, "bos_id", &c.bos_id, "eos_id", &c.eos_id,
	    "sliding_window", &c.sliding_window, "sliding_pattern", &c.sliding_pattern,
	    "query_scale", &qs, "attn_softcap", &acap, "final_softcap", &fcap,
	    "rope_local_theta", &ltheta) != 0) {
		snprintf(err, err_len, "model '%s': its configuration record is unreadable: %s",
		    m->name, j == NULL ? jerr.text : "a field is missing or of the wrong type");
		json_decref(j);
		return -1;
	}
	/* A value this build does not know is refused, never read as another. */
	if (ft_enum_parse(&ft__model_arch__descriptor, arch, &wire) != 0 ||
	    (c.arch = registry_arch_engine((Ft__ModelArch)wire)) == 0) {
		char words[128];

		snprintf(err, err_len, "model '%s': architecture '%.32s' is not one this ftuned "
		    "runs (%s)", m->name, arch, ft_enum_words(&ft__model_arch__descriptor, ", ", words,
		    sizeof(words)));
		json_decref(j);
		return -1;
	}
	/* records written before the table name Qwen's rows by their features */
	if (c.arch == FTE_ARCH_LLAMA && qkv)
		c.arch = FTE_ARCH_QWEN2;
	if (c.arch == FTE_ARCH_LLAMA && qk_norm)
		c.arch = FTE_ARCH_QWEN3;
	c.query_scale = (float)qs;
	c.attn_softcap = (float)acap;
	c.final_softcap = (float)fcap;
	c.rope_local_theta = (float)ltheta;
	if (strcmp(rope, "interleaved") != 0 && strcmp(rope, "half") != 0) {
		snprintf(err, err_len, "model '%s': RoPE style '%.32s' is not interleaved or half",
		    m->name, rope);
		json_decref(j);
		return -1;
	}
	c.rope_style = strcmp(rope, "interleaved") == 0 ? FTE_ROPE_INTERLEAVED : FTE_ROPE_HALF;
	c.norm_eps = (float)eps;
	c.rope_theta = (float)theta;
	c.tied_embeddings = tied;
	json_decref(j);
	*out = c;
	return 0;
}

/* ---- reply objects ---- */

int
registry_model_proto(struct arena *a, const struct model_info *m, Ft__ModelInfo **out)
{
	Ft__ModelInfo *p = arena_alloc(a, sizeof(*p));
	const char *tok = strrchr(m->tokenizer, '/');

	if (p == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__model_info__init(p);
	p->id = m->id;
	p->name = arena_strdup(a, m->name);
	p->kind = (Ft__ModelKind)m->kind;
	p->format = (Ft__ModelFormat)m->format;
	p->arch = m->arch;
	p->params = m->params;
	p->config_json = arena_strdup(a, m->config_json);
	p->owner_uid = m->owner_uid;
	p->created_at = m->created_at;
	p->size = m->size;
	p->base_model = arena_strdup(a, m->base_name);
	p->base_id = m->base_id;
	p->job_id = m->job_id;
	p->lineage_json = arena_strdup(a, m->lineage_json);
	p->tokenizer = arena_strdup(a, tok ? tok + 1 : m->tokenizer);
	p->files = arena_alloc(a, (m->n_files + 1) * sizeof(*p->files));
	if (p->name == NULL || p->config_json == NULL || p->base_model == NULL || p->lineage_json == NULL ||
	    p->tokenizer == NULL || p->files == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < m->n_files; i++) {
		Ft__ModelFile *f = arena_alloc(a, sizeof(*f));

		if (f == NULL)
			return FT__CODE__RESOURCE_EXHAUSTED;
		ft__model_file__init(f);
		f->name = arena_strdup(a, m->files[i].name);
		f->blake2b = arena_strdup(a, m->files[i].hash);
		f->size = m->files[i].size;
		if (f->name == NULL || f->blake2b == NULL)
			return FT__CODE__RESOURCE_EXHAUSTED;
		p->files[p->n_files++] = f;
	}
	*out = p;
	return FT__CODE__OK;
}

int
registry_list_reply(struct ftuned *d, struct arena *a, Ft__ModelListReply **out)
{
	Ft__ModelListReply *r = arena_alloc(a, sizeof(*r));
	struct model_info *list;
	size_t n;
	int code = FT__CODE__OK;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (registry_model_list(d, &list, &n) != 0)
		return FT__CODE__INTERNAL;
	ft__model_list_reply__init(r);
	if ((r->models = arena_alloc(a, (n + 1) * sizeof(*r->models))) == NULL)
		code = FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < n; i++) {
		if (code == FT__CODE__OK &&
		    (code = registry_model_proto(a, &list[i], &r->models[r->n_models])) == FT__CODE__OK)
			r->n_models++;
		model_info_free(&list[i]);
	}
	free(list);
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}

int
registry_model_config_dir(struct ftuned *d, const struct model_info *m, char *dir, size_t len)
{
	struct model_info base;
	char err[160];
	int rc;

	if (m->format != MODEL_LORA) {
		snprintf(dir, len, "%s", m->dir);
		return 0;
	}
	if (adapter_base_find(d, m, &base, err, sizeof(err)) != 0)
		return -1;
	rc = registry_model_config_dir(d, &base, dir, len);
	model_info_free(&base);
	return rc;
}
