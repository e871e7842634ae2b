/*
 * conf/config.h — one configuration generation.
 *
 * A generation is parsed from one INI file (inih) against a single key table
 * (proxy/conf/config.c) that gives each key its type, default, reload
 * behaviour and doc line; parsing, SHOW CONFIG and --check all read that
 * table. A generation is immutable once loaded and refcounted: sessions pin
 * the generation they started under, reload parses a new one and swaps the
 * pointer only when it is entirely valid.
 */
#ifndef PGT_CTL_CONFIG_H
#define PGT_CTL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rewrite_rules;   /* sql/rules.h */
struct userlist;        /* conf/userlist.h */
struct hba;             /* conf/hba.h */

enum auth_type { AUTH_TRUST, AUTH_MD5, AUTH_SCRAM, AUTH_CERT, AUTH_HBA };
enum tls_mode { TLS_MODE_DISABLE, TLS_MODE_ALLOW, TLS_MODE_REQUIRE, TLS_MODE_VERIFY_CA, TLS_MODE_VERIFY_FULL };
enum sslmode { SSLMODE_DISABLE, SSLMODE_PREFER, SSLMODE_REQUIRE, SSLMODE_VERIFY_FULL };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
enum canary_key {
	CANARY_KEY_CONNECTION, CANARY_KEY_USER, CANARY_KEY_DATABASE,
	CANARY_KEY_APPLICATION_NAME, CANARY_KEY_CLIENT_ADDR, CANARY_KEY_PARAM
};
enum force_path { FORCE_PATH_NONE, FORCE_PATH_OLD, FORCE_PATH_NEW };
enum shadow_failure { SHADOW_FAILURE_JOURNAL, SHADOW_FAILURE_FAIL };
/* How the two sides of a dual write commit (SPEC §7). This version commits
 * primary first with a durable intent (ordered) in every layout; auto picks
 * that. Two-phase commit is not available yet. */
enum dual_commit { DUAL_COMMIT_AUTO, DUAL_COMMIT_ORDERED, DUAL_COMMIT_2PC };

/* The guards of [guard] (SPEC §12): what each one watches, new against old. */
enum guard_kind {
	GUARD_NEW_ERROR_RATE,           /* percentage points of failed requests on new over old */
	GUARD_P99_LATENCY_RATIO,        /* new's p99 request latency / old's */
	GUARD_DUAL_WRITE_MISMATCHES,    /* dual-write mismatches in the last minute */
	GUARD_SHADOW_ERRORS,            /* shadow-write errors in the last minute */
	GUARD_DRIFT_ROWS,               /* differing rows in the last verify report */
	GUARD_SHADOW_READ_MISMATCH_RATE, /* percent of compared shadow reads that differed */
	GUARD__COUNT
};
enum guard_action { GUARD_ACTION_ALERT, GUARD_ACTION_ROLLBACK };

/* One guard: off, or a threshold and what to do past it. */
struct guard_rule {
	bool on;
	double threshold;               /* tripped when the figure is above it */
	enum guard_action action;
};

struct listen_addr {
	char host[256];
	char port[16];
};

/* One [path NAME] section. */
struct path_config {
	char *name;             /* owns */
	char *host;             /* owns; default 127.0.0.1 */
	int port;               /* default 5432 */
	char *dbname;           /* owns; NULL: the client's database name */
	char *user;             /* owns; NULL: the client's own user */
	char *password;         /* owns; NULL: from auth_file */
	char *search_path;      /* owns; NULL: leave the server's default */
	enum sslmode sslmode;   /* default prefer */
	char *sslrootcert;      /* owns; NULL: none */
	char *sslcert;          /* owns; NULL: no client certificate shown to the server */
	char *sslkey;           /* owns; NULL unless sslcert */
	int line;               /* line of the section header, for messages */
};

/* One raw "key = value" line, kept as written (e.g. the [rewrite] entries). */
struct config_entry {
	char *key;              /* owns */
	char *value;            /* owns */
	int line;
};

/* One "version.TAG = PATH" entry of [migration]. */
struct version_map {
	char *tag;              /* owns */
	int path;               /* index into config.paths */
};

/* [flags]: initial values; all changeable at runtime. */
struct flags_config {
	int32_t canary_milli;   /* canary_percent × 1000, 0..100000 */
	bool dual_write;
	enum shadow_failure shadow_failure;
	enum force_path force_path;
	int32_t shadow_reads_milli; /* shadow_reads × 1000, 0..100000: sessions whose reads are compared */
};

struct config {
	int refcount;
	char *file;                     /* owns: the path the generation was read from */

	/* [pgturnout] */
	struct listen_addr *listen;     /* owns, n_listen entries */
	size_t n_listen;
	enum auth_type auth_type;       /* default scram-sha-256 */
	char *auth_file;                /* owns; NULL: none; file names are made absolute against the config file's directory */
	struct userlist *users;         /* owns: auth_file, loaded with the generation */
	char *auth_hba_file;            /* owns; NULL unless set */
	struct hba *hba;                /* owns: auth_hba_file, loaded with the generation */
	char **admin_users;             /* owns, n_admin_users strings */
	size_t n_admin_users;
	char **stats_users;             /* owns, n_stats_users strings: read-only console */
	size_t n_stats_users;
	char *unix_socket_dir;          /* owns; NULL: no unix-domain socket */
	enum tls_mode tls_mode;
	char *tls_cert_file;            /* owns; NULL unless set */
	char *tls_key_file;             /* owns; NULL unless set */
	char *client_tls_ca_file;       /* owns; NULL: client certificates are not asked for */
	char *auth_user;                /* owns; NULL: no auth_query lookups */
	char *auth_query;               /* owns */
	uint32_t auth_cache_ttl_ms;     /* default 60s; 0: no cache */
	char *http_listen;              /* owns; NULL: HTTP off */
	struct listen_addr http_addr;   /* http_listen parsed; valid when http_listen != NULL */
	char *http_token_file;          /* owns; NULL: writes refused */
	bool http_auth_reads;           /* default off: reads need the token too (not /healthz) */
	int http_max_connections;       /* default 64; more wait in the listen queue */
	uint32_t http_request_timeout_ms; /* default 10s: a whole request, from accept */
	int http_fd_reserve;            /* default 128 descriptors kept from HTTP */
	char *journal_dir;              /* owns; default ./journal, next to the config file */
	enum log_format log_format;
	int log_level;                  /* enum log_level of core/log.h */
	int max_client_conn;            /* default 10000 */
	uint32_t shutdown_timeout_ms;   /* default 30s */
	uint32_t client_login_timeout_ms;  /* default 60s: startup+auth must finish in it */
	uint32_t server_connect_timeout_ms; /* default 15s */
	uint32_t shadow_lock_timeout_ms; /* [migration]; default 5s */
	enum dual_commit dual_commit;   /* [migration]; default auto */
	uint32_t server_idle_timeout_ms; /* default 60s: a left server connection waits this long
					    for the next client; 0 closes it with its client */
	char *server_reset_query;       /* owns; default DISCARD ALL */
	char *pidfile;                  /* owns; NULL: no pid file */
	uint64_t max_query_size;        /* default 1MB: largest Query/Parse buffered for rewriting */
	int max_prepared_statements;    /* default 10000: named statements tracked per session; 0: no limit */
	uint32_t query_timeout_ms;      /* default 0 (off): a request running longer is cancelled */
	uint32_t query_wait_timeout_ms; /* default 120s: longest wait at PAUSE or for a server slot */
	uint32_t idle_transaction_timeout_ms; /* default 0 (off): idle inside a transaction */
	uint32_t client_idle_timeout_ms; /* default 0 (off): idle outside a transaction */
	uint32_t server_lifetime_ms;    /* default 3600s: older server connections are not reused */
	char *server_check_query;       /* owns; default "select 1"; NULL: no health check */
	uint32_t server_check_delay_ms; /* default 30s: kept connections idle longer are checked */
	bool tcp_keepalive;             /* default on: SO_KEEPALIVE on client and server sockets */
	uint32_t tcp_keepidle_ms;       /* default 0: the system's; whole seconds are used */
	uint32_t tcp_keepintvl_ms;      /* default 0: the system's; whole seconds are used */
	int tcp_keepcnt;                /* default 0: the system's */
	uint32_t tcp_user_timeout_ms;   /* default 0: the system's */
	int max_db_connections;         /* default 0 (no limit): server connections per database */
	int max_user_connections;       /* default 0 (no limit): server connections per user */

	/* [path NAME] sections, in file order */
	struct path_config *paths;      /* owns, n_paths entries */
	size_t n_paths;

	/* [migration] */
	int old_path;                   /* index into paths; == new_path when there is one path and no [migration] */
	int new_path;                   /* index into paths */
	char *salt;                     /* owns; default pgturnout, never empty */
	char *tag_param;                /* owns; default pgturnout.version */
	enum canary_key canary_key;
	char *canary_param;             /* owns; NAME of canary_key = param:NAME, else NULL */
	struct version_map *versions;   /* owns, n_versions entries */
	size_t n_versions;

	/* [rewrite] */
	struct rewrite_rules *rules;    /* owns; never NULL (may be empty) */
	struct config_entry *rewrite_entries; /* owns, n_rewrite_entries: the raw lines, for SHOW CONFIG and reload diffs */
	size_t n_rewrite_entries;

	/* [flags] */
	struct flags_config flags;
	uint32_t flags_set;             /* bit (1 << FLAG_x) when the file set that flag */

	/* [guard] (SPEC §12) */
	struct guard_rule guards[GUARD__COUNT];
	uint32_t guard_window_ms;       /* default 60s: the sliding window of rates and p99 */
	int guard_min_sample;           /* default 200: requests on each path in the window */

	/* [fleet] (SPEC §13): the flag store; off when fleet_dsn and fleet_path_name are NULL */
	char *fleet_dsn;                /* owns; NULL: none (libpq connection string) */
	char *fleet_path_name;          /* owns; NULL: none */
	int fleet_path;                 /* index into paths of fleet_path_name, or -1 */
	char *fleet_name;               /* owns; NULL: HOSTNAME:PORT of the first listen address */
	uint32_t fleet_poll_ms;         /* default 1s */
	uint32_t fleet_timeout_ms;      /* default 5s */
};

/* Whether [fleet] names a flag store (the flags are then the fleet's). */
static inline bool config_fleet_on(const struct config *cfg)
{
	return cfg->fleet_dsn != NULL || cfg->fleet_path_name != NULL;
}

enum flag_id { FLAG_CANARY_PERCENT, FLAG_DUAL_WRITE, FLAG_SHADOW_FAILURE, FLAG_FORCE_PATH,
	       FLAG_SHADOW_READS, FLAG__COUNT };

/* Collected "file:line: message" errors of one load. */
struct config_errors {
	char **items;                   /* owns, n items */
	size_t n;
};

void config_errors_free(struct config_errors *errs);
/*
 * Appends one printf-formatted message as "file:line: message", or
 * "file: message" when line is 0 (FILE NULL: just "message"). ERRS must be
 * zero-initialised or hold earlier errors; items are appended. Past 200 items
 * one "too many errors" line is kept and the rest dropped. Returns 0, or -1
 * when out of memory.
 */
int config_errors_add(struct config_errors *errs, const char *file, int line,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Parses and validates FILE completely. On success returns a new generation
 * with refcount 1 (caller owns one reference). On failure returns NULL and
 * fills errs with every problem found, each "file:line: message" (line 0 when
 * the problem is not tied to a line, e.g. "file: no [path] sections").
 * Loads must not run concurrently: inih keeps its options in process globals.
 */
struct config *config_load(const char *file, struct config_errors *errs);
/*
 * Same as config_load() on TEXT, reporting errors under NAME. Relative file
 * names in TEXT stay relative to the working directory (config_load resolves
 * them against the config file's directory).
 */
struct config *config_load_string(const char *text, const char *name,
				  struct config_errors *errs);

struct config *config_ref(struct config *cfg);
void config_unref(struct config *cfg);      /* NULL does nothing */

/* Index of the path named NAME, or -1. */
int config_path_index(const struct config *cfg, const char *name);
/* Path index for a version tag, or -1 when the tag is not mapped. */
int config_version_path(const struct config *cfg, const char *tag);
bool config_is_admin(const struct config *cfg, const char *user);
/* USER is in stats_users (the read-only console: SHOW only). */
bool config_is_stats_user(const struct config *cfg, const char *user);

/*
 * Walks every key of the table with its value in CFG (as the user would write
 * it; secrets shown as "********"), its default, whether reload may change it,
 * and its doc line. Used by SHOW CONFIG. Path and version keys are reported
 * with their section ("path old", "migration").
 */
typedef void (*config_key_cb)(void *arg, const char *section, const char *key,
			      const char *value, const char *default_value,
			      bool reloadable, const char *doc);
void config_foreach(const struct config *cfg, config_key_cb cb, void *arg);

/*
 * Reload support. config_reload_diff() compares two generations key by key
 * (via config_foreach) and calls CB for each key whose value differs, with
 * old_value/new_value NULL when the key exists in only one of them (a path
 * added or removed, a version or rewrite line). Returns the number of changed
 * keys that reload cannot apply (reloadable == false, e.g. listen): the
 * caller logs a warning for each and calls config_keep_restart_keys(), which
 * copies those keys' values from OLD into NEW so the running values stay.
 */
typedef void (*config_diff_cb)(void *arg, const char *section, const char *key,
			       const char *old_value, const char *new_value,
			       bool reloadable);
int config_reload_diff(const struct config *old, const struct config *new_cfg,
		       config_diff_cb cb, void *arg);
int config_keep_restart_keys(struct config *new_cfg, const struct config *old);

/* Value parsers shared with the admin console and HTTP flags API.
 * Each returns 0 and sets *out, or -1 with a message naming the allowed
 * values in err. */
int config_parse_duration_ms(const char *s, uint32_t *out, char *err, size_t errlen);
int config_parse_size(const char *s, uint64_t *out, char *err, size_t errlen);
int config_parse_bool(const char *s, bool *out, char *err, size_t errlen);
int config_parse_percent_milli(const char *s, int32_t *out, char *err, size_t errlen);
int config_parse_force_path(const char *s, enum force_path *out, char *err, size_t errlen);
int config_parse_shadow_failure(const char *s, enum shadow_failure *out, char *err, size_t errlen);

/* "new_error_rate", ...: the [guard] key of guard KIND. */
const char *config_guard_name(enum guard_kind kind);
/* Parses a [guard] value "THRESHOLD ACTION" for KIND (empty: off). */
int config_parse_guard(enum guard_kind kind, const char *s, struct guard_rule *out, char *err,
		       size_t errlen);
/* Writes RULE of KIND as the parser takes it back ("1% rollback"; off: ""). */
void config_format_guard(enum guard_kind kind, const struct guard_rule *rule, char *buf,
			 size_t len);

/* The messages put in err say what is allowed, without the value, e.g.
 * "allowed values are none, old, new"; callers prefix "invalid value 'x'
 * for KEY: ". Formatters below write the canonical spelling the parsers
 * accept back (e.g. 12.5, 30s, 1MB, on). */
void config_format_duration_ms(uint32_t ms, char *buf, size_t len);
void config_format_size(uint64_t bytes, char *buf, size_t len);
void config_format_percent_milli(int32_t milli, char *buf, size_t len);
const char *config_bool_name(bool b);                   /* "on" / "off" */
const char *config_force_path_name(enum force_path fp); /* none | old | new */
const char *config_shadow_failure_name(enum shadow_failure sf); /* journal | fail */

#endif
