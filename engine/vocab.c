/*
 * vocab.c - a tokenizer's vocabulary as plain arrays (fte_vocab), read from
 * tokenizer.json, llama2.c tokenizer.bin or GGUF, for writers such as GGUF that
 * store the vocabulary rather than run it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fte.h"
#include "fte_io_internal.h"

#define VOCAB_MAX (1 << 24)

void
fte_vocab_free(fte_vocab *v)
{
	if (v == NULL)
		return;
	for (int i = 0; v->tokens != NULL && i < v->n_tokens; i++)
		free(v->tokens[i]);
	for (int i = 0; v->merges != NULL && i < v->n_merges; i++)
		free(v->merges[i]);
	free(v->tokens);
	free(v->scores);
	free(v->types);
	free(v->merges);
	free(v->chat_template);
	free(v);
}

static fte_vocab *
vocab_alloc(int n)
{
	fte_vocab *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->n_tokens = n;
	v->tokens = calloc((size_t)n + 1, sizeof(*v->tokens));
	v->scores = calloc((size_t)n + 1, sizeof(*v->scores));
	v->types = calloc((size_t)n + 1, sizeof(*v->types));
	v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
	if (v->tokens == NULL || v->scores == NULL || v->types == NULL) {
		fte_vocab_free(v);
		return NULL;
	}
	return v;
}

/* utf8_valid checks n bytes of s as well-formed UTF-8 (no overlongs,
 * surrogates or code points past U+10FFFF). */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		unsigned cp;
		if (len == 0 || i + len > n)
			return 0;
		cp = len == 1 ? c : c & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* is_byte_token recognises SentencePiece byte-fallback pieces "<0xNN>". */
static int
is_byte_token(const char *s)
{
	return strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>' &&
	    strchr("0123456789ABCDEFabcdef", s[3]) && strchr("0123456789ABCDEFabcdef", s[4]);
}

/* vocab_from_bin reads a llama2.c tokenizer.bin: int32 max_token_length,
 * then (float score, int32 len, len bytes) per token to the end of file.
 * Spaces go back to U+2581 and "\n<s>\n" / "\n</s>\n" to "<s>" / "</s>". */
static int
vocab_from_bin(const char *path, fte_vocab **out)
{
	unsigned char *buf = NULL;
	FILE *fp;
	fte_vocab *v = NULL;
	size_t size, pos;
	int32_t max_len;
	int n = 0, rc = FTE_OK;
	long sz;

	if ((rc = fte__fopen(path, &fp)) != FTE_OK)
		return rc;
	if (fseek(fp, 0, SEEK_END) != 0 || (sz = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)sz + 1)) == NULL || fread(buf, 1, (size_t)sz, fp) != (size_t)sz) {
		fclose(fp);
		free(buf);
		return fte_error_set(FTE_EIO, "%s: cannot read", path);
	}
	fclose(fp);
	size = (size_t)sz;
	if (size < 4) {
		free(buf);
		return fte_error_set(FTE_EFORMAT, "%s: truncated tokenizer.bin", path);
	}
	memcpy(&max_len, buf, 4);
	/* first pass: count and check the entries */
	for (pos = 4; pos < size; n++) {
		int32_t len;
		if (size - pos < 8) {
			free(buf);
			return fte_error_set(FTE_EFORMAT, "%s: token %d: entry cut at byte %zu", path, n, pos);
		}
		memcpy(&len, buf + pos + 4, 4);
		if (len < 0 || len > max_len || (size_t)len > size - pos - 8) {
			free(buf);
			return fte_error_set(FTE_EFORMAT, "%s: token %d: bad length %d", path, n, (int)len);
		}
		pos += 8 + (size_t)len;
		if (n >= VOCAB_MAX) {
			free(buf);
			return fte_error_set(FTE_EFORMAT, "%s: more than %d tokens", path, VOCAB_MAX);
		}
	}
	if (n == 0 || (v = vocab_alloc(n)) == NULL) {
		free(buf);
		return n == 0 ? fte_error_set(FTE_EFORMAT, "%s: no tokens", path)
		    : fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	v->kind = FTE_VOCAB_SPM;
	v->add_bos = 1;
	pos = 4;
	for (int i = 0; i < n && rc == FTE_OK; i++) {
		int32_t len;
		const char *s = (const char *)buf + pos + 8;
		char *t;
		memcpy(&v->scores[i], buf + pos, 4);
		memcpy(&len, buf + pos + 4, 4);
		pos += 8 + (size_t)len;
		if (!utf8_valid((const unsigned char *)s, (size_t)len) || memchr(s, 0, (size_t)len)) {
			rc = fte_error_set(FTE_EFORMAT, "%s: token %d is not valid UTF-8", path, i);
			break;
		}
		/* at most every byte a space, each becoming 3 bytes of U+2581 */
		if ((t = v->tokens[i] = malloc(3 * (size_t)len + 1)) == NULL) {
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			break;
		}
		v->types[i] = FTE_TOKEN_NORMAL;
		if (len == 5 && memcmp(s, "\n<s>\n", 5) == 0) {
			strcpy(t, "<s>");
			v->types[i] = FTE_TOKEN_CONTROL;
			v->bos_id = i;
		} else if (len == 6 && memcmp(s, "\n</s>\n", 6) == 0) {
			strcpy(t, "</s>");
			v->types[i] = FTE_TOKEN_CONTROL;
			v->eos_id = i;
		} else {
			size_t k = 0;
			for (int j = 0; j < len; j++) {
				if (s[j] == ' ') {
					memcpy(t + k, "\xe2\x96\x81", 3);
					k += 3;
				} else {
					t[k++] = s[j];
				}
			}
			t[k] = '\0';
			if (strcmp(t, "<unk>") == 0) {
				v->types[i] = FTE_TOKEN_UNKNOWN;
				v->unk_id = i;
			} else if (is_byte_token(t)) {
				v->types[i] = FTE_TOKEN_BYTE;
			}
		}
	}
	free(buf);
	if (rc != FTE_OK) {
		fte_vocab_free(v);
		return rc;
	}
	*out = v;
	return FTE_OK;
}

/* has_type is 1 when j (a tokenizer.json component) is or contains an
 * object of the given "type". */
static int
has_type(json_t *j, const char *type, int depth)
{
	const char *key;
	json_t *v;
	size_t i;

	if (depth > 8)
		return 0;
	if (json_is_object(j)) {
		const char *t = json_string_value(json_object_get(j, "type"));
		if (t != NULL && strcmp(t, type) == 0)
			return 1;
		json_object_foreach(j, key, v)
			if (has_type(v, type, depth + 1))
				return 1;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if (has_type(v, type, depth + 1))
				return 1;
	}
	return 0;
}

/* split_regex returns the pattern of the first Split pre-tokenizer in j. */
static const char *
split_regex(json_t *j, int depth)
{
	const char *key, *r;
	json_t *v;
	size_t i;

	if (depth > 8)
		return NULL;
	if (json_is_object(j)) {
		const char *t = json_string_value(json_object_get(j, "type"));
		if (t != NULL && strcmp(t, "Split") == 0 &&
		    (r = json_string_value(json_object_get(json_object_get(j, "pattern"), "Regex"))) != NULL)
			return r;
		json_object_foreach(j, key, v)
			if ((r = split_regex(v, depth + 1)) != NULL)
				return r;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if ((r = split_regex(v, depth + 1)) != NULL)
				return r;
	}
	return NULL;
}

/* bpe_pre_name names a byte-level pre-tokenizer as llama.cpp's
 * tokenizer.ggml.pre does: Llama 3 and Qwen2 split with their own regexes
 * (digits in runs of up to 3, or one by one), SmolLM2 adds Digits, and a
 * bare ByteLevel is GPT-2's. */
static const char *
bpe_pre_name(json_t *pre)
{
	const char *re = split_regex(pre, 0);

	if (re != NULL && strstr(re, "\\p{N}{1,3}") != NULL)
		return "llama-bpe";
	if (re != NULL && strstr(re, "(?i:'s|'t|'re|'ve|'m|'ll|'d)") != NULL &&
	    strstr(re, "|\\p{N}|") != NULL)
		return "qwen2";
	if (has_type(pre, "Digits", 0))
		return "smollm";
	return "gpt-2";
}

/* A string -> id table (open addressing; the vocabulary owns the keys). */
typedef struct strmap {
	size_t cap;
	const char **keys;
	int *ids;
} strmap;

static uint64_t
str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static int
strmap_build(strmap *m, const fte_vocab *v)
{
	m->cap = 64;
	while (m->cap < 2 * (size_t)v->n_tokens)
		m->cap *= 2;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->ids = calloc(m->cap, sizeof(*m->ids));
	if (m->keys == NULL || m->ids == NULL)
		return FTE_ENOMEM;
	for (int i = 0; i < v->n_tokens; i++) {
		size_t h = str_hash(v->tokens[i]) & (m->cap - 1);
		while (m->keys[h] != NULL && strcmp(m->keys[h], v->tokens[i]) != 0)
			h = (h + 1) & (m->cap - 1);
		if (m->keys[h] == NULL) {      /* the first id of a string wins */
			m->keys[h] = v->tokens[i];
			m->ids[h] = i;
		}
	}
	return FTE_OK;
}

static int
strmap_get(const strmap *m, const char *s)
{
	size_t h = str_hash(s) & (m->cap - 1);

	while (m->keys[h] != NULL) {
		if (strcmp(m->keys[h], s) == 0)
			return m->ids[h];
		h = (h + 1) & (m->cap - 1);
	}
	return -1;
}

static void
strmap_free(strmap *m)
{
	free(m->keys);
	free(m->ids);
}

/* special_id looks up a tokenizer_config.json entry such as "eos_token",
 * given as a string or as {"content": ...}. */
static int
special_id(const strmap *m, json_t *cfg, const char *key)
{
	json_t *v = json_object_get(cfg, key);

	if (json_is_object(v))
		v = json_object_get(v, "content");
	return json_is_string(v) ? strmap_get(m, json_string_value(v)) : -1;
}

/* template_processing finds the TemplateProcessing post-processor, alone
 * or in a Sequence (Llama 3 puts ByteLevel first). */
static json_t *
template_processing(json_t *pp)
{
	const char *t = json_string_value(json_object_get(pp, "type"));
	json_t *p;
	size_t i;

	if (t != NULL && strcmp(t, "TemplateProcessing") == 0)
		return pp;
	if (t != NULL && strcmp(t, "Sequence") == 0)
		json_array_foreach(json_object_get(pp, "processors"), i, p)
			if (json_is_object(p) && json_object_get(p, "processors") == NULL &&
			    (p = template_processing(p)) != NULL)
				return p;
	return NULL;
}

/* vocab_specials sets BOS/EOS/UNK/PAD and add_bos from the post-processor,
 * tokenizer_config.json beside the file, and the usual token names (those
 * the tokenizer itself falls back to, tok_json.c). */
static void
vocab_specials(fte_vocab *v, const strmap *m, json_t *tok, const char *path)
{
	static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
	json_t *pp = template_processing(json_object_get(tok, "post_processor")), *single, *cfg = NULL;
	char cpath[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *unk = json_string_value(json_object_get(json_object_get(tok, "model"), "unk_token"));
	int id;

	/* TemplateProcessing: a leading special token is the BOS it adds */
	single = json_object_get(pp, "single");
	if (json_is_array(single)) {
		const char *first = json_string_value(json_object_get(
		    json_object_get(json_array_get(single, 0), "SpecialToken"), "id"));
		if (first != NULL && (id = strmap_get(m, first)) >= 0) {
			v->bos_id = id;
			v->add_bos = 1;
		}
	}
	snprintf(cpath, sizeof(cpath), "%.*s/tokenizer_config.json",
	    slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (fte__json_load(cpath, &cfg) == FTE_OK) {
		if ((id = special_id(m, cfg, "bos_token")) >= 0 && v->bos_id < 0)
			v->bos_id = id;
		if ((id = special_id(m, cfg, "eos_token")) >= 0)
			v->eos_id = id;
		if ((id = special_id(m, cfg, "pad_token")) >= 0)
			v->pad_id = id;
		if ((id = special_id(m, cfg, "unk_token")) >= 0)
			v->unk_id = id;
		if (json_is_string(json_object_get(cfg, "chat_template")))
			v->chat_template = strdup(json_string_value(json_object_get(cfg, "chat_template")));
		if (json_is_boolean(json_object_get(cfg, "add_bos_token")))
			v->add_bos = json_is_true(json_object_get(cfg, "add_bos_token"));
		json_decref(cfg);
	}
	if (unk != NULL && (id = strmap_get(m, unk)) >= 0)
		v->unk_id = id;
	for (size_t i = 0; i < sizeof(eos_names) / sizeof(eos_names[0]) && v->eos_id < 0; i++)
		v->eos_id = strmap_get(m, eos_names[i]);
	if (v->unk_id >= 0)
		v->types[v->unk_id] = FTE_TOKEN_UNKNOWN;
}

/* merge_split splits one tokenizer.json merge ("a b" or ["a", "b"]) and
 * returns the "a b" string (malloc'd) and the merged token a+b in joined. */
static char *
merge_split(json_t *m, char *joined, size_t cap)
{
	const char *a, *b;
	char *s;

	if (json_is_string(m)) {
		const char *t = json_string_value(m), *sp = strchr(t, ' ');
		if (sp == NULL || strlen(t) >= cap)
			return NULL;
		/* splitting at the first space is right even where a piece is
		 * itself spaces: removing any one space of a run gives a+b */
		snprintf(joined, cap, "%.*s%s", (int)(sp - t), t, sp + 1);
		return strdup(t);
	}
	a = json_string_value(json_array_get(m, 0));
	b = json_string_value(json_array_get(m, 1));
	if (!json_is_array(m) || json_array_size(m) != 2 || a == NULL || b == NULL ||
	    strlen(a) + strlen(b) + 2 > cap)
		return NULL;
	snprintf(joined, cap, "%s%s", a, b);
	if ((s = malloc(strlen(a) + strlen(b) + 2)) != NULL)
		sprintf(s, "%s %s", a, b);
	return s;
}

static int
vocab_from_json(const char *path, fte_vocab **out)
{
	json_t *tok, *model, *vocab, *added, *merges, *val;
	const char *key, *type;
	fte_vocab *v = NULL;
	strmap map = {0, NULL, NULL};
	json_int_t max_id = -1;
	size_t i;
	int rc = FTE_OK;

	if ((rc = fte__json_load(path, &tok)) != FTE_OK)
		return rc;
	model = json_object_get(tok, "model");
	vocab = json_object_get(model, "vocab");
	added = json_object_get(tok, "added_tokens");
	merges = json_object_get(model, "merges");
	type = json_string_value(json_object_get(model, "type"));
	if (type != NULL && strcmp(type, "BPE") != 0) {
		rc = fte_error_set(FTE_ENOTSUP, "%s: tokenizer model \"%s\" not supported (only BPE)",
		    path, type);
		json_decref(tok);
		return rc;
	}
	if (!json_is_object(vocab) || !json_is_array(merges)) {
		json_decref(tok);
		return fte_error_set(FTE_EFORMAT, "%s: model.vocab / model.merges missing", path);
	}
	json_object_foreach(vocab, key, val) {
		json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
		if (id < 0 || id >= VOCAB_MAX) {
			rc = fte_error_set(FTE_EFORMAT, "%s: token \"%s\" has a bad id", path, key);
			json_decref(tok);
			return rc;
		}
		max_id = id > max_id ? id : max_id;
	}
	json_array_foreach(added, i, val) {
		json_t *id = json_object_get(val, "id");
		if (!json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) >= VOCAB_MAX || !json_is_string(json_object_get(val, "content"))) {
			json_decref(tok);
			return fte_error_set(FTE_EFORMAT, "%s: added_tokens[%zu] is malformed", path, i);
		}
		max_id = json_integer_value(id) > max_id ? json_integer_value(id) : max_id;
	}
	if (max_id < 0 || (v = vocab_alloc((int)max_id + 1)) == NULL) {
		json_decref(tok);
		return max_id < 0 ? fte_error_set(FTE_EFORMAT, "%s: empty vocabulary", path)
		    : fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	v->kind = has_type(json_object_get(tok, "pre_tokenizer"), "ByteLevel", 0) ||
	    has_type(json_object_get(tok, "decoder"), "ByteLevel", 0) ? FTE_VOCAB_BPE : FTE_VOCAB_SPM;
	snprintf(v->pre, sizeof(v->pre), "%s", bpe_pre_name(json_object_get(tok, "pre_tokenizer")));
	json_object_foreach(vocab, key, val) {
		int id = (int)json_integer_value(val);
		if (v->tokens[id] != NULL) {
			rc = fte_error_set(FTE_EFORMAT, "%s: id %d is given to two tokens", path, id);
			break;
		}
		if ((v->tokens[id] = strdup(key)) == NULL) {
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			break;
		}
		v->types[id] = v->kind == FTE_VOCAB_SPM && is_byte_token(key) ? FTE_TOKEN_BYTE
		    : FTE_TOKEN_NORMAL;
	}
	json_array_foreach(added, i, val) {
		int id = (int)json_integer_value(json_object_get(val, "id"));
		if (rc != FTE_OK)
			break;
		free(v->tokens[id]);
		if ((v->tokens[id] = strdup(json_string_value(json_object_get(val, "content")))) == NULL)
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		v->types[id] = json_is_true(json_object_get(val, "special")) ? FTE_TOKEN_CONTROL
		    : FTE_TOKEN_USER_DEFINED;
	}
	for (int id = 0; rc == FTE_OK && id < v->n_tokens; id++) {
		char pad[32];
		if (v->tokens[id] != NULL)
			continue;
		snprintf(pad, sizeof(pad), "[PAD%d]", id);
		if ((v->tokens[id] = strdup(pad)) == NULL)
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		v->types[id] = FTE_TOKEN_UNUSED;
	}
	if (rc == FTE_OK && strmap_build(&map, v) != FTE_OK)
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	if (rc == FTE_OK && (v->merges = calloc(json_array_size(merges) + 1, sizeof(char *))) == NULL)
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	/* SentencePiece scores rank merges: the earlier the merge, the higher */
	for (int id = 0; rc == FTE_OK && id < v->n_tokens; id++)
		v->scores[id] = v->kind == FTE_VOCAB_SPM ?
		    -(float)(json_array_size(merges) + (size_t)id) : 0.0f;
	json_array_foreach(merges, i, val) {
		char joined[1024];
		int id;
		if (rc != FTE_OK)
			break;
		if ((v->merges[i] = merge_split(val, joined, sizeof(joined))) == NULL) {
			rc = fte_error_set(FTE_EFORMAT, "%s: merges[%zu] is malformed", path, i);
			break;
		}
		v->n_merges++;
		id = strmap_get(&map, joined);
		if (v->kind == FTE_VOCAB_SPM && id >= 0 &&
		    v->scores[id] < -(float)i)
			v->scores[id] = -(float)i;
	}
	if (rc == FTE_OK)
		vocab_specials(v, &map, tok, path);
	if (v->kind == FTE_VOCAB_SPM) {
		/* llama.cpp's SentencePiece tokenizer takes no merge list */
		for (int k = 0; v->merges != NULL && k < v->n_merges; k++)
			free(v->merges[k]);
		v->n_merges = 0;
	}
	strmap_free(&map);
	json_decref(tok);
	if (rc != FTE_OK) {
		fte_vocab_free(v);
		return rc;
	}
	*out = v;
	return FTE_OK;
}

static int
vocab_from_gguf(const char *path, fte_vocab **out)
{
	fte_gguf_file *f;
	int rc;

	if ((rc = fte__gguf_map(path, &f)) != FTE_OK)
		return rc;
	rc = fte__gguf_vocab(f, out);
	fte_gguf_close(f);
	return rc;
}

int
fte_vocab_load(const char *path, fte_vocab **out)
{
	char file[PATH_MAX], magic[4];
	struct stat st;
	FILE *fp;
	int c, rc;

	if (stat(path, &st) != 0)
		return fte_error_set(FTE_ENOENT, "%s: tokenizer not found", path);
	if (S_ISDIR(st.st_mode)) {
		snprintf(file, sizeof(file), "%s/tokenizer.json", path);
		return vocab_from_json(file, out);
	}
	/* tokenizer.json starts with '{'; tokenizer.bin with a small int32 */
	if ((rc = fte__fopen(path, &fp)) != FTE_OK)
		return rc;
	if (fread(magic, 1, 4, fp) == 4 && memcmp(magic, "GGUF", 4) == 0) {
		fclose(fp);
		return vocab_from_gguf(path, out);
	}
	rewind(fp);
	while ((c = fgetc(fp)) == ' ' || c == '\n' || c == '\r' || c == '\t')
		;
	fclose(fp);
	return c == '{' ? vocab_from_json(path, out) : vocab_from_bin(path, out);
}
