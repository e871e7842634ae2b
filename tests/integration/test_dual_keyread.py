"""One key source for reads (SPEC §7): while dual writes are on, old
generates every key. A read that takes keys (`SELECT nextval('seq')`, then
an INSERT with that id, as Hibernate/JPA-style clients do) sent by a session
whose primary is new runs on old, with the sequence named as old names it
(new's `items_v2_id_seq`, owned by items_v2.id, is old's sequence of
items.id; a sequence owned by no column keeps its name); the client gets
old's value, and new's sequence is moved past it.

Both layouts: one database with a schema per path and renames
(items -> items_v2, name -> title), and a path on each of two servers.
Concurrent v2 sessions and v1 sessions at canary 50 take keys with
nextval() reads and insert them explicitly, beside inserts with defaults;
afterwards the two sides are identical row by row through the rename map,
and after `SET dual_write = off` each path inserts with its own defaults
and its own nextval() without a duplicate key.
"""

import os
import re
import subprocess

import pytest

from conftest import BIG, unique
from test_dual import journal_file, read_journal, run
from test_verify import second_pg  # noqa: F401  (fixture)
from twopaths import Admin, drop_sides, open_sides

pytestmark = pytest.mark.proxy_only

SECONDS = 20 if BIG else 5

V2 = """SELECT nextval('items_v2_id_seq') AS id \\gset
INSERT INTO items_v2 (id, title) VALUES (:id, 'v2 explicit');
SELECT nextval('tickets_seq') AS t, 1 AS one \\gset
INSERT INTO tickets (id, note) VALUES (:t, 'v2');
INSERT INTO items_v2 (title) VALUES ('v2 default');
BEGIN;
SELECT nextval('items_v2_id_seq') AS id2, nextval('tickets_seq') AS t2 \\gset
INSERT INTO items_v2 (id, title) VALUES (:id2, 'v2 in a transaction');
INSERT INTO tickets (id, note) VALUES (:t2, 'v2 in a transaction');
COMMIT;
"""

V1 = """SELECT nextval('items_id_seq') AS id \\gset
INSERT INTO items (id, name) VALUES (:id, 'v1 explicit');
INSERT INTO items (name) VALUES ('v1 default');
BEGIN;
SELECT nextval('tickets_seq') AS t \\gset
INSERT INTO tickets (id, note) VALUES (:t, 'v1 in a transaction');
COMMIT;
"""


@pytest.fixture(params=["one_database", "two_servers"])
def sides(request, pg):
    s = open_sides(request, pg, unique("kr"))
    s["old"].sql("SET ROLE app; CREATE TABLE items (id bigserial PRIMARY KEY, name text);"
                 "CREATE SEQUENCE tickets_seq; CREATE TABLE tickets (id bigint PRIMARY KEY, note text)")
    s["new"].sql("SET ROLE app; CREATE TABLE items_v2 (id bigserial PRIMARY KEY, title text);"
                 "CREATE SEQUENCE tickets_seq; CREATE TABLE tickets (id bigint PRIMARY KEY, note text)")
    yield s
    drop_sides(s)


def keyread_proxy(proxy_factory, sides, canary):
    paths = {role: {"host": side.server.host, "port": side.server.port, "dbname": "app",
                    "search_path": side.schema, "user": "app"} for role, side in sides.items()}
    p = proxy_factory(paths=paths, extra=(
        "\n[migration]\nold = old\nnew = new\nsalt = %s\ncanary_key = connection\n"
        "version.v1 = old\nversion.v2 = new\n"
        "\n[rewrite]\ntable.items = items_v2\ncolumn.items.name = title\n"
        "\n[flags]\ndual_write = on\ncanary_percent = %d\nforce_path = none\n"
        "shadow_failure = journal\n" % (unique("salt"), canary)))
    p.wait_log(r"catalog of path new: \d+ tables")
    return p


def load(p, scripts, mode="simple"):
    """Runs pgbench with each (tag, script, clients) at once; returns the
    transactions processed. Every run must finish with no failure."""
    procs = []
    for tag, script, clients in scripts:
        path = os.path.join(p.dir, "%s.sql" % tag)
        with open(path, "w") as f:
            f.write(script)
        env = p.env()
        env["PGOPTIONS"] = "-c pgturnout.version=%s" % tag
        procs.append(subprocess.Popen(
            ["pgbench", "-n", "-C", "-c", str(clients), "-j", "2", "-T", str(SECONDS), "-M", mode,
             "-f", path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = 0
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=SECONDS + 90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        print(out, err[-3000:])
        assert proc.returncode == 0, (out, err[-3000:])
        failed = re.search(r"number of failed transactions: (\d+)", out)
        assert failed is None or int(failed.group(1)) == 0, out
        done += int(re.search(r"actually processed: (\d+)", out).group(1))
    return done


def assert_identical(sides):
    pairs = (("SELECT id, name FROM items ORDER BY id", "SELECT id, title FROM items_v2 ORDER BY id"),
             ("SELECT id, note FROM tickets ORDER BY id", "SELECT id, note FROM tickets ORDER BY id"))
    counts = []
    for qo, qn in pairs:
        old, new = sides["old"].sql(qo), sides["new"].sql(qn)
        assert len(old) == len(new), (qo, len(old), len(new))
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert diff == [], "%d rows differ, e.g. %r" % (len(diff), diff[:3])
        counts.append(len(old))
    return counts


def assert_sequences_ahead(sides):
    """Each path's sequences are past every key it holds."""
    for role, table in (("old", "items"), ("new", "items_v2")):
        top, nxt = sides[role].sql("SELECT (SELECT max(id) FROM %s), nextval(pg_get_serial_sequence("
                                   "'%s', 'id'))" % (table, table))[0]
        assert nxt > top, (role, table, top, nxt)
        top, nxt = sides[role].sql("SELECT (SELECT coalesce(max(id), 0) FROM tickets), nextval('tickets_seq')")[0]
        assert nxt > top, (role, "tickets", top, nxt)


def test_keys_read_with_nextval_come_from_old(sides, proxy_factory):
    p = keyread_proxy(proxy_factory, sides, 50)
    n = load(p, [("v2", V2, 4), ("v1", V1, 4)])
    items, tickets = assert_identical(sides)
    assert items > 0 and tickets > 0 and n > 0
    assert read_journal(journal_file(p)) == []
    admin = Admin(p)
    try:
        stats = admin.run("SHOW STATS")
        assert all(int(r["mismatches"]) == 0 for r in stats), stats
        assert all(int(r["nondeterministic"]) == 0 for r in stats), stats
        assert_sequences_ahead(sides)

        # dual writes off: each path takes keys and inserts alone
        admin.run("SET dual_write = off FORCE")
        v1 = p.connect(options="-c pgturnout.version=v1")
        v2 = p.connect(options="-c pgturnout.version=v2")
        try:
            for _ in range(3):
                run(v1, "INSERT INTO items (name) VALUES ('after off, v1')",
                    "INSERT INTO tickets SELECT nextval('tickets_seq'), 'after off, v1'")
                run(v2, "INSERT INTO items_v2 (title) VALUES ('after off, v2')",
                    "INSERT INTO tickets SELECT nextval('tickets_seq'), 'after off, v2'")
        finally:
            v1.close()
            v2.close()
    finally:
        admin.close()
    assert sides["old"].sql("SELECT count(*) FROM items WHERE name = 'after off, v1'")[0][0] == 3
    assert sides["new"].sql("SELECT count(*) FROM items_v2 WHERE title = 'after off, v2'")[0][0] == 3


def test_a_v2_client_gets_old_values_and_the_read_as_it_asked(sides, proxy_factory):
    """What the client sees: old's value under its own column names, in a
    transaction and out of one; currval() and lastval() follow the nextval()
    old ran; setval() moves new past the value set; a sequence old does not
    have is logged and counted, and the read runs on new as before."""
    sides["new"].sql("SET ROLE app; CREATE SEQUENCE only_new_seq START 700")
    p = keyread_proxy(proxy_factory, sides, 0)
    c = p.connect(options="-c pgturnout.version=v2")
    try:
        with c.cursor() as cur:
            cur.execute("SELECT nextval('items_v2_id_seq') AS k, 'x' AS other")
            assert [d.name for d in cur.description] == ["k", "other"]
            k, other = cur.fetchone()
            assert other == "x"
            assert sides["old"].sql("SELECT last_value FROM items_id_seq")[0][0] == k
            cur.execute("SELECT currval('items_v2_id_seq'), lastval()")
            assert cur.fetchone() == (k, k)
            cur.execute("SELECT nextval('tickets_seq') FROM generate_series(1, 5)")
            assert [r[0] for r in cur.fetchall()] == [1, 2, 3, 4, 5]
            cur.execute("SELECT setval('items_v2_id_seq', 5000)")
            assert cur.fetchone() == (5000,)
        c.autocommit = False
        with c.cursor() as cur:
            cur.execute("SELECT nextval('items_v2_id_seq')")
            assert cur.fetchone() == (5001,)
            cur.execute("INSERT INTO items_v2 (id, title) VALUES (5001, 'in a transaction')")
        c.commit()
        c.autocommit = True
        with c.cursor() as cur:
            # old has no such sequence: the read runs on new, logged and counted
            cur.execute("SELECT nextval('only_new_seq')")
            assert cur.fetchone() == (700,)
        p.wait_log(r"a read taking keys failed on path old \(.*only_new_seq.*\): it runs on path "
                   r"new only")
        admin = Admin(p)
        try:
            assert int(admin.stats()["old"]["nondeterministic"]) == 1
        finally:
            admin.close()
        # the session goes on: the next read takes its key from old again
        with c.cursor() as cur:
            cur.execute("SELECT nextval('items_v2_id_seq')")
            assert cur.fetchone() == (5002,)
            cur.execute("SELECT nextval('items_v2_id_seq') -- a trailing comment")
            assert cur.fetchone() == (5003,)
            # one of several statements of a Query: on new, logged and counted
            cur.execute("SELECT 1; SELECT nextval('tickets_seq') > 0")
            assert cur.fetchone() == (True,)
        p.wait_log(r"a read taking keys cannot run on path old \(it is one of several statements")
        admin = Admin(p)
        try:
            assert int(admin.stats()["old"]["nondeterministic"]) == 2
        finally:
            admin.close()
    finally:
        c.close()
    assert sides["old"].sql("SELECT last_value FROM tickets_seq")[0][0] == 5
    assert sides["new"].sql("SELECT last_value FROM items_v2_id_seq")[0][0] > 5001
    assert sides["new"].sql("SELECT last_value FROM tickets_seq")[0][0] > 5
    assert assert_identical(sides) == [1, 0]
    assert_sequences_ahead(sides)


def test_a_read_taking_keys_in_the_extended_protocol_is_logged_and_counted(sides, proxy_factory):
    """The extended protocol still runs such a read on new (a documented
    limit): never silently."""
    p = keyread_proxy(proxy_factory, sides, 0)
    script = os.path.join(p.dir, "ext.sql")
    with open(script, "w") as f:
        f.write("SELECT nextval('items_v2_id_seq');\n")
    env = p.env()
    env["PGOPTIONS"] = "-c pgturnout.version=v2"
    r = subprocess.run(["pgbench", "-n", "-c", "1", "-t", "3", "-M", "prepared", "-f", script],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
    p.wait_log(r"a read taking keys in the extended protocol runs on path new only")
    admin = Admin(p)
    try:
        assert int(admin.stats()["old"]["nondeterministic"]) == 1  # one Parse
    finally:
        admin.close()
