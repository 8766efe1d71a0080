/*
 * ftengine_train_tok.c - `ftengine tokenizer-train`.
 *
 *   ftengine tokenizer-train --vocab N --out DIR [--min-frequency F] [--pad]
 *       FILE...
 *       learns a byte-level BPE tokenizer of N ids from the UTF-8 text files
 *       and writes DIR/tokenizer.json and DIR/tokenizer_config.json (pairs
 *       seen fewer than F times, default 2, are not merged); reads the
 *       result back and prints its vocabulary size and the time taken.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fte.h"
#include "fte_tok.h"
#include "ftengine.h"

/* int_arg parses a whole decimal number in [lo, hi]. */
static int
int_arg(const char *s, long lo, long hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: ftengine tokenizer-train --vocab N --out DIR "
	    "[--min-frequency F] [--pad] FILE...\n");
	return 2;
}

int
ftengine_tokenizer_train(int argc, char **argv)
{
	fte_tok_train_config cfg = { .vocab_size = 0, .min_frequency = 2, .add_pad = 0 };
	const char *out = NULL;
	const char **files = calloc((size_t)argc, sizeof(*files));
	size_t n_files = 0;
	int rc = 0;

	if (files == NULL) {
		fprintf(stderr, "ftengine tokenizer-train: out of memory\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(s, "--vocab") == 0 && v != NULL) {
			if (int_arg(v, 257, 1 << 24, &cfg.vocab_size) != 0) {
				fprintf(stderr, "ftengine tokenizer-train: --vocab must be 257..%d\n", 1 << 24);
				rc = 2;
				goto out;
			}
			i++;
		} else if (strcmp(s, "--min-frequency") == 0 && v != NULL) {
			if (int_arg(v, 1, 1 << 30, &cfg.min_frequency) != 0) {
				fprintf(stderr, "ftengine tokenizer-train: --min-frequency must be a positive number\n");
				rc = 2;
				goto out;
			}
			i++;
		} else if (strcmp(s, "--out") == 0 && v != NULL) {
			out = v;
			i++;
		} else if (strcmp(s, "--pad") == 0) {
			cfg.add_pad = 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			fprintf(stderr, "ftengine tokenizer-train: unknown argument '%s'\n", s);
			rc = usage();
			goto out;
		} else {
			files[n_files++] = s;
		}
	}
	if (cfg.vocab_size == 0 || out == NULL || n_files == 0) {
		rc = usage();
		goto out;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fte_tokenizer_train_files(files, n_files, &cfg, out) != FTE_OK) {
		fprintf(stderr, "ftengine tokenizer-train: %s\n", fte_last_error());
		rc = 1;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fte_tokenizer *tok;
	char path[4096];
	snprintf(path, sizeof(path), "%s/tokenizer.json", out);
	if (fte_tokenizer_load(path, &tok) != FTE_OK) {
		fprintf(stderr, "ftengine tokenizer-train: reading back %s: %s\n", path, fte_last_error());
		rc = 1;
		goto out;
	}
	printf("%s: %d tokens in %.2f s\n", path, fte_tokenizer_vocab_size(tok),
	    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
	fte_tokenizer_free(tok);
out:
	free(files);
	return rc;
}
