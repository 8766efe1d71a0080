/*
 * rows.c - training rows from tokenized dataset parts.  See rows.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rows.h"

static int
rows_grow(struct rows *r, int with_segments)
{
	size_t cap = r->cap ? r->cap * 2 : 64;
	int *t = realloc(r->tokens, cap * r->T * sizeof(int));

	if (t == NULL)
		return -1;
	r->tokens = t;
	if ((t = realloc(r->targets, cap * r->T * sizeof(int))) == NULL)
		return -1;
	r->targets = t;
	if (with_segments) {
		if ((t = realloc(r->segments, cap * r->T * sizeof(int))) == NULL)
			return -1;
		r->segments = t;
	}
	r->cap = cap;
	return 0;
}

void
rows_free(struct rows *r)
{
	free(r->tokens);
	free(r->targets);
	free(r->segments);
}

/* SFT: one record a row, or packed. */
int
rows_sft(struct rows *r, const struct tokcache_form *f, int pack, rows_refit_fn refit, void *ctx,
    char *err, size_t err_len)
{
	const int32_t *ids = f->ids;
	size_t used = (size_t)r->T;     /* positions taken in the last row: none open */

	for (size_t i = 0; i < f->n; ids += f->len[i], i++) {
		const int32_t *rid = ids;
		const uint8_t *mask = f->mask + (ids - f->ids);
		size_t n_ids = f->len[i], n_prompt = f->n_prompt[i], dropped = 0, drop = 0, fit_n, P;
		int *fit_ids = NULL, *tk, *tg, *sg;
		unsigned char *fit_mask = NULL;

		if (n_ids > (size_t)r->T + 1 && refit != NULL &&
		    refit(ctx, i, (size_t)r->T + 1, &fit_ids, &fit_mask, &fit_n, &dropped) == 0) {
			/* its later turns with their context */
			rid = fit_ids;
			mask = fit_mask;
			n_ids = fit_n;
			r->shortened++;
			r->turns_dropped += dropped;
		} else if (n_ids > (size_t)r->T + 1) {
			/* One exchange too long: drop prompt tokens after the first
			 * (BOS) so the answer keeps its place, then cut the end. */
			size_t excess = n_ids - ((size_t)r->T + 1);

			drop = n_prompt > 1 ? (excess < n_prompt - 1 ? excess : n_prompt - 1) : 0;
			n_ids -= drop;
			if (n_ids > (size_t)r->T + 1)
				n_ids = (size_t)r->T + 1;
			r->cut++;
		}
		P = n_ids > 1 ? n_ids - 1 : 1;  /* positions: every token but the last predicts */
		if (!pack || used + P > (size_t)r->T) {
			if (r->n == r->cap && rows_grow(r, pack) != 0) {
				snprintf(err, err_len, "out of memory");
				free(fit_ids);
				free(fit_mask);
				return -1;
			}
			tk = r->tokens + r->n * r->T;
			tg = r->targets + r->n * r->T;
			for (int t = 0; t < r->T; t++) {
				tk[t] = 0;  /* padding after the records: never attended to by them */
				tg[t] = -1;
				if (pack)
					r->segments[r->n * r->T + t] = -1;
			}
			r->n++;
			used = 0;
		}
		tk = r->tokens + (r->n - 1) * r->T + used;
		tg = r->targets + (r->n - 1) * r->T + used;
		sg = pack ? r->segments + (r->n - 1) * r->T + used : NULL;
		/* position p of a cut record is rid[p + drop], but BOS stays */
		for (size_t t = 0; t + 1 < n_ids; t++) {
			tk[t] = rid[t > 0 ? t + drop : 0];
			tg[t] = mask[t + 1 + drop] ? rid[t + 1 + drop] : -1;
			if (sg != NULL)
				sg[t] = (int)i;
		}
		used += P;
		free(fit_ids);
		free(fit_mask);
	}
	return 0;
}

/* CPT: documents (BOS ... EOS) packed into rows of T with segment ids. */
int
rows_cpt(struct rows *r, const struct tokcache_form *f, int eos, char *err, size_t err_len)
{
	size_t n = 0, cap = f->n_ids + f->n + 1;   /* tokens, an EOS each */
	int *stream = malloc(cap * sizeof(int)), *seg = malloc(cap * sizeof(int));
	const int32_t *ids = f->ids;
	int rc = -1;

	if (stream == NULL || seg == NULL) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < f->n; ids += f->len[i], i++) {
		for (size_t k = 0; k < f->len[i]; k++) {
			stream[n] = ids[k];
			seg[n++] = (int)i;
		}
		if (eos >= 0) {
			stream[n] = eos;
			seg[n++] = (int)i;
		}
	}
	for (size_t start = 0; start + 1 < n; start += (size_t)r->T) {
		int *tk, *tg, *sg;

		if (r->n == r->cap && rows_grow(r, 1) != 0) {
			snprintf(err, err_len, "out of memory");
			goto out;
		}
		tk = r->tokens + r->n * r->T;
		tg = r->targets + r->n * r->T;
		sg = r->segments + r->n * r->T;
		for (int t = 0; t < r->T; t++) {
			size_t p = start + (size_t)t;

			if (p + 1 < n) {
				tk[t] = stream[p];
				sg[t] = seg[p];
				/* The last token of a document does not predict the next one. */
				tg[t] = seg[p + 1] == seg[p] ? stream[p + 1] : -1;
			} else {
				tk[t] = 0;
				sg[t] = -1;
				tg[t] = -1;
			}
		}
		r->n++;
	}
	rc = 0;
out:
	free(stream);
	free(seg);
	return rc;
}

