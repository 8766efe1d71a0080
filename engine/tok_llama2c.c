/*
 * tok_llama2c.c - llama2.c tokenizer.bin.
 *
 * Format: int32 max_token_length, then per token: float32 score, int32 len,
 * len bytes.  The file holds no count; entries run to the end of the file.
 * U+2581 is stored as a space, BOS/EOS as "\n<s>\n"/"\n</s>\n", and the 256
 * byte-fallback pieces as "<0x00>".."<0xFF>".  Scores are -merge_rank.
 *
 * The tokenizer is loaded as SentencePiece-style BPE (tok_sp_build, shared
 * with tok_spm.c's tokenizer.model): the text is given a dummy-prefix space
 * and spaces become U+2581 (what llama2.c's encode does with its dummy
 * prefix), pieces merge best score first, characters missing from the
 * vocabulary fall back to byte tokens, and the decoder undoes it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define METASPACE "\xe2\x96\x81"

static int32_t
rd_i32(const unsigned char *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* control_name maps the stored BOS/EOS/unk pieces to their plain names. */
static const char *
control_name(const unsigned char *p, int32_t len)
{
	static const char *names[] = { "<unk>", "<s>", "</s>" };

	while (len > 0 && (*p == '\n')) {
		p++;
		len--;
	}
	while (len > 0 && p[len - 1] == '\n')
		len--;
	for (int i = 0; i < 3; i++)
		if ((size_t)len == strlen(names[i]) && memcmp(p, names[i], (size_t)len) == 0)
			return names[i];
	return NULL;
}

/* The SentencePiece pipeline: dummy prefix, spaces as U+2581, and the
 * decoder that undoes both; room for n control pieces. */
static int
add_steps(fte_tokenizer *t, int n, int squeeze)
{
	t->norm = calloc(3, sizeof(*t->norm));
	t->dec = calloc(4, sizeof(*t->dec));
	t->added = calloc((size_t)n, sizeof(*t->added));
	if (t->norm == NULL || t->dec == NULL || t->added == NULL)
		return FTE_ENOMEM;
	if (squeeze)
		t->norm[t->n_norm++] = (struct tok_norm){ .kind = TOK_NORM_SQUEEZE };
	t->norm[t->n_norm++] = (struct tok_norm){ .kind = TOK_NORM_PREPEND, .a = strdup(METASPACE) };
	t->norm[t->n_norm] = (struct tok_norm){ .kind = TOK_NORM_REPLACE, .a = strdup(" "),
	    .b = strdup(METASPACE) };
	t->n_norm++;
	t->n_dec = 4;
	t->dec[0] = (struct tok_dec){ TOK_DEC_REPLACE, strdup(METASPACE), strdup(" "), 0, 0 };
	t->dec[1] = (struct tok_dec){ TOK_DEC_BYTE_FALLBACK, NULL, NULL, 0, 0 };
	t->dec[2] = (struct tok_dec){ TOK_DEC_FUSE, NULL, NULL, 0, 0 };
	t->dec[3] = (struct tok_dec){ TOK_DEC_STRIP, strdup(" "), NULL, 1, 0 };
	if (t->norm[t->n_norm - 2].a == NULL || t->norm[t->n_norm - 1].a == NULL ||
	    t->norm[t->n_norm - 1].b == NULL ||
	    t->dec[0].a == NULL || t->dec[0].b == NULL || t->dec[3].a == NULL)
		return FTE_ENOMEM;
	return FTE_OK;
}

int
tok_sp_build(const char *path, const struct tok_sp_piece *pc, int n, int squeeze,
    fte_tokenizer **out)
{
	fte_tokenizer *t;
	uint8_t *skip;
	int rc;

	if ((rc = tok_new(path, n, &t)) != FTE_OK)
		return rc;
	t->score = malloc((size_t)n * sizeof(float));
	skip = calloc((size_t)n, 1);
	if (t->score == NULL || skip == NULL || add_steps(t, n, squeeze) != FTE_OK) {
		free(skip);
		fte_tokenizer_free(t);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	t->merge_mode = TOK_MERGE_SCORE;
	for (int i = 0; i < n; i++) {
		if (!isfinite(pc[i].score)) {
			free(skip);
			fte_tokenizer_free(t);
			return fte_error_set(FTE_EFORMAT, "%s: piece %d has a non-finite score", path, i);
		}
		t->score[i] = pc[i].score;
		if ((t->piece[i] = malloc(pc[i].len + 1)) == NULL) {
			free(skip);
			fte_tokenizer_free(t);
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		}
		memcpy(t->piece[i], pc[i].s, pc[i].len);
		t->piece[i][pc[i].len] = '\0';
		t->piece_len[i] = (uint32_t)pc[i].len;
		skip[i] = pc[i].kind == TOK_SP_UNUSED;
		if (pc[i].kind == TOK_SP_UNKNOWN || pc[i].kind == TOK_SP_CONTROL) {
			struct tok_added *a = &t->added[t->n_added++];

			if ((a->content = strdup(t->piece[i])) == NULL) {
				free(skip);
				fte_tokenizer_free(t);
				return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			}
			a->len = t->piece_len[i];
			a->id = i;
			a->special = 1;
			t->special[i] = 1;
			if (pc[i].kind == TOK_SP_UNKNOWN)
				t->unk_id = i;
			else if (strcmp(t->piece[i], "<s>") == 0)
				t->bos = i;
			else if (strcmp(t->piece[i], "</s>") == 0)
				t->eos = i;
		}
	}
	if ((rc = tok_finish(t)) != FTE_OK) {
		free(skip);
		fte_tokenizer_free(t);
		return rc;
	}
	/* Byte pieces, control tokens and unused pieces are not reachable by
	 * merging text. */
	for (int b = 0; b < 256; b++)
		if (t->byte_id[b] >= 0)
			skip[t->byte_id[b]] = 1;
	for (int i = 0; i < n; i++) {
		if (t->special[i] || skip[i])
			continue;
		if (tok_strmap_put(&t->vocab, t->piece[i], t->piece_len[i], i) != FTE_OK) {
			free(skip);
			fte_tokenizer_free(t);
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		}
	}
	free(skip);
	/* With add_special, encode starts with BOS as llama2.c's encode(bos=1). */
	if (t->bos >= 0) {
		if ((t->prefix = malloc(sizeof(int))) == NULL) {
			fte_tokenizer_free(t);
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		}
		t->prefix[0] = t->bos;
		t->n_prefix = 1;
	}
	t->byte_fallback = 1;
	for (int b = 0; b < 256; b++)
		if (t->byte_id[b] < 0)
			t->byte_fallback = 0;
	if (!t->byte_fallback && t->unk_id < 0) {
		fte_tokenizer_free(t);
		return fte_error_set(FTE_EFORMAT, "%s: neither <0xNN> byte tokens nor <unk>: cannot encode all text", path);
	}
	tok_ws_setup(t);
	*out = t;
	return FTE_OK;
}

int
tok_llama2c_load(const char *path, const unsigned char *data, size_t size, fte_tokenizer **out)
{
	struct tok_sp_piece *pc;
	size_t off = 4;
	int n = 0, rc, max_len;

	if (size < 4)
		return fte_error_set(FTE_EFORMAT, "%s: truncated tokenizer.bin (%zu bytes, no header)", path, size);
	max_len = rd_i32(data);
	if (max_len <= 0 || max_len > 4096)
		return fte_error_set(FTE_EFORMAT, "%s: not a tokenizer.bin (max_token_length %d)", path, max_len);
	/* First pass: count and check the entries. */
	while (off < size) {
		if (size - off < 8)
			return fte_error_set(FTE_EFORMAT, "%s: truncated tokenizer.bin: entry %d header cut at byte %zu",
			    path, n, off);
		int32_t len = rd_i32(data + off + 4);
		if (len < 0 || len > max_len)
			return fte_error_set(FTE_EFORMAT, "%s: entry %d has length %d (max_token_length %d)",
			    path, n, len, max_len);
		if ((size_t)len > size - off - 8)
			return fte_error_set(FTE_EFORMAT, "%s: truncated tokenizer.bin: entry %d needs %d bytes, %zu left",
			    path, n, len, size - off - 8);
		off += 8 + (size_t)len;
		if (++n > (1 << 24))
			return fte_error_set(FTE_EFORMAT, "%s: more than 2^24 entries", path);
	}
	if (n < 3)
		return fte_error_set(FTE_EFORMAT, "%s: tokenizer.bin holds only %d entries", path, n);
	if ((pc = calloc((size_t)n, sizeof(*pc))) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	/* Second pass: each entry as a SentencePiece piece (U+2581 for the
	 * stored spaces, plain names for the control pieces). */
	off = 4;
	rc = FTE_OK;
	for (int i = 0; i < n && rc == FTE_OK; i++) {
		int32_t len = rd_i32(data + off + 4);
		const unsigned char *p = data + off + 8;
		const char *ctl = i < 3 ? control_name(p, len) : NULL;
		size_t spaces = 0, bad;
		char *q;

		memcpy(&pc[i].score, data + off, 4);
		off += 8 + (size_t)len;
		if (ctl != NULL) {
			pc[i].s = ctl;
			pc[i].len = strlen(ctl);
			pc[i].kind = strcmp(ctl, "<unk>") == 0 ? TOK_SP_UNKNOWN : TOK_SP_CONTROL;
			continue;
		}
		if ((bad = tok_utf8_check((const char *)p, (size_t)len)) != (size_t)len) {
			rc = fte_error_set(FTE_EFORMAT, "%s: entry %d is not valid UTF-8 (byte %zu)", path, i, bad);
			break;
		}
		for (int32_t k = 0; k < len; k++)
			spaces += p[k] == ' ';
		if ((q = malloc((size_t)len + 2 * spaces + 1)) == NULL) {
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			break;
		}
		pc[i].s = q;
		for (int32_t k = 0; k < len; k++) {
			if (p[k] == ' ') {
				memcpy(q, METASPACE, 3);
				q += 3;
			} else {
				*q++ = (char)p[k];
			}
		}
		pc[i].len = (size_t)(q - pc[i].s);
		pc[i].kind = TOK_SP_NORMAL;
		pc[i].owned = 1;
	}
	if (rc == FTE_OK)
		rc = tok_sp_build(path, pc, n, 0, out);
	for (int i = 0; i < n; i++)
		if (pc[i].owned)
			free((char *)pc[i].s);
	free(pc);
	return rc;
}
