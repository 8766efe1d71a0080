/*
 * ftengine_io.c - the model-format subcommands of ftengine:
 *
 *   ftengine inspect --model PATH [--json]
 *       PATH: a Hugging Face directory or llama2.c checkpoint (configuration
 *       and canonical tensors), a .safetensors file or a GGUF file (its
 *       header: tensors, dtypes, shapes, metadata).
 *   ftengine export --model PATH --format hf|gguf|ollama [--dtype f32|f16|bf16|q8_0|q4_k_m]
 *       [--tokenizer PATH] --out PATH
 *       hf writes a directory (tokenizer files copied from --tokenizer or the
 *       model directory); gguf a single file with the vocabulary of
 *       --tokenizer (default: the model directory's tokenizer.json, a GGUF
 *       model's own vocabulary, or the tokenizer.bin beside a llama2.c
 *       checkpoint); ollama a directory of
 *       model.gguf and its Modelfile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "ftengine.h"

/* opt_get returns the value of --name, "" for a present flag, or NULL;
 * any word that is not a known option is a usage error (*bad set). */
static const char *
opt_get(int argc, char **argv, const char *name, int flag, int *bad)
{
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0 || strcmp(argv[i] + 2, name) != 0)
			continue;
		if (flag)
			return "";
		if (i + 1 >= argc) {
			fprintf(stderr, "ftengine %s: --%s needs a value\n", argv[0], name);
			*bad = 1;
			return NULL;
		}
		return argv[i + 1];
	}
	return NULL;
}

/* opts_check: every word is a known --option (flags end in '!'). */
static int
opts_check(int argc, char **argv, const char *const *known)
{
	for (int i = 1; i < argc; i++) {
		int ok = 0, flag = 0;
		for (const char *const *k = known; *k != NULL && !ok; k++) {
			size_t n = strlen(*k);
			flag = (*k)[n - 1] == '!';
			ok = strncmp(argv[i], "--", 2) == 0 &&
			    strlen(argv[i] + 2) == n - (size_t)flag &&
			    strncmp(argv[i] + 2, *k, n - (size_t)flag) == 0;
		}
		if (!ok) {
			fprintf(stderr, "ftengine %s: unexpected argument '%s'\n", argv[0], argv[i]);
			return 0;
		}
		i += !flag;
	}
	return 1;
}

static int
file_magic(const char *path, char magic[4])
{
	FILE *fp = fopen(path, "rb");
	int ok = fp != NULL && fread(magic, 1, 4, fp) == 4;

	if (fp != NULL)
		fclose(fp);
	return ok;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static json_t *
shape_json(int ndim, const int64_t *shape)
{
	json_t *a = json_array();

	for (int d = 0; d < ndim; d++)
		json_array_append_new(a, json_integer(shape[d]));
	return a;
}

static void
shape_print(int ndim, const int64_t *shape)
{
	printf("[");
	for (int d = 0; d < ndim; d++)
		printf("%s%lld", d ? ", " : "", (long long)shape[d]);
	printf("]");
}

static json_t *
inspect_safetensors(const char *path, int json)
{
	fte_st_file *f;
	json_t *out, *tensors;
	size_t total = 0;

	if (fte_st_open(path, &f) != FTE_OK)
		return NULL;
	out = json_pack("{s:s,s:s,s:i}", "path", path, "format", "safetensors",
	    "tensors_count", f->n_tensors);
	tensors = json_array();
	if (!json)
		printf("%s: safetensors, %d tensors\n", path, f->n_tensors);
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_st_tensor *t = &f->tensors[i];
		total += t->numel;
		json_array_append_new(tensors, json_pack("{s:s,s:s,s:o}", "name", t->name,
		    "dtype", fte_st_dtype_name(t->dtype), "shape", shape_json(t->ndim, t->shape)));
		if (!json) {
			printf("  %-56s %-5s ", t->name, fte_st_dtype_name(t->dtype));
			shape_print(t->ndim, t->shape);
			printf("\n");
		}
	}
	if (f->metadata != NULL)
		json_object_set(out, "metadata", f->metadata);
	if (!json && f->metadata != NULL) {
		const char *k;
		json_t *v;
		json_object_foreach(f->metadata, k, v)
			printf("  metadata %s = %s\n", k, json_string_value(v));
	}
	if (!json)
		printf("  %zu values\n", total);
	json_object_set_new(out, "values", json_integer((json_int_t)total));
	json_object_set_new(out, "tensors", tensors);
	fte_st_close(f);
	return out;
}

/* utf8_json makes a JSON string, or a marker when the bytes are not UTF-8. */
static json_t *
utf8_json(const char *s, uint64_t len)
{
	json_t *j = json_stringn(s, (size_t)len);

	return j != NULL ? j : json_string("(invalid UTF-8)");
}

/* gguf_value_json renders a KV: scalars as numbers/strings, arrays by their
 * length and first few elements. */
static json_t *
gguf_value_json(const fte_gguf_kv *kv)
{
	uint64_t len;
	const char *s;

	if (kv->type == FTE_GGUF_STRING) {
		s = fte_gguf_kv_str(kv, 0, &len);
		return utf8_json(s, len);
	}
	if (kv->type == FTE_GGUF_ARRAY) {
		json_t *first = json_array();
		for (uint64_t i = 0; i < kv->n && i < 5; i++) {
			if (kv->arr_type == FTE_GGUF_STRING) {
				s = fte_gguf_kv_str(kv, i, &len);
				json_array_append_new(first, utf8_json(s, len));
			} else {
				json_array_append_new(first, json_real(fte_gguf_kv_arr_num(kv, i)));
			}
		}
		return json_pack("{s:I,s:o}", "count", (json_int_t)kv->n, "first", first);
	}
	if (kv->type == FTE_GGUF_FLOAT32)
		return fte__json_float((float)fte_gguf_kv_float(kv));
	if (kv->type == FTE_GGUF_FLOAT64)
		return json_real(fte_gguf_kv_float(kv));
	if (kv->type == FTE_GGUF_BOOL)
		return json_boolean(fte_gguf_kv_int(kv));
	return json_integer(fte_gguf_kv_int(kv));
}

static json_t *
inspect_gguf(const char *path, int json)
{
	fte_gguf_file *f;
	json_t *out, *meta = json_object(), *tensors = json_array();

	if (fte_gguf_open(path, &f) != FTE_OK) {
		json_decref(meta);
		json_decref(tensors);
		return NULL;
	}
	if (!json)
		printf("%s: GGUF v%u, %d metadata keys, %d tensors\n", path, f->version,
		    f->n_kv, f->n_tensors);
	for (int i = 0; i < f->n_kv; i++) {
		json_t *v = gguf_value_json(&f->kv[i]);
		if (!json) {
			char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
			printf("  %-42s %s\n", f->kv[i].key, text ? text : "?");
			free(text);
		}
		json_object_set_new(meta, f->kv[i].key, v);
	}
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_gguf_tensor *t = &f->tensors[i];
		json_array_append_new(tensors, json_pack("{s:s,s:i,s:o,s:I}", "name", t->name,
		    "ggml_type", t->type, "ne", shape_json(t->ndim, t->ne),
		    "offset", (json_int_t)t->offset));
		if (!json) {
			printf("  %-40s type %-2d ne ", t->name, t->type);
			shape_print(t->ndim, t->ne);
			printf("\n");
		}
	}
	out = json_pack("{s:s,s:s,s:i,s:o,s:o}", "path", path, "format", "gguf",
	    "version", (int)f->version, "metadata", meta, "tensors", tensors);
	fte_gguf_close(f);
	return out;
}

static json_t *
inspect_model(const char *path, int json)
{
	fte_model *m;
	const fte_config *c;
	json_t *out, *tensors = json_array();
	struct stat st;

	if (fte_model_load(path, &m) != FTE_OK) {
		json_decref(tensors);
		return NULL;
	}
	c = fte_model_config(m);
	out = json_pack("{s:s,s:s,s:{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:s,s:b,s:i,s:i,"
	    "s:o,s:o,s:o,s:o,s:i,s:i},s:I}",
	    "path", path,
	    "format", stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? "hf" : "llama2c",
	    "config",
	    "arch", fte_arch_get(c->arch)->name,
	    "n_layers", c->n_layers, "dim", c->dim, "n_heads", c->n_heads,
	    "n_kv_heads", c->n_kv_heads, "head_dim", c->head_dim, "ffn_dim", c->ffn_dim,
	    "vocab_size", c->vocab_size, "max_seq_len", c->max_seq_len,
	    "norm_eps", fte__json_float(c->norm_eps), "rope_theta", fte__json_float(c->rope_theta),
	    "rope_style", c->rope_style == FTE_ROPE_INTERLEAVED ? "interleaved" : "half",
	    "tied_embeddings", c->tied_embeddings, "bos_id", c->bos_id, "eos_id", c->eos_id,
	    "rope_local_theta", fte__json_float(c->rope_local_theta),
	    "query_scale", fte__json_float(c->query_scale),
	    "attn_softcap", fte__json_float(c->attn_softcap),
	    "final_softcap", fte__json_float(c->final_softcap),
	    "sliding_window", c->sliding_window, "sliding_pattern", c->sliding_pattern,
	    "params", (json_int_t)fte_model_num_params(m));
	if (!json) {
		printf("%s: %s model, %s, %zu parameters\n", path,
		    json_string_value(json_object_get(out, "format")),
		    fte_arch_get(c->arch)->title, fte_model_num_params(m));
		printf("  layers %d  dim %d  heads %d  kv_heads %d  head_dim %d  ffn %d  vocab %d  context %d\n",
		    c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim,
		    c->vocab_size, c->max_seq_len);
		printf("  norm_eps %g", (double)c->norm_eps);
		if (fte_arch_get(c->arch)->rope)
			printf("  rope_theta %g  rope %s", (double)c->rope_theta,
			    c->rope_style == FTE_ROPE_INTERLEAVED ? "interleaved" : "half");
		if (c->rope_dim > 0)
			printf("  rope_dim %d", c->rope_dim);
		if (c->sliding_window > 0 && c->sliding_pattern > 0)
			printf("  window %d (1 layer in %d global)", c->sliding_window, c->sliding_pattern);
		else if (c->sliding_window > 0)
			printf("  window %d", c->sliding_window);
		if (c->rope_local_theta > 0)
			printf("  local rope_theta %g", (double)c->rope_local_theta);
		if (c->query_scale > 0)
			printf("  query_scale %g", (double)c->query_scale);
		if (c->attn_softcap > 0 || c->final_softcap > 0)
			printf("  softcap %g/%g", (double)c->attn_softcap, (double)c->final_softcap);
		printf("  tied %d  bos %d  eos %d\n", c->tied_embeddings, c->bos_id, c->eos_id);
	}
	for (int i = 0; i < fte_model_num_tensors(m); i++) {
		fte_tensor *t = fte_model_tensor(m, i);
		json_array_append_new(tensors, json_pack("{s:s,s:o}", "name", t->name,
		    "shape", shape_json(t->ndim, t->shape)));
		if (!json) {
			printf("  %-36s ", t->name);
			shape_print(t->ndim, t->shape);
			printf("\n");
		}
	}
	json_object_set_new(out, "tensors", tensors);
	fte_model_free(m);
	return out;
}

int
ftengine_inspect(int argc, char **argv)
{
	static const char *const known[] = {"model", "json!", NULL};
	int bad = 0, json;
	const char *path;
	char magic[4];
	json_t *out;

	if (!opts_check(argc, argv, known))
		return 2;
	path = opt_get(argc, argv, "model", 0, &bad);
	json = opt_get(argc, argv, "json", 1, &bad) != NULL;
	if (bad || path == NULL) {
		fprintf(stderr, "usage: ftengine inspect --model PATH [--json]\n");
		return 2;
	}
	if (file_magic(path, magic) && memcmp(magic, "GGUF", 4) == 0)
		out = inspect_gguf(path, json);
	else if (ends_with(path, ".safetensors"))
		out = inspect_safetensors(path, json);
	else
		out = inspect_model(path, json);
	if (out == NULL) {
		fprintf(stderr, "ftengine inspect: %s\n", fte_last_error());
		return 1;
	}
	if (json) {
		char *text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(9));
		printf("%s\n", text);
		free(text);
	}
	json_decref(out);
	return 0;
}

static int
gguf_magic(const char *path)
{
	char magic[4];
	FILE *fp;
	int yes;

	if (fte__fopen(path, &fp) != FTE_OK)
		return 0;
	yes = fread(magic, 1, 4, fp) == 4 && memcmp(magic, "GGUF", 4) == 0;
	fclose(fp);
	return yes;
}

/* vocab_default: --tokenizer, else the model directory, else a GGUF
 * model's own vocabulary, else tokenizer.bin beside a llama2.c checkpoint. */
static int
vocab_default(const char *model, const char *given, fte_vocab **out)
{
	char path[4096];
	struct stat st;
	const char *slash;

	if (given != NULL)
		return fte_vocab_load(given, out);
	if (stat(model, &st) == 0 && S_ISDIR(st.st_mode))
		return fte_vocab_load(model, out);
	/* a GGUF model carries its vocabulary */
	if (gguf_magic(model))
		return fte_vocab_load(model, out);
	slash = strrchr(model, '/');
	snprintf(path, sizeof(path), "%.*stokenizer.bin", slash ? (int)(slash - model + 1) : 0, model);
	return fte_vocab_load(path, out);
}

int
ftengine_export(int argc, char **argv)
{
	static const char *const known[] = {"model", "format", "dtype", "tokenizer", "out", "json!", NULL};
	const char *model, *format, *dtype_s, *tok, *out;
	int bad = 0, dtype, rc;
	fte_model *m = NULL;
	struct stat st;

	if (!opts_check(argc, argv, known))
		return 2;
	model = opt_get(argc, argv, "model", 0, &bad);
	format = opt_get(argc, argv, "format", 0, &bad);
	dtype_s = opt_get(argc, argv, "dtype", 0, &bad);
	tok = opt_get(argc, argv, "tokenizer", 0, &bad);
	out = opt_get(argc, argv, "out", 0, &bad);
	dtype = dtype_s == NULL || strcmp(dtype_s, "f32") == 0 ? FTE_DTYPE_F32 :
	    strcmp(dtype_s, "f16") == 0 ? FTE_DTYPE_F16 :
	    strcmp(dtype_s, "bf16") == 0 ? FTE_DTYPE_BF16 :
	    strcmp(dtype_s, "q8_0") == 0 ? FTE_DTYPE_Q8_0 :
	    strcmp(dtype_s, "q4_k_m") == 0 ? FTE_DTYPE_Q4_K_M : -1;
	if (bad || model == NULL || out == NULL || format == NULL || dtype < 0 ||
	    (strcmp(format, "hf") != 0 && strcmp(format, "gguf") != 0 && strcmp(format, "ollama") != 0) ||
	    (strcmp(format, "hf") != 0 && dtype == FTE_DTYPE_BF16) ||
	    (strcmp(format, "hf") == 0 && dtype > FTE_DTYPE_BF16)) {
		fprintf(stderr, "usage: ftengine export --model PATH --format hf|gguf|ollama "
		    "[--dtype f32|f16|bf16|q8_0|q4_k_m (bf16: hf only; q8_0, q4_k_m: gguf, ollama)] "
		    "[--tokenizer PATH] --out PATH [--json]\n");
		return 2;
	}
	if (fte_model_load(model, &m) != FTE_OK) {
		fprintf(stderr, "ftengine export: %s\n", fte_last_error());
		return 1;
	}
	if (strcmp(format, "hf") == 0) {
		/* the model's own directory carries its tokenizer files */
		if (tok == NULL && stat(model, &st) == 0 && S_ISDIR(st.st_mode))
			tok = model;
		rc = fte_hf_save_dtype(m, tok, out, dtype);
	} else {
		fte_vocab *v = NULL;
		char gguf[4096], mf[4096];
		int ollama = strcmp(format, "ollama") == 0;
		/* ollama: a folder of model.gguf and its Modelfile */
		snprintf(gguf, sizeof(gguf), ollama ? "%s/model.gguf" : "%s", out);
		snprintf(mf, sizeof(mf), "%s/Modelfile", out);
		rc = vocab_default(model, tok, &v);
		if (rc == FTE_OK && ollama && mkdir(out, 0755) != 0)
			rc = fte_error_set(FTE_EIO, "%s: cannot create: %s", out, strerror(errno));
		if (rc == FTE_OK)
			rc = fte_gguf_save(m, v, gguf, dtype);
		if (rc == FTE_OK && ollama)
			rc = fte_gguf_modelfile(v, "model.gguf", mf);
		fte_vocab_free(v);
	}
	fte_model_free(m);
	if (rc != FTE_OK) {
		fprintf(stderr, "ftengine export: %s\n", fte_last_error());
		return 1;
	}
	if (opt_get(argc, argv, "json", 1, &bad) != NULL) {
		json_t *j = json_pack("{s:s,s:s,s:s}", "out", out, "format", format,
		    "dtype", dtype_s ? dtype_s : "f32");
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		printf("%s\n", text ? text : "{}");
		free(text);
		json_decref(j);
	} else
		printf("wrote %s (%s, %s)\n", out, format, dtype_s ? dtype_s : "f32");
	return 0;
}
