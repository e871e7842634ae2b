/*
 * conf/hba.c — see conf/hba.h. Owns the rules and their name lists.
 */
#include "conf/hba.h"

#include "conf/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum hba_type { HBA_LOCAL, HBA_HOST, HBA_HOSTSSL, HBA_HOSTNOSSL };

struct hba_names {
	bool all;
	bool sameuser;          /* DATABASE only: the user's own name */
	char **v;               /* owns, n strings */
	size_t n;
};

struct hba_rule {
	int line;
	enum hba_type type;
	struct hba_names dbs, users;
	bool any_addr;
	int family;             /* AF_INET or AF_INET6 */
	uint8_t addr[16], mask[16];
	int method;             /* enum auth_type, or HBA_REJECT */
};

struct hba {
	struct hba_rule *rules; /* owns, n */
	size_t n;
};

static void names_free(struct hba_names *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->v[i]);
	free(n->v);
}

void hba_free(struct hba *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++) {
		names_free(&h->rules[i].dbs);
		names_free(&h->rules[i].users);
	}
	free(h->rules);
	free(h);
}

/* TOK (all, or names separated by commas) into N; false when out of memory
 * or a name is empty or a +group. WHAT names the field for errors. */
static bool parse_names(char *tok, struct hba_names *n, bool database, char *err, size_t errlen)
{
	if (strcmp(tok, "all") == 0) {
		n->all = true;
		return true;
	}
	if (database && strcmp(tok, "sameuser") == 0) {
		n->sameuser = true;
		return true;
	}
	for (char *save = NULL, *name = strtok_r(tok, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		if (name[0] == '+' || name[0] == '@') {
			snprintf(err, errlen, "'%s': groups (+role) and files (@file) are not supported", name);
			return false;
		}
		char **v = realloc(n->v, (n->n + 1) * sizeof(*v));
		if (v == NULL || (v[n->n] = strdup(name)) == NULL) {
			if (v)
				n->v = v;
			snprintf(err, errlen, "out of memory");
			return false;
		}
		n->v = v;
		n->n++;
	}
	if (n->n == 0) {
		snprintf(err, errlen, "empty %s list", database ? "database" : "user");
		return false;
	}
	return true;
}

/* "ADDR/LEN" or "all" into R. */
static bool parse_address(char *tok, struct hba_rule *r, char *err, size_t errlen)
{
	if (strcmp(tok, "all") == 0) {
		r->any_addr = true;
		return true;
	}
	char *slash = strchr(tok, '/');
	if (slash == NULL) {
		snprintf(err, errlen, "address '%s' needs a /prefix length (e.g. 10.0.0.0/8) or all", tok);
		return false;
	}
	*slash = '\0';
	char *end;
	errno = 0;
	long bits = strtol(slash + 1, &end, 10);
	r->family = strchr(tok, ':') ? AF_INET6 : AF_INET;
	int max = r->family == AF_INET ? 32 : 128;
	if (inet_pton(r->family, tok, r->addr) != 1 || *end || end == slash + 1 || errno || bits < 0 ||
	    bits > max) {
		snprintf(err, errlen, "invalid address '%s/%s'", tok, slash + 1);
		return false;
	}
	for (int i = 0; i < max / 8; i++) {
		int b = (int)bits - i * 8;
		r->mask[i] = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
		r->addr[i] &= r->mask[i];
	}
	return true;
}

static const struct {
	const char *name;
	int method;
} methods[] = {
	{ "trust", AUTH_TRUST }, { "reject", HBA_REJECT }, { "md5", AUTH_MD5 },
	{ "scram-sha-256", AUTH_SCRAM }, { "cert", AUTH_CERT },
};

/* One rule from LINE's text (comment already cut); false with ERR. An empty
 * line gives true with *EMPTY. */
static bool parse_rule(char *text, struct hba_rule *r, bool *empty, char *err, size_t errlen)
{
	char *tok[8];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(text, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == 6) {
			snprintf(err, errlen, "unexpected '%s' after the method (options are not supported)", t);
			return false;
		}
		tok[n++] = t;
	}
	*empty = n == 0;
	if (n == 0)
		return true;
	static const char *const types[] = { "local", "host", "hostssl", "hostnossl" };
	r->type = (enum hba_type)-1;
	for (size_t i = 0; i < 4; i++)
		if (strcmp(tok[0], types[i]) == 0)
			r->type = (enum hba_type)i;
	if ((int)r->type < 0) {
		snprintf(err, errlen, "unknown connection type '%s': local, host, hostssl or hostnossl", tok[0]);
		return false;
	}
	int want = r->type == HBA_LOCAL ? 4 : 5;
	if (n != want) {
		snprintf(err, errlen, "expected %s", r->type == HBA_LOCAL ? "local DATABASE USER METHOD"
				: "TYPE DATABASE USER ADDRESS METHOD");
		return false;
	}
	if (!parse_names(tok[1], &r->dbs, true, err, errlen) ||
	    !parse_names(tok[2], &r->users, false, err, errlen) ||
	    (r->type != HBA_LOCAL && !parse_address(tok[3], r, err, errlen)))
		return false;
	const char *m = tok[want - 1];
	r->method = HBA_NO_RULE;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(m, methods[i].name) == 0)
			r->method = methods[i].method;
	if (r->method == HBA_NO_RULE) {
		snprintf(err, errlen, "unknown method '%s': trust, reject, md5, scram-sha-256 or cert", m);
		return false;
	}
	return true;
}

struct hba *hba_load(const char *file, struct config_errors *errs)
{
	FILE *f = fopen(file, "r");
	if (f == NULL) {
		config_errors_add(errs, file, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	struct hba *h = calloc(1, sizeof(*h));
	char *buf = NULL;
	size_t cap = 0;
	int line = 0;
	bool ok = h != NULL;
	while (ok && getline(&buf, &cap, f) >= 0) {
		line++;
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		struct hba_rule r = { .line = line };
		bool empty;
		char err[256];
		if (!parse_rule(buf, &r, &empty, err, sizeof(err))) {
			config_errors_add(errs, file, line, "%s", err);
			ok = false;
		} else if (!empty) {
			struct hba_rule *v = realloc(h->rules, (h->n + 1) * sizeof(*v));
			if (v == NULL) {
				config_errors_add(errs, file, line, "out of memory");
				ok = false;
			} else {
				h->rules = v;
				h->rules[h->n++] = r;
				continue;
			}
		}
		names_free(&r.dbs);
		names_free(&r.users);
	}
	if (ok && ferror(f)) {
		config_errors_add(errs, file, 0, "cannot read: %s", strerror(errno));
		ok = false;
	}
	free(buf);
	fclose(f);
	if (!ok) {
		hba_free(h);
		return NULL;
	}
	return h;
}

bool hba_needs_passwords(const struct hba *h)
{
	for (size_t i = 0; h && i < h->n; i++)
		if (h->rules[i].method == AUTH_MD5 || h->rules[i].method == AUTH_SCRAM)
			return true;
	return false;
}

static bool names_match(const struct hba_names *n, const char *name, const char *user)
{
	if (n->all || (n->sameuser && strcmp(name, user) == 0))
		return true;
	for (size_t i = 0; i < n->n; i++)
		if (strcmp(n->v[i], name) == 0)
			return true;
	return false;
}

/* Whether the client's address text ADDR lies in R's network. */
static bool addr_match(const struct hba_rule *r, const char *addr)
{
	if (r->any_addr)
		return true;
	uint8_t a[16];
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(family, addr, a) != 1)
		return false;
	/* an IPv4 client on an IPv6 socket (::ffff:a.b.c.d) is an IPv4 client */
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (family == AF_INET6 && r->family == AF_INET && memcmp(a, mapped, 12) == 0) {
		memmove(a, a + 12, 4);
		family = AF_INET;
	}
	if (family != r->family)
		return false;
	for (int i = 0; i < (family == AF_INET ? 4 : 16); i++)
		if ((a[i] & r->mask[i]) != r->addr[i])
			return false;
	return true;
}

int hba_match(const struct hba *h, const char *addr, bool tls, const char *db, const char *user,
	      int *line)
{
	bool local = strcmp(addr, "unix") == 0;
	*line = 0;
	for (size_t i = 0; h && i < h->n; i++) {
		const struct hba_rule *r = &h->rules[i];
		if (local != (r->type == HBA_LOCAL) || (r->type == HBA_HOSTSSL && !tls) ||
		    (r->type == HBA_HOSTNOSSL && tls))
			continue;
		if (!names_match(&r->dbs, db, user) || !names_match(&r->users, user, user) ||
		    (!local && !addr_match(r, addr)))
			continue;
		*line = r->line;
		return r->method;
	}
	return HBA_NO_RULE;
}
