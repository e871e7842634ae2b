/*
 * io/catalog.h — what a path's catalog says about one table, read with
 * synchronous libpq.
 *
 * Used by the tools (verify; later repair and backfill) and meant for the
 * proxy's start-up too (dual writes need keys, volatile defaults, sequences
 * and triggers). Synchronous: never call it from an event-loop callback.
 *
 * Everything is read from pg_catalog, which every user may read; the only
 * extra privilege used is SELECT or USAGE on a sequence, for its position
 * (catalog_sequence_next). See docs/verify.md.
 */
#ifndef PGT_IO_CATALOG_H
#define PGT_IO_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct path_config;
struct userlist;

/* How much a column default may differ between two evaluations. */
enum catalog_volatility {
	CATALOG_IMMUTABLE = 0,	/* no default, or one of immutable functions only */
	CATALOG_STABLE = 1,	/* e.g. now(), CURRENT_TIMESTAMP: fixed within a statement */
	CATALOG_VOLATILE = 2,	/* e.g. nextval(), random(), gen_random_uuid(), identity */
};

enum catalog_key_kind {
	CATALOG_KEY_NONE = 0,
	CATALOG_KEY_PRIMARY,		/* PRIMARY KEY */
	CATALOG_KEY_REPLICA_IDENTITY,	/* REPLICA IDENTITY USING INDEX */
	CATALOG_KEY_UNIQUE,		/* a unique index over NOT NULL columns */
};

struct catalog_column {
	int attnum;
	char *name;			/* owns */
	char *type;			/* owns: format_type(), e.g. "character varying(20)" */
	bool not_null;
	bool collatable;		/* the type has a collation (text-like) */
	char *collation;		/* owns; the column's collation (e.g. "C", "default") or NULL */
	char *default_expr;		/* owns; NULL: no default (or a generation expression, see generated) */
	enum catalog_volatility default_volatility;
	char identity;			/* 0, 'a' (ALWAYS) or 'd' (BY DEFAULT) */
	char generated;			/* 0 or 's' (GENERATED ALWAYS AS (...) STORED) */
	char *sequence;			/* owns; the sequence owned by this column, qualified, or NULL */
};

struct catalog_trigger {
	char *name;			/* owns */
	char enabled;			/* pg_trigger.tgenabled: O, D, R, A */
	char *definition;		/* owns: pg_get_triggerdef() */
};

struct catalog_table {
	uint32_t oid;
	char *schema;			/* owns */
	char *name;			/* owns */
	char *sql;			/* owns: "schema"."name", quoted as needed */
	char relkind;			/* 'r' table, 'p' partitioned table, ... */
	double reltuples;		/* the planner's estimate; < 0 when never analysed */
	struct catalog_column *cols;	/* owns, n_cols, in attnum order */
	size_t n_cols;
	enum catalog_key_kind key_kind;
	int *key;			/* owns, n_key indexes into cols, in index order */
	size_t n_key;
	struct catalog_trigger *triggers; /* owns, n_triggers: user triggers, by name */
	size_t n_triggers;
};

/*
 * The libpq keywords and values (NULL-terminated) that reach path P: host,
 * port, dbname (P's, else DBNAME), user (USER when not NULL, else P's),
 * password (P's when the user is P's, else USERS' plain-text secret for the
 * user, else libpq's own sources), sslmode, sslrootcert, sslcert/sslkey,
 * APPNAME. Strings are borrowed from the arguments.
 */
struct path_conninfo {
	const char *keys[16];
	const char *vals[16];
	char port[16];
	char timeout[16];
};
void path_conninfo(struct path_conninfo *ci, const struct path_config *p,
		   const struct userlist *users, const char *user, const char *dbname,
		   const char *appname, int connect_timeout_s);

/*
 * Connects to path P with synchronous libpq: host, port, dbname, user,
 * password (P's, else USERS' plain-text secret for the user, else libpq's
 * own sources: PGPASSWORD, ~/.pgpass), sslmode, sslrootcert; a NULL dbname
 * or user falls back to libpq's defaults. Sets P's search_path for the
 * session. APPNAME is the application_name the server shows. Returns the
 * connection (caller owns: PQfinish), or NULL with a message in err.
 */
PGconn *catalog_connect(const struct path_config *p, const struct userlist *users,
			const char *appname, int connect_timeout_s, char *err, size_t errlen);
/* What the proxy's own catalog reads at start and reload wait to connect
 * (they run before it listens or in its loop; the tools wait 15 s). */
#define CATALOG_PROXY_CONNECT_TIMEOUT_S 3

/*
 * Pins the settings that change how values print as text, so that two
 * servers print equal values equally: DateStyle ISO, TimeZone UTC,
 * IntervalStyle postgres, extra_float_digits 3, bytea_output hex,
 * lc_monetary C, client_encoding UTF8, and no statement_timeout. 0 or -1
 * with err.
 */
int catalog_pin_text_output(PGconn *conn, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Reads table NAME (SQL syntax, resolved through the session's search_path
 * as PostgreSQL does: to_regclass). Returns a new table (caller owns:
 * catalog_table_free), or NULL: with err set to a message on failure, and
 * to "" when no such table is visible.
 */
struct catalog_table *catalog_read_table(PGconn *conn, const char *name,
					 char *err, size_t errlen);
void catalog_table_free(struct catalog_table *t);	/* NULL does nothing */

/* Index into t->cols of the column named NAME (as stored, unquoted), or -1. */
int catalog_column_index(const struct catalog_table *t, const char *name);

/*
 * The names of ordinary and partitioned tables visible through the
 * session's search_path, outside pg_catalog and information_schema, sorted:
 * *out (caller owns: catalog_names_free), *n. 0 or -1 with err.
 */
int catalog_visible_tables(PGconn *conn, char ***out, size_t *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void catalog_names_free(char **names, size_t n);

/*
 * The value sequence SEQ (qualified name) would hand out next, in *next
 * (false in *known when the server does not say: no privilege). 0 or -1
 * with err.
 */
int catalog_sequence_next(PGconn *conn, const char *seq, int64_t *next, bool *known,
			  char *err, size_t errlen) __attribute__((warn_unused_result));

/* "primary key", "replica identity", "unique not null", "none". */
const char *catalog_key_kind_name(enum catalog_key_kind k);

/*
 * The columns of every table of a path, in one query, for the proxy: dual
 * writes apply captured values to new only through the columns new has (a
 * column old has and new dropped is left out; a generated one too).
 */
struct catalog_shape {
	char *schema;                   /* owns */
	char *name;                     /* owns: the relation name as stored (not quoted) */
	bool visible;                   /* found through the session's search_path */
	char **cols;                    /* owns, n_cols: column names in attnum order */
	char *generated;                /* owns, n_cols: pg_attribute.attgenerated ('s' or 0) */
	bool *sequence;                 /* owns, n_cols: the column owns an ascending sequence
					   (serial, identity) */
	bool *key;                      /* owns, n_cols: the column is in the primary key */
	size_t n_cols;
};

/* A sequence of the path, and the column that owns it (serial, identity). */
struct catalog_sequence {
	char *schema;                   /* owns */
	char *name;                     /* owns: as stored (not quoted) */
	bool visible;                   /* found through the session's search_path */
	char *table_schema;             /* owns: the owning column's table, or NULL: owned by none */
	char *table;                    /* owns, or NULL */
	char *column;                   /* owns, or NULL */
};

struct catalog_shapes {
	struct catalog_shape *t;        /* owns, n */
	size_t n;
	struct catalog_sequence *seqs;  /* owns, n_seqs: every user sequence */
	size_t n_seqs;
};

/* The queries that read the shapes of every user table (relkind r, p) and
 * every user sequence with its owner (6 columns), and their answers added
 * to *OUT (caller owns: catalog_shapes_free; shapes first, from zero); 0,
 * or -1 with err (out of memory). For readers that send the queries
 * themselves. */
extern const char catalog_shapes_sql[];
int catalog_shapes_parse(const PGresult *r, struct catalog_shapes *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
extern const char catalog_sequences_sql[];
int catalog_sequences_parse(const PGresult *r, struct catalog_shapes *out, char *err,
			    size_t errlen) __attribute__((warn_unused_result));
/* The names of the functions outside pg_catalog and information_schema
 * that are not immutable (pg_proc.provolatile 's' or 'v'): the user's and
 * extensions' (gen_random_uuid() of pgcrypto, uuid_generate_v4(), ...).
 * The query (its one column is named pgturnout_volatile), its answer as
 * *NAMES (caller owns: catalog_names_free), *N; and both in one. 0, or -1
 * (out of memory; with err). */
extern const char catalog_volatile_functions_sql[];
int catalog_volatile_functions_parse(const PGresult *r, char ***names, size_t *n)
	__attribute__((warn_unused_result));
int catalog_read_volatile_functions(PGconn *conn, char ***names, size_t *n, char *err,
				    size_t errlen) __attribute__((warn_unused_result));
/* Reads the shapes of every user table (relkind r, p), and every user
 * sequence with its owner. 0, or -1 with err. */
int catalog_read_shapes(PGconn *conn, struct catalog_shapes *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void catalog_shapes_free(struct catalog_shapes *s);     /* NULL does nothing */
/* The table SCHEMA.NAME, or (SCHEMA NULL) the visible table NAME; NULL. */
const struct catalog_shape *catalog_shape_find(const struct catalog_shapes *s, const char *schema,
					       const char *name);
/* The sequence SCHEMA.NAME, or (SCHEMA NULL) the visible sequence NAME; NULL. */
const struct catalog_sequence *catalog_sequence_find(const struct catalog_shapes *s,
						     const char *schema, const char *name);
/* Index of column COL in T, or -1. */
int catalog_shape_column(const struct catalog_shape *t, const char *col);

#endif
