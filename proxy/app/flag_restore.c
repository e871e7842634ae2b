/*
 * app/flag_restore.c — restoring the flags in force at stop (see
 * include/app/flag_restore.h). Owns the state record's path and its copy in
 * memory; one instance per process.
 */
#include "app/flag_restore.h"

#include "conf/config.h"
#include "core/log.h"
#include "session/flag_state.h"
#include "session/history_file.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define STATE_FILE "flag_state.json"

static struct flag_state state;
static char state_path[4096];   /* "" when there is no journal_dir */

static void save_state(void)
{
	char err[512];
	if (state_path[0] == '\0')
		return;
	if (flag_state_save(state_path, &state, err, sizeof(err)) < 0)
		log_error(0, "flag state not saved: %s", err);
}

/* The file's value of every flag, as flags_format() writes it. */
static void file_values(const struct config *cfg, char out[FLAGS__COUNT][FLAGS_VALUE_MAX])
{
	struct flags tmp = { .values = cfg->flags, .salt = cfg->salt ? cfg->salt : "" };
	for (int id = 0; id < FLAGS__COUNT; id++)
		if (flags_format(&tmp, id, out[id], FLAGS_VALUE_MAX) < 0)
			out[id][0] = '\0';
}

void flag_restore_note_file(const struct config *cfg)
{
	file_values(cfg, state.file);
	for (int id = 0; id < FLAGS__COUNT; id++)
		state.file_known[id] = true;
	save_state();
}

int64_t flag_restore_epoch(void)
{
	return state.fleet_epoch;
}

void flag_restore_note_epoch(int64_t epoch)
{
	if (epoch == state.fleet_epoch)
		return;
	state.fleet_epoch = epoch;
	save_state();
}

/* The last history entry of flag NAME, or NULL. */
static const struct flag_history_entry *last_entry(const struct history_file *h, const char *name)
{
	for (size_t i = h ? history_file_count(h) : 0; i > 0; i--) {
		const struct flag_history_entry *e = history_file_get(h, i - 1);
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

/* Appends "flag ID went from WAS to the file's value" to the history. */
static void record_file_wins(struct flags *f, int id, const char *was, const char *who,
			     flags_change_cb record, void *arg)
{
	struct flag_change c = { 0 };
	struct timeval tv;
	gettimeofday(&tv, NULL);
	c.at_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	snprintf(c.who, sizeof(c.who), "%s", who);
	snprintf(c.surface, sizeof(c.surface), "startup");
	c.name = flags_name(id);
	snprintf(c.old_value, sizeof(c.old_value), "%s", was);
	if (flags_format(f, id, c.new_value, sizeof(c.new_value)) < 0)
		return;
	f->changed_at_ms[id] = c.at_ms;
	snprintf(f->changed_by[id], sizeof(f->changed_by[id]), "%s", who);
	if (record)
		record(arg, &c);
}

/* Puts flag ID back to history entry E's value; false when that value is
 * no longer valid (the file's stays). */
static bool restore_one(struct flags *f, int id, const struct flag_history_entry *e)
{
	char err[512];
	int64_t at;
	if (flags_set(f, flags_name(id), e->new_value, e->who, e->surface, true, NULL, err,
		      sizeof(err)) < 0) {
		log_warning(0, "flag %s: the history's last value cannot be restored (%s); "
			    "the file's value stays", flags_name(id), err);
		return false;
	}
	if (flags_parse_time(e->time, &at) == 0)
		f->changed_at_ms[id] = at;
	snprintf(f->changed_by[id], sizeof(f->changed_by[id]), "%s", e->who);
	return true;
}

void flag_restore_start(struct flags *f, const struct history_file *h,
			const struct config *cfg, const char *dir, bool reset,
			flags_change_cb record, void *arg)
{
	char file[FLAGS__COUNT][FLAGS_VALUE_MAX], err[512];
	int loaded = 0;

	memset(&state, 0, sizeof(state));
	state_path[0] = '\0';
	if (dir != NULL) {
		snprintf(state_path, sizeof(state_path), "%s/%s", dir, STATE_FILE);
		loaded = flag_state_load(state_path, &state, err, sizeof(err));
		if (loaded < 0)
			log_warning(0, "%s; flags set at runtime win over the file's", err);
	}
	file_values(cfg, file);
	bool fleet = config_fleet_on(cfg);
	for (int id = 0; id < FLAGS__COUNT; id++) {
		const char *name = flags_name(id);
		const struct flag_history_entry *e = last_entry(h, name);
		if (e == NULL) {
			log_info(0, "flag %s = %s (from the config file: no change in the history)",
				 name, file[id]);
			continue;
		}
		bool same = strcmp(e->new_value, file[id]) == 0;
		if (reset) {
			log_info(0, "flag %s = %s (from the config file: --reset-flags; the history "
				 "says %s)", name, file[id], e->new_value);
			if (!same)
				record_file_wins(f, id, e->new_value, "--reset-flags", record, arg);
		} else if (fleet && state.file_known[id] && strcmp(state.file[id], file[id]) != 0) {
			log_info(0, "flag %s = %s (restored from the flag history: with [fleet] the "
				 "config file's value, changed to %s, only seeds an empty flag store)",
				 name, e->new_value, file[id]);
			restore_one(f, id, e);
		} else if (state.file_known[id] && strcmp(state.file[id], file[id]) != 0) {
			log_info(0, "flag %s = %s (from the config file: changed there from %s since "
				 "the last start; the history says %s)", name, file[id], state.file[id],
				 e->new_value);
			if (!same)
				record_file_wins(f, id, e->new_value, "config file", record, arg);
		} else if (same) {
			log_info(0, "flag %s = %s (the config file and the history agree)", name,
				 file[id]);
			restore_one(f, id, e);
		} else if (restore_one(f, id, e)) {
			log_info(0, "flag %s = %s (restored from the flag history: set by %s via %s "
				 "at %s; the config file says %s)", name, e->new_value, e->who,
				 e->surface, e->time, file[id]);
		}
	}
	if (dir != NULL)
		flag_restore_note_file(cfg);
}
