/* chat_template.c - chat templates with the configured render budget, and
 * the worst-case probe at import. */
#include <stdio.h>

#include "chat_template.h"

int
chat_template_load(const struct ft_config *cfg, const char *path, fte_template **out)
{
	int rc = fte_template_chat_load(path, out);

	if (rc == FTE_OK)
		fte_template_set_budget(*out, (size_t)cfg->template_max_iterations,
		    (size_t)cfg->template_max_bytes);
	return rc;
}

int
chat_template_check(const struct ft_config *cfg, const char *path, char *err, size_t err_len)
{
	size_t each = (size_t)cfg->serve_max_body / CHAT_MESSAGES_MAX;
	fte_template *tp;
	int rc;

	if (chat_template_load(cfg, path, &tp) != FTE_OK)
		return 0;
	rc = fte_template_probe(tp, CHAT_MESSAGES_MAX, each);
	fte_template_free(tp);
	if (rc == FTE_OK)
		return 0;
	snprintf(err, err_len, "the model's chat template is refused: on %d messages of %zu bytes "
	    "(the API's limits) %s", CHAT_MESSAGES_MAX, each, fte_last_error());
	return -1;
}
