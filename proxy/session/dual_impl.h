/*
 * proxy/session/dual_impl.h — the state of a session's overlap window
 * (struct dual) and the functions the parts of dual writes share:
 * dual.c (the request flow, capture and apply, comparison, the journal,
 * two-phase commit), dual_copy.c (COPY ... FROM STDIN through values) and
 * dual_keyread.c (reads that take keys). Private to those files; the rest
 * of the proxy uses include/session/dual.h.
 */
#ifndef PGT_SESSION_DUAL_IMPL_H
#define PGT_SESSION_DUAL_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strmap.h"
#include "core/wbuf.h"
#include "session/client.h"
#include "session/server.h"
#include "session/twophase.h"
#include "sql/analyze.h"
#include "sql/capture.h"
#include "sql/rules.h"

#define SHADOW_RETRY_US (1000 * 1000)
/* Largest row whose values are captured. */
#define DUAL_CAPTURE_MAX (64u * 1024 * 1024)

struct dual_stmt {
	char *text;             /* owns: as sent (or to be sent) to the shadow */
	char *params;           /* owns: text form of the Bind parameters, or NULL */
	/* the rows it wrote, when captured (for the journal) */
	char *table;            /* owns: old's table as the statement names it, or NULL */
	char *keys;             /* owns: JSON array of old's key columns per row, or NULL */
	int auth_slot;          /* the path slot holding the rows as they should be */
	bool mismatch;          /* the shadow wrote other values than the primary's */
	bool nondet;            /* copied as a statement though non-deterministic: the
				   sides' values may differ (journaled at commit) */
};

/* A named statement or portal the shadow knows (mirrored). */
struct dual_name {
	char *name;             /* owns */
	char *text;             /* owns: statement text (for the journal) */
	bool commit;            /* the statement ends or prepares the transaction (txn):
				   not mirrored, run by pgturnout at its Execute */
	int txn;                /* with commit: SQL_TXN_COMMIT, _PREPARE, _COMMIT_PREPARED
				   or _ROLLBACK_PREPARED */
	bool write;             /* the statement writes: its executions count as shadow writes */
	/* an INSERT whose values are captured when executed (extended protocol) */
	char *old_text;         /* owns: the statement for old; NULL: not captured */
	char *own_text;         /* owns: with old_text, the client's own text (an UPDATE,
				   DELETE or upsert applied by key takes its RETURNING) */
	bool volatile_write;    /* with old_text: the copy of the statement may differ */
	uint8_t *ptypes;        /* owns: the Parse's parameter types (count + OIDs) */
	size_t ptypes_len;
	uint8_t *params;        /* owns (portals): the Bind's parameter formats and values */
	size_t params_len;
	uint8_t *rfmt;          /* owns (portals): the Bind's result format codes (count + codes) */
	size_t rfmt_len;
	uint8_t *parse;         /* owns: statements: the Parse the shadow gets */
	size_t parse_len;
	bool prepared;          /* statements: prepared on the current shadow connection */
};

/* A COPY ... FROM STDIN through values, by step (dual_copy_start). */
enum dual_copy_step {
	DUAL_COPY_NONE,
	DUAL_COPY_OLD,          /* primary old: staged, inserted and captured in one Query */
	DUAL_COPY_NEW_STAGE,    /* primary new: both sides stage the client's rows */
	DUAL_COPY_NEW_FIRST,    /* ... old inserts them, captured (phase FIRST) */
	DUAL_COPY_NEW_APPLY,    /* ... new gets old's values */
};

/* Where the request in flight stands. */
enum dual_phase {
	DUAL_IDLE,              /* no request of the client's in flight */
	DUAL_CONNECTING,        /* the shadow backend is connecting: the client waits */
	DUAL_FIRST,             /* the shadow (old) runs the request first; the client's
				   messages for the primary are held in d->held */
	DUAL_PRIMARY,           /* the primary runs it; its ReadyForQuery will be held */
	DUAL_SECOND,            /* the primary answered: the shadow runs its part */
	DUAL_PRIMARY_END,       /* wrapped autocommit: the primary's COMMIT/ROLLBACK runs */
	DUAL_ENDING,            /* the shadow's COMMIT/ROLLBACK runs */
	DUAL_TWOPHASE,          /* the transaction commits in two phases (d->tpc_step) */
};

/* Steps of a two-phase commit (dual_commit = 2pc), old first. */
enum tpc_step {
	TPC_NONE,
	TPC_PREPARE_OLD,        /* PREPARE TRANSACTION on old */
	TPC_PREPARE_NEW,        /* ... then on new */
	TPC_COMMIT,             /* decided: COMMIT PREPARED on both */
	TPC_ABORT,              /* not decided: ROLLBACK (PREPARED) where anything is left */
	TPC_CLIENT_ROLLBACK,    /* a client's ROLLBACK PREPARED, on both */
};


struct dual {
	int shadow_slot;
	enum dual_phase phase;  /* changed only by dual_set_phase() */
	bool down;              /* no usable shadow */
	uint64_t down_since_us;

	/* the request in flight */
	struct wbuf pend;       /* owns: the shadow's part, sent once the primary answered */
	uint32_t pend_requests; /* requests (ReadyForQuery answers) inside pend */
	bool pend_began;        /* pend opens the shadow transaction */
	size_t tx_at_request;   /* d->n_tx when the request began */
	bool req_mirrored;      /* something of it was sent to the shadow */
	uint32_t shadow_mark;   /* shadow requests_sent once its part was sent */
	struct wbuf inj;        /* owns: what replaces the held Execute (held_exec) */
	struct wbuf held;       /* owns: the client's messages for the primary, held
				   while the shadow (old) runs the request first */
	bool holding;           /* this batch's messages go to held */
	bool held_raw;          /* held is a Query of ours in new's names: sent unrewritten */
	bool fail_verdict;      /* fail mode: the shadow's error fails the request */
	bool wrapped;           /* the primary runs the request in a transaction of ours */
	bool autocommit;        /* the request is a write outside a transaction block */
	uint32_t own_ready;     /* ReadyForQuery answers of the primary that are ours */
	uint32_t own_tags;      /* CommandComplete answers of the primary that are ours */
	char primary_status;
	bool primary_error;
	bool primary_rolled_back;  /* a ROLLBACK tag ended a transaction */
	uint64_t primary_rows;
	bool shadow_error;
	char shadow_message[256];
	char shadow_sqlstate[6];
	char lost_reason[320];  /* why the open shadow transaction is lost (for the journal) */
	uint64_t shadow_rows;
	bool ending_commit;
	bool committed;         /* the primary's outcome of the ended transaction */

	bool poisoned;          /* the client was told its transaction failed */
	uint64_t intent;        /* the open commit intent of this transaction (session/intent.h), 0: none */

	/* two-phase commit of the transaction (phase DUAL_TWOPHASE) */
	enum tpc_step tpc_step;
	uint64_t tpc_n;         /* its number (session/twophase.h); 0: none */
	char tpc_gid[SLOT__COUNT][TWOPHASE_GID_MAX];
	bool tpc_sent[SLOT__COUNT];     /* PREPARE TRANSACTION sent there */
	bool tpc_prepared[SLOT__COUNT]; /* ... and it succeeded */
	const char *tpc_tag;    /* the command tag the client gets; NULL: none (a wrapped
				   autocommit write: its results are out already) */
	bool tpc_client_op;     /* a client's PREPARE TRANSACTION, COMMIT or ROLLBACK PREPARED */
	char tpc_side_state[SLOT__COUNT][6];  /* each side's SQLSTATE of the step; "" ok */
	uint32_t tpc_wait;      /* our statements the primary has not answered yet */
	bool tpc_primary_failed;        /* the primary failed the step's statement */
	char tpc_sqlstate[6];   /* the first failure, for the client */
	char tpc_message[320];

	/* the shadow transaction */
	bool shadow_tx;         /* a transaction is open on the shadow */
	bool broken;
	struct dual_stmt *tx;   /* owns */
	size_t n_tx, cap_tx;

	/* extended protocol: what the shadow knows */
	struct strmap stmts;    /* owns: name -> struct dual_name (owns), mirrored
				   statements, "" = unnamed */
	struct strmap portals;  /* owns: name -> struct dual_name (owns), mirrored portals */
	bool batch_mirrored;    /* this batch (up to Sync) sent something */
	bool batch_began;       /* this batch executed a BEGIN */
	bool copy_mirrored;     /* a mirrored COPY FROM is taking data */
	bool copy_open;         /* the request is a COPY FROM: its data must flow */
	char *pending_params;   /* owns: parameters of the last mirrored Bind */
	/* an extended-protocol COMMIT, PREPARE TRANSACTION, COMMIT or ROLLBACK
	 * PREPARED held back at its Execute, run once the batch before it
	 * has run on both sides (dual_ext_txn_run); SQL_TXN_NONE: none */
	int ext_txn;
	char *ext_text;         /* owns: its statement text */
	struct wbuf ext_exec;   /* owns: the client's Execute */

	/* values, not statements: the request's INSERT run on old with a
	 * capture of the rows it wrote, applied to new as literals */
	struct capture_plan cap; /* owns */
	bool cap_on;
	bool cap_from_primary;  /* the rows come in the primary's stream (old is primary) */
	bool cap_failed;
	bool cap_extended;      /* the capture runs as a statement of ours in an extended batch */
	bool cap_rows_now;      /* the capturing side's rows coming are the capture's (after
				   its RowDescription, up to its CommandComplete): the
				   primary's (cap_extended, old primary) or the shadow's */
	/* extended batches: answers of the primary that are ours (ParseComplete,
	 * BindComplete, CloseComplete of the statement injected in place of an
	 * Execute), found by position among the batch's answers of each kind */
	uint32_t sent_parse, sent_bind, sent_close, sent_describe; /* sent to the primary in this batch */
	uint32_t seen_parse, seen_bind, seen_close, seen_describe; /* their answers seen */
	uint32_t own_parse, own_bind, own_close, own_describe;    /* first position of ours; 0: none */
	uint32_t n_own_parse, n_own_bind, n_own_close, n_own_describe; /* how many of ours from there */
	bool held_exec;         /* held: the client's Execute at held_exec_off is to be replaced */
	size_t held_exec_off;
	uint8_t *inj_rfmt;      /* owns: its result format codes, for the statement replacing it */
	size_t inj_rfmt_len;
	int cap_mark;           /* index of CAPTURE_MARK in the rows, -1 before RowDescription */
	char **cap_cols;        /* owns: the captured columns' names (old's), those new has */
	bool *cap_keep;         /* owns: per column after the marker: applied to new */
	size_t n_cap_all;       /* columns after the marker (kept or not) */
	size_t cap_pend_off;    /* extended, old primary: where in pend new's part goes */
	size_t n_cap_cols;
	/* one key source: per captured column, whether new's column may own a
	 * sequence (an integer column that owns one, or any integer column
	 * when new's catalog is unknown), and the largest value captured */
	bool *cap_seq;          /* owns, n_cap_cols */
	/* applied by key (UPDATE, DELETE, ON CONFLICT DO UPDATE): rows as JSON */
	char **cap_new;         /* owns, n_cap_cols: new's names of the captured columns */
	bool *cap_key;          /* owns, n_cap_cols: in new's primary key */
	bool *cap_json;         /* owns, n_cap_cols: a json or jsonb column (value is JSON) */
	long long *cap_max;     /* owns, n_cap_cols; LLONG_MIN: none yet */
	uint32_t own_do;        /* "DO" tags of the primary that are ours (sequence advance) */
	uint32_t own_begin;     /* "BEGIN" tags of the primary that are ours (an extended
				   autocommit write wrapped, dual_ext_wrap) */
	bool advanced;          /* the request moves new's sequences (see dual_seq_mark) */
	uint32_t inj_count;     /* statements of ours in inj */
	struct wbuf cap_rows;   /* owns: "(lit, ...), (lit, ...)" */
	struct wbuf cap_keyrows; /* owns: '{"k": "v"}, ...': each row's key (old's names) */
	/* value comparison (a session on old): the rows captured from old and
	 * those new's apply returned, as an order-independent digest */
	uint64_t cap_digest;    /* of the captured rows, as applied */
	bool cmp_on;            /* new's DataRows of this request are the apply's */
	bool cmp_marked;        /* ... only those after a RowDescription starting with
				   CAPTURE_MARK (an extended batch), the marker not compared */
	bool cmp_active;        /* the rows coming are the apply's (cmp_marked) */
	uint64_t cmp_primary, cmp_shadow;  /* digests: old's rows, new's rows */
	uint64_t cmp_primary_rows, cmp_shadow_rows;
	/* value comparison for a session whose primary is new: new's apply
	 * returns the client's RETURNING columns, then CAPTURE_MARK and the
	 * applied columns, which the client never sees (dual_cmpn_*); the
	 * digests are cmp_primary (old's captured rows) and cmp_shadow (new's) */
	bool cmpn_on;           /* this request's apply on new returns the applied columns */
	bool cmpn_rows;         /* the primary's DataRows coming are the apply's */
	int cmpn_mark;          /* the marker's index in them */
	size_t cap_stmt;         /* the journal record of the capturing statement (old first,
				   primary new); SIZE_MAX: none */
	size_t cap_nrows;
	char *cap_fallback;     /* owns: the shadow's statement, if values cannot be applied */
	/* one key source: a read taking keys (nextval() ...) of a session on
	 * new, run on old (dual_keyread_*) */
	bool kr_on;             /* old runs it: its answers are collected */
	int kr_stage;           /* 0: the read's answers; 1: our statement's; 2: all in */
	bool kr_marker;         /* our statement follows the read */
	bool kr_failed;         /* old's answers could not be kept */
	struct wbuf kr_result;  /* owns: old's RowDescription, DataRows, CommandComplete */
	char **kr_lits;         /* owns, n_kr: each sequence's literal as the client wrote it */
	char **kr_new;          /* owns, n_kr: how new names each, when known (dual_kr_names) */
	size_t n_kr;
	char **kr_row;          /* owns, n_kr * KEYREAD_MARKER_COLS: our statement's values */
	size_t n_kr_rows;
	uint32_t kr_replace;    /* the primary's "DO" tag to be replaced by kr_result */

	/* COPY ... FROM STDIN through values (dual_copy_*): the request's
	 * COPY is staged and inserted on old with a capture; new gets the
	 * captured rows in chunks */
	enum dual_copy_step copy_step;
	bool copy_temp;         /* the shadow transaction staged a COPY in a temporary
				   table: it cannot be prepared (no two-phase commit) */
	bool copy_too_big;      /* primary new: more rows than DUAL_COPY_HELD_MAX */
	char *copy_text;        /* owns: the COPY as old names it (journal, intent) */
	uint64_t copy_rows;     /* rows captured (and applied or queued) so far */
	size_t copy_keys;       /* bytes of keys kept for the journal (DUAL_COPY_KEYS_MAX) */
	bool copy_keyless;      /* over it: the COPY is recorded once more, without keys */
	uint64_t copy_count;    /* primary new: rows in new's INSERT tags so far */
	uint32_t copy_inserts;  /* primary new: INSERT tags of new's still to come */
	struct wbuf copy_held;  /* owns: primary new: the statements new gets */
	char *copy_adv_schema;  /* owns: a COPY copied as a statement to new: the */
	char *copy_adv_table;   /* owns:  table whose sequences follow it (new's names) */
	struct capture_template copy_tmpl; /* owns: the chunks' apply, rewritten once */
	bool copy_tmpl_tried;
};

#define DUAL_SEQ_AHEAD 1000

struct dual_seq_mark {
	char *column;           /* owns: "schema.table.column" of new's */
	long long past;         /* new's sequence is at or past this value */
};

/* What a session is told when the journal cannot take what the shadow lost. */
#define DUAL_JOURNAL_FAILED \
	"the dual-write journal cannot be written: the shadow path lost this transaction's " \
	"writes and they cannot be recorded, so the transaction is rolled back"

/* dual.c */
void dual_begin(struct client *c);
char *dual_capture_advance(struct client *c);
char *dual_capture_apply(struct client *c, bool with_returning, bool to_new);
char *dual_capture_columns(struct client *c, bool marker);
void dual_capture_reset(struct client *c);
bool dual_capture_start(struct client *c, const char *old_text, size_t len, bool from_primary);
void dual_count_nondeterministic(struct client *c);
enum rewrite_dir dual_dir(const struct client *c);
uint64_t dual_fingerprint(const char *text);
void dual_flush_pend(struct client *c);
void dual_forget_request(struct dual *d);
int dual_intent(struct client *c);
void dual_pend_query(struct client *c, const char *prefix, const char *sql);
void dual_primary_own(struct client *c, const char *sql);
void dual_progress(struct client *c);
void dual_raise_own(struct client *c, struct server *p, const char *sqlstate, const char *message);
void dual_release_held(struct client *c);
struct dual_seq_mark *dual_seq_mark(const char *schema, const char *name, const char *col,
				    bool add);
void dual_set_phase(struct client *c, enum dual_phase phase);
struct server *dual_shadow(const struct client *c);
const char *dual_shadow_name(const struct client *c);
void dual_shadow_query(struct client *c, const char *sql);
bool dual_tag_rows(const char *tag, uint64_t *rows);
void dual_to_primary(struct client *c, struct server *p, const uint8_t *msg, size_t len);
void dual_tx_keys(struct client *c, size_t i, int auth);
void dual_tx_record(struct dual *d, const char *text, size_t len, const char *params);

/* dual_copy.c: COPY ... FROM STDIN through values */
void dual_copy_finish(struct client *c);
void dual_copy_first_done(struct client *c, struct server *sh);
void dual_copy_reset(struct dual *d);
void dual_copy_row(struct client *c);
bool dual_copy_staged(struct client *c);
bool dual_copy_start(struct client *c, struct server *p, const struct sql_analysis *a,
		     const char *text);
void dual_copy_statement(struct client *c, const char *stmt);
void dual_copy_statement_done(struct client *c);
bool dual_copy_tag(struct client *c, const char *tag);

/* dual_keyread.c: reads that take keys (nextval() ...) of a session on new
 * run on old, the key source */
void dual_keyread_clear(struct dual *d);
void dual_keyread_message(struct dual *d, const uint8_t *msg, size_t len);
void dual_keyread_parse(struct client *c, const struct sql_analysis *a, const char *text);
bool dual_keyread_primary(struct client *c, const uint8_t *msg, size_t len);
bool dual_keyread_query(struct client *c, struct server *p, const uint8_t *msg, size_t len,
			const struct sql_analysis *a);
void dual_keyread_run(struct client *c, struct server *sh);
bool dual_keyread_takes(uint8_t type);
void dual_kr_names_forget(void);

#endif
