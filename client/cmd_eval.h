/*
 * cmd_eval.h - ftctl eval run, show, ls, export, and ftctl generate.
 */
#ifndef FTCTL_CMD_EVAL_H
#define FTCTL_CMD_EVAL_H

#include <stdint.h>

#include "ftctl.h"

extern const struct command eval_commands[];

/* ftctl generate MODEL PROMPT: its options fill struct generate_args. */
struct generate_args {
	int raw;
	uint32_t max_new_tokens;
	float temperature;
	float top_p;
	uint64_t seed;
	const char *template_;
	int stream;
	int no_stream;
};

extern const struct ftctl_option generate_options[];
int cmd_generate(const struct opts *o, void *args, int argc, char **argv);

#endif
