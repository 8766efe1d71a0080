/*
 * adapter.c - LoRA adapters in the engine's own file: one safetensors file
 * holding the trainer's adapter tensors under their canonical names
 * ("layers.{i}.attn.wq.lora_A.weight" (r, in), "...lora_B.weight" (out, r)),
 * F32, with __metadata__ {"adapter": "lora", "rank", "alpha", "dropout",
 * "targets"} as decimal strings.  A tuned model kept this way is a few
 * megabytes beside its base instead of a second copy of the base.
 *
 * Applying adds (alpha / rank) * B @ A into each base weight with the same
 * arithmetic, in the same order, as fte_trainer_lora_merge, so base + file
 * computes what the trained model did.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "transformer.h"

/* enum fte_lora_target bit order, as fte_lora_targets_parse reads them */
static const char *adapter_target_words[LORA_NMOD] = {
	"q", "k", "v", "o", "gate", "up", "down"
};

/* adapter_name_parse finds the layer, module and half (0 A, 1 B) that a
 * canonical adapter tensor name denotes for configuration c; -1 if none. */
static int
adapter_name_parse(const fte_config *c, const char *name, int *layer, int *mod, int *half)
{
	char prefix[FTE_NAME_MAX];
	int l, n = 0;

	if (sscanf(name, "layers.%d.%n", &l, &n) != 1 || n == 0 || l < 0 || l >= c->n_layers)
		return -1;
	for (int k = 0; k < LORA_NMOD; k++) {
		size_t len;
		int in, out;

		fte__lora_dims(c, k, &in, &out);
		if (out == 0)
			continue;
		fte__lora_name(c, l, k, prefix, sizeof(prefix));
		len = strlen(prefix);
		if (strncmp(name, prefix, len) != 0)
			continue;
		if (strcmp(name + len, ".lora_A.weight") != 0 && strcmp(name + len, ".lora_B.weight") != 0)
			return -1;
		*layer = l;
		*mod = k;
		*half = name[len + 6] == 'B';
		return 0;
	}
	return -1;
}

/* adapter_check checks every tensor of a against configuration c: a known
 * name, the shape its module and rank give, no duplicates, and lora_A and
 * lora_B of every module of *targets in every layer.  With *targets 0 the
 * modules present become the targets.  Errors are err, naming what. */
static int
adapter_check(const fte_config *c, const fte_peft_adapter *a, unsigned *targets,
    const char *what, int err)
{
	unsigned char *seen;
	unsigned present = 0, want;
	int rc = FTE_OK;

	if (a->rank <= 0 || !(a->alpha > 0) || !isfinite(a->alpha) || a->n_tensors <= 0)
		return fte_error_set(err, "%s: a LoRA adapter needs rank > 0, alpha > 0 and tensors", what);
	if ((seen = calloc((size_t)c->n_layers * LORA_NMOD, 1)) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", what);
	for (int i = 0; i < a->n_tensors && rc == FTE_OK; i++) {
		const fte_tensor *t = a->tensors[i];
		int l, k, h, in, out;
		int64_t rows, cols;

		if (adapter_name_parse(c, t->name, &l, &k, &h) != 0) {
			rc = fte_error_set(err, "%s: tensor \"%s\" is not a LoRA adapter of this model "
			    "(layers.{i}.<module>.lora_A.weight or lora_B.weight, %d layers)", what,
			    t->name, c->n_layers);
			break;
		}
		if (*targets != 0 && !(*targets & (1u << k))) {
			rc = fte_error_set(err, "%s: tensor \"%s\" adapts module %s, which is not among "
			    "the adapter's targets", what, t->name, adapter_target_words[k]);
			break;
		}
		fte__lora_dims(c, k, &in, &out);
		rows = h ? out : a->rank;
		cols = h ? a->rank : in;
		if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
			rc = fte_error_set(err, "%s: tensor \"%s\" has shape [%lld, %lld]; rank %d on this "
			    "model needs [%lld, %lld]", what, t->name, (long long)t->shape[0],
			    t->ndim == 2 ? (long long)t->shape[1] : -1LL, a->rank, (long long)rows,
			    (long long)cols);
			break;
		}
		if (seen[(size_t)l * LORA_NMOD + k] & (1u << h)) {
			rc = fte_error_set(err, "%s: tensor \"%s\" appears twice", what, t->name);
			break;
		}
		seen[(size_t)l * LORA_NMOD + k] |= (unsigned char)(1u << h);
		present |= 1u << k;
	}
	want = *targets != 0 ? fte__lora_targets_effective(c, *targets) : present;
	for (int l = 0; l < c->n_layers && rc == FTE_OK; l++)
		for (int k = 0; k < LORA_NMOD && rc == FTE_OK; k++) {
			char name[FTE_NAME_MAX];

			if (!(want & (1u << k)) || seen[(size_t)l * LORA_NMOD + k] == 3)
				continue;
			fte__lora_name(c, l, k, name, sizeof(name));
			rc = fte_error_set(err, "%s: %s lacks its lora_%s.weight", what, name,
			    seen[(size_t)l * LORA_NMOD + k] & 1 ? "B" : "A");
		}
	free(seen);
	if (rc == FTE_OK)
		*targets = want;
	return rc;
}

int
fte_adapter_save(const fte_config *c, const fte_peft_adapter *a, const char *path)
{
	char rank[16], alpha[32], dropout[32], targets[64] = "";
	const char *meta[] = { "adapter", "lora", "rank", rank, "alpha", alpha,
		"dropout", dropout, "targets", targets, NULL };
	unsigned bits = 0;
	fte_st_entry *e;
	int rc;

	if ((rc = adapter_check(c, a, &bits, path, FTE_EINVAL)) != FTE_OK)
		return rc;
	for (int k = 0; k < LORA_NMOD; k++)
		if (bits & (1u << k))
			snprintf(targets + strlen(targets), sizeof(targets) - strlen(targets), "%s%s",
			    targets[0] ? "," : "", adapter_target_words[k]);
	snprintf(rank, sizeof(rank), "%d", a->rank);
	/* %.9g reads back as the same float, so the scale is the trainer's */
	snprintf(alpha, sizeof(alpha), "%.9g", (double)a->alpha);
	snprintf(dropout, sizeof(dropout), "%.9g", (double)a->dropout);
	if ((e = calloc((size_t)a->n_tensors, sizeof(*e))) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	for (int i = 0; i < a->n_tensors; i++) {
		const fte_tensor *t = a->tensors[i];

		snprintf(e[i].name, sizeof(e[i].name), "%s", t->name);
		e[i].ndim = 2;
		e[i].shape[0] = t->shape[0];
		e[i].shape[1] = t->shape[1];
		e[i].data = t->data;
	}
	rc = fte_st_write(path, e, a->n_tensors, FTE_ST_F32, (const char *const *)meta);
	free(e);
	return rc;
}

/* adapter_meta_number reads a numeric __metadata__ value; -1 if it is
 * absent or not a whole decimal number. */
static int
adapter_meta_number(const fte_st_file *f, const char *key, double *out)
{
	const char *s = fte_st_metadata(f, key);
	char *end;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	*out = strtod(s, &end);
	return *end != '\0' || errno != 0 || !isfinite(*out) ? -1 : 0;
}

int
fte_adapter_load(const char *path, const fte_config *c, fte_peft_adapter **out)
{
	const char *kind, *words;
	double rank, alpha, dropout;
	fte_st_file *f = NULL;
	fte_peft_adapter *a = NULL;
	fte_tensor *ts;
	unsigned targets;
	size_t floats = 0;
	char *p;
	int rc;

	if ((rc = fte_st_open(path, &f)) != FTE_OK)
		return rc;
	kind = fte_st_metadata(f, "adapter");
	words = fte_st_metadata(f, "targets");
	if (kind == NULL || strcmp(kind, "lora") != 0) {
		rc = fte_error_set(FTE_EFORMAT, "%s: not a LoRA adapter file (no __metadata__ "
		    "\"adapter\": \"lora\")", path);
		goto out;
	}
	if (adapter_meta_number(f, "rank", &rank) != 0 || rank < 1 || rank > INT_MAX ||
	    rank != floor(rank) || adapter_meta_number(f, "alpha", &alpha) != 0 || !(alpha > 0) ||
	    adapter_meta_number(f, "dropout", &dropout) != 0 || words == NULL ||
	    fte_lora_targets_parse(words, &targets) != FTE_OK || f->n_tensors == 0) {
		rc = fte_error_set(FTE_EFORMAT, "%s: adapter __metadata__ needs a whole rank >= 1, "
		    "alpha > 0, dropout and targets (q,k,v,o,gate,up,down), and the file tensors", path);
		goto out;
	}
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_st_tensor *t = &f->tensors[i];

		if (t->ndim != 2 || strlen(t->name) >= FTE_NAME_MAX) {
			rc = fte_error_set(FTE_EFORMAT, "%s: tensor \"%.80s\" is not a LoRA matrix "
			    "(2 dimensions, a canonical name)", path, t->name);
			goto out;
		}
		floats += t->numel;
	}
	/* one block: the adapter, its tensor pointers, the tensors, the data */
	a = calloc(1, sizeof(*a) + (size_t)f->n_tensors * (sizeof(fte_tensor *) + sizeof(fte_tensor)) +
	    floats * sizeof(float));
	if (a == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	a->rank = (int)rank;
	a->alpha = (float)alpha;
	a->dropout = (float)dropout;
	a->n_tensors = f->n_tensors;
	a->tensors = (fte_tensor *const *)(a + 1);
	ts = (fte_tensor *)((fte_tensor **)(a + 1) + f->n_tensors);
	p = (char *)(ts + f->n_tensors);
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_st_tensor *t = &f->tensors[i];

		((fte_tensor **)(a + 1))[i] = &ts[i];
		snprintf(ts[i].name, sizeof(ts[i].name), "%s", t->name);
		ts[i].ndim = 2;
		ts[i].shape[0] = t->shape[0];
		ts[i].shape[1] = t->shape[1];
		ts[i].numel = t->numel;
		ts[i].data = (float *)p;
		p += t->numel * sizeof(float);
		if ((rc = fte_st_read_f32(f, t, ts[i].data)) != FTE_OK)
			goto out;
	}
	if ((rc = adapter_check(c, a, &targets, path, FTE_EFORMAT)) != FTE_OK)
		goto out;
	*out = a;
	a = NULL;
out:
	free(a);
	fte_st_close(f);
	return rc;
}

void
fte_adapter_free(fte_peft_adapter *a)
{
	free(a);
}

int
fte_adapter_apply(fte_model *m, const fte_peft_adapter *a)
{
	const fte_config *c = fte_model_config(m);
	unsigned targets = 0;
	int rc, r = a->rank;
	float scale = a->alpha / (float)a->rank;

	if (m->base != NULL)
		return fte_error_set(FTE_EINVAL, "LoRA adapter: the model shares its weights with its "
		    "base (fte_adapter_attach); apply to a loaded copy");
	if ((rc = adapter_check(c, a, &targets, "LoRA adapter", FTE_EINVAL)) != FTE_OK)
		return rc;
	for (int i = 0; i < a->n_tensors; i++) {
		const fte_tensor *A = a->tensors[i], *B = NULL;
		char name[FTE_NAME_MAX + 16];
		fte_tensor *W;
		int l, k, h, in, out;

		if (adapter_name_parse(c, A->name, &l, &k, &h) != 0 || h != 0)
			continue;
		fte__lora_name(c, l, k, name, sizeof(name));
		for (int j = 0; j < a->n_tensors && B == NULL; j++) {
			int lj, kj, hj;

			if (adapter_name_parse(c, a->tensors[j]->name, &lj, &kj, &hj) == 0 &&
			    lj == l && kj == k && hj == 1)
				B = a->tensors[j];
		}
		strcat(name, ".weight");
		fte__lora_dims(c, k, &in, &out);
		if ((W = fte_model_find(m, name)) == NULL || W->shape[0] != out || W->shape[1] != in)
			return fte_error_set(FTE_EINVAL, "LoRA adapter: the model has no %s of shape "
			    "[%d, %d]", name, out, in);
		/* W[o][i] += scale * sum_k B[o][k] A[k][i], as fte_trainer_lora_merge */
		for (int o = 0; o < out; o++)
			for (int q = 0; q < r; q++) {
				float bk = scale * B->data[(size_t)o * r + q];

				for (int x = 0; x < in; x++)
					W->data[(size_t)o * in + x] += bk * A->data[(size_t)q * in + x];
			}
	}
	return FTE_OK;
}

int
fte_adapter_attach(const fte_model *base, const fte_peft_adapter *a, fte_model **out)
{
	const fte_config *c = &base->cfg;
	fte_lora_config lc = { a->rank, a->alpha, 0.0f, 0 };
	fte__lora *lo;
	fte_model *m;
	size_t n;
	int rc;

	if (base->base != NULL)
		return fte_error_set(FTE_EINVAL, "LoRA adapter: the base already carries an adapter; "
		    "attach to a model with weights of its own");
	if ((rc = adapter_check(c, a, &lc.targets, "LoRA adapter", FTE_EINVAL)) != FTE_OK)
		return rc;
	n = fte__lora_numel(c, a->rank, lc.targets);
	/* one block: the fte__lora, then its floats, freed by fte_model_free */
	if ((m = malloc(sizeof(*m))) == NULL ||
	    (lo = calloc(1, sizeof(*lo) + n * sizeof(float))) == NULL) {
		free(m);
		return fte_error_set(FTE_ENOMEM, "LoRA adapter: out of memory");
	}
	/* dropout 0: serving computes the adapter's expectation, as the merge */
	fte__lora_view(c, &lc, (float *)(lo + 1), lo);
	for (int i = 0; i < a->n_tensors; i++) {
		const fte_tensor *t = a->tensors[i];
		int l, k, h;

		if (adapter_name_parse(c, t->name, &l, &k, &h) == 0)
			memcpy(h ? lo->b[l][k] : lo->a[l][k], t->data, (size_t)t->numel * sizeof(float));
	}
	*m = *base;
	m->base = base;
	m->lora = lo;
	m->lora_floats = n;
	*out = m;
	return FTE_OK;
}
