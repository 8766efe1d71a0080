/*
 * tok_json.c - Hugging Face tokenizer.json (BPE models).
 *
 * Reads the pipeline the file describes: normalizer (Prepend, Replace with
 * a string pattern, Sequence), pre_tokenizer (ByteLevel, Digits, Split,
 * Metaspace, Sequence), a BPE model (vocab, merges as "a b" or ["a","b"],
 * byte_fallback, fuse_unk, unk_token, ignore_merges), added_tokens,
 * post_processor (TemplateProcessing, ByteLevel, Sequence) and decoder
 * (Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace, Sequence).
 * Anything else is FTE_ENOTSUP naming the type, never silently ignored.
 * BOS/EOS come from tokenizer_config.json next to the file when present.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "fte_io_internal.h"
#include "tok_internal.h"

/* GPT-2's pre-tokenizer pattern, used by the ByteLevel pre-tokenizer. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *
str_or(const json_t *o, const char *key, const char *dflt)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

static int
bool_or(const json_t *o, const char *key, int dflt)
{
	const json_t *v = json_object_get(o, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *
type_of(const json_t *o)
{
	return str_or(o, "type", "(no type)");
}

/* string_pattern reads {"String": s}; a Regex pattern is not supported. */
static int
string_pattern(fte_tokenizer *t, const char *what, const json_t *o, char **out)
{
	const json_t *p = json_object_get(o, "pattern");
	const char *s = str_or(p, "String", NULL);

	if (s == NULL)
		return fte_error_set(FTE_ENOTSUP, "%s: %s with a non-string pattern is not supported", t->path, what);
	if ((*out = strdup(s)) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	return FTE_OK;
}

static void *
grow(void *p, int n, size_t size)
{
	return realloc(p, (size_t)(n + 1) * size);
}

/* The utf8proc options of a Unicode normalization form's normalizer, or 0. */
static int
unicode_form(const char *type)
{
	static const struct { const char *name; int options; } forms[] = {
		{ "NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE },
		{ "NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE },
		{ "NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT },
		{ "NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT },
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		if (strcmp(type, forms[i].name) == 0)
			return forms[i].options;
	return 0;
}

static int
load_normalizer(fte_tokenizer *t, const json_t *o)
{
	const char *type = type_of(o);
	int rc;

	if (json_is_null(o) || o == NULL)
		return FTE_OK;
	if (strcmp(type, "Sequence") == 0) {
		const json_t *list = json_object_get(o, "normalizers");
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v)
			if ((rc = load_normalizer(t, v)) != FTE_OK)
				return rc;
		return FTE_OK;
	}
	struct tok_norm *n = grow(t->norm, t->n_norm, sizeof(*t->norm));
	if (n == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	t->norm = n;
	n = &t->norm[t->n_norm];
	memset(n, 0, sizeof(*n));
	if (strcmp(type, "Prepend") == 0) {
		n->kind = TOK_NORM_PREPEND;
		const char *p = str_or(o, "prepend", NULL);
		if (p == NULL)
			return fte_error_set(FTE_EFORMAT, "%s: Prepend normalizer without \"prepend\"", t->path);
		if ((n->a = strdup(p)) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	} else if (strcmp(type, "Replace") == 0) {
		n->kind = TOK_NORM_REPLACE;
		t->n_norm++;    /* owned by t from here, even if half filled */
		if ((rc = string_pattern(t, "Replace normalizer", o, &n->a)) != FTE_OK)
			return rc;
		if ((n->b = strdup(str_or(o, "content", ""))) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		return FTE_OK;
	} else if ((n->form = unicode_form(type)) != 0) {
		n->kind = TOK_NORM_UNICODE;
	} else {
		return fte_error_set(FTE_ENOTSUP, "%s: normalizer type %s is not supported", t->path, type);
	}
	t->n_norm++;
	return FTE_OK;
}

static int
add_pre(fte_tokenizer *t, const char *pattern, int literal, enum tok_split_behavior b)
{
	struct tok_pre *p = grow(t->pre, t->n_pre, sizeof(*t->pre));
	int rc;

	if (p == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	t->pre = p;
	if ((rc = tok_regex(t, pattern, literal, &t->pre[t->n_pre].re)) != FTE_OK)
		return rc;
	t->pre[t->n_pre++].behavior = b;
	return FTE_OK;
}

/* prepend_scheme reads Metaspace's "prepend_scheme" (or the older boolean
 * "add_prefix_space"): 0 never, 1 first, 2 always. */
static int
prepend_scheme(const json_t *o)
{
	const char *s = str_or(o, "prepend_scheme", NULL);

	if (s != NULL)
		return strcmp(s, "never") == 0 ? 0 : strcmp(s, "first") == 0 ? 1 : 2;
	return bool_or(o, "add_prefix_space", 1) ? 2 : 0;
}

static int
load_pre(fte_tokenizer *t, const json_t *o, int first)
{
	const char *type = type_of(o);
	int rc;

	if (o == NULL || json_is_null(o))
		return FTE_OK;
	if (strcmp(type, "Sequence") == 0) {
		const json_t *list = json_object_get(o, "pretokenizers");
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v)
			if ((rc = load_pre(t, v, first && i == 0)) != FTE_OK)
				return rc;
		return FTE_OK;
	}
	if (strcmp(type, "ByteLevel") == 0) {
		/* The prefix space is added to the whole segment, which is what
		 * HF does when ByteLevel is the first pre-tokenizer. */
		if (bool_or(o, "add_prefix_space", 1)) {
			if (!first)
				return fte_error_set(FTE_ENOTSUP, "%s: ByteLevel add_prefix_space after another pre-tokenizer is not supported", t->path);
			t->prefix_space = 1;
		}
		t->byte_level = 1;
		return bool_or(o, "use_regex", 1) ? add_pre(t, gpt2_pattern, 0, TOK_SPLIT_ISOLATED) : FTE_OK;
	}
	if (strcmp(type, "Digits") == 0)
		return add_pre(t, bool_or(o, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+", 0, TOK_SPLIT_ISOLATED);
	if (strcmp(type, "Split") == 0) {
		const json_t *p = json_object_get(o, "pattern");
		const char *re = str_or(p, "Regex", NULL), *lit = str_or(p, "String", NULL);
		const char *b = str_or(o, "behavior", "");
		enum tok_split_behavior beh;
		if (strcmp(b, "Isolated") == 0)
			beh = TOK_SPLIT_ISOLATED;
		else if (strcmp(b, "Removed") == 0)
			beh = TOK_SPLIT_REMOVED;
		else if (strcmp(b, "MergedWithPrevious") == 0)
			beh = TOK_SPLIT_MERGED_PREV;
		else if (strcmp(b, "MergedWithNext") == 0)
			beh = TOK_SPLIT_MERGED_NEXT;
		else
			return fte_error_set(FTE_ENOTSUP, "%s: Split behavior \"%s\" is not supported", t->path, b);
		if (bool_or(o, "invert", 0))
			return fte_error_set(FTE_ENOTSUP, "%s: Split with invert is not supported", t->path);
		if (re == NULL && lit == NULL)
			return fte_error_set(FTE_EFORMAT, "%s: Split pre-tokenizer without a pattern", t->path);
		return add_pre(t, re ? re : lit, re == NULL, beh);
	}
	if (strcmp(type, "Metaspace") == 0) {
		if (!first || t->metaspace != NULL)
			return fte_error_set(FTE_ENOTSUP, "%s: Metaspace after another pre-tokenizer is not supported", t->path);
		if ((t->metaspace = strdup(str_or(o, "replacement", "\xe2\x96\x81"))) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		t->meta_prepend = prepend_scheme(o);
		t->meta_split = bool_or(o, "split", 1);
		return t->meta_split ? add_pre(t, t->metaspace, 1, TOK_SPLIT_MERGED_NEXT) : FTE_OK;
	}
	return fte_error_set(FTE_ENOTSUP, "%s: pre_tokenizer type %s is not supported", t->path, type);
}

static int
load_decoder(fte_tokenizer *t, const json_t *o)
{
	const char *type = type_of(o);
	int rc;

	if (o == NULL || json_is_null(o))
		return FTE_OK;
	if (strcmp(type, "Sequence") == 0) {
		const json_t *list = json_object_get(o, "decoders");
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v)
			if ((rc = load_decoder(t, v)) != FTE_OK)
				return rc;
		return FTE_OK;
	}
	struct tok_dec *d = grow(t->dec, t->n_dec, sizeof(*t->dec));
	if (d == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	t->dec = d;
	d = &t->dec[t->n_dec];
	memset(d, 0, sizeof(*d));
	if (strcmp(type, "Replace") == 0) {
		d->kind = TOK_DEC_REPLACE;
		t->n_dec++;
		if ((rc = string_pattern(t, "Replace decoder", o, &d->a)) != FTE_OK)
			return rc;
		d->b = strdup(str_or(o, "content", ""));
	} else if (strcmp(type, "ByteFallback") == 0) {
		d->kind = TOK_DEC_BYTE_FALLBACK;
		t->n_dec++;
		return FTE_OK;
	} else if (strcmp(type, "Fuse") == 0) {
		d->kind = TOK_DEC_FUSE;
		t->n_dec++;
		return FTE_OK;
	} else if (strcmp(type, "ByteLevel") == 0) {
		d->kind = TOK_DEC_BYTE_LEVEL;
		t->n_dec++;
		return FTE_OK;
	} else if (strcmp(type, "Strip") == 0) {
		d->kind = TOK_DEC_STRIP;
		d->start = (int)json_integer_value(json_object_get(o, "start"));
		d->stop = (int)json_integer_value(json_object_get(o, "stop"));
		t->n_dec++;
		d->a = strdup(str_or(o, "content", " "));
	} else if (strcmp(type, "Metaspace") == 0) {
		d->kind = TOK_DEC_METASPACE;
		d->start = prepend_scheme(o) != 0;
		t->n_dec++;
		d->a = strdup(str_or(o, "replacement", "\xe2\x96\x81"));
		d->b = strdup(" ");
		if (d->b == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	} else {
		return fte_error_set(FTE_ENOTSUP, "%s: decoder type %s is not supported", t->path, type);
	}
	if (d->a == NULL || (d->kind == TOK_DEC_REPLACE && d->b == NULL))
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	return FTE_OK;
}

static int
push_id(fte_tokenizer *t, int **list, int *n, int id)
{
	int *l = grow(*list, *n, sizeof(int));

	if (l == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	*list = l;
	l[(*n)++] = id;
	return FTE_OK;
}

static int
load_post(fte_tokenizer *t, const json_t *o)
{
	const char *type = type_of(o);
	int rc;

	if (o == NULL || json_is_null(o) || strcmp(type, "ByteLevel") == 0)
		return FTE_OK;  /* ByteLevel only trims offsets; ids are unchanged */
	if (strcmp(type, "Sequence") == 0) {
		const json_t *list = json_object_get(o, "processors");
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v)
			if ((rc = load_post(t, v)) != FTE_OK)
				return rc;
		return FTE_OK;
	}
	if (strcmp(type, "TemplateProcessing") != 0)
		return fte_error_set(FTE_ENOTSUP, "%s: post_processor type %s is not supported", t->path, type);
	const json_t *single = json_object_get(o, "single");
	const json_t *specials = json_object_get(o, "special_tokens");
	int after = 0;
	size_t i;
	json_t *v;
	if (!json_is_array(single))
		return fte_error_set(FTE_EFORMAT, "%s: TemplateProcessing without a \"single\" template", t->path);
	json_array_foreach(single, i, v) {
		const json_t *sp = json_object_get(v, "SpecialToken");
		if (json_object_get(v, "Sequence") != NULL) {
			after = 1;
			continue;
		}
		const char *name = str_or(sp, "id", NULL);
		const json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
		if (name == NULL || !json_is_array(ids))
			return fte_error_set(FTE_EFORMAT, "%s: TemplateProcessing names a special token it does not define", t->path);
		size_t k;
		json_t *id;
		json_array_foreach(ids, k, id) {
			json_int_t x = json_integer_value(id);
			if (!json_is_integer(id) || x < 0 || x >= t->n_vocab)
				return fte_error_set(FTE_EFORMAT, "%s: TemplateProcessing id of %s out of range", t->path, name);
			rc = after ? push_id(t, &t->suffix, &t->n_suffix, (int)x) :
			    push_id(t, &t->prefix, &t->n_prefix, (int)x);
			if (rc != FTE_OK)
				return rc;
		}
	}
	return FTE_OK;
}

/* merge_split finds the space in a "a b" merge that leaves two vocabulary
 * pieces (vocabularies with spaces in pieces make the first space wrong). */
static int
merge_split(const fte_tokenizer *t, const char *s, size_t n, int *a, int *b)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != ' ')
			continue;
		int x = tok_strmap_get(&t->vocab, s, i), y = tok_strmap_get(&t->vocab, s + i + 1, n - i - 1);
		if (x >= 0 && y >= 0) {
			*a = x;
			*b = y;
			return 1;
		}
	}
	return 0;
}

static int
load_merges(fte_tokenizer *t, const json_t *merges)
{
	char *buf = NULL;
	size_t cap = 0, i;
	json_t *m;

	json_array_foreach(merges, i, m) {
		int a, b;
		if (json_is_string(m)) {
			if (!merge_split(t, json_string_value(m), json_string_length(m), &a, &b)) {
				free(buf);
				return fte_error_set(FTE_EFORMAT, "%s: merge %zu \"%s\" is not two vocabulary pieces",
				    t->path, i, json_string_value(m));
			}
		} else if (json_is_array(m) && json_array_size(m) == 2 &&
		    json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
			const json_t *x = json_array_get(m, 0), *y = json_array_get(m, 1);
			a = tok_strmap_get(&t->vocab, json_string_value(x), json_string_length(x));
			b = tok_strmap_get(&t->vocab, json_string_value(y), json_string_length(y));
			if (a < 0 || b < 0) {
				free(buf);
				return fte_error_set(FTE_EFORMAT, "%s: merge %zu names a piece not in the vocabulary", t->path, i);
			}
		} else {
			free(buf);
			return fte_error_set(FTE_EFORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", t->path, i);
		}
		size_t la = t->piece_len[a], lb = t->piece_len[b];
		if (la + lb > cap) {
			cap = 2 * (la + lb);
			char *nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
			}
			buf = nb;
		}
		memcpy(buf, t->piece[a], la);
		memcpy(buf + la, t->piece[b], lb);
		int id = tok_strmap_get(&t->vocab, buf, la + lb);
		if (id < 0) {
			fte_error_set(FTE_EFORMAT, "%s: merge %zu makes \"%.*s\", which is not in the vocabulary",
			    t->path, i, (int)(la + lb), buf);
			free(buf);
			return FTE_EFORMAT;
		}
		if (tok_pairmap_put(&t->merges, a, b, (int32_t)i, id) != FTE_OK) {
			free(buf);
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		}
	}
	free(buf);
	return FTE_OK;
}

static int
load_model(fte_tokenizer *t, const json_t *model, const json_t *vocab)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)vocab, key, v) {
		int id = (int)json_integer_value(v);
		size_t len = strlen(key);
		if (t->piece[id] != NULL)
			return fte_error_set(FTE_EFORMAT, "%s: vocabulary id %d appears twice", t->path, id);
		if (tok_utf8_check(key, len) != len)
			return fte_error_set(FTE_EFORMAT, "%s: vocabulary entry %d is not valid UTF-8", t->path, id);
		if ((t->piece[id] = strdup(key)) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		t->piece_len[id] = (uint32_t)len;
		if (tok_strmap_put(&t->vocab, t->piece[id], (uint32_t)len, id) != FTE_OK)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	}
	const json_t *merges = json_object_get(model, "merges");
	if (merges != NULL && !json_is_array(merges))
		return fte_error_set(FTE_EFORMAT, "%s: model.merges is not an array", t->path);
	int rc = load_merges(t, merges);
	if (rc != FTE_OK)
		return rc;
	const char *prefix = str_or(model, "continuing_subword_prefix", "");
	const char *suffix = str_or(model, "end_of_word_suffix", "");
	if (*prefix != '\0' || *suffix != '\0')
		return fte_error_set(FTE_ENOTSUP, "%s: BPE continuing_subword_prefix/end_of_word_suffix are not supported", t->path);
	const json_t *dropout = json_object_get(model, "dropout");
	if (json_is_number(dropout) && json_number_value(dropout) != 0.0)
		return fte_error_set(FTE_ENOTSUP, "%s: BPE dropout is not supported (training data must be deterministic)", t->path);
	t->merge_mode = TOK_MERGE_RANK;
	t->byte_fallback = bool_or(model, "byte_fallback", 0);
	t->fuse_unk = bool_or(model, "fuse_unk", 0);
	t->ignore_merges = bool_or(model, "ignore_merges", 0);
	const char *unk = str_or(model, "unk_token", NULL);
	if (unk != NULL && (t->unk_id = tok_strmap_get(&t->vocab, unk, strlen(unk))) < 0)
		return fte_error_set(FTE_EFORMAT, "%s: unk_token \"%s\" is not in the vocabulary", t->path, unk);
	return FTE_OK;
}

static int
load_added(fte_tokenizer *t, const json_t *list)
{
	size_t i;
	json_t *v;

	if ((t->added = calloc(json_array_size(list) + 1, sizeof(*t->added))) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	json_array_foreach(list, i, v) {
		const json_t *c = json_object_get(v, "content");
		json_int_t id = json_integer_value(json_object_get(v, "id"));
		if (!json_is_string(c) || json_string_length(c) == 0 || id < 0 || id >= t->n_vocab)
			return fte_error_set(FTE_EFORMAT, "%s: added token %zu has no content or a bad id", t->path, i);
		struct tok_added *a = &t->added[t->n_added];
		if ((a->content = strdup(json_string_value(c))) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		t->n_added++;
		a->len = (uint32_t)strlen(a->content);
		if (tok_utf8_check(a->content, a->len) != a->len)
			return fte_error_set(FTE_EFORMAT, "%s: added token %zu is not valid UTF-8", t->path, i);
		a->id = (int32_t)id;
		a->special = (uint8_t)bool_or(v, "special", 0);
		a->lstrip = (uint8_t)bool_or(v, "lstrip", 0);
		a->rstrip = (uint8_t)bool_or(v, "rstrip", 0);
		a->single_word = (uint8_t)bool_or(v, "single_word", 0);
		t->special[id] = a->special;
		if (t->piece[id] != NULL && strcmp(t->piece[id], a->content) == 0)
			continue;
		/* The added token's text is what decoding shows for its id. */
		if (t->piece[id] != NULL) {
			char **s = grow(t->spare, t->n_spare, sizeof(char *));
			if (s == NULL)
				return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
			t->spare = s;
			t->spare[t->n_spare++] = t->piece[id];
		}
		if ((t->piece[id] = strdup(a->content)) == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		t->piece_len[id] = a->len;
	}
	return FTE_OK;
}

static int
special_named(const fte_tokenizer *t, const char *const *names)
{
	for (; *names != NULL; names++)
		for (int i = 0; i < t->n_added; i++)
			if (strcmp(t->added[i].content, *names) == 0)
				return t->added[i].id;
	return -1;
}

static int
config_token(const fte_tokenizer *t, const json_t *cfg, const char *key)
{
	const json_t *v = json_object_get(cfg, key);
	const char *s = json_is_object(v) ? str_or(v, "content", NULL) : json_string_value(v);

	return s != NULL ? fte_tokenizer_token_id(t, s) : -1;
}

/* find_bos_eos: tokenizer_config.json beside the file decides; without it,
 * BOS is the post-processor's first token and both fall back to well-known
 * names. */
static void
find_bos_eos(fte_tokenizer *t, int with_config)
{
	static const char *const bos_names[] = { "<s>", "<|begin_of_text|>", "<|endoftext|>", NULL };
	static const char *const eos_names[] = { "</s>", "<|end_of_text|>", "<|endoftext|>", NULL };
	char cfg_path[4096];
	const char *slash = strrchr(t->path, '/');
	json_t *cfg = NULL;

	snprintf(cfg_path, sizeof(cfg_path), "%.*s%stokenizer_config.json",
	    slash ? (int)(slash - t->path) : 0, t->path, slash ? "/" : "");
	/* absent or unreadable, the fallbacks below decide */
	if (with_config && fte__json_load(cfg_path, &cfg) == FTE_OK) {
		t->bos = config_token(t, cfg, "bos_token");
		t->eos = config_token(t, cfg, "eos_token");
		json_decref(cfg);
	}
	if (t->bos < 0)
		t->bos = t->n_prefix > 0 ? t->prefix[0] : special_named(t, bos_names);
	if (t->eos < 0)
		t->eos = special_named(t, eos_names);
}

static int
load_all(fte_tokenizer *t, const json_t *root, const json_t *model, int with_config)
{
	int rc;

	if ((rc = load_model(t, model, json_object_get(model, "vocab"))) != FTE_OK ||
	    (rc = load_added(t, json_object_get(root, "added_tokens"))) != FTE_OK ||
	    (rc = load_normalizer(t, json_object_get(root, "normalizer"))) != FTE_OK ||
	    (rc = load_pre(t, json_object_get(root, "pre_tokenizer"), 1)) != FTE_OK ||
	    (rc = load_post(t, json_object_get(root, "post_processor"))) != FTE_OK ||
	    (rc = load_decoder(t, json_object_get(root, "decoder"))) != FTE_OK ||
	    (rc = tok_finish(t)) != FTE_OK)
		return rc;
	find_bos_eos(t, with_config);
	tok_ws_setup(t);
	return FTE_OK;
}

/* build makes the tokenizer a parsed tokenizer.json describes. */
static int
build(const char *path, const json_t *root, int with_config, fte_tokenizer **out)
{
	fte_tokenizer *t = NULL;
	int rc, n = 0;
	const json_t *model = json_object_get(root, "model");
	const json_t *vocab = json_object_get(model, "vocab");
	const json_t *added = json_object_get(root, "added_tokens");
	const char *type = str_or(model, "type", NULL);

	if (type != NULL && strcmp(type, "BPE") != 0)
		return fte_error_set(FTE_ENOTSUP, "%s: model type %s is not supported (only BPE)", path, type);
	if (!json_is_object(model) || !json_is_object(vocab))
		return fte_error_set(FTE_EFORMAT, "%s: no model.vocab object: not a tokenizer.json", path);
	if (added != NULL && !json_is_array(added) && !json_is_null(added))
		return fte_error_set(FTE_EFORMAT, "%s: added_tokens is not an array", path);
	/* Size the id space: the largest id in the vocabulary or added tokens. */
	const char *key;
	json_t *v;
	size_t i;
	json_object_foreach((json_t *)vocab, key, v) {
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 0 || id >= (1 << 24))
			return fte_error_set(FTE_EFORMAT, "%s: vocabulary entry \"%s\" has a bad id", path, key);
		if (id >= n)
			n = (int)id + 1;
	}
	json_array_foreach(added, i, v) {
		json_int_t id = json_integer_value(json_object_get(v, "id"));
		if (id >= n && id < (1 << 24))
			n = (int)id + 1;
	}
	if (n == 0)
		return fte_error_set(FTE_EFORMAT, "%s: empty vocabulary", path);
	if ((rc = tok_new(path, n, &t)) != FTE_OK)
		return rc;
	t->utf8_only = 1;
	if ((rc = load_all(t, root, model, with_config)) != FTE_OK) {
		fte_tokenizer_free(t);
		return rc;
	}
	*out = t;
	return FTE_OK;
}

int
tok_json_build(const char *path, const json_t *root, fte_tokenizer **out)
{
	return build(path, root, 0, out);
}

int
tok_json_load(const char *path, const char *data, size_t size, int with_config, fte_tokenizer **out)
{
	json_error_t jerr;
	json_t *root = json_loadb(data, size, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL)
		return fte__json_parse_error(path, &jerr);
	int rc = build(path, root, with_config, out);
	json_decref(root);
	return rc;
}

/* tok_gpt2_load reads OpenAI's encoder.json (token -> id) and vocab.bpe
 * ("#version" line, then one "a b" merge per line) as the equivalent
 * tokenizer.json: ByteLevel pre-tokenizer and decoder, <|endoftext|> special. */
int
tok_gpt2_load(const char *encoder, const char *bpe, fte_tokenizer **out)
{
	json_error_t jerr;
	json_t *enc = json_load_file(encoder, JSON_REJECT_DUPLICATES, &jerr), *merges = json_array(), *root = NULL;
	FILE *f = fopen(bpe, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = FTE_OK;

	if (enc == NULL) {
		rc = fte__json_parse_error(encoder, &jerr);
		goto out;
	}
	if (f == NULL) {
		rc = fte_error_set(FTE_ENOENT, "%s: cannot open: %s", bpe, strerror(errno));
		goto out;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || strncmp(line, "#version", 8) == 0)
			continue;
		json_t *m = json_stringn(line, (size_t)n);
		if (m == NULL) {
			rc = fte_error_set(FTE_EFORMAT, "%s: merge line is not valid UTF-8", bpe);
			goto out;
		}
		json_array_append_new(merges, m);
	}
	root = json_pack("{s:{s:s, s:O, s:O}, s:{s:s, s:b}, s:{s:s}, s:[]}",
	    "model", "type", "BPE", "vocab", enc, "merges", merges,
	    "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0,
	    "decoder", "type", "ByteLevel", "added_tokens");
	if (root == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", encoder);
		goto out;
	}
	json_t *eot = json_object_get(enc, "<|endoftext|>");
	if (json_is_integer(eot))
		json_array_append_new(json_object_get(root, "added_tokens"),
		    json_pack("{s:O, s:s, s:b}", "id", eot, "content", "<|endoftext|>", "special", 1));
	rc = build(encoder, root, 1, out);
out:
	if (f != NULL)
		fclose(f);
	free(line);
	json_decref(root);
	json_decref(merges);
	json_decref(enc);
	return rc;
}
