/*
 * chat_template.h - models' chat templates as the daemon runs them: with the
 * render budget from the configuration, and probed at import with the
 * largest conversation the API accepts.
 */
#ifndef FT_CHAT_TEMPLATE_H
#define FT_CHAT_TEMPLATE_H

#include <stddef.h>

#include "config.h"
#include "fte.h"

/* Most messages a chat request may carry (openai.c refuses more). */
#define CHAT_MESSAGES_MAX 256

/* chat_template_load is fte_template_chat_load (path: a model directory or
 * a file in it) with cfg's budget (template_max_iterations,
 * template_max_bytes).  FTE_* codes. */
int chat_template_load(const struct ft_config *cfg, const char *path, fte_template **out);

/* chat_template_check refuses (-1, reason in err) a chat template at path
 * whose render of a worst-case conversation, CHAT_MESSAGES_MAX messages
 * sharing serve_max_body bytes, exceeds the budget.  No template, or one
 * the daemon cannot compile (served with the Alpaca prompt), is 0. */
int chat_template_check(const struct ft_config *cfg, const char *path, char *err, size_t err_len);

#endif
