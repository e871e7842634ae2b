/*
 * main.c — command line, first configuration load, event loop, signals.
 *
 *   pgturnout [-c FILE] [--check] [--reset-flags] [--version] [--help] [-v|-q]
 *   pgturnout verify ...          (tools/verify.h)
 *   pgturnout repair|backfill ... (tools/repair.h)
 *
 * Exit codes: 0 clean exit, 1 bad configuration or arguments, 2 runtime
 * failure (e.g. cannot listen). Signals are libevent events, so their
 * handlers run in the loop like every other callback.
 */
#include "core/log.h"
#include "conf/config.h"
#include "app/mapping.h"
#include "app/process.h"
#include "session/runtime.h"
#include "tools/repair.h"
#include "tools/verify.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define DEFAULT_CONFIG "conf/pgturnout.ini"

static void usage(FILE *f)
{
	fprintf(f,
		"pgturnout %s — PostgreSQL proxy for zero-downtime schema migrations\n\n"
		"Usage: pgturnout [-c FILE] [--check] [--reset-flags] [--version] [--help] [-v|-q]\n"
		"       pgturnout verify [-c FILE] [--table T]... [--json] [--resume]  (see verify --help)\n"
		"       pgturnout repair [-c FILE] (--report FILE | --journal | --table T...) [--from old|new]\n"
		"                        [--dry-run]  (see repair --help)\n"
		"       pgturnout backfill [-c FILE] [--table T]... [--max-rate ROWS] [--resume]  (see backfill --help)\n\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"      --check        validate the configuration, print every error, exit 0/1\n"
		"      --reset-flags  start from the file's [flags], not the flags in force at the\n"
		"                     last stop (restored from the flag history otherwise)\n"
		"  -v, --verbose      log at debug level\n"
		"  -q, --quiet        log warnings and errors only\n"
		"  -V, --version      print the version and exit\n"
		"  -h, --help         print this help and exit\n\n"
		"Signals: SIGHUP reloads the configuration; SIGTERM stops accepting and lets\n"
		"open transactions finish (up to shutdown_timeout); SIGINT exits at once.\n",
		PGT_VERSION, DEFAULT_CONFIG);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	(void)process_reload("SIGHUP");
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	process_begin_shutdown();
}

static void on_sigint(evutil_socket_t sig, short what, void *arg)
{
	log_info(0, "SIGINT: exiting now");
	event_base_loopbreak(rt->base);
}

/* Many idle clients need many descriptors: take what the hard limit allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	const char *file = DEFAULT_CONFIG;
	bool check = false;
	bool reset_flags = false;
	int verbosity = 0;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "reset-flags", no_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return verify_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "repair") == 0)
		return repair_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "backfill") == 0)
		return backfill_main(argc - 1, argv + 1);
	int ch;
	while ((ch = getopt_long(argc, argv, "c:Vhvq", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case 'C': check = true; break;
		case 'R': reset_flags = true; break;
		case 'V': printf("pgturnout %s\n", PGT_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		case 'v': verbosity = 1; break;
		case 'q': verbosity = -1; break;
		default: usage(stderr); return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgturnout: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 1;
	}

	struct config_errors errs = { 0 };
	struct config *cfg = config_load(file, &errs);
	if (!cfg) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		config_errors_free(&errs);
		return 1;
	}
	config_errors_free(&errs);
	struct config_errors warns = { 0 };
	int mapped = mapping_check(cfg, &errs, &warns);
	for (size_t i = 0; i < warns.n; i++)
		fprintf(stderr, "warning: %s\n", warns.items[i]);
	config_errors_free(&warns);
	if (mapped < 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		config_errors_free(&errs);
		config_unref(cfg);
		return 1;
	}
	if (check) {
		printf("%s: configuration is valid\n", file);
		config_unref(cfg);
		return 0;
	}

	enum log_level level = (enum log_level)cfg->log_level;
	if (verbosity > 0)
		level = LOG_DEBUG;
	else if (verbosity < 0)
		level = LOG_WARNING;
	log_configure(level, cfg->log_format == LOG_FORMAT_JSON);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	char err[512];
	if (process_init(cfg, file, reset_flags, err, sizeof(err)) < 0) {
		log_error(0, "cannot start: %s", err);
		process_free();
		return 2;
	}
	if (process_listen(err, sizeof(err)) < 0) {
		log_error(0, "%s", err);
		process_free();
		return 2;
	}
	struct event *sighup = evsignal_new(rt->base, SIGHUP, on_sighup, NULL);
	struct event *sigterm = evsignal_new(rt->base, SIGTERM, on_sigterm, NULL);
	struct event *sigint = evsignal_new(rt->base, SIGINT, on_sigint, NULL);
	if (!sighup || !sigterm || !sigint || evsignal_add(sighup, NULL) < 0 ||
	    evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
		log_error(0, "cannot install signal handlers");
		process_free();
		return 2;
	}
	for (size_t i = 0; i < rt->cfg->n_listen; i++)
		log_info(0, "pgturnout %s listening on %s:%s", PGT_VERSION, rt->cfg->listen[i].host,
			 rt->cfg->listen[i].port);

	event_base_dispatch(rt->base);

	int code = rt->exit_code;
	log_info(0, "exiting");
	event_free(sighup);
	event_free(sigterm);
	event_free(sigint);
	process_free();
	return code;
}
