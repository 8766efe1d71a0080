/* log.c - leveled logging; one write per line so threads do not interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int min_level = LOG_LEVEL_INFO;
static const char *names[] = { "debug", "info", "warn", "error" };
static const int journal_prio[] = { 7, 6, 4, 3 };

void
log_init(int level)
{
	min_level = level;
}

int
log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

/*
 * Messages quote names, paths and errors from requests.  Every %s is cut to
 * LOG_VALUE_MAX bytes (a 15 MB name is not logged whole, nor does it push
 * the rest of the line out) and control characters and backslashes are
 * escaped, so no caller can forge a line or a journal priority.
 */
#define LOG_VALUE_MAX 256
#define LOG_LINE_MAX 2048

/* fmt_cut copies fmt into out with a precision on every %s that has none;
 * fmt itself if out is too small. */
static const char *
fmt_cut(const char *fmt, char *out, size_t cap)
{
	size_t o = 0;

	for (const char *p = fmt; *p != '\0'; p++) {
		size_t span;

		if (o + 16 >= cap)
			return fmt;
		out[o++] = *p;
		if (*p != '%')
			continue;
		span = strspn(p + 1, "-+ #0123456789.*hljztL");
		if (o + span + 16 >= cap)
			return fmt;
		memcpy(out + o, p + 1, span);
		o += span;
		p += span;
		if (p[1] == 's' && memchr(p + 1 - span, '.', span) == NULL)
			o += (size_t)snprintf(out + o, cap - o, ".%d", LOG_VALUE_MAX);
		if (p[1] != '\0')      /* the conversion, so "%%s" stays text */
			out[o++] = *++p;
	}
	out[o] = '\0';
	return out;
}

/* escape appends s[0..n) to line[*len..cap) as C escapes for control bytes
 * and backslashes; 0 if it did not all fit. */
static int
escape(char *line, size_t *len, size_t cap, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[4];
		size_t k = 0;

		if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
			e[k++] = '\\';
			e[k++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
		} else if (c < 0x20 || c == 0x7f) {
			e[k++] = '\\';
			e[k++] = 'x';
			e[k++] = hex[c >> 4];
			e[k++] = hex[c & 15];
		} else {
			e[k++] = (char)c;
		}
		if (*len + k > cap)
			return 0;
		memcpy(line + *len, e, k);
		*len += k;
	}
	return 1;
}

static void
log_emit(int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX + 8], msg[LOG_LINE_MAX], cut[512];
	size_t len;
	int n;

	if (level < min_level)
		return;
	if (getenv("JOURNAL_STREAM") != NULL) {
		n = snprintf(line, sizeof(line), "<%d>", journal_prio[level]);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ",
		    ts.tv_nsec / 1000000, names[level]);
	}
	len = (size_t)n;
	n = vsnprintf(msg, sizeof(msg), fmt_cut(fmt, cut, sizeof(cut)), ap);
	if (n < 0)
		return;
	if (!escape(line, &len, LOG_LINE_MAX, msg, strlen(msg)) || (size_t)n >= sizeof(msg)) {
		memcpy(line + len, "...", 3);
		len += 3;
	}
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0)
		return; /* nowhere left to report it */
}

#define LOG_FN(fn, level) \
	void fn(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		log_emit(level, fmt, ap); \
		va_end(ap); \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)
