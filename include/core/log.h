/*
 * core/log.h — log lines to stderr, as text or JSON, one line per event.
 *
 * Every line carries the session id it concerns (0 for process-wide lines),
 * so one session's story can be grepped out of a busy log. Secrets are never
 * passed to these functions: callers log user names, never passwords.
 */
#ifndef PGT_CORE_LOG_H
#define PGT_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

/* Sets the threshold and the format (json false = text). */
void log_configure(enum log_level level, bool json);
bool log_enabled(enum log_level level);
/* Parses "error|warning|info|debug"; -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, uint64_t session, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(sid, ...) log_msg(LOG_ERROR, (sid), __VA_ARGS__)
#define log_warning(sid, ...) log_msg(LOG_WARNING, (sid), __VA_ARGS__)
#define log_info(sid, ...) do { if (log_enabled(LOG_INFO)) log_msg(LOG_INFO, (sid), __VA_ARGS__); } while (0)
#define log_debug(sid, ...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, (sid), __VA_ARGS__); } while (0)

#endif
