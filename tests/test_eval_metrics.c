/*
 * test_eval_metrics.c - evaluation metrics against hand-worked values
 * (SQuAD normalisation, exact match, token F1, rouge-score's ROUGE-L,
 * sacrebleu's chrF), and the bootstrap against a known distribution.
 */
#include <math.h>
#include <stdint.h>

#include "eval_metrics.h"
#include "ft_test.h"

static double
em(const char *p, const char *r)
{
	double v = -1;

	CHECK(eval_exact_match(p, r, &v) == 0);
	return v;
}

static double
f1(const char *p, const char *r)
{
	double v = -1;

	CHECK(eval_token_f1(p, r, &v) == 0);
	return v;
}

static double
rouge(const char *p, const char *r)
{
	double v = -1;

	CHECK(eval_rouge_l(p, r, &v) == 0);
	return v;
}

static double
chrf(const char *p, const char *r)
{
	double v = -1;

	CHECK(eval_chrf(p, r, &v) == 0);
	return v;
}

static void
check_normalize(const char *in, const char *want)
{
	char *out = NULL;

	CHECK(eval_normalize(in, &out) == 0);
	CHECK_STR(out, want);
	free(out);
}

static void
test_normalize(void)
{
	check_normalize("The Cat, sat!", "cat sat");
	check_normalize("  An apple\ta day  ", "apple day");
	check_normalize("theme anthem", "theme anthem");     /* articles only as words */
	check_normalize("don't", "dont");                    /* punctuation removed, not spaced */
	check_normalize("the-end", "theend");                /* punctuation goes before articles */
	check_normalize("a a the", "");
	check_normalize("", "");
	check_normalize("CAFÉ Ünïcode", "café ünïcode");     /* Unicode lowercase */
	check_normalize("é the é", "é é");                   /* é is a word character */
	check_normalize("x\xe2\x80\x83y", "x y");            /* U+2003 EM SPACE is whitespace */
	check_normalize("bad \xff byte", "bad \xef\xbf\xbd byte"); /* invalid UTF-8 -> U+FFFD */
}

static void
test_exact_match(void)
{
	CHECK(em("The Cat!", "cat") == 1);
	CHECK(em("cat", "dog") == 0);
	CHECK(em("", "") == 1);
	CHECK(em("a", "") == 1);      /* "a" normalises to nothing */
	CHECK(em("Café", "CAFÉ") == 1);
	CHECK(em("cafe", "café") == 0);
}

static void
test_token_f1(void)
{
	/* pred: cat sat on mat (4), ref: cat sat (2): P 1/2, R 1, F 2/3 */
	CHECK_NEAR(f1("the cat sat on the mat", "a cat sat"), 2.0 / 3, 1e-12);
	/* multiplicity: Counter(b b c) & Counter(b c c) = {b, c}: P = R = 2/3 */
	CHECK_NEAR(f1("b b c", "b c c"), 2.0 / 3, 1e-12);
	CHECK(f1("", "") == 1);
	CHECK(f1("the", "") == 1);    /* both empty after normalisation */
	CHECK(f1("", "x") == 0);
	CHECK(f1("x", "y") == 0);
	CHECK_NEAR(f1("naïve café", "Naïve"), 2.0 / 3, 1e-12);
	CHECK(f1("Hello, world.", "hello world") == 1);
}

static void
test_rouge_l(void)
{
	/* LCS "the cat on the mat" = 5: P 5/6, R 1, F 10/11 */
	CHECK_NEAR(rouge("the cat sat on the mat", "the cat on the mat"), 10.0 / 11, 1e-12);
	/* ties: a b c d vs b a d c has several LCS of length 2 */
	CHECK_NEAR(rouge("a b c d", "b a d c"), 0.5, 1e-12);
	CHECK_NEAR(rouge("a a b", "a b b"), 2.0 / 3, 1e-12);
	CHECK(rouge("", "x") == 0);
	CHECK(rouge("", "") == 0);
	CHECK(rouge("!!!", "...") == 0);       /* no tokens on either side */
	CHECK(rouge("Hello, World!", "hello world") == 1);
	/* rouge-score keeps only [a-z0-9]: "Café" -> "caf" */
	CHECK_NEAR(rouge("Café au lait", "cafe au lait"), 2.0 / 3, 1e-12);
	/* articles are tokens here (no SQuAD normalisation) */
	CHECK_NEAR(rouge("the cat", "cat"), 2.0 / 3, 1e-12);
}

static void
test_chrf(void)
{
	CHECK_NEAR(chrf("abc", "abc"), 100, 1e-9);
	CHECK_NEAR(chrf("a b c", "abc"), 100, 1e-9);            /* whitespace removed */
	/* orders 1, 2: P 1, 1; R 2/3, 1/2; order 3 has no hypothesis n-gram:
	 * P = (1 + 1) / 2, R = (2/3 + 1/2) / 2 = 7/12, F2 = 5PR / (4P + R) = 35/55 */
	CHECK_NEAR(chrf("ab", "abc"), 100 * 35.0 / 55, 1e-9);
	/* repeated n-grams clip: P = (2/3 + 1/2) / 2 = 7/12, R = 1, F2 = 35/40 */
	CHECK_NEAR(chrf("aaa", "aa"), 100 * 35.0 / 40, 1e-9);
	/* code points, not bytes: "éa" vs "ea": P = R = (1/2 + 0) / 2 = 1/4 */
	CHECK_NEAR(chrf("éa", "ea"), 25, 1e-9);
	CHECK_NEAR(chrf("é", "é"), 100, 1e-9);
	CHECK(chrf("", "abc") == 0);
	CHECK(chrf("abc", "") == 0);
	CHECK(chrf("", "") == 0);
	CHECK_NEAR(chrf("xyz", "abc"), 0, 1e-9);  /* sacrebleu: eps terms, ~1e-14 */
}

static uint64_t
rng_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* N(0, 1) by Box-Muller. */
static double
normal(uint64_t *x)
{
	double u1 = ((rng_next(x) >> 11) + 1.0) / 9007199254740993.0;
	double u2 = (rng_next(x) >> 11) / 9007199254740992.0;

	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static void
test_bootstrap(void)
{
	enum { N = 400 };
	double x[N], y[N], c[5] = { 3, 3, 3, 3, 3 }, sd = 0, mean = 0;
	struct eval_ci ci, ci2, ci3;
	struct eval_wtl w;
	uint64_t s = 42;

	for (int i = 0; i < N; i++) {
		x[i] = normal(&s);
		mean += x[i] / N;
	}
	for (int i = 0; i < N; i++)
		sd += (x[i] - mean) * (x[i] - mean) / (N - 1);
	sd = sqrt(sd);
	CHECK(eval_bootstrap_mean(x, N, EVAL_BOOTSTRAP_B, 7, &ci) == 0);
	CHECK_NEAR(ci.mean, mean, 1e-12);
	CHECK(ci.lo < 0 && ci.hi > 0);
	CHECK(ci.lo < ci.mean && ci.mean < ci.hi);
	/* the normal-theory width 2 * 1.96 * sd / sqrt(n), within 10% */
	CHECK_NEAR((ci.hi - ci.lo) / (2 * 1.96 * sd / sqrt(N)), 1.0, 0.10);
	/* determinism: same seed, same numbers; another seed, other numbers */
	CHECK(eval_bootstrap_mean(x, N, EVAL_BOOTSTRAP_B, 7, &ci2) == 0);
	CHECK(ci.lo == ci2.lo && ci.hi == ci2.hi && ci.mean == ci2.mean);
	CHECK(eval_bootstrap_mean(x, N, EVAL_BOOTSTRAP_B, 8, &ci3) == 0);
	CHECK(ci3.lo != ci.lo || ci3.hi != ci.hi);
	/* a constant has a zero-width interval */
	CHECK(eval_bootstrap_mean(c, 5, EVAL_BOOTSTRAP_B, 1, &ci) == 0);
	CHECK(ci.mean == 3 && ci.lo == 3 && ci.hi == 3);
	CHECK(eval_bootstrap_mean(c, 0, EVAL_BOOTSTRAP_B, 1, &ci) == -1);

	/* paired: y = 10 x + 0.1 + small noise.  Unpaired, the means' intervals
	 * (width ~ 2) overlap; paired, the difference is clearly positive. */
	for (int i = 0; i < N; i++) {
		x[i] *= 10;
		y[i] = x[i] + 0.1 + 0.02 * normal(&s);
	}
	CHECK(eval_bootstrap_mean(x, N, EVAL_BOOTSTRAP_B, 3, &ci) == 0);
	CHECK(eval_bootstrap_mean(y, N, EVAL_BOOTSTRAP_B, 3, &ci2) == 0);
	CHECK(ci2.lo < ci.hi);
	CHECK(eval_bootstrap_diff(x, y, N, EVAL_BOOTSTRAP_B, 3, 1, &ci3, &w) == 0);
	CHECK_NEAR(ci3.mean, ci2.mean - ci.mean, 1e-9);
	CHECK(ci3.lo > 0.09 && ci3.hi < 0.11);
	CHECK(w.wins == N && w.ties == 0 && w.losses == 0);
	/* lower is better (a loss): the same differences are losses for y */
	CHECK(eval_bootstrap_diff(x, y, N, EVAL_BOOTSTRAP_B, 3, 0, &ci3, &w) == 0);
	CHECK(w.wins == 0 && w.losses == N);
	CHECK(eval_bootstrap_diff(c, c, 5, EVAL_BOOTSTRAP_B, 3, 1, &ci3, &w) == 0);
	CHECK(w.ties == 5 && ci3.lo == 0 && ci3.hi == 0);
}

/* The metric table: names found back, directions, and which need text. */
static void
test_table(void)
{
	char list[256];
	double v = -1;

	for (int i = 0; i < EVAL_M_COUNT; i++) {
		CHECK(eval_metrics[i].name != NULL);
		CHECK(eval_metric_find(eval_metrics[i].name, strlen(eval_metrics[i].name)) == i);
	}
	CHECK(eval_metric_find("token_f1,chrf", 8) == EVAL_M_F1);
	CHECK(eval_metric_find("token", 5) == -1);
	CHECK(eval_metric_find("bleu", 4) == -1);
	CHECK(eval_metric_higher_is_better("loss") == 0);
	CHECK(eval_metric_higher_is_better("perplexity") == 0);
	CHECK(eval_metric_higher_is_better("chrf") == 1);
	CHECK(eval_metrics[EVAL_M_LOSS].needs_generation == 0);
	CHECK(eval_metrics[EVAL_M_ROUGE].needs_generation == 1);
	CHECK(eval_metrics[EVAL_M_ROUGE].score("the cat sat", "the cat sat", &v) == 0 && v == 1);
	eval_metric_list((1u << EVAL_M_LOSS) | (1u << EVAL_M_F1) | (1u << EVAL_M_EOS), ",", list,
	    sizeof(list));
	CHECK_STR(list, "loss,token_f1,eos_rate");
	eval_metric_list((1u << EVAL_M_COUNT) - 1, ", ", list, sizeof(list));
	CHECK_STR(list, "loss, exact_match, token_f1, rouge_l, chrf, accuracy, gen_length, eos_rate");
}

int
main(void)
{
	test_normalize();
	test_exact_match();
	test_token_f1();
	test_rouge_l();
	test_chrf();
	test_bootstrap();
	test_table();
	return ft_test_done();
}
