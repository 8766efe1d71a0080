/*
 * fuzz_chat_template.c - libFuzzer target for the Jinja-subset chat
 * template compiler and renderer (a model's tokenizer_config.json is
 * untrusted input).  FT_FUZZ_REPLAY builds a plain corpus replayer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const fte_message msgs[] = {
		{ "system", "Be brief." }, { "user", " Hi\n" }, { "assistant", "Hello" }, { "user", "Again" },
	};
	char *src = malloc(size + 1), *text;
	fte_template *tp;

	if (src == NULL)
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';
	if (fte_template_chat(src, "<s>", "</s>", &tp) == FTE_OK) {
		for (size_t n = 0; n <= 4; n++) {
			if (fte_template_render_chat(tp, msgs, n, (int)(n & 1), &text) == FTE_OK)
				free(text);
		}
		fte_template_free(tp);
	}
	free(src);
	return 0;
}

#ifdef FT_FUZZ_REPLAY
int
main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;
		if (f == NULL) {
			fprintf(stderr, "%s: cannot open\n", argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("%d inputs replayed\n", argc - 1);
	return 0;
}
#endif
