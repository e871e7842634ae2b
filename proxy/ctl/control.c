/*
 * ctl/control.c — the hooks of ctl/control.h. One pointer, set at start.
 */
#include "ctl/control.h"

#include <stdio.h>

static const struct control_ops *control_ops;  /* borrows */

void control_set_ops(const struct control_ops *ops)
{
	control_ops = ops;
}

int control_reload(const char *who)
{
	return control_ops && control_ops->reload ? control_ops->reload(who) : -1;
}

int control_set_flag(const char *name, const char *value, const char *who,
		     const char *surface, bool force, char *err, size_t errlen)
{
	if (!control_ops || !control_ops->set_flag) {
		snprintf(err, errlen, "flags cannot be changed: no process control");
		return -1;
	}
	return control_ops->set_flag(name, value, who, surface, force, err, errlen);
}

void control_set_flag_async(const char *name, const char *value, const char *who,
			    const char *surface, bool force, bool wait, control_done_cb done,
			    void *arg)
{
	char err[512] = "";
	if (control_ops && control_ops->set_flag_async) {
		control_ops->set_flag_async(name, value, who, surface, force, wait, done, arg);
		return;
	}
	int rc = control_set_flag(name, value, who, surface, force, err, sizeof(err));
	done(arg, rc, err);
}

void control_begin_shutdown(void)
{
	if (control_ops && control_ops->begin_shutdown)
		control_ops->begin_shutdown();
}

bool control_answer_note(struct control_answer *a, int rc, const char *err)
{
	a->rc = rc;
	snprintf(a->err, sizeof(a->err), "%s", err ? err : "");
	if (a->in_call)
		a->answered = true;
	return a->in_call;
}
