"""COPY ... FROM STDIN through values, not statements (SPEC §7): with dual
writes on, a COPY with a column list is staged and inserted on old with a
capture of the rows it wrote, and new gets old's values: bigserial ids,
gen_random_uuid(), clock_timestamp() and now() defaults equal on both
sides, new's expression columns computed, new's sequences moved past the
keys, whichever path is the session's primary. The client sees a COPY's
answers only (CopyInResponse, PostgreSQL's errors, "COPY n").

Both layouts: "schemas" (items on old, items_v2 on new with name renamed
title and an up expression column title_len; new's catalog read) and
"databases" (the same items table on both, no catalog read). Every test
ends by comparing the two sides row by row, all columns.
"""

import io
import json
import os
import subprocess
import threading

import psycopg2
import pytest

from conftest import BIG, pgt_bin, unique
from test_dual import journal_file, run
from twopaths import Admin, TwoPathLayout

pytestmark = pytest.mark.proxy_only

ROWS_BIG = 1000000 if BIG else 100000


class CopyLayout(TwoPathLayout):
    def __init__(self, pg, kind):
        super().__init__(pg, kind, unique("dc"))

    def renamed(self):
        return self.kind == "schemas"

    def table(self, role):
        return "items_v2" if self.renamed() and role == "new" else "items"

    def name_col(self, role):
        return "title" if self.renamed() and role == "new" else "name"

    def objects(self, role):
        extra = ", title_len int" if self.renamed() and role == "new" else ""
        return ("CREATE TABLE %s (id bigserial PRIMARY KEY, %s text NOT NULL, note text,"
                " token uuid NOT NULL DEFAULT gen_random_uuid(),"
                " created timestamptz NOT NULL DEFAULT clock_timestamp(),"
                " at timestamptz DEFAULT now(),"
                " CHECK (note IS DISTINCT FROM 'forbidden')%s);"
                % (self.table(role), self.name_col(role), extra))

    def rows(self, role):
        cols = "id, %s, note, token, created, at" % self.name_col(role)
        return self.sql(role, "SELECT %s FROM %s ORDER BY id" % (cols, self.table(role)))

    def assert_identical(self):
        old, new = self.rows("old"), self.rows("new")
        assert len(old) == len(new), (len(old), len(new))
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert diff == [], "%d rows differ, e.g. %r" % (len(diff), diff[:3])
        if self.renamed():
            bad = self.sql("new", "SELECT count(*) FROM items_v2"
                                  " WHERE title_len IS DISTINCT FROM length(title)")[0][0]
            assert bad == 0, "%d rows without their expression column" % bad
        # new's sequence is past every key it holds
        top, nxt = self.sql("new", "SELECT max(id), nextval(pg_get_serial_sequence('%s', 'id'))"
                                   " FROM %s" % (self.table("new"), self.table("new")))[0]
        assert top is None or nxt > top, (top, nxt)
        return len(old)


def config(layout, canary="0"):
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\ncanary_key = connection\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if layout.renamed():
        text += ("\n[rewrite]\ntable.items = items_v2\ncolumn.items.name = title\n"
                 "up.items_v2.title_len = length(name)\n")
    text += ("\n[flags]\ncanary_percent = %s\ndual_write = on\nshadow_failure = journal\n"
             "force_path = none\n" % canary)
    return text


@pytest.fixture(params=["schemas", "databases"])
def layout(request, pg):
    lay = CopyLayout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


def start(proxy_factory, layout, canary="0", catalog=False):
    paths = layout.paths
    if layout.renamed() or catalog:
        paths = {role: dict(p, user="app") for role, p in paths.items()}
    p = proxy_factory(paths=paths, extra=config(layout, canary))
    if layout.renamed() or catalog:
        p.wait_log(r"catalog of path new: \d+ tables")
    return p


def journal_lines(proxy):
    path = journal_file(proxy)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return f.read().splitlines()


def copy_in(conn, sql, data):
    with conn.cursor() as cur:
        cur.copy_expert(sql, io.BytesIO(data if isinstance(data, bytes) else data.encode()))
        return cur.rowcount


def csv_rows(tag, n, header=False):
    head = "name,note\n" if header else ""
    return head + "".join("%s %d,\"n, %d\"\n" % (tag, i, i) for i in range(n))


def counts(layout):
    return {role: layout.sql(role, "SELECT count(*) FROM %s" % layout.table(role))[0][0]
            for role in ("old", "new")}


def stats_ok(proxy):
    stats = Admin(proxy).run("SHOW STATS")
    assert all(int(r["mismatches"]) == 0 for r in stats), stats
    return stats


def after_dual_writes_off(proxy, layout):
    """dual writes off: each path inserts with its own defaults, no duplicate key."""
    Admin(proxy).run("SET dual_write = off FORCE")
    for tag in ("v1", "v2"):
        c = proxy.connect(options="-c pgturnout.version=%s" % tag)
        try:
            role = "old" if tag == "v1" else "new"
            for _ in range(3):
                run(c, "INSERT INTO %s (%s) VALUES ('after off')"
                    % (layout.table(role), layout.name_col(role)))
        finally:
            c.close()


def test_copy_takes_old_values_from_v1_and_v2_clients(proxy_factory, layout, pg):
    p = start(proxy_factory, layout)
    v1 = p.connect(options="-c pgturnout.version=v1")
    v2 = p.connect(options="-c pgturnout.version=v2")
    t2, n2 = layout.table("new"), layout.name_col("new")
    try:
        # autocommit, csv with a header, options as written
        assert copy_in(v1, "COPY items (name, note) FROM STDIN WITH (FORMAT csv, HEADER true)",
                       csv_rows("a", 300, header=True)) == 300
        # text format, legacy option syntax, a trailing comment
        assert copy_in(v1, "copy items (name) from stdin -- names only",
                       "".join("t%d\n" % i for i in range(50))) == 50
        # inside a transaction, with an INSERT beside it; then a rolled back one
        v1.autocommit = False
        assert copy_in(v1, "COPY items (name, note) FROM STDIN (FORMAT csv)",
                       csv_rows("tx", 120)) == 120
        run(v1, "INSERT INTO items (name) VALUES ('beside')")
        v1.commit()
        copy_in(v1, "COPY items (name, note) FROM STDIN (FORMAT csv)", csv_rows("gone", 30))
        v1.rollback()
        v1.autocommit = True
        # binary format (made by old itself)
        direct = pg.connect(dbname=layout.where["old"][0])
        buf = io.BytesIO()
        with direct.cursor() as cur:
            cur.copy_expert("COPY (SELECT 'bin ' || g, 'b' || g FROM generate_series(1, 40) g)"
                            " TO STDOUT (FORMAT binary)", buf)
        direct.close()
        assert copy_in(v1, "COPY items (name, note) FROM STDIN (FORMAT binary)",
                       buf.getvalue()) == 40
        # an empty COPY
        assert copy_in(v1, "COPY items (name) FROM STDIN", "") == 0
        # a v2 client: old runs it first, new gets old's values, the client new's answer
        assert copy_in(v2, "COPY %s (%s, note) FROM STDIN (FORMAT csv)" % (t2, n2),
                       csv_rows("v2", 200)) == 200
        v2.autocommit = False
        assert copy_in(v2, "COPY %s (%s) FROM STDIN" % (t2, n2), "v2tx\n" * 25) == 25
        v2.commit()
        copy_in(v2, "COPY %s (%s) FROM STDIN" % (t2, n2), "v2gone\n" * 5)
        v2.rollback()
        v2.autocommit = True
        assert copy_in(v2, "COPY %s (%s) FROM STDIN" % (t2, n2), "") == 0
    finally:
        v1.close()
        v2.close()
    # a v1 client on new (canary 100): old first, new gets the values
    Admin(p).run("SET canary_percent = 100")
    c = p.connect()
    try:
        assert copy_in(c, "COPY items (name, note) FROM STDIN (FORMAT csv)",
                       csv_rows("canary", 70)) == 70
    finally:
        c.close()
    # psql's \copy
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
                        "\\copy items (name, note) FROM STDIN WITH (FORMAT csv)"],
                       input=csv_rows("psql", 500), capture_output=True, text=True,
                       env=dict(p.env(), PGOPTIONS="-c pgturnout.version=v1"), timeout=60)
    assert r.returncode == 0 and "COPY 500" in r.stdout, r.stdout + r.stderr
    total = 300 + 50 + 120 + 1 + 40 + 200 + 25 + 70 + 500
    assert layout.assert_identical() == total
    assert journal_lines(p) == []
    stats = stats_ok(p)
    assert all(int(r["nondeterministic"]) == 0 for r in stats), stats
    after_dual_writes_off(p, layout)


def test_bad_copy_gets_postgres_error_and_changes_neither_side(proxy_factory, layout):
    p = start(proxy_factory, layout)
    run_v1 = p.connect(options="-c pgturnout.version=v1")
    run_v2 = p.connect(options="-c pgturnout.version=v2")
    t2, n2 = layout.table("new"), layout.name_col("new")
    try:
        for conn, sql in ((run_v1, "COPY items (name, note, id) FROM STDIN (FORMAT csv)"),
                          (run_v2, "COPY %s (%s, note, id) FROM STDIN (FORMAT csv)" % (t2, n2))):
            for autocommit in (True, False):
                conn.autocommit = autocommit
                # bad data in line 3
                with pytest.raises(psycopg2.Error) as e:
                    copy_in(conn, sql, "a,b,1\nc,d,2\ne,f,notanumber\n")
                assert e.value.pgcode == "22P02", e.value
                assert "line 3" in str(e.value), str(e.value)
                if not autocommit:
                    conn.rollback()
                # a CHECK violated by the second row
                with pytest.raises(psycopg2.Error) as e:
                    copy_in(conn, sql, "a,ok,10\nb,forbidden,11\n")
                assert e.value.pgcode == "23514", e.value
                if not autocommit:
                    conn.rollback()
                conn.autocommit = True
        for conn, sql in ((run_v1, "COPY items (name) FROM STDIN"),
                          (run_v2, "COPY %s (%s) FROM STDIN" % (t2, n2))):
            assert copy_in(conn, sql, "still serving\n") == 1
        # inside a transaction after a savepoint: the failed COPY is undone on both
        run_v1.autocommit = False
        run(run_v1, "INSERT INTO items (name) VALUES ('kept')", "SAVEPOINT s")
        with pytest.raises(psycopg2.Error):
            copy_in(run_v1, "COPY items (name, note) FROM STDIN (FORMAT csv)",
                    "x,y\nz,forbidden\n")
        run(run_v1, "ROLLBACK TO SAVEPOINT s")
        copy_in(run_v1, "COPY items (name) FROM STDIN", "after savepoint\n")
        run_v1.commit()
    finally:
        run_v1.close()
        run_v2.close()
    assert counts(layout) == {"old": 4, "new": 4}
    assert layout.assert_identical() == 4
    assert journal_lines(p) == []
    stats_ok(p)


class Worker(threading.Thread):
    def __init__(self, proxy, body):
        super().__init__(daemon=True)
        self.proxy, self.body, self.error, self.rows = proxy, body, None, 0

    def run(self):
        try:
            c = self.proxy.connect()
            try:
                self.rows = self.body(c)
            finally:
                c.close()
        except Exception as e:  # reported by the test
            self.error = e


def test_concurrent_copy_and_insert_sessions_at_canary_50(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout, canary="50")
    rounds = 20 if BIG else 6

    def copier(tag):
        def body(c):
            n = 0
            for r in range(rounds):
                # a new connection each round: the canary picks a path for each
                c2 = p.connect()
                try:
                    if r % 2:
                        c2.autocommit = False
                    n += copy_in(c2, "COPY items (name, note) FROM STDIN (FORMAT csv)",
                                 csv_rows("%s-%d" % (tag, r), 150))
                    if r % 2:
                        run(c2, "INSERT INTO items (name) VALUES ('tx %s %d')" % (tag, r))
                        c2.commit()
                        n += 1
                finally:
                    c2.close()
            return n
        return body

    def inserter(tag):
        def body(c):
            n = 0
            for r in range(rounds * 10):
                c2 = p.connect() if r % 10 == 0 else c
                try:
                    run(c2, "INSERT INTO items (name, note) VALUES ('%s %d', 'i'), ('%s %d b', 'i')"
                        % (tag, r, tag, r))
                    n += 2
                finally:
                    if c2 is not c:
                        c2.close()
            return n
        return body

    workers = [Worker(p, copier("c%d" % i)) for i in range(3)]
    workers += [Worker(p, inserter("i%d" % i)) for i in range(3)]
    data = tmp_path / "psql.csv"
    data.write_text(csv_rows("psql", 400))
    script = tmp_path / "copy.sql"
    script.write_text("".join("\\copy items (name, note) FROM '%s' WITH (FORMAT csv)\n" % data
                              for _ in range(3)))
    for w in workers:
        w.start()
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
                       capture_output=True, text=True, env=p.env(), timeout=120)
    for w in workers:
        w.join(120)
        assert not w.is_alive(), "a session hangs"
        assert w.error is None, w.error
    assert r.returncode == 0 and r.stdout.count("COPY 400") == 3, r.stdout + r.stderr
    expected = sum(w.rows for w in workers) + 1200
    assert layout.assert_identical() == expected
    dup = layout.sql("new", "SELECT count(*) - count(DISTINCT token) FROM %s"
                     % layout.table("new"))[0][0]
    assert dup == 0
    assert journal_lines(p) == []
    stats_ok(p)
    after_dual_writes_off(p, layout)


def test_large_copy_in_chunks(proxy_factory, layout):
    """ROWS_BIG rows from a session on old (a fifth of them in the renamed
    layout, whose chunks fill a template rewritten once): new gets them a
    chunk at a time (the proxy holds one chunk, not the COPY)."""
    rows = ROWS_BIG // 5 if layout.renamed() else ROWS_BIG
    p = start(proxy_factory, layout)
    c = p.connect(options="-c pgturnout.version=v1")
    rss0 = p.rss_kb()
    data = "".join("big %d\tnote %d\n" % (i, i) for i in range(rows))
    try:
        assert copy_in(c, "COPY items (name, note) FROM STDIN", data) == rows
    finally:
        c.close()
    grown = p.rss_kb() - rss0
    print("COPY of %d rows: proxy RSS grew %d kB" % (rows, grown))
    assert layout.assert_identical() == rows
    assert journal_lines(p) == []
    stats_ok(p)
    if rows >= 100000 and "asan" not in os.environ.get("PGT_BIN", ""):
        # a chunk of 256 kB and the keys of the rows (2 MB), not the values
        # (13 MB of literals for 100,000 rows, as much again as a statement)
        assert grown < 8 * 1024, grown


def test_copy_without_column_list_moves_new_sequences(proxy_factory, layout):
    """Every column given (explicit ids): copied as a statement, deterministic;
    new's sequences are moved past the keys it wrote."""
    p = start(proxy_factory, layout)
    c = p.connect(options="-c pgturnout.version=v1")
    try:
        rows = "".join("%d\tfull %d\tn\t%s\t2026-01-01 00:00:0%d+00\t2026-01-01 00:00:00+00\n"
                       % (5000 + i, i, "00000000-0000-0000-0000-%012d" % i, i % 10)
                       for i in range(30))
        # (new's items_v2 has a column of its own, title_len: the renamed
        # layout names old's columns, through values)
        sql = ("COPY items (id, name, note, token, created, at) FROM STDIN"
               if layout.renamed() else "COPY items FROM STDIN")
        assert copy_in(c, sql, rows) == 30
    finally:
        c.close()
    assert layout.assert_identical() == 30
    stats_ok(p)
    after_dual_writes_off(p, layout)


def test_rows_new_refuses_are_journaled_by_key_and_repaired(proxy_factory, layout):
    """A constraint only new has fails a chunk on new: the client's COPY
    succeeds on old, the rows of every chunk are journaled with their keys
    (old authoritative), and repair --journal makes new equal."""
    layout.sql("new", "ALTER TABLE %s ADD CONSTRAINT no_newonly CHECK (note <> 'newonly')"
               % layout.table("new"))
    p = start(proxy_factory, layout, catalog=True)
    c = p.connect(options="-c pgturnout.version=v1")
    data = "".join("row %d\t%s\n" % (i, "newonly" if i == 5000 else "n%d" % i)
                   for i in range(6000))
    try:
        assert copy_in(c, "COPY items (name, note) FROM STDIN", data) == 6000
        assert copy_in(c, "COPY items (name) FROM STDIN", "next\n") == 1  # both sides again
    finally:
        c.close()
    assert counts(layout) == {"old": 6001, "new": 1}
    entries = [json.loads(line.partition(b" ")[2]) for line in journal_lines(p)]
    assert len(entries) >= 2, entries  # one per chunk
    keys = sorted(int(k["id"]) for e in entries for k in e["keys"])
    assert keys == list(range(1, 6001)), keys[:5]
    assert {(e["table"], e["authoritative"]) for e in entries} == {("items", "old")}
    assert all(e["statement"].startswith("COPY items (name, note)") for e in entries), entries
    layout.sql("new", "ALTER TABLE %s DROP CONSTRAINT no_newonly" % layout.table("new"))
    r = subprocess.run([pgt_bin(), "repair", "-c", p.config_path, "--journal"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert layout.assert_identical() == 6001


def test_copy_with_where_is_copied_as_a_statement_and_counted(proxy_factory, layout):
    """COPY ... WHERE cannot be staged: copied as a statement, its left-out
    columns get each side's defaults, so it is counted non-deterministic and
    logged with its fingerprint."""
    p = start(proxy_factory, layout)
    c = p.connect(options="-c pgturnout.version=v1")
    try:
        assert copy_in(c, "COPY items (name, note) FROM STDIN (FORMAT csv) WHERE note <> 'skip'",
                       "a,keep\nb,skip\nc,keep\n") == 2
    finally:
        c.close()
    assert counts(layout) == {"old": 2, "new": 2}
    p.wait_log(r"COPY mirrored as a statement \(fingerprint [0-9a-f]{16}\)")
    stats = Admin(p).stats()
    assert int(stats["new"]["nondeterministic"]) == 1, stats
