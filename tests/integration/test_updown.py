"""Schema changes beyond renames: up/down expressions (SPEC §6), on reads.

Two layouts (one database with a schema per path, a database per path). The
old side has users(id, name, email, nickname, legacy) and orders(id, price
numeric); the new side users_v2(id, full_name, email, email_domain, extra)
and orders(id, price_cents bigint). [rewrite] maps them with a rename, an up
expression (email_domain from email), a down expression (nickname from
full_name) and a retyped column (price <-> price_cents, renamed with a value
each way). legacy and extra have no counterpart and no expression.

- A client of one dialect routed to the other path reads every defined
  column through its expression, in the simple and the extended protocol
  (a named prepared statement run twice); each answer is compared row by row
  with what the same question gets from the client's own side directly,
  and its columns' names, types and type modifiers with the description the
  client's own side gives (an expression column is read cast to the type the
  column has on the client's side).
- A read of legacy/extra on the path that lacks it is refused with 0A000
  naming it; the session and the proxy keep serving. (Writes through the
  expressions: test_updown_writes.py.)
- SHOW MAPPING lists every column of both pairs; SHOW REWRITE shows the
  expression.
- --check: an expression that does not parse, one reading a column the other
  side lacks, and a NOT NULL column without default or expression are
  errors with file:line; a catalog that cannot be read is a warning.
"""

import os
import struct
import subprocess

import psycopg2
import pytest

import pgwire
from conftest import pgt_bin, started_server, unique
from twopaths import Admin, TwoPathLayout, created

pytestmark = pytest.mark.proxy_only

OLD_OBJECTS = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                    nickname text, legacy int);
CREATE TABLE orders (id int PRIMARY KEY, price numeric(12,2) NOT NULL);
INSERT INTO users SELECT g, 'First' || g || ' Last' || g, 'u' || g || '@d' || (g % 3) || '.example',
                         'First' || g, g FROM generate_series(1, 30) g;
INSERT INTO orders SELECT g, g * 1.25 FROM generate_series(1, 40) g;
"""

NEW_OBJECTS = """
CREATE TABLE users_v2 (id int PRIMARY KEY, full_name text NOT NULL, email text NOT NULL,
                       email_domain text, extra int);
CREATE TABLE orders (id int PRIMARY KEY, price_cents bigint NOT NULL);
INSERT INTO users_v2 SELECT g, 'First' || g || ' Last' || g, 'u' || g || '@d' || (g % 3) || '.example',
                            'd' || (g % 3) || '.example', -g FROM generate_series(1, 30) g;
INSERT INTO orders SELECT g, g * 125 FROM generate_series(1, 40) g;
"""

RULES = """
[rewrite]
table.users = users_v2
column.users.name = full_name
up.users_v2.email_domain = split_part(email, '@', 2)   ; new-only, from old's columns
down.users.nickname = split_part(full_name, ' ', 1)    ; old-only, from new's columns
column.orders.price = price_cents
up.orders.price_cents = (price * 100)::bigint
down.orders.price = price_cents / 100.0
"""


class Layout(TwoPathLayout):
    """The two layouts of twopaths, and "servers": a schema of database app
    on each of two PostgreSQL servers."""

    def __init__(self, pg, kind, second=None):
        super().__init__(pg, "schemas" if kind == "servers" else kind, unique("ud"))
        self.servers = {"old": pg, "new": second if kind == "servers" else pg}

    def objects(self, role):
        return OLD_OBJECTS if role == "old" else NEW_OBJECTS

    def create(self):
        if self.servers["new"] is self.pg:
            return super().create()
        for role, server in self.servers.items():
            schema = self.where[role][1]
            server.sql("SET ROLE app; CREATE SCHEMA %s; SET search_path = %s;%s"
                       % (schema, schema, self.objects(role)))

    def drop(self):
        if self.servers["new"] is self.pg:
            return super().drop()
        for role, server in self.servers.items():
            server.sql("DROP SCHEMA IF EXISTS %s CASCADE" % self.where[role][1])

    def sql(self, role, query):
        db, schema = self.where[role]
        return self.servers[role].sql("SET search_path = %s; %s" % (schema, query), dbname=db)

    @property
    def paths(self):
        out = super().paths
        for role, p in out.items():
            p["user"] = "app"   # the catalog is read as app (its secret is in auth_file)
            p["host"], p["port"] = self.servers[role].host, self.servers[role].port
        return out


@pytest.fixture(scope="module")
def second_pg():
    """A second PostgreSQL server, for the layout with a path on each."""
    with started_server() as server:
        yield server


@pytest.fixture(params=["schemas", "databases", "servers"])
def layout(request, pg):
    second = request.getfixturevalue("second_pg") if request.param == "servers" else None
    yield from created(Layout(pg, request.param, second))


def config(force_path, rules=RULES):
    return ("\n[migration]\nold = old\nnew = new\nsalt = %s\nversion.v1 = old\nversion.v2 = new\n"
            "%s\n[flags]\ncanary_percent = 0\ndual_write = off\nforce_path = %s\n"
            % (unique("salt"), rules, force_path))


def start(proxy_factory, layout, force_path):
    return proxy_factory(paths=layout.paths, extra=config(force_path))


def rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [tuple(str(v) if v is not None else None for v in r) for r in cur.fetchall()], \
            [d[0] for d in cur.description]


def direct(layout, role, sql):
    return [tuple(str(v) if v is not None else None for v in r) for r in layout.sql(role, sql)]


# ---- the extended protocol, by hand ---------------------------------------------------

def extended(c, sql, params, name=b"", parse=True):
    """Parse (when PARSE) / Bind / Describe portal / Execute / Sync; returns
    (fields, rows), fields as (name, type oid, type modifier), or raises
    pgwire.WireError."""
    msgs = b""
    if parse:
        msgs += pgwire.message(b"P", name + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))
    bind = b"\0" + name + b"\0" + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        v = str(p).encode()
        bind += struct.pack("!i", len(v)) + v
    bind += struct.pack("!H", 0)
    msgs += pgwire.message(b"B", bind) + pgwire.message(b"D", b"P\0")
    msgs += pgwire.message(b"E", b"\0" + struct.pack("!i", 0)) + pgwire.message(b"S")
    c.send(msgs)
    names, out, err = [], [], None
    while True:
        kind, body = c.recv_message()
        if kind == b"T":
            (n,) = struct.unpack("!H", body[:2])
            pos = 2
            for _ in range(n):
                end = body.index(b"\0", pos)
                typ, _, typmod = struct.unpack("!IhI", body[end + 7:end + 17])
                names.append((body[pos:end].decode(), typ, typmod))
                pos = end + 1 + 18
        elif kind == b"D":
            out.append(pgwire.parse_data_row(body))
        elif kind == b"E":
            err = pgwire.WireError(pgwire.parse_error_fields(body))
        elif kind == b"Z":
            if err:
                raise err
            return names, out


# ---- reads ------------------------------------------------------------------------------

V1_READS = [
    # (v1 SQL run on new, the same question asked of old directly)
    ("SELECT id, nickname, name, email FROM users ORDER BY id",) * 2,
    ("SELECT u.id, u.nickname FROM users u WHERE u.nickname LIKE 'First1%' ORDER BY u.id",) * 2,
    ("SELECT nickname, count(*) FROM users GROUP BY nickname ORDER BY nickname",) * 2,
    ("WITH n AS (SELECT id, nickname FROM users) SELECT nickname FROM n WHERE id < 5 ORDER BY 1",) * 2,
    ("SELECT id, price FROM orders WHERE price > 20 ORDER BY price DESC",) * 2,
    ("SELECT o.id, u.nickname, o.price FROM orders o JOIN users u ON u.id = o.id "
     "WHERE o.price < 10 ORDER BY o.id",) * 2,
    ("SELECT sum(price) FROM orders WHERE id IN (SELECT id FROM users WHERE nickname <> '')",) * 2,
]

V2_READS = [
    ("SELECT id, email_domain, full_name FROM users_v2 ORDER BY id",) * 2,
    ("SELECT email_domain, count(*) FROM users_v2 GROUP BY email_domain ORDER BY email_domain",) * 2,
    ("SELECT x.id FROM users_v2 x WHERE x.email_domain = 'd1.example' ORDER BY x.id",) * 2,
    ("SELECT id, price_cents FROM orders WHERE price_cents BETWEEN 500 AND 1000 ORDER BY id",) * 2,
    ("SELECT d FROM (SELECT email_domain AS d FROM users_v2) s GROUP BY d ORDER BY d",) * 2,
]


@pytest.mark.parametrize("dialect", ["v1", "v2"])
def test_reads_through_expressions(proxy_factory, layout, dialect):
    """A v1 client on new (down expressions) and a v2 client on old (up
    expressions) see the columns of their own schema, simple and extended,
    row by row equal to their own side's answer."""
    native, other = ("old", "new") if dialect == "v1" else ("new", "old")
    p = start(proxy_factory, layout, force_path=other)
    reads = V1_READS if dialect == "v1" else V2_READS
    opts = {} if dialect == "v1" else {"options": "-c pgturnout.version=v2"}
    conn = p.connect(**opts)
    w = p.wire_login(**opts)
    db, schema = layout.where[native]
    own = pgwire.Conn(layout.servers[native].host, layout.servers[native].port)
    own.startup("app", db, "app", options="-c search_path=%s" % schema)
    try:
        for sql, same in reads:
            got, names = rows(conn, sql)
            want = direct(layout, native, same)
            assert got == want, (sql, got[:5], want[:5])
            fields, ext = extended(w, sql, [])
            assert [f[0] for f in fields] == names, (sql, fields, names)
            assert ext == want, (sql, ext[:5], want[:5])
            # names, types and type modifiers as the client's own side describes them
            own_fields, _ = extended(own, same, [])
            assert fields == own_fields, (sql, fields, own_fields)
        # a named prepared statement with a parameter, run twice
        sql = ("SELECT id, nickname FROM users WHERE id <= $1 ORDER BY id" if dialect == "v1"
               else "SELECT id, email_domain FROM users_v2 WHERE id <= $1 ORDER BY id")
        col = "nickname" if dialect == "v1" else "email_domain"
        table = "users" if dialect == "v1" else "users_v2"
        for k, limit in enumerate((3, 7)):
            fields, got = extended(w, sql, [limit], name=b"ud", parse=(k == 0))
            assert [f[0] for f in fields] == ["id", col]
            want = direct(layout, native, "SELECT id, %s FROM %s WHERE id <= %d ORDER BY id"
                          % (col, table, limit))
            assert got == want
    finally:
        conn.close()
        w.terminate()
        own.terminate()
    # the server really ran the other side's table
    assert layout.sql(other, "SELECT count(*) FROM %s" % ("users_v2" if other == "new" else "users"))[0][0] == 30


def test_unservable_column_refused(proxy_factory, layout):
    """legacy (old only) read on new and extra (new only) read on old: 0A000
    naming the column; the session goes on."""
    p = start(proxy_factory, layout, force_path="new")
    conn = p.connect()
    try:
        for sql in ("SELECT legacy FROM users", "SELECT id FROM users u WHERE u.legacy > 3"):
            with pytest.raises(psycopg2.Error) as ei:
                rows(conn, sql)
            assert ei.value.pgcode == "0A000", ei.value
            assert '"legacy"' in str(ei.value) and "down expression" in str(ei.value)
        # a write of a column computed by an expression goes through it
        # (test_updown_writes.py has the rest)
        with conn.cursor() as cur:
            cur.execute("UPDATE orders SET price = 3 WHERE id = 1")
            assert cur.rowcount == 1
        assert layout.sql("new", "SELECT price_cents FROM orders WHERE id = 1") == [(300,)]
        got, _ = rows(conn, "SELECT id, nickname FROM users WHERE id = 2")
        assert got == [("2", "First2")]
    finally:
        conn.close()
    p2 = start(proxy_factory, layout, force_path="old")
    conn = p2.connect(options="-c pgturnout.version=v2")
    try:
        with pytest.raises(psycopg2.Error) as ei:
            rows(conn, "SELECT extra FROM users_v2")
        assert ei.value.pgcode == "0A000" and '"extra"' in str(ei.value), ei.value
        assert rows(conn, "SELECT email_domain FROM users_v2 WHERE id = 4")[0] == [("d1.example",)]
    finally:
        conn.close()


def test_show_mapping_and_rewrite(proxy_factory, layout):
    p = start(proxy_factory, layout, force_path="none")
    admin = Admin(p)
    try:
        got = {(r["old_table"], r["old_column"], r["new_column"]): (r["kind"], r["up"], r["down"])
               for r in admin.run("SHOW MAPPING")}
        assert got == {
            ("users", "name", "full_name"): ("rename", None, None),
            ("users", "", "email_domain"): ("up", "split_part(email, '@', 2)", None),
            ("users", "nickname", ""): ("down", None, "split_part(full_name, ' ', 1)"),
            ("orders", "price", "price_cents"): ("rename+up+down", "(price * 100)::bigint",
                                                 "price_cents / 100.0"),
            ("users", "id", "id"): ("same", None, None),
            ("users", "email", "email"): ("same", None, None),
            ("users", "legacy", ""): ("default-only", None, None),
            ("users", "", "extra"): ("default-only", None, None),
            ("orders", "id", "id"): ("same", None, None),
        }, got
        r = admin.run("SHOW REWRITE 'SELECT email_domain FROM users_v2 WHERE id = 1' FROM new")
        old = [x for x in r if x["path"] == "old"][0]["text"]
        # cast to the type email_domain has on new (the catalogs were read at start)
        assert old == ("SELECT ((split_part(email, '@', 2))::text) AS email_domain FROM users "
                       "WHERE id = 1"), old
    finally:
        admin.close()


# ---- --check -----------------------------------------------------------------------------

def check(proxy_factory, layout, rules, tmp_path, paths=None):
    """Runs pgturnout --check on a config with RULES; (exit code, stderr, config path)."""
    from conftest import render_config, Proxy
    path = str(tmp_path / ("check-%s.ini" % unique("c")))
    fake = Proxy(layout.pg, str(tmp_path), "127.0.0.1", 1)
    fake.userlist_path = str(tmp_path / "userlist.txt")
    with open(fake.userlist_path, "w") as f:
        f.write('"app" "app"\n"admin" "admin"\n')
    with open(path, "w") as f:
        f.write(render_config(fake, layout.pg, paths=paths or layout.paths,
                              extra=config("none", rules)))
    r = subprocess.run([pgt_bin(), "--check", "-c", path], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stderr, path


def line_of(path, text):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise AssertionError(text)


def test_check_against_catalog(proxy_factory, layout, tmp_path):
    rc, err, path = check(proxy_factory, layout, RULES, tmp_path)
    assert rc == 0 and "warning" not in err, err
    # an expression that does not parse: found at load, with its line
    bad = RULES.replace("split_part(email, '@', 2)", "split_part(email, '@', 2")
    rc, err, path = check(proxy_factory, layout, bad, tmp_path)
    assert rc == 1 and "%s:%d:" % (path, line_of(path, "up.users_v2.email_domain")) in err, err
    assert "does not parse" in err
    # a column the other side lacks (the catalog says)
    bad = RULES.replace("split_part(email, '@', 2)", "split_part(emial, '@', 2)")
    rc, err, path = check(proxy_factory, layout, bad, tmp_path)
    assert rc == 1 and "%s:%d:" % (path, line_of(path, "up.users_v2.email_domain")) in err, err
    assert "emial" in err and "old path" in err
    # a qualified reference
    bad = RULES.replace("split_part(full_name, ' ', 1)", "split_part(u.full_name, ' ', 1)")
    rc, err, path = check(proxy_factory, layout, bad, tmp_path)
    assert rc == 1 and "%s:%d:" % (path, line_of(path, "down.users.nickname")) in err, err
    # NOT NULL columns left with nothing to fill them: new's price_cents (no
    # rename, no up expression), old's name and new's full_name (no rename)
    bad = "\n".join(l for l in RULES.splitlines()
                    if not l.startswith(("column.", "up.orders")))
    rc, err, path = check(proxy_factory, layout, bad, tmp_path)
    assert rc == 1, err
    for col in ("price_cents", "name", "full_name"):
        assert "column %s is NOT NULL without a default" % col in err, err
    assert "column price is NOT NULL" not in err, err
    # a catalog that cannot be read: a warning, and the file is valid
    paths = layout.paths
    paths["new"]["port"] = 1
    rc, err, path = check(proxy_factory, layout, RULES, tmp_path, paths=paths)
    assert rc == 0 and "warning:" in err and "catalog of the new path" in err, err
