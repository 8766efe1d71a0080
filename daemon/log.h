/*
 * log.h - leveled logging to stderr, which journald captures as-is.
 * Under systemd (JOURNAL_STREAM set) each line carries a <N> priority prefix
 * so the journal records its level.
 */
#ifndef FT_LOG_H
#define FT_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* log_init sets the minimum level; may be called again (SIGHUP). */
void log_init(int level);
/* log_level_parse maps "debug|info|warn|error" to a level, or -1. */
int log_level_parse(const char *name);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
