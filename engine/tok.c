/*
 * tok.c - the tokenizer pipeline: loading dispatch, added-token splitting,
 * normalizers, pre-tokenizers, BPE, post-processing and the decoder chain.
 * See tok_internal.h for how each tokenizer kind maps onto the pipeline.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#include "fte_io_internal.h"
#include "tok_internal.h"

/* ---- hash maps ---- */

uint32_t
tok_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;       /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static int
strmap_grow(struct tok_strmap *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 64;
	struct tok_strmap_slot *s = calloc(cap, sizeof(*s));

	if (s == NULL)
		return FTE_ENOMEM;
	for (uint32_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key == NULL)
			continue;
		uint32_t j = m->slots[i].hash & (cap - 1);
		while (s[j].key != NULL)
			j = (j + 1) & (cap - 1);
		s[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = s;
	m->cap = cap;
	return FTE_OK;
}

/* tok_strmap_put maps key to val; an existing key keeps its first value. */
int
tok_strmap_put(struct tok_strmap *m, const char *key, uint32_t len, int32_t val)
{
	if ((m->n + 1) * 2 > m->cap && strmap_grow(m) != FTE_OK)
		return FTE_ENOMEM;
	uint32_t h = tok_hash(key, len), j = h & (m->cap - 1);
	while (m->slots[j].key != NULL) {
		if (m->slots[j].hash == h && m->slots[j].len == len &&
		    memcmp(m->slots[j].key, key, len) == 0)
			return FTE_OK;
		j = (j + 1) & (m->cap - 1);
	}
	m->slots[j] = (struct tok_strmap_slot){ key, len, h, val };
	m->n++;
	return FTE_OK;
}

int32_t
tok_strmap_get(const struct tok_strmap *m, const char *key, size_t len)
{
	if (m->cap == 0)
		return -1;
	uint32_t h = tok_hash(key, len), j = h & (m->cap - 1);
	while (m->slots[j].key != NULL) {
		if (m->slots[j].hash == h && m->slots[j].len == len &&
		    memcmp(m->slots[j].key, key, len) == 0)
			return m->slots[j].val;
		j = (j + 1) & (m->cap - 1);
	}
	return -1;
}

void
tok_strmap_free(struct tok_strmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static uint32_t
pair_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (uint32_t)k;
}

static int
pairmap_grow(struct tok_pairmap *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 64;
	struct tok_pair_slot *s = malloc(cap * sizeof(*s));

	if (s == NULL)
		return FTE_ENOMEM;
	for (uint32_t i = 0; i < cap; i++)
		s[i].key = UINT64_MAX;
	for (uint32_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key == UINT64_MAX)
			continue;
		uint32_t j = pair_hash(m->slots[i].key) & (cap - 1);
		while (s[j].key != UINT64_MAX)
			j = (j + 1) & (cap - 1);
		s[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = s;
	m->cap = cap;
	return FTE_OK;
}

/* tok_pairmap_put adds a merge; a repeated pair keeps its first (best) rank. */
int
tok_pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id)
{
	uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;

	if ((m->n + 1) * 2 > m->cap && pairmap_grow(m) != FTE_OK)
		return FTE_ENOMEM;
	uint32_t j = pair_hash(k) & (m->cap - 1);
	while (m->slots[j].key != UINT64_MAX) {
		if (m->slots[j].key == k)
			return FTE_OK;
		j = (j + 1) & (m->cap - 1);
	}
	m->slots[j] = (struct tok_pair_slot){ k, rank, id };
	m->n++;
	return FTE_OK;
}

const struct tok_pair_slot *
tok_pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b)
{
	uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;

	if (m->cap == 0)
		return NULL;
	uint32_t j = pair_hash(k) & (m->cap - 1);
	while (m->slots[j].key != UINT64_MAX) {
		if (m->slots[j].key == k)
			return &m->slots[j];
		j = (j + 1) & (m->cap - 1);
	}
	return NULL;
}

void
tok_pairmap_free(struct tok_pairmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ---- UTF-8 ---- */

size_t
tok_utf8_char(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

size_t
tok_utf8_check(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = tok_utf8_char(u + i, n - i);
		if (l == 0)
			return i;
		i += l;
	}
	return n;
}

/* ---- object lifetime ---- */

int
tok_new(const char *path, int n_vocab, fte_tokenizer **out)
{
	fte_tokenizer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	t->path = strdup(path);
	t->n_vocab = n_vocab;
	t->piece = calloc((size_t)n_vocab + 1, sizeof(*t->piece));
	t->piece_len = calloc((size_t)n_vocab + 1, sizeof(*t->piece_len));
	t->special = calloc((size_t)n_vocab + 1, 1);
	if (t->path == NULL || t->piece == NULL || t->piece_len == NULL || t->special == NULL) {
		fte_tokenizer_free(t);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	t->unk_id = t->bos = t->eos = -1;
	for (int b = 0; b < 256; b++)
		t->byte_id[b] = t->bl_id[b] = -1;
	*out = t;
	return FTE_OK;
}

void
fte_tokenizer_free(fte_tokenizer *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < t->n_vocab; i++)
		free(t->piece[i]);
	free(t->piece);
	free(t->piece_len);
	free(t->special);
	free(t->score);
	tok_strmap_free(&t->vocab);
	tok_pairmap_free(&t->merges);
	for (int i = 0; i < t->n_norm; i++) {
		free(t->norm[i].a);
		free(t->norm[i].b);
	}
	free(t->norm);
	free(t->metaspace);
	for (int i = 0; i < t->n_pre; i++)
		pcre2_code_free(t->pre[i].re);
	free(t->pre);
	for (int i = 0; i < t->n_added; i++)
		free(t->added[i].content);
	free(t->added);
	for (int b = 0; b < 256; b++)
		free(t->added_first[b]);
	free(t->prefix);
	free(t->suffix);
	for (int i = 0; i < t->n_dec; i++) {
		free(t->dec[i].a);
		free(t->dec[i].b);
	}
	free(t->dec);
	for (int i = 0; i < t->n_spare; i++)
		free(t->spare[i]);
	free(t->spare);
	free(t->path);
	free(t);
}

int
tok_regex(const fte_tokenizer *t, const char *pattern, int literal, pcre2_code **out)
{
	int err;
	PCRE2_SIZE off;
	uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opt, &err, &off, NULL);

	if (re == NULL) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof(msg));
		return fte_error_set(FTE_EFORMAT, "%s: bad pre-tokenizer pattern at offset %zu: %s",
		    t->path, (size_t)off, (char *)msg);
	}
	/* JIT is an optimization; without it matching still works. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	*out = re;
	return FTE_OK;
}

static unsigned
hex_digit(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* byte_token: 1 with *v set when the n bytes at s spell <0xHH>.  Pieces are
 * packed without terminators, so no sscanf: it reads on to the next NUL. */
static int
byte_token(const char *s, size_t n, unsigned *v)
{
	if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>' ||
	    !isxdigit((unsigned char)s[3]) || !isxdigit((unsigned char)s[4]))
		return 0;
	*v = hex_digit(s[3]) << 4 | hex_digit(s[4]);
	return 1;
}

static int
added_cmp_len(const void *a, const void *b, void *arg)
{
	const struct tok_added *added = arg;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	if (added[x].len != added[y].len)
		return added[x].len > added[y].len ? -1 : 1;
	return x - y;
}

int
tok_finish(fte_tokenizer *t)
{
	int count[256] = { 0 };

	for (int i = 0; i < t->n_added; i++)
		count[(unsigned char)t->added[i].content[0]]++;
	for (int b = 0; b < 256; b++) {
		if (count[b] == 0)
			continue;
		t->added_first[b] = malloc(((size_t)count[b] + 1) * sizeof(int32_t));
		if (t->added_first[b] == NULL)
			return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
		int k = 0;
		for (int i = 0; i < t->n_added; i++)
			if ((unsigned char)t->added[i].content[0] == b)
				t->added_first[b][k++] = i;
		qsort_r(t->added_first[b], (size_t)k, sizeof(int32_t), added_cmp_len, t->added);
		t->added_first[b][k] = -1;
	}
	for (int i = 0; i < t->n_vocab; i++) {
		const char *p = t->piece[i];
		unsigned v;
		if (p != NULL && byte_token(p, t->piece_len[i], &v) && t->byte_id[v] < 0)
			t->byte_id[v] = i;
	}
	if (t->byte_level) {
		/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for
		 * themselves, the others map to U+0100 upwards in byte order. */
		int next = 256;
		for (int b = 0; b < 256; b++) {
			int cp = ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae) ? b : next++;
			char s[2] = { (char)(0xc0 | cp >> 6), (char)(0x80 | (cp & 0x3f)) };
			if (cp < 0x80)
				s[0] = (char)cp;
			t->bl_len[b] = cp < 0x80 ? 1 : 2;
			memcpy(t->bl_char[b], s, 2);
			t->bl_id[b] = tok_strmap_get(&t->vocab, s, t->bl_len[b]);
		}
	}
	return FTE_OK;
}

void
tok_ws_setup(fte_tokenizer *t)
{
	const char *x = NULL;

	t->ws_split = NULL;
	if (t->n_pre > 0 || t->byte_level || t->metaspace != NULL)
		return;
	for (int i = 0; i < t->n_norm; i++)
		if (t->norm[i].kind == TOK_NORM_REPLACE && strcmp(t->norm[i].a, " ") == 0)
			x = t->norm[i].b;
	if (x == NULL || *x == '\0' || tok_strmap_get(&t->vocab, x, strlen(x)) < 0)
		return;
	size_t xl = strlen(x);
	for (uint32_t i = 0; i < t->vocab.cap; i++) {
		const char *k = t->vocab.slots[i].key;
		size_t n = t->vocab.slots[i].len, j = 0;
		if (k == NULL)
			continue;
		while (j + xl <= n && memcmp(k + j, x, xl) == 0)
			j += xl;
		for (; j + xl <= n; j++)
			if (memcmp(k + j, x, xl) == 0)
				return;
	}
	t->ws_split = x;
}

/* ---- loading ---- */

static int
read_file(const char *path, char **data, size_t *size)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;
	FILE *f;
	int rc;

	if ((rc = fte__fopen(path, &f)) != FTE_OK)
		return rc;
	for (;;) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 1 << 16;
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			}
			buf = nb;
			cap = ncap;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return fte_error_set(FTE_EIO, "%s: read error", path);
	}
	fclose(f);
	buf[n] = '\0';
	*data = buf;
	*size = n;
	return FTE_OK;
}

static int
load_memory(const char *name, const char *data, size_t size, int with_config, fte_tokenizer **out)
{
	size_t i = 0;

	while (i < size && isspace((unsigned char)data[i]))
		i++;
	size_t nl = strlen(name);

	/* A tokenizer.bin starts with an int32 max_token_length, never '{'; a
	 * SentencePiece model is named *.model (its bytes could also start a
	 * tokenizer.bin). */
	if (i < size && data[i] == '{')
		return tok_json_load(name, data, size, with_config, out);
	if (size >= 4 && memcmp(data, "GGUF", 4) == 0)
		return fte__gguf_tokenizer_memory(name, data, size, out);
	if (nl >= 6 && strcmp(name + nl - 6, ".model") == 0)
		return tok_spm_load(name, (const unsigned char *)data, size, out);
	return tok_llama2c_load(name, (const unsigned char *)data, size, out);
}

int
fte_tokenizer_load(const char *path, fte_tokenizer **out)
{
	struct stat st;
	char file[4096];
	char *data = NULL;
	size_t size = 0;
	int rc;

	if (path == NULL || out == NULL)
		return fte_error_set(FTE_EINVAL, "fte_tokenizer_load: NULL argument");
	if (stat(path, &st) != 0)
		return fte_error_set(errno == ENOENT ? FTE_ENOENT : FTE_EIO, "%s: %s", path, strerror(errno));
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (S_ISDIR(st.st_mode)) {
		snprintf(file, sizeof(file), "%s/tokenizer.json", path);
		if (stat(file, &st) == 0)
			goto read;
		snprintf(file, sizeof(file), "%s/encoder.json", path);
		if (stat(file, &st) == 0) {
			char bpe[4096];
			snprintf(bpe, sizeof(bpe), "%s/vocab.bpe", path);
			return tok_gpt2_load(file, bpe, out);
		}
		snprintf(file, sizeof(file), "%s/tokenizer.bin", path);
		if (stat(file, &st) != 0)
			snprintf(file, sizeof(file), "%s/tokenizer.gguf", path);
		if (stat(file, &st) != 0)
			snprintf(file, sizeof(file), "%s/tokenizer.model", path);
	} else if (strcmp(base, "encoder.json") == 0 || strcmp(base, "vocab.bpe") == 0) {
		/* OpenAI's GPT-2 pair: either file names both. */
		char bpe[4096];
		snprintf(file, sizeof(file), "%.*sencoder.json", (int)(base - path), path);
		snprintf(bpe, sizeof(bpe), "%.*svocab.bpe", (int)(base - path), path);
		return tok_gpt2_load(file, bpe, out);
	} else {
		snprintf(file, sizeof(file), "%s", path);
	}
read:
	if ((rc = read_file(file, &data, &size)) != FTE_OK)
		return rc;
	rc = load_memory(file, data, size, 1, out);
	free(data);
	return rc;
}

int
fte_tokenizer_load_memory(const char *name, const void *data, size_t size, fte_tokenizer **out)
{
	if (name == NULL || (data == NULL && size > 0) || out == NULL)
		return fte_error_set(FTE_EINVAL, "fte_tokenizer_load_memory: NULL argument");
	return load_memory(name, data, size, 0, out);
}

/* ---- encoding ---- */

struct ids {
	int *v;
	size_t n, cap;
};

static int
ids_push(struct ids *a, int id)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		int *v = realloc(a->v, cap * sizeof(int));
		if (v == NULL)
			return FTE_ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = id;
	return FTE_OK;
}

struct range {
	size_t off, len;
};

struct ranges {
	struct range *v;
	size_t n, cap;
};

static int
ranges_push(struct ranges *r, size_t off, size_t len)
{
	if (len == 0)
		return FTE_OK;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct range *v = realloc(r->v, cap * sizeof(*v));
		if (v == NULL)
			return FTE_ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct range){ off, len };
	return FTE_OK;
}

/* BPE working state: a doubly linked list of symbols over one word and a
 * binary heap of candidate merges ordered by (priority, position), which
 * gives Hugging Face's order for ranks and llama2.c's for scores. */
struct sym {
	int id;
	int prev, next;
	uint32_t start, len;    /* bytes of the word; len 0 once merged away */
	int fixed;              /* byte-fallback or unk: never merged by score */
};

struct cand {
	float prio;
	int pos, right;
	int left_id, right_id, new_id;
};

/* One encode call's state; the word cache lives only as long as the call,
 * so a const tokenizer can be shared between threads. */
struct enc {
	const fte_tokenizer *t;
	struct ids out;
	struct sym *sym;
	size_t sym_cap;
	struct cand *heap;
	size_t heap_n, heap_cap;
	pcre2_match_data *md;
	struct ranges words, tmp;
	struct tok_strmap cache;        /* word -> index into cache_ent */
	struct { uint32_t off, n; } *cache_ent;
	size_t cache_n, cache_cap;
	struct ids cache_ids;
	char **bufs;                    /* normalized segments: cache keys point here */
	size_t n_bufs, bufs_cap;
	char *map;                      /* scratch for ignore_merges lookups */
	size_t map_cap;
};

static int
cand_less(const struct cand *a, const struct cand *b)
{
	return a->prio < b->prio || (a->prio == b->prio && a->pos < b->pos);
}

static int
heap_push(struct enc *e, struct cand c)
{
	if (e->heap_n == e->heap_cap) {
		size_t cap = e->heap_cap ? e->heap_cap * 2 : 256;
		struct cand *h = realloc(e->heap, cap * sizeof(*h));
		if (h == NULL)
			return FTE_ENOMEM;
		e->heap = h;
		e->heap_cap = cap;
	}
	size_t i = e->heap_n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!cand_less(&c, &e->heap[p]))
			break;
		e->heap[i] = e->heap[p];
		i = p;
	}
	e->heap[i] = c;
	return FTE_OK;
}

static struct cand
heap_pop(struct enc *e)
{
	struct cand top = e->heap[0], last = e->heap[--e->heap_n];
	size_t i = 0, n = e->heap_n;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && cand_less(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!cand_less(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (n > 0)
		e->heap[i] = last;
	return top;
}

/* pair_add queues the merge of symbols l and r if the tokenizer has one. */
static int
pair_add(struct enc *e, const char *w, int l, int r)
{
	const fte_tokenizer *t = e->t;
	const struct sym *a = &e->sym[l], *b = &e->sym[r];
	struct cand c = { 0, l, r, a->id, b->id, -1 };

	if (t->merge_mode == TOK_MERGE_RANK) {
		const struct tok_pair_slot *m = tok_pairmap_get(&t->merges, a->id, b->id);
		if (m == NULL)
			return FTE_OK;
		c.prio = (float)m->rank;
		c.new_id = m->id;
	} else {
		if (a->fixed || b->fixed)
			return FTE_OK;
		int id = tok_strmap_get(&t->vocab, w + a->start, a->len + b->len);
		if (id < 0)
			return FTE_OK;
		c.prio = -t->score[id];
		c.new_id = id;
	}
	return heap_push(e, c);
}

static int
sym_push(struct enc *e, size_t *n, int id, uint32_t start, uint32_t len, int fixed)
{
	if (*n == e->sym_cap) {
		size_t cap = e->sym_cap ? e->sym_cap * 2 : 256;
		struct sym *s = realloc(e->sym, cap * sizeof(*s));
		if (s == NULL)
			return FTE_ENOMEM;
		e->sym = s;
		e->sym_cap = cap;
	}
	e->sym[*n] = (struct sym){ id, (int)*n - 1, (int)*n + 1, start, len, fixed };
	(*n)++;
	return FTE_OK;
}

/* As Hugging Face's BPE: a character falls back to byte tokens only when
 * the vocabulary has one for each of its bytes; otherwise it is unknown. */
static int
bytes_have_ids(const fte_tokenizer *t, const unsigned char *u, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (t->byte_id[u[k]] < 0)
			return 0;
	return 1;
}

/* word_symbols splits a word into its initial symbols: one per byte for
 * byte-level BPE, else one per character with byte fallback or unk. */
static int
word_symbols(struct enc *e, const char *w, size_t n, size_t *nsym)
{
	const fte_tokenizer *t = e->t;
	const unsigned char *u = (const unsigned char *)w;
	int rc;

	*nsym = 0;
	for (size_t i = 0; i < n;) {
		size_t cl = t->byte_level ? 1 : tok_utf8_char(u + i, n - i);
		int id = -1;
		if (t->byte_level)
			id = t->bl_id[u[i]];
		else if (cl > 0)
			id = tok_strmap_get(&t->vocab, w + i, cl);
		if (cl == 0)
			cl = 1;         /* an invalid byte: only byte fallback can take it */
		if (id >= 0) {
			if ((rc = sym_push(e, nsym, id, (uint32_t)i, (uint32_t)cl, 0)) != FTE_OK)
				return rc;
		} else if (t->byte_fallback && bytes_have_ids(t, u + i, cl)) {
			for (size_t k = 0; k < cl; k++)
				if ((rc = sym_push(e, nsym, t->byte_id[u[i + k]], (uint32_t)(i + k), 1, 1)) != FTE_OK)
					return rc;
		} else if (t->unk_id >= 0) {
			if (t->fuse_unk && *nsym > 0 && e->sym[*nsym - 1].id == t->unk_id && e->sym[*nsym - 1].fixed)
				e->sym[*nsym - 1].len += (uint32_t)cl;
			else if ((rc = sym_push(e, nsym, t->unk_id, (uint32_t)i, (uint32_t)cl, 1)) != FTE_OK)
				return rc;
		}
		/* With neither byte fallback nor unk, HF's BPE drops the char. */
		i += cl;
	}
	return FTE_OK;
}

static int
bpe_merge(struct enc *e, const char *w, size_t nsym)
{
	int rc;

	if (nsym == 0)
		return FTE_OK;
	e->sym[nsym - 1].next = -1;
	e->heap_n = 0;
	for (size_t i = 0; i + 1 < nsym; i++)
		if ((rc = pair_add(e, w, (int)i, (int)i + 1)) != FTE_OK)
			return rc;
	while (e->heap_n > 0) {
		struct cand c = heap_pop(e);
		struct sym *l = &e->sym[c.pos];
		if (l->len == 0 || l->next != c.right || l->id != c.left_id ||
		    e->sym[c.right].id != c.right_id || e->sym[c.right].len == 0)
			continue;       /* stale: a neighbour merged since */
		struct sym *r = &e->sym[c.right];
		l->id = c.new_id;
		l->len += r->len;
		l->fixed = 0;
		l->next = r->next;
		r->len = 0;
		if (l->next >= 0)
			e->sym[l->next].prev = c.pos;
		if (l->prev >= 0 && (rc = pair_add(e, w, l->prev, c.pos)) != FTE_OK)
			return rc;
		if (l->next >= 0 && (rc = pair_add(e, w, c.pos, l->next)) != FTE_OK)
			return rc;
	}
	return FTE_OK;
}

/* ignore_merges: a word that is itself a token is taken whole. */
static int
word_whole(struct enc *e, const char *w, size_t n)
{
	const fte_tokenizer *t = e->t;

	if (!t->byte_level)
		return tok_strmap_get(&t->vocab, w, n);
	if (e->map_cap < 2 * n) {
		char *m = realloc(e->map, 2 * n);
		if (m == NULL)
			return -1;
		e->map = m;
		e->map_cap = 2 * n;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)w[i];
		memcpy(e->map + k, t->bl_char[b], t->bl_len[b]);
		k += t->bl_len[b];
	}
	return tok_strmap_get(&t->vocab, e->map, k);
}

#define CACHE_MAX_WORD 256
#define CACHE_MAX_ENTRIES 200000

static int
encode_word(struct enc *e, const char *w, size_t n)
{
	size_t nsym;
	int rc, id;

	if (n <= CACHE_MAX_WORD) {
		int32_t k = tok_strmap_get(&e->cache, w, n);
		if (k >= 0) {
			for (uint32_t i = 0; i < e->cache_ent[k].n; i++)
				if ((rc = ids_push(&e->out, e->cache_ids.v[e->cache_ent[k].off + i])) != FTE_OK)
					return rc;
			return FTE_OK;
		}
	}
	size_t first = e->out.n;
	if (e->t->ignore_merges && (id = word_whole(e, w, n)) >= 0) {
		if ((rc = ids_push(&e->out, id)) != FTE_OK)
			return rc;
	} else {
		if ((rc = word_symbols(e, w, n, &nsym)) != FTE_OK ||
		    (rc = bpe_merge(e, w, nsym)) != FTE_OK)
			return rc;
		for (int i = nsym ? 0 : -1; i >= 0; i = e->sym[i].next)
			if ((rc = ids_push(&e->out, e->sym[i].id)) != FTE_OK)
				return rc;
	}
	if (n <= CACHE_MAX_WORD && e->cache_n < CACHE_MAX_ENTRIES) {
		if (e->cache_n == e->cache_cap) {
			size_t cap = e->cache_cap ? e->cache_cap * 2 : 1024;
			void *p = realloc(e->cache_ent, cap * sizeof(*e->cache_ent));
			if (p == NULL)
				return FTE_ENOMEM;
			e->cache_ent = p;
			e->cache_cap = cap;
		}
		e->cache_ent[e->cache_n].off = (uint32_t)e->cache_ids.n;
		e->cache_ent[e->cache_n].n = (uint32_t)(e->out.n - first);
		for (size_t i = first; i < e->out.n; i++)
			if ((rc = ids_push(&e->cache_ids, e->out.v[i])) != FTE_OK)
				return rc;
		if ((rc = tok_strmap_put(&e->cache, w, (uint32_t)n, (int32_t)e->cache_n)) != FTE_OK)
			return rc;
		e->cache_n++;
	}
	return FTE_OK;
}

/* str_replace returns a malloc'd copy of s with every pat replaced by rep. */
static char *
str_replace(const char *s, size_t n, const char *pat, const char *rep, size_t *out_n)
{
	size_t pl = strlen(pat), rl = strlen(rep), count = 0;

	if (pl == 0) {
		char *c = malloc(n + 1);
		if (c != NULL) {
			memcpy(c, s, n);
			c[n] = '\0';
			*out_n = n;
		}
		return c;
	}
	for (size_t i = 0; i + pl <= n;)
		if (memcmp(s + i, pat, pl) == 0)
			count++, i += pl;
		else
			i++;
	size_t len = n + count * rl - count * pl;
	char *r = malloc(len + 1), *p = r;
	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		if (i + pl <= n && memcmp(s + i, pat, pl) == 0) {
			memcpy(p, rep, rl);
			p += rl;
			i += pl;
		} else {
			*p++ = s[i++];
		}
	}
	*p = '\0';
	*out_n = len;
	return r;
}

/* normalize runs the normalizer steps (and the string-rewriting parts of the
 * pre-tokenizers) on one segment; the result is kept until the call ends. */
static int
normalize(struct enc *e, const char *s, size_t n, size_t offset, const char **out, size_t *out_n)
{
	const fte_tokenizer *t = e->t;
	char *cur = malloc(n + 1);
	size_t len = n;

	if (cur == NULL)
		return FTE_ENOMEM;
	memcpy(cur, s, n);
	cur[n] = '\0';
	for (int i = 0; i < t->n_norm; i++) {
		const struct tok_norm *st = &t->norm[i];
		char *next;
		size_t nl;
		if (st->kind == TOK_NORM_PREPEND) {
			if (len == 0)
				continue;
			size_t pl = strlen(st->a);
			next = malloc(pl + len + 1);
			if (next != NULL) {
				memcpy(next, st->a, pl);
				memcpy(next + pl, cur, len + 1);
			}
			nl = pl + len;
		} else if (st->kind == TOK_NORM_SQUEEZE) {
			/* spaces (U+0020 only) cut at both ends, runs made one */
			size_t o = 0;

			next = cur;
			for (size_t k = 0; k < len; k++)
				if (cur[k] != ' ' || (o > 0 && next[o - 1] != ' '))
					next[o++] = cur[k];
			while (o > 0 && next[o - 1] == ' ')
				o--;
			next[o] = '\0';
			len = o;
			continue;
		} else if (st->kind == TOK_NORM_UNICODE) {
			utf8proc_uint8_t *mapped = NULL;
			utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)len,
			    &mapped, (utf8proc_option_t)st->form);

			/* tokenizer.json text was checked to be UTF-8 before */
			if (r < 0) {
				free(cur);
				return r == UTF8PROC_ERROR_NOMEM ? FTE_ENOMEM : FTE_EINVAL;
			}
			next = (char *)mapped;
			nl = (size_t)r;
		} else {
			next = str_replace(cur, len, st->a, st->b, &nl);
		}
		free(cur);
		if (next == NULL)
			return FTE_ENOMEM;
		cur = next;
		len = nl;
	}
	if (t->metaspace != NULL) {
		size_t ml = strlen(t->metaspace);
		char *next = str_replace(cur, len, " ", t->metaspace, &len);
		free(cur);
		if (next == NULL)
			return FTE_ENOMEM;
		cur = next;
		/* "first": only a segment that starts the text (HF checks the
		 * original offset, so text after a leading special token has none). */
		int pre = t->meta_prepend == 2 || (t->meta_prepend == 1 && offset == 0);
		if (pre && len > 0 && (len < ml || memcmp(cur, t->metaspace, ml) != 0)) {
			next = malloc(len + ml + 1);
			if (next == NULL) {
				free(cur);
				return FTE_ENOMEM;
			}
			memcpy(next, t->metaspace, ml);
			memcpy(next + ml, cur, len + 1);
			free(cur);
			cur = next;
			len += ml;
		}
	}
	if (t->prefix_space && len > 0 && cur[0] != ' ') {
		char *next = malloc(len + 2);
		if (next == NULL) {
			free(cur);
			return FTE_ENOMEM;
		}
		next[0] = ' ';
		memcpy(next + 1, cur, len + 1);
		free(cur);
		cur = next;
		len++;
	}
	if (e->n_bufs == e->bufs_cap) {
		size_t cap = e->bufs_cap ? e->bufs_cap * 2 : 8;
		char **b = realloc(e->bufs, cap * sizeof(*b));
		if (b == NULL) {
			free(cur);
			return FTE_ENOMEM;
		}
		e->bufs = b;
		e->bufs_cap = cap;
	}
	e->bufs[e->n_bufs++] = cur;
	*out = cur;
	*out_n = len;
	return FTE_OK;
}

/* split_words applies one pre-tokenizer split to every current word. */
static int
split_words(struct enc *e, const char *s, const struct tok_pre *p)
{
	int rc;

	e->tmp.n = 0;
	for (size_t w = 0; w < e->words.n; w++) {
		size_t base = e->words.v[w].off, n = e->words.v[w].len, at = 0, gap = 0;
		size_t pend_off = 0;    /* MergedWithNext: start of the open piece */
		int pending = 0;
		while (at <= n) {
			int m = pcre2_match(p->re, (PCRE2_SPTR)(s + base), n, at, PCRE2_NO_UTF_CHECK, e->md, NULL);
			if (m == PCRE2_ERROR_NOMATCH)
				break;
			if (m < 0)
				return fte_error_set(FTE_EINVAL, "%s: pre-tokenizer regex failed (%d)", e->t->path, m);
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
			size_t ms = ov[0], me = ov[1];
			if (me == ms) {         /* an empty match splits nothing */
				at = me + 1;
				while (at < n && ((unsigned char)s[base + at] & 0xc0) == 0x80)
					at++;
				continue;
			}
			switch (p->behavior) {
			case TOK_SPLIT_ISOLATED:
				if ((rc = ranges_push(&e->tmp, base + gap, ms - gap)) != FTE_OK ||
				    (rc = ranges_push(&e->tmp, base + ms, me - ms)) != FTE_OK)
					return rc;
				break;
			case TOK_SPLIT_REMOVED:
				if ((rc = ranges_push(&e->tmp, base + gap, ms - gap)) != FTE_OK)
					return rc;
				break;
			case TOK_SPLIT_MERGED_PREV:
				if ((rc = ranges_push(&e->tmp, base + gap, me - gap)) != FTE_OK)
					return rc;
				break;
			case TOK_SPLIT_MERGED_NEXT:
				if (pending) {
					if ((rc = ranges_push(&e->tmp, pend_off, base + ms - pend_off)) != FTE_OK)
						return rc;
				} else if ((rc = ranges_push(&e->tmp, base + gap, ms - gap)) != FTE_OK) {
					return rc;
				}
				pending = 1;
				pend_off = base + ms;
				break;
			}
			gap = at = me;
		}
		if (pending) {
			if ((rc = ranges_push(&e->tmp, pend_off, base + n - pend_off)) != FTE_OK)
				return rc;
		} else if ((rc = ranges_push(&e->tmp, base + gap, n - gap)) != FTE_OK) {
			return rc;
		}
	}
	struct ranges swap = e->words;
	e->words = e->tmp;
	e->tmp = swap;
	return FTE_OK;
}

static int
encode_segment(struct enc *e, const char *s, size_t n, size_t offset)
{
	const fte_tokenizer *t = e->t;
	const char *norm;
	size_t nn;
	int rc;

	if (n == 0)
		return FTE_OK;
	if ((rc = normalize(e, s, n, offset, &norm, &nn)) != FTE_OK)
		return rc;
	e->words.n = 0;
	if ((rc = ranges_push(&e->words, 0, nn)) != FTE_OK)
		return rc;
	for (int i = 0; i < t->n_pre; i++)
		if ((rc = split_words(e, norm, &t->pre[i])) != FTE_OK)
			return rc;
	if (t->ws_split != NULL) {
		/* Words start where a run of space markers follows other text. */
		const char *x = t->ws_split;
		size_t xl = strlen(x), start = 0;
		int prev_x = 1;
		e->words.n = 0;
		for (size_t i = 0; i < nn;) {
			int is_x = i + xl <= nn && memcmp(norm + i, x, xl) == 0;
			if (is_x && !prev_x) {
				if ((rc = ranges_push(&e->words, start, i - start)) != FTE_OK)
					return rc;
				start = i;
			}
			prev_x = is_x;
			i += is_x ? xl : 1;
		}
		if ((rc = ranges_push(&e->words, start, nn - start)) != FTE_OK)
			return rc;
	}
	for (size_t w = 0; w < e->words.n; w++)
		if ((rc = encode_word(e, norm + e->words.v[w].off, e->words.v[w].len)) != FTE_OK)
			return rc;
	return FTE_OK;
}

static int
is_word_byte(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

/* added_match returns the longest added token at text[i], or NULL. */
static const struct tok_added *
added_match(const fte_tokenizer *t, const char *text, size_t len, size_t i, unsigned flags)
{
	const int32_t *list = t->added_first[(unsigned char)text[i]];

	if (list == NULL)
		return NULL;
	for (; *list >= 0; list++) {
		const struct tok_added *a = &t->added[*list];
		if (a->special && !(flags & FTE_TOK_PARSE_SPECIAL))
			continue;
		if (a->len > len - i || memcmp(text + i, a->content, a->len) != 0)
			continue;
		if (a->single_word && ((i > 0 && is_word_byte((unsigned char)text[i - 1])) ||
		    (i + a->len < len && is_word_byte((unsigned char)text[i + a->len]))))
			continue;
		return a;
	}
	return NULL;
}

static void
enc_free(struct enc *e)
{
	free(e->out.v);
	free(e->sym);
	free(e->heap);
	pcre2_match_data_free(e->md);
	free(e->words.v);
	free(e->tmp.v);
	tok_strmap_free(&e->cache);
	free(e->cache_ent);
	free(e->cache_ids.v);
	for (size_t i = 0; i < e->n_bufs; i++)
		free(e->bufs[i]);
	free(e->bufs);
	free(e->map);
}

static int
encode_all(struct enc *e, const char *text, size_t len, unsigned flags)
{
	const fte_tokenizer *t = e->t;
	size_t seg = 0, i = 0;
	int rc;

	if ((flags & FTE_TOK_ADD_SPECIAL))
		for (int k = 0; k < t->n_prefix; k++)
			if ((rc = ids_push(&e->out, t->prefix[k])) != FTE_OK)
				return rc;
	while (i < len) {
		const struct tok_added *a = added_match(t, text, len, i, flags);
		if (a == NULL) {
			i++;
			continue;
		}
		size_t end = i, next = i + a->len;
		if (a->lstrip)
			while (end > seg && isspace((unsigned char)text[end - 1]))
				end--;
		if (a->rstrip)
			while (next < len && isspace((unsigned char)text[next]))
				next++;
		if ((rc = encode_segment(e, text + seg, end - seg, seg)) != FTE_OK ||
		    (rc = ids_push(&e->out, a->id)) != FTE_OK)
			return rc;
		seg = i = next;
	}
	if ((rc = encode_segment(e, text + seg, len - seg, seg)) != FTE_OK)
		return rc;
	if ((flags & FTE_TOK_ADD_SPECIAL))
		for (int k = 0; k < t->n_suffix; k++)
			if ((rc = ids_push(&e->out, t->suffix[k])) != FTE_OK)
				return rc;
	return FTE_OK;
}

int
fte_tokenizer_encode_flags(const fte_tokenizer *t, const char *text, size_t len,
    unsigned flags, int **ids, size_t *n_ids)
{
	struct enc e = { .t = t };
	size_t bad;
	int rc;

	if (t == NULL || (text == NULL && len > 0) || ids == NULL || n_ids == NULL)
		return fte_error_set(FTE_EINVAL, "fte_tokenizer_encode: NULL argument");
	if (t->utf8_only && (bad = tok_utf8_check(text, len)) != len)
		return fte_error_set(FTE_EINVAL, "%s: input text is not valid UTF-8 (byte %zu)", t->path, bad);
	if (t->n_pre > 0 && (e.md = pcre2_match_data_create(4, NULL)) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", t->path);
	rc = encode_all(&e, text, len, flags);
	if (rc == FTE_OK && e.out.v == NULL && (e.out.v = malloc(sizeof(int))) == NULL)
		rc = FTE_ENOMEM;
	if (rc != FTE_OK) {
		enc_free(&e);
		if (rc == FTE_ENOMEM)
			return fte_error_set(rc, "%s: out of memory while encoding", t->path);
		return rc;
	}
	*ids = e.out.v;
	*n_ids = e.out.n;
	e.out.v = NULL;
	enc_free(&e);
	return FTE_OK;
}

int
fte_tokenizer_encode(const fte_tokenizer *t, const char *text, size_t len,
    int add_special, int **ids, size_t *n_ids)
{
	unsigned flags = FTE_TOK_PARSE_SPECIAL | (add_special ? FTE_TOK_ADD_SPECIAL : 0);

	return fte_tokenizer_encode_flags(t, text, len, flags, ids, n_ids);
}

/* ---- decoding ---- */

/* A list of token strings in one buffer; each decoder step builds a new one. */
struct toks {
	char *buf;
	size_t len, cap;
	size_t *off;            /* n + 1 offsets */
	size_t n, ocap;
};

static int
toks_reserve(struct toks *l, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap < l->len + n + 1)
			cap *= 2;
		char *b = realloc(l->buf, cap);
		if (b == NULL)
			return FTE_ENOMEM;
		l->buf = b;
		l->cap = cap;
	}
	return FTE_OK;
}

static int
toks_add(struct toks *l, const char *s, size_t n)
{
	if (toks_reserve(l, n) != FTE_OK)
		return FTE_ENOMEM;
	if (l->n + 2 > l->ocap) {
		size_t cap = l->ocap ? l->ocap * 2 : 64;
		size_t *o = realloc(l->off, cap * sizeof(*o));
		if (o == NULL)
			return FTE_ENOMEM;
		l->off = o;
		l->ocap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	if (l->n == 0)
		l->off[0] = 0;
	l->len += n;
	l->off[++l->n] = l->len;
	return FTE_OK;
}

/* toks_append extends the last token (adding one if there is none). */
static int
toks_append(struct toks *l, const char *s, size_t n)
{
	if (l->n == 0)
		return toks_add(l, s, n);
	if (toks_reserve(l, n) != FTE_OK)
		return FTE_ENOMEM;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->off[l->n] = l->len;
	return FTE_OK;
}

static void
toks_free(struct toks *l)
{
	free(l->buf);
	free(l->off);
	memset(l, 0, sizeof(*l));
}

#define TOK_STR(l, i) ((l)->buf + (l)->off[i])
#define TOK_LEN(l, i) ((l)->off[(i) + 1] - (l)->off[i])

static int
flush_bytes(struct toks *out, const unsigned char *b, size_t n)
{
	int rc = FTE_OK;

	if (n == 0)
		return FTE_OK;
	if (tok_utf8_check((const char *)b, n) == n)
		return toks_add(out, (const char *)b, n);
	for (size_t i = 0; i < n && rc == FTE_OK; i++)
		rc = toks_add(out, "\xef\xbf\xbd", 3);  /* U+FFFD, as HF does */
	return rc;
}

static int
byte_level_char(const unsigned char *s, size_t n, size_t *cl, int *byte)
{
	size_t l = tok_utf8_char(s, n);
	uint32_t cp;

	if (l == 0 || l > 2)
		return 0;
	cp = l == 1 ? s[0] : (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
	*cl = l;
	if ((cp >= '!' && cp <= '~') || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff)) {
		*byte = (int)cp;
		return 1;
	}
	if (cp < 256 || cp >= 256 + 68)
		return 0;
	/* U+0100 + k stands for the k-th byte outside the printable ranges. */
	int k = (int)cp - 256;
	for (int b = 0; b < 256; b++) {
		if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
			continue;
		if (k-- == 0) {
			*byte = b;
			return 1;
		}
	}
	return 0;
}

static int
decode_step(const struct tok_dec *d, const struct toks *in, struct toks *out)
{
	unsigned char bytes[256];
	size_t nb = 0;
	int rc = FTE_OK;

	for (size_t i = 0; i < in->n && rc == FTE_OK; i++) {
		const char *s = TOK_STR(in, i);
		size_t n = TOK_LEN(in, i);
		switch (d->kind) {
		case TOK_DEC_REPLACE:
		case TOK_DEC_METASPACE: {
			size_t rl;
			char *r = str_replace(s, n, d->a, d->b, &rl);
			if (r == NULL)
				return FTE_ENOMEM;
			size_t skip = d->kind == TOK_DEC_METASPACE && d->start && i == 0 && rl > 0 && r[0] == ' ';
			rc = toks_add(out, r + skip, rl - skip);
			free(r);
			break;
		}
		case TOK_DEC_BYTE_FALLBACK: {
			unsigned v;
			if (byte_token(s, n, &v)) {
				if (nb == sizeof(bytes)) {
					if ((rc = flush_bytes(out, bytes, nb)) != FTE_OK)
						return rc;
					nb = 0;
				}
				bytes[nb++] = (unsigned char)v;
				break;
			}
			if ((rc = flush_bytes(out, bytes, nb)) != FTE_OK)
				return rc;
			nb = 0;
			rc = toks_add(out, s, n);
			break;
		}
		case TOK_DEC_FUSE:
			rc = i == 0 ? toks_add(out, s, n) : toks_append(out, s, n);
			break;
		case TOK_DEC_STRIP: {
			size_t cl = strlen(d->a), a = 0, b = n;
			for (int k = 0; k < d->start && b - a >= cl && memcmp(s + a, d->a, cl) == 0; k++)
				a += cl;
			for (int k = 0; k < d->stop && b - a >= cl && memcmp(s + b - cl, d->a, cl) == 0; k++)
				b -= cl;
			rc = toks_add(out, s + a, b - a);
			break;
		}
		case TOK_DEC_BYTE_LEVEL: {
			/* All tokens become one byte string; a token with a char
			 * outside the byte alphabet is kept as it is (HF). */
			size_t cl, mapped = 1;
			int byte;
			for (size_t k = 0; k < n; k += cl)
				if (!byte_level_char((const unsigned char *)s + k, n - k, &cl, &byte)) {
					mapped = 0;
					break;
				}
			if (out->n == 0 && (rc = toks_add(out, "", 0)) != FTE_OK)
				return rc;
			if (!mapped) {
				rc = toks_append(out, s, n);
				break;
			}
			for (size_t k = 0; k < n && rc == FTE_OK; k += cl) {
				byte_level_char((const unsigned char *)s + k, n - k, &cl, &byte);
				char c = (char)byte;
				rc = toks_append(out, &c, 1);
			}
			break;
		}
		}
	}
	if (rc == FTE_OK && d->kind == TOK_DEC_BYTE_FALLBACK)
		rc = flush_bytes(out, bytes, nb);
	return rc;
}

int
fte_tokenizer_decode_flags(const fte_tokenizer *t, const int *ids, size_t n_ids,
    unsigned flags, char **text, size_t *len)
{
	struct toks cur = { 0 }, next = { 0 };
	int rc = FTE_OK;

	if (t == NULL || (ids == NULL && n_ids > 0) || text == NULL || len == NULL)
		return fte_error_set(FTE_EINVAL, "fte_tokenizer_decode: NULL argument");
	for (size_t i = 0; i < n_ids; i++) {
		int id = ids[i];
		if (id < 0 || id >= t->n_vocab || t->piece[id] == NULL) {
			toks_free(&cur);
			return fte_error_set(FTE_ERANGE, "%s: token id %d is not in the vocabulary (size %d)",
			    t->path, id, t->n_vocab);
		}
		if ((flags & FTE_TOK_SKIP_SPECIAL) && t->special[id])
			continue;
		if ((rc = toks_add(&cur, t->piece[id], t->piece_len[id])) != FTE_OK)
			break;
	}
	for (int s = 0; s < t->n_dec && rc == FTE_OK; s++) {
		rc = decode_step(&t->dec[s], &cur, &next);
		toks_free(&cur);
		cur = next;
		memset(&next, 0, sizeof(next));
	}
	char *r = rc == FTE_OK ? malloc(cur.len + 1) : NULL;
	if (r == NULL) {
		toks_free(&cur);
		toks_free(&next);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory while decoding", t->path);
	}
	if (cur.len > 0)
		memcpy(r, cur.buf, cur.len);
	r[cur.len] = '\0';
	*len = cur.len;
	*text = r;
	toks_free(&cur);
	return FTE_OK;
}

int
fte_tokenizer_decode(const fte_tokenizer *t, const int *ids, size_t n_ids,
    char **text, size_t *len)
{
	return fte_tokenizer_decode_flags(t, ids, n_ids, 0, text, len);
}

/* ---- queries ---- */

int
fte_tokenizer_vocab_size(const fte_tokenizer *t)
{
	return t->n_vocab;
}

int
fte_tokenizer_bos(const fte_tokenizer *t)
{
	return t->bos;
}

int
fte_tokenizer_eos(const fte_tokenizer *t)
{
	return t->eos;
}

const char *
fte_tokenizer_token(const fte_tokenizer *t, int id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab || t->piece[id] == NULL)
		return NULL;
	if (len != NULL)
		*len = t->piece_len[id];
	return t->piece[id];
}

int
fte_tokenizer_token_id(const fte_tokenizer *t, const char *token)
{
	size_t n = strlen(token);

	for (int i = 0; i < t->n_added; i++)
		if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0)
			return t->added[i].id;
	int id = tok_strmap_get(&t->vocab, token, n);
	unsigned v;
	/* llama2.c byte pieces are kept out of the merge vocabulary. */
	if (id < 0 && byte_token(token, n, &v))
		id = t->byte_id[v];
	return id;
}

int
fte_tokenizer_is_special(const fte_tokenizer *t, int id)
{
	return id >= 0 && id < t->n_vocab && t->special[id];
}
