/*
 * dictd2jsonl - turn a dictd dictionary (Debian's dict-gcide, dict-foldoc)
 * into JSONL for training.
 *
 *   dictd2jsonl --index FILE --dict FILE --mode text|instruct [--max N] [--seed S]
 *
 * text mode writes {"text": "HEADWORD: DEFINITION"} per entry, instruct
 * mode {"instruction": "Define the computing term \"X\".", "input": "",
 * "output": "FIRST SENTENCE"} ("the word" for dictionaries other than
 * FOLDOC, told apart by their 00-database-short entry).
 *
 * The .index has lines "headword TAB offset TAB length" with offset and
 * length in dictd's base64 (A-Za-z0-9+/, most significant digit first);
 * the .dict.dz is dictzip, which is gzip, so zlib reads it whole.  A
 * definition starts with a header naming its headword: FOLDOC's is a block
 * of unindented lines (the name and its aliases), GCIDE's the first line
 * with pronunciation, part of speech and a bracketed etymology that may run
 * over several lines.  The header is dropped; an entry whose header does
 * not name the headword is skipped (dictd indexes phrases inside other
 * entries under their words, and those would define the wrong thing).
 * Cleaning removes {cross-reference} braces, FOLDOC's <category> tags and
 * (YYYY-MM-DD) dates, GCIDE's [1913 Webster]-style source tags, and
 * collapses whitespace.  Entries left empty or only a cross-reference
 * ("See X.") are skipped, and so are the 00-database-* entries and repeated
 * index lines for one definition.  Output follows index order; --max N
 * keeps the first N entries, or with --seed a sample of N chosen by a hash
 * of the seed and each entry's position, still in index order.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FIRST_SENTENCE_MAX 200

struct buf {
	char *p;
	size_t n, cap;
};

static int
buf_put(struct buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

/* read_gz inflates a gzip (dictzip) file into memory. */
static char *
read_gz(const char *path, size_t *size)
{
	gzFile f = gzopen(path, "rb");
	struct buf b = { 0 };
	char chunk[1 << 16];
	int n;

	if (f == NULL) {
		fprintf(stderr, "dictd2jsonl: %s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	while ((n = gzread(f, chunk, sizeof(chunk))) > 0) {
		if (buf_put(&b, chunk, (size_t)n) != 0) {
			fprintf(stderr, "dictd2jsonl: %s: out of memory\n", path);
			gzclose(f);
			free(b.p);
			return NULL;
		}
	}
	if (n < 0) {
		int err;
		fprintf(stderr, "dictd2jsonl: %s: %s\n", path, gzerror(f, &err));
		gzclose(f);
		free(b.p);
		return NULL;
	}
	gzclose(f);
	if (b.p == NULL && buf_put(&b, "", 0) != 0)
		return NULL;
	*size = b.n;
	return b.p;
}

/* b64_decode reads dictd's base64 number; -1 on a bad digit. */
static long long
b64_decode(const char *s)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		const char *d = strchr(digits, *s);
		if (d == NULL || v > (1LL << 50))
			return -1;
		v = v * 64 + (d - digits);
	}
	return v;
}

struct entry {
	char *head;
	size_t off, len;
};

/* ---- cleaning ---- */

/* starts_word: s begins with word (case-insensitively) followed by the end,
 * a space, a backslash (GCIDE pronunciation) or a comma. */
static int
starts_word(const char *s, size_t n, const char *word)
{
	size_t w = strlen(word);

	if (w == 0 || n < w || strncasecmp(s, word, w) != 0)
		return 0;
	return n == w || s[w] == ' ' || s[w] == '\\' || s[w] == ',' || s[w] == '\t';
}

/* bracket: +1 opens, -1 closes a () or [] group. */
static int
bracket(char c)
{
	return c == '[' || c == '(' ? 1 : c == ']' || c == ')' ? -1 : 0;
}

/* part_of_speech returns the length of a GCIDE part-of-speech label at s
 * ("n.", "v. t.", "adv.", "pl."), or 0. */
static size_t
part_of_speech(const char *s, size_t n)
{
	static const char *const pos[] = { "n", "a", "adj", "adv", "v", "t", "i", "pl", "p", "pr",
		"imp", "prep", "conj", "interj", "pron", "sing", "superl", "compar", "fem", "masc",
		"vb", "obs", NULL };

	for (int k = 0; pos[k]; k++) {
		size_t m = strlen(pos[k]);
		if (n > m && memcmp(s, pos[k], m) == 0 && s[m] == '.' &&
		    (n == m + 1 || !isalpha((unsigned char)s[m + 1])))
			return m + 1;
	}
	return 0;
}

/* pronunciation: a "(...)" group without spaces that uses GCIDE's accent
 * markup, as in "(s[imac]`t[-o]*sk[e^]l\"[e^]*tal)". */
static int
pronunciation(const char *s, size_t n)
{
	int marks = 0;

	for (size_t i = 1; i < n && s[i] != ')'; i++) {
		if (s[i] == ' ' || s[i] == '\n')
			return s[i] == '\n' && marks; /* split over lines mid-word */
		marks |= s[i] == '[' || s[i] == '"' || s[i] == '`' || s[i] == '*';
	}
	return marks;
}

/* skip_header returns the offset of the body in def[0..n), or -1 when the
 * header does not name head; *spelled is where the header spells the
 * headword (FOLDOC's index folds case: "playstation" for "PlayStation"). */
static long
skip_header(const char *def, size_t n, const char *head, const char **spelled)
{
	size_t at = 0;
	int named = 0, depth = 0;

	while (at < n && (def[at] == '\n' || def[at] == ' ' || def[at] == '\t'))
		at++;
	/* the first line, and (FOLDOC) the unindented lines after it */
	for (int first = 1; at < n && def[at] != '\n' && (first || (def[at] != ' ' && def[at] != '\t')); first = 0) {
		const char *eol = memchr(def + at, '\n', n - at);
		size_t len = eol ? (size_t)(eol - (def + at)) : n - at;
		if (!named && starts_word(def + at, len, head)) {
			named = 1;
			*spelled = def + at;
		}
		for (size_t i = at; i < at + len; i++)
			depth += bracket(def[i]);
		at += len + (eol != NULL);
	}
	/* (GCIDE) the header goes on over the next lines while a bracket is
	 * open, and may be followed by a pronunciation, parts of speech and
	 * an etymology. */
	for (;;) {
		while (at < n && depth > 0)
			depth += bracket(def[at++]);
		while (at < n && (isspace((unsigned char)def[at]) || def[at] == ',' || def[at] == ';' || def[at] == '.' || def[at] == '&'))
			at++;
		size_t pos = part_of_speech(def + at, n - at);
		if (pos > 0) {
			at += pos;
		} else if (at < n && (def[at] == '[' || (def[at] == '(' && pronunciation(def + at, n - at)))) {
			depth = bracket(def[at++]);
		} else {
			break;
		}
	}
	return named ? (long)at : -1;
}

/* source_tag: "[1913 Webster]", "[WordNet 1.5 +PJC]", "[PJC]" and the like. */
static int
source_tag(const char *s, size_t n)
{
	static const char *const marks[] = { "Webster", "WordNet", "PJC", "Century", "Note added", NULL };

	for (int k = 0; marks[k]; k++) {
		size_t m = strlen(marks[k]);
		for (size_t i = 0; i + m <= n; i++)
			if (memcmp(s + i, marks[k], m) == 0)
				return 1;
	}
	return 0;
}

/* is_date: "(1998-09-17)" */
static int
is_date(const char *s, size_t n)
{
	static const char shape[] = "(dddd-dd-dd)";

	if (n < sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
			return 0;
	return 1;
}

/* clean turns a definition body into one line of plain text. */
static int
clean(const char *s, size_t n, struct buf *out)
{
	int space = 0;

	out->n = 0;
	if (buf_put(out, "", 0) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '{' || c == '}')
			continue;
		if (c == '[') {
			const char *e = memchr(s + i, ']', n - i);
			if (e != NULL && memchr(s + i, '\n', (size_t)(e - (s + i))) == NULL &&
			    source_tag(s + i, (size_t)(e - (s + i)))) {
				i = (size_t)(e - s);
				continue;
			}
		}
		if (c == '<' && out->n == 0) {  /* FOLDOC's category at the start */
			const char *e = memchr(s + i, '>', n - i);
			if (e != NULL) {
				i = (size_t)(e - s);
				continue;
			}
		}
		if (c == '(' && is_date(s + i, n - i)) {
			i += 11;
			continue;
		}
		if (isspace(c)) {
			space = 1;
			continue;
		}
		if (space && out->n > 0 && buf_put(out, " ", 1) != 0)
			return -1;
		space = 0;
		if (buf_put(out, (const char *)&c, 1) != 0)
			return -1;
	}
	return 0;
}

/* has_letter: text that says something has a letter in it. */
static int
has_letter(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (isalpha((unsigned char)s[i]) || (s[i] & 0x80))
			return 1;
	return 0;
}

/* cross_reference_only: "See X." / "See also X" with nothing else. */
static int
cross_reference_only(const char *s, size_t n)
{
	if (n >= 4 && strncmp(s, "See ", 4) == 0) {
		const char *dot = memchr(s, '.', n);
		return dot == NULL || (size_t)(dot - s) >= n - 1;
	}
	return 0;
}

/* abbreviation: the word ending at s[i] (a period) is an initial or a
 * common abbreviation, so the period ends no sentence. */
static int
abbreviation(const char *s, size_t i)
{
	static const char *const abbr[] = { "Mr", "Mrs", "Dr", "St", "Inc", "Ltd", "Co", "vs",
		"cf", "Cf", "esp", "e.g", "i.e", "viz", "etc", "No", NULL };
	size_t w = i;

	while (w > 0 && s[w - 1] != ' ' && s[w - 1] != '(')
		w--;
	if (i - w == 1 && isalpha((unsigned char)s[w]))
		return 1;
	for (int k = 0; abbr[k]; k++)
		if (strlen(abbr[k]) == i - w && memcmp(s + w, abbr[k], i - w) == 0)
			return 1;
	return 0;
}

/* first_sentence returns the length of the first sentence of s (after a
 * leading sense number "1. ", or WordNet's "1: " or "1 "): up to a period followed by a space and an
 * uppercase letter, a digit (the next sense), "[" (GCIDE's usage tags) or
 * "--" (a citation), or the end.  Longer than FIRST_SENTENCE_MAX: cut at
 * the last "; " within it, else 0 (no good sentence). */
static size_t
first_sentence(const char *s, size_t n, size_t *start)
{
	size_t at = 0, end = n;

	/* GCIDE's WordNet entries number twice: "1. 1 a family of birds" */
	for (int k = 0; k < 2; k++) {
		size_t d = at;
		while (d < n && isdigit((unsigned char)s[d]))
			d++;
		if (d > at && d + 1 < n && (s[d] == '.' || s[d] == ':') && s[d + 1] == ' ')
			at = d + 2;
		else if (d > at && d < n && s[d] == ' ')
			at = d + 1;
	}
	for (size_t i = at; i + 2 < n; i++) {
		unsigned char c = (unsigned char)s[i + 2];
		if (s[i] == '.' && s[i + 1] == ' ' && !abbreviation(s, i) &&
		    (isupper(c) || isdigit(c) || c == '[' || (c == '-' && i + 3 < n && s[i + 3] == '-'))) {
			end = i + 1;
			break;
		}
	}
	*start = at;
	if (end - at <= FIRST_SENTENCE_MAX)
		return end - at;
	for (size_t i = at + FIRST_SENTENCE_MAX; i > at; i--)
		if (s[i - 1] == ';' && s[i] == ' ')
			return i - 1 - at;
	return 0;
}

/* ---- output ---- */

struct out_line {
	char *json;
	size_t pos;             /* index order */
	uint64_t key;           /* sampling order */
};

static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int
key_cmp(const void *a, const void *b)
{
	const struct out_line *x = a, *y = b;

	return (x->key > y->key) - (x->key < y->key);
}

static int
line_cmp(const void *a, const void *b)
{
	const struct out_line *x = a, *y = b;

	return (x->pos > y->pos) - (x->pos < y->pos);
}

/* render makes the JSON line of one entry, NULL to skip it. */
static char *
render(const char *head, const char *def, size_t n, int instruct, int computing, struct buf *tmp)
{
	const char *spelled = head;
	long body = skip_header(def, n, head, &spelled);
	size_t hl = strlen(head);
	char *name = strndup(spelled, hl);
	json_t *o = NULL;

	if (name == NULL)
		return NULL;
	head = name;

	if (body < 0 || clean(def + body, n - (size_t)body, tmp) != 0 || !has_letter(tmp->p, tmp->n) ||
	    cross_reference_only(tmp->p, tmp->n)) {
		free(name);
		return NULL;
	}
	if (!instruct) {
		char *text = malloc(hl + 2 + tmp->n + 1);
		if (text == NULL) {
			free(name);
			return NULL;
		}
		memcpy(text, head, hl);
		memcpy(text + hl, ": ", 2);
		memcpy(text + hl + 2, tmp->p, tmp->n + 1);
		o = json_pack("{s:s}", "text", text);
		free(text);
	} else {
		size_t start, len = first_sentence(tmp->p, tmp->n, &start);
		char *ins = len > 0 && has_letter(tmp->p + start, len) ? malloc(hl + 64) : NULL;
		if (ins == NULL) {
			free(name);
			return NULL;
		}
		sprintf(ins, "Define the %s \"%s\".", computing ? "computing term" : "word", head);
		o = json_pack("{s:s, s:s, s:s%}", "instruction", ins, "input", "",
		    "output", tmp->p + start, len);
		free(ins);
	}
	free(name);
	if (o == NULL)          /* not UTF-8 */
		return NULL;
	char *line = json_dumps(o, 0);
	json_decref(o);
	return line;
}

static int
usage(void)
{
	fprintf(stderr, "usage: dictd2jsonl --index FILE --dict FILE --mode text|instruct "
	    "[--max N] [--seed S]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	const char *index = NULL, *dict = NULL, *mode = NULL;
	long long max = -1;
	int have_seed = 0;
	unsigned long long seed = 0;

	/* Options come in pairs: the option, then its value. */
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		if (v == NULL)
			return usage();
		if (strcmp(argv[i], "--index") == 0) {
			index = v;
		} else if (strcmp(argv[i], "--dict") == 0) {
			dict = v;
		} else if (strcmp(argv[i], "--mode") == 0) {
			mode = v;
		} else if (strcmp(argv[i], "--max") == 0) {
			max = strtoll(v, &end, 10);
			if (*v == '\0' || *end != '\0' || max < 0)
				return usage();
		} else if (strcmp(argv[i], "--seed") == 0) {
			seed = strtoull(v, &end, 10);
			if (*v == '\0' || *end != '\0')
				return usage();
			have_seed = 1;
		} else {
			return usage();
		}
	}
	if (index == NULL || dict == NULL || mode == NULL ||
	    (strcmp(mode, "text") != 0 && strcmp(mode, "instruct") != 0))
		return usage();
	int instruct = strcmp(mode, "instruct") == 0;

	size_t size;
	char *data = read_gz(dict, &size);
	if (data == NULL)
		return 1;
	FILE *f = fopen(index, "r");
	if (f == NULL) {
		fprintf(stderr, "dictd2jsonl: %s: cannot open: %s\n", index, strerror(errno));
		free(data);
		return 1;
	}
	struct entry *ents = NULL;
	size_t n_ents = 0, cap_ents = 0, lineno = 0;
	char *line = NULL;
	size_t line_cap = 0;
	ssize_t got;
	int rc = 0, computing = 0;
	while ((got = getline(&line, &line_cap, f)) > 0) {
		lineno++;
		while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = '\0';
		if (got == 0)
			continue;
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (t2 == NULL) {
			fprintf(stderr, "dictd2jsonl: %s:%zu: not headword<TAB>offset<TAB>length\n", index, lineno);
			rc = 1;
			break;
		}
		*t1 = *t2 = '\0';
		char *t3 = strchr(t2 + 1, '\t');   /* dictd may add the original headword */
		if (t3 != NULL)
			*t3 = '\0';
		long long off = b64_decode(t1 + 1), len = b64_decode(t2 + 1);
		if (off < 0 || len < 0 || (unsigned long long)off + (unsigned long long)len > size) {
			fprintf(stderr, "dictd2jsonl: %s:%zu: bad offset or length for %s's %zu bytes\n",
			    index, lineno, dict, size);
			rc = 1;
			break;
		}
		if (strncmp(line, "00-database-", 12) == 0) {
			if (strcmp(line, "00-database-short") == 0) {
				char *s = strndup(data + off, (size_t)len);
				computing = s != NULL && strstr(s, "Computing") != NULL;
				free(s);
			}
			continue;
		}
		if (n_ents == cap_ents) {
			cap_ents = cap_ents ? cap_ents * 2 : 1024;
			struct entry *e = realloc(ents, cap_ents * sizeof(*e));
			if (e == NULL) {
				rc = 1;
				break;
			}
			ents = e;
		}
		ents[n_ents].head = strdup(line);
		ents[n_ents].off = (size_t)off;
		ents[n_ents].len = (size_t)len;
		if (ents[n_ents++].head == NULL) {
			rc = 1;
			break;
		}
	}
	free(line);
	fclose(f);

	struct out_line *out = calloc(n_ents ? n_ents : 1, sizeof(*out));
	size_t n_out = 0;
	struct buf tmp = { 0 };
	/* The definitions already written, by offset, to skip repeats. */
	size_t seen_cap = 1;
	while (seen_cap < 2 * n_ents + 2)
		seen_cap *= 2;
	size_t *seen = calloc(seen_cap, sizeof(size_t));
	if (out == NULL || seen == NULL)
		rc = 1;
	for (size_t i = 0; rc == 0 && i < n_ents; i++) {
		size_t h = (size_t)mix(ents[i].off) & (seen_cap - 1);
		while (seen[h] != 0 && seen[h] != ents[i].off + 1)
			h = (h + 1) & (seen_cap - 1);
		if (seen[h] != 0)
			continue;
		char *json = render(ents[i].head, data + ents[i].off, ents[i].len, instruct, computing, &tmp);
		if (json == NULL)
			continue;
		seen[h] = ents[i].off + 1;
		out[n_out].json = json;
		out[n_out].pos = i;
		out[n_out++].key = mix(seed ^ mix(i));
	}
	if (rc == 0 && max >= 0 && (size_t)max < n_out) {
		if (have_seed) {
			/* the max entries of smallest key, back in index order */
			qsort(out, n_out, sizeof(*out), key_cmp);
			for (size_t i = (size_t)max; i < n_out; i++)
				free(out[i].json);
			n_out = (size_t)max;
			qsort(out, n_out, sizeof(*out), line_cmp);
		} else {
			for (size_t i = (size_t)max; i < n_out; i++)
				free(out[i].json);
			n_out = (size_t)max;
		}
	}
	for (size_t i = 0; i < n_out; i++) {
		if (rc == 0 && (fputs(out[i].json, stdout) == EOF || putchar('\n') == EOF))
			rc = 1;
		free(out[i].json);
	}
	if (fflush(stdout) != 0)
		rc = 1;
	if (rc != 0 && n_ents > 0)
		fprintf(stderr, "dictd2jsonl: out of memory or cannot write the output\n");
	for (size_t i = 0; i < n_ents; i++)
		free(ents[i].head);
	free(ents);
	free(out);
	free(seen);
	free(tmp.p);
	free(data);
	return rc;
}
