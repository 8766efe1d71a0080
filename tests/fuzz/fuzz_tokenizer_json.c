/*
 * fuzz_tokenizer_json.c - libFuzzer target for the tokenizer loaders: the
 * input as a tokenizer.json (or a llama2.c tokenizer.bin, which the same
 * name reaches when it is not JSON) and as a SentencePiece tokenizer.model,
 * and, when it loads, the encode/decode pipeline it describes.
 *
 * With clang and -DFT_FUZZ=ON this is a libFuzzer binary:
 *   ./fuzz_tokenizer_json ../tests/fuzz/corpus/tokenizer_json
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"

static const char sample[] =
    "Hello, world! 12345 caf\xc3\xa9 \xe2\x96\x81 <s> </s> <|endoftext|>\n\t  x \xf0\x9f\x98\x80";

static void
roundtrip(const fte_tokenizer *t, const char *text, size_t len, unsigned flags)
{
	int *ids;
	size_t n, out_len;
	char *out;

	if (fte_tokenizer_encode_flags(t, text, len, flags, &ids, &n) != FTE_OK)
		return;
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= fte_tokenizer_vocab_size(t))
			abort();        /* encode must only produce real ids */
	if (fte_tokenizer_decode(t, ids, n, &out, &out_len) == FTE_OK)
		free(out);
	free(ids);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "fuzz.json", "fuzz.model" };
	fte_tokenizer *t;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (fte_tokenizer_load_memory(names[i], data, size, &t) != FTE_OK)
			continue;
		roundtrip(t, sample, sizeof(sample) - 1, FTE_TOK_ADD_SPECIAL | FTE_TOK_PARSE_SPECIAL);
		roundtrip(t, (const char *)data, size < 4096 ? size : 4096, FTE_TOK_PARSE_SPECIAL);
		fte_tokenizer_free(t);
	}
	return 0;
}
