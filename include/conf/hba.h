/*
 * conf/hba.h — auth_hba_file: which authentication a client gets, by
 * connection type, database, user and address, in pg_hba.conf's format
 * (auth_type = hba).
 *
 * One rule a line: TYPE DATABASE USER [ADDRESS] METHOD, '#' starts a
 * comment. TYPE is local (unix socket), host, hostssl or hostnossl;
 * DATABASE and USER are all or comma-separated names (DATABASE also
 * sameuser); ADDRESS (not for local) is all or an address with a /prefix
 * length (IPv4 or IPv6); METHOD is trust, reject, md5, scram-sha-256 or
 * cert. The first rule that matches decides; none matching refuses.
 */
#ifndef PGT_CONF_HBA_H
#define PGT_CONF_HBA_H

#include <stdbool.h>

struct config_errors;
struct hba;

#define HBA_REJECT (-1)         /* a reject rule matched */
#define HBA_NO_RULE (-2)        /* no rule matched */

/* Loads FILE; NULL with "file:line: message" errors in ERRS. */
struct hba *hba_load(const char *file, struct config_errors *errs);
void hba_free(struct hba *h);   /* NULL does nothing */
/* Whether some rule of H asks for a password (md5, scram-sha-256). */
bool hba_needs_passwords(const struct hba *h);
/*
 * The method (an enum auth_type) of the first rule of H matching a client
 * at ADDR (text, "unix" for the unix socket), over TLS or not, for DB and
 * USER; HBA_REJECT or HBA_NO_RULE otherwise. *LINE: the rule's line (0
 * when none).
 */
int hba_match(const struct hba *h, const char *addr, bool tls, const char *db, const char *user,
	      int *line);

#endif
