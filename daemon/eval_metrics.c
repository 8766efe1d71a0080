/*
 * eval_metrics.c - exact match, token F1, ROUGE-L, chrF and the bootstrap.
 * See eval_metrics.h for the definitions each follows.
 *
 * Text is decoded to Unicode code points first, so every metric counts
 * characters, not bytes.  Case mapping and character classes come from a
 * C.UTF-8 locale object (towlower_l, iswalnum_l, iswspace_l), which is
 * thread-safe and leaves the process locale alone.
 */
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <wctype.h>

#include "eval_metrics.h"
#include "rng.h"

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void
utf8_locale_init(void)
{
	utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Simple (one to one) lowercase mapping; ASCII only without the locale. */
static uint32_t
cp_lower(uint32_t c)
{
	if (c < 128)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	return utf8_locale ? (uint32_t)towlower_l((wint_t)c, utf8_locale) : c;
}

/* Python's \w: alphanumeric or underscore. */
static int
cp_word(uint32_t c)
{
	if (c < 128)
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_';
	return utf8_locale ? iswalnum_l((wint_t)c, utf8_locale) != 0 : 1;
}

/* Python's str.split() whitespace. */
static int
cp_space(uint32_t c)
{
	if (c < 128)
		return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
	return c == 0x85 || c == 0xa0 || (utf8_locale && iswspace_l((wint_t)c, utf8_locale));
}

/* string.punctuation */
static int
cp_punct(uint32_t c)
{
	return c < 128 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", (int)c) != NULL && c != 0;
}

/* Decodes UTF-8 into a malloc'd array of code points (invalid bytes become
 * U+FFFD).  NULL when out of memory. */
static uint32_t *
utf8_decode(const char *s, size_t *n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), k = 0;
	uint32_t *out = malloc((len + 1) * sizeof(*out));

	pthread_once(&utf8_once, utf8_locale_init);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		uint32_t c = p[i];
		int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 :
		    (c & 0xf8) == 0xf0 ? 3 : -1;
		int ok = extra >= 0 && i + (size_t)extra < len;

		if (ok) {
			c = extra == 0 ? c : c & (0x3f >> extra);
			for (int j = 1; j <= extra; j++) {
				if ((p[i + j] & 0xc0) != 0x80) {
					ok = 0;
					break;
				}
				c = (c << 6) | (p[i + j] & 0x3f);
			}
		}
		if (ok && (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
		    (extra == 1 && c < 0x80) || (extra == 2 && c < 0x800) || (extra == 3 && c < 0x10000)))
			ok = 0;
		if (!ok) {
			out[k++] = 0xfffd;
			i++;
			continue;
		}
		out[k++] = c;
		i += (size_t)extra + 1;
	}
	*n = k;
	return out;
}

static size_t
utf8_put(char *dst, uint32_t c)
{
	if (c < 0x80) {
		dst[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		dst[0] = (char)(0xc0 | (c >> 6));
		dst[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		dst[0] = (char)(0xe0 | (c >> 12));
		dst[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		dst[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	dst[0] = (char)(0xf0 | (c >> 18));
	dst[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	dst[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	dst[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* SQuAD normalisation on code points, in place; returns the new length.
 * Tokens end up separated by single spaces (0x20), none leading or trailing. */
static size_t
squad_normalize(uint32_t *c, size_t n)
{
	static const char *const articles[] = { "a", "an", "the" };
	size_t k = 0, w;

	for (size_t i = 0; i < n; i++)          /* lower, remove punctuation */
		if (!cp_punct(c[i]))
			c[k++] = cp_lower(c[i]);
	n = k;
	/* \b(a|an|the)\b -> ' ', scanning the unchanged text as re.sub does.
	 * A replacement is never longer than what it replaces, so the output
	 * trails the input; prev keeps the input character before i. */
	k = 0;
	for (size_t i = 0, prev = 0; i < n;) {
		size_t len = 0;

		if (i == 0 || !cp_word((uint32_t)prev)) {
			for (int a = 0; a < 3 && len == 0; a++) {
				size_t m = strlen(articles[a]), j;

				for (j = 0; j < m && i + j < n && c[i + j] == (uint32_t)articles[a][j]; j++)
					;
				if (j == m && (i + m == n || !cp_word(c[i + m])))
					len = m;
			}
		}
		if (len > 0) {
			prev = c[i + len - 1];
			c[k++] = ' ';
			i += len;
		} else {
			prev = c[i];
			c[k++] = c[i++];
		}
	}
	n = k;
	/* ' '.join(text.split()) */
	k = 0;
	w = 0;
	for (size_t i = 0; i < n; i++) {
		if (cp_space(c[i])) {
			w = k > 0;
			continue;
		}
		if (w) {
			c[k++] = ' ';
			w = 0;
		}
		c[k++] = c[i];
	}
	return k;
}

int
eval_normalize(const char *s, char **out)
{
	size_t n, len = 0;
	uint32_t *c = utf8_decode(s, &n);
	char *text;

	if (c == NULL)
		return -1;
	n = squad_normalize(c, n);
	if ((text = malloc(n * 4 + 1)) == NULL) {
		free(c);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		len += utf8_put(text + len, c[i]);
	text[len] = '\0';
	free(c);
	*out = text;
	return 0;
}

int
eval_exact_match(const char *pred, const char *ref, double *out)
{
	char *a, *b;

	if (eval_normalize(pred, &a) != 0)
		return -1;
	if (eval_normalize(ref, &b) != 0) {
		free(a);
		return -1;
	}
	*out = strcmp(a, b) == 0;
	free(a);
	free(b);
	return 0;
}

/* Tokens as (start, length) spans of a code-point array. */
struct span {
	size_t start, len;
};

static int
span_eq(const uint32_t *a, struct span x, const uint32_t *b, struct span y)
{
	return x.len == y.len && memcmp(a + x.start, b + y.start, x.len * sizeof(*a)) == 0;
}

/* Splits normalised text (single spaces) into spans; NULL when out of memory. */
static struct span *
spans_split(const uint32_t *c, size_t n, size_t *count)
{
	struct span *s = malloc((n / 2 + 1) * sizeof(*s));
	size_t k = 0;

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j < n && c[j] != ' ')
			j++;
		s[k++] = (struct span){ i, j - i };
		i = j + 1;
	}
	*count = k;
	return s;
}

int
eval_token_f1(const char *pred, const char *ref, double *out)
{
	size_t np, nr, tp = 0, tr = 0, same = 0;
	uint32_t *p = utf8_decode(pred, &np), *r = utf8_decode(ref, &nr);
	struct span *sp = NULL, *sr = NULL;
	char *used = NULL;
	int rc = -1;

	if (p == NULL || r == NULL)
		goto out;
	np = squad_normalize(p, np);
	nr = squad_normalize(r, nr);
	if ((sp = spans_split(p, np, &tp)) == NULL || (sr = spans_split(r, nr, &tr)) == NULL ||
	    (used = calloc(tr + 1, 1)) == NULL)
		goto out;
	if (tp == 0 || tr == 0) {
		*out = tp == tr;
		rc = 0;
		goto out;
	}
	/* Counter(pred) & Counter(ref): each reference token matches once. */
	for (size_t i = 0; i < tp; i++) {
		for (size_t j = 0; j < tr; j++) {
			if (!used[j] && span_eq(p, sp[i], r, sr[j])) {
				used[j] = 1;
				same++;
				break;
			}
		}
	}
	if (same == 0) {
		*out = 0;
	} else {
		double prec = (double)same / tp, rec = (double)same / tr;

		*out = 2 * prec * rec / (prec + rec);
	}
	rc = 0;
out:
	free(p);
	free(r);
	free(sp);
	free(sr);
	free(used);
	return rc;
}

/* rouge-score's tokenizer: lowercase, [^a-z0-9]+ -> ' ', split.  Tokens
 * are written over c as single-space-separated runs; returns the length. */
static size_t
rouge_tokenize(uint32_t *c, size_t n)
{
	size_t k = 0;
	int gap = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t l = cp_lower(c[i]);

		if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) {
			if (gap && k > 0)
				c[k++] = ' ';
			gap = 0;
			c[k++] = l;
		} else {
			gap = 1;
		}
	}
	return k;
}

int
eval_rouge_l(const char *pred, const char *ref, double *out)
{
	size_t np, nr, tp = 0, tr = 0;
	uint32_t *p = utf8_decode(pred, &np), *r = utf8_decode(ref, &nr);
	struct span *sp = NULL, *sr = NULL;
	uint32_t *row = NULL;
	int rc = -1;

	if (p == NULL || r == NULL)
		goto out;
	np = rouge_tokenize(p, np);
	nr = rouge_tokenize(r, nr);
	if ((sp = spans_split(p, np, &tp)) == NULL || (sr = spans_split(r, nr, &tr)) == NULL ||
	    (row = calloc(tr + 1, sizeof(*row))) == NULL)
		goto out;
	if (tp == 0 || tr == 0) {
		*out = 0;
		rc = 0;
		goto out;
	}
	/* LCS length with one row: row[j] = LCS(pred[0..i), ref[0..j)). */
	for (size_t i = 0; i < tp; i++) {
		uint32_t diag = 0;

		for (size_t j = 1; j <= tr; j++) {
			uint32_t up = row[j];

			row[j] = span_eq(p, sp[i], r, sr[j - 1]) ? diag + 1 :
			    up > row[j - 1] ? up : row[j - 1];
			diag = up;
		}
	}
	{
		double lcs = row[tr], prec = lcs / tp, rec = lcs / tr;

		*out = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
	}
	rc = 0;
out:
	free(p);
	free(r);
	free(sp);
	free(sr);
	free(row);
	return rc;
}

#define CHRF_ORDER 6
#define CHRF_BETA 2.0

struct gram_ctx {
	const uint32_t *c;
	size_t n;
};

static int
gram_cmp(const void *a, const void *b, void *arg)
{
	const struct gram_ctx *g = arg;
	const uint32_t *x = g->c + *(const size_t *)a, *y = g->c + *(const size_t *)b;

	for (size_t i = 0; i < g->n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

static int
gram_cmp2(const uint32_t *x, const uint32_t *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

/* Matches of order-n character n-grams: sum over n-grams of
 * min(count in h, count in r).  hi and ri are scratch of the sizes. */
static size_t
grams_match(const uint32_t *h, size_t nh, const uint32_t *r, size_t nr, size_t n, size_t *hi,
    size_t *ri)
{
	size_t gh = nh >= n ? nh - n + 1 : 0, gr = nr >= n ? nr - n + 1 : 0, i = 0, j = 0, m = 0;
	struct gram_ctx ch = { h, n }, cr = { r, n };

	for (size_t k = 0; k < gh; k++)
		hi[k] = k;
	for (size_t k = 0; k < gr; k++)
		ri[k] = k;
	qsort_r(hi, gh, sizeof(*hi), gram_cmp, &ch);
	qsort_r(ri, gr, sizeof(*ri), gram_cmp, &cr);
	while (i < gh && j < gr) {
		int c = gram_cmp2(h + hi[i], r + ri[j], n);

		if (c < 0) {
			i++;
		} else if (c > 0) {
			j++;
		} else {
			size_t a = i, b = j;

			while (a < gh && gram_cmp2(h + hi[a], h + hi[i], n) == 0)
				a++;
			while (b < gr && gram_cmp2(r + ri[b], r + ri[j], n) == 0)
				b++;
			m += a - i < b - j ? a - i : b - j;
			i = a;
			j = b;
		}
	}
	return m;
}

/* Removes whitespace (''.join(s.split())) in place; returns the length. */
static size_t
strip_space(uint32_t *c, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!cp_space(c[i]))
			c[k++] = c[i];
	return k;
}

int
eval_chrf(const char *pred, const char *ref, double *out)
{
	const double eps = 1e-16, factor = CHRF_BETA * CHRF_BETA;
	size_t nh, nr;
	uint32_t *h = utf8_decode(pred, &nh), *r = utf8_decode(ref, &nr);
	size_t *hi = NULL, *ri = NULL;
	double avg_prec = 0, avg_rec = 0;
	int effective = 0, rc = -1;

	if (h == NULL || r == NULL)
		goto out;
	nh = strip_space(h, nh);
	nr = strip_space(r, nr);
	if ((hi = malloc((nh + 1) * sizeof(*hi))) == NULL || (ri = malloc((nr + 1) * sizeof(*ri))) == NULL)
		goto out;
	/* sacrebleu CHRF._compute_f_score without eps smoothing: precisions
	 * and recalls (eps where undefined) summed over all orders, divided by
	 * the number of orders both sides have n-grams of. */
	for (size_t n = 1; n <= CHRF_ORDER; n++) {
		size_t gh = nh >= n ? nh - n + 1 : 0, gr = nr >= n ? nr - n + 1 : 0;
		size_t m = grams_match(h, nh, r, nr, n, hi, ri);

		avg_prec += gh > 0 ? (double)m / gh : eps;
		avg_rec += gr > 0 ? (double)m / gr : eps;
		effective += gh > 0 && gr > 0;
	}
	if (effective == 0) {
		avg_prec = avg_rec = 0;
	} else {
		avg_prec /= effective;
		avg_rec /= effective;
	}
	*out = avg_prec + avg_rec > 0 ?
	    100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec) : 0;
	rc = 0;
out:
	free(h);
	free(r);
	free(hi);
	free(ri);
	return rc;
}

static int
double_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* numpy.percentile's default (linear) on sorted v[0..n). */
static double
percentile(const double *v, size_t n, double q)
{
	double pos = q * (double)(n - 1);
	size_t i = (size_t)pos;

	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

int
eval_bootstrap_mean(const double *x, size_t n, int B, uint64_t seed, struct eval_ci *out)
{
	double *means, sum = 0;
	uint64_t state = seed;

	if (n == 0 || B < 1 || (means = malloc((size_t)B * sizeof(*means))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		sum += x[i];
	for (int b = 0; b < B; b++) {
		double s = 0;

		for (size_t i = 0; i < n; i++)
			s += x[rng_next(&state) % n];
		means[b] = s / (double)n;
	}
	qsort(means, (size_t)B, sizeof(*means), double_cmp);
	out->mean = sum / (double)n;
	out->lo = percentile(means, (size_t)B, 0.025);
	out->hi = percentile(means, (size_t)B, 0.975);
	free(means);
	return 0;
}

int
eval_bootstrap_diff(const double *a, const double *b, size_t n, int B, uint64_t seed,
    int higher_is_better, struct eval_ci *out, struct eval_wtl *wtl)
{
	double *d = n ? malloc(n * sizeof(*d)) : NULL;
	struct eval_wtl w = { 0, 0, 0 };
	int rc;

	if (d == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		d[i] = b[i] - a[i];
		if (d[i] == 0)
			w.ties++;
		else if ((d[i] > 0) == (higher_is_better != 0))
			w.wins++;
		else
			w.losses++;
	}
	rc = eval_bootstrap_mean(d, n, B, seed, out);
	free(d);
	if (rc == 0)
		*wtl = w;
	return rc;
}

const struct eval_metric_def eval_metrics[EVAL_M_COUNT] = {
	[EVAL_M_LOSS] = { "loss", 0, 0, 6, NULL },
	[EVAL_M_EXACT] = { "exact_match", 1, 1, 4, eval_exact_match },
	[EVAL_M_F1] = { "token_f1", 1, 1, 1, eval_token_f1 },
	[EVAL_M_ROUGE] = { "rouge_l", 1, 1, 2, eval_rouge_l },
	[EVAL_M_CHRF] = { "chrf", 1, 1, 3, eval_chrf },
	/* exact match, kept only for a small label set (eval_job.c) */
	[EVAL_M_ACCURACY] = { "accuracy", 1, 1, 5, eval_exact_match },
	[EVAL_M_GEN_LENGTH] = { "gen_length", 1, 1, 0, NULL },
	[EVAL_M_EOS] = { "eos_rate", 1, 1, 0, NULL },
};

int
eval_metric_find(const char *name, size_t len)
{
	for (int i = 0; i < EVAL_M_COUNT; i++)
		if (strlen(eval_metrics[i].name) == len && strncmp(eval_metrics[i].name, name, len) == 0)
			return i;
	return -1;
}

int
eval_metric_higher_is_better(const char *name)
{
	int m;

	if (strcmp(name, "perplexity") == 0)
		name = "loss";
	m = eval_metric_find(name, strlen(name));
	return m < 0 || eval_metrics[m].higher_is_better;
}

void
eval_metric_list(unsigned set, const char *sep, char *buf, size_t len)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (int i = 0; i < EVAL_M_COUNT && pos < len; i++)
		if (set & (1u << i))
			pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", pos ? sep : "",
			    eval_metrics[i].name);
}
