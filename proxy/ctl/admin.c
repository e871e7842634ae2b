/*
 * ctl/admin.c — the admin console: parses the commands of one simple Query
 * and answers each with a result set built from the runtime state.
 */
#include "ctl/admin.h"

#include "wire/build.h"

#include <string.h>

void admin_execute(const char *sql, size_t len, const char *who, struct wbuf *out)
{
	static const char *const cols[] = { "command", "description" };
	const char *row[2] = { "SHOW HELP", "this list" };

	(void)who;
	while (len > 0 && (sql[len - 1] == ';' || sql[len - 1] == ' ' || sql[len - 1] == '\n'))
		len--;
	if (len == 0) {
		build_empty_query(out);
		return;
	}
	if (len == 9 && strncasecmp(sql, "SHOW HELP", 9) == 0) {
		build_row_description(out, cols, 2);
		build_data_row(out, row, 2);
		build_command_complete(out, "SHOW");
		return;
	}
	build_error(out, 'E', "ERROR", "42601", "unknown admin command", NULL,
		    "SHOW HELP lists the commands");
}
