/*
 * tok_train.c - training a GPT-2-style byte-level BPE tokenizer.
 *
 * The text is split by the ByteLevel pre-tokenizer (GPT-2's regex) into
 * words; equal words are counted once with their frequency.  Every word
 * starts as its bytes, and the most frequent adjacent pair of symbols is
 * merged into a new symbol until the vocabulary is full.  Pair counts are
 * kept up to date incrementally: a merge only visits the words that hold
 * the pair (each pair remembers them), and a max-heap with lazy deletion
 * finds the next pair.  Every pair whose count grows in a merge (they all
 * contain the merged symbol) is pushed again with its new count, so each
 * pair has an entry at least as high as its count; a popped entry whose
 * count is stale is pushed back with the current count, and the first
 * current entry popped is the true maximum.  Ties go
 * to the pair whose left symbol's bytes, then right symbol's bytes, sort
 * first, so the result depends on the text alone.
 *
 * The pre-tokenizer is the loader's own: the skeleton tokenizer.json (the
 * 256 byte symbols and the special tokens) is loaded with tok_json_load and
 * its compiled pattern and byte-to-character table do the splitting and
 * the spelling of the vocabulary.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "fte_tok.h"
#include "tok_internal.h"

static const char eot_token[] = "<|endoftext|>";
static const char pad_token[] = "<|pad|>";

struct word {
	char *text;             /* the word's bytes (the map's key) */
	uint32_t len;
	int32_t *sym;           /* current symbols, n of them */
	uint32_t n;
	uint64_t count;
	int32_t stamp;          /* last merge that visited the word */
};

struct pair {
	int32_t a, b;
	int64_t count;
	int32_t *where;         /* words that held the pair (may repeat or be stale) */
	uint32_t n_where, cap_where;
	int32_t stamp;          /* last merge that pushed it onto the heap */
};

struct heap_item {
	int64_t count;
	int32_t pair;
};

struct trainer {
	const char *name;       /* for messages */
	fte_tokenizer *skel;    /* the skeleton: pre-tokenizer and byte table */
	pcre2_match_data *md;
	int n_special;

	struct tok_strmap word_map;
	struct word *words;
	uint32_t n_words, cap_words;

	struct tok_pairmap pair_map; /* (a, b) -> pair index in .rank */
	struct pair *pairs;
	uint32_t n_pairs, cap_pairs;

	struct heap_item *heap;
	size_t n_heap, cap_heap;

	/* symbol id -> its bytes, and back */
	unsigned char **tok;
	uint32_t *tok_len;
	int32_t n_tok;
	struct tok_strmap tok_map;
	/* merges in rank order: left, right, result */
	int32_t (*merges)[3];
	uint32_t n_merges, cap_merges;
};

/* oom returns FTE_ENOMEM itself rather than fte_error_set's result, so the
 * compiler sees that no failure path returns FTE_OK (token_add's id is set
 * whenever it succeeds). */
static int
oom(const struct trainer *tr)
{
	fte_error_set(FTE_ENOMEM, "%s: out of memory training a tokenizer", tr->name);
	return FTE_ENOMEM;
}

static int
grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
	if (need <= *cap)
		return FTE_OK;
	uint32_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, (size_t)c * size);
	if (q == NULL)
		return FTE_ENOMEM;
	*p = q;
	*cap = c;
	return FTE_OK;
}

/* skeleton_json builds the tokenizer.json every trained tokenizer starts
 * from: special tokens, then the 256 byte symbols in byte order, no merges. */
static json_t *
skeleton_json(const fte_tokenizer *bl, int n_special)
{
	static const char *const specials[] = { eot_token, pad_token };
	json_t *added = json_array(), *vocab = json_object();
	json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:{s:s, s:b, s:b, s:b}, s:n, "
	    "s:{s:s, s:b, s:b, s:b}, s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}}",
	    "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
	    "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
	    "use_regex", 1, "post_processor",
	    "decoder", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1,
	    "model", "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix",
	    "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0,
	    "vocab", vocab, "merges");

	if (root == NULL)
		return NULL;
	for (int i = 0; i < n_special; i++) {
		json_t *a = json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i,
		    "content", specials[i], "single_word", 0, "lstrip", 0, "rstrip", 0,
		    "normalized", 0, "special", 1);
		if (a == NULL || json_array_append_new(added, a) != 0 ||
		    json_object_set_new(vocab, specials[i], json_integer(i)) != 0)
			goto fail;
	}
	for (int b = 0; b < 256; b++) {
		char s[3] = { bl->bl_char[b][0], bl->bl_char[b][1], '\0' };
		s[bl->bl_len[b]] = '\0';
		if (json_object_set_new(vocab, s, json_integer(n_special + b)) != 0)
			goto fail;
	}
	return root;
fail:
	json_decref(root);
	return NULL;
}

/* trainer_init loads the skeleton tokenizer for its pre-tokenizer.  The
 * skeleton's vocabulary needs the byte table first, which tok_finish
 * computes for an empty byte-level tokenizer. */
static int
trainer_init(struct trainer *tr, const char *name, const fte_tok_train_config *cfg, json_t **skel_out)
{
	fte_tokenizer *probe;
	int rc;

	memset(tr, 0, sizeof(*tr));
	tr->name = name;
	tr->n_special = cfg->add_pad ? 2 : 1;
	/* The byte table of GPT-2 (bytes_to_unicode) as tok_finish computes it. */
	if ((rc = tok_new(name, 0, &probe)) != FTE_OK)
		return rc;
	probe->byte_level = 1;
	if ((rc = tok_finish(probe)) != FTE_OK) {
		fte_tokenizer_free(probe);
		return rc;
	}
	json_t *skel = skeleton_json(probe, tr->n_special);
	fte_tokenizer_free(probe);
	if (skel == NULL)
		return oom(tr);
	char *text = json_dumps(skel, JSON_COMPACT);
	if (text == NULL) {
		json_decref(skel);
		return oom(tr);
	}
	rc = tok_json_load(name, text, strlen(text), 0, &tr->skel);
	free(text);
	if (rc != FTE_OK) {
		json_decref(skel);
		return rc;
	}
	if (tr->skel->n_pre != 1 || !tr->skel->byte_level) {
		json_decref(skel);
		return fte_error_set(FTE_EFORMAT, "%s: the ByteLevel skeleton did not load as one", name);
	}
	tr->md = pcre2_match_data_create_from_pattern(tr->skel->pre[0].re, NULL);
	if (tr->md == NULL) {
		json_decref(skel);
		return oom(tr);
	}
	*skel_out = skel;
	return FTE_OK;
}

static void
trainer_free(struct trainer *tr)
{
	for (uint32_t i = 0; i < tr->n_words; i++) {
		free(tr->words[i].text);
		free(tr->words[i].sym);
	}
	free(tr->words);
	tok_strmap_free(&tr->word_map);
	for (uint32_t i = 0; i < tr->n_pairs; i++)
		free(tr->pairs[i].where);
	free(tr->pairs);
	tok_pairmap_free(&tr->pair_map);
	free(tr->heap);
	for (int32_t i = 0; i < tr->n_tok; i++)
		free(tr->tok[i]);
	free(tr->tok);
	free(tr->tok_len);
	tok_strmap_free(&tr->tok_map);
	free(tr->merges);
	pcre2_match_data_free(tr->md);
	fte_tokenizer_free(tr->skel);
}

/* word_add counts one pre-tokenized word. */
static int
word_add(struct trainer *tr, const char *s, size_t n)
{
	if (n == 0)
		return FTE_OK;
	if (n > UINT32_MAX)
		return fte_error_set(FTE_ERANGE, "%s: a word of %zu bytes is too long", tr->name, n);
	int32_t i = tok_strmap_get(&tr->word_map, s, n);
	if (i >= 0) {
		tr->words[i].count++;
		return FTE_OK;
	}
	if (tr->n_words == INT32_MAX ||
	    grow((void **)&tr->words, &tr->cap_words, tr->n_words + 1, sizeof(*tr->words)) != FTE_OK)
		return oom(tr);
	struct word *w = &tr->words[tr->n_words];
	memset(w, 0, sizeof(*w));
	w->text = malloc(n);
	if (w->text == NULL)
		return oom(tr);
	memcpy(w->text, s, n);
	w->len = (uint32_t)n;
	w->count = 1;
	w->stamp = -1;
	tr->n_words++;
	if (tok_strmap_put(&tr->word_map, w->text, w->len, (int32_t)tr->n_words - 1) != FTE_OK)
		return oom(tr);
	return FTE_OK;
}

/* count_segment splits text free of special tokens as the pre-tokenizer
 * does (matches and the gaps between them are words) and counts them. */
static int
count_segment(struct trainer *tr, const char *s, size_t n)
{
	size_t at = 0, gap = 0;
	int rc;

	while (at < n) {
		int m = pcre2_match(tr->skel->pre[0].re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, tr->md, NULL);
		if (m == PCRE2_ERROR_NOMATCH)
			break;
		if (m < 0)
			return fte_error_set(FTE_EINVAL, "%s: pre-tokenizer regex failed (%d)", tr->name, m);
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tr->md);
		size_t ms = ov[0], me = ov[1];
		if (me == ms) {         /* an empty match splits nothing */
			at = me + 1;
			while (at < n && ((unsigned char)s[at] & 0xc0) == 0x80)
				at++;
			continue;
		}
		if ((rc = word_add(tr, s + gap, ms - gap)) != FTE_OK ||
		    (rc = word_add(tr, s + ms, me - ms)) != FTE_OK)
			return rc;
		gap = at = me;
	}
	return word_add(tr, s + gap, n - gap);
}

/* count_text counts the words of one text; special-token spellings in it
 * separate documents and are not learned. */
static int
count_text(struct trainer *tr, const char *label, const char *s, size_t n)
{
	size_t bad = tok_utf8_check(s, n);
	int rc;

	if (bad < n)
		return fte_error_set(FTE_EINVAL, "%s: invalid UTF-8 at byte %zu", label, bad);
	while (n > 0) {
		const char *e = memmem(s, n, eot_token, sizeof(eot_token) - 1);
		const char *p = memmem(s, n, pad_token, sizeof(pad_token) - 1);
		if (e == NULL || (p != NULL && p < e))
			e = p;
		size_t seg = e != NULL ? (size_t)(e - s) : n;
		if ((rc = count_segment(tr, s, seg)) != FTE_OK)
			return rc;
		if (e == NULL)
			break;
		size_t skip = seg + (e == p ? sizeof(pad_token) : sizeof(eot_token)) - 1;
		s += skip;
		n -= skip;
	}
	return FTE_OK;
}

/* heap order: higher count first, then the pair whose bytes sort first. */
static int
pair_before(const struct trainer *tr, const struct heap_item *x, const struct heap_item *y)
{
	if (x->count != y->count)
		return x->count > y->count;
	const struct pair *p = &tr->pairs[x->pair], *q = &tr->pairs[y->pair];
	for (int side = 0; side < 2; side++) {
		int32_t u = side ? p->b : p->a, v = side ? q->b : q->a;
		uint32_t lu = tr->tok_len[u], lv = tr->tok_len[v];
		int c = memcmp(tr->tok[u], tr->tok[v], lu < lv ? lu : lv);
		if (c != 0)
			return c < 0;
		if (lu != lv)
			return lu < lv;
	}
	return 0;
}

static int
heap_push(struct trainer *tr, int64_t count, int32_t pair)
{
	if (tr->n_heap == tr->cap_heap) {
		size_t c = tr->cap_heap ? tr->cap_heap * 2 : 1024;
		struct heap_item *h = realloc(tr->heap, c * sizeof(*h));
		if (h == NULL)
			return oom(tr);
		tr->heap = h;
		tr->cap_heap = c;
	}
	size_t i = tr->n_heap++;
	struct heap_item it = { count, pair };
	while (i > 0 && pair_before(tr, &it, &tr->heap[(i - 1) / 2])) {
		tr->heap[i] = tr->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	tr->heap[i] = it;
	return FTE_OK;
}

static struct heap_item
heap_pop(struct trainer *tr)
{
	struct heap_item top = tr->heap[0], last = tr->heap[--tr->n_heap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= tr->n_heap)
			break;
		if (c + 1 < tr->n_heap && pair_before(tr, &tr->heap[c + 1], &tr->heap[c]))
			c++;
		if (!pair_before(tr, &tr->heap[c], &last))
			break;
		tr->heap[i] = tr->heap[c];
		i = c;
	}
	if (tr->n_heap > 0)
		tr->heap[i] = last;
	return top;
}

/* pair_get returns the index of pair (a, b), creating it at count 0. */
static int
pair_get(struct trainer *tr, int32_t a, int32_t b, int32_t *out)
{
	const struct tok_pair_slot *s = tok_pairmap_get(&tr->pair_map, a, b);

	if (s != NULL) {
		*out = s->rank;
		return FTE_OK;
	}
	if (tr->n_pairs == INT32_MAX ||
	    grow((void **)&tr->pairs, &tr->cap_pairs, tr->n_pairs + 1, sizeof(*tr->pairs)) != FTE_OK ||
	    tok_pairmap_put(&tr->pair_map, a, b, (int32_t)tr->n_pairs, 0) != FTE_OK)
		return oom(tr);
	tr->pairs[tr->n_pairs] = (struct pair){ .a = a, .b = b, .stamp = -1 };
	*out = (int32_t)tr->n_pairs++;
	return FTE_OK;
}

/* pair_count adds delta occurrences of (a, b) in word w. */
static int
pair_count(struct trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t w, int32_t *idx)
{
	int32_t i = 0;
	int rc = pair_get(tr, a, b, &i);

	if (rc != FTE_OK)
		return rc;
	struct pair *p = &tr->pairs[i];
	p->count += delta;
	if (delta > 0) {
		if (p->n_where == 0 || p->where[p->n_where - 1] != w) {
			if (grow((void **)&p->where, &p->cap_where, p->n_where + 1, sizeof(int32_t)) != FTE_OK)
				return oom(tr);
			p->where[p->n_where++] = w;
		}
	}
	if (idx != NULL)
		*idx = i;
	return FTE_OK;
}

/* token_add finds or adds the symbol spelled a + b and puts its id in *id:
 * two merges can spell the same bytes ("a"+"bc", "ab"+"c"), and as in
 * Hugging Face's trainer the second one maps to the existing symbol. */
static int
token_add(struct trainer *tr, const unsigned char *a, uint32_t la, const unsigned char *b, uint32_t lb,
    int32_t *id)
{
	uint32_t cap = (uint32_t)tr->n_tok;
	unsigned char *s = malloc((size_t)la + lb + 1);

	if (s == NULL)
		return oom(tr);
	memcpy(s, a, la);
	if (lb > 0)
		memcpy(s + la, b, lb);
	int32_t old = tok_strmap_get(&tr->tok_map, (const char *)s, la + lb);
	if (old >= 0) {
		free(s);
		*id = old;
		return FTE_OK;
	}
	if (grow((void **)&tr->tok, &cap, (uint32_t)tr->n_tok + 1, sizeof(*tr->tok)) != FTE_OK) {
		free(s);
		return oom(tr);
	}
	cap = (uint32_t)tr->n_tok;
	if (grow((void **)&tr->tok_len, &cap, (uint32_t)tr->n_tok + 1, sizeof(*tr->tok_len)) != FTE_OK) {
		free(s);
		return oom(tr);
	}
	tr->tok[tr->n_tok] = s;
	tr->tok_len[tr->n_tok] = la + lb;
	if (tok_strmap_put(&tr->tok_map, (const char *)s, la + lb, tr->n_tok) != FTE_OK) {
		free(s);
		return oom(tr);
	}
	*id = tr->n_tok++;
	return FTE_OK;
}

/* prepare sets up the symbols of every word, the initial pair counts and
 * the heap.  Symbol ids are vocabulary ids minus n_special. */
static int
prepare(struct trainer *tr)
{
	int rc;

	for (int b = 0; b < 256; b++) {
		unsigned char c = (unsigned char)b;
		int32_t id;
		if ((rc = token_add(tr, &c, 1, NULL, 0, &id)) != FTE_OK)
			return rc;
	}
	for (uint32_t w = 0; w < tr->n_words; w++) {
		struct word *wd = &tr->words[w];
		wd->sym = malloc((size_t)wd->len * sizeof(int32_t));
		if (wd->sym == NULL)
			return oom(tr);
		for (uint32_t i = 0; i < wd->len; i++)
			wd->sym[i] = (unsigned char)wd->text[i];
		wd->n = wd->len;
		for (uint32_t i = 0; i + 1 < wd->n; i++)
			if ((rc = pair_count(tr, wd->sym[i], wd->sym[i + 1], (int64_t)wd->count, (int32_t)w, NULL)) != FTE_OK)
				return rc;
	}
	for (uint32_t i = 0; i < tr->n_pairs; i++)
		if ((rc = heap_push(tr, tr->pairs[i].count, (int32_t)i)) != FTE_OK)
			return rc;
	return FTE_OK;
}

/* fresh_pair records that merge m made pair i grow, for pushing after it. */
static int
fresh_pair(struct trainer *tr, int32_t i, int32_t m, int32_t **list, uint32_t *n, uint32_t *cap)
{
	if (tr->pairs[i].stamp == m)
		return FTE_OK;
	tr->pairs[i].stamp = m;
	if (grow((void **)list, cap, *n + 1, sizeof(int32_t)) != FTE_OK)
		return oom(tr);
	(*list)[(*n)++] = i;
	return FTE_OK;
}

/* merge replaces every (a, b) by z in the words holding it, left to right,
 * and updates the counts of the neighbouring pairs. */
static int
merge(struct trainer *tr, int32_t pi, int32_t z, int32_t m)
{
	int32_t *fresh = NULL;
	uint32_t n_fresh = 0, cap_fresh = 0;
	int32_t a = tr->pairs[pi].a, b = tr->pairs[pi].b;
	int rc = FTE_OK;

	for (uint32_t k = 0; k < tr->pairs[pi].n_where; k++) {
		int32_t w = tr->pairs[pi].where[k];
		struct word *wd = &tr->words[w];
		int64_t c = (int64_t)wd->count;
		if (wd->stamp == m)
			continue;
		wd->stamp = m;
		uint32_t j = 0;
		for (uint32_t i = 0; i < wd->n; i++) {
			if (i + 1 < wd->n && wd->sym[i] == a && wd->sym[i + 1] == b) {
				int32_t idx;
				if (j > 0) {
					int32_t left = wd->sym[j - 1];
					if ((rc = pair_count(tr, left, a, -c, w, NULL)) != FTE_OK ||
					    (rc = pair_count(tr, left, z, c, w, &idx)) != FTE_OK ||
					    (rc = fresh_pair(tr, idx, m, &fresh, &n_fresh, &cap_fresh)) != FTE_OK)
						goto out;
				}
				if (i + 2 < wd->n) {
					int32_t right = wd->sym[i + 2];
					/* A following (a, b) merges too: its left pair is
					 * (z, a) when it comes, counted then. */
					if ((rc = pair_count(tr, b, right, -c, w, NULL)) != FTE_OK ||
					    (rc = pair_count(tr, z, right, c, w, &idx)) != FTE_OK ||
					    (rc = fresh_pair(tr, idx, m, &fresh, &n_fresh, &cap_fresh)) != FTE_OK)
						goto out;
				}
				wd->sym[j++] = z;
				i++;
			} else {
				wd->sym[j++] = wd->sym[i];
			}
		}
		wd->n = j;
	}
	struct pair *p = &tr->pairs[pi];
	p->count = 0;
	free(p->where);
	p->where = NULL;
	p->n_where = p->cap_where = 0;
	for (uint32_t k = 0; k < n_fresh; k++)
		if (tr->pairs[fresh[k]].count > 0 &&
		    (rc = heap_push(tr, tr->pairs[fresh[k]].count, fresh[k])) != FTE_OK)
			goto out;
out:
	free(fresh);
	return rc;
}

/* learn merges pairs until there are n_sym symbols or no pair is seen
 * min_frequency times. */
static int
learn(struct trainer *tr, int32_t n_sym, int64_t min_frequency)
{
	int rc;

	while (tr->n_tok < n_sym && tr->n_heap > 0) {
		struct heap_item top = heap_pop(tr);
		int64_t now = tr->pairs[top.pair].count;
		if (now != top.count) {
			if (now > 0 && (rc = heap_push(tr, now, top.pair)) != FTE_OK)
				return rc;
			continue;
		}
		if (now < min_frequency)
			break;
		const struct pair *p = &tr->pairs[top.pair];
		int32_t z;
		if ((rc = token_add(tr, tr->tok[p->a], tr->tok_len[p->a], tr->tok[p->b], tr->tok_len[p->b], &z)) != FTE_OK)
			return rc;
		if (tr->n_merges == INT32_MAX ||
		    grow((void **)&tr->merges, &tr->cap_merges, tr->n_merges + 1, sizeof(*tr->merges)) != FTE_OK)
			return oom(tr);
		tr->merges[tr->n_merges][0] = p->a;
		tr->merges[tr->n_merges][1] = p->b;
		tr->merges[tr->n_merges][2] = z;
		if ((rc = merge(tr, top.pair, z, (int32_t)tr->n_merges)) != FTE_OK)
			return rc;
		tr->n_merges++;
	}
	return FTE_OK;
}

/* spell writes symbol s as the vocabulary spells it (byte-level chars). */
static json_t *
spell(const struct trainer *tr, int32_t s)
{
	char *buf = malloc((size_t)tr->tok_len[s] * 2 + 1);
	size_t n = 0;

	if (buf == NULL)
		return NULL;
	for (uint32_t i = 0; i < tr->tok_len[s]; i++) {
		unsigned char c = tr->tok[s][i];
		memcpy(buf + n, tr->skel->bl_char[c], tr->skel->bl_len[c]);
		n += tr->skel->bl_len[c];
	}
	json_t *j = json_stringn(buf, n);
	free(buf);
	return j;
}

static int
dump_cb(const char *buf, size_t size, void *af)
{
	fte__afile_write(af, buf, size);
	return 0;
}

/* write_json writes j atomically through a random O_EXCL temporary. */
static int
write_json(const char *path, const json_t *j)
{
	fte__afile af;
	int rc;

	if ((rc = fte__afile_open(&af, path)) != FTE_OK)
		return rc;
	if (json_dump_callback(j, dump_cb, &af, JSON_INDENT(2)) != 0)
		af.failed = EIO;
	return fte__afile_commit(&af);
}

/* save adds the learned merges to the skeleton and writes both files. */
static int
save(struct trainer *tr, json_t *skel, const char *out_dir)
{
	json_t *model = json_object_get(skel, "model");
	json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
	char path[4096];
	int rc;

	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
		return fte_error_set(FTE_EIO, "%s: cannot create directory: %s", out_dir, strerror(errno));
	for (uint32_t k = 0; k < tr->n_merges; k++) {
		int32_t z = tr->merges[k][2];
		json_t *pair = json_pack("[o, o]", spell(tr, tr->merges[k][0]), spell(tr, tr->merges[k][1]));
		json_t *s = spell(tr, z);
		if (pair == NULL || s == NULL || json_array_append_new(merges, pair) != 0) {
			json_decref(s);
			return oom(tr);
		}
		if (json_object_set_new(vocab, json_string_value(s), json_integer(tr->n_special + z)) != 0) {
			json_decref(s);
			return oom(tr);
		}
		json_decref(s);
	}
	snprintf(path, sizeof(path), "%s/tokenizer.json", out_dir);
	if ((rc = write_json(path, skel)) != FTE_OK)
		return rc;
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}",
	    "bos_token", eot_token, "eos_token", eot_token, "unk_token", eot_token,
	    "add_bos_token", 0, "clean_up_tokenization_spaces", 0,
	    "tokenizer_class", "PreTrainedTokenizerFast");
	if (cfg == NULL || (tr->n_special > 1 && json_object_set_new(cfg, "pad_token", json_string(pad_token)) != 0)) {
		json_decref(cfg);
		return oom(tr);
	}
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", out_dir);
	rc = write_json(path, cfg);
	json_decref(cfg);
	return rc;
}

static int
check_config(const fte_tok_train_config *cfg)
{
	int base = 256 + (cfg->add_pad ? 2 : 1);

	if (cfg->vocab_size < base || cfg->vocab_size > (1 << 24))
		return fte_error_set(FTE_EINVAL, "tokenizer vocabulary size %d is outside %d..%d",
		    cfg->vocab_size, base, 1 << 24);
	return FTE_OK;
}

static int
train_finish(struct trainer *tr, json_t *skel, const fte_tok_train_config *cfg, const char *out_dir)
{
	int rc;

	if ((rc = prepare(tr)) != FTE_OK ||
	    (rc = learn(tr, cfg->vocab_size - tr->n_special,
	        cfg->min_frequency > 1 ? cfg->min_frequency : 1)) != FTE_OK)
		return rc;
	return save(tr, skel, out_dir);
}

int
fte_tokenizer_train(const char *const *texts, const size_t *lens, size_t n,
    const fte_tok_train_config *cfg, const char *out_dir)
{
	struct trainer tr;
	json_t *skel = NULL;
	int rc;

	if ((rc = check_config(cfg)) != FTE_OK)
		return rc;
	if ((rc = trainer_init(&tr, out_dir, cfg, &skel)) != FTE_OK)
		return rc;
	for (size_t i = 0; i < n && rc == FTE_OK; i++) {
		char label[64];
		snprintf(label, sizeof(label), "text %zu", i);
		rc = count_text(&tr, label, texts[i], lens[i]);
	}
	if (rc == FTE_OK)
		rc = train_finish(&tr, skel, cfg, out_dir);
	json_decref(skel);
	trainer_free(&tr);
	return rc;
}

static int
read_whole(const char *path, char **data, size_t *size)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 20, n = 0, r;
	char *buf = NULL;

	if (f == NULL)
		return fte_error_set(FTE_ENOENT, "%s: cannot open: %s", path, strerror(errno));
	for (;;) {
		char *nb = realloc(buf, cap);
		if (nb == NULL) {
			free(buf);
			fclose(f);
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		}
		buf = nb;
		r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n < cap)
			break;
		cap *= 2;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		return fte_error_set(FTE_EIO, "%s: read failed", path);
	}
	*data = buf;
	*size = n;
	return FTE_OK;
}

int
fte_tokenizer_train_files(const char *const *paths, size_t n,
    const fte_tok_train_config *cfg, const char *out_dir)
{
	struct trainer tr;
	json_t *skel = NULL;
	int rc;

	if ((rc = check_config(cfg)) != FTE_OK)
		return rc;
	if ((rc = trainer_init(&tr, out_dir, cfg, &skel)) != FTE_OK)
		return rc;
	for (size_t i = 0; i < n && rc == FTE_OK; i++) {
		char *data = NULL;
		size_t size = 0;
		if ((rc = read_whole(paths[i], &data, &size)) == FTE_OK) {
			rc = count_text(&tr, paths[i], data, size);
			free(data);
		}
	}
	if (rc == FTE_OK)
		rc = train_finish(&tr, skel, cfg, out_dir);
	json_decref(skel);
	trainer_free(&tr);
	return rc;
}
