/*
 * tok_gguf.c - the vocabulary a GGUF file embeds (tokenizer.ggml.*, as
 * llama.cpp's converter writes it and gguf.c's exporter does) as an
 * fte_vocab, and the tokenizer it describes: SentencePiece pieces by score
 * ("llama"), or byte-level BPE ("gpt2") with its merges and the
 * pre-tokenizer tokenizer.ggml.pre names, built as the equivalent
 * tokenizer.json.  Only the metadata is read (gguf_read.c), so a
 * vocabulary-only file serves as well as a whole model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "tok_internal.h"

static int
str_is(const fte_gguf_kv *kv, const char *want)
{
	uint64_t len;
	const char *s = fte_gguf_kv_str(kv, 0, &len);

	return s != NULL && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* sp_kind maps llama.cpp's token types onto SentencePiece piece kinds; byte
 * and user-defined pieces are ordinary pieces to the merger. */
static enum tok_sp_kind
sp_kind(int type)
{
	switch (type) {
	case FTE_TOKEN_UNKNOWN: return TOK_SP_UNKNOWN;
	case FTE_TOKEN_CONTROL: return TOK_SP_CONTROL;
	case FTE_TOKEN_UNUSED: return TOK_SP_UNUSED;
	default: return TOK_SP_NORMAL;
	}
}

/* gguf_strings copies an array of strings (each valid UTF-8, no NUL) into
 * out[0..kv->n). */
static int
gguf_strings(const fte_gguf_file *f, const fte_gguf_kv *kv, const char *what, char **out)
{
	const char **s = calloc((size_t)kv->n + 1, sizeof(*s));
	uint64_t *len = calloc((size_t)kv->n + 1, sizeof(*len));
	int rc = FTE_OK;

	if (s == NULL || len == NULL)
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	else
		fte_gguf_kv_strs(kv, s, len);
	for (uint64_t i = 0; rc == FTE_OK && i < kv->n; i++) {
		if (memchr(s[i], '\0', (size_t)len[i]) != NULL ||
		    tok_utf8_check(s[i], (size_t)len[i]) != len[i])
			rc = fte_error_set(FTE_EFORMAT, "%s: %s %llu is not valid UTF-8 text", f->path,
			    what, (unsigned long long)i);
		else if ((out[i] = strndup(s[i], (size_t)len[i])) == NULL)
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	}
	free(s);
	free(len);
	return rc;
}

static int
is_str_array(const fte_gguf_kv *kv)
{
	return kv != NULL && kv->type == FTE_GGUF_ARRAY && kv->arr_type == FTE_GGUF_STRING;
}

static int
is_num_array(const fte_gguf_kv *kv, uint64_t n)
{
	return kv->type == FTE_GGUF_ARRAY && kv->arr_type != FTE_GGUF_STRING && kv->n == n;
}

/* special_id reads tokenizer.ggml.<name>_token_id: -1 when absent, an error
 * when it names no token. */
static int
special_id(const fte_gguf_file *f, const char *name, int n, int *id)
{
	char key[64];
	const fte_gguf_kv *kv;
	int64_t x;

	snprintf(key, sizeof(key), "tokenizer.ggml.%s_token_id", name);
	*id = -1;
	if ((kv = fte_gguf_kv_find(f, key)) == NULL)
		return FTE_OK;
	x = fte_gguf_kv_int(kv);
	if (kv->type == FTE_GGUF_ARRAY || kv->type == FTE_GGUF_STRING || x < 0 || x >= n)
		return fte_error_set(FTE_EFORMAT, "%s: %s names no token of the %d", f->path, key, n);
	*id = (int)x;
	return FTE_OK;
}

int
fte__gguf_vocab(const fte_gguf_file *f, fte_vocab **out)
{
	const fte_gguf_kv *model = fte_gguf_kv_find(f, "tokenizer.ggml.model");
	const fte_gguf_kv *tok = fte_gguf_kv_find(f, "tokenizer.ggml.tokens");
	const fte_gguf_kv *scores = fte_gguf_kv_find(f, "tokenizer.ggml.scores");
	const fte_gguf_kv *types = fte_gguf_kv_find(f, "tokenizer.ggml.token_type");
	const fte_gguf_kv *merges = fte_gguf_kv_find(f, "tokenizer.ggml.merges");
	const fte_gguf_kv *pre = fte_gguf_kv_find(f, "tokenizer.ggml.pre");
	const fte_gguf_kv *tmpl = fte_gguf_kv_find(f, "tokenizer.chat_template");
	const fte_gguf_kv *add_bos = fte_gguf_kv_find(f, "tokenizer.ggml.add_bos_token");
	const char *s;
	uint64_t len = 0;
	fte_vocab *v;
	int kind, n, rc = FTE_OK;

	if (model == NULL)
		return fte_error_set(FTE_EFORMAT, "%s: no tokenizer.ggml.model: the file carries no "
		    "vocabulary; give the model's tokenizer with --tokenizer", f->path);
	if (str_is(model, "llama")) {
		kind = FTE_VOCAB_SPM;
	} else if (str_is(model, "gpt2")) {
		kind = FTE_VOCAB_BPE;
	} else {
		char name[32];
		s = fte_gguf_kv_str(model, 0, &len);
		return fte_error_set(FTE_ENOTSUP, "%s: tokenizer.ggml.model \"%s\" is not read (llama, "
		    "SentencePiece, and gpt2, byte-level BPE, are)", f->path, fte__gguf_shown(s, (size_t)len, name));
	}
	if (!is_str_array(tok) || tok->n == 0 || tok->n > (1 << 24) ||
	    (scores && !is_num_array(scores, tok->n)) || (types && !is_num_array(types, tok->n)))
		return fte_error_set(FTE_EFORMAT, "%s: tokenizer.ggml.tokens/scores/token_type missing, "
		    "of other types or of different lengths", f->path);
	if (kind == FTE_VOCAB_BPE && (!is_str_array(merges) || merges->n > (1 << 24)))
		return fte_error_set(FTE_EFORMAT, "%s: a gpt2 vocabulary needs tokenizer.ggml.merges, "
		    "an array of strings", f->path);
	n = (int)tok->n;
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->tokens = calloc((size_t)n, sizeof(*v->tokens))) == NULL ||
	    (v->scores = calloc((size_t)n, sizeof(*v->scores))) == NULL ||
	    (v->types = calloc((size_t)n, sizeof(*v->types))) == NULL ||
	    (kind == FTE_VOCAB_BPE && (v->merges = calloc((size_t)merges->n + 1,
	    sizeof(*v->merges))) == NULL)) {
		fte_vocab_free(v);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	}
	v->kind = kind;
	v->n_tokens = n;
	rc = gguf_strings(f, tok, "token", v->tokens);
	if (rc == FTE_OK && kind == FTE_VOCAB_BPE) {
		v->n_merges = (int)merges->n;
		rc = gguf_strings(f, merges, "merge", v->merges);
	}
	for (int i = 0; rc == FTE_OK && i < n; i++) {
		double t = types ? fte_gguf_kv_arr_num(types, (uint64_t)i) : FTE_TOKEN_NORMAL;
		v->scores[i] = scores ? (float)fte_gguf_kv_arr_num(scores, (uint64_t)i) : 0.0f;
		if (!(t >= FTE_TOKEN_NORMAL && t <= FTE_TOKEN_BYTE))
			rc = fte_error_set(FTE_EFORMAT, "%s: token %d has token_type %g, not one of "
			    "llama.cpp's 1..6", f->path, i, t);
		v->types[i] = (int)t;
	}
	if (rc == FTE_OK)
		rc = special_id(f, "bos", n, &v->bos_id);
	if (rc == FTE_OK)
		rc = special_id(f, "eos", n, &v->eos_id);
	if (rc == FTE_OK)
		rc = special_id(f, "unknown", n, &v->unk_id);
	if (rc == FTE_OK)
		rc = special_id(f, "padding", n, &v->pad_id);
	/* llama.cpp's defaults: SentencePiece adds BOS, BPE does not */
	v->add_bos = add_bos ? fte_gguf_kv_int(add_bos) != 0 : kind == FTE_VOCAB_SPM;
	if (rc == FTE_OK && pre != NULL) {
		if ((s = fte_gguf_kv_str(pre, 0, &len)) == NULL || len >= sizeof(v->pre) ||
		    memchr(s, '\0', (size_t)len) != NULL)
			rc = fte_error_set(FTE_EFORMAT, "%s: tokenizer.ggml.pre is not a short string",
			    f->path);
		else
			snprintf(v->pre, sizeof(v->pre), "%.*s", (int)len, s);
	}
	if (rc == FTE_OK && tmpl != NULL) {
		if ((s = fte_gguf_kv_str(tmpl, 0, &len)) == NULL || memchr(s, '\0', (size_t)len) != NULL ||
		    tok_utf8_check(s, (size_t)len) != len)
			rc = fte_error_set(FTE_EFORMAT, "%s: tokenizer.chat_template is not UTF-8 text",
			    f->path);
		else if ((v->chat_template = strndup(s, (size_t)len)) == NULL)
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	}
	if (rc != FTE_OK) {
		fte_vocab_free(v);
		return rc;
	}
	*out = v;
	return FTE_OK;
}

/* spm_tokenizer: SentencePiece-BPE over the pieces by score. */
static int
spm_tokenizer(const char *path, const fte_vocab *v, fte_tokenizer **out)
{
	struct tok_sp_piece *pc = calloc((size_t)v->n_tokens, sizeof(*pc));
	int rc;

	if (pc == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	for (int i = 0; i < v->n_tokens; i++) {
		pc[i].s = v->tokens[i];
		pc[i].len = strlen(v->tokens[i]);
		pc[i].score = v->scores[i];
		pc[i].kind = sp_kind(v->types[i]);
	}
	rc = tok_sp_build(path, pc, v->n_tokens, 0, out);
	free(pc);
	return rc;
}

/* The byte-level pre-tokenizers of llama.cpp's tokenizer.ggml.pre names, as
 * the tokenizer.json of the models they come from spells them (the regexes
 * are those of Llama 3's and Qwen2's tokenizer.json; gpt-2 is ByteLevel's
 * own split).  Qwen2's NFC normalizer is kept so that ids equal the Hugging
 * Face tokenizer's; llama.cpp does not normalize. */
static const struct bpe_pre {
	const char *name;
	const char *regex;          /* a Split before ByteLevel, or NULL */
	int digits;                 /* Digits(individual) before ByteLevel */
	int nfc;
	int ignore_merges;          /* whole words in the vocabulary win */
} bpe_pres[] = {
	{"gpt-2", NULL, 0, 0, 0},
	{"smollm", NULL, 1, 0, 0},
	{"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?"
	    "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 0, 0, 1},
	{"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?"
	    "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 0, 1, 0},
};

/* bpe_json describes v as the tokenizer.json of its model: vocabulary and
 * merges, control and user-defined tokens as added tokens, the
 * pre-tokenizer its name stands for, BOS prepended when add_bos. */
static json_t *
bpe_json(const fte_vocab *v, const struct bpe_pre *p)
{
	json_t *vocab = json_object(), *merges = json_array(), *added = json_array(), *pre, *root;

	for (int i = 0; i < v->n_tokens; i++) {
		/* the first id of a string wins, as in llama.cpp's token map */
		if (json_object_get(vocab, v->tokens[i]) == NULL)
			json_object_set_new(vocab, v->tokens[i], json_integer(i));
		/* an unknown token of a byte-level vocabulary (GPT-2's
		 * <|endoftext|> is also its unk_token) is a special one */
		if (v->types[i] == FTE_TOKEN_CONTROL || v->types[i] == FTE_TOKEN_USER_DEFINED ||
		    v->types[i] == FTE_TOKEN_UNKNOWN)
			json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", i,
			    "content", v->tokens[i], "single_word", 0, "lstrip", 0, "rstrip", 0,
			    "normalized", v->types[i] == FTE_TOKEN_USER_DEFINED,
			    "special", v->types[i] != FTE_TOKEN_USER_DEFINED));
	}
	for (int i = 0; i < v->n_merges; i++)
		json_array_append_new(merges, json_string(v->merges[i]));
	pre = json_pack("{s:s,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "use_regex",
	    p->regex == NULL);
	if (p->regex != NULL)
		pre = json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},o]}", "type", "Sequence", "pretokenizers",
		    "type", "Split", "pattern", "Regex", p->regex, "behavior", "Isolated", "invert", 0, pre);
	else if (p->digits)
		pre = json_pack("{s:s,s:[{s:s,s:b},o]}", "type", "Sequence", "pretokenizers",
		    "type", "Digits", "individual_digits", 1, pre);
	root = json_pack("{s:{s:s,s:o,s:o,s:b,s:b},s:o,s:o,s:{s:s}}", "model", "type", "BPE",
	    "vocab", vocab, "merges", merges, "byte_fallback", 0, "ignore_merges", p->ignore_merges,
	    "added_tokens", added, "pre_tokenizer", pre, "decoder", "type", "ByteLevel");
	if (root != NULL && p->nfc)
		json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "NFC"));
	if (root != NULL && v->add_bos && v->bos_id >= 0)
		json_object_set_new(root, "post_processor", json_pack("{s:s,s:[{s:{s:s}},{s:{s:s}}],"
		    "s:{s:{s:[i]}}}", "type", "TemplateProcessing", "single", "SpecialToken", "id",
		    v->tokens[v->bos_id], "Sequence", "id", "A", "special_tokens", v->tokens[v->bos_id],
		    "ids", v->bos_id));
	return root;
}

int
fte__vocab_tokenizer(const char *path, const fte_vocab *v, fte_tokenizer **out)
{
	const struct bpe_pre *p = NULL;
	fte_tokenizer *t;
	json_t *root;
	int rc;

	if (v->kind == FTE_VOCAB_SPM) {
		rc = spm_tokenizer(path, v, &t);
	} else {
		for (size_t i = 0; i < sizeof(bpe_pres) / sizeof(bpe_pres[0]); i++)
			if (strcmp(v->pre, bpe_pres[i].name) == 0)
				p = &bpe_pres[i];
		char name[32];
		if (p == NULL)
			return fte_error_set(FTE_ENOTSUP, "%s: BPE pre-tokenizer \"%s\" (tokenizer.ggml.pre) "
			    "is not implemented (gpt-2, llama-bpe, qwen2 and smollm are); give the model's "
			    "tokenizer.json with --tokenizer", path, fte__gguf_shown(v->pre, strlen(v->pre), name));
		if ((root = bpe_json(v, p)) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		rc = tok_json_build(path, root, &t);
		json_decref(root);
	}
	if (rc != FTE_OK)
		return rc;
	/* the file's ids decide, not the names the builders guess from */
	if (v->bos_id >= 0)
		t->bos = v->bos_id;
	if (v->eos_id >= 0)
		t->eos = v->eos_id;
	*out = t;
	return FTE_OK;
}

static int
gguf_tokenizer(const fte_gguf_file *f, fte_tokenizer **out)
{
	fte_vocab *v = NULL;
	int rc;

	if ((rc = fte__gguf_vocab(f, &v)) == FTE_OK)
		rc = fte__vocab_tokenizer(f->path, v, out);
	fte_vocab_free(v);
	return rc;
}

int
fte_gguf_tokenizer_load(const char *path, fte_tokenizer **out)
{
	fte_gguf_file *f;
	int rc;

	if ((rc = fte__gguf_map(path, &f)) != FTE_OK)
		return rc;
	rc = gguf_tokenizer(f, out);
	fte_gguf_close(f);
	return rc;
}

int
fte__gguf_tokenizer_memory(const char *name, const void *buf, size_t len, fte_tokenizer **out)
{
	fte_gguf_file *f;
	int rc;

	if ((rc = fte__gguf_read(name, buf, len, &f)) != FTE_OK)
		return rc;
	rc = gguf_tokenizer(f, out);
	fte_gguf_close(f);
	return rc;
}
