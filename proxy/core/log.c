/*
 * core/log.c — text or JSON log lines on stderr.
 *
 * Text:  2026-11-21 16:40:00.123 UTC [1234] INFO c42: message
 * JSON:  {"ts":"2026-11-21T16:40:00.123Z","pid":1234,"level":"info","session":42,"msg":"message"}
 * A line is formatted in one buffer and written with one write(2), so lines
 * from one process never interleave. The JSON message is escaped by jansson
 * (bytes that are not UTF-8 become U+FFFD).
 */
#include "core/log.h"

#include "core/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_INFO;
static bool log_json;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const char *const level_upper[] = { "ERROR", "WARNING", "INFO", "DEBUG" };

void log_configure(enum log_level level, bool json)
{
	log_threshold = level;
	log_json = json;
}

bool log_enabled(enum log_level level)
{
	return level <= log_threshold;
}

/*
 * Writes S to OUT (CAP bytes, NUL-terminated) with backslash and control
 * characters as C escapes (\\, \n, \r, \t, \xNN): a text line then stays
 * one line and drives no terminal, whatever a client put in the values it
 * carries (user names, statements). JSON lines escape in their own way.
 */
static void text_escape(char *out, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t pos = 0;
	for (; *s && pos + 5 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		char e = ch == '\\' ? '\\' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch == '\t' ? 't' : 0;
		if (e) {
			out[pos++] = '\\';
			out[pos++] = e;
		} else if (ch < 0x20 || ch == 0x7f) {
			out[pos++] = '\\';
			out[pos++] = 'x';
			out[pos++] = hex[ch >> 4];
			out[pos++] = hex[ch & 0xf];
		} else {
			out[pos++] = (char)ch;
		}
	}
	out[pos] = '\0';
}

int log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

void log_msg(enum log_level level, uint64_t session, const char *fmt, ...)
{
	if (level > log_threshold)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	int ms = (int)(tv.tv_usec / 1000);

	/* JSON: the message escaped is at most 6 bytes per byte of msg. */
	char line[256 + 6 * sizeof(msg)];
	size_t n;
	if (log_json) {
		n = (size_t)snprintf(line, sizeof(line),
				     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"pid\":%d,"
				     "\"level\":\"%s\",\"session\":%llu,\"msg\":",
				     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				     tm.tm_min, tm.tm_sec, ms, (int)getpid(), level_names[level],
				     (unsigned long long)session);
		json_t *text = json_from_text(msg);
		size_t room = sizeof(line) - n - 2;
		size_t w = text ? json_dumpb(text, line + n, room, JSON_ENCODE_ANY) : 0;
		json_decref(text);
		if (w == 0 || w > room) {
			memcpy(line + n, "\"\"", 2);     /* out of memory: the line without its text */
			w = 2;
		}
		n += w;
		line[n++] = '}';
		line[n++] = '\n';
	} else {
		char sid[32] = "-";
		if (session)
			snprintf(sid, sizeof(sid), "c%llu", (unsigned long long)session);
		char esc[4096];
		text_escape(esc, sizeof(esc), msg);
		n = (size_t)snprintf(line, sizeof(line),
				     "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC [%d] %s %s: %s\n",
				     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				     tm.tm_min, tm.tm_sec, ms, (int)getpid(), level_upper[level],
				     sid, esc);
		if (n >= sizeof(line)) {
			n = sizeof(line) - 1;
			line[n - 1] = '\n';
		}
	}
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
