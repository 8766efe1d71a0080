/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors header parser
 * (fte_st_parse) and the dtype conversion that follows it.  Build with
 * clang and -DFT_FUZZ=ON; run as
 *   build/tests/fuzz_safetensors tests/fuzz/corpus/safetensors \
 *       -dict=tests/fuzz/safetensors.dict
 * Every input must be either rejected with an error or parse into tensors
 * whose spans lie inside the input: reading them all must stay in bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fte_st_file *f = NULL;

	if (fte_st_parse("fuzz.safetensors", data, size, &f) != FTE_OK) {
		/* a failure leaves no result and always says why */
		if (f != NULL || fte_last_error()[0] == '\0')
			abort();
		return 0;
	}
	for (int i = 0; i < f->n_tensors; i++) {
		const fte_st_tensor *t = &f->tensors[i];
		float *buf;
		if (t->end > f->data_len || t->begin > t->end ||
		    t->end - t->begin != t->numel * fte_st_dtype_size(t->dtype))
			abort();
		if ((buf = malloc(t->numel * sizeof(float) + 1)) == NULL)
			continue;
		(void)fte_st_read_f32(f, t, buf);
		free(buf);
		if (fte_st_find(f, t->name) == NULL)
			abort();
	}
	(void)fte_st_metadata(f, "format");
	fte_st_close(f);
	return 0;
}
