/* model.c - model configuration, parameter layout and random init. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "transformer.h"
#include "kernels/kernels.h"

/* rope_check accepts the scalings rope_inv_freq computes, with numbers
 * that keep its table finite and positive. */
static int
rope_check(const fte_config *c)
{
	const fte_rope_scaling *r = &c->rope;

	if (r->type == FTE_ROPE_DEFAULT)
		return FTE_OK;
	if (r->type < FTE_ROPE_DEFAULT || r->type > FTE_ROPE_LONGROPE)
		return fte_error_set(FTE_EINVAL, "model config: unknown rope scaling type %d", r->type);
	if (!(r->factor > 0) || !isfinite(r->factor))
		return fte_error_set(FTE_EINVAL, "model config: rope scaling factor must be positive");
	if (r->type == FTE_ROPE_DYNAMIC && (c->rope_dim > 0 ? c->rope_dim : c->head_dim) <= 2)
		return fte_error_set(FTE_EINVAL, "model config: dynamic rope scaling needs head_dim > 2");
	if ((r->type == FTE_ROPE_LLAMA3 || r->type == FTE_ROPE_YARN) && r->orig_ctx <= 0)
		return fte_error_set(FTE_EINVAL, "model config: rope scaling needs original_max_position_embeddings");
	if (r->type == FTE_ROPE_LLAMA3 && !(r->low_freq_factor > 0 &&
	    r->high_freq_factor > r->low_freq_factor && isfinite(r->high_freq_factor)))
		return fte_error_set(FTE_EINVAL, "model config: llama3 rope scaling needs "
		    "0 < low_freq_factor < high_freq_factor");
	if (r->type == FTE_ROPE_LONGROPE) {
		int half = (c->rope_dim > 0 ? c->rope_dim : c->head_dim) / 2;

		if (half > FTE_ROPE_PAIRS_MAX)
			return fte_error_set(FTE_EINVAL, "model config: longrope has at most %d pairs",
			    FTE_ROPE_PAIRS_MAX);
		if (r->orig_ctx <= 0 || c->max_seq_len > r->orig_ctx || !(r->attn_factor >= 0))
			return fte_error_set(FTE_EINVAL, "model config: longrope needs a context of at "
			    "most original_max_position_embeddings");
		for (int i = 0; i < half; i++)
			if (!(r->short_factor[i] > 0 && r->long_factor[i] > 0 &&
			    isfinite(r->short_factor[i]) && isfinite(r->long_factor[i])))
				return fte_error_set(FTE_EINVAL, "model config: longrope factor %d must be "
				    "positive", i);
	}
	if (r->type == FTE_ROPE_YARN && !(r->beta_fast > 0 && r->beta_slow > 0 &&
	    isfinite(r->beta_fast) && isfinite(r->beta_slow) && r->attn_factor >= 0 &&
	    isfinite(r->attn_factor)))
		return fte_error_set(FTE_EINVAL, "model config: yarn rope scaling needs positive "
		    "beta_fast, beta_slow and attention_factor");
	return FTE_OK;
}

int
fte_config_check(const fte_config *c)
{
	const fte_arch_info *ai;
	int rc;

	if (c == NULL)
		return fte_error_set(FTE_EINVAL, "model config: NULL");
	if ((ai = fte_arch_get(c->arch)) == NULL)
		return fte_error_set(FTE_EINVAL, "model config: unknown arch %d", c->arch);
#define POS(f) if (c->f <= 0) \
	return fte_error_set(FTE_EINVAL, "model config: " #f " = %d must be positive", c->f)
	POS(n_layers); POS(dim); POS(n_heads); POS(n_kv_heads); POS(head_dim);
	POS(ffn_dim); POS(vocab_size); POS(max_seq_len);
#undef POS
	if (c->n_layers > FTE_MAX_LAYERS)
		return fte_error_set(FTE_EINVAL, "model config: n_layers = %d exceeds %d",
		    c->n_layers, FTE_MAX_LAYERS);
	if (c->n_heads % c->n_kv_heads != 0)
		return fte_error_set(FTE_EINVAL, "model config: n_heads %d not a multiple of n_kv_heads %d",
		    c->n_heads, c->n_kv_heads);
	if (!(c->norm_eps > 0.0f))
		return fte_error_set(FTE_EINVAL, "model config: norm_eps must be positive");
	if (c->sliding_window < 0 || c->sliding_pattern < 0 || (!ai->window && c->sliding_window))
		return fte_error_set(FTE_EINVAL, "model config: %s has no sliding window", ai->title);
	if (!(c->query_scale >= 0 && c->attn_softcap >= 0 && c->final_softcap >= 0 &&
	    c->rope_local_theta >= 0 && isfinite(c->query_scale) && isfinite(c->attn_softcap) &&
	    isfinite(c->final_softcap) && isfinite(c->rope_local_theta)))
		return fte_error_set(FTE_EINVAL, "model config: query_scale, soft-caps and "
		    "rope_local_theta must be finite and not negative");
	if (ai->rope) {
		if (c->rope_style != FTE_ROPE_HALF && c->rope_style != FTE_ROPE_INTERLEAVED)
			return fte_error_set(FTE_EINVAL, "model config: unknown rope_style %d", c->rope_style);
		if (!(c->rope_theta > 0.0f))
			return fte_error_set(FTE_EINVAL, "model config: rope_theta must be positive");
		if (c->head_dim % 2 != 0)
			return fte_error_set(FTE_EINVAL, "model config: head_dim %d must be even for RoPE", c->head_dim);
		if (c->rope_dim < 0 || c->rope_dim % 2 != 0 || c->rope_dim > c->head_dim)
			return fte_error_set(FTE_EINVAL, "model config: rope_dim %d must be even and at "
			    "most head_dim %d", c->rope_dim, c->head_dim);
		if ((rc = rope_check(c)) != FTE_OK)
			return rc;
	} else {
		if (c->n_kv_heads != c->n_heads)
			return fte_error_set(FTE_EINVAL, "model config: %s needs n_kv_heads == n_heads", ai->title);
		if (c->n_heads * c->head_dim != c->dim)
			return fte_error_set(FTE_EINVAL, "model config: %s needs n_heads * head_dim == dim", ai->title);
		if (c->rope_local_theta > 0)
			return fte_error_set(FTE_EINVAL, "model config: %s has no RoPE", ai->title);
	}
	if (ai->always_tied && !c->tied_embeddings)
		return fte_error_set(FTE_EINVAL, "model config: %s has a tied head", ai->title);
	if ((c->bos_id >= c->vocab_size) || (c->eos_id >= c->vocab_size))
		return fte_error_set(FTE_EINVAL, "model config: bos/eos id outside the vocabulary");
	return FTE_OK;
}

int
fte_config_layer_sliding(const fte_config *c, int l)
{
	return c->sliding_window > 0 && (c->sliding_pattern == 0 || (l + 1) % c->sliding_pattern != 0);
}

/* One row of the layout; the walk below is the canonical order. */
typedef struct layout_row {
	const char *name;    /* printf format with %d for the layer */
	int slot, rows, cols;
} layout_row;

/* layout_rows fills rows for one layer (layer >= 0) or the embeddings
 * (layer == -1) or the tail (layer == -2); returns how many. */
static int
layout_rows(const fte_config *c, int layer, layout_row *r)
{
	const fte_arch_info *ai = fte_arch_get(c->arch);
	int n = 0, C = c->dim, qd = c->n_heads * c->head_dim;
	int kd = c->n_kv_heads * c->head_dim, F = c->ffn_dim;
	int nb = ai->bias, qb = ai->bias || ai->qkv_bias;

#define ROW(nm, s, rr, cc) (r[n++] = (layout_row){ nm, s, rr, cc })
	if (layer == -1) {
		ROW("tok_embeddings.weight", SLOT_TOK_EMB, c->vocab_size, C);
		if (!ai->rope)
			ROW("pos_embeddings.weight", SLOT_POS_EMB, c->max_seq_len, C);
	} else if (layer == -2) {
		ROW("norm.weight", SLOT_NORM_W, 0, C);
		if (nb)
			ROW("norm.bias", SLOT_NORM_B, 0, C);
		if (!c->tied_embeddings)
			ROW("output.weight", SLOT_OUTPUT, c->vocab_size, C);
	} else {
		ROW("layers.%d.attn_norm.weight", SLOT_ATTN_NORM_W, 0, C);
		if (nb)
			ROW("layers.%d.attn_norm.bias", SLOT_ATTN_NORM_B, 0, C);
		ROW("layers.%d.attn.wq.weight", SLOT_WQ, qd, C);
		if (qb)
			ROW("layers.%d.attn.wq.bias", SLOT_BQ, 0, qd);
		ROW("layers.%d.attn.wk.weight", SLOT_WK, kd, C);
		if (qb)
			ROW("layers.%d.attn.wk.bias", SLOT_BK, 0, kd);
		ROW("layers.%d.attn.wv.weight", SLOT_WV, kd, C);
		if (qb)
			ROW("layers.%d.attn.wv.bias", SLOT_BV, 0, kd);
		ROW("layers.%d.attn.wo.weight", SLOT_WO, C, qd);
		if (nb)
			ROW("layers.%d.attn.wo.bias", SLOT_BO, 0, C);
		if (ai->qk_norm) {
			ROW("layers.%d.attn.q_norm.weight", SLOT_Q_NORM, 0, c->head_dim);
			ROW("layers.%d.attn.k_norm.weight", SLOT_K_NORM, 0, c->head_dim);
		}
		if (ai->post_norms)
			ROW("layers.%d.attn_post_norm.weight", SLOT_ATTN_POST_NORM, 0, C);
		ROW("layers.%d.ffn_norm.weight", SLOT_FFN_NORM_W, 0, C);
		if (nb)
			ROW("layers.%d.ffn_norm.bias", SLOT_FFN_NORM_B, 0, C);
		if (ai->mlp == FTE_MLP_GELU) {
			ROW("layers.%d.ffn.fc.weight", SLOT_W_UP, F, C);
			if (nb)
				ROW("layers.%d.ffn.fc.bias", SLOT_B_UP, 0, F);
			ROW("layers.%d.ffn.proj.weight", SLOT_W_DOWN, C, F);
			if (nb)
				ROW("layers.%d.ffn.proj.bias", SLOT_B_DOWN, 0, C);
		} else {
			ROW("layers.%d.ffn.w1.weight", SLOT_W_GATE, F, C);
			ROW("layers.%d.ffn.w3.weight", SLOT_W_UP, F, C);
			ROW("layers.%d.ffn.w2.weight", SLOT_W_DOWN, C, F);
		}
		if (ai->post_norms)
			ROW("layers.%d.ffn_post_norm.weight", SLOT_FFN_POST_NORM, 0, C);
	}
#undef ROW
	return n;
}

size_t
fte__config_num_params(const fte_config *c)
{
	layout_row rows[32];
	size_t n = 0;

	for (int l = -1; l <= c->n_layers; l++) {
		int k = layout_rows(c, l == c->n_layers ? -2 : l, rows);

		for (int j = 0; j < k; j++)
			n += (size_t)(rows[j].rows > 0 ? rows[j].rows : 1) * (size_t)rows[j].cols;
	}
	return n;
}

void
fte__weights_view(const fte_model *m, float *base, fte__weights *w)
{
	memset(w, 0, sizeof(*w));
	for (int i = 0; i < m->n_tensors; i++) {
		float *p = base + m->offset[i];
		fte__layer *ly = &w->layer[m->layer[i]];

		switch (m->slot[i]) {
		case SLOT_TOK_EMB: w->tok_emb = p; break;
		case SLOT_POS_EMB: w->pos_emb = p; break;
		case SLOT_ATTN_NORM_W: ly->attn_norm_w = p; break;
		case SLOT_ATTN_NORM_B: ly->attn_norm_b = p; break;
		case SLOT_WQ: ly->wq = p; break;
		case SLOT_BQ: ly->bq = p; break;
		case SLOT_WK: ly->wk = p; break;
		case SLOT_BK: ly->bk = p; break;
		case SLOT_WV: ly->wv = p; break;
		case SLOT_BV: ly->bv = p; break;
		case SLOT_WO: ly->wo = p; break;
		case SLOT_BO: ly->bo = p; break;
		case SLOT_Q_NORM: ly->q_norm_w = p; break;
		case SLOT_K_NORM: ly->k_norm_w = p; break;
		case SLOT_ATTN_POST_NORM: ly->attn_post_w = p; break;
		case SLOT_FFN_POST_NORM: ly->ffn_post_w = p; break;
		case SLOT_FFN_NORM_W: ly->ffn_norm_w = p; break;
		case SLOT_FFN_NORM_B: ly->ffn_norm_b = p; break;
		case SLOT_W_GATE: ly->w_gate = p; break;
		case SLOT_W_UP: ly->w_up = p; break;
		case SLOT_B_UP: ly->b_up = p; break;
		case SLOT_W_DOWN: ly->w_down = p; break;
		case SLOT_B_DOWN: ly->b_down = p; break;
		case SLOT_NORM_W: w->norm_w = p; break;
		case SLOT_NORM_B: w->norm_b = p; break;
		case SLOT_OUTPUT: w->output = p; break;
		}
	}
	if (m->cfg.tied_embeddings)
		w->output = w->tok_emb;
}

size_t
fte_config_num_params(const fte_config *cfg)
{
	return fte_config_check(cfg) == FTE_OK ? fte__config_num_params(cfg) : 0;
}

int
fte_model_create(const fte_config *cfg, fte_model **out)
{
	fte_model *m;
	layout_row rows[32];
	int n, cap, rc;
	size_t off = 0;

	if ((rc = fte_config_check(cfg)) != FTE_OK)
		return rc;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return fte_error_set(FTE_ENOMEM, "model: out of memory");
	m->cfg = *cfg;
	m->ai = fte_arch_get(cfg->arch);
	cap = 8 + 32 * cfg->n_layers;
	m->tensors = calloc((size_t)cap, sizeof(*m->tensors));
	m->offset = calloc((size_t)cap, sizeof(*m->offset));
	m->slot = calloc((size_t)cap, 1);
	m->layer = calloc((size_t)cap, 1);
	if (!m->tensors || !m->offset || !m->slot || !m->layer)
		goto nomem;
	for (int l = -1; l <= cfg->n_layers; l++) {
		int which = l == cfg->n_layers ? -2 : l;

		n = layout_rows(cfg, which, rows);
		for (int j = 0; j < n; j++) {
			fte_tensor *t = &m->tensors[m->n_tensors];

			snprintf(t->name, sizeof(t->name), rows[j].name, which);
			if (rows[j].rows > 0) {
				t->ndim = 2;
				t->shape[0] = rows[j].rows;
				t->shape[1] = rows[j].cols;
			} else {
				t->ndim = 1;
				t->shape[0] = rows[j].cols;
				t->shape[1] = 1;
			}
			t->numel = (size_t)t->shape[0] * (size_t)t->shape[1];
			m->offset[m->n_tensors] = off;
			m->slot[m->n_tensors] = (unsigned char)rows[j].slot;
			m->layer[m->n_tensors] = (unsigned char)(which >= 0 ? which : 0);
			off += t->numel;
			m->n_tensors++;
		}
	}
	m->n_params = off;
	if ((m->mem = calloc(off, sizeof(float))) == NULL)
		goto nomem;
	if (fte_arch_get(cfg->arch)->rope) {
		int half = (cfg->rope_dim > 0 ? cfg->rope_dim : cfg->head_dim) / 2;

		if ((m->rope_freq = calloc((size_t)half * 2, sizeof(float))) == NULL)
			goto nomem;
		rope_inv_freq(cfg, m->rope_freq, &m->rope_attn);
		m->rope_freq_local = m->rope_freq;
		m->rope_attn_local = m->rope_attn;
		if (cfg->rope_local_theta > 0) {
			/* Gemma 3's sliding layers: their own base, no scaling */
			fte_config lc = *cfg;

			lc.rope_theta = cfg->rope_local_theta;
			memset(&lc.rope, 0, sizeof(lc.rope));
			m->rope_freq_local = m->rope_freq + half;
			rope_inv_freq(&lc, m->rope_freq_local, &m->rope_attn_local);
		}
	}
	for (int i = 0; i < m->n_tensors; i++)
		m->tensors[i].data = m->mem + m->offset[i];
	fte__weights_view(m, m->mem, &m->w);
	*out = m;
	return FTE_OK;
nomem:
	fte_model_free(m);
	return fte_error_set(FTE_ENOMEM, "model: cannot allocate %zu parameters", off);
}

void
fte_model_free(fte_model *m)
{
	if (m == NULL)
		return;
	if (m->base != NULL) {
		/* the adapter is one block: the fte__lora, then its floats */
		free((void *)m->lora);
		free(m);
		return;
	}
	free(m->mem);
	free(m->rope_freq);
	free(m->tensors);
	free(m->offset);
	free(m->slot);
	free(m->layer);
	free(m);
}

const fte_config *
fte_model_config(const fte_model *m)
{
	return &m->cfg;
}

int
fte_model_num_tensors(const fte_model *m)
{
	return m->n_tensors;
}

fte_tensor *
fte_model_tensor(fte_model *m, int i)
{
	if (i < 0 || i >= m->n_tensors)
		return NULL;
	return &m->tensors[i];
}

fte_tensor *
fte_model_find(fte_model *m, const char *name)
{
	for (int i = 0; i < m->n_tensors; i++)
		if (strcmp(m->tensors[i].name, name) == 0)
			return &m->tensors[i];
	return NULL;
}

size_t
fte_model_num_params(const fte_model *m)
{
	return m->n_params;
}

size_t
fte_model_own_bytes(const fte_model *m)
{
	return (m->base != NULL ? m->lora_floats : m->n_params) * sizeof(float);
}

/* normal_pair draws two independent standard normals (Box-Muller). */
static void
normal_pair(uint64_t *s, double *a, double *b)
{
	double u1 = ((double)(fte__rng_next(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
	double u2 = (double)(fte__rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
	double r = sqrt(-2.0 * log(u1));

	*a = r * cos(2.0 * M_PI * u2);
	*b = r * sin(2.0 * M_PI * u2);
}

int
fte_model_init_random(fte_model *m, uint64_t seed)
{
	uint64_t rng = seed;
	float proj_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layers);

	for (int i = 0; i < m->n_tensors; i++) {
		fte_tensor *t = &m->tensors[i];
		int s = m->slot[i];
		float std = (s == SLOT_WO || s == SLOT_W_DOWN) ? proj_std : 0.02f;

		if (t->ndim == 2) {
			for (size_t j = 0; j < t->numel; j += 2) {
				double x, y;

				normal_pair(&rng, &x, &y);
				t->data[j] = (float)(std * x);
				if (j + 1 < t->numel)
					t->data[j + 1] = (float)(std * y);
			}
		} else {
			int norm = s == SLOT_ATTN_NORM_W || s == SLOT_FFN_NORM_W || s == SLOT_NORM_W ||
			    s == SLOT_Q_NORM || s == SLOT_K_NORM || s == SLOT_ATTN_POST_NORM ||
			    s == SLOT_FFN_POST_NORM;
			/* a norm starts as the identity: stored w - offset */
			float one = 1.0f - fte_arch_get(m->cfg.arch)->norm_offset;

			for (size_t j = 0; j < t->numel; j++)
				t->data[j] = norm ? one : 0.0f;
		}
	}
	return FTE_OK;
}
