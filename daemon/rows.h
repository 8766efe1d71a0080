/*
 * rows.h - training rows cut from a dataset part's tokens (tokcache.h):
 * SFT records one a row or packed several a row, CPT documents packed.
 */
#ifndef FT_ROWS_H
#define FT_ROWS_H

#include <stddef.h>

#include "tokcache.h"

/* n rows of T tokens with their targets (-1: no loss) and, for packed
 * rows, segment ids (the record or document of each position, -1 for
 * padding): attention never crosses a segment and positions restart at
 * each, so a packed record is trained as it is alone. */
struct rows {
	int T;
	size_t n, cap;
	int *tokens, *targets, *segments;
	size_t shortened;       /* SFT records that lost earlier turns to fit T */
	size_t turns_dropped;   /* the turns they lost */
	size_t cut;             /* SFT records whose last exchange alone is longer:
	                         * their prompt's start, then their end, cut */
};

/* rows_refit_fn writes record i of a form in at most max ids (malloc'd
 * *ids and *mask, chat_format_encode_fit), counting the turns it dropped;
 * 0, or -1 when it cannot fit. */
typedef int (*rows_refit_fn)(void *ctx, size_t i, size_t max, int **ids, unsigned char **mask,
    size_t *n_ids, size_t *dropped);

/* rows_sft cuts form f's records into r (T set, empty): one a row padded
 * at its end, or with pack as many whole records a row as fit, in order.
 * The targets are the form's mask.  A record longer than T + 1 tokens is
 * written again by refit (with ctx) without its earliest turns; when it
 * cannot be (one exchange too long; refit NULL: always) it loses the tokens
 * before its first target after the first (BOS), then its end.  Both are
 * counted.  0, or -1 with a message in err when memory runs out. */
int rows_sft(struct rows *r, const struct tokcache_form *f, int pack, rows_refit_fn refit,
    void *ctx, char *err, size_t err_len);

/* rows_cpt packs form f's documents, each followed by eos (when >= 0),
 * into r's rows; a document's last token predicts nothing. */
int rows_cpt(struct rows *r, const struct tokcache_form *f, int eos, char *err, size_t err_len);

/* rows_free frees r's arrays. */
void rows_free(struct rows *r);

#endif
