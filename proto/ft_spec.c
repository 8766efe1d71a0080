/* ft_spec.c - the JobSpec's bounds table (ft_spec.h). */
#include <stdio.h>
#include <string.h>

#include "ft.pb-c.h"
#include "ft_spec.h"

const struct ft_spec_bound ft_spec_bounds[] = {
#define F(f) offsetof(Ft__JobSpec, f)
	{ "lora-rank", F(lora_rank), FT_SPEC_U32, 8, 1, 1024, FT_SPEC_LORA, "" },
	{ "lora-alpha", F(lora_alpha), FT_SPEC_F32, 16, 0, 1e6,
	  FT_SPEC_LORA | FT_SPEC_MIN_OPEN | FT_SPEC_MAX_OPEN, "" },
	{ "lora-dropout", F(lora_dropout), FT_SPEC_F32, 0, 0, 1, FT_SPEC_LORA | FT_SPEC_MAX_OPEN, "" },
	{ "epochs", F(epochs), FT_SPEC_U32, 1, 1, 1000, 0, "" },
	{ "lr", F(lr), FT_SPEC_F32, 0, 0, 1, FT_SPEC_MIN_OPEN, " (0: 1e-4, or 2e-4 for LoRA)" },
	{ "batch-size", F(batch_size), FT_SPEC_U32, 4, 1, 4096, 0, "" },
	{ "grad-accum", F(grad_accum), FT_SPEC_U32, 1, 1, 4096, 0, "" },
	{ "weight-decay", F(weight_decay), FT_SPEC_F32, 0, 0, 1, 0, "" },
	{ "clip", F(clip), FT_SPEC_F32, 0, 0, 1e6, FT_SPEC_MAX_OPEN, " (0 turns clipping off)" },
	{ "warmup", F(warmup), FT_SPEC_U32, 0, 0, 1000000, 0, "" },
	{ "eval-every", F(eval_every), FT_SPEC_U32, 0, 0, 1000000, 0, " (0: at the end only)" },
	{ "save-every", F(save_every), FT_SPEC_U32, 0, 0, 1000000, 0, "" },
	{ "max-steps", F(max_steps), FT_SPEC_U32, 0, 0, 10000000, 0, " (0: the epochs decide)" },
	{ "early-stop", F(early_stop), FT_SPEC_U32, 0, 0, 1000, 0, " (0 turns it off)" },
	{ "time-limit", F(time_limit), FT_SPEC_U32, 0, 0, 365 * 86400, 0, " seconds (0: none)" },
	{ "priority", F(priority), FT_SPEC_I32, 0, -FT_SPEC_PRIORITY_MAX, FT_SPEC_PRIORITY_MAX, 0, "" },
	{ "seed", F(seed), FT_SPEC_U64, 1, 0, 18446744073709551615.0, 0, "" },
#undef F
};
const size_t ft_spec_bounds_n = sizeof(ft_spec_bounds) / sizeof(ft_spec_bounds[0]);

const struct ft_spec_bound *
ft_spec_bound_find(const char *option)
{
	for (size_t i = 0; i < ft_spec_bounds_n; i++)
		if (strcmp(ft_spec_bounds[i].option, option) == 0)
			return &ft_spec_bounds[i];
	return NULL;
}

char *
ft_spec_bound_range(const struct ft_spec_bound *b, char *buf, size_t len)
{
	int prec = b->type == FT_SPEC_F32 ? 6 : 15;   /* integers in full */

	snprintf(buf, len, "%c%.*g, %.*g%c", b->flags & FT_SPEC_MIN_OPEN ? '(' : '[', prec, b->min,
	    prec, b->max, b->flags & FT_SPEC_MAX_OPEN ? ')' : ']');
	return buf;
}
