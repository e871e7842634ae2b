/*
 * session/console.h — an admin console session: simple queries answered by
 * rt->hooks.console_execute (ctl/admin.c), each followed by ReadyForQuery.
 */
#ifndef PGT_SESSION_CONSOLE_H
#define PGT_SESSION_CONSOLE_H

struct client;

/* Processes what an admin client has sent. */
void console_input(struct client *c);

#endif
