/*
 * conf/config.c — the configuration file: one key table, the inih-driven
 * loader, validation, SHOW CONFIG and reload support.
 *
 * The key table (config_keys[] below) is the single source of truth: for each
 * key it gives the section, the type, where the value lives, the default as a
 * user would write it, whether a reload may change it, and the doc line.
 * Defaults are applied by parsing the default string through the same code
 * as a value from the file, so a default can never disagree with the parser.
 * SHOW CONFIG (config_foreach), reload diffs and docs/configuration.md all
 * follow the table.
 *
 * inih hands us (section, name, value) but no line numbers in the Debian
 * build, so the text goes through ini_parse_stream() with our own reader. The
 * reader counts lines and also notices section headers (inih reports a
 * section only with its first key, and an empty "[path x]" is legal), and
 * lines that inih would reject, so every syntax error gets a message with
 * its line. Values always come from inih.
 *
 * A load never stops at the first problem: every error is collected as
 * "file:line: message" and the generation is returned only when there were
 * none. A returned generation is immutable and refcounted.
 *
 * Relative file names (auth_file, tls_*_file, http_token_file, journal_dir,
 * pidfile, sslrootcert) are resolved against the directory of the config
 * file, made absolute at load time.
 */
#include "conf/config.h"

#include "core/err.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "conf/hba.h"
#include "conf/userlist.h"
#include "sql/rules.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define CONFIG_MAX_ERRORS       200
#define CONFIG_MAX_FILE         (1024 * 1024)   /* bytes */
#define CONFIG_MAX_LINE         4096            /* characters per line */
#define CONFIG_MAX_NAME         63              /* path names, version tags */
#define SECRET_MASK             "********"

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

void config_errors_free(struct config_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->items[i]);
	free(errs->items);
	errs->items = NULL;
	errs->n = 0;
}

static int errors_push(struct config_errors *errs, char *msg)
{
	char **items = realloc(errs->items, (errs->n + 1) * sizeof(*items));

	if (items == NULL) {
		free(msg);
		return -1;
	}
	errs->items = items;
	errs->items[errs->n++] = msg;
	return 0;
}

int config_errors_add(struct config_errors *errs, const char *file, int line,
		      const char *fmt, ...)
{
	char body[1024];
	char *msg;
	va_list ap;
	int n;

	if (errs == NULL)
		return 0;
	if (errs->n > CONFIG_MAX_ERRORS)
		return 0;
	if (errs->n == CONFIG_MAX_ERRORS) {
		msg = strdup("too many errors; the rest are not shown");
		return msg == NULL ? -1 : errors_push(errs, msg);
	}
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (file == NULL)
		n = asprintf(&msg, "%s", body);
	else if (line > 0)
		n = asprintf(&msg, "%s:%d: %s", file, line, body);
	else
		n = asprintf(&msg, "%s: %s", file, body);
	if (n < 0)
		return -1;
	return errors_push(errs, msg);
}

/* ------------------------------------------------------------------------ */
/* Value parsers and formatters                                             */
/* ------------------------------------------------------------------------ */

struct enum_value {
	const char *name;
	int value;
};

static const struct enum_value auth_type_values[] = {
	{ "trust", AUTH_TRUST }, { "md5", AUTH_MD5 }, { "scram-sha-256", AUTH_SCRAM },
	{ "cert", AUTH_CERT }, { "hba", AUTH_HBA }, { NULL, 0 }
};
static const struct enum_value tls_mode_values[] = {
	{ "disable", TLS_MODE_DISABLE }, { "allow", TLS_MODE_ALLOW },
	{ "require", TLS_MODE_REQUIRE }, { "verify-ca", TLS_MODE_VERIFY_CA },
	{ "verify-full", TLS_MODE_VERIFY_FULL }, { NULL, 0 }
};
static const struct enum_value dual_commit_values[] = {
	{ "auto", DUAL_COMMIT_AUTO }, { "ordered", DUAL_COMMIT_ORDERED }, { "2pc", DUAL_COMMIT_2PC },
	{ NULL, 0 }
};

static const struct enum_value sslmode_values[] = {
	{ "disable", SSLMODE_DISABLE }, { "prefer", SSLMODE_PREFER },
	{ "require", SSLMODE_REQUIRE }, { "verify-full", SSLMODE_VERIFY_FULL }, { NULL, 0 }
};
static const struct enum_value log_format_values[] = {
	{ "text", LOG_FORMAT_TEXT }, { "json", LOG_FORMAT_JSON }, { NULL, 0 }
};
static const struct enum_value log_level_values[] = {
	{ "error", LOG_ERROR }, { "warning", LOG_WARNING }, { "info", LOG_INFO },
	{ "debug", LOG_DEBUG }, { NULL, 0 }
};
static const struct enum_value shadow_failure_values[] = {
	{ "journal", SHADOW_FAILURE_JOURNAL }, { "fail", SHADOW_FAILURE_FAIL }, { NULL, 0 }
};
static const struct enum_value force_path_values[] = {
	{ "none", FORCE_PATH_NONE }, { "old", FORCE_PATH_OLD }, { "new", FORCE_PATH_NEW }, { NULL, 0 }
};
static const struct enum_value canary_key_values[] = {
	{ "connection", CANARY_KEY_CONNECTION }, { "user", CANARY_KEY_USER },
	{ "database", CANARY_KEY_DATABASE }, { "application_name", CANARY_KEY_APPLICATION_NAME },
	{ "client_addr", CANARY_KEY_CLIENT_ADDR }, { "param:NAME", CANARY_KEY_PARAM }, { NULL, 0 }
};

/* "allowed values are a, b, c" into err. */
static void enum_err(const struct enum_value *vals, char *err, size_t errlen)
{
	size_t off;

	if (err == NULL || errlen == 0)
		return;
	snprintf(err, errlen, "allowed values are ");
	off = strlen(err);
	for (const struct enum_value *v = vals; v->name != NULL && off < errlen; v++) {
		snprintf(err + off, errlen - off, "%s%s", v == vals ? "" : ", ", v->name);
		off += strlen(err + off);
	}
}

static int parse_enum(const char *s, const struct enum_value *vals, int *out,
		      char *err, size_t errlen)
{
	for (const struct enum_value *v = vals; v->name != NULL; v++) {
		if (strcasecmp(s, v->name) == 0) {
			*out = v->value;
			return 0;
		}
	}
	enum_err(vals, err, errlen);
	return -1;
}

static const char *enum_name(const struct enum_value *vals, int value)
{
	for (const struct enum_value *v = vals; v->name != NULL; v++)
		if (v->value == value)
			return v->name;
	return "?";
}

/* Trimmed copy of s into buf; -1 when it does not fit. */
static int trim_copy(const char *s, char *buf, size_t len)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= len)
		return -1;
	memmove(buf, s, n);
	buf[n] = '\0';
	return 0;
}

/* Leading decimal digits of s as uint64 into *out; the rest in *end.
 * -1 when there are none or the number overflows. */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

/* A whole number with an optional unit from a table: what a duration and a
 * size have in common. */
struct unit_scale {
	const char *unit;       /* "" is the value without a unit */
	uint64_t mult;
};
struct unit_kind {
	const struct unit_scale *units;
	size_t n_units;
	uint64_t max;           /* largest value after scaling */
	const char *too_big;    /* message past max; NULL: the expected message */
	const char *expected;   /* message for anything else */
};

static int parse_with_unit(const char *s, const struct unit_kind *k, uint64_t *out,
			   char *err, size_t errlen)
{
	char buf[64];
	const char *p;
	uint64_t v;

	if (trim_copy(s, buf, sizeof(buf)) < 0 || parse_digits(buf, &v, &p) < 0)
		goto bad;
	while (*p == ' ' || *p == '\t')
		p++;
	for (size_t i = 0; i < k->n_units; i++) {
		if (strcasecmp(p, k->units[i].unit) != 0)
			continue;
		if (v > k->max / k->units[i].mult) {
			if (k->too_big == NULL)
				goto bad;
			set_err(err, errlen, "%s", k->too_big);
			return -1;
		}
		*out = v * k->units[i].mult;
		return 0;
	}
bad:
	set_err(err, errlen, "%s", k->expected);
	return -1;
}

int config_parse_duration_ms(const char *s, uint32_t *out, char *err, size_t errlen)
{
	static const struct unit_scale units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "min", 60000 }, { "h", 3600000 },
	};
	static const struct unit_kind duration = {
		units, ARRAY_LEN(units), UINT32_MAX, "duration too long (at most 49 days)",
		"expected a whole number with unit ms, s, min or h "
		"(no unit: seconds), e.g. 500ms, 30s, 5min",
	};
	uint64_t v;

	if (parse_with_unit(s, &duration, &v, err, errlen) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int config_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	static const struct unit_scale units[] = {
		{ "", 1 }, { "B", 1 }, { "kB", 1024 }, { "MB", 1024 * 1024 },
		{ "GB", 1024 * 1024 * 1024 },
	};
	static const struct unit_kind size = {
		units, ARRAY_LEN(units), UINT64_MAX, NULL,
		"expected a whole number of bytes with optional unit "
		"B, kB, MB or GB (1kB = 1024 bytes), e.g. 1MB",
	};

	return parse_with_unit(s, &size, out, err, errlen);
}

int config_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
	static const char *const yes[] = { "on", "true", "yes", "1" };
	static const char *const no[] = { "off", "false", "no", "0" };
	char buf[16];

	if (trim_copy(s, buf, sizeof(buf)) == 0) {
		for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
			if (strcasecmp(buf, yes[i]) == 0) {
				*out = true;
				return 0;
			}
			if (strcasecmp(buf, no[i]) == 0) {
				*out = false;
				return 0;
			}
		}
	}
	set_err(err, errlen, "allowed values are on, off (also true/false, yes/no, 1/0)");
	return -1;
}

/* Exact decimal parsing: "12.5" -> 12500, no floating point involved. */
int config_parse_percent_milli(const char *s, int32_t *out, char *err, size_t errlen)
{
	char buf[32];
	const char *p;
	uint64_t whole, frac = 0;
	int ndec = 0;

	if (trim_copy(s, buf, sizeof(buf)) < 0 || parse_digits(buf, &whole, &p) < 0)
		goto bad;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			goto bad;
		for (; isdigit((unsigned char)*p); p++) {
			if (++ndec > 3)
				goto bad;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		for (int i = ndec; i < 3; i++)
			frac *= 10;
	}
	if (*p != '\0' || whole > 100 || whole * 1000 + frac > 100000)
		goto bad;
	*out = (int32_t)(whole * 1000 + frac);
	return 0;
bad:
	set_err(err, errlen, "expected a percentage from 0 to 100 with at most 3 decimals, e.g. 12.5");
	return -1;
}

int config_parse_force_path(const char *s, enum force_path *out, char *err, size_t errlen)
{
	char buf[32];
	int v;

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		buf[0] = '\0';
	if (parse_enum(buf, force_path_values, &v, err, errlen) < 0)
		return -1;
	*out = (enum force_path)v;
	return 0;
}

int config_parse_shadow_failure(const char *s, enum shadow_failure *out, char *err, size_t errlen)
{
	char buf[32];
	int v;

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		buf[0] = '\0';
	if (parse_enum(buf, shadow_failure_values, &v, err, errlen) < 0)
		return -1;
	*out = (enum shadow_failure)v;
	return 0;
}

void config_format_duration_ms(uint32_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%us", ms / 1000);
	else
		snprintf(buf, len, "%ums", ms);
}

void config_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "GB", 1024 * 1024 * 1024 }, { "MB", 1024 * 1024 }, { "kB", 1024 },
	};

	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (bytes > 0 && bytes % units[i].mult == 0) {
			snprintf(buf, len, "%llu%s",
				 (unsigned long long)(bytes / units[i].mult), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

void config_format_percent_milli(int32_t milli, char *buf, size_t len)
{
	int32_t frac = milli % 1000;
	int digits = 3;

	if (frac == 0) {
		snprintf(buf, len, "%d", (int)(milli / 1000));
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, len, "%d.%0*d", (int)(milli / 1000), digits, (int)frac);
}

const char *config_bool_name(bool b)
{
	return b ? "on" : "off";
}

const char *config_force_path_name(enum force_path fp)
{
	return enum_name(force_path_values, (int)fp);
}

const char *config_shadow_failure_name(enum shadow_failure sf)
{
	return enum_name(shadow_failure_values, (int)sf);
}

/* [guard] keys, by enum guard_kind, with an example value for messages. */
static const char *const guard_names[GUARD__COUNT] = {
	[GUARD_NEW_ERROR_RATE] = "new_error_rate",
	[GUARD_P99_LATENCY_RATIO] = "p99_latency_ratio",
	[GUARD_DUAL_WRITE_MISMATCHES] = "dual_write_mismatches",
	[GUARD_SHADOW_ERRORS] = "shadow_errors",
	[GUARD_DRIFT_ROWS] = "drift_rows",
	[GUARD_SHADOW_READ_MISMATCH_RATE] = "shadow_read_mismatch_rate",
};
static const char *const guard_examples[GUARD__COUNT] = {
	[GUARD_NEW_ERROR_RATE] = "1% rollback",
	[GUARD_P99_LATENCY_RATIO] = "2.0 alert",
	[GUARD_DUAL_WRITE_MISMATCHES] = "5 rollback",
	[GUARD_SHADOW_ERRORS] = "10 alert",
	[GUARD_DRIFT_ROWS] = "0 alert",
	[GUARD_SHADOW_READ_MISMATCH_RATE] = "0.1% rollback",
};

const char *config_guard_name(enum guard_kind kind)
{
	return kind >= 0 && kind < GUARD__COUNT ? guard_names[kind] : "?";
}

int config_parse_guard(enum guard_kind kind, const char *s, struct guard_rule *out, char *err,
		       size_t errlen)
{
	char buf[128], *end, *act;
	struct guard_rule r = { .on = true };

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		goto bad;
	if (buf[0] == '\0') {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	if (!isdigit((unsigned char)buf[0]))
		goto bad;
	r.threshold = strtod(buf, &end);
	if (!isfinite(r.threshold) || r.threshold < 0)
		goto bad;
	bool rate = kind == GUARD_NEW_ERROR_RATE || kind == GUARD_SHADOW_READ_MISMATCH_RATE;
	if (*end == '%') {
		if (!rate)
			goto bad;
		end++;
	}
	if (rate && r.threshold > 100)
		goto bad;
	if (kind == GUARD_P99_LATENCY_RATIO && r.threshold < 1)
		goto bad;
	if (!isspace((unsigned char)*end))
		goto bad;
	act = end;
	while (isspace((unsigned char)*act))
		act++;
	if (strcasecmp(act, "alert") == 0)
		r.action = GUARD_ACTION_ALERT;
	else if (strcasecmp(act, "rollback") == 0)
		r.action = GUARD_ACTION_ROLLBACK;
	else
		goto bad;
	*out = r;
	return 0;
bad:
	set_err(err, errlen, "expected THRESHOLD ACTION, e.g. '%s' (%s; ACTION: alert | rollback); "
		"empty: off", guard_examples[kind],
		kind == GUARD_NEW_ERROR_RATE || kind == GUARD_SHADOW_READ_MISMATCH_RATE ?
		"a percentage 0..100" :
		kind == GUARD_P99_LATENCY_RATIO ? "a ratio of at least 1" : "a count, 0 or more");
	return -1;
}

void config_format_guard(enum guard_kind kind, const struct guard_rule *rule, char *buf,
			 size_t len)
{
	if (!rule->on) {
		snprintf(buf, len, "%s", "");
		return;
	}
	snprintf(buf, len, "%g%s %s", rule->threshold,
		 kind == GUARD_NEW_ERROR_RATE || kind == GUARD_SHADOW_READ_MISMATCH_RATE ? "%" : "",
		 rule->action == GUARD_ACTION_ROLLBACK ? "rollback" : "alert");
}

static bool is_name_char(int c, const char *extra)
{
	return isalnum(c) || (c != '\0' && strchr(extra, c) != NULL);
}

/* Non-empty, at most max characters, each alnum or in extra. */
static bool valid_name(const char *s, size_t max, const char *extra)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if (!is_name_char((unsigned char)*s, extra))
			return false;
	return n > 0 && n <= max;
}

/* Host name or IP literal (IPv6 without brackets). */
static bool valid_host(const char *h)
{
	if (strchr(h, ':') != NULL)
		return valid_name(h, 255, ":.%-_");
	return valid_name(h, 255, ".-_");
}

static int parse_port(const char *s, char *port, size_t portlen, char *err, size_t errlen)
{
	uint64_t v;
	const char *end;

	if (parse_digits(s, &v, &end) < 0 || *end != '\0' || v < 1 || v > 65535) {
		set_err(err, errlen, "port must be a number from 1 to 65535");
		return -1;
	}
	snprintf(port, portlen, "%u", (unsigned)v);
	return 0;
}

/* "host:port" or "[v6]:port" (already trimmed). */
static int parse_hostport(const char *s, struct listen_addr *a, char *err, size_t errlen)
{
	char tmp[300];
	const char *colon;
	size_t hl;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':') {
			set_err(err, errlen, "expected [IPv6]:port, e.g. [::1]:6432");
			return -1;
		}
		hl = (size_t)(rb - s - 1);
		colon = rb + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			set_err(err, errlen, "expected host:port, e.g. 127.0.0.1:6432");
			return -1;
		}
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL) {
			set_err(err, errlen, "IPv6 addresses need brackets, e.g. [::1]:6432");
			return -1;
		}
	}
	if (hl == 0 || hl >= sizeof(a->host) || hl >= sizeof(tmp)) {
		set_err(err, errlen, "expected host:port with a non-empty host, e.g. 127.0.0.1:6432");
		return -1;
	}
	memcpy(tmp, s, hl);
	tmp[hl] = '\0';
	if (!valid_host(tmp)) {
		set_err(err, errlen, "bad host name '%s'", tmp);
		return -1;
	}
	memcpy(a->host, tmp, hl + 1);
	return parse_port(colon + 1, a->port, sizeof(a->port), err, errlen);
}

static void format_hostport(const struct listen_addr *a, char *buf, size_t len)
{
	if (strchr(a->host, ':') != NULL)
		snprintf(buf, len, "[%s]:%s", a->host, a->port);
	else
		snprintf(buf, len, "%s:%s", a->host, a->port);
}

/* ------------------------------------------------------------------------ */
/* The key table                                                            */
/* ------------------------------------------------------------------------ */

enum section_kind { SEC_NONE, SEC_MAIN, SEC_PATH, SEC_MIGRATION, SEC_REWRITE, SEC_FLAGS, SEC_FLEET,
		    SEC_GUARD, SEC_BAD };

static const char *const section_names[] = {
	[SEC_MAIN] = "pgturnout", [SEC_PATH] = "path", [SEC_MIGRATION] = "migration",
	[SEC_REWRITE] = "rewrite", [SEC_FLAGS] = "flags", [SEC_FLEET] = "fleet",
	[SEC_GUARD] = "guard",
};

enum key_type {
	KT_STRING,      /* char *; empty -> NULL */
	KT_TEXT,        /* char *; must not be empty */
	KT_PARAM,       /* char *; a parameter name: letters, digits, '_', '.' */
	KT_FILE,        /* char *; file name resolved against the config dir; empty -> NULL */
	KT_HOST,        /* char *; host name or IP address */
	KT_HOSTPORT,    /* char * + struct listen_addr; empty -> NULL */
	KT_INT,         /* int in [min, max] */
	KT_BOOL,        /* bool */
	KT_ENUM,        /* int-sized enum from a name table */
	KT_DURATION,    /* uint32_t milliseconds */
	KT_SIZE,        /* uint64_t bytes */
	KT_PERCENT,     /* int32_t thousandths of a percent */
	KT_LISTEN,      /* struct listen_addr[] + count */
	KT_USERS,       /* char *[] + count */
	KT_PATHREF,     /* int path index; the name is resolved after the whole file */
	KT_CANARY_KEY,  /* enum canary_key + canary_param */
	KT_GUARD,       /* struct guard_rule; min holds the enum guard_kind */
};

struct key_def {
	enum section_kind sec;
	const char *name;
	enum key_type type;
	size_t off;                     /* in struct config, or struct path_config for SEC_PATH */
	size_t off2;                    /* second field: count, parsed address, param name */
	const char *def;                /* default, as written in a file */
	bool reloadable;
	bool secret;                    /* shown as ******** */
	int flag;                       /* FLAG_x bit set in flags_set, or -1 */
	const struct enum_value *enums; /* borrows; KT_ENUM */
	int min, max;                   /* KT_INT */
	const char *doc;
};

#define CFG(f) offsetof(struct config, f)
#define PTH(f) offsetof(struct path_config, f)

static const struct key_def config_keys[] = {
	/* [pgturnout] */
	{ SEC_MAIN, "listen", KT_LISTEN, CFG(listen), CFG(n_listen), "127.0.0.1:6432", false, false, -1, NULL, 0, 0,
	  "comma-separated host:port addresses to accept clients on; IPv6 as [::1]:6432" },
	{ SEC_MAIN, "auth_type", KT_ENUM, CFG(auth_type), 0, "scram-sha-256", true, false, -1, auth_type_values, 0, 0,
	  "client authentication: trust | md5 | scram-sha-256 | cert | hba; md5 and scram-sha-256 "
	  "need auth_file; cert logs in the user named by the common name (CN) of the client's "
	  "certificate, verified against client_tls_ca_file; hba picks one of those (or reject) per "
	  "client from auth_hba_file" },
	{ SEC_MAIN, "auth_hba_file", KT_FILE, CFG(auth_hba_file), 0, "", true, false, -1, NULL, 0, 0,
	  "pg_hba.conf-style rules for auth_type = hba: local|host|hostssl|hostnossl DATABASE USER "
	  "[ADDRESS/LEN] trust|reject|md5|scram-sha-256|cert; relative to the config file's directory" },
	{ SEC_MAIN, "auth_file", KT_FILE, CFG(auth_file), 0, "", true, false, -1, NULL, 0, 0,
	  "users and secrets in PgBouncer userlist.txt format; relative to the config file's directory" },
	{ SEC_MAIN, "auth_user", KT_STRING, CFG(auth_user), 0, "", true, false, -1, NULL, 0, 0,
	  "user that runs auth_query on the old path's server for a client not in auth_file "
	  "(md5 and scram-sha-256); its own plain password comes from auth_file; empty: no lookup" },
	{ SEC_MAIN, "auth_query", KT_TEXT, CFG(auth_query), 0,
	  "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1", true, false, -1, NULL, 0, 0,
	  "query run as auth_user with the client's user name as $1; its second column of its one "
	  "row is the secret (plain, md5 or SCRAM verifier); no row or NULL: unknown user" },
	{ SEC_MAIN, "auth_cache_ttl", KT_DURATION, CFG(auth_cache_ttl_ms), 0, "60s", true, false, -1, NULL, 0, 0,
	  "how long a secret auth_query found (or its absence) is reused for further logins; 0: "
	  "every login asks the server (no unit: seconds)" },
	{ SEC_MAIN, "admin_users", KT_USERS, CFG(admin_users), CFG(n_admin_users), "", true, false, -1, NULL, 0, 0,
	  "comma-separated users allowed on the admin console and HTTP writes; empty: nobody" },
	{ SEC_MAIN, "stats_users", KT_USERS, CFG(stats_users), CFG(n_stats_users), "", true, false, -1, NULL, 0, 0,
	  "comma-separated users allowed on the admin console for SHOW commands only (others refused "
	  "with 42501); empty: nobody" },
	{ SEC_MAIN, "unix_socket_dir", KT_FILE, CFG(unix_socket_dir), 0, "", false, false, -1, NULL, 0, 0,
	  "also accept clients on the unix-domain socket DIR/.s.PGSQL.PORT, PORT being the first "
	  "listen address's; empty: none; relative to the config file's directory" },
	{ SEC_MAIN, "tls_mode", KT_ENUM, CFG(tls_mode), 0, "disable", true, false, -1, tls_mode_values, 0, 0,
	  "client-side TLS: disable | allow | require | verify-ca | verify-full; all but disable need "
	  "tls_cert_file and tls_key_file; verify-ca also requires a client certificate signed by "
	  "client_tls_ca_file, verify-full also that its common name (CN) is the user's name" },
	{ SEC_MAIN, "tls_cert_file", KT_FILE, CFG(tls_cert_file), 0, "", true, false, -1, NULL, 0, 0,
	  "PEM certificate (chain) shown to clients; relative to the config file's directory" },
	{ SEC_MAIN, "tls_key_file", KT_FILE, CFG(tls_key_file), 0, "", true, false, -1, NULL, 0, 0,
	  "PEM private key of tls_cert_file; relative to the config file's directory" },
	{ SEC_MAIN, "client_tls_ca_file", KT_FILE, CFG(client_tls_ca_file), 0, "", true, false, -1, NULL, 0, 0,
	  "PEM CA certificates that client certificates are verified against (tls_mode = verify-ca "
	  "| verify-full, auth_type = cert); with allow or require a certificate is asked for but "
	  "not required; relative to the config file's directory" },
	{ SEC_MAIN, "http_listen", KT_HOSTPORT, CFG(http_listen), CFG(http_addr), "", false, false, -1, NULL, 0, 0,
	  "host:port of the HTTP endpoint (metrics, health, flags API); empty: HTTP off" },
	{ SEC_MAIN, "http_token_file", KT_FILE, CFG(http_token_file), 0, "", true, false, -1, NULL, 0, 0,
	  "file holding the bearer token required for HTTP writes; empty: HTTP writes refused; "
	  "relative to the config file's directory" },
	{ SEC_MAIN, "http_auth_reads", KT_BOOL, CFG(http_auth_reads), 0, "off", true, false, -1, NULL, 0, 0,
	  "on: GET /metrics, /flags and /clients need the bearer token of http_token_file too "
	  "(401 without it); /healthz stays open for load balancers" },
	{ SEC_MAIN, "http_max_connections", KT_INT, CFG(http_max_connections), 0, "64", true, false, -1, NULL, 1, 100000,
	  "most HTTP connections open at once (1..100000); more wait in the listen queue until one closes" },
	{ SEC_MAIN, "http_request_timeout", KT_DURATION, CFG(http_request_timeout_ms), 0, "10s", true, false, -1, NULL, 0, 0,
	  "an HTTP request must arrive whole within this time from the connection's accept (or the "
	  "previous answer), and an answer be written within it, or the connection is closed; "
	  "0 disables (no unit: seconds)" },
	{ SEC_MAIN, "http_fd_reserve", KT_INT, CFG(http_fd_reserve), 0, "128", true, false, -1, NULL, 0, 1000000000,
	  "file descriptors under RLIMIT_NOFILE kept for PostgreSQL clients, their servers and the "
	  "admin console: an HTTP connection that would leave fewer is refused with 503" },
	{ SEC_MAIN, "journal_dir", KT_FILE, CFG(journal_dir), 0, "./journal", false, false, -1, NULL, 0, 0,
	  "directory of the dual-write dead-letter journal; relative to the config file's directory" },
	{ SEC_MAIN, "log_format", KT_ENUM, CFG(log_format), 0, "text", true, false, -1, log_format_values, 0, 0,
	  "log line format: text | json" },
	{ SEC_MAIN, "log_level", KT_ENUM, CFG(log_level), 0, "info", true, false, -1, log_level_values, 0, 0,
	  "least severe level logged: error | warning | info | debug" },
	{ SEC_MAIN, "max_client_conn", KT_INT, CFG(max_client_conn), 0, "10000", true, false, -1, NULL, 1, 1000000,
	  "most client connections open at once (1..1000000); more are refused with 53300" },
	{ SEC_MAIN, "shutdown_timeout", KT_DURATION, CFG(shutdown_timeout_ms), 0, "30s", true, false, -1, NULL, 0, 0,
	  "on SIGTERM, how long open transactions may run before the proxy exits (ms, s, min, h; "
	  "no unit: seconds)" },
	{ SEC_MAIN, "client_login_timeout", KT_DURATION, CFG(client_login_timeout_ms), 0, "60s", true, false, -1, NULL, 0, 0,
	  "a client must finish startup and authentication within this time; 0 disables (no unit: seconds)" },
	{ SEC_MAIN, "server_connect_timeout", KT_DURATION, CFG(server_connect_timeout_ms), 0, "15s", true, false, -1, NULL, 0, 0,
	  "connecting and logging in to a path's server must finish within this time; 0 disables "
	  "(no unit: seconds)" },
	{ SEC_MAIN, "server_idle_timeout", KT_DURATION, CFG(server_idle_timeout_ms), 0, "60s", true, false, -1, NULL, 0, 0,
	  "a server connection whose client left (idle, outside a transaction) is kept this long "
	  "for the next client with the same user, database and startup parameters; 0: close it "
	  "with its client (no unit: seconds)" },
	{ SEC_MAIN, "server_reset_query", KT_TEXT, CFG(server_reset_query), 0, "DISCARD ALL", true, false, -1, NULL, 0, 0,
	  "run on a kept server connection before another client gets it" },
	{ SEC_MAIN, "max_query_size", KT_SIZE, CFG(max_query_size), 0, "1MB", true, false, -1, NULL, 0, 0,
	  "largest Query/Parse message buffered for classification and rewriting (B, kB, MB, GB; "
	  "no unit: bytes); larger statements are refused with 54000" },
	{ SEC_MAIN, "max_prepared_statements", KT_INT, CFG(max_prepared_statements), 0, "10000", true, false, -1, NULL, 0, 100000000,
	  "named prepared statements one session may hold while pgturnout tracks them (two paths "
	  "configured); a Parse of one more is refused with 54000 (its Execute raises it) and the "
	  "session goes on; 0: no limit" },
	{ SEC_MAIN, "query_timeout", KT_DURATION, CFG(query_timeout_ms), 0, "0", true, false, -1, NULL, 0, 0,
	  "a request the server has not answered within this time is cancelled on the server "
	  "(CancelRequest; the client gets 57014 and its session goes on, as with statement_timeout); "
	  "a server that ignores the cancel for as long again ends the session with 57014; "
	  "0 disables (no unit: seconds)" },
	{ SEC_MAIN, "query_wait_timeout", KT_DURATION, CFG(query_wait_timeout_ms), 0, "120s", true, false, -1, NULL, 0, 0,
	  "a client held at PAUSE with a request to send, or waiting for a server connection slot "
	  "(max_db_connections, max_user_connections), longer than this is closed (57014 at PAUSE, "
	  "53300 for a slot); 0 disables (no unit: seconds)" },
	{ SEC_MAIN, "idle_transaction_timeout", KT_DURATION, CFG(idle_transaction_timeout_ms), 0, "0", true, false, -1, NULL, 0, 0,
	  "a client idle inside a transaction longer than this is closed with 25P03 and its server "
	  "connection closed (the transaction rolls back); 0 disables (no unit: seconds)" },
	{ SEC_MAIN, "client_idle_timeout", KT_DURATION, CFG(client_idle_timeout_ms), 0, "0", true, false, -1, NULL, 0, 0,
	  "a client idle outside a transaction longer than this is closed with 57P05; 0 disables "
	  "(no unit: seconds)" },
	{ SEC_MAIN, "server_lifetime", KT_DURATION, CFG(server_lifetime_ms), 0, "3600s", true, false, -1, NULL, 0, 0,
	  "a server connection older than this is closed when its client leaves instead of being "
	  "kept for the next one; 0: no limit (no unit: seconds)" },
	{ SEC_MAIN, "server_check_query", KT_STRING, CFG(server_check_query), 0, "select 1", true, false, -1, NULL, 0, 0,
	  "run on a kept server connection idle longer than server_check_delay before a client gets "
	  "it; a failure (error, closed, no answer within server_connect_timeout) closes it and the "
	  "client gets a new connection; empty: no check" },
	{ SEC_MAIN, "server_check_delay", KT_DURATION, CFG(server_check_delay_ms), 0, "30s", true, false, -1, NULL, 0, 0,
	  "how long a kept server connection may sit idle before server_check_query is run on it; "
	  "0: check every time (no unit: seconds)" },
	{ SEC_MAIN, "tcp_keepalive", KT_BOOL, CFG(tcp_keepalive), 0, "on", true, false, -1, NULL, 0, 0,
	  "TCP keepalive on client and server sockets: on | off" },
	{ SEC_MAIN, "tcp_keepidle", KT_DURATION, CFG(tcp_keepidle_ms), 0, "0", true, false, -1, NULL, 0, 0,
	  "idle time before the first keepalive probe (TCP_KEEPIDLE, whole seconds); 0: the system's "
	  "(no unit: seconds)" },
	{ SEC_MAIN, "tcp_keepintvl", KT_DURATION, CFG(tcp_keepintvl_ms), 0, "0", true, false, -1, NULL, 0, 0,
	  "time between keepalive probes (TCP_KEEPINTVL, whole seconds); 0: the system's (no unit: seconds)" },
	{ SEC_MAIN, "tcp_keepcnt", KT_INT, CFG(tcp_keepcnt), 0, "0", true, false, -1, NULL, 0, 1000,
	  "unanswered keepalive probes before the connection is dropped (TCP_KEEPCNT, 0..1000); "
	  "0: the system's" },
	{ SEC_MAIN, "tcp_user_timeout", KT_DURATION, CFG(tcp_user_timeout_ms), 0, "0", true, false, -1, NULL, 0, 0,
	  "how long sent data may stay unacknowledged before the connection is dropped "
	  "(TCP_USER_TIMEOUT); 0: the system's (no unit: seconds)" },
	{ SEC_MAIN, "max_db_connections", KT_INT, CFG(max_db_connections), 0, "0", true, false, -1, NULL, 0, 1000000,
	  "most server connections to one database (as logged in to the server), kept ones included; "
	  "a client over it waits up to query_wait_timeout for a slot, then gets 53300; 0: no limit" },
	{ SEC_MAIN, "max_user_connections", KT_INT, CFG(max_user_connections), 0, "0", true, false, -1, NULL, 0, 1000000,
	  "most server connections of one server user, kept ones included; a client over it waits "
	  "up to query_wait_timeout for a slot, then gets 53300; 0: no limit" },
	{ SEC_MAIN, "pidfile", KT_FILE, CFG(pidfile), 0, "", false, false, -1, NULL, 0, 0,
	  "file the process id is written to at start; empty: none; relative to the config file's directory" },

	/* [path NAME] */
	{ SEC_PATH, "host", KT_HOST, PTH(host), 0, "127.0.0.1", true, false, -1, NULL, 0, 0,
	  "server host name or IP address" },
	{ SEC_PATH, "port", KT_INT, PTH(port), 0, "5432", true, false, -1, NULL, 1, 65535,
	  "server port (1..65535)" },
	{ SEC_PATH, "dbname", KT_STRING, PTH(dbname), 0, "", true, false, -1, NULL, 0, 0,
	  "database on the server; empty: the database name the client asked for" },
	{ SEC_PATH, "user", KT_STRING, PTH(user), 0, "", true, false, -1, NULL, 0, 0,
	  "server user; empty: the client's own user" },
	{ SEC_PATH, "password", KT_STRING, PTH(password), 0, "", true, true, -1, NULL, 0, 0,
	  "server password; empty: the user's secret from auth_file" },
	{ SEC_PATH, "search_path", KT_STRING, PTH(search_path), 0, "", true, false, -1, NULL, 0, 0,
	  "search_path set on every server connection of this path; empty: the server's default" },
	{ SEC_PATH, "sslmode", KT_ENUM, PTH(sslmode), 0, "prefer", true, false, -1, sslmode_values, 0, 0,
	  "TLS to the server: disable | prefer | require | verify-full; verify-full needs sslrootcert" },
	{ SEC_PATH, "sslrootcert", KT_FILE, PTH(sslrootcert), 0, "", true, false, -1, NULL, 0, 0,
	  "CA certificates (PEM) to verify the server with; relative to the config file's directory" },
	{ SEC_PATH, "sslcert", KT_FILE, PTH(sslcert), 0, "", true, false, -1, NULL, 0, 0,
	  "PEM client certificate (chain) shown to the server (for its cert authentication or "
	  "clientcert=verify-*); needs sslkey; relative to the config file's directory" },
	{ SEC_PATH, "sslkey", KT_FILE, PTH(sslkey), 0, "", true, false, -1, NULL, 0, 0,
	  "PEM private key of sslcert; relative to the config file's directory" },

	/* [migration] */
	{ SEC_MIGRATION, "old", KT_PATHREF, CFG(old_path), 0, "old", true, false, -1, NULL, 0, 0,
	  "the [path] sessions use by default; with a single [path] and no [migration]: that path" },
	{ SEC_MIGRATION, "new", KT_PATHREF, CFG(new_path), 0, "new", true, false, -1, NULL, 0, 0,
	  "the [path] the canary moves sessions to; must differ from old" },
	{ SEC_MIGRATION, "salt", KT_TEXT, CFG(salt), 0, "pgturnout", true, false, -1, NULL, 0, 0,
	  "bucketing salt; a new salt reshuffles the canary, so it is frozen while canary_percent > 0" },
	{ SEC_MIGRATION, "tag_param", KT_PARAM, CFG(tag_param), 0, "pgturnout.version", true, false, -1, NULL, 0, 0,
	  "startup/GUC parameter that carries a client's version tag" },
	{ SEC_MIGRATION, "canary_key", KT_CANARY_KEY, CFG(canary_key), CFG(canary_param), "connection", true, false, -1,
	  canary_key_values, 0, 0,
	  "what the canary bucket is computed from: connection | user | database | application_name | "
	  "client_addr | param:NAME" },

	{ SEC_MIGRATION, "dual_commit", KT_ENUM, CFG(dual_commit), 0, "auto", false, false, -1, dual_commit_values, 0, 0,
	  "how the two sides of a dual write commit: 2pc (PREPARE TRANSACTION on both, a durable "
	  "decision, COMMIT PREPARED on both; in-doubt prepared transactions resolved automatically; "
	  "needs max_prepared_transactions > 0 and user and dbname in both [path]s); ordered (the "
	  "primary first, its statements made durable as an intent before, so that a crash between "
	  "the two commits leaves them journaled); auto: 2pc where both paths allow it, else "
	  "ordered (decided and logged at start)" },
	{ SEC_MIGRATION, "shadow_lock_timeout", KT_DURATION, CFG(shadow_lock_timeout_ms), 0, "5s", true, false, -1, NULL, 0, 0,
	  "dual writes: the longest a mirrored write waits for a row lock on the second path "
	  "(lock_timeout of each shadow transaction); a longer wait is a journaled shadow failure, "
	  "never a hang; 0: no bound (no unit: seconds)" },

	/* [flags] */
	{ SEC_FLAGS, "canary_percent", KT_PERCENT, CFG(flags.canary_milli), 0, "0", true, false, FLAG_CANARY_PERCENT,
	  NULL, 0, 0, "share of untagged sessions sent to new: 0..100, up to 3 decimals" },
	{ SEC_FLAGS, "dual_write", KT_BOOL, CFG(flags.dual_write), 0, "off", true, false, FLAG_DUAL_WRITE,
	  NULL, 0, 0, "copy every write to the shadow path: on | off" },
	{ SEC_FLAGS, "shadow_failure", KT_ENUM, CFG(flags.shadow_failure), 0, "journal", true, false,
	  FLAG_SHADOW_FAILURE, shadow_failure_values, 0, 0,
	  "when a shadow write fails: journal (record it, the client succeeds) | fail (the client gets the error)" },
	{ SEC_FLAGS, "force_path", KT_ENUM, CFG(flags.force_path), 0, "none", true, false, FLAG_FORCE_PATH,
	  force_path_values, 0, 0, "emergency override for every session: none | old | new" },
	{ SEC_FLAGS, "shadow_reads", KT_PERCENT, CFG(flags.shadow_reads_milli), 0, "0", true, false, FLAG_SHADOW_READS,
	  NULL, 0, 0, "share of sessions (sticky by the canary key) whose reads also run on the other "
	  "path and are compared: 0..100, up to 3 decimals" },

	/* [fleet] (SPEC §13) */
	{ SEC_FLEET, "dsn", KT_STRING, CFG(fleet_dsn), 0, "", false, true, -1, NULL, 0, 0,
	  "libpq connection string of the fleet's flag store (e.g. host=db dbname=app user=pgturnout "
	  "password=... sslmode=require); overrides what path gives; empty with path empty: one "
	  "instance, flags local" },
	{ SEC_FLEET, "path", KT_STRING, CFG(fleet_path_name), 0, "", false, false, -1, NULL, 0, 0,
	  "a [path NAME] whose host, port, dbname, user, password, sslmode and sslrootcert the flag "
	  "store connection takes (its user and password must be set there)" },
	{ SEC_FLEET, "name", KT_STRING, CFG(fleet_name), 0, "", false, false, -1, NULL, 0, 0,
	  "this instance's name in SHOW FLEET, unique in the fleet; empty: HOSTNAME:PORT of the first "
	  "listen address" },
	{ SEC_FLEET, "poll_interval", KT_DURATION, CFG(fleet_poll_ms), 0, "1s", false, false, -1, NULL, 0, 0,
	  "heartbeat and fallback poll of the flag store (LISTEN/NOTIFY brings changes at once); "
	  "also the reconnect delay (no unit: seconds)" },
	{ SEC_FLEET, "timeout", KT_DURATION, CFG(fleet_timeout_ms), 0, "5s", false, false, -1, NULL, 0, 0,
	  "a flag store that does not connect or answer within this time is unreachable "
	  "(no unit: seconds)" },

	/* [guard] (SPEC §12) */
	{ SEC_GUARD, "window", KT_DURATION, CFG(guard_window_ms), 0, "60s", true, false, -1, NULL, 0, 0,
	  "sliding window of new_error_rate and p99_latency_ratio, 1s..10min (no unit: seconds)" },
	{ SEC_GUARD, "min_sample", KT_INT, CFG(guard_min_sample), 0, "200", true, false, -1, NULL, 1, 100000000,
	  "fewest requests answered on each path within the window before new_error_rate and "
	  "p99_latency_ratio are judged" },
	{ SEC_GUARD, "new_error_rate", KT_GUARD, CFG(guards[GUARD_NEW_ERROR_RATE]), 0, "", true, false, -1,
	  NULL, GUARD_NEW_ERROR_RATE, 0,
	  "share of requests failing on new minus the share failing on old, over the window, in "
	  "percentage points, and the action past it: e.g. 1% rollback; empty: off" },
	{ SEC_GUARD, "p99_latency_ratio", KT_GUARD, CFG(guards[GUARD_P99_LATENCY_RATIO]), 0, "", true, false, -1,
	  NULL, GUARD_P99_LATENCY_RATIO, 0,
	  "new's p99 request latency over old's, over the window, and the action past it: e.g. "
	  "2.0 alert; empty: off" },
	{ SEC_GUARD, "dual_write_mismatches", KT_GUARD, CFG(guards[GUARD_DUAL_WRITE_MISMATCHES]), 0, "", true,
	  false, -1, NULL, GUARD_DUAL_WRITE_MISMATCHES, 0,
	  "dual-write mismatches (row counts differing between the paths) in the last minute, and "
	  "the action past it: e.g. 5 rollback; empty: off" },
	{ SEC_GUARD, "shadow_errors", KT_GUARD, CFG(guards[GUARD_SHADOW_ERRORS]), 0, "", true, false, -1,
	  NULL, GUARD_SHADOW_ERRORS, 0,
	  "dual-write shadow errors in the last minute, and the action past it: e.g. 10 alert; "
	  "empty: off" },
	{ SEC_GUARD, "drift_rows", KT_GUARD, CFG(guards[GUARD_DRIFT_ROWS]), 0, "", true, false, -1,
	  NULL, GUARD_DRIFT_ROWS, 0,
	  "rows different or missing on one side in the last verify (journal_dir/verify.last.json, "
	  "as SHOW VERIFY shows it), and the action past it: e.g. 0 alert; empty: off" },
	{ SEC_GUARD, "shadow_read_mismatch_rate", KT_GUARD, CFG(guards[GUARD_SHADOW_READ_MISMATCH_RATE]), 0, "",
	  true, false, -1, NULL, GUARD_SHADOW_READ_MISMATCH_RATE, 0,
	  "share of the shadow reads compared within the window whose results differed, judged from "
	  "min_sample of them, and the action past it: e.g. 0.1% rollback; empty: off" },
};

#define N_KEYS ARRAY_LEN(config_keys)

static const char version_doc[] = "version tag -> path";
static const char rewrite_doc[] = "old-schema name -> new-schema name";

static const struct key_def *find_key(enum section_kind sec, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (config_keys[i].sec == sec && strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

#define FIELD(base, kd, T) ((T *)((char *)(base) + (kd)->off))
#define FIELD2(base, kd, T) ((T *)((char *)(base) + (kd)->off2))
#define CFIELD(base, kd, T) ((const T *)((const char *)(base) + (kd)->off))
#define CFIELD2(base, kd, T) ((const T *)((const char *)(base) + (kd)->off2))

/* ------------------------------------------------------------------------ */
/* The loader                                                               */
/* ------------------------------------------------------------------------ */

struct key_lines {
	int line[N_KEYS];               /* where each key was set; 0: not set */
	bool invalid[N_KEYS];           /* its value was rejected (and reported) */
};

struct pending_version {
	char *tag;                      /* owns */
	char *path;                     /* owns */
	int line;
};

struct loader {
	struct config *cfg;             /* owns until returned */
	struct config_errors *errs;     /* borrows */
	size_t errs_at_start;
	const char *name;               /* borrows: the file name for messages */
	char *dir;                      /* owns: absolute directory of the file; NULL: none */
	bool oom;

	/* reader */
	const char *p;                  /* borrows: next unread byte */
	const char *end;                /* borrows */
	int lineno;                     /* line being parsed */
	bool at_line_start;
	bool skip_line;                 /* feeding inih an empty line instead */

	/* current section */
	enum section_kind sec;
	int cur_path;                   /* index when sec == SEC_PATH */
	char label[96];                 /* "[path old]", for messages */

	int sec_line[SEC_BAD];          /* header line of each singleton section */
	struct key_lines main_lines;    /* lines of non-path keys */
	struct key_lines *path_lines;   /* owns, one per path */
	char *pathref[2];               /* owns: [migration] old / new names */
	struct pending_version *versions; /* owns, n_versions */
	size_t n_versions;
};

static void ld_error(struct loader *ld, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ld_error(struct loader *ld, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (config_errors_add(ld->errs, ld->name, line, "%s", msg) < 0)
		ld->oom = true;
}

/* A value shortened for an error message, without control characters. */
static const char *shown(const char *v, char *buf, size_t len)
{
	size_t i = 0;

	for (; *v != '\0' && i + 4 < len; v++)
		buf[i++] = iscntrl((unsigned char)*v) ? '?' : *v;
	if (*v != '\0')
		memcpy(buf + i, "...", 3), i += 3;
	buf[i] = '\0';
	return buf;
}

static char *ld_strdup(struct loader *ld, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		ld->oom = true;
	return d;
}

/* Absolute file name for V: kept when absolute or when there is no dir. */
static char *resolve_file(struct loader *ld, const char *v)
{
	char *out;

	if (v[0] == '/' || ld->dir == NULL)
		return ld_strdup(ld, v);
	while (v[0] == '.' && v[1] == '/')
		v += 2;
	if (asprintf(&out, "%s/%s", ld->dir, v) < 0) {
		ld->oom = true;
		return NULL;
	}
	return out;
}

static void replace_str(char **field, char *v)
{
	free(*field);
	*field = v;
}

static void free_users(char **users, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
}

static int parse_listen(struct loader *ld, const char *v, struct config *cfg, char *err, size_t errlen)
{
	struct listen_addr *addrs = NULL;
	size_t n = 0;
	const char *p = v;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char item[300];
		struct listen_addr a, *grown;

		if (len >= sizeof(item)) {
			set_err(err, errlen, "address too long");
			goto fail;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (trim_copy(item, item, sizeof(item)) < 0 || item[0] == '\0') {
			set_err(err, errlen, "empty address in the list; expected host:port[, host:port...]");
			goto fail;
		}
		if (parse_hostport(item, &a, err, errlen) < 0)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(addrs[i].host, a.host) == 0 && strcmp(addrs[i].port, a.port) == 0) {
				set_err(err, errlen, "address %s listed twice", item);
				goto fail;
			}
		}
		grown = realloc(addrs, (n + 1) * sizeof(*addrs));
		if (grown == NULL) {
			ld->oom = true;
			goto fail;
		}
		addrs = grown;
		addrs[n++] = a;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	free(cfg->listen);
	cfg->listen = addrs;
	cfg->n_listen = n;
	return 0;
fail:
	free(addrs);
	return -1;
}

static int parse_users(struct loader *ld, const char *v, char ***out, size_t *nout, char *err, size_t errlen)
{
	char **users = NULL;
	size_t n = 0;
	char *copy;
	char buf[256];

	if (v[0] == '\0') {
		free_users(*out, *nout);
		*out = NULL;
		*nout = 0;
		return 0;
	}
	copy = ld_strdup(ld, v);
	if (copy == NULL)
		return -1;
	/* strtok_r would merge empty items; walk by hand to reject "a,,b". */
	for (char *p = copy;; ) {
		char *comma = strchr(p, ',');
		char **grown;

		if (comma != NULL)
			*comma = '\0';
		if (trim_copy(p, buf, sizeof(buf)) < 0 || buf[0] == '\0') {
			set_err(err, errlen, "expected comma-separated user names, got an empty or too long one");
			goto fail;
		}
		grown = realloc(users, (n + 1) * sizeof(*users));
		if (grown == NULL)
			goto oom;
		users = grown;
		if ((users[n] = strdup(buf)) == NULL)
			goto oom;
		n++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	free(copy);
	free_users(*out, *nout);
	*out = users;
	*nout = n;
	return 0;
oom:
	ld->oom = true;
fail:
	free(copy);
	free_users(users, n);
	return -1;
}

/* Sets KD in BASE (struct config, or struct path_config for paths) from V.
 * Returns 0, or -1 with the reason in err. */
static int set_value(struct loader *ld, const struct key_def *kd, void *base,
		     const char *v, char *err, size_t errlen)
{
	switch (kd->type) {
	case KT_STRING:
		replace_str(FIELD(base, kd, char *), v[0] == '\0' ? NULL : ld_strdup(ld, v));
		return 0;
	case KT_TEXT:
		if (v[0] == '\0') {
			set_err(err, errlen, "must not be empty (default: %s)", kd->def);
			return -1;
		}
		replace_str(FIELD(base, kd, char *), ld_strdup(ld, v));
		return 0;
	case KT_PARAM:
		if (!valid_name(v, 63, "_.")) {
			set_err(err, errlen, "expected a parameter name of letters, digits, '_' and '.'");
			return -1;
		}
		replace_str(FIELD(base, kd, char *), ld_strdup(ld, v));
		return 0;
	case KT_FILE:
		replace_str(FIELD(base, kd, char *), v[0] == '\0' ? NULL : resolve_file(ld, v));
		return 0;
	case KT_HOST: {
		char host[256];
		size_t n = strlen(v);

		/* "[::1]" is accepted as well as "::1" */
		if (n >= 2 && v[0] == '[' && v[n - 1] == ']' && n - 2 < sizeof(host)) {
			memcpy(host, v + 1, n - 2);
			host[n - 2] = '\0';
		} else if (n < sizeof(host)) {
			memcpy(host, v, n + 1);
		} else {
			host[0] = '\0';
		}
		if (!valid_host(host)) {
			set_err(err, errlen, "expected a host name or IP address");
			return -1;
		}
		replace_str(FIELD(base, kd, char *), ld_strdup(ld, host));
		return 0;
	}
	case KT_HOSTPORT: {
		struct listen_addr a;
		char buf[300];

		if (v[0] == '\0') {
			replace_str(FIELD(base, kd, char *), NULL);
			memset(FIELD2(base, kd, struct listen_addr), 0, sizeof(a));
			return 0;
		}
		if (parse_hostport(v, &a, err, errlen) < 0)
			return -1;
		format_hostport(&a, buf, sizeof(buf));
		replace_str(FIELD(base, kd, char *), ld_strdup(ld, buf));
		*FIELD2(base, kd, struct listen_addr) = a;
		return 0;
	}
	case KT_INT: {
		uint64_t n;
		const char *end;

		if (parse_digits(v, &n, &end) < 0 || *end != '\0' ||
		    n < (uint64_t)kd->min || n > (uint64_t)kd->max) {
			set_err(err, errlen, "expected a whole number from %d to %d", kd->min, kd->max);
			return -1;
		}
		*FIELD(base, kd, int) = (int)n;
		return 0;
	}
	case KT_BOOL:
		return config_parse_bool(v, FIELD(base, kd, bool), err, errlen);
	case KT_ENUM:
		return parse_enum(v, kd->enums, FIELD(base, kd, int), err, errlen);
	case KT_DURATION:
		return config_parse_duration_ms(v, FIELD(base, kd, uint32_t), err, errlen);
	case KT_SIZE:
		return config_parse_size(v, FIELD(base, kd, uint64_t), err, errlen);
	case KT_PERCENT:
		return config_parse_percent_milli(v, FIELD(base, kd, int32_t), err, errlen);
	case KT_LISTEN:
		if (v[0] == '\0') {
			set_err(err, errlen, "at least one host:port is required");
			return -1;
		}
		return parse_listen(ld, v, base, err, errlen);
	case KT_USERS:
		return parse_users(ld, v, FIELD(base, kd, char **), FIELD2(base, kd, size_t), err, errlen);
	case KT_PATHREF: {
		int slot = kd->off == CFG(old_path) ? 0 : 1;

		if (!valid_name(v, CONFIG_MAX_NAME, "_-")) {
			set_err(err, errlen, "expected the NAME of a [path NAME] section");
			return -1;
		}
		replace_str(&ld->pathref[slot], ld_strdup(ld, v));
		return 0;
	}
	case KT_CANARY_KEY: {
		int k;

		if (strncmp(v, "param:", 6) == 0) {
			if (!valid_name(v + 6, 63, "_.")) {
				set_err(err, errlen, "param:NAME needs a parameter name of letters, digits, '_' and '.'");
				return -1;
			}
			*FIELD(base, kd, int) = CANARY_KEY_PARAM;
			replace_str(FIELD2(base, kd, char *), ld_strdup(ld, v + 6));
			return 0;
		}
		if (parse_enum(v, kd->enums, &k, err, errlen) < 0 || k == CANARY_KEY_PARAM) {
			enum_err(kd->enums, err, errlen);
			return -1;
		}
		*FIELD(base, kd, int) = k;
		replace_str(FIELD2(base, kd, char *), NULL);
		return 0;
	}
	case KT_GUARD:
		return config_parse_guard((enum guard_kind)kd->min, v, FIELD(base, kd, struct guard_rule),
					  err, errlen);
	}
	return -1;
}

/* KD's value in BASE as a user would write it; malloc'd, NULL when out of
 * memory. SHOW_SECRETS false masks secrets. */
static char *format_value(const struct config *cfg, const struct key_def *kd,
			  const void *base, bool show_secrets)
{
	char buf[300];
	char *out = NULL;

	buf[0] = '\0';
	switch (kd->type) {
	case KT_STRING:
	case KT_TEXT:
	case KT_PARAM:
	case KT_FILE:
	case KT_HOST:
	case KT_HOSTPORT: {
		const char *s = *CFIELD(base, kd, char *);

		if (s != NULL && kd->secret && !show_secrets)
			s = SECRET_MASK;
		return strdup(s != NULL ? s : "");
	}
	case KT_INT:
		snprintf(buf, sizeof(buf), "%d", *CFIELD(base, kd, int));
		break;
	case KT_BOOL:
		snprintf(buf, sizeof(buf), "%s", config_bool_name(*CFIELD(base, kd, bool)));
		break;
	case KT_ENUM:
		snprintf(buf, sizeof(buf), "%s", enum_name(kd->enums, *CFIELD(base, kd, int)));
		break;
	case KT_DURATION:
		config_format_duration_ms(*CFIELD(base, kd, uint32_t), buf, sizeof(buf));
		break;
	case KT_SIZE:
		config_format_size(*CFIELD(base, kd, uint64_t), buf, sizeof(buf));
		break;
	case KT_PERCENT:
		config_format_percent_milli(*CFIELD(base, kd, int32_t), buf, sizeof(buf));
		break;
	case KT_LISTEN:
	case KT_USERS: {
		size_t n = *CFIELD2(base, kd, size_t);
		size_t len = 0, cap = 1;
		char item[300];

		for (size_t i = 0; i < n; i++) {
			char *grown;

			if (kd->type == KT_LISTEN)
				format_hostport(&(*CFIELD(base, kd, struct listen_addr *))[i], item, sizeof(item));
			else
				snprintf(item, sizeof(item), "%s", (*CFIELD(base, kd, char **))[i]);
			cap = len + strlen(item) + 3;
			grown = realloc(out, cap);
			if (grown == NULL) {
				free(out);
				return NULL;
			}
			out = grown;
			len += (size_t)snprintf(out + len, cap - len, "%s%s", i > 0 ? ", " : "", item);
		}
		return out != NULL ? out : strdup("");
	}
	case KT_PATHREF: {
		int idx = *CFIELD(base, kd, int);

		if (idx >= 0 && (size_t)idx < cfg->n_paths)
			return strdup(cfg->paths[idx].name);
		return strdup("");
	}
	case KT_CANARY_KEY: {
		int k = *CFIELD(base, kd, int);

		if (k == CANARY_KEY_PARAM)
			snprintf(buf, sizeof(buf), "param:%s", *CFIELD2(base, kd, char *));
		else
			snprintf(buf, sizeof(buf), "%s", enum_name(kd->enums, k));
		break;
	}
	case KT_GUARD:
		config_format_guard((enum guard_kind)kd->min, CFIELD(base, kd, struct guard_rule), buf,
				    sizeof(buf));
		break;
	}
	return strdup(buf);
}

/* Frees what KD owns in BASE. */
static void free_value(const struct key_def *kd, void *base)
{
	switch (kd->type) {
	case KT_STRING:
	case KT_TEXT:
	case KT_PARAM:
	case KT_FILE:
	case KT_HOST:
	case KT_HOSTPORT:
		replace_str(FIELD(base, kd, char *), NULL);
		break;
	case KT_LISTEN:
		free(*FIELD(base, kd, struct listen_addr *));
		*FIELD(base, kd, struct listen_addr *) = NULL;
		*FIELD2(base, kd, size_t) = 0;
		break;
	case KT_USERS:
		free_users(*FIELD(base, kd, char **), *FIELD2(base, kd, size_t));
		*FIELD(base, kd, char **) = NULL;
		*FIELD2(base, kd, size_t) = 0;
		break;
	case KT_CANARY_KEY:
		replace_str(FIELD2(base, kd, char *), NULL);
		break;
	default:
		break;
	}
}

static void apply_defaults(struct loader *ld, enum section_kind sec, void *base)
{
	char err[256];

	for (size_t i = 0; i < N_KEYS; i++) {
		if (config_keys[i].sec != sec)
			continue;
		if (config_keys[i].type == KT_PATHREF)
			continue;       /* resolved after the file */
		if (set_value(ld, &config_keys[i], base, config_keys[i].def, err, sizeof(err)) < 0)
			ld_error(ld, 0, "internal: bad default for %s: %s", config_keys[i].name, err);
	}
}

static void path_config_clear(struct path_config *p)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (config_keys[i].sec == SEC_PATH)
			free_value(&config_keys[i], p);
	free(p->name);
	p->name = NULL;
}

static void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < N_KEYS; i++)
		if (config_keys[i].sec != SEC_PATH)
			free_value(&config_keys[i], cfg);
	for (size_t i = 0; i < cfg->n_paths; i++)
		path_config_clear(&cfg->paths[i]);
	free(cfg->paths);
	for (size_t i = 0; i < cfg->n_versions; i++)
		free(cfg->versions[i].tag);
	free(cfg->versions);
	for (size_t i = 0; i < cfg->n_rewrite_entries; i++) {
		free(cfg->rewrite_entries[i].key);
		free(cfg->rewrite_entries[i].value);
	}
	free(cfg->rewrite_entries);
	rewrite_rules_free(cfg->rules);
	userlist_free(cfg->users);
	hba_free(cfg->hba);
	free(cfg->file);
	free(cfg);
}

/* --- sections --- */

static void open_path(struct loader *ld, const char *name, int line)
{
	struct path_config *paths;
	struct key_lines *lines;
	struct path_config *p;
	char buf[80];

	if (name[0] == '\0') {
		ld_error(ld, line, "section [path] needs a name: [path NAME]");
		return;
	}
	if (!valid_name(name, CONFIG_MAX_NAME, "_-")) {
		ld_error(ld, line, "bad path name '%s': use 1 to %d letters, digits, '_' or '-'",
			 shown(name, buf, sizeof(buf)), CONFIG_MAX_NAME);
		return;
	}
	for (size_t i = 0; i < ld->cfg->n_paths; i++) {
		if (strcmp(ld->cfg->paths[i].name, name) == 0) {
			ld_error(ld, line, "duplicate section [path %s] (first at line %d)",
				 name, ld->cfg->paths[i].line);
			return;
		}
	}
	if (ld->cfg->n_paths == 2) {
		ld_error(ld, line, "too many [path] sections: a migration has exactly two (old and new)");
		return;
	}
	paths = realloc(ld->cfg->paths, (ld->cfg->n_paths + 1) * sizeof(*paths));
	if (paths == NULL)
		goto oom;
	ld->cfg->paths = paths;
	lines = realloc(ld->path_lines, (ld->cfg->n_paths + 1) * sizeof(*lines));
	if (lines == NULL)
		goto oom;
	ld->path_lines = lines;
	p = &paths[ld->cfg->n_paths];
	memset(p, 0, sizeof(*p));
	memset(&lines[ld->cfg->n_paths], 0, sizeof(*lines));
	p->name = ld_strdup(ld, name);
	if (p->name == NULL)
		return;
	p->line = line;
	ld->cfg->n_paths++;
	apply_defaults(ld, SEC_PATH, p);
	ld->sec = SEC_PATH;
	ld->cur_path = (int)ld->cfg->n_paths - 1;
	snprintf(ld->label, sizeof(ld->label), "[path %.80s]", name);
	return;
oom:
	ld->oom = true;
}

/* A section header NAME (trimmed) at LINE; sets ld->sec. */
static void open_section(struct loader *ld, const char *name, int line)
{
	char buf[80];

	ld->sec = SEC_BAD;
	if (strncmp(name, "path", 4) == 0 && (name[4] == '\0' || isspace((unsigned char)name[4]))) {
		const char *n = name + 4;

		while (isspace((unsigned char)*n))
			n++;
		open_path(ld, n, line);
		return;
	}
	for (int s = SEC_MAIN; s < SEC_BAD; s++) {
		if (s == SEC_PATH || strcmp(name, section_names[s]) != 0)
			continue;
		if (ld->sec_line[s] != 0) {
			ld_error(ld, line, "duplicate section [%s] (first at line %d)", name, ld->sec_line[s]);
			return;
		}
		ld->sec_line[s] = line;
		ld->sec = (enum section_kind)s;
		snprintf(ld->label, sizeof(ld->label), "[%.80s]", name);
		return;
	}
	ld_error(ld, line, "unknown section [%s]; known: [pgturnout], [path NAME], [migration], "
		 "[rewrite], [flags], [fleet], [guard]", shown(name, buf, sizeof(buf)));
}

/* --- the inih reader: counts lines, notices headers and bad lines --- */

/* First of the characters in CHARS in [s, end), stopping at an inline comment
 * (';' after whitespace) as inih does; NULL when none. */
static const char *find_before_comment(const char *s, const char *end, const char *chars)
{
	bool was_space = false;

	for (; s < end; s++) {
		if (strchr(chars, *s) != NULL && *s != '\0')
			return s;
		if (was_space && *s == ';')
			return NULL;
		was_space = isspace((unsigned char)*s);
	}
	return NULL;
}

/* Looks at one whole raw line before inih does; returns false when inih must
 * not see it (it was already reported). */
static bool scan_line(struct loader *ld, const char *s, const char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (s == end || *s == ';' || *s == '#')
		return true;
	if (*s == '[') {
		const char *rb = find_before_comment(s + 1, end, "]");
		char name[CONFIG_MAX_LINE + 1];
		size_t n;

		if (rb == NULL) {
			ld_error(ld, ld->lineno, "unterminated section header: missing ']'");
			ld->sec = SEC_BAD;
			return false;
		}
		n = (size_t)(rb - (s + 1));
		memcpy(name, s + 1, n);
		name[n] = '\0';
		if (trim_copy(name, name, sizeof(name)) < 0)
			name[0] = '\0';
		open_section(ld, name, ld->lineno);
		return false;   /* inih's own section is not used */
	}
	if (find_before_comment(s, end, "=:") == NULL) {
		ld_error(ld, ld->lineno, "expected 'key = value' or '[section]'");
		return false;
	}
	return true;
}

static char *ld_reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	const char *nl;
	size_t linelen, n;

	if (ld->p >= ld->end || num < 2)
		return NULL;
	nl = memchr(ld->p, '\n', (size_t)(ld->end - ld->p));
	linelen = nl != NULL ? (size_t)(nl - ld->p) + 1 : (size_t)(ld->end - ld->p);
	if (ld->at_line_start) {
		ld->lineno++;
		if (linelen > CONFIG_MAX_LINE) {
			ld_error(ld, ld->lineno, "line too long (more than %d characters)", CONFIG_MAX_LINE);
			ld->skip_line = true;
		} else {
			ld->skip_line = !scan_line(ld, ld->p, ld->p + linelen);
		}
		if (ld->skip_line) {
			ld->p += linelen;
			str[0] = '\n';
			str[1] = '\0';
			return str;
		}
	}
	n = linelen < (size_t)num - 1 ? linelen : (size_t)num - 1;
	memcpy(str, ld->p, n);
	str[n] = '\0';
	ld->p += n;
	ld->at_line_start = n == linelen;
	return str;
}

/* --- the inih handler --- */

static void add_version(struct loader *ld, const char *name, const char *value, int line)
{
	const char *tag = name + strlen("version.");
	struct pending_version *grown;
	char buf[80];

	if (!valid_name(tag, CONFIG_MAX_NAME, "._-")) {
		ld_error(ld, line, "bad version tag '%s': use letters, digits, '.', '_' or '-'",
			 shown(tag, buf, sizeof(buf)));
		return;
	}
	for (size_t i = 0; i < ld->n_versions; i++) {
		if (strcmp(ld->versions[i].tag, tag) == 0) {
			ld_error(ld, line, "duplicate key '%s' in [migration] (first set at line %d)",
				 name, ld->versions[i].line);
			return;
		}
	}
	if (!valid_name(value, CONFIG_MAX_NAME, "_-")) {
		ld_error(ld, line, "invalid value '%s' for %s: expected the NAME of a [path NAME] section",
			 shown(value, buf, sizeof(buf)), name);
		return;
	}
	grown = realloc(ld->versions, (ld->n_versions + 1) * sizeof(*grown));
	if (grown == NULL) {
		ld->oom = true;
		return;
	}
	ld->versions = grown;
	grown[ld->n_versions].tag = ld_strdup(ld, tag);
	grown[ld->n_versions].path = ld_strdup(ld, value);
	grown[ld->n_versions].line = line;
	if (grown[ld->n_versions].tag == NULL || grown[ld->n_versions].path == NULL) {
		free(grown[ld->n_versions].tag);
		free(grown[ld->n_versions].path);
		return;
	}
	ld->n_versions++;
}

/* The rules module prefixes its messages with "rewrite: "; ours already
 * say so. */
static const char *strip_rewrite(const char *err)
{
	return strncmp(err, "rewrite: ", 9) == 0 ? err + 9 : err;
}

static void add_rewrite(struct loader *ld, const char *name, const char *value, int line)
{
	struct config *cfg = ld->cfg;
	struct config_entry *grown;
	char err[256], b1[80], b2[80];

	for (size_t i = 0; i < cfg->n_rewrite_entries; i++) {
		if (strcmp(cfg->rewrite_entries[i].key, name) == 0) {
			ld_error(ld, line, "duplicate key '%s' in [rewrite] (first set at line %d)",
				 shown(name, b1, sizeof(b1)), cfg->rewrite_entries[i].line);
			return;
		}
	}
	err[0] = '\0';
	if (rewrite_rules_add(cfg->rules, name, value, err, sizeof(err)) < 0) {
		ld_error(ld, line, "bad rewrite rule '%s = %s': %s",
			 shown(name, b1, sizeof(b1)), shown(value, b2, sizeof(b2)), strip_rewrite(err));
		return;
	}
	grown = realloc(cfg->rewrite_entries, (cfg->n_rewrite_entries + 1) * sizeof(*grown));
	if (grown == NULL) {
		ld->oom = true;
		return;
	}
	cfg->rewrite_entries = grown;
	grown[cfg->n_rewrite_entries].key = ld_strdup(ld, name);
	grown[cfg->n_rewrite_entries].value = ld_strdup(ld, value);
	grown[cfg->n_rewrite_entries].line = line;
	cfg->n_rewrite_entries++;
}

static int ld_handler(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	int line = ld->lineno;
	const struct key_def *kd;
	struct key_lines *lines;
	void *base;
	char err[256], b1[80], b2[80];

	(void)section;          /* ours comes from the reader: see scan_line() */
	if (value == NULL)
		value = "";
	if (name[0] == '\0') {
		if (ld->sec != SEC_BAD)
			ld_error(ld, line, "missing key name before '='");
		return 1;
	}
	switch (ld->sec) {
	case SEC_BAD:
		return 1;       /* the header was reported; don't pile up errors */
	case SEC_NONE:
		ld_error(ld, line, "key '%s' outside of any section; start with [pgturnout]",
			 shown(name, b1, sizeof(b1)));
		return 1;
	case SEC_REWRITE:
		add_rewrite(ld, name, value, line);
		return 1;
	case SEC_MIGRATION:
		if (strncmp(name, "version.", 8) == 0) {
			add_version(ld, name, value, line);
			return 1;
		}
		break;
	default:
		break;
	}
	kd = find_key(ld->sec, name);
	if (kd == NULL) {
		ld_error(ld, line, "unknown key '%s' in %s", shown(name, b1, sizeof(b1)), ld->label);
		return 1;
	}
	if (ld->sec == SEC_PATH) {
		base = &ld->cfg->paths[ld->cur_path];
		lines = &ld->path_lines[ld->cur_path];
	} else {
		base = ld->cfg;
		lines = &ld->main_lines;
	}
	if (lines->line[kd - config_keys] != 0) {
		ld_error(ld, line, "duplicate key '%s' in %s (first set at line %d)",
			 name, ld->label, lines->line[kd - config_keys]);
		return 1;
	}
	lines->line[kd - config_keys] = line;
	err[0] = '\0';
	if (set_value(ld, kd, base, value, err, sizeof(err)) < 0) {
		ld_error(ld, line, "invalid value '%s' for %s: %s",
			 shown(value, b2, sizeof(b2)), name, err);
		lines->invalid[kd - config_keys] = true;
		return 1;
	}
	if (kd->flag >= 0)
		ld->cfg->flags_set |= 1u << kd->flag;
	return 1;
}

/* --- validation after the whole file --- */

/* Line of KEY (non-path) if set, else its section's header line, else 0. */
static int key_line(const struct loader *ld, const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (config_keys[i].sec == SEC_PATH || strcmp(config_keys[i].name, key) != 0)
			continue;
		if (ld->main_lines.line[i] != 0)
			return ld->main_lines.line[i];
		return ld->sec_line[config_keys[i].sec];
	}
	return 0;
}

/* True when KEY (non-path) had a rejected value: checks that depend on it
 * would only repeat the problem with the default in its place. */
static bool key_invalid(const struct loader *ld, const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (config_keys[i].sec != SEC_PATH && strcmp(config_keys[i].name, key) == 0)
			return ld->main_lines.invalid[i];
	return false;
}

static int path_key_line(const struct loader *ld, size_t path, const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (config_keys[i].sec == SEC_PATH && strcmp(config_keys[i].name, key) == 0 &&
		    ld->path_lines[path].line[i] != 0)
			return ld->path_lines[path].line[i];
	return ld->cfg->paths[path].line;
}

static void check_readable(struct loader *ld, int line, const char *key, const char *file)
{
	if (file != NULL && access(file, R_OK) != 0)
		ld_error(ld, line, "cannot read %s '%s': %s", key, file, strerror(errno));
}

static void validate_main(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if ((cfg->auth_type == AUTH_MD5 || cfg->auth_type == AUTH_SCRAM) && cfg->auth_file == NULL &&
	    !key_invalid(ld, "auth_type"))
		ld_error(ld, key_line(ld, "auth_type"), "auth_type = %s needs auth_file",
			 enum_name(auth_type_values, (int)cfg->auth_type));
	if (cfg->tls_mode != TLS_MODE_DISABLE && !key_invalid(ld, "tls_mode")) {
		const char *mode = enum_name(tls_mode_values, (int)cfg->tls_mode);

		if (cfg->tls_cert_file == NULL)
			ld_error(ld, key_line(ld, "tls_mode"), "tls_mode = %s needs tls_cert_file", mode);
		if (cfg->tls_key_file == NULL)
			ld_error(ld, key_line(ld, "tls_mode"), "tls_mode = %s needs tls_key_file", mode);
		check_readable(ld, key_line(ld, "tls_cert_file"), "tls_cert_file", cfg->tls_cert_file);
		check_readable(ld, key_line(ld, "tls_key_file"), "tls_key_file", cfg->tls_key_file);
		if ((cfg->tls_mode == TLS_MODE_VERIFY_CA || cfg->tls_mode == TLS_MODE_VERIFY_FULL) &&
		    cfg->client_tls_ca_file == NULL)
			ld_error(ld, key_line(ld, "tls_mode"), "tls_mode = %s needs client_tls_ca_file", mode);
	}
	if (cfg->auth_user != NULL && cfg->auth_type != AUTH_MD5 && cfg->auth_type != AUTH_SCRAM &&
	    cfg->auth_type != AUTH_HBA)
		ld_error(ld, key_line(ld, "auth_user"), "auth_user needs auth_type = md5, scram-sha-256 or hba");
	if (cfg->auth_type == AUTH_HBA && cfg->auth_hba_file == NULL && !key_invalid(ld, "auth_type"))
		ld_error(ld, key_line(ld, "auth_type"), "auth_type = hba needs auth_hba_file");
	if (cfg->auth_type == AUTH_CERT && !key_invalid(ld, "auth_type") &&
	    (cfg->tls_mode == TLS_MODE_DISABLE || cfg->client_tls_ca_file == NULL))
		ld_error(ld, key_line(ld, "auth_type"),
			 "auth_type = cert needs tls_mode (not disable) and client_tls_ca_file");
	check_readable(ld, key_line(ld, "client_tls_ca_file"), "client_tls_ca_file", cfg->client_tls_ca_file);
	check_readable(ld, key_line(ld, "http_token_file"), "http_token_file", cfg->http_token_file);
	if (cfg->http_auth_reads && cfg->http_token_file == NULL)
		ld_error(ld, key_line(ld, "http_auth_reads"), "http_auth_reads = on needs http_token_file");
}

static void validate_paths(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if (cfg->n_paths == 0) {
		ld_error(ld, 0, "no [path NAME] section: at least one server is needed");
		return;
	}
	for (size_t i = 0; i < cfg->n_paths; i++) {
		const struct path_config *p = &cfg->paths[i];

		if (p->sslmode == SSLMODE_VERIFY_FULL && p->sslrootcert == NULL)
			ld_error(ld, path_key_line(ld, i, "sslmode"),
				 "sslmode = verify-full needs sslrootcert in [path %s]", p->name);
		if (p->sslrootcert != NULL)
			check_readable(ld, path_key_line(ld, i, "sslrootcert"), "sslrootcert", p->sslrootcert);
		if ((p->sslcert == NULL) != (p->sslkey == NULL))
			ld_error(ld, path_key_line(ld, i, p->sslcert ? "sslcert" : "sslkey"),
				 "sslcert and sslkey go together in [path %s]", p->name);
		check_readable(ld, path_key_line(ld, i, "sslcert"), "sslcert", p->sslcert);
		check_readable(ld, path_key_line(ld, i, "sslkey"), "sslkey", p->sslkey);
	}
}

static void validate_migration(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	int mig_line = ld->sec_line[SEC_MIGRATION];
	int idx[2] = { -1, -1 };
	static const char *const which[2] = { "old", "new" };

	cfg->old_path = cfg->new_path = -1;
	if (cfg->n_paths == 0)
		return;
	if (mig_line == 0) {
		if (cfg->n_paths > 1) {
			ld_error(ld, 0, "[migration] is required with two [path] sections: "
				 "it names which one is old and which is new");
			return;
		}
		cfg->old_path = cfg->new_path = 0;
	} else {
		for (int i = 0; i < 2; i++) {
			const char *name = ld->pathref[i];
			int line = key_line(ld, which[i]);

			if (name == NULL && cfg->n_paths == 1) {
				idx[i] = 0;
				continue;
			}
			idx[i] = config_path_index(cfg, name != NULL ? name : which[i]);
			if (idx[i] >= 0)
				continue;
			if (name != NULL)
				ld_error(ld, line, "%s = %s: there is no [path %s] section", which[i], name, name);
			else
				ld_error(ld, line, "[migration] needs '%s = PATH': there is no [path %s] section",
					 which[i], which[i]);
		}
		if (idx[0] >= 0 && idx[0] == idx[1] && cfg->n_paths > 1)
			ld_error(ld, key_line(ld, "new"), "old and new name the same path '%s'; they must differ",
				 cfg->paths[idx[0]].name);
		cfg->old_path = idx[0];
		cfg->new_path = idx[1];
	}

	cfg->versions = calloc(ld->n_versions > 0 ? ld->n_versions : 1, sizeof(*cfg->versions));
	if (cfg->versions == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < ld->n_versions; i++) {
		struct pending_version *pv = &ld->versions[i];
		int p = config_path_index(cfg, pv->path);

		if (p < 0) {
			ld_error(ld, pv->line, "version.%s = %s: there is no [path %s] section",
				 pv->tag, pv->path, pv->path);
			continue;
		}
		cfg->versions[cfg->n_versions].tag = pv->tag;
		cfg->versions[cfg->n_versions].path = p;
		pv->tag = NULL;
		cfg->n_versions++;
	}
}

/* [fleet]: the dsn parses, the path exists and can log in by itself. */
static void validate_fleet(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char *why = NULL;

	cfg->fleet_path = -1;
	if (cfg->fleet_dsn != NULL) {
		PQconninfoOption *o = PQconninfoParse(cfg->fleet_dsn, &why);

		if (why != NULL)
			why[strcspn(why, "\n")] = '\0';
		if (o == NULL)
			ld_error(ld, key_line(ld, "dsn"), "[fleet] dsn: %s",
				 why != NULL ? why : "out of memory");
		PQconninfoFree(o);
		PQfreemem(why);
	}
	if (cfg->fleet_path_name != NULL) {
		cfg->fleet_path = config_path_index(cfg, cfg->fleet_path_name);
		if (cfg->fleet_path < 0)
			ld_error(ld, key_line(ld, "path"), "[fleet] path = %s: there is no [path %s] section",
				 cfg->fleet_path_name, cfg->fleet_path_name);
		else if (cfg->paths[cfg->fleet_path].user == NULL && cfg->fleet_dsn == NULL)
			ld_error(ld, key_line(ld, "path"), "[fleet] path = %s: the flag store needs a user: "
				 "set user (and password) in [path %s], or user= in dsn",
				 cfg->fleet_path_name, cfg->fleet_path_name);
	}
	if (cfg->fleet_poll_ms == 0)
		ld_error(ld, key_line(ld, "poll_interval"), "[fleet] poll_interval must be more than 0");
	if (cfg->fleet_timeout_ms == 0)
		ld_error(ld, key_line(ld, "timeout"), "[fleet] timeout must be more than 0");
}

static void loader_done(struct loader *ld)
{
	for (size_t i = 0; i < ld->n_versions; i++) {
		free(ld->versions[i].tag);
		free(ld->versions[i].path);
	}
	free(ld->versions);
	free(ld->path_lines);
	free(ld->pathref[0]);
	free(ld->pathref[1]);
	free(ld->dir);
}

/* Parses TEXT (NUL-terminated, LEN bytes) under NAME; DIR (owned, may be
 * NULL) resolves relative file names. */
static struct config *load_text(const char *text, size_t len, const char *name, char *dir,
				struct config_errors *errs)
{
	struct loader ld;
	struct config *cfg;
	char err[256];
	int rc;

	memset(&ld, 0, sizeof(ld));
	ld.errs = errs;
	ld.errs_at_start = errs->n;
	ld.name = name;
	ld.dir = dir;
	ld.p = text;
	ld.end = text + len;
	ld.at_line_start = true;
	ld.sec = SEC_NONE;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		ld.p += 3;

	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL || (cfg->file = strdup(name)) == NULL ||
	    (cfg->rules = rewrite_rules_new()) == NULL) {
		config_free(cfg);
		loader_done(&ld);
		config_errors_add(errs, name, 0, "out of memory");
		return NULL;
	}
	cfg->refcount = 1;
	cfg->old_path = cfg->new_path = -1;
	ld.cfg = cfg;
	apply_defaults(&ld, SEC_MAIN, cfg);
	apply_defaults(&ld, SEC_MIGRATION, cfg);
	apply_defaults(&ld, SEC_FLAGS, cfg);
	apply_defaults(&ld, SEC_FLEET, cfg);
	apply_defaults(&ld, SEC_GUARD, cfg);

	/* This inih build keeps its options in globals: a heap line buffer that
	 * grows (CONFIG_MAX_LINE is enforced by the reader), no continuation
	 * lines (an indented line is an error, not a silent append). */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 2 * CONFIG_MAX_LINE + 8;
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	rc = ini_parse_stream(ld_reader, &ld, ld_handler, &ld);
	if (rc == -2)
		ld.oom = true;
	else if (rc > 0 && errs->n == ld.errs_at_start)
		ld_error(&ld, rc, "syntax error");

	validate_main(&ld);
	validate_paths(&ld);
	validate_migration(&ld);
	validate_fleet(&ld);
	if (ld.cfg->guard_window_ms < 1000 || ld.cfg->guard_window_ms > 600000)
		ld_error(&ld, key_line(&ld, "window"), "[guard] window must be from 1s to 10min");
	if (rewrite_rules_finish(cfg->rules, err, sizeof(err)) < 0)
		ld_error(&ld, ld.sec_line[SEC_REWRITE], "[rewrite]: %s", strip_rewrite(err));
	if (cfg->auth_type == AUTH_HBA && cfg->auth_hba_file != NULL) {
		cfg->hba = hba_load(cfg->auth_hba_file, errs);
		if (cfg->hba != NULL && hba_needs_passwords(cfg->hba) && cfg->auth_file == NULL)
			ld_error(&ld, key_line(&ld, "auth_type"),
				 "auth_hba_file %s has md5 or scram-sha-256 rules: they need auth_file",
				 cfg->auth_hba_file);
	}
	if (cfg->auth_file != NULL) {
		size_t before = errs->n;

		cfg->users = userlist_load(cfg->auth_file, errs);
		if (cfg->users == NULL && errs->n == before)
			ld_error(&ld, key_line(&ld, "auth_file"), "cannot load auth_file '%s'", cfg->auth_file);
	}
	if (ld.oom)
		config_errors_add(errs, name, 0, "out of memory");
	if (ld.oom || errs->n != ld.errs_at_start) {
		config_free(cfg);
		cfg = NULL;
	}
	loader_done(&ld);
	return cfg;
}

struct config *config_load_string(const char *text, const char *name, struct config_errors *errs)
{
	struct config_errors local = { 0 };
	struct config *cfg;

	if (name == NULL)
		name = "(string)";
	cfg = load_text(text, strlen(text), name, NULL, errs != NULL ? errs : &local);
	config_errors_free(&local);
	return cfg;
}

/* Absolute directory of FILE, malloc'd; NULL when it cannot be resolved. */
static char *file_dir(const char *file)
{
	char *copy = strdup(file);
	char *slash, *dir;

	if (copy == NULL)
		return NULL;
	slash = strrchr(copy, '/');
	if (slash == copy)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		strcpy(copy, ".");
	dir = realpath(copy, NULL);
	free(copy);
	return dir;
}

struct config *config_load(const char *file, struct config_errors *errs)
{
	struct config_errors local = { 0 };
	struct config *cfg = NULL;
	struct stat st;
	char *text = NULL, *dir = NULL;
	size_t len = 0;
	int fd;

	if (errs == NULL)
		errs = &local;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		config_errors_add(errs, file, 0, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		config_errors_add(errs, file, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > CONFIG_MAX_FILE) {
		config_errors_add(errs, file, 0, "file too large (more than %d bytes)", CONFIG_MAX_FILE);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		config_errors_add(errs, file, 0, "out of memory");
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			config_errors_add(errs, file, 0, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		int line = 1;

		for (const char *p = text; *p != '\0'; p++)
			line += *p == '\n';
		config_errors_add(errs, file, line, "NUL byte in the file");
		goto out;
	}
	dir = file_dir(file);
	if (dir == NULL) {
		config_errors_add(errs, file, 0, "cannot resolve the file's directory: %s", strerror(errno));
		goto out;
	}
	cfg = load_text(text, len, file, dir, errs);     /* takes dir */
out:
	if (fd >= 0)
		close(fd);
	free(text);
	config_errors_free(&local);
	return cfg;
}

struct config *config_ref(struct config *cfg)
{
	__atomic_add_fetch(&cfg->refcount, 1, __ATOMIC_RELAXED);
	return cfg;
}

void config_unref(struct config *cfg)
{
	if (cfg == NULL)
		return;
	if (__atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}

int config_path_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_paths; i++)
		if (strcmp(cfg->paths[i].name, name) == 0)
			return (int)i;
	return -1;
}

int config_version_path(const struct config *cfg, const char *tag)
{
	for (size_t i = 0; i < cfg->n_versions; i++)
		if (strcmp(cfg->versions[i].tag, tag) == 0)
			return cfg->versions[i].path;
	return -1;
}

static bool config_user_in(char *const *users, size_t n, const char *user)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(users[i], user) == 0)
			return true;
	return false;
}

bool config_is_admin(const struct config *cfg, const char *user)
{
	return config_user_in(cfg->admin_users, cfg->n_admin_users, user);
}

bool config_is_stats_user(const struct config *cfg, const char *user)
{
	return config_user_in(cfg->stats_users, cfg->n_stats_users, user);
}

/* ------------------------------------------------------------------------ */
/* Walking the keys: SHOW CONFIG and reload diffs                           */
/* ------------------------------------------------------------------------ */

typedef void (*walk_cb)(void *arg, const char *section, const char *key, const char *value,
			const char *def, bool reloadable, bool secret, const char *doc);

static void walk_section(const struct config *cfg, enum section_kind sec, const char *label,
			 const void *base, bool show_secrets, walk_cb cb, void *arg)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *kd = &config_keys[i];
		char *v;

		if (kd->sec != sec)
			continue;
		v = format_value(cfg, kd, base, show_secrets);
		cb(arg, label, kd->name, v != NULL ? v : "", kd->def, kd->reloadable,
		   kd->secret, kd->doc);
		free(v);
	}
}

static void walk(const struct config *cfg, bool show_secrets, walk_cb cb, void *arg)
{
	char label[96], key[96];

	walk_section(cfg, SEC_MAIN, "pgturnout", cfg, show_secrets, cb, arg);
	for (size_t i = 0; i < cfg->n_paths; i++) {
		snprintf(label, sizeof(label), "path %s", cfg->paths[i].name);
		walk_section(cfg, SEC_PATH, label, &cfg->paths[i], show_secrets, cb, arg);
	}
	walk_section(cfg, SEC_MIGRATION, "migration", cfg, show_secrets, cb, arg);
	for (size_t i = 0; i < cfg->n_versions; i++) {
		snprintf(key, sizeof(key), "version.%s", cfg->versions[i].tag);
		cb(arg, "migration", key, cfg->paths[cfg->versions[i].path].name, "", true, false,
		   version_doc);
	}
	for (size_t i = 0; i < cfg->n_rewrite_entries; i++)
		cb(arg, "rewrite", cfg->rewrite_entries[i].key, cfg->rewrite_entries[i].value, "",
		   true, false, rewrite_doc);
	walk_section(cfg, SEC_FLAGS, "flags", cfg, show_secrets, cb, arg);
	walk_section(cfg, SEC_FLEET, "fleet", cfg, show_secrets, cb, arg);
	walk_section(cfg, SEC_GUARD, "guard", cfg, show_secrets, cb, arg);
}

struct foreach_ctx {
	config_key_cb cb;
	void *arg;
};

static void foreach_cb(void *arg, const char *section, const char *key, const char *value,
		       const char *def, bool reloadable, bool secret, const char *doc)
{
	struct foreach_ctx *ctx = arg;

	(void)secret;
	ctx->cb(ctx->arg, section, key, value, def, reloadable, doc);
}

void config_foreach(const struct config *cfg, config_key_cb cb, void *arg)
{
	struct foreach_ctx ctx = { cb, arg };

	walk(cfg, false, foreach_cb, &ctx);
}

struct flat_key {
	char *section;          /* owns */
	char *key;              /* owns */
	char *value;            /* owns */
	bool reloadable;
	bool secret;
	bool matched;
};

struct flat {
	struct flat_key *keys;  /* owns, n */
	size_t n;
	bool oom;
};

static void flat_cb(void *arg, const char *section, const char *key, const char *value,
		    const char *def, bool reloadable, bool secret, const char *doc)
{
	struct flat *f = arg;
	struct flat_key *grown;

	(void)def;
	(void)doc;
	grown = realloc(f->keys, (f->n + 1) * sizeof(*grown));
	if (grown == NULL) {
		f->oom = true;
		return;
	}
	f->keys = grown;
	grown[f->n].section = strdup(section);
	grown[f->n].key = strdup(key);
	grown[f->n].value = strdup(value);
	grown[f->n].reloadable = reloadable;
	grown[f->n].secret = secret;
	grown[f->n].matched = false;
	if (grown[f->n].section == NULL || grown[f->n].key == NULL || grown[f->n].value == NULL)
		f->oom = true;
	f->n++;
}

static void flat_free(struct flat *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->keys[i].section);
		free(f->keys[i].key);
		free(f->keys[i].value);
	}
	free(f->keys);
}

static const char *diff_shown(const struct flat_key *k)
{
	return k->secret && k->value[0] != '\0' ? SECRET_MASK : k->value;
}

int config_reload_diff(const struct config *old, const struct config *new_cfg,
		       config_diff_cb cb, void *arg)
{
	struct flat a = { 0 }, b = { 0 };
	int restart = 0;

	walk(old, true, flat_cb, &a);
	walk(new_cfg, true, flat_cb, &b);
	if (a.oom || b.oom) {
		flat_free(&a);
		flat_free(&b);
		return -1;
	}
	for (size_t i = 0; i < a.n; i++) {
		struct flat_key *ka = &a.keys[i], *kb = NULL;

		for (size_t j = 0; j < b.n; j++) {
			if (!b.keys[j].matched && strcmp(a.keys[i].section, b.keys[j].section) == 0 &&
			    strcmp(a.keys[i].key, b.keys[j].key) == 0) {
				kb = &b.keys[j];
				break;
			}
		}
		if (kb != NULL) {
			kb->matched = true;
			if (strcmp(ka->value, kb->value) == 0)
				continue;
		}
		if (!ka->reloadable)
			restart++;
		if (cb != NULL)
			cb(arg, ka->section, ka->key, diff_shown(ka),
			   kb != NULL ? diff_shown(kb) : NULL, ka->reloadable);
	}
	for (size_t j = 0; j < b.n; j++) {
		if (b.keys[j].matched)
			continue;
		if (!b.keys[j].reloadable)
			restart++;
		if (cb != NULL)
			cb(arg, b.keys[j].section, b.keys[j].key, NULL, diff_shown(&b.keys[j]),
			   b.keys[j].reloadable);
	}
	flat_free(&a);
	flat_free(&b);
	return restart;
}

int config_keep_restart_keys(struct config *new_cfg, const struct config *old)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *kd = &config_keys[i];

		if (kd->sec != SEC_MAIN || kd->reloadable)
			continue;
		switch (kd->type) {
		case KT_FILE:
		case KT_STRING:
		case KT_HOSTPORT: {
			const char *s = *CFIELD(old, kd, char *);
			char *copy = NULL;

			if (s != NULL && (copy = strdup(s)) == NULL)
				return -1;
			replace_str(FIELD(new_cfg, kd, char *), copy);
			if (kd->type == KT_HOSTPORT)
				*FIELD2(new_cfg, kd, struct listen_addr) = *CFIELD2(old, kd, struct listen_addr);
			break;
		}
		case KT_LISTEN: {
			size_t n = *CFIELD2(old, kd, size_t);
			struct listen_addr *copy = calloc(n > 0 ? n : 1, sizeof(*copy));

			if (copy == NULL)
				return -1;
			if (n > 0)
				memcpy(copy, *CFIELD(old, kd, struct listen_addr *), n * sizeof(*copy));
			free(*FIELD(new_cfg, kd, struct listen_addr *));
			*FIELD(new_cfg, kd, struct listen_addr *) = copy;
			*FIELD2(new_cfg, kd, size_t) = n;
			break;
		}
		default:
			/* Scalars are copied by their size; no such key is
			 * non-reloadable today, keep the table honest. */
			return -1;
		}
	}
	return 0;
}
