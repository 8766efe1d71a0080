/*
 * tok_internal.h - the tokenizer object shared by the loaders (tok_llama2c.c,
 * tok_json.c) and the encode/decode pipeline (tok.c).  Not a public header.
 *
 * Every tokenizer is described as a Hugging Face style pipeline:
 *
 *   text -> split on added tokens -> normalizer steps -> pre-tokenizer steps
 *        -> BPE per word -> post-processor (prefix/suffix ids)
 *   ids  -> token strings -> decoder steps -> text
 *
 * A llama2.c tokenizer.bin is loaded as the equivalent SentencePiece-style
 * pipeline (Prepend/Replace normalizer, byte fallback, the Llama decoder
 * chain) whose BPE merges by piece score instead of by merge rank.
 */
#ifndef TOK_INTERNAL_H
#define TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "fte.h"

/* string -> int32 map with open addressing; keys are borrowed, not copied. */
struct tok_strmap {
	struct tok_strmap_slot {
		const char *key;
		uint32_t len;
		uint32_t hash;
		int32_t val;
	} *slots;
	uint32_t cap;   /* power of two, 0 when empty */
	uint32_t n;
};

/* (left id, right id) -> (merge rank, merged id). */
struct tok_pairmap {
	struct tok_pair_slot {
		uint64_t key;   /* UINT64_MAX marks an empty slot */
		int32_t rank;
		int32_t id;
	} *slots;
	uint32_t cap;
	uint32_t n;
};

enum tok_norm_kind { TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_UNICODE, TOK_NORM_SQUEEZE };

struct tok_norm {
	enum tok_norm_kind kind;
	char *a;        /* Prepend: the prefix; Replace: the pattern */
	char *b;        /* Replace: the content */
	int form;       /* Unicode: utf8proc options of NFC, NFD, NFKC or NFKD */
};                      /* Squeeze: SentencePiece's remove_extra_whitespaces */

/* How a pre-tokenizer split keeps what its pattern matched (HF names). */
enum tok_split_behavior {
	TOK_SPLIT_ISOLATED, TOK_SPLIT_REMOVED,
	TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
};

struct tok_pre {
	pcre2_code *re;
	enum tok_split_behavior behavior;
};

enum tok_dec_kind {
	TOK_DEC_REPLACE, TOK_DEC_BYTE_FALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP,
	TOK_DEC_BYTE_LEVEL, TOK_DEC_METASPACE,
};

struct tok_dec {
	enum tok_dec_kind kind;
	char *a, *b;    /* Replace: pattern, content; Strip/Metaspace: the char */
	int start, stop; /* Strip counts; Metaspace: start = strip first space */
};

struct tok_added {
	char *content;
	uint32_t len;
	int32_t id;
	uint8_t special, lstrip, rstrip, single_word;
};

enum tok_merge_mode { TOK_MERGE_RANK, TOK_MERGE_SCORE };

struct fte_tokenizer {
	char *path;
	int n_vocab;            /* ids are 0 .. n_vocab-1 */
	char **piece;           /* token string per id (NULL for a hole) */
	uint32_t *piece_len;
	uint8_t *special;       /* 1 for special added tokens */
	float *score;           /* TOK_MERGE_SCORE only */
	struct tok_strmap vocab;
	struct tok_pairmap merges;
	enum tok_merge_mode merge_mode;

	int byte_fallback, fuse_unk, ignore_merges;
	int unk_id;
	int byte_id[256];       /* id of "<0xNN>", -1 if absent */
	int byte_level;         /* words are mapped through bytes_to_unicode */
	int bl_id[256];         /* byte-level: id of the mapped char of each byte */
	char bl_char[256][2];   /* byte-level: that char in UTF-8 ... */
	uint8_t bl_len[256];    /* ... and its length */
	int utf8_only;          /* input must be valid UTF-8 */

	struct tok_norm *norm;
	int n_norm;
	/* Metaspace pre-tokenizer, applied first: replace ' ' by metaspace and
	 * prepend it (prepend: 0 never, 1 first segment, 2 always); split
	 * before each metaspace when meta_split. */
	char *metaspace;
	int meta_prepend, meta_split;
	int prefix_space;       /* ByteLevel add_prefix_space */
	/* SentencePiece-style vocabularies with no pre-tokenizer: when no piece
	 * has the space marker after another char, no merge crosses the start
	 * of a marker run, so each "word" is encoded alone (and cached). */
	const char *ws_split;
	struct tok_pre *pre;
	int n_pre;

	struct tok_added *added;
	int n_added;
	int32_t *added_first[256]; /* per first byte: added indices, longest first, -1 ends */

	int *prefix, n_prefix;  /* post-processor */
	int *suffix, n_suffix;

	struct tok_dec *dec;
	int n_dec;

	int bos, eos;
	char **spare;           /* vocabulary strings an added token replaced */
	int n_spare;
};

uint32_t tok_hash(const char *s, size_t len);
int tok_strmap_put(struct tok_strmap *m, const char *key, uint32_t len, int32_t val);
int32_t tok_strmap_get(const struct tok_strmap *m, const char *key, size_t len);
void tok_strmap_free(struct tok_strmap *m);
int tok_pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const struct tok_pair_slot *tok_pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b);
void tok_pairmap_free(struct tok_pairmap *m);

/* tok_utf8_char returns the length of the valid UTF-8 sequence at s (1 to 4
 * bytes), or 0 when the bytes there are not valid UTF-8. */
size_t tok_utf8_char(const unsigned char *s, size_t n);
/* tok_utf8_check returns the offset of the first invalid byte, or n. */
size_t tok_utf8_check(const char *s, size_t n);

/* tok_new allocates an empty tokenizer of n_vocab ids for path. */
int tok_new(const char *path, int n_vocab, fte_tokenizer **out);
/* tok_finish builds the added-token index and checks the byte tables; the
 * loaders call it last. */
int tok_finish(fte_tokenizer *t);
/* tok_ws_setup decides ws_split once the vocabulary map is complete. */
void tok_ws_setup(fte_tokenizer *t);
/* tok_regex compiles a pre-tokenizer pattern (UTF, UCP, JIT). */
int tok_regex(const fte_tokenizer *t, const char *pattern, int literal, pcre2_code **out);

/* tok_gpt2_load reads OpenAI's GPT-2 encoder.json + vocab.bpe pair. */
int tok_gpt2_load(const char *encoder, const char *bpe, fte_tokenizer **out);
int tok_llama2c_load(const char *path, const unsigned char *data, size_t size, fte_tokenizer **out);
/* tok_spm_load reads a SentencePiece tokenizer.model (ModelProto). */
int tok_spm_load(const char *path, const unsigned char *data, size_t size, fte_tokenizer **out);

/* A SentencePiece piece, as tokenizer.bin and tokenizer.model give it. */
enum tok_sp_kind { TOK_SP_NORMAL, TOK_SP_UNKNOWN, TOK_SP_CONTROL, TOK_SP_UNUSED };
struct tok_sp_piece {
	const char *s;          /* UTF-8, U+2581 for spaces; <s> and </s> name BOS and EOS */
	size_t len;
	float score;            /* higher merges first */
	enum tok_sp_kind kind;
	int owned;              /* s was malloc'd by the reader */
};
/* tok_sp_build makes the SentencePiece-BPE tokenizer of n pieces (byte
 * pieces are the ones named <0xNN>); with squeeze, spaces at either end
 * of the text are removed and runs of them become one, before the dummy
 * prefix (SentencePiece's remove_extra_whitespaces). */
int tok_sp_build(const char *path, const struct tok_sp_piece *pc, int n, int squeeze,
    fte_tokenizer **out);
/* tok_json_load parses a tokenizer.json; with_config also reads BOS/EOS
 * from the tokenizer_config.json beside path. */
int tok_json_load(const char *path, const char *data, size_t size, int with_config, fte_tokenizer **out);
/* tok_json_build makes the tokenizer of a tokenizer.json already parsed
 * (or built, as for GGUF vocabularies), reading no file beside it. */
int tok_json_build(const char *path, const json_t *root, fte_tokenizer **out);

#endif
