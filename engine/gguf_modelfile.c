/*
 * gguf_modelfile.c - the ollama Modelfile beside an exported model.gguf:
 * FROM the GGUF, the chat template in ollama's Go template syntax when the
 * Jinja template is of a family whose translation is known (recognised by
 * its marker tokens), and the stop tokens.  Any other template is not
 * guessed at: the Modelfile says so and ollama uses the GGUF's embedded
 * tokenizer.chat_template.
 */
#include <stdio.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"

static const struct family {
	const char *name;
	const char *marker;               /* in the Jinja template */
	const char *go;                   /* ollama's template for the family */
	const char *stop[3];
} families[] = {
	{"ChatML", "<|im_start|>",
	    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
	    "{{ end }}<|im_start|>assistant\n",
	    {"<|im_start|>", "<|im_end|>", NULL}},
	{"Llama 3", "<|start_header_id|>",
	    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
	    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
	    {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
	{"Zephyr", "<|user|>",
	    "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n",
	    {"<|user|>", "<|assistant|>", "</s>"}},
};

/* put_quoted writes s as a Modelfile string, escaping quotes and
 * backslashes. */
static void
put_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

int
fte_gguf_modelfile(const fte_vocab *v, const char *gguf_name, const char *path)
{
	const struct family *fam = NULL;
	const char *eos = v->eos_id >= 0 && v->eos_id < v->n_tokens ? v->tokens[v->eos_id] : NULL;
	FILE *f;

	for (size_t i = 0; v->chat_template && i < sizeof(families) / sizeof(families[0]); i++)
		if (strstr(v->chat_template, families[i].marker) != NULL) {
			fam = &families[i];
			break;
		}
	if ((f = fopen(path, "w")) == NULL)
		return fte_error_set(FTE_EIO, "%s: cannot create: %m", path);
	fprintf(f, "FROM ./%s\n", gguf_name);
	if (fam != NULL)
		fprintf(f, "# chat template: the %s family, translated from tokenizer_config.json\n"
		    "TEMPLATE \"\"\"%s\"\"\"\n", fam->name, fam->go);
	else
		fprintf(f, "# TEMPLATE is left to the GGUF's embedded tokenizer.chat_template (%s)\n",
		    v->chat_template ? "not a family with a known ollama translation" : "none given");
	for (int i = 0; fam != NULL && i < 3 && fam->stop[i] != NULL; i++) {
		fputs("PARAMETER stop ", f);
		put_quoted(f, fam->stop[i]);
		fputc('\n', f);
	}
	if (eos != NULL && (fam == NULL || strstr(fam->go, eos) == NULL)) {
		fputs("PARAMETER stop ", f);
		put_quoted(f, eos);
		fputc('\n', f);
	}
	if (fflush(f) != 0 || ferror(f)) {
		fclose(f);
		return fte_error_set(FTE_EIO, "%s: write failed", path);
	}
	if (fclose(f) != 0)
		return fte_error_set(FTE_EIO, "%s: write failed", path);
	return FTE_OK;
}
