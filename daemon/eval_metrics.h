/*
 * eval_metrics.h - per-example metrics of an evaluation and the bootstrap
 * that turns them into means, confidence intervals and paired differences.
 * Pure functions: no SQLite, no engine.
 *
 * Normalisation (exact match, token F1, accuracy) is SQuAD's: lowercase,
 * remove ASCII punctuation, remove the words "a", "an" and "the" where they
 * stand between word boundaries, and collapse whitespace.  Lowercasing and
 * "word character" / "whitespace" follow Unicode (C.UTF-8 locale), as
 * Python's str.lower, re's \b and str.split do.
 *
 * ROUGE-L is rouge-score's (Google): its tokenizer lowercases, replaces
 * every run of characters outside [a-z0-9] with a space and splits on
 * whitespace (no stemming); P = LCS / |prediction|, R = LCS / |reference|,
 * F = 2PR / (P + R); 0 when either side has no tokens.
 *
 * chrF is sacrebleu's default sentence chrF (chrF2): whitespace removed,
 * character n-grams of orders 1..6 over Unicode code points, precision and
 * recall averaged over the orders both sides have n-grams of, F-beta with
 * beta = 2, on a 0..100 scale.
 *
 * Invalid UTF-8 bytes count as U+FFFD.  Functions that allocate return 0,
 * or -1 when out of memory (the output is then untouched).
 */
#ifndef FT_EVAL_METRICS_H
#define FT_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The metrics an evaluation computes, in the order they are reported: one
 * row each in eval_metrics[], which the evaluation job (parsing, defaults,
 * computing, storing), ftctl eval show's sort and the stored direction the
 * dashboard shows all read. */
enum eval_metric {
	EVAL_M_LOSS, EVAL_M_EXACT, EVAL_M_F1, EVAL_M_ROUGE, EVAL_M_CHRF, EVAL_M_ACCURACY,
	EVAL_M_GEN_LENGTH, EVAL_M_EOS, EVAL_M_COUNT
};

struct eval_metric_def {
	const char *name;
	int higher_is_better;
	int needs_generation; /* measured on generated text: not for a text dataset */
	int sort_rank;        /* eval show sorts by the computed metric of lowest rank; 0: never by default */
	/* pred against ref; NULL for the loss and for what generation measures
	 * itself (length, stop at EOS). */
	int (*score)(const char *pred, const char *ref, double *out);
};

extern const struct eval_metric_def eval_metrics[EVAL_M_COUNT];

/* eval_metric_find returns the metric named by name[0..len), or -1. */
int eval_metric_find(const char *name, size_t len);

/* eval_metric_higher_is_better: the table's direction; perplexity (stored
 * beside the loss) goes the loss's way; 1 for a name the table lacks. */
int eval_metric_higher_is_better(const char *name);

/* eval_metric_list writes the names of the metrics in set (bit i for
 * metric i) joined by sep. */
void eval_metric_list(unsigned set, const char *sep, char *buf, size_t len);

/* eval_normalize writes SQuAD's normalisation of s into *out (malloc'd). */
int eval_normalize(const char *s, char **out);

/* eval_exact_match: 1 when the normalised strings are equal, else 0. */
int eval_exact_match(const char *pred, const char *ref, double *out);

/* eval_token_f1 is SQuAD v2's F1 over normalised whitespace tokens (bag of
 * words with multiplicity); when either side has no tokens it is 1 if both
 * have none, else 0. */
int eval_token_f1(const char *pred, const char *ref, double *out);

/* eval_rouge_l is rouge-score's ROUGE-L F-measure in 0..1. */
int eval_rouge_l(const char *pred, const char *ref, double *out);

/* eval_chrf is sacrebleu's sentence chrF (n = 6, beta = 2) in 0..100. */
int eval_chrf(const char *pred, const char *ref, double *out);

/* A mean with its 95% percentile-bootstrap interval. */
struct eval_ci {
	double mean;
	double lo, hi;
};

#define EVAL_BOOTSTRAP_B 1000

/* eval_bootstrap_mean draws B resamples of x[0..n) with replacement
 * (indices from splitmix64 seeded with seed) and returns the sample mean
 * with the 2.5th and 97.5th percentiles of the resampled means (linear
 * interpolation between order statistics, as numpy.percentile).  The same
 * seed gives the same interval.  n >= 1, B >= 1. */
int eval_bootstrap_mean(const double *x, size_t n, int B, uint64_t seed,
    struct eval_ci *out);

/* Per-example comparison of model b against model a. */
struct eval_wtl {
	uint32_t wins, ties, losses;    /* from b's side */
};

/* eval_bootstrap_diff is the paired difference b - a: every resample draws
 * example indices once and uses them for both models, so it is the
 * bootstrap of the per-example differences.  wtl counts examples where b is
 * better (higher, or lower when !higher_is_better), equal, or worse. */
int eval_bootstrap_diff(const double *a, const double *b, size_t n, int B,
    uint64_t seed, int higher_is_better, struct eval_ci *out, struct eval_wtl *wtl);

#endif
