/*
 * tools/repair.h — `pgturnout repair` and `pgturnout backfill`: make one
 * path's rows equal to the other's through the [rewrite] rename map (SPEC
 * §11); see docs/repair.md.
 *
 *   pgturnout repair   [-c FILE] (--report FILE | --journal | --table T...)
 *                      [--from old|new] [--dry-run] [--json] [--chunk-rows N]
 *   pgturnout backfill [-c FILE] [--table T]... [--max-rate ROWS] [--resume]
 *                      [--chunk-rows N] [--json]
 *
 * Both copy rows chunk by chunk, each chunk in a transaction that reads the
 * source rows FOR SHARE (a concurrent dual write cannot be overtaken) and
 * writes the target. repair upserts rows that differ and deletes rows the
 * source lacks; backfill only inserts rows the target lacks (ON CONFLICT DO
 * NOTHING: a row a dual write made current is never overwritten), is
 * throttled and checkpointed, and finally sets the target's sequences past
 * the largest value their columns hold.
 *
 * Exit codes: 0 done and equal, 1 differences left (repair --dry-run found
 * some), 2 error.
 */
#ifndef PGT_TOOLS_REPAIR_H
#define PGT_TOOLS_REPAIR_H

/* Run the tools; ARGV[0] is "repair" or "backfill". Return the exit code. */
int repair_main(int argc, char **argv);
int backfill_main(int argc, char **argv);

#endif
