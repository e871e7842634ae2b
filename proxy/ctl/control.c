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

void control_begin_shutdown(void)
{
	if (control_ops && control_ops->begin_shutdown)
		control_ops->begin_shutdown();
}
