/*
 * conf/userlist.h — PgBouncer's userlist.txt format: one `"user" "secret"`
 * per line, where secret is a plain password, an "md5" + 32 hex digest of
 * password||user, or a SCRAM-SHA-256$iter:salt$StoredKey:ServerKey verifier.
 * Double quotes inside a field are written twice. Lines starting with ';' or
 * '#' and blank lines are ignored.
 */
#ifndef PGT_CTL_USERLIST_H
#define PGT_CTL_USERLIST_H

#include <stddef.h>

struct config_errors;
struct scram_verifier;

enum secret_kind { SECRET_PLAIN, SECRET_MD5, SECRET_SCRAM };

struct user_secret {
	char *user;             /* owns */
	char *secret;           /* owns: as written in the file */
	enum secret_kind kind;
	/* owns: what SCRAM checks a client against, made at load so that no
	 * login runs PBKDF2: a SCRAM entry parsed, a non-empty plain password
	 * derived with scram_verifier_for_user() (a salt stable per user, the
	 * one an unlisted user's mock exchange shows too). NULL for md5 and
	 * empty secrets. */
	struct scram_verifier *scram;
};

struct userlist;

/* Loads FILE; on error returns NULL and appends "file:line: message" to errs.
 * Costs one PBKDF2 (4096 rounds, about 1.5 ms) per plain-password user. */
struct userlist *userlist_load(const char *file, struct config_errors *errs);
void userlist_free(struct userlist *ul);   /* NULL does nothing */
/* The entry for USER, or NULL. Borrowed from ul. */
const struct user_secret *userlist_find(const struct userlist *ul, const char *user);
/* Number of distinct users in ul (0 for NULL). */
size_t userlist_count(const struct userlist *ul);

/* An entry for USER whose secret is SECRET as userlist.txt would hold it
 * (kind and SCRAM verifier made as at load: a plain password costs one
 * PBKDF2), e.g. a secret looked up with auth_query; NULL when out of memory
 * or SECRET is a malformed SCRAM verifier. */
struct user_secret *user_secret_new(const char *user, const char *secret);
/* A deep copy of US; NULL when out of memory. */
struct user_secret *user_secret_dup(const struct user_secret *us);
void user_secret_free(struct user_secret *us);   /* wipes the secret; NULL does nothing */

#endif
