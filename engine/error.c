/* error.c - engine error codes and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "fte.h"

static _Thread_local char last_error[1024];

const char *
fte_strerror(int err)
{
	switch (err) {
	case FTE_OK: return "success";
	case FTE_EINVAL: return "invalid argument";
	case FTE_ENOMEM: return "out of memory";
	case FTE_EIO: return "input/output error";
	case FTE_EFORMAT: return "malformed file";
	case FTE_ENOTSUP: return "not supported";
	case FTE_ECANCELED: return "canceled";
	case FTE_ERANGE: return "value out of range";
	case FTE_ENOENT: return "not found";
	case FTE_ENUMERIC: return "non-finite number";
	}
	return "unknown error";
}

const char *
fte_last_error(void)
{
	return last_error;
}

int
fte_error_set(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}
