/*
 * fte_tok.h - tokenizers: Hugging Face tokenizer.json (byte-level and
 * SentencePiece-style BPE) and llama2.c tokenizer.bin, behind one interface.
 */
#ifndef FTE_TOK_H
#define FTE_TOK_H

#include <stddef.h>

typedef struct fte_tokenizer fte_tokenizer;

/* fte_tokenizer_load reads a tokenizer.json, a llama2.c tokenizer.bin, or a
 * model directory that holds tokenizer.json.  On success *out owns it. */
int fte_tokenizer_load(const char *path, fte_tokenizer **out);

/* fte_tokenizer_free releases a tokenizer. NULL is allowed. */
void fte_tokenizer_free(fte_tokenizer *t);

/* fte_tokenizer_encode turns len bytes of UTF-8 text into token ids.  With
 * add_special the tokenizer's own post-processing runs (for example BOS for
 * Llama 2); without it only the text's tokens are produced.  On success
 * *ids is a malloc'd array of *n_ids ids, owned by the caller. */
int fte_tokenizer_encode(const fte_tokenizer *t, const char *text, size_t len,
    int add_special, int **ids, size_t *n_ids);

/* fte_tokenizer_decode turns ids back into text, as the tokenizer's decoder
 * does (byte fallback, metaspace, skipping nothing).  On success *text is a
 * malloc'd NUL-terminated string of *len bytes, owned by the caller. */
int fte_tokenizer_decode(const fte_tokenizer *t, const int *ids, size_t n_ids,
    char **text, size_t *len);

/* Vocabulary size and special ids (-1 when the tokenizer has none). */
int fte_tokenizer_vocab_size(const fte_tokenizer *t);
int fte_tokenizer_bos(const fte_tokenizer *t);
int fte_tokenizer_eos(const fte_tokenizer *t);

#endif
