/*
 * route/router.h — which path a session runs on (SPEC §5).
 *
 *   if force_path != none:                 path = force_path
 *   elif session has a mapped version tag: path = versions[tag]
 *   elif bucket(salt, key) < canary_milli: path = new
 *   else:                                  path = old
 *
 * Also: the canary key a session is bucketed by, and the version tag it
 * announces in its startup parameters. Pure functions over plain values: no
 * I/O, no allocation, nothing kept.
 */
#ifndef PGT_ROUTE_ROUTER_H
#define PGT_ROUTE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "wire/startup.h"

/* struct startup_param (name/value of one startup parameter) is wire/startup.h's. */

/* Why the router chose the path it did (SHOW CLIENTS, logs). */
enum router_reason {
	ROUTER_FORCED,          /* force_path */
	ROUTER_TAG,             /* the session's version tag */
	ROUTER_CANARY,          /* untagged, bucket inside the canary */
	ROUTER_DEFAULT          /* untagged, outside the canary */
};

/*
 * The session path: an index into config.paths (OLD_PATH or NEW_PATH, or
 * TAG_PATH when the tag decides). FLAGS are the current runtime flags,
 * TAG_PATH the path the session's version tag maps to (-1 when untagged),
 * BUCKET the session's bucket. WHY, when not NULL, receives the reason.
 */
int router_session_path(const struct flags_config *flags, int old_path, int new_path,
			int tag_path, uint32_t bucket, enum router_reason *why);

/* "forced", "tag", "canary" or "default". */
const char *router_reason_name(enum router_reason why);

/*
 * The bytes a session is bucketed by, for canary_key KIND:
 *   connection        CONN_ID as 8 big-endian bytes (written to buf)
 *   user, database,   the startup parameter's value; database defaults to
 *   application_name  the user, as in PostgreSQL
 *   client_addr       CLIENT_ADDR (address only, without port)
 *   param:NAME        startup parameter PARAM_NAME (case-insensitive)
 * A value the client did not send is the empty key: all such sessions move
 * together. Returns the key (borrowed from PARAMS, CLIENT_ADDR or BUF, which
 * must hold 8 bytes) and its length in *key_len.
 */
const char *router_canary_key(enum canary_key kind, const char *param_name,
			      const struct startup_param *params, size_t n_params,
			      const char *client_addr, uint64_t conn_id,
			      char *buf, size_t buflen, size_t *key_len);

/*
 * The version tag a client gave in its startup parameters: parameter
 * TAG_PARAM given directly, or set in "options" as "-c NAME=VALUE",
 * "-cNAME=VALUE" or "--NAME=VALUE" (words split on whitespace, backslash
 * escapes the next character, as in PostgreSQL; '-' in names counts as '_';
 * names compare case-insensitively). A direct parameter wins over options,
 * and a later setting over an earlier one, as in PostgreSQL. Malformed
 * option words are ignored here (the server reports them). An empty value
 * counts as no tag.
 *
 * Returns 0 and sets *tag to the tag (borrowed from PARAMS or copied into
 * buf) or to NULL when there is none; returns -1 when the tag does not fit
 * in buf (buflen - 1 bytes).
 */
int router_startup_tag(const char *tag_param, const struct startup_param *params,
		       size_t n_params, char *buf, size_t buflen, const char **tag)
	__attribute__((warn_unused_result));

#endif
