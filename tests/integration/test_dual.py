"""Dual writes (SPEC §7): every write a session sends to its primary path is
mirrored, rewritten, to the shadow path; see docs/dual-writes.md.

Most tests run for two layouts of the old and new paths (the `layout`
fixture):

- `schemas`: one database, `users(id, name, email)` in schema p_old_*,
  `users_v2(id, full_name, email)` in p_new_*; the paths differ by their
  search_path, and `[rewrite] table.users = users_v2`,
  `column.users.name = full_name` translate between them;
- `databases`: two databases with the same `users(id, name, email)`, no
  rewrite rules.

Both sides also have `call_log(n)` and `log_call()`, a volatile function that
appends to it: a SELECT calling it is a read, so the shadow's log must stay
empty.

"Identical" always means: the same row count and the same md5 of the rows
ordered by id, under the column mapping. Concurrent workloads give each
pgbench client its own id range (autocommit writes of different sessions to
the same rows may reach the shadow in another order; see the docs).

Covered: mixed writes in autocommit and in transactions, simple and extended
protocol (pgbench -M prepared, raw pipelined Parse/Bind/Execute, pgbench
\\startpipeline), v2 clients mirrored to old through the reverse rewrite,
rollbacks and savepoints, COPY FROM, reads not mirrored, the journal (shadow
table dropped, shadow unreachable, shadow backends terminated during pgbench,
torn tail at restart), fail mode, and the acceptance run (pgbench tpcb-like
with 8 clients: both databases identical afterwards).
"""

import json
import os
import re
import struct
import subprocess
import threading
import time
import urllib.request
import zlib

import psycopg2
import pytest

import pgwire
from pgwire import msg_bind, msg_execute, msg_parse, msg_sync, read_results
from conftest import BIG, PASSWORDS, free_port, pgt_bin, unique
from twopaths import Admin as BaseAdmin, TwoPathLayout, wait_for

pytestmark = pytest.mark.proxy_only

ACCEPTANCE_SECONDS = 30 if BIG else 10
TERMINATE_SECONDS = 20 if BIG else 8

COMMON_OBJECTS = """
CREATE TABLE call_log (n int);
CREATE FUNCTION log_call() RETURNS void LANGUAGE sql VOLATILE
    SET search_path FROM CURRENT AS $$ INSERT INTO call_log VALUES (1) $$;
"""


# ---- layouts ----------------------------------------------------------------

class Layout(TwoPathLayout):
    """Each side's users table and name column: users_v2.full_name on the
    new path of the schemas layout, users.name everywhere else."""

    def __init__(self, pg, kind, objects=True):
        super().__init__(pg, kind, unique("dw"))
        self.with_objects = objects

    def table(self, role):
        return "users_v2" if self.kind == "schemas" and role == "new" else "users"

    def name_col(self, role):
        return "full_name" if self.kind == "schemas" and role == "new" else "name"

    def objects(self, role):
        if not self.with_objects:
            return "SELECT 1"
        return ("CREATE TABLE %s (id int PRIMARY KEY, %s text, email text);"
                % (self.table(role), self.name_col(role))) + COMMON_OBJECTS + "SELECT 1"

    def rows(self, role):
        return self.sql(role, "SELECT id, %s, email FROM %s ORDER BY id"
                        % (self.name_col(role), self.table(role)))

    def digest(self, role):
        """(count, md5) of the users rows ordered by id, name column mapped."""
        return tuple(self.sql(role, (
            "SELECT count(*), coalesce(md5(string_agg(format('%%s|%%s|%%s', id, "
            "coalesce(%s, '<null>'), coalesce(email, '<null>')), ',' ORDER BY id)), '') "
            "FROM %s") % (self.name_col(role), self.table(role)))[0])

    def assert_identical(self):
        old, new = self.digest("old"), self.digest("new")
        if old != new:
            raise AssertionError("old %r != new %r\nold rows: %r\nnew rows: %r"
                                 % (old, new, self.rows("old")[:50], self.rows("new")[:50]))
        return old[0]

    def calls(self, role):
        return self.sql(role, "SELECT count(*) FROM call_log")[0][0]

    def drop_users(self, role):
        self.sql(role, "DROP TABLE %s" % self.table(role))


@pytest.fixture(params=["schemas", "databases"])
def layout(request, pg):
    lay = Layout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


@pytest.fixture
def schemas_layout(pg):
    lay = Layout(pg, "schemas")
    lay.create()
    yield lay
    lay.drop()


@pytest.fixture
def databases_layout(pg):
    lay = Layout(pg, "databases")
    lay.create()
    yield lay
    lay.drop()


@pytest.fixture
def bench_layout(pg):
    """Two databases initialised by pgbench -i (scale 1), nothing else."""
    lay = Layout(pg, "databases", objects=False)
    lay.create()
    for role in ("old", "new"):
        r = subprocess.run(["pgbench", "-i", "-q", "-s", "1"], capture_output=True, text=True,
                           env=direct_env(pg, lay.where[role][0]), timeout=120)
        assert r.returncode == 0, r.stderr
    yield lay
    lay.drop()


def direct_env(pg, dbname):
    e = dict(os.environ)
    e.update(PGHOST=pg.host, PGPORT=str(pg.port), PGUSER="app", PGDATABASE=dbname,
             PGPASSWORD=PASSWORDS["app"], PGSSLMODE="disable")
    return e


def dual_config(layout, flags=None):
    f = {"canary_percent": "0", "dual_write": "on", "shadow_failure": "journal",
         "force_path": "none"}
    f.update(flags or {})
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if layout.kind == "schemas":
        text += "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
    text += "\n[flags]\n%s\n" % "\n".join("%s = %s" % kv for kv in f.items())
    return text


def start(proxy_factory, layout, flags=None, settings=None, paths=None):
    return proxy_factory(settings=settings, paths=paths or layout.paths,
                         extra=dual_config(layout, flags))


# ---- helpers ------------------------------------------------------------------

class Admin(BaseAdmin):
    def journal(self):
        return self.run("SHOW JOURNAL")


def admin_run(proxy, command):
    a = Admin(proxy)
    try:
        return a.run(command)
    finally:
        a.close()


def journal_file(proxy):
    return os.path.join(proxy.dir, "journal", "dual_write_journal.log")


def read_journal(path):
    """The journal's entries; every line must be complete and its CRC good."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), "journal has a torn tail: %r" % data[-200:]
    out = []
    for line in data.splitlines():
        crc, _, obj = line.partition(b" ")
        assert int(crc, 16) == zlib.crc32(obj), "bad checksum: %r" % line
        e = json.loads(obj)
        assert set(e) == {"time", "session", "path", "fingerprint", "statement", "parameters",
                          "error"}, e
        out.append(e)
    return out


def run(conn, *statements):
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


def pgbench(env, args, timeout=150):
    r = subprocess.run(["pgbench", "-n"] + [str(a) for a in args], capture_output=True,
                       text=True, env=env, timeout=timeout)
    out = r.stdout
    print(out)
    print(r.stderr[-3000:])
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert r.returncode == 0, (out, r.stderr[-3000:])
    assert processed and int(processed.group(1)) > 0, out
    assert failed is None or int(failed.group(1)) == 0, out
    return int(processed.group(1))


# Raw extended-protocol messages (pgwire knows the simple protocol only).

def simple(conn, sql):
    """One simple Query on a pgwire connection: (tags, error fields, status)."""
    conn.send(pgwire.message(b"Q", sql.encode() + b"\0"))
    return read_results(conn, 1)[0]


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def metric(text, name, path):
    m = re.search(r'^%s\{path="%s"\} (\d+)' % (re.escape(name), path), text, re.M)
    return int(m.group(1)) if m else None


# ---- mirrored workloads ---------------------------------------------------------

def test_mixed_writes_simple_protocol(proxy_factory, layout):
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c,
            "INSERT INTO users (id, name, email) VALUES (1, 'alice', 'a@x'), (2, 'bob', NULL), "
            "(3, 'carol', 'c@x'), (4, 'dave', 'd@x')",
            "UPDATE users SET email = 'b@x' WHERE id = 2",
            "UPDATE users SET name = name || '!' WHERE id >= 3",
            "DELETE FROM users WHERE id = 4",
            "INSERT INTO users (id, name, email) VALUES (3, 'carla', 'x') "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            "INSERT INTO users (id, name, email) VALUES (3, 'ignored', 'x') ON CONFLICT DO NOTHING",
            # several statements in one Query
            "INSERT INTO users (id, name, email) VALUES (5, 'eve', 'e@x'); "
            "UPDATE users SET email = upper(email) WHERE id = 5; "
            "INSERT INTO users (id, name) SELECT g, 'gen' || g FROM generate_series(10, 20) g")
        # an explicit transaction (psycopg2 sends BEGIN, then each statement)
        c.autocommit = False
        run(c,
            "INSERT INTO users (id, name, email) VALUES (30, 'tx', 't@x')",
            "UPDATE users SET name = 'tx2' WHERE id = 30",
            "DELETE FROM users WHERE id BETWEEN 10 AND 12",
            "INSERT INTO users (id, name) VALUES (30, 'up') "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = NULL")
        c.commit()
        c.autocommit = True
        # a transaction in one Query
        run(c, "BEGIN; UPDATE users SET email = 'multi' WHERE id IN (1, 2); "
               "DELETE FROM users WHERE id = 20; COMMIT")
    finally:
        c.close()
    assert layout.assert_identical() == 12
    rows = dict((r[0], r[1:]) for r in layout.rows("old"))
    assert (rows[1], rows[3], rows[5], rows[30]) == (("alice", "multi"), ("carla", "c@x"),
                                                     ("eve", "E@X"), ("up", None)), rows
    stats = Admin(p).stats()
    assert int(stats["new"]["shadow_writes"]) >= 12, stats
    assert int(stats["new"]["mismatches"]) == 0, stats
    assert int(stats["new"]["shadow_errors"]) == 0, stats
    assert read_journal(journal_file(p)) == []


WORKLOAD = """\\set id :client_id * 1000 + random(1, 40)
\\set other :client_id * 1000 + random(1, 40)
INSERT INTO users (id, name, email) VALUES (:id, 'n' || :id, 'e' || :id) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name || 'u';
UPDATE users SET email = 'upd' || :other WHERE id = :other;
BEGIN;
INSERT INTO users (id, name, email) VALUES (:other + 500, 'tx', NULL) ON CONFLICT (id) DO NOTHING;
UPDATE users SET name = name || 'x' WHERE id = :id;
DELETE FROM users WHERE id = :other + 500 AND :id % 3 = 0;
END;
DELETE FROM users WHERE id = :other AND :other % 7 = 0;
"""


@pytest.mark.parametrize("mode", ["prepared", "extended", "simple"])
def test_mixed_writes_pgbench(proxy_factory, layout, tmp_path, mode):
    p = start(proxy_factory, layout)
    script = tmp_path / "mixed.sql"
    script.write_text(WORKLOAD)
    n = pgbench(p.env(), ["-c", "4", "-j", "2", "-t", "80", "-M", mode, "-f", script])
    assert n == 320
    assert layout.assert_identical() > 0
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats
    assert read_journal(journal_file(p)) == []


def test_v2_client_writes_reach_old_through_the_reverse_rewrite(proxy_factory, layout,
                                                                 tmp_path):
    p = start(proxy_factory, layout)
    t, col = layout.table("new"), layout.name_col("new")
    c = p.connect(options="-c pgturnout.version=v2")
    try:
        run(c,
            "INSERT INTO %s (id, %s, email) VALUES (1, 'Alice Liddell', 'a@x'), (2, 'Bob', NULL)"
            % (t, col),
            "UPDATE %s SET %s = %s || ' Builder' WHERE id = 2" % (t, col, col),
            "INSERT INTO %s AS u (id, %s) VALUES (1, 'Alice L.') "
            "ON CONFLICT (id) DO UPDATE SET %s = EXCLUDED.%s" % (t, col, col, col))
        c.autocommit = False
        run(c, "INSERT INTO %s (id, %s, email) VALUES (3, 'Carol', 'c@x')" % (t, col),
            "DELETE FROM %s WHERE id = 1" % t)
        c.commit()
    finally:
        c.close()
    script = tmp_path / "v2.sql"
    script.write_text("\\set id 100 + :client_id * 100 + random(1, 30)\n"
                      "INSERT INTO %s (id, %s, email) VALUES (:id, 'v2-' || :id, 'x') "
                      "ON CONFLICT (id) DO UPDATE SET %s = %s.%s || '+';\n"
                      % (t, col, col, t, col))
    env = p.env()
    env["PGOPTIONS"] = "-c pgturnout.version=v2"
    pgbench(env, ["-c", "2", "-j", "2", "-t", "50", "-M", "prepared", "-f", script])
    assert layout.assert_identical() > 2
    rows = dict((r[0], r[1]) for r in layout.rows("old"))
    assert rows[2] == "Bob Builder" and 1 not in rows
    stats = Admin(p).stats()
    assert int(stats["old"]["shadow_writes"]) > 0, stats
    assert int(stats["old"]["mismatches"]) == 0, stats


def test_rolled_back_transaction_and_savepoints(proxy_factory, layout):
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name, email) VALUES (1, 'one', 'o@x'), (2, 'two', 't@x')")
        c.autocommit = False
        run(c, "INSERT INTO users (id, name) VALUES (3, 'three')",
            "UPDATE users SET name = 'changed' WHERE id = 1", "DELETE FROM users WHERE id = 2")
        c.rollback()
        assert layout.digest("old")[0] == 2 and layout.digest("new")[0] == 2
        layout.assert_identical()
        # savepoints: one rolled back, one released, one after a primary error
        run(c, "INSERT INTO users (id, name) VALUES (10, 'kept')",
            "SAVEPOINT a",
            "INSERT INTO users (id, name) VALUES (11, 'undone')",
            "UPDATE users SET name = 'undone' WHERE id = 1",
            "ROLLBACK TO SAVEPOINT a",
            "SAVEPOINT b",
            "UPDATE users SET email = 'released' WHERE id = 2",
            "RELEASE SAVEPOINT b",
            "SAVEPOINT c")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            run(c, "INSERT INTO users (id, name) VALUES (10, 'duplicate')")
        run(c, "ROLLBACK TO SAVEPOINT c", "INSERT INTO users (id, name) VALUES (12, 'after')")
        c.commit()
        # a whole transaction rolled back after a savepoint
        run(c, "SAVEPOINT s", "DELETE FROM users", "RELEASE s")
        c.rollback()
        c.autocommit = True
        # rolled back in one Query
        run(c, "BEGIN; DELETE FROM users WHERE id = 10; ROLLBACK")
    finally:
        c.close()
    assert layout.assert_identical() == 4
    rows = dict((r[0], r[1:]) for r in layout.rows("old"))
    assert rows == {1: ("one", "o@x"), 2: ("two", "released"), 10: ("kept", None),
                    12: ("after", None)}, rows
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats
    assert read_journal(journal_file(p)) == []


def test_prepare_transaction_is_refused_and_changes_neither_side(proxy_factory, schemas_layout):
    """Two-phase commit cannot be mirrored: PREPARE TRANSACTION fails with
    0A000 (simple and extended protocol), the transaction aborts, and after
    the rollback neither side has its writes."""
    layout = schemas_layout
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name) VALUES (1, 'kept')")
        c.autocommit = False
        run(c, "INSERT INTO users (id, name) VALUES (2, 'two')")
        with pytest.raises(psycopg2.errors.FeatureNotSupported) as ei:
            run(c, "PREPARE TRANSACTION 'pgt_2pc'")
        assert "PREPARE TRANSACTION is not supported while dual writes are on" in str(ei.value)
        c.rollback()
    finally:
        c.close()
    # The same through the extended protocol (Parse/Bind/Execute/Sync).
    w = p.wire_login()
    try:
        assert simple(w, "BEGIN")[1] is None
        assert simple(w, "INSERT INTO users (id, name) VALUES (3, 'three')")[1] is None
        w.send(msg_parse("", "PREPARE TRANSACTION 'pgt_2pc_ext'") + msg_bind("", []) +
               msg_execute() + msg_sync())
        tags, err, status = read_results(w, 1)[0]
        assert err is not None and err.get("C") == "0A000", (tags, err)
        assert status == "E"
        assert simple(w, "ROLLBACK")[2] == "I"
    finally:
        w.close()
    assert layout.pg.sql("SELECT count(*) FROM pg_prepared_xacts")[0][0] == 0
    assert layout.digest("old")[0] == 1
    layout.assert_identical()


def test_pipelined_extended_writes_are_mirrored_in_order(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout)
    w = p.wire_login()
    try:
        ins = "INSERT INTO users (id, name, email) VALUES ($1, $2, $3)"
        upd = "UPDATE users SET name = name || $2 WHERE id = $1"
        batch = msg_parse("", ins) + msg_bind("", [1, "a", "x"]) + msg_execute()
        batch += msg_parse("upd", upd)
        for ch in "bc":
            batch += msg_bind("upd", [1, ch]) + msg_execute()
        batch += msg_sync()
        # more requests sent before any answer arrived: each Sync is one request
        for ch in "def":
            batch += msg_bind("upd", [1, ch]) + msg_execute() + msg_sync()
        batch += msg_parse("", "BEGIN") + msg_bind("", []) + msg_execute() + msg_sync()
        batch += msg_bind("upd", [1, "g"]) + msg_execute()
        batch += msg_parse("", ins) + msg_bind("", [2, None, "y"]) + msg_execute() + msg_sync()
        batch += msg_parse("", "COMMIT") + msg_bind("", []) + msg_execute() + msg_sync()
        w.send(batch)
        results = read_results(w, 7)
        assert [r[1] for r in results] == [None] * 7, results
        assert results[0][0] == ["INSERT 0 1", "UPDATE 1", "UPDATE 1"], results
        assert [r[2] for r in results] == ["I", "I", "I", "I", "T", "T", "I"], results
    finally:
        w.terminate()
    assert layout.rows("old") == [(1, "abcdefg", "x"), (2, None, "y")]
    layout.assert_identical()
    # pgbench's own pipelines, several clients
    script = tmp_path / "pipe.sql"
    script.write_text(
        "\\set id :client_id * 1000 + random(1, 20)\n"
        "\\startpipeline\n"
        "INSERT INTO users (id, name, email) VALUES (:id, 'p', 'e') "
        "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email || '1';\n"
        "UPDATE users SET name = name || 'y' WHERE id = :id;\n"
        "UPDATE users SET email = email || 'z' WHERE id = :id;\n"
        "\\endpipeline\n")
    pgbench(p.env(), ["-c", "3", "-j", "2", "-t", "60", "-M", "extended", "-f", script])
    assert layout.assert_identical() > 2
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats


def test_copy_from_is_mirrored(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout)
    data = tmp_path / "users.csv"
    data.write_text("".join("%d,name %d,%s\n" % (i, i, "" if i % 10 == 0 else "m%d@x" % i)
                            for i in range(1, 2001)))
    script = tmp_path / "copy.sql"
    script.write_text(
        "\\copy users (id, name, email) FROM '%s' WITH (FORMAT csv)\n"
        "BEGIN;\n"
        "\\copy users (id, name) FROM '%s' WITH (FORMAT csv, HEADER false)\n"
        "UPDATE users SET email = upper(email) WHERE id <= 10;\n"
        "COMMIT;\n"
        "BEGIN;\n"
        "\\copy users (id, name) FROM '%s' WITH (FORMAT csv)\n"
        "ROLLBACK;\n" % (data, tmp_path / "more.csv", tmp_path / "more2.csv"))
    (tmp_path / "more.csv").write_text("".join("%d,more %d\n" % (i, i) for i in range(3000, 3100)))
    (tmp_path / "more2.csv").write_text("".join("%d,gone\n" % i for i in range(5000, 5100)))
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
                       capture_output=True, text=True, env=p.env(), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "COPY 2000" in r.stdout and "COPY 100" in r.stdout, r.stdout
    assert layout.assert_identical() == 2100
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats
    assert read_journal(journal_file(p)) == []


def test_reads_are_not_mirrored(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        for _ in range(5):
            run(c, "SELECT log_call()")
        run(c, "SELECT count(*) FROM users", "SELECT log_call() FROM generate_series(1, 3)")
        # inside a transaction that writes (the shadow transaction is open)
        c.autocommit = False
        run(c, "INSERT INTO users (id, name) VALUES (1, 'w')", "SELECT log_call()",
            "SELECT * FROM users WHERE id = 1 FOR UPDATE", "SELECT log_call()")
        c.commit()
    finally:
        c.close()
    script = tmp_path / "reads.sql"
    script.write_text("SELECT log_call();\n")
    pgbench(p.env(), ["-c", "2", "-j", "2", "-t", "10", "-M", "prepared", "-f", script])
    assert layout.calls("old") == 5 + 3 + 2 + 20
    assert layout.calls("new") == 0
    layout.assert_identical()
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats


# ---- the journal ------------------------------------------------------------------

def test_journal_when_the_shadow_table_is_gone(proxy_factory, layout):
    http = free_port()
    p = start(proxy_factory, layout, settings={"http_listen": "127.0.0.1:%d" % http})
    c = p.connect()
    run(c, "INSERT INTO users (id, name) VALUES (1, 'before')")
    layout.drop_users("new")
    lost = []
    try:
        for i in range(2, 5):
            run(c, "INSERT INTO users (id, name, email) VALUES (%d, 'n%d', NULL)" % (i, i))
            lost.append("INSERT")
        run(c, "UPDATE users SET email = 'e' WHERE id = 2")
        lost.append("UPDATE")
        run(c, "SELECT * FROM users")  # a read: nothing to lose
        c.autocommit = False
        run(c, "INSERT INTO users (id, name) VALUES (5, 'tx')", "SELECT 1",
            "DELETE FROM users WHERE id = 3")
        c.commit()
        lost += ["BEGIN", "INSERT", "DELETE"]
        run(c, "INSERT INTO users (id, name) VALUES (6, 'rolled back')")
        c.rollback()  # not committed on the primary: nothing to journal
        c.autocommit = True
        assert len(read_journal(journal_file(p))) == len(lost)
        # extended protocol: the parameters are journaled too
        w = p.wire_login()
        try:
            w.send(msg_parse("", "INSERT INTO users (id, name, email) VALUES ($1, $2, $3)")
                   + msg_bind("", [7, "it's", None]) + msg_execute() + msg_sync())
            assert read_results(w, 1)[0][1] is None
        finally:
            w.terminate()
        lost.append("INSERT")
    finally:
        c.close()
    assert sorted(r[0] for r in layout.rows("old")) == [1, 2, 4, 5, 7]
    entries = read_journal(journal_file(p))
    assert [e["statement"].split()[0].upper() for e in entries] == lost, entries
    for e in entries:
        assert e["path"] == "new" and re.match(r"^[0-9a-f]{16}$", e["fingerprint"]), e
        assert e["error"], e
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"]), e
    if layout.kind == "schemas":
        assert "users_v2" in entries[0]["statement"], entries[0]
    # a prepared INSERT's values were captured on old: the journal holds them
    # as written (literals), not the statement and its parameters
    assert entries[-1]["parameters"] == "", entries[-1]
    assert "E'7'" in entries[-1]["statement"] and "E'it''s'" in entries[-1]["statement"], \
        entries[-1]
    shown = admin_run(p, "SHOW JOURNAL")
    assert [r["statement"] for r in shown] == [e["statement"] for e in entries]
    assert [r["parameters"] or "" for r in shown] == [e["parameters"] for e in entries]
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) >= 5, stats
    assert int(stats["new"]["shadow_errors"]) >= 5, stats
    m = metrics(http)
    assert metric(m, "pgturnout_mismatches_total", "new") == int(stats["new"]["mismatches"]), m
    assert metric(m, "pgturnout_shadow_errors_total", "new") == int(stats["new"]["shadow_errors"])
    assert re.search(r"dual-write mismatch on path new \(fingerprint [0-9a-f]{16}\)", p.log())


def test_v2_write_failing_on_both_sides_is_not_journaled(proxy_factory, layout):
    """A v2 session's autocommit write runs on old first; when old refuses
    it, new (its primary) runs it in a transaction of pgturnout's: a write
    that fails there too lost nothing and is not journaled, one that new
    commits is journaled before its COMMIT (simple and extended protocol)."""
    p = start(proxy_factory, layout)
    t, col = layout.table("new"), layout.name_col("new")
    c = p.connect(options="-c pgturnout.version=v2")
    try:
        run(c, "INSERT INTO %s (id, %s) VALUES (1, 'one')" % (t, col))
        for stmt in ("INSERT INTO %s (id, %s) VALUES (1, 'dup')" % (t, col),
                     "UPDATE %s SET id = 1 / 0 WHERE id = 1" % t):
            with pytest.raises(psycopg2.Error):
                run(c, stmt)
        w = p.wire_login(options="-c pgturnout.version=v2")
        try:
            w.send(msg_parse("", "INSERT INTO %s (id, %s) VALUES ($1, $2)" % (t, col))
                   + msg_bind("", [1, "dup"]) + msg_execute() + msg_sync())
            assert read_results(w, 1)[0][1] is not None  # 23505 on both sides
        finally:
            w.terminate()
        assert read_journal(journal_file(p)) == []
        # a table old lacks: new commits, old lost it, journaled first
        layout.drop_users("old")
        run(c, "INSERT INTO %s (id, %s) VALUES (2, 'two')" % (t, col))
        with pytest.raises(psycopg2.Error):
            run(c, "INSERT INTO %s (id, %s) VALUES (2, 'dup')" % (t, col))
    finally:
        c.close()
    entries = read_journal(journal_file(p))
    assert len(entries) == 1 and entries[0]["path"] == "old", entries
    assert sorted(r[0] for r in layout.rows("new")) == [1, 2]


def test_journal_error_names_the_shadow_sqlstate(proxy_factory, schemas_layout):
    layout = schemas_layout
    p = start(proxy_factory, layout)
    layout.drop_users("new")
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name) VALUES (1, 'a')")
    finally:
        c.close()
    entries = read_journal(journal_file(p))
    assert len(entries) == 1
    assert entries[0]["error"].startswith("42P01 "), entries[0]
    assert "users_v2" in entries[0]["error"], entries[0]


def test_journal_when_the_shadow_is_unreachable(proxy_factory, schemas_layout):
    layout = schemas_layout
    paths = layout.paths
    paths["new"]["port"] = free_port()  # nothing listens there
    p = start(proxy_factory, layout, paths=paths)
    c = p.connect()
    try:
        for i in range(1, 6):
            run(c, "INSERT INTO users (id, name) VALUES (%d, 'n')" % i)
            run(c, "SELECT * FROM users")
            # acknowledged only once its entry is durable
            assert len(read_journal(journal_file(p))) == i
            if i == 3:
                time.sleep(1.2)  # past the reconnect interval: the next boundary retries
        run(c, "UPDATE users SET email = 'x' WHERE id = 1; DELETE FROM users WHERE id = 2")
    finally:
        c.close()
    assert [r[0] for r in layout.rows("old")] == [1, 3, 4, 5]
    entries = read_journal(journal_file(p))
    assert len(entries) == 6, entries
    assert entries[-1]["statement"].startswith("UPDATE") and "DELETE" in entries[-1]["statement"]
    assert all(e["error"] == "shadow path unavailable" for e in entries), entries
    assert len(admin_run(p, "SHOW JOURNAL")) == 6
    assert re.search(r"shadow on path new lost", p.log())
    # replaying the journal makes the shadow whole
    replay(layout, "new", entries)
    layout.assert_identical()


def test_unreachable_shadow_transaction_is_journaled_before_commit(proxy_factory,
                                                                   schemas_layout):
    layout = schemas_layout
    paths = layout.paths
    paths["new"]["port"] = free_port()  # nothing listens there
    p = start(proxy_factory, layout, paths=paths)
    c = p.connect()
    expected = 0
    try:
        for i in range(1, 6):
            run(c, "INSERT INTO users (id, name) VALUES (%d, 'n')" % i)
            expected += 1
            assert len(read_journal(journal_file(p))) == expected
        time.sleep(1.2)  # past the reconnect interval: the next boundary retries
        c.autocommit = False
        run(c, "UPDATE users SET email = 'x' WHERE id = 1", "DELETE FROM users WHERE id = 2")
        c.commit()  # acknowledged only once its three entries are durable
        expected += 3
        assert len(read_journal(journal_file(p))) == expected
        c.autocommit = True
        run(c, "INSERT INTO users (id, name) VALUES (10, 'last')")
        expected += 1
    finally:
        c.close()
    assert [r[0] for r in layout.rows("old")] == [1, 3, 4, 5, 10]
    entries = read_journal(journal_file(p))
    assert len(entries) == expected, entries
    assert all("unavailable" in e["error"] for e in entries), entries
    assert len(admin_run(p, "SHOW JOURNAL")) == expected


class Terminator(threading.Thread):
    """Terminates every backend of database DB once a second."""

    def __init__(self, pg, db):
        super().__init__(daemon=True)
        self.pg = pg
        self.db = db
        self.stop_event = threading.Event()
        self.killed = 0
        self.error = None
        self.stopped_at = None

    def run(self):
        try:
            conn = self.pg.superuser("postgres")
            with conn.cursor() as cur:
                while not self.stop_event.wait(1.0):
                    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (self.db,))
                    self.killed += cur.fetchone()[0]
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e
        self.stopped_at = time.time()

    def stop(self):
        self.stop_event.set()
        self.join(10)
        assert self.error is None, "terminator failed: %r" % self.error


def history(layout, role):
    """Multiset of pgbench_history rows without mtime, as a dict."""
    out = {}
    for row in layout.sql(role, "SELECT tid, bid, aid, delta FROM pgbench_history"):
        out[row] = out.get(row, 0) + 1
    return out


def bench_digest(layout, role):
    return layout.sql(role, """
        SELECT (SELECT md5(string_agg(a::text, '|' ORDER BY aid)) FROM pgbench_accounts a),
               (SELECT md5(string_agg(b::text, '|' ORDER BY bid)) FROM pgbench_branches b),
               (SELECT md5(string_agg(t::text, '|' ORDER BY tid)) FROM pgbench_tellers t),
               (SELECT count(*) FROM pgbench_history),
               (SELECT md5(string_agg(format('%s,%s,%s,%s', tid, bid, aid, delta), '|'
                                      ORDER BY tid, bid, aid, delta)) FROM pgbench_history)""")[0]


@pytest.mark.parametrize("mode", ["simple", "prepared"])
def test_terminated_shadow_backends_are_journaled(proxy_factory, bench_layout, mode):
    layout = bench_layout
    p = start(proxy_factory, layout)
    killer = Terminator(layout.pg, layout.where["new"][0])
    killer.start()
    # the killer stops 3 s before the end: the shadow must be back by then
    stopper = threading.Timer(TERMINATE_SECONDS - 3, killer.stop_event.set)
    stopper.start()
    try:
        # a short time-out: a hung session fails the test quickly
        n = pgbench(p.env(), ["-c", "4", "-j", "2", "-T", TERMINATE_SECONDS, "-M", mode],
                    timeout=TERMINATE_SECONDS + 6)
    finally:
        stopper.cancel()
        killer.stop()
    assert killer.killed > 0
    primary, shadow = history(layout, "old"), history(layout, "new")
    assert sum(primary.values()) == n
    extra = {k: v - primary.get(k, 0) for k, v in shadow.items() if v > primary.get(k, 0)}
    assert extra == {}, "rows on the shadow only: %r" % extra
    missing = sum(v - shadow.get(k, 0) for k, v in primary.items())
    assert missing > 0, "no transaction was lost: the terminations missed"
    entries = read_journal(journal_file(p))
    inserts = [e for e in entries if e["statement"].upper().startswith("INSERT")]
    # one lost tpcb transaction = BEGIN, 3 UPDATEs and the INSERT (the SELECT
    # is a read, END is pgturnout's own COMMIT)
    assert (len(inserts), len(entries)) == (missing, 5 * missing), \
        "missing %d of %d transactions, journal %d entries (%d INSERTs)" % (
            missing, n, len(entries), len(inserts))
    # and the shadow came back: the last second's transactions all reached it
    late = layout.sql("old", "SELECT tid, bid, aid, delta FROM pgbench_history "
                             "WHERE mtime > now() - interval '1.5 seconds'")
    assert late and all(shadow.get(tuple(r), 0) > 0 for r in late), \
        "the shadow did not recover after the terminations stopped"


def test_acceptance_pgbench_both_databases_identical(proxy_factory, bench_layout):
    layout = bench_layout
    p = start(proxy_factory, layout)
    n = pgbench(p.env(), ["-c", "8", "-j", "2", "-T", ACCEPTANCE_SECONDS],
                timeout=ACCEPTANCE_SECONDS + 120)
    old, new = bench_digest(layout, "old"), bench_digest(layout, "new")
    assert old[3] == n
    assert old == new, (old, new)
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats
    assert int(stats["new"]["shadow_errors"]) == 0, stats
    assert int(stats["new"]["shadow_writes"]) == 4 * n, stats
    assert read_journal(journal_file(p)) == []


def test_torn_journal_tail_at_restart(proxy_factory, schemas_layout, tmp_path):
    layout = schemas_layout
    jdir = str(tmp_path / "shared-journal")
    settings = {"journal_dir": jdir}
    p = start(proxy_factory, layout, settings=settings)
    layout.drop_users("new")
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name) VALUES (1, 'a')",
            "INSERT INTO users (id, name) VALUES (2, 'b')")
    finally:
        c.close()
    assert p.stop() == 0
    path = os.path.join(jdir, "dual_write_journal.log")
    good = read_journal(path)
    assert len(good) == 2
    with open(path, "ab") as f:
        f.write(b'0badc0de {"time":"2026-01-01T00:00:00.000Z","session":9,"pa')
    p2 = start(proxy_factory, layout, settings=settings)
    p2.wait_log(r"dual-write journal: line 3 is torn")
    shown = admin_run(p2, "SHOW JOURNAL")
    assert [r["statement"] for r in shown] == [e["statement"] for e in good]
    # the tail was cut: the next entry starts on a clean line
    c = p2.connect()
    try:
        run(c, "INSERT INTO users (id, name) VALUES (3, 'c')")
    finally:
        c.close()
    assert len(read_journal(path)) == 3
    # a corrupt line in the middle is skipped too
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"session"', b'"sessioN"')
    with open(path, "wb") as f:
        f.write(b"".join(lines))
    assert p2.stop() == 0
    p3 = start(proxy_factory, layout, settings=settings)
    p3.wait_log(r"dual-write journal: line 1 is corrupt")
    assert len(admin_run(p3, "SHOW JOURNAL")) == 2


# ---- fail mode ---------------------------------------------------------------------

def test_fail_mode_shadow_rejection_fails_the_client(proxy_factory, layout):
    p = start(proxy_factory, layout, flags={"shadow_failure": "fail"})
    # the shadow already has id 99: an INSERT of it fails there only
    layout.sql("new", "INSERT INTO %s (id, %s) VALUES (99, 'shadow only')"
               % (layout.table("new"), layout.name_col("new")))
    w = p.wire_login()
    try:
        tags, err, status = simple(w, "INSERT INTO users (id, name) VALUES (1, 'ok')")
        assert (tags, err, status) == (["INSERT 0 1"], None, "I")
        tags, err, status = simple(w, "INSERT INTO users (id, name) VALUES (99, 'clash')")
        assert err is not None and err["C"] == "23505", err
        assert "shadow path new refused the write" in err["M"], err
        assert status == "I"
        assert [r[0] for r in layout.rows("old")] == [1]
        # inside a transaction: the transaction is failed
        assert simple(w, "BEGIN")[2] == "T"
        assert simple(w, "INSERT INTO users (id, name) VALUES (2, 'in tx')")[0] == ["INSERT 0 1"]
        tags, err, status = simple(w, "INSERT INTO users (id, name) VALUES (99, 'clash')")
        assert err["C"] == "23505" and status == "E", (err, status)
        tags, err, status = simple(w, "SELECT 1")
        assert err["C"] == "25P02" and status == "E", (err, status)
        tags, err, status = simple(w, "UPDATE users SET name = 'no' WHERE id = 1")
        assert err["C"] == "25P02" and status == "E", (err, status)
        tags, err, status = simple(w, "COMMIT")
        assert (tags, err, status) == (["ROLLBACK"], None, "I")
        assert simple(w, "SELECT count(*) FROM users")[1] is None
    finally:
        w.terminate()
    # nothing of the failed transaction is anywhere
    assert [r[0] for r in layout.rows("old")] == [1]
    assert [r[0] for r in layout.rows("new")] == [1, 99]
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).stats()
    assert int(stats["new"]["shadow_errors"]) >= 2, stats


def test_fail_mode_rollback_to_savepoint_recovers(proxy_factory, schemas_layout):
    layout = schemas_layout
    p = start(proxy_factory, layout, flags={"shadow_failure": "fail"})
    layout.sql("new", "INSERT INTO users_v2 (id, full_name) VALUES (99, 'shadow only')")
    w = p.wire_login()
    try:
        for sql in ("BEGIN", "INSERT INTO users (id, name) VALUES (1, 'a')", "SAVEPOINT s"):
            assert simple(w, sql)[1] is None, sql
        assert simple(w, "INSERT INTO users (id, name) VALUES (99, 'clash')")[1]["C"] == "23505"
        assert simple(w, "ROLLBACK TO SAVEPOINT s")[1] is None
        assert simple(w, "INSERT INTO users (id, name) VALUES (2, 'b')")[1] is None
        tags, err, status = simple(w, "COMMIT")
        assert (tags, err, status) == (["COMMIT"], None, "I")
    finally:
        w.terminate()
    assert [r[0] for r in layout.rows("old")] == [1, 2]
    assert [r[0] for r in layout.rows("new")] == [1, 2, 99]


def test_fail_mode_session_writes_after_a_failed_transaction(proxy_factory, schemas_layout):
    layout = schemas_layout
    p = start(proxy_factory, layout, flags={"shadow_failure": "fail"})
    layout.sql("new", "INSERT INTO users_v2 (id, full_name) VALUES (99, 'shadow only')")
    w = p.wire_login()
    try:
        assert simple(w, "BEGIN")[1] is None
        assert simple(w, "INSERT INTO users (id, name) VALUES (99, 'clash')")[1]["C"] == "23505"
        assert simple(w, "COMMIT")[0] == ["ROLLBACK"]
        tags, err, status = simple(w, "INSERT INTO users (id, name) VALUES (3, 'after')")
        assert (tags, err, status) == (["INSERT 0 1"], None, "I")
    finally:
        w.terminate()
    assert [r[0] for r in layout.rows("old")] == [3]
    assert [r[0] for r in layout.rows("new")] == [3, 99]


def replay(layout, role, entries):
    """The replay recipe of docs/dual-writes.md: the statements (already
    rewritten for the shadow) in journal order, in one transaction."""
    sql = "".join(e["statement"] + ";\n" for e in entries if e["parameters"] == "")
    layout.sql(role, "BEGIN;\n" + sql + "COMMIT;")


def test_shadow_terminated_between_transactions_comes_back(proxy_factory, databases_layout):
    layout = databases_layout
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name) VALUES (1, 'a')")
        db = layout.where["new"][0]
        killed = layout.pg.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = '%s' AND backend_type = 'client backend' "
                               "AND pid <> pg_backend_pid()" % db, dbname="postgres")[0][0]
        assert killed >= 1
        p.wait_log(r"shadow on path new lost")
        time.sleep(1.2)  # past the reconnect interval
        # the session finds its shadow gone at the next boundary, which is the
        # end of this transaction: its write is journaled, the next ones are
        # mirrored by the reconnected shadow
        run(c, "INSERT INTO users (id, name) VALUES (2, 'b')")
        run(c, "UPDATE users SET email = 'e' WHERE id = 1",
            "INSERT INTO users (id, name) VALUES (3, 'c')")
    finally:
        c.close()
    entries = read_journal(journal_file(p))
    assert [e["statement"] for e in entries] == ["INSERT INTO users (id, name) VALUES (2, 'b')"]
    assert [r[0] for r in layout.rows("new")] == [1, 3]
    assert layout.rows("new")[0] == (1, "a", "e")
    replay(layout, "new", entries)
    assert layout.assert_identical() == 3


# ---- non-deterministic writes ----------------------------------------------------

def test_volatile_writes_are_logged_as_non_deterministic(proxy_factory, layout):
    """An INSERT's values are captured on old and applied to new (identical
    copies, nothing to log); an UPDATE calling a volatile function is still
    mirrored as a statement: logged as non-deterministic."""
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name, email) VALUES (1, 'a', clock_timestamp()::text)")
        assert layout.digest("old") == layout.digest("new")
        assert not re.search(r"non-deterministic write mirrored", p.log())
        run(c, "UPDATE users SET email = clock_timestamp()::text WHERE id = 1")
        m = p.wait_log(r"c\d+: non-deterministic write mirrored \(fingerprint ([0-9a-f]{16})\)")
        run(c, "UPDATE users SET name = 'plain' WHERE id = 1")
    finally:
        c.close()
    assert len(re.findall(r"non-deterministic write mirrored", p.log())) == 1
    assert layout.digest("old") != layout.digest("new")  # the copies differ, as logged
    # both answered "UPDATE 1": not a mismatch
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0, stats
    assert m
    # journaled at its commit (SPEC §7), and repaired from it
    entries = read_journal(journal_file(p))
    assert [e["error"] for e in entries] == [
        "non-deterministic: copied as a statement, the values written may differ from the "
        "primary's"], entries
    assert "clock_timestamp" in entries[0]["statement"]
    assert int(stats["new"]["journaled"]) == 1, stats
    r = subprocess.run([pgt_bin(), "repair", "-c", p.config_path, "--journal"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PGUSER="app", PGPASSWORD=PASSWORDS["app"]))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert layout.digest("old") == layout.digest("new")


def test_serial_default_values_are_copied(proxy_factory, databases_layout):
    layout = databases_layout
    for role in ("old", "new"):
        layout.sql(role, "SET ROLE app; CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        # new's sequence is elsewhere: a copied statement would give other ids
        layout.sql(role, "SELECT setval('notes_id_seq', %d)" % (100 if role == "new" else 1))
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c, "INSERT INTO notes (body) VALUES ('x'), ('y')")
    finally:
        c.close()
    rows = {role: layout.sql(role, "SELECT id, body FROM notes ORDER BY id")
            for role in ("old", "new")}
    assert rows["old"] == rows["new"] == [(2, "x"), (3, "y")], rows


def test_write_the_rewriter_refuses_is_journaled(proxy_factory, schemas_layout):
    layout = schemas_layout
    p = start(proxy_factory, layout)
    c = p.connect()
    try:
        run(c, "INSERT INTO users (id, name) VALUES (1, 'a')")
        # unqualified renamed column with another relation in scope: refused
        run(c, "UPDATE users SET email = 'x' FROM call_log WHERE name = 'a'")
        run(c, "INSERT INTO users (id, name) VALUES (2, 'b')")
    finally:
        c.close()
    assert re.search(r"statement cannot be mirrored to path new", p.log())
    entries = read_journal(journal_file(p))
    assert [e["statement"] for e in entries] == [
        "UPDATE users SET email = 'x' FROM call_log WHERE name = 'a'"], entries
    assert [r[0] for r in layout.rows("new")] == [1, 2]


def test_statement_over_a_mib_is_still_inspected(proxy_factory, schemas_layout):
    """A 2 MiB statement (under max_query_size) is analysed like any other:
    inspection stays on, so the next write is still rewritten and mirrored."""
    lay = schemas_layout
    p = start(proxy_factory, lay, settings={"max_query_size": "4MB"})
    c = p.connect()
    try:
        with c.cursor() as cur:
            cur.execute("SELECT length('%s')" % ("x" * (2 << 20)))
            assert cur.fetchone() == (2 << 20,)
        run(c, "INSERT INTO users (id, name, email) VALUES (1, 'after', 'a@x')")
    finally:
        c.close()
    assert lay.rows("old") == [(1, "after", "a@x")]
    assert lay.rows("new") == [(1, "after", "a@x")]


def test_statement_over_max_query_size_is_refused_with_54000(proxy_factory, schemas_layout):
    """As PostgreSQL refuses a statement it cannot take: 54000, and the
    session goes on (simple and extended protocol, in and out of a
    transaction); nothing of it reaches either side."""
    lay = schemas_layout
    p = start(proxy_factory, lay, settings={"max_query_size": "1MB"})
    big = "INSERT INTO users (id, name, email) VALUES (7, '%s', 'b@x')" % ("x" * (2 << 20))
    c = p.connect()
    try:
        with c.cursor() as cur:
            with pytest.raises(psycopg2.Error) as exc:
                cur.execute(big)
            assert exc.value.pgcode == "54000", exc.value
            assert "max_query_size" in str(exc.value)
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        c.autocommit = False
        with c.cursor() as cur:
            cur.execute("INSERT INTO users (id, name, email) VALUES (8, 'in tx', NULL)")
            with pytest.raises(psycopg2.Error) as exc:
                cur.execute(big)
            assert exc.value.pgcode == "54000", exc.value
        c.rollback()
        c.autocommit = True
        run(c, "INSERT INTO users (id, name, email) VALUES (9, 'after', 'c@x')")
    finally:
        c.close()
    # extended protocol: the error comes in order, the batch skips to Sync
    w = p.wire()
    w.startup("app", "app", "app")
    w.send(msg_parse("", "SELECT 1") + msg_bind("", []) + msg_execute() +
           msg_parse("big", big) + msg_bind("big", []) + msg_execute() + msg_sync())
    kinds = []
    while True:
        kind, body = w.recv_message()
        kinds.append(kind)
        if kind == b"E":
            assert pgwire.parse_error_fields(body)["C"] == "54000"
        if kind == b"Z":
            break
    assert kinds[:4] == [b"1", b"2", b"D", b"C"] and b"E" in kinds, kinds
    assert w.query("SELECT 2") == [("2",)]
    w.terminate()
    assert lay.rows("old") == [(9, "after", "c@x")]
    assert lay.rows("new") == [(9, "after", "c@x")]
