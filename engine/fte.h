/*
 * fte.h - the ftuned training engine, public API (umbrella header).
 *
 * The engine is a library with no dependency on the daemon, nng or civetweb.
 * Public names start with fte_; file-private helpers are static, and helpers
 * shared between engine files start with fte__ and live in fte_internal.h.
 *
 * Error convention (nng style): functions that can fail return an int, FTE_OK
 * (0) on success or a small positive FTE_E* code; out-parameters are written
 * only on success, and ownership of an argument moves only on success.  A
 * failing function also records a human-readable message naming the file and
 * what is wrong, which fte_last_error() returns until the thread's next error.
 */
#ifndef FTE_H
#define FTE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define FTE_MUST_CHECK __attribute__((warn_unused_result))
#define FTE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FTE_MUST_CHECK
#define FTE_PRINTF(a, b)
#endif

enum fte_err {
	FTE_OK = 0,
	FTE_EINVAL,      /* bad argument or configuration */
	FTE_ENOMEM,      /* allocation failed */
	FTE_EIO,         /* read, write, fsync or rename failed */
	FTE_EFORMAT,     /* malformed or truncated file */
	FTE_ENOTSUP,     /* valid but unsupported (architecture, dtype, ...) */
	FTE_ECANCELED,   /* the abort flag was raised */
	FTE_ERANGE,      /* a value or size outside its limits */
	FTE_ENOENT,      /* file or named item not found */
	FTE_ENUMERIC,    /* NaN or Inf met where a finite number is needed */
};

/* fte_strerror returns a static description of an FTE_E* code. */
const char *fte_strerror(int err);

/* fte_last_error returns the message recorded by the calling thread's most
 * recent failure ("" if none). The pointer is valid until the thread's next
 * engine call that fails. */
const char *fte_last_error(void);

/* fte_error_set records a message for fte_last_error and returns err, so a
 * failure reads `return fte_error_set(FTE_EFORMAT, "%s: ...", path);`. */
int fte_error_set(int err, const char *fmt, ...) FTE_PRINTF(2, 3);

#include "fte_model.h"
#include "fte_train.h"
#include "fte_io.h"
#include "fte_tok.h"

#endif
