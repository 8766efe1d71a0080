/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (fte_gguf_parse), the
 * path `ftengine inspect` takes for any file starting with "GGUF".  Build
 * with clang and -DFT_FUZZ=ON; run as
 *   build/tests/fuzz_gguf tests/fuzz/corpus/gguf
 * Whatever parses must be safe to walk: every key, string and F32/F16 tensor;
 * and a vocabulary the tokenizer takes from it (tok_gguf.c) must encode and
 * decode.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keeps the reads of every value from being optimised away */
volatile uint64_t fuzz_sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fte_gguf_file *f = NULL;
	fte_tokenizer *tok = NULL;
	uint64_t len, sum = 0;

	if (fte_gguf_parse("fuzz.gguf", data, size, &f) != FTE_OK) {
		if (f != NULL || fte_last_error()[0] == '\0')
			abort();
		return 0;
	}
	for (int i = 0; i < f->n_kv; i++) {
		const fte_gguf_kv *kv = &f->kv[i];
		for (uint64_t k = 0; k < kv->n && k < 64; k++) {
			const char *s = fte_gguf_kv_str(kv, k, &len);
			if (s != NULL)
				sum += len ? (uint8_t)s[len - 1] : 0;
			double d = fte_gguf_kv_arr_num(kv, k);
			sum += d > -1e18 && d < 1e18 ? (uint64_t)(int64_t)d : 1;
		}
		sum += (uint64_t)fte_gguf_kv_int(kv);
	}
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_gguf_tensor *t = &f->tensors[i];
		float *buf;
		if (t->numel > (1u << 20) || (buf = malloc(t->numel * sizeof(float) + 1)) == NULL)
			continue;
		(void)fte_gguf_read_f32(f, t, buf);
		free(buf);
	}
	fte_gguf_close(f);
	if (fte_tokenizer_load_memory("fuzz.gguf", data, size, &tok) == FTE_OK) {
		static const char text[] = "Hello, world! 123 \xc3\xa9t\xc3\xa9";
		int *ids = NULL;
		size_t n = 0, tlen;
		char *back = NULL;
		if (fte_tokenizer_encode(tok, text, sizeof(text) - 1, 1, &ids, &n) == FTE_OK &&
		    fte_tokenizer_decode(tok, ids, n, &back, &tlen) == FTE_OK)
			sum += tlen;
		free(ids);
		free(back);
		fte_tokenizer_free(tok);
	}
	fuzz_sink = sum;
	return 0;
}
