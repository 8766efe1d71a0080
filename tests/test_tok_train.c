/*
 * test_tok_train.c - byte-level BPE training (fte_tokenizer_train): exact
 * merges on a hand-checkable text; on Tiny Shakespeare the vocabulary size,
 * the merges against a naive reference trainer written here (every step
 * recounts every pair), round trips on every corpus, compression on
 * held-out text, determinism, special tokens and errors.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fte.h"
#include "fte_tok.h"
#include "ft_test.h"

/* utf8_cut shortens n so that it does not end inside a character. */
static size_t
utf8_cut(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

static int
roundtrip(const fte_tokenizer *t, const char *s, size_t n, size_t *n_tokens)
{
	int *ids = NULL;
	size_t n_ids = 0, len = 0;
	char *back = NULL;
	int ok = fte_tokenizer_encode(t, s, n, 0, &ids, &n_ids) == FTE_OK &&
	    fte_tokenizer_decode(t, ids, n_ids, &back, &len) == FTE_OK &&
	    len == n && memcmp(back, s, n) == 0;

	if (n_tokens != NULL)
		*n_tokens = n_ids;
	free(ids);
	free(back);
	return ok;
}

/* The vocabulary spelling of one byte: GPT-2's bytes_to_unicode. */
static void
byte_char(int b, char out[3])
{
	int next = 256, cp = -1;

	for (int x = 0; x <= b; x++) {
		int keep = (x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || x >= 0xae;
		cp = keep ? x : next++;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = '\0';
	} else {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		out[2] = '\0';
	}
}

static void
spell(const char *bytes, size_t n, char *out)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char c[3];
		byte_char((unsigned char)bytes[i], c);
		strcat(out, c);
	}
}

/* ---- a naive reference trainer ---- */


struct ref_word {
	const char *s;
	size_t len;
	long count;
	int *sym;
	size_t n;
};

struct ref {
	struct ref_word *w;
	size_t n;
	char **tok;             /* symbol -> bytes */
	size_t *tok_len;
	int n_tok;
};

static int
word_cmp(const void *a, const void *b)
{
	const struct ref_word *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* ref_words splits text with GPT-2's pattern (as written in the GPT-2
 * paper's code) and counts equal words. */
static int
ref_words(struct ref *r, const char *text, size_t len)
{
	static const char pat[] =
	    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
	int err;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	size_t at = 0, cap = 1024, n = 0;
	struct ref_word *all = malloc(cap * sizeof(*all));

	/* The first match checks the text is UTF-8; checking it again at
	 * every match would be quadratic. */
	while (at < len && pcre2_match(re, (PCRE2_SPTR)text, len, at, at ? PCRE2_NO_UTF_CHECK : 0, md, NULL) > 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		if (n == cap)
			all = realloc(all, (cap *= 2) * sizeof(*all));
		all[n++] = (struct ref_word){ .s = text + ov[0], .len = ov[1] - ov[0], .count = 1 };
		at = ov[1];
	}
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	qsort(all, n, sizeof(*all), word_cmp);
	r->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (r->n > 0 && word_cmp(&all[r->n - 1], &all[i]) == 0)
			all[r->n - 1].count++;
		else
			all[r->n++] = all[i];
	}
	r->w = all;
	r->tok = malloc(4096 * sizeof(char *));
	r->tok_len = malloc(4096 * sizeof(size_t));
	for (int b = 0; b < 256; b++) {
		r->tok[b] = malloc(1);
		r->tok[b][0] = (char)b;
		r->tok_len[b] = 1;
	}
	r->n_tok = 256;
	for (size_t i = 0; i < r->n; i++) {
		r->w[i].sym = malloc(r->w[i].len * sizeof(int));
		for (size_t k = 0; k < r->w[i].len; k++)
			r->w[i].sym[k] = (unsigned char)r->w[i].s[k];
		r->w[i].n = r->w[i].len;
	}
	return (int)n;
}

static int
bytes_cmp(const struct ref *r, int u, int v)
{
	size_t n = r->tok_len[u] < r->tok_len[v] ? r->tok_len[u] : r->tok_len[v];
	int c = memcmp(r->tok[u], r->tok[v], n);

	return c != 0 ? c : (r->tok_len[u] > r->tok_len[v]) - (r->tok_len[u] < r->tok_len[v]);
}

/* ref_step recounts every pair, merges the best and returns its count
 * (0 when none is left); *a and *b are its symbols. */
static long
ref_step(struct ref *r, int *a, int *b)
{
	long best = 0;
	int ba = -1, bb = -1;
	long *count = calloc((size_t)r->n_tok * (size_t)r->n_tok, sizeof(long));

	for (size_t i = 0; i < r->n; i++)
		for (size_t k = 0; k + 1 < r->w[i].n; k++)
			count[(size_t)r->w[i].sym[k] * (size_t)r->n_tok + (size_t)r->w[i].sym[k + 1]] += r->w[i].count;
	for (int x = 0; x < r->n_tok; x++)
		for (int y = 0; y < r->n_tok; y++) {
			long c = count[(size_t)x * (size_t)r->n_tok + (size_t)y];
			if (c == 0 || c < best)
				continue;
			int before = c > best;
			if (!before) {
				int d = bytes_cmp(r, x, ba);
				before = d < 0 || (d == 0 && bytes_cmp(r, y, bb) < 0);
			}
			if (before) {
				best = c;
				ba = x;
				bb = y;
			}
		}
	free(count);
	if (best == 0)
		return 0;
	int z = r->n_tok++;
	r->tok_len[z] = r->tok_len[ba] + r->tok_len[bb];
	r->tok[z] = malloc(r->tok_len[z]);
	memcpy(r->tok[z], r->tok[ba], r->tok_len[ba]);
	memcpy(r->tok[z] + r->tok_len[ba], r->tok[bb], r->tok_len[bb]);
	for (size_t i = 0; i < r->n; i++) {
		size_t j = 0;
		for (size_t k = 0; k < r->w[i].n; k++) {
			if (k + 1 < r->w[i].n && r->w[i].sym[k] == ba && r->w[i].sym[k + 1] == bb) {
				r->w[i].sym[j++] = z;
				k++;
			} else {
				r->w[i].sym[j++] = r->w[i].sym[k];
			}
		}
		r->w[i].n = j;
	}
	*a = ba;
	*b = bb;
	return best;
}

static void
ref_free(struct ref *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->w[i].sym);
	free(r->w);
	for (int i = 0; i < r->n_tok; i++)
		free(r->tok[i]);
	free(r->tok);
	free(r->tok_len);
}

/* ---- tests ---- */

static json_t *
merges_of(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	json_t *root = json_load_file(path, 0, NULL);
	json_t *m = json_incref(json_object_get(json_object_get(root, "model"), "merges"));
	json_decref(root);
	return m;
}

static int
merge_is(const json_t *merges, size_t k, const char *a, const char *b)
{
	const json_t *m = json_array_get(merges, k);

	return json_is_array(m) && json_array_size(m) == 2 &&
	    strcmp(json_string_value(json_array_get(m, 0)), a) == 0 &&
	    strcmp(json_string_value(json_array_get(m, 1)), b) == 0;
}

static void
test_tiny(const char *dir)
{
	/* Words "aaab", " aab", " ab": (a,a) and (a,b) are seen 3 times and
	 * (a,a) sorts first; then (a,b) twice; then four pairs once, of which
	 * (" ", "aa") sorts first. */
	const char *text = "aaab aab ab";
	size_t len = strlen(text);
	fte_tok_train_config cfg = { .vocab_size = 257 + 3, .min_frequency = 1 };
	fte_tokenizer *t = NULL;

	CHECK(fte_tokenizer_train(&text, &len, 1, &cfg, dir) == FTE_OK);
	json_t *m = merges_of(dir);
	CHECK(json_array_size(m) == 3);
	CHECK(merge_is(m, 0, "a", "a"));
	CHECK(merge_is(m, 1, "a", "b"));
	CHECK(merge_is(m, 2, "\xc4\xa0", "aa"));
	json_decref(m);
	CHECK(fte_tokenizer_load(dir, &t) == FTE_OK);
	if (t == NULL)
		return;
	CHECK(fte_tokenizer_vocab_size(t) == 260);
	CHECK(fte_tokenizer_bos(t) == 0 && fte_tokenizer_eos(t) == 0);
	CHECK_STR(fte_tokenizer_token(t, 0, NULL), "<|endoftext|>");
	int *ids = NULL;
	size_t n = 0;
	CHECK(fte_tokenizer_encode(t, text, len, 0, &ids, &n) == FTE_OK);
	/* aa ab | " aa" b | " " ab; bytes are 1 + byte value */
	int want[] = { 257, 258, 259, 1 + 'b', 1 + ' ', 258 };
	CHECK(n == 6 && memcmp(ids, want, sizeof(want)) == 0);
	free(ids);
	/* The document separator is a special token, not text to learn. */
	CHECK(fte_tokenizer_encode(t, "ab<|endoftext|>", 15, 0, &ids, &n) == FTE_OK);
	CHECK(n == 2 && ids[0] == 258 && ids[1] == 0);
	free(ids);
	fte_tokenizer_free(t);

}

static void
test_pad_and_errors(const char *dir)
{
	const char *text = "one two three<|pad|>one two";
	size_t len = strlen(text);
	fte_tok_train_config cfg = { .vocab_size = 270, .min_frequency = 1, .add_pad = 1 };
	fte_tokenizer *t = NULL;

	CHECK(fte_tokenizer_train(&text, &len, 1, &cfg, dir) == FTE_OK);
	CHECK(fte_tokenizer_load(dir, &t) == FTE_OK);
	if (t != NULL) {
		CHECK(fte_tokenizer_token_id(t, "<|pad|>") == 1);
		CHECK(fte_tokenizer_is_special(t, 1));
		CHECK(fte_tokenizer_token_id(t, "<|pad|>e") < 0);
		fte_tokenizer_free(t);
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	json_t *c = json_load_file(path, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(c, "pad_token")), "<|pad|>");
	CHECK_STR(json_string_value(json_object_get(c, "eos_token")), "<|endoftext|>");
	json_decref(c);

	const char *bad = "ok \xff not";
	size_t bad_len = strlen(bad);
	cfg.add_pad = 0;
	CHECK(fte_tokenizer_train(&bad, &bad_len, 1, &cfg, dir) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "invalid UTF-8") != NULL);
	cfg.vocab_size = 256;
	CHECK(fte_tokenizer_train(&text, &len, 1, &cfg, dir) == FTE_EINVAL);
	const char *missing = "/nonexistent/corpus.txt";
	cfg.vocab_size = 300;
	CHECK(fte_tokenizer_train_files(&missing, 1, &cfg, dir) == FTE_ENOENT);
}

static int
same_file(const char *a, const char *b)
{
	size_t na = 0, nb = 0;
	char *x = ft_test_file_read(a, &na), *y = ft_test_file_read(b, &nb);
	int same = x != NULL && y != NULL && na == nb && memcmp(x, y, na) == 0;

	free(x);
	free(y);
	return same;
}

static void
test_shakespeare(const char *dir)
{
	const char *path = ft_test_asset("corpora/tinyshakespeare/input.txt");
	char dir2[4096], a[4096], b[4096];
	size_t len = 0;
	char *text = ft_test_file_read(path, &len);
	fte_tok_train_config cfg = { .vocab_size = 1000, .min_frequency = 2 };
	fte_tokenizer *t = NULL;

	CHECK(text != NULL);
	if (text == NULL)
		return;
	/* Train on the first 90%, keep the rest for compression. */
	size_t train_len = utf8_cut(text, len / 10 * 9);
	const char *train_text = text;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(fte_tokenizer_train(&train_text, &train_len, 1, &cfg, dir) == FTE_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("trained 1000 tokens on %zu bytes in %.3f s\n", train_len,
	    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
	CHECK(fte_tokenizer_load(dir, &t) == FTE_OK);
	if (t == NULL) {
		free(text);
		return;
	}
	CHECK(fte_tokenizer_vocab_size(t) == 1000);
	CHECK(fte_tokenizer_bos(t) == 0 && fte_tokenizer_eos(t) == 0);

	/* Merges in frequency order: the reference trainer recounts every pair
	 * at every step, so its merges, and their non-increasing counts, check
	 * the incremental bookkeeping. */
	struct ref r;
	ref_words(&r, train_text, train_len);
	json_t *m = merges_of(dir);
	CHECK(json_array_size(m) >= 1000 - 257);
	long prev = -1;
	int agree = 1;
	for (size_t k = 0; k < 1000 - 257; k++) {
		int x = 0, y = 0;
		long c = ref_step(&r, &x, &y);
		char sa[64], sb[64];
		spell(r.tok[x], r.tok_len[x], sa);
		spell(r.tok[y], r.tok_len[y], sb);
		if (!merge_is(m, k, sa, sb)) {
			fprintf(stderr, "merge %zu: reference (%s, %s) seen %ld times\n", k, sa, sb, c);
			agree = 0;
		}
		CHECK(prev < 0 || c <= prev);
		prev = c;
		if (k == 0)
			printf("first merge (%s, %s) seen %ld times\n", sa, sb, c);
	}
	CHECK(agree);
	ref_free(&r);
	json_decref(m);

	/* Compression on the held-out tenth: measured 2.25 bytes/token at 1000
	 * tokens (Shakespeare's short lines and names leave little to merge
	 * at that size) and 2.56 at 2048. */
	size_t n_tok = 0, held = len - train_len;
	CHECK(roundtrip(t, text + train_len, held, &n_tok));
	double ratio = n_tok > 0 ? (double)held / (double)n_tok : 0;
	printf("held-out compression: %.3f bytes/token at 1000 tokens\n", ratio);
	CHECK(ratio > 2.2);
	snprintf(dir2, sizeof(dir2), "%s2", dir);
	fte_tok_train_config big = { .vocab_size = 2048, .min_frequency = 2 };
	fte_tokenizer *t2 = NULL;
	CHECK(fte_tokenizer_train(&train_text, &train_len, 1, &big, dir2) == FTE_OK);
	CHECK(fte_tokenizer_load(dir2, &t2) == FTE_OK);
	if (t2 != NULL) {
		size_t n2 = 0;
		CHECK(fte_tokenizer_vocab_size(t2) == 2048);
		CHECK(roundtrip(t2, text + train_len, held, &n2));
		double ratio2 = n2 > 0 ? (double)held / (double)n2 : 0;
		printf("held-out compression: %.3f bytes/token at 2048 tokens\n", ratio2);
		CHECK(ratio2 > 2.5 && ratio2 > ratio);
		fte_tokenizer_free(t2);
	}

	/* Every corpus round-trips (the first 256 KiB of each, to keep it quick). */
	static const char *const corpora[] = {
		"corpora/tinyshakespeare/input.txt", "corpora/sotu/sotu.txt",
		"corpora/rfc/rfc2616.txt", "corpora/llamafactory/wiki_demo.txt",
		"corpora/llamafactory/c4_demo.jsonl",
	};
	for (size_t i = 0; i < sizeof(corpora) / sizeof(corpora[0]); i++) {
		size_t n = 0;
		char *s = ft_test_file_read(ft_test_asset(corpora[i]), &n);
		CHECK(s != NULL);
		if (s == NULL)
			continue;
		n = n > 262144 ? utf8_cut(s, 262144) : n;
		int ok = roundtrip(t, s, n, NULL);
		if (!ok)
			fprintf(stderr, "round trip failed on %s\n", corpora[i]);
		CHECK(ok);
		free(s);
	}
	static const char unicode[] =
	    "Ünïcödé: naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어, "
	    "emoji 🙂👍🏽👨‍👩‍👧 and 🏳️‍🌈, math ∀x∈ℝ: x²≥0, tabs\tand\r\nnewlines\n\n  spaces  \u00a0nbsp "
	    "'s 't 're 1234567 3.14159 <|endoftext|> done";
	CHECK(roundtrip(t, unicode, sizeof(unicode) - 1, NULL));
	fte_tokenizer_free(t);

	/* Deterministic: training the file twice gives identical files. */
	CHECK(fte_tokenizer_train_files(&path, 1, &cfg, dir) == FTE_OK);
	CHECK(fte_tokenizer_train_files(&path, 1, &cfg, dir2) == FTE_OK);
	snprintf(a, sizeof(a), "%s/tokenizer.json", dir);
	snprintf(b, sizeof(b), "%s/tokenizer.json", dir2);
	CHECK(same_file(a, b));
	snprintf(a, sizeof(a), "%s/tokenizer_config.json", dir);
	snprintf(b, sizeof(b), "%s/tokenizer_config.json", dir2);
	CHECK(same_file(a, b));
	snprintf(a, sizeof(a), "%s/tokenizer.json", dir2);
	unlink(a);
	unlink(b);
	rmdir(dir2);
	free(text);
}

/* have_assets: ft_test_asset would exit, which would drop the checks
 * above that need no assets. */
static int
have_assets(void)
{
	char path[4096];
	const char *root = getenv("FT_ASSETS");

	snprintf(path, sizeof(path), "%s/corpora/tinyshakespeare/input.txt", root ? root : "../shared/assets");
	return access(path, R_OK) == 0;
}

int
main(void)
{
	char dir[] = "/tmp/test_tok_train.XXXXXX", path[4096];
	int assets = have_assets();

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_tiny(dir);
	test_pad_and_errors(dir);
	if (assets)
		test_shakespeare(dir);
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	unlink(path);
	rmdir(dir);
	int rc = ft_test_done();
	if (rc == 0 && !assets) {
		printf("SKIP: Tiny Shakespeare checks need ../shared/assets\n");
		return 77;
	}
	return rc;
}
