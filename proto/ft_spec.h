/*
 * ft_spec.h - the numeric fields of a training JobSpec, one row each: the
 * default a field left 0 takes, its range, and whether it applies to LoRA
 * jobs only.  The daemon checks specs against it (daemon/queue.c) and
 * ftctl's help for job submit prints it, so the two never disagree.
 *
 * A field left 0 takes def (0: it stays 0), then must lie in [min, max],
 * an end open where the flag says.  The learning rate's default depends on
 * the method and the sequence length's bound on the model: queue.c sets
 * those; the learning rate's range is still here.
 */
#ifndef FT_SPEC_H
#define FT_SPEC_H

#include <stddef.h>

#define FT_SPEC_PRIORITY_MAX 100    /* of every kind of job (queue_admit) */

enum ft_spec_type { FT_SPEC_U32, FT_SPEC_I32, FT_SPEC_U64, FT_SPEC_F32 };
#define FT_SPEC_MIN_OPEN 1
#define FT_SPEC_MAX_OPEN 2
#define FT_SPEC_LORA 4

struct ft_spec_bound {
	const char *option;         /* ftctl's option, without "--" */
	size_t offset;              /* of the field in Ft__JobSpec */
	enum ft_spec_type type;
	double def, min, max;
	int flags;
	const char *note;           /* what 0 means, or the unit: after the range */
};

extern const struct ft_spec_bound ft_spec_bounds[];
extern const size_t ft_spec_bounds_n;

/* ft_spec_bound_find returns the row of option (without "--"), or NULL. */
const struct ft_spec_bound *ft_spec_bound_find(const char *option);

/* ft_spec_bound_range writes b's range as refusals and help show it:
 * "[1, 1024]", "(0, 1]", integers in full.  Returns buf. */
char *ft_spec_bound_range(const struct ft_spec_bound *b, char *buf, size_t len);

#endif
