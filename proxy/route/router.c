/*
 * route/router.c — which path a session runs on (see include/route/router.h).
 *
 * The "options" startup parameter is read the way PostgreSQL reads it
 * (pg_split_opts() then its getopt loop): words split on whitespace with
 * backslash escaping the next character, then short switches, some of which
 * take an argument either glued ("-cname=value") or as the next word
 * ("-c name=value"), and "--name=value". Only -c and -- settings matter
 * here; the whole string is forwarded to the server untouched.
 */
#include "route/router.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

int
router_session_path(const struct flags_config *flags, int old_path, int new_path,
		    int tag_path, uint32_t bucket, enum router_reason *why)
{
	enum router_reason r;
	int path;

	if (flags->force_path != FORCE_PATH_NONE) {
		r = ROUTER_FORCED;
		path = flags->force_path == FORCE_PATH_NEW ? new_path : old_path;
	} else if (tag_path >= 0) {
		r = ROUTER_TAG;
		path = tag_path;
	} else if (flags->canary_milli > 0 && bucket < (uint32_t)flags->canary_milli) {
		r = ROUTER_CANARY;
		path = new_path;
	} else {
		r = ROUTER_DEFAULT;
		path = old_path;
	}
	if (why != NULL)
		*why = r;
	return path;
}

const char *
router_reason_name(enum router_reason why)
{
	switch (why) {
	case ROUTER_FORCED:
		return "forced";
	case ROUTER_TAG:
		return "tag";
	case ROUTER_CANARY:
		return "canary";
	case ROUTER_DEFAULT:
		break;
	}
	return "default";
}

/* Value of startup parameter NAME (case-insensitive; last one wins), or NULL. */
static const char *
router_param(const struct startup_param *params, size_t n, const char *name)
{
	const char *v = NULL;

	for (size_t i = 0; i < n; i++) {
		if (params[i].name != NULL && strcasecmp(params[i].name, name) == 0)
			v = params[i].value;
	}
	return v;
}

const char *
router_canary_key(enum canary_key kind, const char *param_name,
		  const struct startup_param *params, size_t n_params,
		  const char *client_addr, uint64_t conn_id,
		  char *buf, size_t buflen, size_t *key_len)
{
	const char *v = NULL;

	switch (kind) {
	case CANARY_KEY_CONNECTION:
		if (buflen < 8)
			break;
		for (int i = 0; i < 8; i++)
			buf[i] = (char)(conn_id >> (56 - 8 * i));
		*key_len = 8;
		return buf;
	case CANARY_KEY_USER:
		v = router_param(params, n_params, "user");
		break;
	case CANARY_KEY_DATABASE:
		v = router_param(params, n_params, "database");
		if (v == NULL || v[0] == '\0')
			v = router_param(params, n_params, "user");
		break;
	case CANARY_KEY_APPLICATION_NAME:
		v = router_param(params, n_params, "application_name");
		break;
	case CANARY_KEY_CLIENT_ADDR:
		v = client_addr;
		break;
	case CANARY_KEY_PARAM:
		if (param_name != NULL)
			v = router_param(params, n_params, param_name);
		break;
	}
	if (v == NULL)
		v = "";
	*key_len = strlen(v);
	return v;
}

/* Names compare case-insensitively, with '-' equal to '_' (ParseLongOption). */
static bool
router_guc_name_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		char x = a[i] == '-' ? '_' : (char)tolower((unsigned char)a[i]);
		char y = b[i] == '-' ? '_' : (char)tolower((unsigned char)b[i]);

		if (x != y)
			return false;
	}
	return true;
}

#define ROUTER_WORD_MAX 1024

struct router_word {
	char text[ROUTER_WORD_MAX];
	size_t len;
	bool truncated;         /* longer than text: the tail was dropped */
};

/* Next whitespace-separated word of *pp, backslash escapes undone. */
static bool
router_next_word(const char **pp, struct router_word *w)
{
	const char *p = *pp;

	while (*p != '\0' && isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		*pp = p;
		return false;
	}
	w->len = 0;
	w->truncated = false;
	while (*p != '\0' && !isspace((unsigned char)*p)) {
		char c = *p++;

		if (c == '\\') {
			if (*p == '\0')
				break;  /* a trailing backslash escapes nothing */
			c = *p++;
		}
		if (w->len + 1 < sizeof(w->text))
			w->text[w->len++] = c;
		else
			w->truncated = true;
	}
	w->text[w->len] = '\0';
	*pp = p;
	return true;
}

/* Switches of PostgreSQL's backend that take an argument. */
static bool
router_switch_takes_arg(char c)
{
	return c != '\0' && strchr("BcCDdfhkNprStvW-", c) != NULL;
}

/*
 * Looks at one "name=value" setting; when NAME is TAG_PARAM, copies the value
 * to buf and records the outcome in *found / *too_long.
 */
static void
router_setting(const char *s, size_t len, bool truncated, const char *tag_param,
	       char *buf, size_t buflen, bool *found, bool *too_long)
{
	const char *eq = memchr(s, '=', len);
	size_t vlen;

	if (eq == NULL)
		return;         /* "-c name" without a value: the server says so */
	if (!router_guc_name_eq(s, (size_t)(eq - s), tag_param))
		return;
	vlen = len - (size_t)(eq + 1 - s);
	*found = true;
	if (truncated || buflen == 0 || vlen + 1 > buflen) {
		*too_long = true;
		return;
	}
	*too_long = false;
	memcpy(buf, eq + 1, vlen);
	buf[vlen] = '\0';
}

int
router_startup_tag(const char *tag_param, const struct startup_param *params,
		   size_t n_params, char *buf, size_t buflen, const char **tag)
{
	struct router_word w;
	const char *direct = NULL, *options = NULL, *p;
	bool found = false, too_long = false;

	*tag = NULL;
	if (tag_param == NULL || tag_param[0] == '\0')
		return 0;
	for (size_t i = 0; i < n_params; i++) {
		if (params[i].name == NULL)
			continue;
		if (router_guc_name_eq(params[i].name, strlen(params[i].name), tag_param))
			direct = params[i].value;
		else if (strcmp(params[i].name, "options") == 0)
			options = params[i].value;
	}
	if (direct != NULL) {
		*tag = direct[0] != '\0' ? direct : NULL;
		return 0;
	}
	if (options == NULL)
		return 0;

	p = options;
	while (router_next_word(&p, &w)) {
		size_t i = 1;

		if (w.len < 2 || w.text[0] != '-')
			continue;       /* not a switch: ignored */
		if (w.len == 2 && w.text[1] == '-')
			break;          /* "--" ends the switches, as in getopt */
		/* a word may bundle switches, as getopt allows ("-Fc name=value") */
		while (i < w.len) {
			char c = w.text[i++];

			if (!router_switch_takes_arg(c))
				continue;
			if (i < w.len) {
				/* glued argument: "-cname=value", "--name=value" */
				if (c == 'c' || c == '-')
					router_setting(w.text + i, w.len - i, w.truncated,
						       tag_param, buf, buflen, &found, &too_long);
			} else {
				/* argument is the next word: "-c name=value" */
				struct router_word arg;

				if (!router_next_word(&p, &arg))
					break;
				if (c == 'c' || c == '-')
					router_setting(arg.text, arg.len, arg.truncated,
						       tag_param, buf, buflen, &found, &too_long);
			}
			break;
		}
	}
	if (!found)
		return 0;
	if (too_long)
		return -1;
	*tag = buf[0] != '\0' ? buf : NULL;
	return 0;
}
