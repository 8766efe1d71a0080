/*
 * cmd_deploy.h - ftctl deploy, undeploy and key: models served over the
 * daemon's OpenAI-compatible HTTP API, and the API keys that call it.
 */
#ifndef FTCTL_CMD_DEPLOY_H
#define FTCTL_CMD_DEPLOY_H

#include "ftctl.h"

extern const struct command key_commands[];

/* ftctl deploy MODEL [--name ALIAS], and ftctl deploy ls. */
struct deploy_args {
	const char *name;
};

extern const struct ftctl_option deploy_options[];
int cmd_deploy(const struct opts *o, void *args, int argc, char **argv);
int cmd_undeploy(const struct opts *o, void *args, int argc, char **argv);

#endif
