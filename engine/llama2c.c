/*
 * llama2c.c - reader for llama2.c legacy (version 0) checkpoints.
 *
 * Layout (little-endian): 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; vocab_size < 0 means a separate
 * classifier), then float32 tensors grouped by type across layers:
 * token_embedding (V, dim), rms_att (L, dim), wq (L, dim, dim),
 * wk (L, kv_dim, dim), wv (L, kv_dim, dim), wo (L, dim, dim),
 * rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
 * w3 (L, hidden, dim), rms_final (dim), freq_cis_real and freq_cis_imag
 * (seq_len, head_size / 2 each, skipped), and wcls (V, dim) if not shared.
 * Matrices are nn.Linear (out, in), already the canonical layout.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fte.h"
#include "fte_io_internal.h"

/* read_into reads the tensor named by fmt/layer from f. */
static int
read_into(FILE *f, fte_model *m, const char *path, const char *fmt, int layer)
{
	char name[FTE_NAME_MAX];
	fte_tensor *t;

	snprintf(name, sizeof(name), fmt, layer);
	if ((t = fte_model_find(m, name)) == NULL)
		return fte_error_set(FTE_EFORMAT, "%s: model has no tensor %s", path, name);
	if (fread(t->data, sizeof(float), t->numel, f) != t->numel)
		return fte_error_set(FTE_EFORMAT, "%s: truncated while reading %s", path, name);
	return FTE_OK;
}

int
fte_llama2c_load(const char *path, fte_model **out)
{
	static const char *grouped[] = {
		"layers.%d.attn_norm.weight", "layers.%d.attn.wq.weight",
		"layers.%d.attn.wk.weight", "layers.%d.attn.wv.weight",
		"layers.%d.attn.wo.weight", "layers.%d.ffn_norm.weight",
		"layers.%d.ffn.w1.weight", "layers.%d.ffn.w2.weight",
		"layers.%d.ffn.w3.weight",
	};
	int32_t h[7];
	fte_config c;
	fte_model *m = NULL;
	struct stat st;
	FILE *f;
	long long need;
	int rc;

	if ((rc = fte__fopen(path, &f)) != FTE_OK)
		return rc;
	if (fstat(fileno(f), &st) != 0 || fread(h, sizeof(int32_t), 7, f) != 7) {
		fclose(f);
		return fte_error_set(FTE_EFORMAT, "%s: too short for a llama2.c header", path);
	}
	memset(&c, 0, sizeof(c));
	c.arch = FTE_ARCH_LLAMA;
	c.dim = h[0];
	c.ffn_dim = h[1];
	c.n_layers = h[2];
	c.n_heads = h[3];
	c.n_kv_heads = h[4];
	c.tied_embeddings = h[5] > 0;
	c.vocab_size = h[5] > 0 ? h[5] : -(h[5] == INT32_MIN ? 0 : h[5]);
	c.max_seq_len = h[6];
	c.norm_eps = 1e-5f;
	c.rope_theta = 10000.0f;
	c.rope_style = FTE_ROPE_INTERLEAVED;
	c.bos_id = 1;
	c.eos_id = 2;
	for (int i = 0; i < 7; i++)
		if (h[i] <= 0 && i != 5) {
			fclose(f);
			return fte_error_set(FTE_EFORMAT, "%s: llama2.c header field %d is %d", path, i, h[i]);
		}
	if (c.dim > (1 << 16) || c.ffn_dim > (1 << 18) || c.n_heads > c.dim ||
	    c.vocab_size > (1 << 22) || c.max_seq_len > (1 << 20) || c.dim % c.n_heads != 0) {
		fclose(f);
		return fte_error_set(FTE_EFORMAT, "%s: implausible llama2.c header (dim %d, heads %d, vocab %d)",
		    path, c.dim, c.n_heads, c.vocab_size);
	}
	c.head_dim = c.dim / c.n_heads;
	if (c.bos_id >= c.vocab_size || c.eos_id >= c.vocab_size)
		c.bos_id = c.eos_id = -1;
	if (fte_config_check(&c) != FTE_OK) {
		fclose(f);
		return fte_error_set(FTE_EFORMAT, "%s: bad llama2.c header: %s", path, fte_last_error());
	}
	{
		long long L = c.n_layers, C = c.dim, F = c.ffn_dim, V = c.vocab_size;
		long long KD = (long long)c.n_kv_heads * c.head_dim;

		need = V * C + L * (2 * C + 2 * C * C + 2 * KD * C + 3 * C * F) + C +
		    (long long)c.max_seq_len * c.head_dim + (c.tied_embeddings ? 0 : V * C);
		need = 28 + 4 * need;
	}
	if ((long long)st.st_size != need) {
		fclose(f);
		return fte_error_set(FTE_EFORMAT, "%s: size %lld bytes, but its header implies %lld",
		    path, (long long)st.st_size, need);
	}
	if ((rc = fte_model_create(&c, &m)) != FTE_OK) {
		fclose(f);
		return rc;
	}
	rc = read_into(f, m, path, "tok_embeddings.weight", 0);
	for (size_t g = 0; g < sizeof(grouped) / sizeof(grouped[0]) && rc == FTE_OK; g++)
		for (int l = 0; l < c.n_layers && rc == FTE_OK; l++)
			rc = read_into(f, m, path, grouped[g], l);
	if (rc == FTE_OK)
		rc = read_into(f, m, path, "norm.weight", 0);
	if (rc == FTE_OK && !c.tied_embeddings) {
		if (fseek(f, (long)c.max_seq_len * c.head_dim * 4, SEEK_CUR) != 0)
			rc = fte_error_set(FTE_EFORMAT, "%s: truncated before the classifier", path);
		else
			rc = read_into(f, m, path, "output.weight", 0);
	}
	fclose(f);
	if (rc != FTE_OK) {
		fte_model_free(m);
		return rc;
	}
	*out = m;
	return FTE_OK;
}
