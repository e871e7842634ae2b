/*
 * fuzz_config.c — the config loader on arbitrary text: every input either
 * loads (then SHOW CONFIG and a self reload-diff must work and report no
 * change) or fails with at least one message; never a crash, a leak or
 * undefined behaviour. Inputs naming an auth_file are read from disk like
 * any config; run the fuzzer in a scratch directory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_cb(void *arg, const char *section, const char *key, const char *value,
		     const char *default_value, bool reloadable, const char *doc)
{
	size_t *n = arg;

	if (section == NULL || key == NULL || value == NULL || default_value == NULL || doc == NULL)
		abort();
	(*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors errs = { 0 };
	struct config *cfg;
	char *text;

	if (size > 64 * 1024)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cfg = config_load_string(text, "fuzz.ini", &errs);
	if (cfg != NULL) {
		size_t n = 0;

		if (errs.n != 0 || cfg->n_paths == 0 || cfg->old_path < 0 || cfg->new_path < 0)
			abort();
		config_foreach(cfg, count_cb, &n);
		if (n == 0 || config_reload_diff(cfg, cfg, NULL, NULL) != 0)
			abort();
		config_unref(cfg);
	} else if (errs.n == 0) {
		abort();        /* a refused file always says why */
	}
	config_errors_free(&errs);
	free(text);
	return 0;
}
