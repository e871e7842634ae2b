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

/*
 * The answer of a flag change: RC 0 changed, 1 already had that value, -1
 * refused (bad value, guard rail, the fleet's store refused: ERR says why),
 * CONTROL_UNAVAILABLE the fleet's flag store cannot be reached (ERR says
 * so; nothing changed here).
 */
enum { CONTROL_UNAVAILABLE = -2 };
/* With WAIT: the change is in force, but not every live instance of the
 * fleet reported it in time (ERR names them). */
enum { CONTROL_NOT_ACKNOWLEDGED = -3 };
typedef void (*control_done_cb)(void *arg, int rc, const char *err);

struct control_ops {
	int (*reload)(const char *who);         /* 0 in force, -1 refused (logged) */
	int (*set_flag)(const char *name, const char *value, const char *who,
			const char *surface, bool force, char *err, size_t errlen);
	/* The same, answering through DONE: at once without a fleet, when the
	 * flag store answered with one; with WAIT, when every live instance of
	 * the fleet reported the change too. */
	void (*set_flag_async)(const char *name, const char *value, const char *who,
			       const char *surface, bool force, bool wait, control_done_cb done,
			       void *arg);
	void (*begin_shutdown)(void);
};

/* Sets the operations (borrowed: they must outlive every call). */
void control_set_ops(const struct control_ops *ops);

/* The operations, as the process set them; without them, reload and
 * set_flag fail (-1, with a message) and shutdown does nothing. */
int control_reload(const char *who);
int control_set_flag(const char *name, const char *value, const char *who,
		     const char *surface, bool force, char *err, size_t errlen);
/* The way the console and HTTP change a flag: DONE(ARG, rc, err) is called
 * once, before this returns or later (the fleet's store answers); without a
 * set_flag_async op, set_flag's answer is given at once. */
void control_set_flag_async(const char *name, const char *value, const char *who,
			    const char *surface, bool force, bool wait, control_done_cb done,
			    void *arg);
void control_begin_shutdown(void);

/*
 * For callers of control_set_flag_async() that run a sequence of commands:
 * set in_call around the call; the answer callback hands its arguments to
 * control_answer_note(), which returns true when the answer came inline
 * (before the call returned: the caller goes on after the call) and false
 * when it came later (the callback goes on).
 */
struct control_answer {
	bool in_call;
	bool answered;          /* the answer came while in_call */
	int rc;
	char err[512];
};
bool control_answer_note(struct control_answer *a, int rc, const char *err);

#endif
