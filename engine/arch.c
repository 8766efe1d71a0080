/*
 * arch.c - the architecture table: one row per model family.
 *
 * Everything that differs between the families the engine computes is a
 * column here; the forward pass (transformer.c), LoRA, the memory estimate
 * and the file formats read the row of a model's fte_config.arch instead of
 * testing which family it is.  A new family is a row (and, when its
 * Hugging Face tensors are named differently, a column in hf.c's names).
 * Per-model numbers (sizes, RoPE base and scaling, window, soft-caps) stay
 * in fte_config.
 */
#include <stdio.h>
#include <string.h>

#include "fte.h"

static const fte_arch_info arch_rows[FTE_ARCH_END] = {
	/*               name      title      norm           off  mlp             rope bias qkvb qkn post embs win tied */
	[FTE_ARCH_LLAMA] = { "llama", "Llama", FTE_NORM_RMS, 0, FTE_MLP_SWIGLU, 1, 0, 0, 0, 0, 0, 0, 0,
		"LlamaForCausalLM", "llama", FTE_HF_LLAMA, "llama" },
	[FTE_ARCH_GPT2] = { "gpt2", "GPT-2", FTE_NORM_LAYER, 0, FTE_MLP_GELU, 0, 1, 0, 0, 0, 0, 0, 1,
		"GPT2LMHeadModel", "gpt2", FTE_HF_GPT2, "gpt2" },
	[FTE_ARCH_MISTRAL] = { "mistral", "Mistral", FTE_NORM_RMS, 0, FTE_MLP_SWIGLU, 1, 0, 0, 0, 0, 0, 1, 0,
		"MistralForCausalLM", "mistral", FTE_HF_LLAMA, "llama" },
	[FTE_ARCH_QWEN2] = { "qwen2", "Qwen2", FTE_NORM_RMS, 0, FTE_MLP_SWIGLU, 1, 0, 1, 0, 0, 0, 1, 0,
		"Qwen2ForCausalLM", "qwen2", FTE_HF_LLAMA, "llama" },
	[FTE_ARCH_QWEN3] = { "qwen3", "Qwen3", FTE_NORM_RMS, 0, FTE_MLP_SWIGLU, 1, 0, 0, 1, 0, 0, 1, 0,
		"Qwen3ForCausalLM", "qwen3", FTE_HF_LLAMA, NULL },
	[FTE_ARCH_GEMMA2] = { "gemma2", "Gemma 2", FTE_NORM_RMS, 1, FTE_MLP_GEGLU, 1, 0, 0, 0, 1, 1, 1, 0,
		"Gemma2ForCausalLM", "gemma2", FTE_HF_GEMMA, NULL },
	[FTE_ARCH_GEMMA3] = { "gemma3", "Gemma 3", FTE_NORM_RMS, 1, FTE_MLP_GEGLU, 1, 0, 0, 1, 1, 1, 1, 0,
		"Gemma3ForCausalLM", "gemma3_text", FTE_HF_GEMMA, NULL },
	[FTE_ARCH_PHI3] = { "phi3", "Phi-3", FTE_NORM_RMS, 0, FTE_MLP_SWIGLU, 1, 0, 0, 0, 0, 0, 1, 0,
		"Phi3ForCausalLM", "phi3", FTE_HF_PHI3, NULL },
};

const fte_arch_info *
fte_arch_get(int arch)
{
	if (arch <= 0 || arch >= FTE_ARCH_END)
		return NULL;
	return &arch_rows[arch];
}

int
fte_arch_find(const char *name)
{
	for (int a = 1; a < FTE_ARCH_END && name != NULL; a++)
		if (strcmp(arch_rows[a].name, name) == 0)
			return a;
	return 0;
}

void
fte_arch_list(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int a = 1; a < FTE_ARCH_END && n < len; a++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", a > 1 ? ", " : "", arch_rows[a].name);
}
