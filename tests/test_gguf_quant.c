/* test_gguf_quant.c - ggml block formats against fixtures computed by an
 * independent numpy implementation of llama.cpp's reference formulas
 * (tests/fixtures/gen_gguf_quant_fixtures.py): quantized bytes identical,
 * dequantized values bit-identical; and quantize -> dequantize error within
 * each format's bound on varied rows. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "ft_test.h"

static const struct {
	const char *name;
	int type;
	double rel_rms;                   /* quantize -> dequantize bound, normal data */
} formats[] = {
	{"F16", FTE_GGML_F16, 0.0005}, {"BF16", FTE_GGML_BF16, 0.004},
	{"Q4_0", FTE_GGML_Q4_0, 0.12}, {"Q5_0", FTE_GGML_Q5_0, 0.06},
	{"Q8_0", FTE_GGML_Q8_0, 0.008}, {"Q4_K", FTE_GGML_Q4_K, 0.10},
	{"Q5_K", FTE_GGML_Q5_K, 0.05}, {"Q6_K", FTE_GGML_Q6_K, 0.025},
};

static int
type_of(const char *name)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(formats[i].name, name) == 0)
			return formats[i].type;
	return -1;
}

/* unhex decodes the next whitespace-separated hex field; *n gets its bytes. */
static uint8_t *
unhex(char **s, size_t *n)
{
	char *tok = strtok_r(NULL, " \n", s);
	size_t len = tok ? strlen(tok) / 2 : 0;
	uint8_t *b = malloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned v;
		sscanf(tok + 2 * i, "%2x", &v);
		b[i] = (uint8_t)v;
	}
	*n = len;
	return b;
}

static void
check_fixtures(void)
{
	FILE *f = fopen(ft_test_fixture("gguf_quant.txt"), "r");
	size_t cap = 1 << 20;
	char *line = malloc(cap);
	int quant_cases = 0, deq_cases = 0;

	CHECK(f != NULL);
	if (f == NULL) {
		free(line);
		return;
	}
	while (fgets(line, (int)cap, f) != NULL) {
		char *save, *kind = strtok_r(line, " ", &save), *tname = strtok_r(NULL, " ", &save);
		int type = type_of(tname), bytes = 0;
		long n = strtol(strtok_r(NULL, " ", &save), NULL, 10);
		size_t nin = 0, nblk, ny;
		uint8_t *in = strcmp(kind, "quant") == 0 ? unhex(&save, &nin) : NULL;
		uint8_t *blk = unhex(&save, &nblk), *want = unhex(&save, &ny);
		int block = fte__ggml_block(type, &bytes);
		float *got = calloc((size_t)n, sizeof(float));

		CHECK(block > 0 && nblk == (size_t)n / (size_t)block * (size_t)bytes &&
		    ny == (size_t)n * 4);
		if (in != NULL) {
			uint8_t *q = calloc(nblk, 1);
			CHECK(fte__ggml_quantize(type, (const float *)in, q, (size_t)n) == FTE_OK);
			if (memcmp(q, blk, nblk) != 0) {
				fprintf(stderr, "%s: quantized bytes differ (case %d)\n", tname, quant_cases);
				CHECK(0);
			}
			free(q);
			quant_cases++;
		} else {
			deq_cases++;
		}
		CHECK(fte__ggml_dequantize(type, blk, got, (size_t)n) == FTE_OK);
		if (memcmp(got, want, ny) != 0) {
			fprintf(stderr, "%s: dequantized values differ\n", tname);
			CHECK(0);
		}
		free(in);
		free(blk);
		free(want);
		free(got);
	}
	fclose(f);
	free(line);
	CHECK(quant_cases >= 40 && deq_cases >= 24);
}

/* check_error quantizes normal and outlier rows and bounds the error of the
 * round trip relative to the data's RMS. */
static void
check_error(void)
{
	enum { N = 4096 };
	float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
	uint8_t *q = malloc(N * 4);
	uint64_t s = 88172645463325252ull;

	for (int i = 0; i < N; i += 2) {      /* Box-Muller over xorshift */
		double u[2];
		for (int k = 0; k < 2; k++) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			u[k] = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
		}
		x[i] = (float)(0.02 * sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]));
		x[i + 1] = (float)(0.02 * sqrt(-2 * log(u[0])) * sin(2 * M_PI * u[1]));
	}
	for (size_t t = 0; t < sizeof(formats) / sizeof(formats[0]); t++) {
		double se = 0, sx = 0;
		CHECK(fte__ggml_quantize(formats[t].type, x, q, N) == FTE_OK);
		CHECK(fte__ggml_dequantize(formats[t].type, q, y, N) == FTE_OK);
		for (int i = 0; i < N; i++) {
			se += (double)(x[i] - y[i]) * (x[i] - y[i]);
			sx += (double)x[i] * x[i];
		}
		printf("%s: relative RMS error %.5f\n", formats[t].name, sqrt(se / sx));
		CHECK(sqrt(se / sx) <= formats[t].rel_rms);
	}
	/* a constant row and zeros come back (nearly) as they were */
	for (int i = 0; i < 256; i++)
		x[i] = 0.25f;
	CHECK(fte__ggml_quantize(FTE_GGML_Q4_K, x, q, 256) == FTE_OK);
	CHECK(fte__ggml_dequantize(FTE_GGML_Q4_K, q, y, 256) == FTE_OK);
	CHECK_NEAR(y[17], 0.25, 0.25 / 1000);
	memset(x, 0, 256 * sizeof(float));
	CHECK(fte__ggml_quantize(FTE_GGML_Q6_K, x, q, 256) == FTE_OK);
	CHECK(fte__ggml_dequantize(FTE_GGML_Q6_K, q, y, 256) == FTE_OK);
	CHECK(y[0] == 0 && y[255] == 0);
	/* partial blocks and unknown types are refused */
	CHECK(fte__ggml_quantize(FTE_GGML_Q8_0, x, q, 33) == FTE_EINVAL);
	CHECK(fte__ggml_dequantize(FTE_GGML_Q4_K, q, y, 128) == FTE_EINVAL);
	CHECK(fte__ggml_dequantize(3, q, y, 32) == FTE_ENOTSUP);
	free(x);
	free(y);
	free(q);
}

int
main(void)
{
	check_fixtures();
	check_error();
	return ft_test_done();
}
