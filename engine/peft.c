/*
 * peft.c - LoRA adapters exported as a Hugging Face PEFT directory:
 * adapter_config.json + adapter_model.safetensors, loadable with
 * PeftModel.from_pretrained on top of the base model that fte_hf_save writes.
 *
 * Names follow PEFT: base_model.model.<HF module>.lora_A.weight (r, in) and
 * .lora_B.weight (out, r); the scale is lora_alpha / r as in the trainer.
 * Two layouts need care:
 *  - a llama2.c model (interleaved RoPE) is exported with its q/k rows in
 *    rotate-half order, so lora_B of q/k gets the same row permutation;
 *  - GPT-2 packs q, k and v into one Conv1D c_attn, Phi-3 into qkv_proj (and
 *    gate, up into gate_up_proj), so their adapters become one adapter of
 *    rank (number of member adapters) * r: A stacked, B block diagonal, which
 *    computes exactly the separate updates.  rank_pattern and alpha_pattern
 *    give the fused module that rank and a matching alpha, so the scale stays
 *    alpha / r.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fte.h"
#include "fte_io_internal.h"

/* Canonical module -> PEFT module, by enum fte_hf_layout (Gemma names its
 * projections as Llama); NULL: the layout has no such module. */
static const struct {
	const char *canon;
	const char *name[4];          /* llama, gpt2, gemma, phi3 */
} peft_modules[] = {
	{"attn.wq", {"self_attn.q_proj", "attn.c_attn", "self_attn.q_proj", "self_attn.qkv_proj"}},
	{"attn.wk", {"self_attn.k_proj", "attn.c_attn", "self_attn.k_proj", "self_attn.qkv_proj"}},
	{"attn.wv", {"self_attn.v_proj", "attn.c_attn", "self_attn.v_proj", "self_attn.qkv_proj"}},
	{"attn.wo", {"self_attn.o_proj", "attn.c_proj", "self_attn.o_proj", "self_attn.o_proj"}},
	{"ffn.w1", {"mlp.gate_proj", NULL, "mlp.gate_proj", "mlp.gate_up_proj"}},
	{"ffn.w3", {"mlp.up_proj", NULL, "mlp.up_proj", "mlp.gate_up_proj"}},
	{"ffn.w2", {"mlp.down_proj", NULL, "mlp.down_proj", "mlp.down_proj"}},
	{"ffn.fc", {NULL, "mlp.c_fc", NULL, NULL}},
	{"ffn.proj", {NULL, "mlp.c_proj", NULL, NULL}},
};
#define PEFT_NMOD (int)(sizeof(peft_modules) / sizeof(peft_modules[0]))

/* The fused modules: their members (peft_modules indices, -1 ends) in the
 * order of the fused weight's rows. */
static const struct peft_fused {
	int layout;                  /* enum fte_hf_layout */
	const char *module;
	int member[4];
} peft_fused[] = {
	{FTE_HF_GPT2, "attn.c_attn", {0, 1, 2, -1}},
	{FTE_HF_PHI3, "self_attn.qkv_proj", {0, 1, 2, -1}},
	{FTE_HF_PHI3, "mlp.gate_up_proj", {4, 5, -1}},
};
#define PEFT_NFUSED (int)(sizeof(peft_fused) / sizeof(peft_fused[0]))

/* peft_fused_of is the fused group module k belongs to in layout, or -1. */
static int
peft_fused_of(int layout, int k)
{
	for (int g = 0; g < PEFT_NFUSED; g++)
		for (int i = 0; peft_fused[g].layout == layout && peft_fused[g].member[i] >= 0; i++)
			if (peft_fused[g].member[i] == k)
				return g;
	return -1;
}

/* The adapters of one layer, by module: A (r, in) and B (out, r). */
typedef struct peft_layer {
	const fte_tensor *a[PEFT_NMOD], *b[PEFT_NMOD];
} peft_layer;

/* peft_parse sorts the adapter tensors into layers, checking names and
 * shapes against the base model. */
static int
peft_parse(fte_model *m, const fte_peft_adapter *ad, peft_layer *layers)
{
	const fte_config *c = fte_model_config(m);

	for (int i = 0; i < ad->n_tensors; i++) {
		const fte_tensor *t = ad->tensors[i];
		const char *tail = strstr(t->name, ".lora_");
		char mod[FTE_NAME_MAX], base[FTE_NAME_MAX + 16], ab;
		int layer, k, n = 0;
		fte_tensor *w;

		if (sscanf(t->name, "layers.%d.%n", &layer, &n) != 1 || n == 0 || tail == NULL ||
		    (strcmp(tail, ".lora_A.weight") != 0 && strcmp(tail, ".lora_B.weight") != 0) ||
		    tail <= t->name + n || layer < 0 || layer >= c->n_layers)
			return fte_error_set(FTE_EINVAL, "LoRA tensor \"%s\": unexpected name", t->name);
		ab = tail[6];
		snprintf(mod, sizeof(mod), "%.*s", (int)(tail - t->name - n), t->name + n);
		for (k = 0; k < PEFT_NMOD; k++)
			if (strcmp(mod, peft_modules[k].canon) == 0)
				break;
		if (k == PEFT_NMOD || peft_modules[k].name[fte_arch_get(c->arch)->hf_layout] == NULL)
			return fte_error_set(FTE_EINVAL, "LoRA tensor \"%s\": no such module", t->name);
		snprintf(base, sizeof(base), "layers.%d.%s.weight", layer, mod);
		if ((w = fte_model_find(m, base)) == NULL)
			return fte_error_set(FTE_EINVAL, "LoRA tensor \"%s\": the model has no %s", t->name, base);
		if (t->ndim != 2 || (ab == 'A' ? t->shape[0] != ad->rank || t->shape[1] != w->shape[1]
		    : t->shape[0] != w->shape[0] || t->shape[1] != ad->rank))
			return fte_error_set(FTE_EINVAL, "LoRA tensor \"%s\": shape [%lld, %lld] does not fit %s with rank %d",
			    t->name, (long long)t->shape[0], (long long)t->shape[1], base, ad->rank);
		if (ab == 'A')
			layers[layer].a[k] = t;
		else
			layers[layer].b[k] = t;
	}
	for (int l = 0; l < c->n_layers; l++)
		for (int k = 0; k < PEFT_NMOD; k++)
			if ((layers[l].a[k] == NULL) != (layers[l].b[k] == NULL))
				return fte_error_set(FTE_EINVAL, "LoRA layer %d %s: lora_A and lora_B must come together",
				    l, peft_modules[k].canon);
	return FTE_OK;
}

/* Temporary arrays made for the export. */
typedef struct peft_bufs {
	int n;
	float **p;
} peft_bufs;

static float *
peft_alloc(peft_bufs *b, size_t numel)
{
	float *p = calloc(numel + 1, sizeof(float));

	if (p != NULL)
		b->p[b->n++] = p;
	return p;
}

static void
entry_set(fte_st_entry *e, const char *prefix, const char *module, char ab,
    int64_t rows, int64_t cols, const float *data)
{
	snprintf(e->name, sizeof(e->name), "%s%s.lora_%c.weight", prefix, module, ab);
	e->ndim = 2;
	e->shape[0] = rows;
	e->shape[1] = cols;
	e->data = data;
}

/* peft_fused_build packs layer l's adapters of fused group g into one:
 * A (np*r, in) the members' A stacked, B (rows of all members, np*r) with
 * each member's B in its own rows and columns.  *np is how many members
 * have adapters; nothing is written when none has. */
static int
peft_fused_build(fte_model *m, const peft_layer *ly, int l, int g, int r, const char *prefix,
    fte_st_entry *e, int *n, peft_bufs *bufs, int *np, unsigned *used)
{
	const struct peft_fused *fu = &peft_fused[g];
	int64_t rows = 0, in = 0;
	float *a, *b;

	*np = 0;
	for (int i = 0; fu->member[i] >= 0; i++) {
		char name[FTE_NAME_MAX];
		const fte_tensor *w;

		snprintf(name, sizeof(name), "layers.%d.%s.weight", l, peft_modules[fu->member[i]].canon);
		if ((w = fte_model_find(m, name)) == NULL)
			return fte_error_set(FTE_EINVAL, "LoRA export: the model has no %s", name);
		rows += w->shape[0];
		in = w->shape[1];
		*np += ly->a[fu->member[i]] != NULL;
	}
	if (*np == 0)
		return FTE_OK;
	a = peft_alloc(bufs, (size_t)*np * r * in);
	b = peft_alloc(bufs, (size_t)rows * *np * r);
	if (a == NULL || b == NULL)
		return fte_error_set(FTE_ENOMEM, "LoRA export: out of memory");
	for (int i = 0, p = 0, row0 = 0; fu->member[i] >= 0; i++) {
		int k = fu->member[i];
		char name[FTE_NAME_MAX];

		snprintf(name, sizeof(name), "layers.%d.%s.weight", l, peft_modules[k].canon);
		if (ly->a[k] != NULL) {
			memcpy(a + (size_t)p * r * in, ly->a[k]->data, (size_t)r * in * sizeof(float));
			for (int o = 0; o < ly->b[k]->shape[0]; o++)
				memcpy(b + ((size_t)row0 + o) * *np * r + (size_t)p * r,
				    ly->b[k]->data + (size_t)o * r, (size_t)r * sizeof(float));
			*used |= 1u << k;
			p++;
		}
		row0 += (int)fte_model_find(m, name)->shape[0];
	}
	entry_set(&e[(*n)++], prefix, fu->module, 'A', (int64_t)*np * r, in, a);
	entry_set(&e[(*n)++], prefix, fu->module, 'B', rows, (int64_t)*np * r, b);
	return FTE_OK;
}

/* peft_entries_build lists the PEFT tensors; fused[g] receives the rank
 * multiplier of fused group g (how many member adapters each layer has;
 * -1 if the layout has no such group). */
static int
peft_entries_build(fte_model *m, const fte_peft_adapter *ad, const peft_layer *layers,
    fte_st_entry *e, int *n_out, peft_bufs *bufs, int *fused, unsigned *used)
{
	const fte_config *c = fte_model_config(m);
	int lay = fte_arch_get(c->arch)->hf_layout, n = 0, r = ad->rank, rc;
	int permute = fte_arch_get(c->arch)->rope && c->rope_style == FTE_ROPE_INTERLEAVED;
	char prefix[64];

	for (int g = 0; g < PEFT_NFUSED; g++)
		fused[g] = -1;
	for (int l = 0; l < c->n_layers; l++) {
		const peft_layer *ly = &layers[l];
		snprintf(prefix, sizeof(prefix), lay == FTE_HF_GPT2 ? "base_model.model.transformer.h.%d."
		    : "base_model.model.model.layers.%d.", l);
		for (int g = 0; g < PEFT_NFUSED; g++) {
			int np;

			if (peft_fused[g].layout != lay)
				continue;
			if ((rc = peft_fused_build(m, ly, l, g, r, prefix, e, &n, bufs, &np, used)) != FTE_OK)
				return rc;
			if (fused[g] >= 0 && np != fused[g])
				return fte_error_set(FTE_EINVAL, "LoRA: every layer must adapt the same "
				    "modules of %s", peft_fused[g].module);
			fused[g] = np;
		}
		for (int k = 0; k < PEFT_NMOD; k++) {
			const char *module = peft_modules[k].name[lay];
			const float *bdata;
			if (ly->a[k] == NULL || peft_fused_of(lay, k) >= 0)
				continue;
			bdata = ly->b[k]->data;
			if (permute && k < 2) {
				/* rows h*D + 2i + j go to h*D + j*D/2 + i, as the base */
				int heads = k == 0 ? c->n_heads : c->n_kv_heads, D = c->head_dim;
				float *pb = peft_alloc(bufs, ly->b[k]->numel);
				if (pb == NULL)
					return fte_error_set(FTE_ENOMEM, "LoRA export: out of memory");
				for (int h = 0; h < heads; h++)
					for (int i = 0; i < D / 2; i++)
						for (int j = 0; j < 2; j++)
							memcpy(pb + ((size_t)h * D + (size_t)j * (D / 2) + i) * r,
							    bdata + ((size_t)h * D + 2 * (size_t)i + j) * r,
							    (size_t)r * sizeof(float));
				bdata = pb;
			}
			entry_set(&e[n++], prefix, module, 'A', ly->a[k]->shape[0], ly->a[k]->shape[1],
			    ly->a[k]->data);
			entry_set(&e[n++], prefix, module, 'B', ly->b[k]->shape[0], ly->b[k]->shape[1], bdata);
			*used |= 1u << k;
		}
	}
	*n_out = n;
	return FTE_OK;
}

static json_t *
peft_config_build(const fte_config *c, const fte_peft_adapter *ad, unsigned used, const int *fused)
{
	int lay = fte_arch_get(c->arch)->hf_layout, gpt2 = lay == FTE_HF_GPT2;
	json_t *targets = json_array(), *rank_pattern = json_object(), *alpha_pattern = json_object();

	for (int k = 0; k < PEFT_NMOD; k++) {
		const char *module = peft_modules[k].name[lay];
		const char *dot;
		json_t *v;
		size_t i;
		int seen = 0;
		if (!(used & (1u << k)) || module == NULL)
			continue;
		/* target_modules holds the last name component, once */
		dot = strrchr(module, '.');
		json_array_foreach(targets, i, v)
			seen |= strcmp(json_string_value(v), dot + 1) == 0;
		if (!seen)
			json_array_append_new(targets, json_string(dot + 1));
	}
	for (int g = 0; g < PEFT_NFUSED; g++)
		if (fused[g] > 1) {
			const char *last = strrchr(peft_fused[g].module, '.') + 1;

			json_object_set_new(rank_pattern, last, json_integer((json_int_t)fused[g] * ad->rank));
			json_object_set_new(alpha_pattern, last, json_real((double)ad->alpha * fused[g]));
		}
	return json_pack("{s:s,s:s,s:o,s:i,s:f,s:f,s:o,s:s,s:b,s:b,s:n,s:b,s:b,s:b,s:o,s:o,s:n}",
	    "peft_type", "LORA",
	    "task_type", "CAUSAL_LM",
	    "base_model_name_or_path", ad->base_model ? json_string(ad->base_model) : json_null(),
	    "r", ad->rank,
	    "lora_alpha", (double)ad->alpha,
	    "lora_dropout", (double)ad->dropout,
	    "target_modules", targets,
	    "bias", "none",
	    "fan_in_fan_out", gpt2,
	    "inference_mode", 1,
	    "modules_to_save",
	    "init_lora_weights", 1,
	    "use_rslora", 0,
	    "use_dora", 0,
	    "rank_pattern", rank_pattern,
	    "alpha_pattern", alpha_pattern,
	    "layers_to_transform");
}

int
fte_peft_save(fte_model *m, const fte_peft_adapter *ad, const char *dir)
{
	const fte_config *c = fte_model_config(m);
	char path[PATH_MAX];
	peft_layer *layers;
	peft_bufs bufs = {0, NULL};
	fte_st_entry *e;
	unsigned used = 0;
	int n = 0, fused[PEFT_NFUSED], rc;
	json_t *j;

	if (ad->rank <= 0 || !(ad->alpha > 0) || ad->n_tensors <= 0)
		return fte_error_set(FTE_EINVAL, "%s: LoRA export needs rank > 0, alpha > 0 and adapters", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return fte_error_set(FTE_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
	layers = calloc((size_t)c->n_layers, sizeof(*layers));
	e = calloc((size_t)ad->n_tensors + 1, sizeof(*e));
	bufs.p = calloc((size_t)ad->n_tensors + 1, sizeof(*bufs.p));
	if (layers == NULL || e == NULL || bufs.p == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", dir);
		goto out;
	}
	if ((rc = peft_parse(m, ad, layers)) != FTE_OK ||
	    (rc = peft_entries_build(m, ad, layers, e, &n, &bufs, fused, &used)) != FTE_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
	if ((rc = fte_st_write(path, e, n, FTE_ST_F32, NULL)) != FTE_OK)
		goto out;
	if ((j = peft_config_build(c, ad, used, fused)) == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", dir);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
	rc = fte__json_save(j, path);
	json_decref(j);
out:
	for (int i = 0; i < bufs.n; i++)
		free(bufs.p[i]);
	free(bufs.p);
	free(e);
	free(layers);
	return rc;
}
