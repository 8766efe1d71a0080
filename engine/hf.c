/*
 * hf.c - Hugging Face model directories: config.json plus model.safetensors
 * (or shards listed in model.safetensors.index.json), read into the canonical
 * layout of fte_model.h and written back.
 *
 * Every family of the architecture table (fte_arch_info.hf_arch): Llama,
 * Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3 (text), Phi-3 and GPT-2, each
 * read with the config keys that change its numbers (any such key the
 * engine does not compute is refused by name).  GPT-2 stores its linear
 * layers as Conv1D (in, out) and packs q, k and v into one c_attn; Phi-3
 * fuses q, k, v into qkv_proj and gate, up into gate_up_proj; all are undone
 * on load and redone on save.  HF Llama q/k rows are in rotate-half order, so
 * the model keeps rope_style FTE_ROPE_HALF; a llama2.c model (interleaved
 * RoPE) is saved with its q/k rows permuted into rotate-half order, as
 * transformers' convert_llama_weights_to_hf.py does.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"

enum hf_xform {
	HF_COPY,      /* same layout */
	HF_T,         /* Conv1D (in, out) <-> canonical (out, in) */
	HF_QKV_W,     /* one third of c_attn.weight, transposed */
	HF_QKV_B,     /* one third of c_attn.bias */
	HF_ROWS,      /* rows of a fused tensor (Phi-3), member part of its group */
};

/* Canonical name -> HF name, by enum fte_hf_layout.  A NULL entry means the
 * layout has no such tensor.  part selects q, k or v inside GPT-2's c_attn,
 * or the member of a fused Phi-3 tensor (hf_fused). */
#define HF_NLAYOUT 4
static const struct hf_name {
	const char *canon;
	const char *name[HF_NLAYOUT];   /* llama, gpt2, gemma, phi3 */
	int gpt2_xform, phi3_xform;
	int part;
} hf_layer_names[] = {
	{"attn_norm.weight", {"input_layernorm.weight", "ln_1.weight", "input_layernorm.weight",
	    "input_layernorm.weight"}, HF_COPY, HF_COPY, 0},
	{"attn_norm.bias", {NULL, "ln_1.bias", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"attn.wq.weight", {"self_attn.q_proj.weight", "attn.c_attn.weight", "self_attn.q_proj.weight",
	    "self_attn.qkv_proj.weight"}, HF_QKV_W, HF_ROWS, 0},
	{"attn.wq.bias", {"self_attn.q_proj.bias", "attn.c_attn.bias", NULL, NULL}, HF_QKV_B, HF_COPY, 0},
	{"attn.wk.weight", {"self_attn.k_proj.weight", "attn.c_attn.weight", "self_attn.k_proj.weight",
	    "self_attn.qkv_proj.weight"}, HF_QKV_W, HF_ROWS, 1},
	{"attn.wk.bias", {"self_attn.k_proj.bias", "attn.c_attn.bias", NULL, NULL}, HF_QKV_B, HF_COPY, 1},
	{"attn.wv.weight", {"self_attn.v_proj.weight", "attn.c_attn.weight", "self_attn.v_proj.weight",
	    "self_attn.qkv_proj.weight"}, HF_QKV_W, HF_ROWS, 2},
	{"attn.wv.bias", {"self_attn.v_proj.bias", "attn.c_attn.bias", NULL, NULL}, HF_QKV_B, HF_COPY, 2},
	{"attn.wo.weight", {"self_attn.o_proj.weight", "attn.c_proj.weight", "self_attn.o_proj.weight",
	    "self_attn.o_proj.weight"}, HF_T, HF_COPY, 0},
	{"attn.wo.bias", {NULL, "attn.c_proj.bias", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"attn.q_norm.weight", {"self_attn.q_norm.weight", NULL, "self_attn.q_norm.weight", NULL},
	    HF_COPY, HF_COPY, 0},
	{"attn.k_norm.weight", {"self_attn.k_norm.weight", NULL, "self_attn.k_norm.weight", NULL},
	    HF_COPY, HF_COPY, 0},
	/* Gemma's post_attention_layernorm norms the attention output; in
	 * Llama's naming it is the MLP's input norm */
	{"attn_post_norm.weight", {NULL, NULL, "post_attention_layernorm.weight", NULL},
	    HF_COPY, HF_COPY, 0},
	{"ffn_norm.weight", {"post_attention_layernorm.weight", "ln_2.weight",
	    "pre_feedforward_layernorm.weight", "post_attention_layernorm.weight"}, HF_COPY, HF_COPY, 0},
	{"ffn_norm.bias", {NULL, "ln_2.bias", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"ffn.w1.weight", {"mlp.gate_proj.weight", NULL, "mlp.gate_proj.weight",
	    "mlp.gate_up_proj.weight"}, HF_COPY, HF_ROWS, 0},
	{"ffn.w3.weight", {"mlp.up_proj.weight", NULL, "mlp.up_proj.weight",
	    "mlp.gate_up_proj.weight"}, HF_COPY, HF_ROWS, 1},
	{"ffn.w2.weight", {"mlp.down_proj.weight", NULL, "mlp.down_proj.weight",
	    "mlp.down_proj.weight"}, HF_COPY, HF_COPY, 0},
	{"ffn.fc.weight", {NULL, "mlp.c_fc.weight", NULL, NULL}, HF_T, HF_COPY, 0},
	{"ffn.fc.bias", {NULL, "mlp.c_fc.bias", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"ffn.proj.weight", {NULL, "mlp.c_proj.weight", NULL, NULL}, HF_T, HF_COPY, 0},
	{"ffn.proj.bias", {NULL, "mlp.c_proj.bias", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"ffn_post_norm.weight", {NULL, NULL, "post_feedforward_layernorm.weight", NULL},
	    HF_COPY, HF_COPY, 0},
}, hf_top_names[] = {
	{"tok_embeddings.weight", {"model.embed_tokens.weight", "transformer.wte.weight",
	    "model.embed_tokens.weight", "model.embed_tokens.weight"}, HF_COPY, HF_COPY, 0},
	{"pos_embeddings.weight", {NULL, "transformer.wpe.weight", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"norm.weight", {"model.norm.weight", "transformer.ln_f.weight", "model.norm.weight",
	    "model.norm.weight"}, HF_COPY, HF_COPY, 0},
	{"norm.bias", {NULL, "transformer.ln_f.bias", NULL, NULL}, HF_COPY, HF_COPY, 0},
	{"output.weight", {"lm_head.weight", "lm_head.weight", "lm_head.weight", "lm_head.weight"},
	    HF_COPY, HF_COPY, 0},
};

/* The members of each fused Phi-3 tensor, in their order along its rows. */
static const char *const hf_fused[][4] = {
	{"attn.wq.weight", "attn.wk.weight", "attn.wv.weight", NULL},
	{"ffn.w1.weight", "ffn.w3.weight", NULL},
};

#define HF_NAME_MAX 128

/* hf_name_map gives the HF name, transform and part of a canonical tensor
 * name; FTE_ENOENT when the family has no such tensor. */
static int
hf_name_map(int arch, const char *canon, char *hf, int *xform, int *part)
{
	int lay = fte_arch_get(arch)->hf_layout, layer, n = 0;
	const struct hf_name *t = hf_top_names;
	size_t count = sizeof(hf_top_names) / sizeof(hf_top_names[0]);
	const char *suffix = canon;
	char prefix[48] = "";

	if (sscanf(canon, "layers.%d.%n", &layer, &n) == 1 && n > 0) {
		t = hf_layer_names;
		count = sizeof(hf_layer_names) / sizeof(hf_layer_names[0]);
		suffix = canon + n;
		snprintf(prefix, sizeof(prefix), lay == FTE_HF_GPT2 ? "transformer.h.%d." :
		    "model.layers.%d.", layer);
	}
	for (size_t i = 0; i < count; i++) {
		const char *name = t[i].name[lay];
		if (strcmp(t[i].canon, suffix) != 0 || name == NULL)
			continue;
		snprintf(hf, HF_NAME_MAX, "%s%s", prefix, name);
		*xform = lay == FTE_HF_GPT2 ? t[i].gpt2_xform : lay == FTE_HF_PHI3 ? t[i].phi3_xform :
		    HF_COPY;
		*part = t[i].part;
		return FTE_OK;
	}
	return FTE_ENOENT;
}

/* hf_fused_span gives the first row and the total rows of canonical tensor
 * ct inside its fused HF tensor (Phi-3), from the model's other members;
 * *group receives the fused group's member list. */
static void
hf_fused_span(fte_model *m, const fte_tensor *ct, int64_t *first, int64_t *total,
    const char *const **group)
{
	int layer, n = 0;

	sscanf(ct->name, "layers.%d.%n", &layer, &n);
	*first = *total = 0;
	for (size_t g = 0; g < sizeof(hf_fused) / sizeof(hf_fused[0]); g++) {
		int in = 0;

		for (int i = 0; hf_fused[g][i] != NULL; i++)
			in |= strcmp(ct->name + n, hf_fused[g][i]) == 0;
		if (!in)
			continue;
		*group = hf_fused[g];
		for (int i = 0, before = 1; hf_fused[g][i] != NULL; i++) {
			char name[FTE_NAME_MAX];
			const fte_tensor *t;

			snprintf(name, sizeof(name), "layers.%d.%s", layer, hf_fused[g][i]);
			t = fte_model_find(m, name);
			if (strcmp(ct->name + n, hf_fused[g][i]) == 0)
				before = 0;
			if (before)
				*first += t->shape[0];
			*total += t->shape[0];
		}
	}
}

/* The weight files of one directory. */
typedef struct hf_weights {
	int n;
	fte_st_file **files;
} hf_weights;

static void
hf_weights_close(hf_weights *w)
{
	for (int i = 0; i < w->n; i++)
		fte_st_close(w->files[i]);
	free(w->files);
	w->files = NULL;
	w->n = 0;
}

static const fte_st_tensor *
hf_weights_find(const hf_weights *w, const char *name, const fte_st_file **file)
{
	for (int i = 0; i < w->n; i++) {
		const fte_st_tensor *t = fte_st_find(w->files[i], name);
		if (t != NULL) {
			*file = w->files[i];
			return t;
		}
	}
	return NULL;
}

/* hf_weights_find_alias looks name up, then the tensor a __metadata__ entry
 * names in its place (safetensors' save_model stores a shared tensor once and
 * records "removed name": "kept name"). */
static const fte_st_tensor *
hf_weights_find_alias(const hf_weights *w, const char *name, const fte_st_file **file)
{
	const fte_st_tensor *t = hf_weights_find(w, name, file);

	for (int i = 0; t == NULL && i < w->n; i++) {
		const char *kept = fte_st_metadata(w->files[i], name);
		if (kept != NULL && strcmp(kept, name) != 0)
			t = hf_weights_find(w, kept, file);
	}
	return t;
}

static int
hf_weights_add(hf_weights *w, const char *path)
{
	fte_st_file **files = realloc(w->files, sizeof(*files) * (size_t)(w->n + 1));
	int rc;

	if (files == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	w->files = files;
	if ((rc = fte_st_open(path, &w->files[w->n])) != FTE_OK)
		return rc;
	w->n++;
	return FTE_OK;
}

/* hf_weights_open opens model.safetensors, or every shard named by
 * model.safetensors.index.json. */
static int
hf_weights_open(const char *dir, hf_weights *w)
{
	char path[PATH_MAX];
	json_t *idx, *map, *v;
	const char *key;
	struct stat st;
	int rc = FTE_OK;

	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	if (lstat(path, &st) == 0) {
		if ((rc = hf_weights_add(w, path)) != FTE_OK)
			hf_weights_close(w);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	if ((rc = fte__json_load(path, &idx)) != FTE_OK) {
		if (rc == FTE_ENOENT)
			rc = fte_error_set(FTE_ENOENT, "%s: no model.safetensors or model.safetensors.index.json",
			    dir);
		return rc;
	}
	map = json_object_get(idx, "weight_map");
	if (!json_is_object(map) || json_object_size(map) == 0) {
		json_decref(idx);
		return fte_error_set(FTE_EFORMAT, "%s: no weight_map object", path);
	}
	json_object_foreach(map, key, v) {
		const char *file = json_string_value(v);
		char shard[PATH_MAX];
		int seen = 0;
		/* a shard name is a plain file name in the same directory */
		if (file == NULL || file[0] == '\0' || file[0] == '.' || strchr(file, '/') != NULL) {
			rc = fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": bad shard file name",
			    path, key);
			break;
		}
		snprintf(shard, sizeof(shard), "%s/%s", dir, file);
		for (int i = 0; i < w->n; i++)
			seen |= strcmp(w->files[i]->path, shard) == 0;
		if (!seen && (rc = hf_weights_add(w, shard)) != FTE_OK)
			break;
	}
	/* every tensor the index lists must be in the shard it names */
	json_object_foreach(map, key, v) {
		const fte_st_file *f;
		if (rc != FTE_OK)
			break;
		if (hf_weights_find(w, key, &f) == NULL)
			rc = fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\" is listed but not in %s",
			    path, key, json_string_value(v));
	}
	json_decref(idx);
	if (rc != FTE_OK)
		hf_weights_close(w);
	return rc;
}

#define CFG_INT_MAX (1 << 28)

/* Config fields: a required or defaulted positive int, an optional id. */
static int
cfg_int(const char *path, json_t *cfg, const char *key, int dflt, int *out)
{
	json_t *v = json_object_get(cfg, key);
	json_int_t x;

	if (v == NULL || json_is_null(v)) {
		if (dflt < 0)
			return fte_error_set(FTE_EFORMAT, "%s: missing \"%s\"", path, key);
		*out = dflt;
		return FTE_OK;
	}
	x = json_is_integer(v) ? json_integer_value(v) : 0;
	/* the cap keeps products such as 4 * n_embd inside an int */
	if (x <= 0 || x > CFG_INT_MAX)
		return fte_error_set(FTE_EFORMAT, "%s: \"%s\" is not an integer in [1, %d]",
		    path, key, CFG_INT_MAX);
	*out = (int)x;
	return FTE_OK;
}

static int
cfg_real(const char *path, json_t *cfg, const char *key, double dflt, float *out)
{
	json_t *v = json_object_get(cfg, key);

	if (v == NULL || json_is_null(v)) {
		*out = (float)dflt;
		return FTE_OK;
	}
	if (!json_is_number(v) || !(json_number_value(v) > 0))
		return fte_error_set(FTE_EFORMAT, "%s: \"%s\" is not a positive number",
		    path, key);
	*out = (float)json_number_value(v);
	return FTE_OK;
}

/* token id from a number or the first of a list (Llama 3 lists several
 * EOS ids); leaves *out alone when the key is absent or null. */
static void
cfg_token(json_t *cfg, const char *key, int *out)
{
	json_t *v = json_object_get(cfg, key);

	if (json_is_array(v))
		v = json_array_get(v, 0);
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= INT_MAX)
		*out = (int)json_integer_value(v);
}

static int
cfg_bool(json_t *cfg, const char *key, int dflt)
{
	json_t *v = json_object_get(cfg, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* The RoPE types read from rope_scaling or rope_parameters (in enum
 * fte_rope_type order), with the keys each may carry besides its type (and
 * rope_parameters' rope_theta). */
static const struct rope_kind {
	const char *name;
	int type;
	const char *keys[7];
} rope_kinds[] = {
	{"default", FTE_ROPE_DEFAULT, {NULL}},
	{"linear", FTE_ROPE_LINEAR, {"factor", NULL}},
	{"dynamic", FTE_ROPE_DYNAMIC, {"factor", NULL}},
	{"llama3", FTE_ROPE_LLAMA3, {"factor", "low_freq_factor", "high_freq_factor",
	    "original_max_position_embeddings", NULL}},
	{"yarn", FTE_ROPE_YARN, {"factor", "original_max_position_embeddings", "beta_fast",
	    "beta_slow", "attention_factor", "truncate", NULL}},
	/* transformers replaces factor by max_position_embeddings /
	 * original_max_position_embeddings, so it is read but not used */
	{"longrope", FTE_ROPE_LONGROPE, {"long_factor", "short_factor", "factor",
	    "attention_factor", "original_max_position_embeddings", NULL}},
};

/* rope_num reads a positive number of a RoPE object; absent or null gives
 * dflt, or is an error when dflt < 0. */
static int
rope_num(const char *path, const char *label, json_t *o, const char *key, double dflt,
    double *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		if (dflt < 0)
			return fte_error_set(FTE_EFORMAT, "%s: %s has no \"%s\"", path, label, key);
		*out = dflt;
		return FTE_OK;
	}
	if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
		return fte_error_set(FTE_EFORMAT, "%s: %s.%s is not a positive number", path, label, key);
	*out = json_number_value(v);
	return FTE_OK;
}

/* rope_factors reads one of LongRoPE's lists: a number per rotated pair. */
static int
rope_factors(const char *path, const char *label, json_t *o, const char *key, int n, float *out)
{
	json_t *a = json_object_get(o, key), *v;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) != (size_t)n)
		return fte_error_set(FTE_EFORMAT, "%s: %s.%s is not a list of %d numbers (one per "
		    "rotated pair)", path, label, key, n);
	json_array_foreach(a, i, v) {
		if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
			return fte_error_set(FTE_EFORMAT, "%s: %s.%s[%zu] is not a positive number",
			    path, label, key, i);
		out[i] = (float)json_number_value(v);
	}
	return FTE_OK;
}

/* rope_longrope reads Phi-3's LongRoPE: its short factors within
 * original_max_position_embeddings (top level, Phi3Config's default 4096,
 * or in the object), to which the context is capped: past it transformers
 * turns every position by the long factors instead. */
static int
rope_longrope(const char *path, json_t *j, json_t *o, const char *label, fte_config *c)
{
	fte_rope_scaling *r = &c->rope;
	int half = (c->rope_dim > 0 ? c->rope_dim : c->head_dim) / 2, rc, orig = 4096;
	json_t *v = json_object_get(o, "original_max_position_embeddings");

	if (c->arch != FTE_ARCH_PHI3)
		return fte_error_set(FTE_ENOTSUP, "%s: %s.rope_type \"longrope\" is read for Phi-3 only",
		    path, label);
	if (half > FTE_ROPE_PAIRS_MAX)
		return fte_error_set(FTE_ENOTSUP, "%s: longrope with more than %d rotated pairs", path,
		    FTE_ROPE_PAIRS_MAX);
	if (v == NULL)
		v = json_object_get(j, "original_max_position_embeddings");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > CFG_INT_MAX))
		return fte_error_set(FTE_EFORMAT, "%s: original_max_position_embeddings is not a "
		    "positive integer", path);
	if (v != NULL)
		orig = (int)json_integer_value(v);
	if ((rc = rope_factors(path, label, o, "short_factor", half, r->short_factor)) ||
	    (rc = rope_factors(path, label, o, "long_factor", half, r->long_factor)) ||
	    (rc = rope_num(path, label, o, "attention_factor", 0, &r->attn_factor)))
		return rc;
	r->orig_ctx = orig;
	r->factor = (double)c->max_seq_len / orig;
	if (c->max_seq_len > orig)
		c->max_seq_len = orig;
	return FTE_OK;
}

/* rope_read reads one RoPE object: rope_scaling of older configs or
 * rope_parameters of newer transformers (which also carries rope_theta).
 * max_pos is max_position_embeddings.  Every type, key or value the engine
 * would not compute as transformers does is refused by name. */
static int
rope_read(const char *path, json_t *j, const char *label, int max_pos, fte_config *c)
{
	json_t *o = json_object_get(j, label), *v;
	const struct rope_kind *k = NULL;
	const char *type, *alt, *key;
	fte_rope_scaling *r = &c->rope;
	double orig = 0;
	int rc;

	if (o == NULL || json_is_null(o))
		return FTE_OK;
	if (!json_is_object(o))
		return fte_error_set(FTE_EFORMAT, "%s: %s is not an object", path, label);
	json_object_foreach(o, key, v)
		if (json_is_object(v))
			return fte_error_set(FTE_ENOTSUP, "%s: %s per attention type (\"%s\") "
			    "is not supported", path, label, key);
	type = json_string_value(json_object_get(o, "rope_type"));
	alt = json_string_value(json_object_get(o, "type"));
	if (type != NULL && alt != NULL && strcmp(type, alt) != 0)
		return fte_error_set(FTE_EFORMAT, "%s: %s.rope_type \"%s\" and type \"%s\" differ",
		    path, label, type, alt);
	if (type == NULL)
		type = alt != NULL ? alt : "default";
	/* Phi-3's first configs call LongRoPE "su"; Phi3Config renames it */
	if (strcmp(type, "su") == 0 && c->arch == FTE_ARCH_PHI3)
		type = "longrope";
	for (size_t i = 0; i < sizeof(rope_kinds) / sizeof(rope_kinds[0]); i++)
		if (strcmp(type, rope_kinds[i].name) == 0)
			k = &rope_kinds[i];
	if (k == NULL)
		return fte_error_set(FTE_ENOTSUP, "%s: %s.rope_type \"%s\" is not supported "
		    "(supported: default, linear, dynamic, llama3, yarn)", path, label, type);
	json_object_foreach(o, key, v) {
		int known = strcmp(key, "rope_type") == 0 || strcmp(key, "type") == 0 ||
		    (strcmp(key, "rope_theta") == 0 && strcmp(label, "rope_parameters") == 0);
		for (int i = 0; k->keys[i] != NULL && !known; i++)
			known = strcmp(key, k->keys[i]) == 0;
		if (!known)
			return fte_error_set(FTE_ENOTSUP, "%s: %s.%s is not supported for rope_type \"%s\"",
			    path, label, key, type);
	}
	if (k->type != FTE_ROPE_DEFAULT && r->type != FTE_ROPE_DEFAULT)
		return fte_error_set(FTE_EFORMAT, "%s: both rope_scaling and rope_parameters scale RoPE",
		    path);
	if ((v = json_object_get(o, "rope_theta")) != NULL) {
		if (!json_is_number(v) || !(json_number_value(v) > 0))
			return fte_error_set(FTE_EFORMAT, "%s: %s.rope_theta is not a positive number",
			    path, label);
		/* a config that says both must say the same */
		if (json_object_get(j, "rope_theta") != NULL && (float)json_number_value(v) != c->rope_theta)
			return fte_error_set(FTE_EFORMAT, "%s: rope_theta %g and %s.rope_theta %g differ",
			    path, (double)c->rope_theta, label, json_number_value(v));
		c->rope_theta = (float)json_number_value(v);
	}
	if (k->type == FTE_ROPE_DEFAULT)
		return FTE_OK;
	memset(r, 0, sizeof(*r));
	r->type = k->type;
	if (k->type == FTE_ROPE_LONGROPE)
		return rope_longrope(path, j, o, label, c);
	if ((rc = rope_num(path, label, o, "factor", -1, &r->factor)) != FTE_OK)
		return rc;
	if (k->type == FTE_ROPE_LLAMA3) {
		if ((rc = rope_num(path, label, o, "low_freq_factor", -1, &r->low_freq_factor)) ||
		    (rc = rope_num(path, label, o, "high_freq_factor", -1, &r->high_freq_factor)) ||
		    (rc = rope_num(path, label, o, "original_max_position_embeddings", -1, &orig)))
			return rc;
		if (!(r->high_freq_factor > r->low_freq_factor))
			return fte_error_set(FTE_EFORMAT, "%s: %s.high_freq_factor must exceed low_freq_factor",
			    path, label);
	} else if (k->type == FTE_ROPE_YARN) {
		/* transformers reads "beta_fast or 32": 0 is the default too */
		if ((rc = rope_num(path, label, o, "beta_fast", 32, &r->beta_fast)) ||
		    (rc = rope_num(path, label, o, "beta_slow", 1, &r->beta_slow)) ||
		    (rc = rope_num(path, label, o, "attention_factor", 0, &r->attn_factor)) ||
		    (rc = rope_num(path, label, o, "original_max_position_embeddings", max_pos, &orig)))
			return rc;
		v = json_object_get(o, "truncate");
		if (v != NULL && !json_is_boolean(v))
			return fte_error_set(FTE_EFORMAT, "%s: %s.truncate is not a boolean", path, label);
		r->no_truncate = json_is_false(v);
		/* transformers versions differ on which of the two is the factor */
		if (orig != max_pos && (double)max_pos / orig != r->factor)
			return fte_error_set(FTE_ENOTSUP, "%s: %s.factor %g is not max_position_embeddings / "
			    "original_max_position_embeddings (%d / %g), which transformers versions "
			    "read differently", path, label, r->factor, max_pos, orig);
	}
	if (orig > CFG_INT_MAX || orig != (int)orig)
		return fte_error_set(FTE_EFORMAT, "%s: %s.original_max_position_embeddings is not an integer",
		    path, label);
	r->orig_ctx = (int)orig;
	return FTE_OK;
}

/* cfg_opt_real reads an optional positive number: absent is dflt (the
 * config class's default), null is 0 (none). */
static int
cfg_opt_real(const char *path, json_t *cfg, const char *key, double dflt, float *out)
{
	json_t *v = json_object_get(cfg, key);

	if (v != NULL && json_is_null(v)) {
		*out = 0;
		return FTE_OK;
	}
	return cfg_real(path, cfg, key, dflt, out);
}

/* layer_types_read derives c's sliding pattern from a layer_types list
 * (newer transformers) when c has a window: every n-th layer full, or all
 * sliding; any other layout is refused. */
static int
layer_types_read(const char *path, json_t *j, fte_config *c)
{
	json_t *lt = json_object_get(j, "layer_types"), *v;
	int first_full = 0;
	size_t i;

	if (lt == NULL || json_is_null(lt))
		return FTE_OK;
	if (!json_is_array(lt) || json_array_size(lt) != (size_t)c->n_layers)
		return fte_error_set(FTE_EFORMAT, "%s: layer_types is not a list of %d layer types",
		    path, c->n_layers);
	json_array_foreach(lt, i, v) {
		const char *t = json_string_value(v);
		if (t == NULL || (strcmp(t, "full_attention") != 0 && strcmp(t, "sliding_attention") != 0))
			return fte_error_set(FTE_ENOTSUP, "%s: layer_types[%zu] is not full_attention "
			    "or sliding_attention", path, i);
		if (first_full == 0 && strcmp(t, "full_attention") == 0)
			first_full = (int)i + 1;
	}
	/* without a window shorter than the context every layer is full */
	if (c->sliding_window == 0)
		return FTE_OK;
	c->sliding_pattern = first_full;
	for (int l = 0; l < c->n_layers; l++) {
		const char *t = json_string_value(json_array_get(lt, (size_t)l));
		if ((strcmp(t, "sliding_attention") == 0) != fte_config_layer_sliding(c, l))
			return fte_error_set(FTE_ENOTSUP, "%s: layer_types is not \"every n-th layer "
			    "full\" (layer %d), which the engine does not compute", path, l);
	}
	if (first_full == 1) {
		c->sliding_window = 0;
		c->sliding_pattern = 0;
	}
	return FTE_OK;
}

/* rope_read_per_type reads Gemma's rope_parameters, which newer
 * transformers keeps per layer type: full_attention as every family's
 * rope_parameters, sliding_attention as the sliding layers' base (Gemma 3's
 * rope_local_base_freq), which must not scale.  A flat object is read as
 * usual. */
static int
rope_read_per_type(const char *path, json_t *j, fte_config *c)
{
	json_t *o = json_object_get(j, "rope_parameters");
	json_t *full = json_object_get(o, "full_attention");
	json_t *slide = json_object_get(o, "sliding_attention");
	json_t *w, *v;
	const char *key, *type;
	int rc;

	if (!json_is_object(full) && !json_is_object(slide))
		return rope_read(path, j, "rope_parameters", c->max_seq_len, c);
	json_object_foreach(o, key, v)
		if (strcmp(key, "full_attention") != 0 && strcmp(key, "sliding_attention") != 0)
			return fte_error_set(FTE_ENOTSUP, "%s: rope_parameters.%s is not supported",
			    path, key);
	if (json_is_object(full)) {
		/* rope_read reads "rope_parameters" of the object it is given */
		if ((w = json_pack("{s:O}", "rope_parameters", full)) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		rc = rope_read(path, w, "rope_parameters", c->max_seq_len, c);
		json_decref(w);
		if (rc != FTE_OK)
			return rc;
	}
	if (json_is_object(slide)) {
		type = json_string_value(json_object_get(slide, "rope_type"));
		json_object_foreach(slide, key, v)
			if (strcmp(key, "rope_type") != 0 && strcmp(key, "rope_theta") != 0)
				return fte_error_set(FTE_ENOTSUP, "%s: rope_parameters.sliding_attention.%s "
				    "is not supported", path, key);
		if (type != NULL && strcmp(type, "default") != 0)
			return fte_error_set(FTE_ENOTSUP, "%s: rope_parameters.sliding_attention.rope_type "
			    "\"%s\" is not supported (the sliding layers' RoPE does not scale)", path, type);
		if ((rc = cfg_real(path, slide, "rope_theta", c->rope_theta, &c->rope_local_theta)) != FTE_OK)
			return rc;
	}
	return FTE_OK;
}

/* The config keys only Gemma's attention reads. */
static const char *const gemma_keys[] = {
	"query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
	"rope_local_base_freq",
};

/* hf_config_parse fills c from config.json (and generation_config.json for
 * BOS/EOS). */
static int
hf_config_parse(const char *dir, const char *path, json_t *j, fte_config *c)
{
	const fte_arch_info *ai = NULL;
	json_t *archs = json_object_get(j, "architectures");
	const char *name = json_string_value(json_array_get(archs, 0));
	const char *mtype = json_string_value(json_object_get(j, "model_type"));
	char gpath[PATH_MAX];
	json_t *gen;
	int rc, arch = 0, window = 0, gemma;

	/* quantized weights are codes and scales, not the numbers themselves */
	if (json_object_get(j, "quantization_config") != NULL) {
		const char *qm = json_string_value(json_object_get(json_object_get(j,
		    "quantization_config"), "quant_method"));
		return fte_error_set(FTE_ENOTSUP, "%s: quantization_config (quant_method %s) is not "
		    "supported: import the unquantized checkpoint", path, qm ? qm : "unnamed");
	}
	for (int a = 1; a < FTE_ARCH_END; a++)
		if ((name && strcmp(name, fte_arch_get(a)->hf_arch) == 0) ||
		    (!name && mtype && strcmp(mtype, fte_arch_get(a)->hf_type) == 0))
			arch = a;
	if (arch == 0) {
		char list[512] = "";
		for (int a = 1; a < FTE_ARCH_END; a++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", a > 1 ? ", " : "",
			    fte_arch_get(a)->hf_arch);
		return fte_error_set(FTE_ENOTSUP, "%s: unsupported architecture \"%s\" (supported: %s)",
		    path, name ? name : mtype ? mtype : "(none)", list);
	}
	ai = fte_arch_get(arch);
	gemma = ai->hf_layout == FTE_HF_GEMMA;
	memset(c, 0, sizeof(*c));
	c->arch = arch;
	c->bos_id = c->eos_id = -1;
	if (ai->hf_layout == FTE_HF_GPT2) {
		const char *act = json_string_value(json_object_get(j, "activation_function"));
		if ((rc = cfg_int(path, j, "n_embd", -1, &c->dim)) ||
		    (rc = cfg_int(path, j, "n_layer", -1, &c->n_layers)) ||
		    (rc = cfg_int(path, j, "n_head", -1, &c->n_heads)) ||
		    (rc = cfg_int(path, j, "vocab_size", -1, &c->vocab_size)) ||
		    (rc = cfg_int(path, j, "n_positions", 1024, &c->max_seq_len)) ||
		    (rc = cfg_int(path, j, "n_inner", 4 * c->dim, &c->ffn_dim)) ||
		    (rc = cfg_real(path, j, "layer_norm_epsilon", 1e-5, &c->norm_eps)))
			return rc;
		if (act != NULL && strcmp(act, "gelu_new") != 0 &&
		    strcmp(act, "gelu_pytorch_tanh") != 0)
			return fte_error_set(FTE_ENOTSUP, "%s: activation_function \"%s\" not supported (only gelu_new)",
			    path, act);
		if (cfg_bool(j, "scale_attn_by_inverse_layer_idx", 0) ||
		    !cfg_bool(j, "scale_attn_weights", 1))
			return fte_error_set(FTE_ENOTSUP, "%s: only the standard attention scale 1/sqrt(head_dim) is supported",
			    path);
		c->n_kv_heads = c->n_heads;
		c->head_dim = c->dim / c->n_heads;
		c->tied_embeddings = cfg_bool(j, "tie_word_embeddings", 1);
	} else {
		/* Gemma names its activation hidden_activation (and keeps a
		 * hidden_act that transformers ignores for it) */
		const char *actkey = gemma && json_object_get(j, "hidden_activation") ? "hidden_activation" :
		    "hidden_act";
		const char *act = json_string_value(json_object_get(j, actkey));
		const char *want = ai->mlp == FTE_MLP_GEGLU ? "gelu_pytorch_tanh" : "silu";
		if ((rc = cfg_int(path, j, "hidden_size", -1, &c->dim)) ||
		    (rc = cfg_int(path, j, "num_hidden_layers", -1, &c->n_layers)) ||
		    (rc = cfg_int(path, j, "num_attention_heads", -1, &c->n_heads)) ||
		    (rc = cfg_int(path, j, "num_key_value_heads", c->n_heads, &c->n_kv_heads)) ||
		    (rc = cfg_int(path, j, "head_dim", c->dim / c->n_heads, &c->head_dim)) ||
		    (rc = cfg_int(path, j, "intermediate_size", -1, &c->ffn_dim)) ||
		    (rc = cfg_int(path, j, "vocab_size", -1, &c->vocab_size)) ||
		    (rc = cfg_int(path, j, "max_position_embeddings", 2048, &c->max_seq_len)) ||
		    (rc = cfg_int(path, j, "sliding_window", 0, &window)) ||
		    (rc = cfg_real(path, j, "rms_norm_eps", 1e-6, &c->norm_eps)) ||
		    (rc = cfg_real(path, j, "rope_theta", 10000.0, &c->rope_theta)))
			return rc;
		if (act != NULL && strcmp(act, want) != 0)
			return fte_error_set(FTE_ENOTSUP, "%s: %s \"%s\" not supported (only %s)",
			    path, actkey, act, want);
		json_t *prf = json_object_get(j, "partial_rotary_factor");
		if (prf != NULL && !json_is_null(prf) && json_number_value(prf) != 1.0) {
			/* transformers' Phi-3 turns int(head_dim * factor) dims */
			double f = json_number_value(prf);

			if (arch != FTE_ARCH_PHI3)
				return fte_error_set(FTE_ENOTSUP, "%s: partial_rotary_factor is not read by "
				    "%s models", path, ai->hf_arch);
			c->rope_dim = (int)(c->head_dim * f);
			if (!(f > 0 && f < 1) || c->rope_dim < 2 || c->rope_dim % 2 != 0)
				return fte_error_set(FTE_ENOTSUP, "%s: partial_rotary_factor %g does not turn "
				    "an even number of a head's %d dims", path, f, c->head_dim);
		}
		if ((rc = rope_read(path, j, "rope_scaling", c->max_seq_len, c)) != FTE_OK ||
		    (rc = gemma ? rope_read_per_type(path, j, c) :
		    rope_read(path, j, "rope_parameters", c->max_seq_len, c)) != FTE_OK)
			return rc;
		if (cfg_bool(j, "attention_bias", 0) || cfg_bool(j, "mlp_bias", 0))
			return fte_error_set(FTE_ENOTSUP, "%s: attention_bias / mlp_bias are not supported",
			    path);
		if (cfg_bool(j, "use_bidirectional_attention", 0))
			return fte_error_set(FTE_ENOTSUP, "%s: use_bidirectional_attention is not supported "
			    "(the engine's attention is causal)", path);
		/* Gemma's attention keys on another family: transformers would
		 * ignore them, the config means them; ambiguous, so refused */
		for (size_t k = 0; !gemma && k < sizeof(gemma_keys) / sizeof(gemma_keys[0]); k++)
			if (json_object_get(j, gemma_keys[k]) != NULL &&
			    !json_is_null(json_object_get(j, gemma_keys[k])))
				return fte_error_set(FTE_ENOTSUP, "%s: %s is not read by %s models",
				    path, gemma_keys[k], ai->hf_arch);
		/* absent keys take Gemma2Config's / Gemma3TextConfig's defaults;
		 * rope_parameters.sliding_attention may have set the local base */
		float local = c->rope_local_theta;
		if (gemma && ((rc = cfg_opt_real(path, j, "query_pre_attn_scalar", 256, &c->query_scale)) ||
		    (rc = cfg_opt_real(path, j, "attn_logit_softcapping",
		    arch == FTE_ARCH_GEMMA2 ? 50 : 0, &c->attn_softcap)) ||
		    (rc = cfg_opt_real(path, j, "final_logit_softcapping",
		    arch == FTE_ARCH_GEMMA2 ? 30 : 0, &c->final_softcap)) ||
		    (local == 0 && (rc = cfg_opt_real(path, j, "rope_local_base_freq", 10000,
		    &c->rope_local_theta)))))
			return rc;
		if (gemma && json_object_get(j, "sliding_window") == NULL)
			window = 4096;
		if (arch == FTE_ARCH_GEMMA3 && json_object_get(j, "rope_theta") == NULL &&
		    json_object_get(j, "rope_parameters") == NULL)
			c->rope_theta = 1e6f;
		/* Gemma 2's sliding layers turn with the full layers' RoPE */
		if (arch == FTE_ARCH_GEMMA2) {
			if (local != 0 && local != c->rope_theta)
				return fte_error_set(FTE_ENOTSUP, "%s: a Gemma 2 sliding-layer RoPE base (%g) "
				    "other than rope_theta is not supported", path, (double)local);
			c->rope_local_theta = 0;
		}
		/* Qwen2 ignores head_dim; it is always hidden_size / heads */
		if (arch == FTE_ARCH_QWEN2)
			c->head_dim = c->dim / c->n_heads;
		if (arch == FTE_ARCH_QWEN2 || arch == FTE_ARCH_QWEN3) {
			/* Qwen's window (only with use_sliding_window) covers the layers
			 * from max_window_layers on; attention is exact up to the window,
			 * so the context is capped there instead. */
			if (!cfg_bool(j, "use_sliding_window", 0))
				window = 0;
			if (window > 0 && window < c->max_seq_len)
				c->max_seq_len = window;
		} else if (window > 0 && window < c->max_seq_len) {
			c->sliding_window = window;
			/* Gemma 2 alternates (even layers slide), Gemma 3 keeps one
			 * full layer in sliding_window_pattern; Mistral and Phi-3 slide
			 * everywhere */
			if (arch == FTE_ARCH_GEMMA2)
				c->sliding_pattern = 2;
			if (arch == FTE_ARCH_GEMMA3 && (rc = cfg_int(path, j, "sliding_window_pattern", 6,
			    &c->sliding_pattern)) != FTE_OK)
				return rc;
		}
		if ((rc = layer_types_read(path, j, c)) != FTE_OK)
			return rc;
		c->rope_style = FTE_ROPE_HALF;
		c->tied_embeddings = cfg_bool(j, "tie_word_embeddings", gemma);
	}
	cfg_token(j, "bos_token_id", &c->bos_id);
	cfg_token(j, "eos_token_id", &c->eos_id);
	snprintf(gpath, sizeof(gpath), "%s/generation_config.json", dir);
	if ((rc = fte__json_load(gpath, &gen)) == FTE_OK) {
		cfg_token(gen, "bos_token_id", &c->bos_id);
		cfg_token(gen, "eos_token_id", &c->eos_id);
		json_decref(gen);
	} else if (rc != FTE_ENOENT) {
		return rc;          /* present but a link, not a file, or not JSON */
	}
	if (c->bos_id >= c->vocab_size)
		c->bos_id = -1;
	if (c->eos_id >= c->vocab_size)
		c->eos_id = -1;
	if (fte_config_check(c) != FTE_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", fte_last_error());
		return fte_error_set(FTE_EFORMAT, "%s: %s", path, msg);
	}
	return FTE_OK;
}

static void
shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
	int n = snprintf(buf, len, "[");
	for (int d = 0; d < ndim && n > 0 && (size_t)n < len; d++)
		n += snprintf(buf + n, len - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "]");
}

/* hf_tensor_load reads the HF tensor that holds canonical tensor ct. */
static int
hf_tensor_load(const char *dir, const hf_weights *w, fte_model *m, fte_tensor *ct)
{
	char hf[HF_NAME_MAX], want[64], have[160];
	const fte_st_file *f;
	const fte_st_tensor *t;
	const char *const *group;
	int64_t exp[2], first = 0, total = 0;
	int xform, part, exp_ndim = ct->ndim, rc;
	float *tmp;

	if (hf_name_map(fte_model_config(m)->arch, ct->name, hf, &xform, &part) != FTE_OK)
		return fte_error_set(FTE_ENOTSUP, "%s: no Hugging Face name for %s", dir, ct->name);
	/* a tied pair is stored once: either name may be the alias of the
	 * other in __metadata__ */
	t = hf_weights_find_alias(w, hf, &f);
	/* old GPT-2 checkpoints have no "transformer." prefix */
	if (t == NULL && strncmp(hf, "transformer.", 12) == 0)
		t = hf_weights_find(w, hf + 12, &f);
	if (t == NULL)
		return fte_error_set(FTE_EFORMAT, "%s: missing tensor \"%s\"", dir, hf);
	exp[0] = ct->shape[0];
	exp[1] = ct->shape[1];
	if (xform == HF_T || xform == HF_QKV_W) {
		exp[0] = ct->shape[1];
		exp[1] = ct->shape[0] * (xform == HF_QKV_W ? 3 : 1);
	} else if (xform == HF_QKV_B) {
		exp[0] = ct->shape[0] * 3;
	} else if (xform == HF_ROWS) {
		hf_fused_span(m, ct, &first, &total, &group);
		exp[0] = total;
	}
	if (t->ndim != exp_ndim || t->shape[0] != exp[0] || (exp_ndim == 2 && t->shape[1] != exp[1])) {
		shape_str(want, sizeof(want), exp_ndim, exp);
		shape_str(have, sizeof(have), t->ndim, t->shape);
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\" has shape %s, config.json implies %s",
		    f->path, hf, have, want);
	}
	if (xform == HF_COPY)
		return fte_st_read_f32(f, t, ct->data);
	if ((tmp = malloc(t->numel * sizeof(float))) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	if ((rc = fte_st_read_f32(f, t, tmp)) == FTE_OK) {
		size_t rows = (size_t)ct->shape[0];
		size_t cols = ct->ndim == 2 ? (size_t)ct->shape[1] : 1;
		size_t ld = (size_t)t->shape[t->ndim - 1];   /* HF row length */
		if (xform == HF_QKV_B) {
			memcpy(ct->data, tmp + (size_t)part * rows, rows * sizeof(float));
		} else if (xform == HF_ROWS) {
			memcpy(ct->data, tmp + (size_t)first * cols, rows * cols * sizeof(float));
		} else {
			/* canonical [o][i] = HF [i][part * rows + o] */
			for (size_t o = 0; o < rows; o++)
				for (size_t i = 0; i < cols; i++)
					ct->data[o * cols + i] = tmp[i * ld + (size_t)part * rows + o];
		}
	}
	free(tmp);
	return rc;
}

int
fte_hf_load(const char *dir, fte_model **out)
{
	char path[PATH_MAX];
	hf_weights w = {0, NULL};
	const fte_st_file *f;
	fte_model *m = NULL;
	fte_config c;
	json_t *j;
	double need, have = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/config.json", dir);
	if ((rc = fte__json_load(path, &j)) != FTE_OK)
		return rc;
	rc = hf_config_parse(dir, path, j, &c);
	json_decref(j);
	if (rc != FTE_OK)
		return rc;
	if ((rc = hf_weights_open(dir, &w)) != FTE_OK)
		return rc;
	/* A head and embedding stored once are tied, whichever of the two the
	 * file omits or names as the other's alias in __metadata__ (GPT-2's
	 * head may be left out with no alias at all). */
	if (!c.tied_embeddings) {
		int gpt2 = fte_arch_get(c.arch)->hf_layout == FTE_HF_GPT2;
		const char *head = "lm_head.weight";
		const char *emb = gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
		int no_head = hf_weights_find(&w, head, &f) == NULL;
		int no_emb = hf_weights_find(&w, emb, &f) == NULL &&
		    (strncmp(emb, "transformer.", 12) != 0 || hf_weights_find(&w, emb + 12, &f) == NULL);

		for (int i = 0; i < w.n && no_head != no_emb; i++) {
			const char *kept = fte_st_metadata(w.files[i], no_head ? head : emb);
			if (kept != NULL && (no_head ? (strcmp(kept, emb) == 0 ||
			    (strncmp(emb, "transformer.", 12) == 0 && strcmp(kept, emb + 12) == 0)) :
			    strcmp(kept, head) == 0))
				c.tied_embeddings = 1;
		}
		if (!c.tied_embeddings && no_head && gpt2)
			c.tied_embeddings = 1;
	}
	/* Refuse a config far larger than its weights before allocating it:
	 * the embedding and the query projections alone must fit. */
	need = (double)c.vocab_size * c.dim +
	    (double)c.n_layers * c.n_heads * c.head_dim * c.dim;
	for (int i = 0; i < w.n; i++)
		for (int k = 0; k < w.files[i]->n_tensors; k++)
			have += (double)w.files[i]->tensors[k].numel;
	if (need > have) {
		hf_weights_close(&w);
		return fte_error_set(FTE_EFORMAT, "%s: config.json describes at least %.0f parameters but the weights hold %.0f",
		    dir, need, have);
	}
	if ((rc = fte_model_create(&c, &m)) != FTE_OK) {
		hf_weights_close(&w);
		return rc;
	}
	for (int i = 0; i < fte_model_num_tensors(m) && rc == FTE_OK; i++)
		rc = hf_tensor_load(dir, &w, m, fte_model_tensor(m, i));
	hf_weights_close(&w);
	if (rc != FTE_OK) {
		fte_model_free(m);
		return rc;
	}
	*out = m;
	return FTE_OK;
}

/* permute_rows reorders the rows of a q or k projection (weight or bias)
 * from interleaved to rotate-half RoPE order, head by head:
 * dst[h*D + j*D/2 + i] = src[h*D + 2*i + j]. */
static void
permute_rows(float *dst, const float *src, int heads, int head_dim, size_t cols)
{
	int half = head_dim / 2;

	for (int h = 0; h < heads; h++)
		for (int i = 0; i < half; i++)
			for (int jj = 0; jj < 2; jj++)
				memcpy(dst + ((size_t)h * head_dim + (size_t)jj * half + i) * cols,
				    src + ((size_t)h * head_dim + 2 * (size_t)i + jj) * cols,
				    cols * sizeof(float));
}

/* Temporary buffers made while building the tensor list for a save, at
 * most one per tensor. */
typedef struct hf_bufs {
	int n;
	float **p;
} hf_bufs;

static float *
hf_bufs_alloc(hf_bufs *b, size_t numel)
{
	float *p = malloc(numel * sizeof(float) + 1);

	if (p != NULL)
		b->p[b->n++] = p;
	return p;
}

static void
hf_bufs_free(hf_bufs *b)
{
	for (int i = 0; i < b->n; i++)
		free(b->p[i]);
	free(b->p);
}

/* hf_entries_build lists m's tensors under HF names and layouts; e has room
 * for every tensor of m. */
static int
hf_entries_build(fte_model *m, fte_st_entry *e, int *n, hf_bufs *bufs)
{
	const fte_config *c = fte_model_config(m);
	int count = 0;
	int permute = fte_arch_get(c->arch)->rope && c->rope_style == FTE_ROPE_INTERLEAVED;

	for (int i = 0; i < fte_model_num_tensors(m); i++) {
		fte_tensor *t = fte_model_tensor(m, i);
		fte_st_entry *x = &e[count];
		int xform, part, rows = (int)t->shape[0];
		size_t cols = t->ndim == 2 ? (size_t)t->shape[1] : 1;
		float *buf;

		if (hf_name_map(c->arch, t->name, x->name, &xform, &part) != FTE_OK)
			return fte_error_set(FTE_ENOTSUP, "no Hugging Face name for %s", t->name);
		x->ndim = t->ndim;
		x->shape[0] = t->shape[0];
		x->shape[1] = t->shape[1];
		x->data = t->data;
		if (xform == HF_QKV_W || xform == HF_QKV_B) {
			/* c_attn is written once, when its q part comes by */
			if (part != 0)
				continue;
			char base[FTE_NAME_MAX];
			const char *kind = xform == HF_QKV_W ? "weight" : "bias";
			int layer;
			sscanf(t->name, "layers.%d.", &layer);
			if ((buf = hf_bufs_alloc(bufs, t->numel * 3)) == NULL)
				return fte_error_set(FTE_ENOMEM, "out of memory");
			for (int p = 0; p < 3; p++) {
				snprintf(base, sizeof(base), "layers.%d.attn.w%c.%s", layer, "qkv"[p], kind);
				const fte_tensor *src = fte_model_find(m, base);
				if (src == NULL)
					return fte_error_set(FTE_EINVAL, "model has no %s", base);
				if (xform == HF_QKV_B)
					memcpy(buf + (size_t)p * rows, src->data, (size_t)rows * sizeof(float));
				else
					for (int o = 0; o < rows; o++)
						for (size_t k = 0; k < cols; k++)
							buf[k * 3 * (size_t)rows + (size_t)p * rows + (size_t)o] =
							    src->data[(size_t)o * cols + k];
			}
			x->data = buf;
			if (xform == HF_QKV_W) {
				x->shape[0] = (int64_t)cols;
				x->shape[1] = 3 * (int64_t)rows;
			} else {
				x->shape[0] = 3 * (int64_t)rows;
			}
		} else if (xform == HF_ROWS) {
			/* the fused tensor is written once, when its first member comes by */
			const char *const *group;
			int64_t first, total, at = 0;
			int layer;

			if (part != 0)
				continue;
			hf_fused_span(m, t, &first, &total, &group);
			if ((buf = hf_bufs_alloc(bufs, (size_t)total * cols)) == NULL)
				return fte_error_set(FTE_ENOMEM, "out of memory");
			sscanf(t->name, "layers.%d.", &layer);
			for (int p = 0; group[p] != NULL; p++) {
				char mname[FTE_NAME_MAX];
				const fte_tensor *src;

				snprintf(mname, sizeof(mname), "layers.%d.%s", layer, group[p]);
				src = fte_model_find(m, mname);
				memcpy(buf + (size_t)at * cols, src->data, src->numel * sizeof(float));
				at += src->shape[0];
			}
			x->data = buf;
			x->shape[0] = total;
		} else if (xform == HF_T) {
			if ((buf = hf_bufs_alloc(bufs, t->numel)) == NULL)
				return fte_error_set(FTE_ENOMEM, "out of memory");
			for (int o = 0; o < rows; o++)
				for (size_t k = 0; k < cols; k++)
					buf[k * (size_t)rows + (size_t)o] = t->data[(size_t)o * cols + k];
			x->data = buf;
			x->shape[0] = (int64_t)cols;
			x->shape[1] = rows;
		} else if (permute && (strstr(t->name, ".attn.wq.") || strstr(t->name, ".attn.wk."))) {
			int heads = strstr(t->name, ".attn.wq.") ? c->n_heads : c->n_kv_heads;
			if ((buf = hf_bufs_alloc(bufs, t->numel)) == NULL)
				return fte_error_set(FTE_ENOMEM, "out of memory");
			permute_rows(buf, t->data, heads, c->head_dim, cols);
			x->data = buf;
		}
		count++;
	}
	*n = count;
	return FTE_OK;
}

static json_t *
json_token(int id)
{
	return id >= 0 ? json_integer(id) : json_null();
}

/* hf_rope_json is config.json's rope_scaling for c: null for the default
 * rotation, else the numbers rope_read read. */
static json_t *
hf_rope_json(const fte_config *c)
{
	const fte_rope_scaling *r = &c->rope;
	json_t *o;

	if (r->type == FTE_ROPE_DEFAULT)
		return json_null();
	if (r->type == FTE_ROPE_LONGROPE) {
		int half = (c->rope_dim > 0 ? c->rope_dim : c->head_dim) / 2;
		json_t *sf = json_array(), *lf = json_array();

		for (int i = 0; i < half; i++) {
			json_array_append_new(sf, fte__json_float(r->short_factor[i]));
			json_array_append_new(lf, fte__json_float(r->long_factor[i]));
		}
		o = json_pack("{s:s,s:o,s:o}", "rope_type", "longrope", "short_factor", sf,
		    "long_factor", lf);
		if (o != NULL && r->attn_factor > 0)
			json_object_set_new(o, "attention_factor", json_real(r->attn_factor));
		return o;
	}
	o = json_pack("{s:s,s:f}", "rope_type", rope_kinds[r->type].name, "factor", r->factor);
	if (o == NULL)
		return NULL;
	if (r->type == FTE_ROPE_LLAMA3) {
		json_object_set_new(o, "low_freq_factor", json_real(r->low_freq_factor));
		json_object_set_new(o, "high_freq_factor", json_real(r->high_freq_factor));
		json_object_set_new(o, "original_max_position_embeddings", json_integer(r->orig_ctx));
	} else if (r->type == FTE_ROPE_YARN) {
		json_object_set_new(o, "beta_fast", json_real(r->beta_fast));
		json_object_set_new(o, "beta_slow", json_real(r->beta_slow));
		if (r->attn_factor > 0)
			json_object_set_new(o, "attention_factor", json_real(r->attn_factor));
		if (r->no_truncate)
			json_object_set_new(o, "truncate", json_false());
		/* absent, it is max_position_embeddings */
		if (r->orig_ctx != c->max_seq_len)
			json_object_set_new(o, "original_max_position_embeddings", json_integer(r->orig_ctx));
	}
	return o;
}

static json_t *
json_opt_float(float x)
{
	return x > 0 ? fte__json_float(x) : json_null();
}

/* hf_config_extra adds the keys of a family's attention: the window and
 * which layers slide, Gemma's scale, soft-caps and local RoPE base. */
static void
hf_config_extra(const fte_config *c, json_t *j)
{
	const fte_arch_info *a = fte_arch_get(c->arch);

	if (a->hf_layout == FTE_HF_GEMMA) {
		json_t *lt = json_array();

		json_object_set_new(j, "hidden_activation", json_string("gelu_pytorch_tanh"));
		json_object_set_new(j, "query_pre_attn_scalar", c->query_scale > 0 ?
		    fte__json_float(c->query_scale) : json_integer(c->head_dim));
		json_object_set_new(j, "attn_logit_softcapping", json_opt_float(c->attn_softcap));
		json_object_set_new(j, "final_logit_softcapping", json_opt_float(c->final_softcap));
		if (c->arch == FTE_ARCH_GEMMA3) {
			json_object_set_new(j, "rope_local_base_freq", c->rope_local_theta > 0 ?
			    fte__json_float(c->rope_local_theta) : fte__json_float(c->rope_theta));
			json_object_set_new(j, "sliding_window_pattern",
			    json_integer(c->sliding_pattern > 0 ? c->sliding_pattern : c->n_layers + 1));
		}
		for (int l = 0; l < c->n_layers; l++)
			json_array_append_new(lt, json_string(fte_config_layer_sliding(c, l) ?
			    "sliding_attention" : "full_attention"));
		json_object_set_new(j, "layer_types", lt);
	}
	if (c->rope_dim > 0) {
		/* a factor whose int(head_dim * factor) is rope_dim */
		double f = (double)c->rope_dim / c->head_dim;

		if ((int)(c->head_dim * f) != c->rope_dim)
			f = (c->rope_dim + 0.5) / c->head_dim;
		json_object_set_new(j, "partial_rotary_factor", json_real(f));
	}
	if (c->rope.type == FTE_ROPE_LONGROPE) {
		json_object_set_new(j, "original_max_position_embeddings", json_integer(c->rope.orig_ctx));
		json_object_set_new(j, "max_position_embeddings",
		    json_integer(llround(c->rope.factor * c->rope.orig_ctx)));
	}
	if (a->window && c->arch != FTE_ARCH_QWEN2 && c->arch != FTE_ARCH_QWEN3)
		json_object_set_new(j, "sliding_window", c->sliding_window > 0 ?
		    json_integer(c->sliding_window) : json_null());
}

static json_t *
hf_config_build(const fte_config *c, const char *torch_dtype)
{
	const fte_arch_info *a = fte_arch_get(c->arch);
	json_t *j;

	if (a->hf_layout == FTE_HF_GPT2)
		j = json_pack("{s:[s],s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:b,s:b,s:f,s:f,s:f,s:o,s:o,s:s}",
		    "architectures", "GPT2LMHeadModel",
		    "model_type", "gpt2",
		    "activation_function", "gelu_new",
		    "n_embd", c->dim, "n_head", c->n_heads, "n_layer", c->n_layers,
		    "n_inner", c->ffn_dim, "n_positions", c->max_seq_len,
		    "n_ctx", c->max_seq_len, "vocab_size", c->vocab_size,
		    "layer_norm_epsilon", fte__json_float(c->norm_eps),
		    "tie_word_embeddings", c->tied_embeddings,
		    "scale_attn_weights", 1,
		    "attn_pdrop", 0.0, "embd_pdrop", 0.0, "resid_pdrop", 0.0,
		    "bos_token_id", json_token(c->bos_id),
		    "eos_token_id", json_token(c->eos_id),
		    "torch_dtype", torch_dtype);
	else
		j = json_pack("{s:[s],s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:b,s:b,s:b,s:o,s:o,s:o,s:s}",
		    "architectures", a->hf_arch, "model_type", a->hf_type,
		    "hidden_act", a->mlp == FTE_MLP_GEGLU ? "gelu_pytorch_tanh" : "silu",
		    "hidden_size", c->dim, "intermediate_size", c->ffn_dim,
		    "num_hidden_layers", c->n_layers,
		    "num_attention_heads", c->n_heads,
		    "num_key_value_heads", c->n_kv_heads,
		    "head_dim", c->head_dim,
		    "max_position_embeddings", c->max_seq_len,
		    "vocab_size", c->vocab_size,
		    "rms_norm_eps", fte__json_float(c->norm_eps),
		    "rope_theta", fte__json_float(c->rope_theta),
		    "tie_word_embeddings", c->tied_embeddings,
		    "attention_bias", 0, "mlp_bias", 0,
		    "rope_scaling", hf_rope_json(c),
		    "bos_token_id", json_token(c->bos_id),
		    "eos_token_id", json_token(c->eos_id),
		    "torch_dtype", torch_dtype);
	if (j != NULL && a->hf_layout != FTE_HF_GPT2)
		hf_config_extra(c, j);
	return j;
}

/* The tokenizer files a Hugging Face directory carries that the engine
 * reads (and so can check before it keeps them). */
static const char *const hf_tokenizer_files[] = {
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"generation_config.json",
};

/* copy_checked copies the file from to to, after fte_file_check has parsed
 * it as the file called name: a directory keeps nothing it cannot read. */
static int
copy_checked(const char *from, const char *to, const char *name)
{
	char *buf;
	size_t len;
	fte__afile af;
	int rc;

	if ((rc = fte__file_read(from, &buf, &len)) != FTE_OK)
		return rc;
	if ((rc = fte_file_check(name, buf, len)) != FTE_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", fte_last_error());
		rc = fte_error_set(rc, "%s: %s", from, msg);
	}
	if (rc == FTE_OK && (rc = fte__afile_open(&af, to)) == FTE_OK) {
		fte__afile_write(&af, buf, len);
		rc = fte__afile_commit(&af);
	}
	free(buf);
	return rc;
}

/* hf_tokenizer_copy copies the tokenizer files found in src (a directory,
 * or a single tokenizer file) into dir, each parsed first. */
static int
hf_tokenizer_copy(const char *src, const char *dir, int *have_gen)
{
	char from[PATH_MAX], to[PATH_MAX], rs[PATH_MAX], rd[PATH_MAX];
	struct stat st;
	int rc;

	if (stat(src, &st) != 0)
		return fte_error_set(FTE_ENOENT, "%s: tokenizer not found", src);
	if (!S_ISDIR(st.st_mode)) {
		const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
		snprintf(to, sizeof(to), "%s/%s", dir, base);
		*have_gen = strcmp(base, "generation_config.json") == 0;
		return copy_checked(src, to, base);
	}
	/* copying a directory onto itself is a no-op */
	if (realpath(src, rs) != NULL && realpath(dir, rd) != NULL && strcmp(rs, rd) == 0) {
		snprintf(from, sizeof(from), "%s/generation_config.json", src);
		*have_gen = lstat(from, &st) == 0;
		return FTE_OK;
	}
	for (size_t i = 0; i < sizeof(hf_tokenizer_files) / sizeof(hf_tokenizer_files[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", src, hf_tokenizer_files[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, hf_tokenizer_files[i]);
		/* lstat: a link is not skipped, it is refused by copy_checked */
		if (lstat(from, &st) != 0)
			continue;
		if ((rc = copy_checked(from, to, hf_tokenizer_files[i])) != FTE_OK)
			return rc;
		if (strcmp(hf_tokenizer_files[i], "generation_config.json") == 0)
			*have_gen = 1;
	}
	return FTE_OK;
}

int
fte_hf_save(fte_model *m, const char *tokenizer_dir, const char *dir)
{
	return fte_hf_save_dtype(m, tokenizer_dir, dir, FTE_DTYPE_F32);
}

int
fte_hf_save_dtype(fte_model *m, const char *tokenizer_dir, const char *dir, int dtype)
{
	static const struct { int st; const char *torch; } dtypes[] = {
		[FTE_DTYPE_F32] = {FTE_ST_F32, "float32"},
		[FTE_DTYPE_F16] = {FTE_ST_F16, "float16"},
		[FTE_DTYPE_BF16] = {FTE_ST_BF16, "bfloat16"},
	};
	const fte_config *c = fte_model_config(m);
	char path[PATH_MAX];
	hf_bufs bufs = {0, NULL};
	fte_st_entry *e;
	json_t *j;
	int n = 0, rc, have_gen = 0;

	if (dtype < FTE_DTYPE_F32 || dtype > FTE_DTYPE_BF16)
		return fte_error_set(FTE_EINVAL, "%s: unknown dtype %d", dir, dtype);
	/* Qwen2 ignores head_dim, GPT-2 has none */
	if ((c->arch == FTE_ARCH_GPT2 || c->arch == FTE_ARCH_QWEN2) &&
	    c->head_dim * c->n_heads != c->dim)
		return fte_error_set(FTE_ENOTSUP, "%s: %s needs head_dim * n_heads == dim", dir,
		    fte_arch_get(c->arch)->title);
	/* Qwen's config.json cannot say every layer slides */
	if ((c->arch == FTE_ARCH_QWEN2 || c->arch == FTE_ARCH_QWEN3) && c->sliding_window > 0)
		return fte_error_set(FTE_ENOTSUP, "%s: a %s sliding window over every layer has no "
		    "config.json form", dir, fte_arch_get(c->arch)->title);
	/* older transformers fix Gemma 2's alternation */
	if (c->arch == FTE_ARCH_GEMMA2 && c->sliding_window > 0 && c->sliding_pattern != 2)
		return fte_error_set(FTE_ENOTSUP, "%s: Gemma 2's sliding layers alternate "
		    "(sliding_pattern 2, not %d)", dir, c->sliding_pattern);
	/* config.json's yarn factor must be the one every transformers reads */
	if (c->rope.type == FTE_ROPE_YARN && c->rope.orig_ctx != c->max_seq_len &&
	    (double)c->max_seq_len / c->rope.orig_ctx != c->rope.factor)
		return fte_error_set(FTE_ENOTSUP, "%s: yarn factor %g is not max_seq_len / "
		    "original_max_position_embeddings (%d / %d)", dir, c->rope.factor,
		    c->max_seq_len, c->rope.orig_ctx);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return fte_error_set(FTE_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
	e = calloc((size_t)fte_model_num_tensors(m), sizeof(*e));
	bufs.p = calloc((size_t)fte_model_num_tensors(m), sizeof(*bufs.p));
	if (e == NULL || bufs.p == NULL) {
		free(e);
		free(bufs.p);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", dir);
	}
	rc = hf_entries_build(m, e, &n, &bufs);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	if (rc == FTE_OK)
		rc = fte_st_write(path, e, n, dtypes[dtype].st, NULL);
	hf_bufs_free(&bufs);
	free(e);
	if (rc == FTE_OK && tokenizer_dir != NULL)
		rc = hf_tokenizer_copy(tokenizer_dir, dir, &have_gen);
	if (rc == FTE_OK && !have_gen) {
		j = json_pack("{s:o,s:o}", "bos_token_id", json_token(c->bos_id),
		    "eos_token_id", json_token(c->eos_id));
		snprintf(path, sizeof(path), "%s/generation_config.json", dir);
		rc = j ? fte__json_save(j, path) : fte_error_set(FTE_ENOMEM, "out of memory");
		json_decref(j);
	}
	/* config.json last: a directory without it is not a model yet */
	if (rc == FTE_OK) {
		j = hf_config_build(c, dtypes[dtype].torch);
		snprintf(path, sizeof(path), "%s/config.json", dir);
		rc = j ? fte__json_save(j, path) : fte_error_set(FTE_ENOMEM, "%s: out of memory", dir);
		json_decref(j);
	}
	return rc;
}
