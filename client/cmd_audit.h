/*
 * cmd_audit.h - ftctl audit ls and audit verify: the daemon's audit log.
 */
#ifndef FTCTL_CMD_AUDIT_H
#define FTCTL_CMD_AUDIT_H

#include "ftctl.h"

extern const struct command audit_commands[];

#endif
