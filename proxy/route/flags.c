/*
 * route/flags.c — the runtime flags of one migration (see include/route/flags.h).
 *
 * Invariants: values always hold allowed values (every change is parsed
 * first and applied only when valid and allowed by the guard rails);
 * generation grows by exactly one per applied change; salt is never NULL.
 * Value parsing is shared with the config file (conf/config.h parsers), so a
 * value accepted in [flags] is accepted by SET and PUT /flags, and the other
 * way round.
 */
#include "route/flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const flag_names[FLAGS__COUNT] = {
	[FLAG_CANARY_PERCENT] = "canary_percent",
	[FLAG_DUAL_WRITE] = "dual_write",
	[FLAG_SHADOW_FAILURE] = "shadow_failure",
	[FLAG_FORCE_PATH] = "force_path",
	[FLAG_SHADOW_READS] = "shadow_reads",
	[FLAGS_SALT] = "salt",
};

static int64_t
flags_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
flags_copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

struct flags *
flags_new(const struct flags_config *initial, const char *salt, int64_t now_ms)
{
	struct flags *f;

	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->values = *initial;
	f->salt = strdup(salt != NULL ? salt : "");
	if (f->salt == NULL) {
		free(f);
		return NULL;
	}
	f->generation = 1;
	for (int i = 0; i < FLAGS__COUNT; i++) {
		f->changed_at_ms[i] = now_ms;
		flags_copy_str(f->changed_by[i], sizeof(f->changed_by[i]), "startup");
	}
	return f;
}

void
flags_free(struct flags *f)
{
	if (f == NULL)
		return;
	free(f->salt);
	free(f);
}

int
flags_lookup(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < FLAGS__COUNT; i++) {
		if (strcasecmp(name, flag_names[i]) == 0)
			return i;
	}
	return -1;
}

const char *
flags_name(int id)
{
	if (id < 0 || id >= FLAGS__COUNT)
		return NULL;
	return flag_names[id];
}

void
flags_format_percent(int32_t milli, char *buf, size_t len)
{
	char tmp[32];
	size_t n;

	if (milli < 0)
		milli = 0;
	snprintf(tmp, sizeof(tmp), "%d.%03d", (int)(milli / 1000), (int)(milli % 1000));
	/* "12.500" -> "12.5", "5.000" -> "5" */
	n = strlen(tmp);
	while (n > 0 && tmp[n - 1] == '0')
		tmp[--n] = '\0';
	if (n > 0 && tmp[n - 1] == '.')
		tmp[--n] = '\0';
	snprintf(buf, len, "%s", tmp);
}

void
flags_format_time(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	struct tm tm;

	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	if (gmtime_r(&secs, &tm) == NULL) {
		snprintf(buf, len, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

int
flags_parse_time(const char *s, int64_t *ms)
{
	struct tm tm;
	int frac = 0, n = 0;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac, &n) != 7 || s[n] != '\0')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (int64_t)timegm(&tm) * 1000 + frac;
	return 0;
}

static const char *
flags_force_path_str(enum force_path p)
{
	switch (p) {
	case FORCE_PATH_OLD:
		return "old";
	case FORCE_PATH_NEW:
		return "new";
	case FORCE_PATH_NONE:
		break;
	}
	return "none";
}

/* Formats the value of flag ID taken from V and SALT. */
static int
flags_format_values(const struct flags_config *v, const char *salt, int id,
		    char *buf, size_t len)
{
	int n;

	switch (id) {
	case FLAG_CANARY_PERCENT:
		flags_format_percent(v->canary_milli, buf, len);
		return 0;
	case FLAG_DUAL_WRITE:
		n = snprintf(buf, len, "%s", v->dual_write ? "on" : "off");
		break;
	case FLAG_SHADOW_FAILURE:
		n = snprintf(buf, len, "%s",
			     v->shadow_failure == SHADOW_FAILURE_FAIL ? "fail" : "journal");
		break;
	case FLAG_FORCE_PATH:
		n = snprintf(buf, len, "%s", flags_force_path_str(v->force_path));
		break;
	case FLAG_SHADOW_READS:
		flags_format_percent(v->shadow_reads_milli, buf, len);
		return 0;
	case FLAGS_SALT:
		n = snprintf(buf, len, "%s", salt != NULL ? salt : "");
		break;
	default:
		if (len > 0)
			buf[0] = '\0';
		return -1;
	}
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

int
flags_format(const struct flags *f, int id, char *buf, size_t len)
{
	return flags_format_values(&f->values, f->salt, id, buf, len);
}

static bool
flags_values_equal(const struct flags_config *a, const struct flags_config *b)
{
	return a->canary_milli == b->canary_milli && a->dual_write == b->dual_write
	       && a->shadow_failure == b->shadow_failure && a->force_path == b->force_path
	       && a->shadow_reads_milli == b->shadow_reads_milli;
}

/*
 * Whether turning dual_write on again leaves the new side without writes
 * (it was off after having been on, or the journal holds unrepaired losses,
 * and no complete verify has passed since); if so, the explanation between
 * PREFIX and SUFFIX in err.
 */
bool
flags_behind_message(const struct flags_guard *g, const char *prefix, const char *suffix,
		     char *err, size_t errlen)
{
	char off[64] = "", lost[64] = "";

	if (g->verified_since || (g->dual_write_off_ms <= 0 && g->journal_unrepaired == 0))
		return false;
	if (g->dual_write_off_ms > 0) {
		time_t sec = (time_t)(g->dual_write_off_ms / 1000);
		struct tm tm;
		gmtime_r(&sec, &tm);
		strftime(off, sizeof(off), "dual_write was off since %Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (g->journal_unrepaired > 0)
		snprintf(lost, sizeof(lost), "%llu journal entries are unrepaired",
			 (unsigned long long)g->journal_unrepaired);
	snprintf(err, errlen,
		 "%sthe new side missed writes (%s%s%s) and no complete verify has passed since: "
		 "copy them with pgturnout backfill or pgturnout repair (--table, --journal), then "
		 "check with pgturnout verify%s", prefix, off, off[0] && lost[0] ? "; " : "", lost,
		 suffix);
	return true;
}

/*
 * The guard rails of SPEC §8. NEXT holds the values after the change of
 * flag ID. Returns 0 when the change is allowed, -1 with the rule in err.
 */
static int
flags_check_guard(const struct flags *f, int id, const struct flags_config *next,
		  const struct flags_guard *g, char *err, size_t errlen)
{
	char cur[32], nxt[32];

	switch (id) {
	case FLAGS_SALT:
		if (f->values.canary_milli > 0) {
			flags_format_percent(f->values.canary_milli, cur, sizeof(cur));
			snprintf(err, errlen,
				 "refused: salt is frozen while canary_percent > 0 (it is %s): "
				 "a new salt would move sessions in and out of the canary; "
				 "set canary_percent = 0 first, or append FORCE", cur);
			return -1;
		}
		return 0;
	case FLAG_CANARY_PERCENT:
		if (next->canary_milli < f->values.canary_milli && g->unmirrored_new_writes > 0) {
			flags_format_percent(f->values.canary_milli, cur, sizeof(cur));
			flags_format_percent(next->canary_milli, nxt, sizeof(nxt));
			snprintf(err, errlen,
				 "refused: lowering canary_percent from %s to %s would move "
				 "sessions back to old while %llu writes made on new while "
				 "dual_write was off have no copy on old; append FORCE to "
				 "lower it anyway", cur, nxt,
				 (unsigned long long)g->unmirrored_new_writes);
			return -1;
		}
		return 0;
	case FLAG_DUAL_WRITE:
		if (!f->values.dual_write && next->dual_write)
			return flags_behind_message(g, "refused: ", "; append FORCE to turn it on anyway",
						    err, errlen) ? -1 : 0;
		if (!f->values.dual_write || next->dual_write)
			return 0;
		if (g->unmirrored_new_writes > 0) {
			snprintf(err, errlen,
				 "refused: turning dual_write off while %llu writes on new "
				 "have no copy on old; append FORCE to turn it off anyway",
				 (unsigned long long)g->unmirrored_new_writes);
			return -1;
		}
		if (g->sessions_on_new > 0 || f->values.canary_milli > 0
		    || f->values.force_path == FORCE_PATH_NEW) {
			flags_format_percent(f->values.canary_milli, cur, sizeof(cur));
			snprintf(err, errlen,
				 "refused: turning dual_write off while sessions may write to "
				 "new (%llu sessions on new, canary_percent = %s, force_path = %s): "
				 "their writes would have no copy on old; move every session "
				 "to old first, or append FORCE to turn it off anyway",
				 (unsigned long long)g->sessions_on_new, cur,
				 flags_force_path_str(f->values.force_path));
			return -1;
		}
		return 0;
	default:
		return 0;
	}
}

int
flags_set(struct flags *f, const char *name, const char *value, const char *who,
	  const char *surface, bool force, const struct flags_guard *guard,
	  char *err, size_t errlen)
{
	static const struct flags_guard no_guard;
	struct flags_config next = f->values;
	char perr[256];
	int id;
	int rc = 0;

	id = flags_lookup(name);
	if (id < 0) {
		snprintf(err, errlen,
			 "unknown flag '%s': allowed flags are canary_percent, dual_write, "
			 "shadow_failure, force_path, shadow_reads, salt", name != NULL ? name : "");
		return -1;
	}
	if (value == NULL)
		value = "";
	if (guard == NULL)
		guard = &no_guard;

	perr[0] = '\0';
	switch (id) {
	case FLAG_CANARY_PERCENT:
		rc = config_parse_percent_milli(value, &next.canary_milli, perr, sizeof(perr));
		break;
	case FLAG_DUAL_WRITE:
		rc = config_parse_bool(value, &next.dual_write, perr, sizeof(perr));
		break;
	case FLAG_SHADOW_FAILURE:
		rc = config_parse_shadow_failure(value, &next.shadow_failure, perr, sizeof(perr));
		break;
	case FLAG_FORCE_PATH:
		rc = config_parse_force_path(value, &next.force_path, perr, sizeof(perr));
		break;
	case FLAG_SHADOW_READS:
		rc = config_parse_percent_milli(value, &next.shadow_reads_milli, perr, sizeof(perr));
		break;
	case FLAGS_SALT:
		if (value[0] == '\0' || strlen(value) >= FLAGS_VALUE_MAX) {
			snprintf(perr, sizeof(perr),
				 "a non-empty string of at most %d bytes", FLAGS_VALUE_MAX - 1);
			rc = -1;
		}
		break;
	}
	if (rc != 0) {
		snprintf(err, errlen, "invalid value '%s' for %s: %s", value, flag_names[id],
			 perr[0] != '\0' ? perr : "not an allowed value");
		return -1;
	}

	if (id == FLAGS_SALT ? strcmp(value, f->salt) == 0
			     : flags_values_equal(&next, &f->values))
		return 1;

	if (!force && flags_check_guard(f, id, &next, guard, err, errlen) != 0)
		return -1;

	/* Record the change before applying it: the old value is still there. */
	struct flag_change *c = &f->last_change;
	c->at_ms = flags_now_ms();
	flags_copy_str(c->who, sizeof(c->who), who);
	flags_copy_str(c->surface, sizeof(c->surface), surface);
	c->name = flag_names[id];
	flags_format(f, id, c->old_value, sizeof(c->old_value));
	if (id == FLAGS_SALT) {
		char *s = strdup(value);

		if (s == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(f->salt);
		f->salt = s;
	} else {
		f->values = next;
	}
	flags_format(f, id, c->new_value, sizeof(c->new_value));
	f->changed_at_ms[id] = c->at_ms;
	flags_copy_str(f->changed_by[id], sizeof(f->changed_by[id]), who);
	f->generation++;
	return 0;
}

int
flags_apply_reload(struct flags *f, const struct flags_config *old_flags,
		   const char *old_salt, const struct flags_config *new_flags,
		   const char *new_salt, const struct flags_guard *guard,
		   flags_change_cb on_change, void *arg, char *err, size_t errlen)
{
	static const int order[] = {
		FLAG_CANARY_PERCENT, FLAG_DUAL_WRITE, FLAG_SHADOW_FAILURE,
		FLAG_FORCE_PATH, FLAG_SHADOW_READS, FLAGS_SALT,
	};
	struct flag_change applied[FLAGS__COUNT];
	struct flags saved = *f;
	int n = 0;

	saved.salt = strdup(f->salt);
	if (saved.salt == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		char was[FLAGS_VALUE_MAX], now[FLAGS_VALUE_MAX];
		char why[512];
		int id = order[i];
		int rc;

		if (flags_format_values(old_flags, old_salt, id, was, sizeof(was)) != 0
		    || flags_format_values(new_flags, new_salt, id, now, sizeof(now)) != 0) {
			snprintf(err, errlen, "reload: value of %s too long", flag_names[id]);
			goto fail;
		}
		if (strcmp(was, now) == 0)
			continue;       /* the file did not change it: runtime value stays */
		rc = flags_set(f, flag_names[id], now, "reload", "reload", false, guard,
			       why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "reload: %s = %s: %s", flag_names[id], now, why);
			goto fail;
		}
		if (rc == 0)
			applied[n++] = f->last_change;
	}
	free(saved.salt);
	for (int i = 0; i < n; i++) {
		if (on_change != NULL)
			on_change(arg, &applied[i]);
	}
	return n;

fail:
	free(f->salt);
	*f = saved;
	return -1;
}
