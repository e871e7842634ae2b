/*
 * ctl/control.h — what the control plane (admin console, HTTP) may ask of the
 * process: reload, change a flag, shut down. The operations live in
 * app/process.c, above ctl/; it hands them over once at start with
 * control_set_ops(), so that ctl/ includes nothing above itself.
 */
#ifndef PGT_CTL_CONTROL_H
#define PGT_CTL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct control_ops {
	int (*reload)(const char *who);         /* 0 in force, -1 refused (logged) */
	int (*set_flag)(const char *name, const char *value, const char *who,
			const char *surface, bool force, char *err, size_t errlen);
	void (*begin_shutdown)(void);
};

/* Sets the operations (borrowed: they must outlive every call). */
void control_set_ops(const struct control_ops *ops);

/* The operations, as the process set them; without them, reload and
 * set_flag fail (-1, with a message) and shutdown does nothing. */
int control_reload(const char *who);
int control_set_flag(const char *name, const char *value, const char *who,
		     const char *surface, bool force, char *err, size_t errlen);
void control_begin_shutdown(void);

#endif
