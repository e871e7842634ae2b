/*
 * app/mapping.h — the [rewrite] rules held against both paths' catalogs.
 *
 * At --check, start and reload (blocking: never from an event-loop
 * callback): reads, on each path, every table a rule names; checks that each
 * up/down expression reads columns the other side has and defines a column
 * its own side has, and that no NOT NULL column without a default is left
 * with nothing to fill it from the other dialect (no counterpart, no
 * expression); then gives CFG a rule set that also knows each side's columns
 * (so that a read of a column the target side lacks is refused by name).
 */
#ifndef PGT_APP_MAPPING_H
#define PGT_APP_MAPPING_H

struct config;
struct config_errors;

/*
 * Errors go to ERRS and warnings (a catalog that cannot be read, a table
 * not found) to WARNS, each as "file:line: message". Returns 0, or -1 when
 * ERRS got an error (CFG's rules are then unchanged).
 */
int mapping_check(struct config *cfg, struct config_errors *errs, struct config_errors *warns);

#endif
