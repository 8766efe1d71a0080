/*
 * fuzz_chat_template.c - libFuzzer target for the Jinja-subset chat
 * template compiler and renderer (a model's tokenizer_config.json is
 * untrusted input).
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
	/* tools, tool calls and a tool result, as the templates meet them */
	static const char conv[] = "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", "
	    "\"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}}}], "
	    "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"\", "
	    "\"tool_calls\": [{\"id\": \"c1\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}}]}, "
	    "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"ok\"}]}";
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
		if (fte_template_render_json(tp, conv, 1, &text) == FTE_OK)
			free(text);
		fte_template_free(tp);
	}
	free(src);
	return 0;
}
