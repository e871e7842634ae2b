/*
 * tools/verify.h — `pgturnout verify`: prove that the old and the new path
 * hold the same rows, through the [rewrite] rename map (SPEC §11).
 *
 *   pgturnout verify [-c FILE] [--table T]... [--json] [--resume]
 *                    [--max-rate ROWS] [--report FILE]
 *                    [--chunk-rows N] [--recheck-delay MS]
 *
 * Exit codes: 0 the sides are equal, 1 differences found, 2 error (a path
 * unreachable, a pair that cannot be compared, bad arguments).
 */
#ifndef PGT_TOOLS_VERIFY_H
#define PGT_TOOLS_VERIFY_H

/* Runs the tool; ARGV[0] is "verify". Returns the process exit code. */
int verify_main(int argc, char **argv);

#endif
