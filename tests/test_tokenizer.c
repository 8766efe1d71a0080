/*
 * test_tokenizer.c - tokenizers against the real files in ../shared/assets:
 * Hugging Face reference encodings id for id, decode(encode(x)) == x on every
 * corpus, llama2.c tokenizer.bin against the same vocabulary's tokenizer.json,
 * special tokens, and clear errors for broken files.
 */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ft_test.h"
#include "fte.h"
#include "ftengine.h"

static char *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
		*len = (size_t)n;
	}
	return buf;
}

static fte_tokenizer *
load(const char *rel)
{
	fte_tokenizer *t = NULL;
	int rc = fte_tokenizer_load(ft_test_asset(rel), &t);

	if (rc != FTE_OK)
		fprintf(stderr, "load %s: %s\n", rel, fte_last_error());
	CHECK(rc == FTE_OK);
	return t;
}

/* roundtrip checks decode(encode(text)) == text and returns the id count. */
static size_t
roundtrip(const fte_tokenizer *t, const char *text, size_t len, const char *what)
{
	int *ids = NULL;
	size_t n = 0, out_len = 0;
	char *out = NULL;
	int ok = fte_tokenizer_encode(t, text, len, 0, &ids, &n) == FTE_OK &&
	    fte_tokenizer_decode(t, ids, n, &out, &out_len) == FTE_OK;

	CHECK(ok);
	if (ok && (out_len != len || memcmp(out, text, len) != 0)) {
		size_t i = 0;
		while (i < len && i < out_len && out[i] == text[i])
			i++;
		fprintf(stderr, "%s: round trip differs at byte %zu of %zu\n", what, i, len);
		ok = 0;
	}
	CHECK(ok);
	free(ids);
	free(out);
	return n;
}

static void
test_tok512(void)
{
	static const char *const words[] = { "\xe2\x96\x81Once", "\xe2\x96\x81upon", "\xe2\x96\x81\x61" /* a */, "\xe2\x96\x81time" };
	fte_tokenizer *t = load("llama2c/tok512.bin");
	int *ids;
	size_t n;
	char *text;
	size_t len;

	if (t == NULL)
		return;
	CHECK(fte_tokenizer_vocab_size(t) == 512);
	CHECK(fte_tokenizer_bos(t) == 1);
	CHECK(fte_tokenizer_eos(t) == 2);
	CHECK(fte_tokenizer_encode(t, "Once upon a time", 16, 1, &ids, &n) == FTE_OK);
	CHECK(n == 5);
	if (n == 5) {
		CHECK(ids[0] == 1);
		for (int i = 0; i < 4; i++)
			CHECK_STR(fte_tokenizer_token(t, ids[i + 1], NULL), words[i]);
		CHECK(fte_tokenizer_decode_flags(t, ids, n, FTE_TOK_SKIP_SPECIAL, &text, &len) == FTE_OK);
		CHECK_STR(text, "Once upon a time");
		free(text);
		CHECK(fte_tokenizer_decode(t, ids, n, &text, &len) == FTE_OK);
		CHECK_STR(text, "<s> Once upon a time");
		free(text);
	}
	free(ids);
	/* Characters outside the 512 pieces fall back to bytes and come back. */
	const char odd[] = "Zo\xc3\xab's caf\xc3\xa9 \xe2\x82\xac" "5 \xf0\x9f\x98\x80\tx\n\n  y";
	roundtrip(t, odd, sizeof(odd) - 1, "tok512 unicode");
	/* llama2.c tokenizers take any bytes; invalid UTF-8 decodes to U+FFFD
	 * as SentencePiece's byte fallback does. */
	CHECK(fte_tokenizer_encode(t, "a\xff\xc3z", 4, 0, &ids, &n) == FTE_OK);
	CHECK(fte_tokenizer_decode(t, ids, n, &text, &len) == FTE_OK);
	CHECK_STR(text, "a\xef\xbf\xbd\xef\xbf\xbdz");
	free(ids);
	free(text);
	roundtrip(t, "", 0, "tok512 empty");
	CHECK(fte_tokenizer_token_id(t, "<0x0A>") == 3 + 10);
	CHECK(fte_tokenizer_token_id(t, "</s>") == 2);
	CHECK(fte_tokenizer_token_id(t, "no such piece") == -1);
	CHECK(fte_tokenizer_decode(t, (int[]){ 512 }, 1, &text, &len) == FTE_ERANGE);
	CHECK(fte_tokenizer_decode(t, (int[]){ -1 }, 1, &text, &len) == FTE_ERANGE);
	fte_tokenizer_free(t);
}

static int
ids_equal(const json_t *want, const int *ids, size_t n, const char *what)
{
	size_t i;
	json_t *v;

	if (json_array_size(want) != n) {
		fprintf(stderr, "%s: %zu ids, reference has %zu\n", what, n, json_array_size(want));
		return 0;
	}
	json_array_foreach(want, i, v) {
		if (json_integer_value(v) != ids[i]) {
			fprintf(stderr, "%s: id %zu is %d, reference %lld\n", what, i, ids[i],
			    (long long)json_integer_value(v));
			return 0;
		}
	}
	return 1;
}

/* test_vector encodes the reference text and compares ids and decoding. */
static void
test_vector(const char *tokenizer, const char *vector, int add_special)
{
	fte_tokenizer *t = load(tokenizer);
	json_t *ref = json_load_file(ft_test_asset(vector), 0, NULL);
	int *ids;
	size_t n, len;
	char *text;

	CHECK(ref != NULL);
	if (t == NULL || ref == NULL)
		goto out;
	const json_t *jt = json_object_get(ref, "text");
	CHECK(fte_tokenizer_encode(t, json_string_value(jt), json_string_length(jt), add_special, &ids, &n) == FTE_OK);
	CHECK(ids_equal(json_object_get(ref, "token_ids"), ids, n, vector));
	CHECK(fte_tokenizer_decode(t, ids, n, &text, &len) == FTE_OK);
	CHECK_STR(text, json_string_value(json_object_get(ref, "decoded_text")));
	free(text);
	free(ids);
out:
	json_decref(ref);
	fte_tokenizer_free(t);
}

/* test_hf_fixtures: every tokenizer of tests/fixtures/tokenizers_hf.json
 * (made by transformers.js, gen_tok_fixtures.mjs) encodes each text to the
 * same ids, with the post-processor's specials, and decodes them to the
 * same text. */
static void
test_hf_fixtures(void)
{
	json_t *ref = json_load_file(ft_test_fixture("tokenizers_hf.json"), 0, NULL);
	const json_t *texts = json_object_get(ref, "texts"), *tk;
	const char *name;

	CHECK(ref != NULL && json_array_size(texts) >= 20);
	json_object_foreach(json_object_get(ref, "tokenizers"), name, tk) {
		fte_tokenizer *t = load(json_string_value(json_object_get(tk, "path")));
		int agree = 0, passed = 0;

		for (size_t i = 0; t != NULL && i < json_array_size(texts); i++) {
			const json_t *jt = json_array_get(texts, i);
			char what[96], *text = NULL;
			int *ids = NULL;
			size_t n = 0, len;

			snprintf(what, sizeof(what), "%zu", i);
			if (json_object_get(json_object_get(tk, "departs"), what) != NULL) {
				passed++;
				continue;
			}
			snprintf(what, sizeof(what), "%s, text %zu", name, i);
			CHECK(fte_tokenizer_encode(t, json_string_value(jt), json_string_length(jt), 1, &ids,
			    &n) == FTE_OK);
			if (ids_equal(json_array_get(json_object_get(tk, "ids"), i), ids, n, what) &&
			    fte_tokenizer_decode(t, ids, n, &text, &len) == FTE_OK &&
			    strcmp(text, json_string_value(json_array_get(json_object_get(tk, "decoded"), i))) == 0)
				agree++;
			else if (text != NULL)
				fprintf(stderr, "%s: decoded as \"%s\"\n", what, text);
			free(text);
			free(ids);
		}
		printf("  %s: %d of %zu texts as Hugging Face (%d where transformers.js departs from it "
		    "passed over)\n", name, agree, json_array_size(texts), passed);
		CHECK(agree + passed == (int)json_array_size(texts) && passed <= 1);
		fte_tokenizer_free(t);
	}
	json_decref(ref);
}

struct corpus {
	char *text;
	size_t len;
	const char *name;
};

static void
load_corpora(struct corpus *c, int *n)
{
	static const char *const files[] = {
		"corpora/tinyshakespeare/input.txt", "corpora/sotu/sotu.txt",
		"corpora/rfc/rfc2616.txt", "corpora/llamafactory/wiki_demo.txt",
	};
	*n = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		c[*n].text = read_all(ft_test_asset(files[i]), &c[*n].len);
		c[*n].name = files[i];
		CHECK(c[*n].text != NULL);
		if (c[*n].text != NULL)
			(*n)++;
	}
	/* c4_demo.jsonl: the records' text fields, one after another. */
	FILE *f = fopen(ft_test_asset("corpora/llamafactory/c4_demo.jsonl"), "r");
	char line[1 << 16];
	size_t cap = 1 << 20, len = 0;
	char *all = malloc(cap);
	CHECK(f != NULL && all != NULL);
	while (f != NULL && all != NULL && fgets(line, sizeof(line), f) != NULL) {
		json_t *rec = json_loads(line, 0, NULL);
		const json_t *jt = json_object_get(rec, "text");
		size_t l = json_string_length(jt);
		if (len + l + 1 > cap) {
			cap = 2 * (len + l + 1);
			all = realloc(all, cap);
		}
		if (all != NULL && jt != NULL) {
			memcpy(all + len, json_string_value(jt), l);
			len += l;
			all[len++] = '\n';
		}
		json_decref(rec);
	}
	if (f != NULL)
		fclose(f);
	CHECK(len > 100000);
	c[*n].text = all;
	c[*n].len = len;
	c[*n].name = "corpora/llamafactory/c4_demo.jsonl (text)";
	(*n)++;
}

static void
test_roundtrips(const struct corpus *c, int nc)
{
	static const char *const toks[] = {
		"hf/tiny-gpt2/tokenizer.json",
		"tokenizers/gpt2/vocab.bpe",
		"tokenizers/smollm2-135m-instruct/tokenizer.json",
		"tokenizers/tinyllama-1.1b-chat/tokenizer.json",
		"llama2c/tokenizer.bin",
		"llama2c/tok512.bin",
	};
	for (size_t k = 0; k < sizeof(toks) / sizeof(toks[0]); k++) {
		fte_tokenizer *t = load(toks[k]);
		if (t == NULL)
			continue;
		for (int i = 0; i < nc; i++) {
			char what[512];
			snprintf(what, sizeof(what), "%s on %s", toks[k], c[i].name);
			size_t n = roundtrip(t, c[i].text, c[i].len, what);
			/* Sane compression: real BPE gives 2.5-5 bytes per token. */
			CHECK(n > 0 && c[i].len / n >= 1 && c[i].len / n < 8);
		}
		fte_tokenizer_free(t);
	}
}

/* The llama2.c Llama 2 vocabulary and TinyLlama's tokenizer.json are the
 * same SentencePiece model: one merges by score, the other by rank.  The
 * JSON spells the 4 NBSP pieces as ASCII spaces, so NBSP is byte-fallback
 * there and a piece in tokenizer.bin; the texts are compared without NBSP. */
static void expect_error(const char *name, const void *data, size_t len, int want,
    const char *needle);

/* ids_same: a and b encode text to the same ids (with specials). */
static int
ids_same(const fte_tokenizer *a, const fte_tokenizer *b, const char *text, size_t len)
{
	int *x = NULL, *y = NULL, same;
	size_t nx = 0, ny = 0;

	same = fte_tokenizer_encode(a, text, len, 1, &x, &nx) == FTE_OK &&
	    fte_tokenizer_encode(b, text, len, 1, &y, &ny) == FTE_OK && nx == ny &&
	    memcmp(x, y, nx * sizeof(int)) == 0;
	free(x);
	free(y);
	return same;
}

/* A protobuf length-delimited field. */
static size_t
pb_field(unsigned char *out, int field, const void *data, size_t len)
{
	size_t o = 0;

	out[o++] = (unsigned char)(field << 3 | 2);
	out[o++] = (unsigned char)len;          /* every field here is under 128 bytes */
	memcpy(out + o, data, len);
	return o + len;
}

/* test_spm: SentencePiece tokenizer.model files give the tokenizer of their
 * llama2.c tokenizer.bin export (Llama 2: every corpus id for id, and the
 * Hugging Face test vector); tok512.model asks for remove_extra_whitespaces
 * and gets it; a folder with only a tokenizer.model loads it; settings that
 * change the ids are refused by name. */
static void
test_spm(const struct corpus *c, int nc)
{
	fte_tokenizer *model = load("llama2c/tokenizer.model"), *bin = load("llama2c/tokenizer.bin");
	fte_tokenizer *small = load("llama2c/tok512.model"), *small_bin = load("llama2c/tok512.bin");
	char dir[128], link[256];
	fte_tokenizer *t = NULL;


	for (int i = 0; model && bin && i < nc; i++) {
		size_t len = c[i].len < 100000 ? c[i].len : 100000;

		while (len > 0 && ((unsigned char)c[i].text[len] & 0xc0) == 0x80)
			len--;
		if (!ids_same(model, bin, c[i].text, len))
			fprintf(stderr, "tokenizer.model and .bin differ on %s\n", c[i].name);
		CHECK(ids_same(model, bin, c[i].text, len));
	}
	if (model != NULL)
		CHECK(fte_tokenizer_vocab_size(model) == 32000 && fte_tokenizer_bos(model) == 1 &&
		    fte_tokenizer_eos(model) == 2);
	if (small && small_bin) {
		const char *one = "Once upon a time, Lily saw a big ball. 123";
		CHECK(ids_same(small, small_bin, one, strlen(one)));
		/* SentencePiece removes the spaces at the ends and runs of them */
		CHECK(ids_same(small, small_bin, "a big ball", 10));
		CHECK(!ids_same(small, small_bin, "  a  big ball ", 14));
		int *x, *y;
		size_t nx, ny;
		CHECK(fte_tokenizer_encode(small, "  a  big ball ", 14, 1, &x, &nx) == FTE_OK);
		CHECK(fte_tokenizer_encode(small_bin, "a big ball", 10, 1, &y, &ny) == FTE_OK);
		CHECK(nx == ny && memcmp(x, y, nx * sizeof(int)) == 0);
		free(x);
		free(y);
	}
	test_vector("llama2c/tokenizer.model", "tokenizers/testvectors/llama_encoded.json", 1);
	/* a folder holding a tokenizer.model (a copy: links are refused) and nothing else */
	snprintf(dir, sizeof(dir), "/tmp/test_tokenizer_%d_spm", (int)getpid());
	snprintf(link, sizeof(link), "%s/tokenizer.model", dir);
	CHECK(mkdir(dir, 0700) == 0);
	{
		size_t len = 0;
		char *bytes = read_all(ft_test_asset("llama2c/tok512.model"), &len);
		FILE *f = fopen(link, "wb");

		CHECK(bytes != NULL && f != NULL && fwrite(bytes, 1, len, f) == len);
		if (f != NULL)
			fclose(f);
		free(bytes);
	}
	CHECK(fte_tokenizer_load(dir, &t) == FTE_OK && t != NULL && fte_tokenizer_vocab_size(t) == 512);
	fte_tokenizer_free(t);
	unlink(link);
	rmdir(dir);
	/* a Unigram model, and a BPE one with an NFKC rule */
	{
		unsigned char buf[256], piece[32], spec[16];
		size_t n = 0, pn;
		static const char *const names[] = { "<unk>", "<s>", "</s>" };
		static const unsigned char types[] = { 2, 3, 3 };

		for (int i = 0; i < 3; i++) {
			pn = pb_field(piece, 1, names[i], strlen(names[i]));
			piece[pn++] = 3 << 3;             /* type, varint */
			piece[pn++] = types[i];
			n += pb_field(buf + n, 1, piece, pn);
		}
		spec[0] = 3 << 3;                         /* trainer_spec.model_type = UNIGRAM */
		spec[1] = 1;
		size_t base = n;
		n += pb_field(buf + n, 2, spec, 2);
		expect_error("uni.model", (const char *)buf, n, FTE_ENOTSUP, "BPE");
		n = base;
		spec[1] = 2;                              /* BPE */
		n += pb_field(buf + n, 2, spec, 2);
		n += pb_field(buf + n, 3, (unsigned char[]){ 1 << 3 | 2, 8, 'n', 'm', 't', '_', 'n', 'f', 'k', 'c' }, 10);
		expect_error("nfkc.model", (const char *)buf, n, FTE_ENOTSUP, "identity");
		expect_error("junk.model", "\x0a\xff\xff", 3, FTE_EFORMAT, "SentencePiece");
	}
	fte_tokenizer_free(model);
	fte_tokenizer_free(bin);
	fte_tokenizer_free(small);
	fte_tokenizer_free(small_bin);
}

static void
test_llama_same_ids(const struct corpus *c, int nc)
{
	fte_tokenizer *bin = load("llama2c/tokenizer.bin");
	fte_tokenizer *js = load("tokenizers/tinyllama-1.1b-chat/tokenizer.json");
	int *a, *b;
	size_t na, nb;

	if (bin == NULL || js == NULL)
		goto out;
	CHECK(fte_tokenizer_encode(bin, "a\xc2\xa0" "b", 4, 0, &a, &na) == FTE_OK);
	CHECK(fte_tokenizer_encode(js, "a\xc2\xa0" "b", 4, 0, &b, &nb) == FTE_OK);
	CHECK(na == 3 && nb == 4);      /* the quirk itself */
	free(a);
	free(b);
	for (int i = 0; i < nc; i++) {
		size_t len = c[i].len < 300000 ? c[i].len : 300000;
		while (len > 0 && ((unsigned char)c[i].text[len] & 0xc0) == 0x80)
			len--;  /* cut on a character boundary */
		char *text = malloc(len + 1);
		memcpy(text, c[i].text, len);
		for (size_t k = 0; k + 1 < len; k++)
			if (text[k] == '\xc2' && text[k + 1] == '\xa0')
				text[k] = text[k + 1] = ' ';
		CHECK(fte_tokenizer_encode(bin, text, len, 1, &a, &na) == FTE_OK);
		CHECK(fte_tokenizer_encode(js, text, len, 1, &b, &nb) == FTE_OK);
		size_t k = 0;
		while (k < na && k < nb && a[k] == b[k])
			k++;
		if (na != nb || k != na)
			fprintf(stderr, "%s: ids differ at %zu of %zu/%zu\n", c[i].name, k, na, nb);
		CHECK(na == nb && k == na);
		free(a);
		free(b);
		free(text);
	}
out:
	fte_tokenizer_free(bin);
	fte_tokenizer_free(js);
}

static void
test_special(void)
{
	fte_tokenizer *t = load("tokenizers/smollm2-135m-instruct/tokenizer.json");
	const char text[] = "<|im_start|>user\nHi 2024<|im_end|>\n";
	int *ids;
	size_t n;
	char *out;
	size_t len;

	if (t == NULL)
		return;
	int start = fte_tokenizer_token_id(t, "<|im_start|>"), end = fte_tokenizer_token_id(t, "<|im_end|>");
	CHECK(start == 1 && end == 2);
	CHECK(fte_tokenizer_is_special(t, start));
	CHECK(fte_tokenizer_encode(t, text, sizeof(text) - 1, 1, &ids, &n) == FTE_OK);
	CHECK(n >= 8 && ids[0] == start);
	int found_end = 0, digits = 0;
	for (size_t i = 0; i < n; i++) {
		found_end += ids[i] == end;
		size_t l;
		const char *p = fte_tokenizer_token(t, ids[i], &l);
		digits += l == 1 && p[0] >= '0' && p[0] <= '9';
	}
	CHECK(found_end == 1);
	CHECK(digits == 4);     /* Digits(individual_digits) */
	CHECK(fte_tokenizer_decode_flags(t, ids, n, FTE_TOK_SKIP_SPECIAL, &out, &len) == FTE_OK);
	CHECK_STR(out, "user\nHi 2024\n");
	free(out);
	free(ids);
	/* Without PARSE_SPECIAL the markers are plain text. */
	CHECK(fte_tokenizer_encode_flags(t, text, sizeof(text) - 1, 0, &ids, &n) == FTE_OK);
	int found = 0;
	for (size_t i = 0; i < n; i++)
		found += ids[i] == start || ids[i] == end;
	CHECK(found == 0);
	CHECK(fte_tokenizer_decode(t, ids, n, &out, &len) == FTE_OK);
	CHECK_STR(out, text);
	free(out);
	free(ids);
	/* tokenizer.json tokenizers need valid UTF-8. */
	CHECK(fte_tokenizer_encode(t, "a\xff", 2, 0, &ids, &n) == FTE_EINVAL);
	fte_tokenizer_free(t);
}

/* write_tmp writes len bytes to a fresh temporary file and returns its name. */
static const char *
write_tmp(const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/test_tokenizer_%d_%s", (int)getpid(), name);
	f = fopen(path, "wb");
	if (f != NULL) {
		fwrite(data, 1, len, f);
		fclose(f);
	}
	return path;
}

/* expect_error loads a broken file: the error names the file and no
 * tokenizer is returned. */
static void
expect_error(const char *name, const void *data, size_t len, int want, const char *needle)
{
	const char *path = write_tmp(name, data, len);
	fte_tokenizer *t = (fte_tokenizer *)(uintptr_t)1;
	int rc = fte_tokenizer_load(path, &t);

	CHECK(rc == want);
	CHECK(t == (fte_tokenizer *)(uintptr_t)1);
	CHECK(strstr(fte_last_error(), path) != NULL);
	if (needle != NULL && strstr(fte_last_error(), needle) == NULL) {
		fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", name, fte_last_error(), needle);
		CHECK(0);
	}
	unlink(path);
}

static void
test_bad_files(void)
{
	size_t len;
	char *bin = read_all(ft_test_asset("llama2c/tok512.bin"), &len);
	char buf[256];

	CHECK(bin != NULL);
	if (bin == NULL)
		return;
	expect_error("trunc2.bin", bin, 2, FTE_EFORMAT, "truncated");
	expect_error("trunc10.bin", bin, 10, FTE_EFORMAT, "truncated");
	expect_error("trunc_end.bin", bin, len - 1, FTE_EFORMAT, "truncated");
	expect_error("trunc_mid.bin", bin, len / 2, FTE_EFORMAT, NULL);
	/* A piece that is not UTF-8: entry 300 gets a stray 0xff. */
	size_t off = 4;
	for (int i = 0; i < 300; i++) {
		int32_t l;
		memcpy(&l, bin + off + 4, 4);
		off += 8 + (size_t)l;
	}
	bin[off + 8] = (char)0xff;
	expect_error("badutf8.bin", bin, len, FTE_EFORMAT, "UTF-8");
	free(bin);

	expect_error("empty.json", "{", 1, FTE_EFORMAT, "JSON");
	expect_error("novocab.json", "{\"model\": {}}", 13, FTE_EFORMAT, "vocab");
	snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}");
	expect_error("wordpiece.json", buf, strlen(buf), FTE_ENOTSUP, "WordPiece");
	snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}}");
	expect_error("unigram.json", buf, strlen(buf), FTE_ENOTSUP, "Unigram");
	snprintf(buf, sizeof(buf), "{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_error("bert.json", buf, strlen(buf), FTE_ENOTSUP, "BertPreTokenizer");
	snprintf(buf, sizeof(buf), "{\"decoder\": {\"type\": \"WordPiece\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_error("wpdec.json", buf, strlen(buf), FTE_ENOTSUP, "decoder type WordPiece");
	snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\\ud800\": 0}, \"merges\": []}}");
	expect_error("surrogate.json", buf, strlen(buf), FTE_EFORMAT, NULL);
	snprintf(buf, sizeof(buf), "{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_error("bert.json", buf, strlen(buf), FTE_ENOTSUP, "BertNormalizer");
	snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}");
	expect_error("badmerge.json", buf, strlen(buf), FTE_EFORMAT, "merge 0");
	snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []}}");
	expect_error("badid.json", buf, strlen(buf), FTE_EFORMAT, "bad id");
	snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\xff\": 0}, \"merges\": []}}");
	expect_error("badutf8.json", buf, strlen(buf), FTE_EFORMAT, NULL);
	fte_tokenizer *t;
	CHECK(fte_tokenizer_load("/nonexistent/tokenizer.json", &t) == FTE_ENOENT);
	CHECK(strstr(fte_last_error(), "/nonexistent/tokenizer.json") != NULL);
}

struct job {
	const fte_tokenizer *t;
	const char *text;
	size_t len;
	int *ids;
	size_t n;
	int rc;
};

static void *
encode_job(void *arg)
{
	struct job *j = arg;

	j->rc = fte_tokenizer_encode(j->t, j->text, j->len, 1, &j->ids, &j->n);
	return NULL;
}

/* One tokenizer shared by threads gives each the same ids as one thread. */
static void
test_threads(const struct corpus *c)
{
	fte_tokenizer *t = load("hf/tiny-gpt2/tokenizer.json");
	struct job jobs[4];
	pthread_t th[4];
	size_t len = c->len < 100000 ? c->len : 100000;

	if (t == NULL)
		return;
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct job){ t, c->text, len, NULL, 0, -1 };
		CHECK(pthread_create(&th[i], NULL, encode_job, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++) {
		CHECK(jobs[i].rc == FTE_OK);
		CHECK(jobs[i].n == jobs[0].n && jobs[i].n > 0 &&
		    memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int)) == 0);
	}
	for (int i = 0; i < 4; i++)
		free(jobs[i].ids);
	fte_tokenizer_free(t);
}

/* mini_encode loads one of the fuzz seed tokenizers and checks the ids and
 * decoding of one text. */
static void
mini_encode(const char *file, const char *text, unsigned flags, const int *want, size_t n_want,
    const char *want_text)
{
	char path[4096];
	fte_tokenizer *t;
	int *ids;
	size_t n, len;
	char *out;

	snprintf(path, sizeof(path), "%s", ft_test_fixture("../fuzz/corpus/tokenizer_json/"));
	strncat(path, file, sizeof(path) - strlen(path) - 1);
	if (fte_tokenizer_load(path, &t) != FTE_OK) {
		fprintf(stderr, "%s\n", fte_last_error());
		CHECK(0);
		return;
	}
	CHECK(fte_tokenizer_encode_flags(t, text, strlen(text), flags, &ids, &n) == FTE_OK);
	CHECK(n == n_want && memcmp(ids, want, n * sizeof(int)) == 0);
	if (n != n_want || memcmp(ids, want, n * sizeof(int)) != 0) {
		fprintf(stderr, "%s \"%s\":", file, text);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %d", ids[i]);
		fprintf(stderr, "\n");
	}
	CHECK(fte_tokenizer_decode(t, ids, n, &out, &len) == FTE_OK);
	CHECK_STR(out, want_text);
	free(out);
	free(ids);
	fte_tokenizer_free(t);
}

/* Hand-made tokenizers exercise what the real files do not: merge order
 * by rank, byte fallback inside a word, unk fusing, Metaspace with
 * prepend_scheme "first", Split regex, ignore_merges. */
static void
test_mini(void)
{
	unsigned all = FTE_TOK_ADD_SPECIAL | FTE_TOK_PARSE_SPECIAL;

	mini_encode("sentencepiece.json", "ab Hello", all, (int[]){ 1, 267, 269, 268, 262, 114 }, 6, "<s> ab Hello");
	mini_encode("sentencepiece.json", "ab Hello", 0, (int[]){ 267, 269, 268, 262, 114 }, 5, "ab Hello");
	mini_encode("metaspace.json", "xyz", all, (int[]){ 1, 259, 0 }, 3, "<s> <unk>");
	mini_encode("metaspace.json", "a 12345", 0, (int[]){ 265, 259, 0, 0 }, 4, "a <unk><unk>");
	/* prepend_scheme "first": no metaspace for text after a leading <s>. */
	mini_encode("metaspace.json", "<s>a a", FTE_TOK_PARSE_SPECIAL, (int[]){ 1, 260, 265 }, 3, "<s>a a");
	mini_encode("bytelevel.json", "hello the 42", 0, (int[]){ 261, 258, 32, 52, 50 }, 5, "hello the 42");
	mini_encode("bytelevel.json", "he<|endoftext|>", all, (int[]){ 257, 262 }, 2, "he<|endoftext|>");
	/* byte_fallback without all 256 byte pieces: a character whose bytes
	 * all have one falls back to them, any other is unknown (fused). */
	mini_encode("partial_bytes.json", "ab\xc3\xa9" "a\xe2\x82\xac\xe2\x82\xac" "b", 0,
	    (int[]){ 5, 2, 3, 1, 0, 4 }, 6, "ab\xc3\xa9" "a<unk>b");
}

/* run_cli runs an ftengine subcommand with input on stdin and returns its
 * exit status; its stdout is in *out (malloc'd). */
static int
run_cli(int (*fn)(int, char **), int argc, char **argv, const char *input, char **out)
{
	char in_path[64], out_path[64];
	size_t len;
	int rc;

	snprintf(in_path, sizeof(in_path), "/tmp/test_tokenizer_%d_in", (int)getpid());
	snprintf(out_path, sizeof(out_path), "/tmp/test_tokenizer_%d_out", (int)getpid());
	FILE *f = fopen(in_path, "wb");
	if (f == NULL)
		return -1;
	fputs(input, f);
	fclose(f);
	fflush(stdout);
	int saved_in = dup(0), saved_out = dup(1);
	int fi = open(in_path, O_RDONLY), fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fi, 0);
	dup2(fo, 1);
	close(fi);
	close(fo);
	clearerr(stdin);
	rc = fn(argc, argv);
	fflush(stdout);
	dup2(saved_in, 0);
	dup2(saved_out, 1);
	close(saved_in);
	close(saved_out);
	clearerr(stdin);
	*out = read_all(out_path, &len);
	unlink(in_path);
	unlink(out_path);
	return rc;
}

static void
test_cli(void)
{
	char *tok = (char *)ft_test_asset("llama2c/tok512.bin");
	char *out = NULL;

	CHECK(run_cli(ftengine_tokenize, 3, (char *[]){ "tokenize", "--tokenizer", tok, NULL },
	    "Once upon a time", &out) == 0);
	CHECK_STR(out, "1 403 407 261 378\n");
	free(out);
	CHECK(run_cli(ftengine_tokenize, 4, (char *[]){ "tokenize", "--tokenizer", tok, "--no-special", NULL },
	    "Once upon a time", &out) == 0);
	CHECK_STR(out, "403 407 261 378\n");
	free(out);
	CHECK(run_cli(ftengine_tokenize, 4, (char *[]){ "tokenize", "--json", "--tokenizer", tok, NULL },
	    "Once", &out) == 0);
	CHECK_STR(out, "{\"ids\":[1,403],\"tokens\":[\"<s>\",\"\u2581Once\"]}\n");
	free(out);
	CHECK(run_cli(ftengine_detokenize, 3, (char *[]){ "detokenize", "--tokenizer", tok, NULL },
	    "[403, 407, 261, 378]\n", &out) == 0);
	CHECK_STR(out, "Once upon a time");
	free(out);
	CHECK(run_cli(ftengine_detokenize, 4, (char *[]){ "detokenize", "--tokenizer", tok, "--skip-special", NULL },
	    "1 403 2", &out) == 0);
	CHECK_STR(out, "Once");
	free(out);
	CHECK(run_cli(ftengine_detokenize, 3, (char *[]){ "detokenize", "--tokenizer", tok, NULL }, "1 x", &out) == 1);
	free(out);
	CHECK(run_cli(ftengine_detokenize, 3, (char *[]){ "detokenize", "--tokenizer", tok, NULL }, "99999", &out) == 1);
	free(out);
	CHECK(run_cli(ftengine_tokenize, 2, (char *[]){ "tokenize", "--bogus", NULL }, "", &out) == 2);
	free(out);
	CHECK(run_cli(ftengine_tokenize, 3, (char *[]){ "tokenize", "--tokenizer", "/nonexistent", NULL }, "", &out) == 1);
	free(out);
}

int
main(void)
{
	struct corpus c[8];
	int nc;

	test_tok512();
	test_vector("hf/tiny-gpt2/tokenizer.json", "tokenizers/testvectors/gpt2_encoded_tokens.json", 1);
	test_vector("tokenizers/tinyllama-1.1b-chat/tokenizer.json", "tokenizers/testvectors/llama_encoded.json", 1);
	test_vector("tokenizers/gpt2/encoder.json", "tokenizers/testvectors/gpt2_encoded_tokens.json", 1);
	test_vector("tokenizers/gpt2", "tokenizers/testvectors/gpt2_encoded_tokens.json", 1);
	test_hf_fixtures();
	test_special();
	test_bad_files();
	test_mini();
	test_cli();
	load_corpora(c, &nc);
	test_roundtrips(c, nc);
	test_llama_same_ids(c, nc);
	test_spm(c, nc);
	test_threads(&c[0]);
	for (int i = 0; i < nc; i++)
		free(c[i].text);
	return ft_test_done();
}
