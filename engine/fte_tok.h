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

/* Flags for the _flags variants of encode and decode. */
enum fte_tok_flags {
	FTE_TOK_ADD_SPECIAL = 1,   /* encode: run the post-processor (BOS, ...) */
	FTE_TOK_PARSE_SPECIAL = 2, /* encode: special tokens written in the text
	                            * (e.g. "<|im_end|>") become their ids */
	FTE_TOK_SKIP_SPECIAL = 4,  /* decode: leave special tokens out */
};

/* fte_tokenizer_encode_flags is fte_tokenizer_encode with explicit flags.
 * fte_tokenizer_encode(t, ..., add_special, ...) is FTE_TOK_PARSE_SPECIAL
 * plus FTE_TOK_ADD_SPECIAL when add_special, as Hugging Face encodes.
 * Without FTE_TOK_PARSE_SPECIAL, user text that spells a special token is
 * tokenized as plain text.  Text must be valid UTF-8 for tokenizer.json
 * tokenizers (FTE_EINVAL otherwise); llama2.c ones byte-fall-back any bytes. */
int fte_tokenizer_encode_flags(const fte_tokenizer *t, const char *text, size_t len,
    unsigned flags, int **ids, size_t *n_ids);

/* fte_tokenizer_decode_flags is fte_tokenizer_decode with
 * FTE_TOK_SKIP_SPECIAL allowed.  An id outside the vocabulary is FTE_ERANGE.
 * Special tokens decode to their text ("<s>"). */
int fte_tokenizer_decode_flags(const fte_tokenizer *t, const int *ids, size_t n_ids,
    unsigned flags, char **text, size_t *len);

/* fte_tokenizer_token returns token id's string as the vocabulary spells it
 * (U+2581 for spaces in SentencePiece vocabularies, byte-level characters in
 * GPT-2 ones) and its length in *len (may be NULL); NULL for an unknown id.
 * The string belongs to the tokenizer. */
const char *fte_tokenizer_token(const fte_tokenizer *t, int id, size_t *len);

/* fte_tokenizer_token_id returns the id of an added token or vocabulary
 * string (e.g. "<|im_end|>"), or -1. */
int fte_tokenizer_token_id(const fte_tokenizer *t, const char *token);

/* fte_tokenizer_is_special is 1 for special tokens (BOS, EOS, ChatML markers). */
int fte_tokenizer_is_special(const fte_tokenizer *t, int id);

#endif
