/*
 * app/process.h — process wiring: start, listen, reload, flag changes,
 * shutdown. Called by main.c; the control plane reaches reload, flag changes
 * and shutdown through ctl/control.h's hooks, set by process_init().
 */
#ifndef PGT_APP_PROCESS_H
#define PGT_APP_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

struct config;

/* Creates the runtime (session/runtime.h's rt) around the first
 * configuration (takes its reference) and sets the hooks of the layers
 * below. The flags in force at the last stop are restored (app/flag_restore.h)
 * unless RESET_FLAGS: then the file's [flags] win. -1 with a message in ERR. */
int process_init(struct config *cfg, const char *config_file, bool reset_flags, char *err,
		 size_t errlen)
	__attribute__((warn_unused_result));
/* Frees everything process_init() and process_listen() made; no rt does nothing. */
void process_free(void);
/* Starts listening on cfg->listen (and http_listen), writes the pidfile. */
int process_listen(char *err, size_t errlen) __attribute__((warn_unused_result));
/* SIGHUP / RELOAD: parse, validate, swap. Returns 0 when the new file is in
 * force; -1 when it was refused (errors logged with file:line). */
int process_reload(const char *who);
/*
 * The one way a flag changes at runtime (admin console SET, HTTP PUT):
 * parses VALUE, applies the guard rails (FORCE overrides them), bumps the
 * flags generation, appends the change to the durable history and logs it.
 * Returns 0 when changed, 1 when the flag already had that value, -1 with a
 * message in err (nothing changed).
 */
int process_set_flag(const char *name, const char *value, const char *who,
		     const char *surface, bool force, char *err, size_t errlen);
/* SIGTERM: stop accepting, let transactions finish up to shutdown_timeout. */
void process_begin_shutdown(void);

#endif
