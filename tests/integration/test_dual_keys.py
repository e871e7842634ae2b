"""One key source (SPEC §7): while dual writes are on, a serial or identity
key is generated once, by old (which runs every mirrored write first), and
new gets it with the captured row; new's own sequences are moved past every
key it receives, so that after dual_write goes off each path inserts with
its own defaults without a duplicate key.

Both layouts: "schemas" (parent(id bigserial, name, ...) on old,
parent_v2(id bigserial, title, ...) on new, renamed; new's catalog read at
start) and "databases" (the same tables on both, no catalog read: the
integer columns are offered to the server, which finds their sequences).
Each run ends by comparing the two sides row by row through the rename map.
"""

import json
import subprocess
import zlib

import pytest

from conftest import BIG, pgt_bin, unique
from test_dual import (journal_file, msg_bind, msg_execute, msg_parse, msg_sync, pgbench,
                       read_journal, read_results, run)
from twopaths import Admin, TwoPathLayout

pytestmark = pytest.mark.proxy_only

SECONDS = 20 if BIG else 5


class KeysLayout(TwoPathLayout):
    def __init__(self, pg, kind):
        super().__init__(pg, kind, unique("dk"))

    def renamed(self):
        return self.kind == "schemas"

    def parent(self, role):
        return "parent_v2" if self.renamed() and role == "new" else "parent"

    def name_col(self, role):
        return "title" if self.renamed() and role == "new" else "name"

    def objects(self, role):
        return ("CREATE TABLE %s (id bigserial PRIMARY KEY, %s text,"
                " token uuid NOT NULL DEFAULT gen_random_uuid(),"
                " updated_at timestamptz NOT NULL DEFAULT now());"
                "CREATE TABLE child (id bigserial PRIMARY KEY,"
                " parent_id bigint NOT NULL REFERENCES %s (id), note text,"
                " at timestamptz DEFAULT clock_timestamp());"
                % (self.parent(role), self.name_col(role), self.parent(role)))

    def rows(self, role):
        return (self.sql(role, "SELECT id, %s, token, updated_at FROM %s ORDER BY id"
                         % (self.name_col(role), self.parent(role))),
                self.sql(role, "SELECT id, parent_id, note, at FROM child ORDER BY id"))

    def assert_identical(self):
        (op, oc), (np_, nc) = self.rows("old"), self.rows("new")
        for what, old, new in (("parent", op, np_), ("child", oc, nc)):
            assert len(old) == len(new), (what, len(old), len(new))
            diff = [(a, b) for a, b in zip(old, new) if a != b]
            assert diff == [], "%s: %d rows differ, e.g. %r" % (what, len(diff), diff[:3])
        return len(op), len(oc)


def config(layout, canary, rename="table.parent = parent_v2\ncolumn.parent.name = title"):
    """Tags v1/v2, dual writes on, and the rename rules RENAME when the
    layout renames."""
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if layout.renamed():
        text += "\n[rewrite]\n%s\n" % rename
    text += ("\n[flags]\ncanary_percent = %s\ndual_write = on\nshadow_failure = journal\n"
             % canary)
    return text


@pytest.fixture(params=["schemas", "databases"])
def layout(request, pg):
    lay = KeysLayout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


def start(proxy_factory, layout, canary):
    paths = layout.paths
    if layout.renamed():
        paths = {role: dict(p, user="app") for role, p in paths.items()}
    p = proxy_factory(paths=paths, extra=config(layout, canary))
    if layout.renamed():
        p.wait_log(r"catalog of path new: \d+ tables")
    return p


SCRIPT = ("\\set n random(1, 100000)\n"
          "BEGIN;\n"
          "INSERT INTO parent (name) VALUES ('p' || :n) RETURNING id \\gset\n"
          "INSERT INTO child (parent_id, note) VALUES (:id, 'c' || :n);\n"
          "UPDATE parent SET name = name || '+' WHERE id = :id;\n"
          "COMMIT;\n"
          "INSERT INTO child (parent_id, note) VALUES (:id, 'autocommit');\n")


@pytest.mark.parametrize("mode", ["simple", "prepared"] + (["extended"] if BIG else []))
def test_keys_come_from_one_side_and_each_side_can_go_on_alone(proxy_factory, layout, tmp_path,
                                                               mode):
    p = start(proxy_factory, layout, "50")
    script = tmp_path / "keys.sql"
    script.write_text(SCRIPT)
    n = pgbench(p.env(), ["-c", "16", "-j", "2", "-T", SECONDS, "-M", mode, "-f", script],
                timeout=SECONDS + 90)
    parents, children = layout.assert_identical()
    assert parents == n and children == 2 * n
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    assert all(int(r["mismatches"]) == 0 for r in stats), stats
    # new's sequences are past every key it holds
    for table in (layout.parent("new"), "child"):
        top, nxt = layout.sql("new", "SELECT max(id), nextval(pg_get_serial_sequence('%s', 'id'))"
                                     " FROM %s" % (table, table))[0]
        assert nxt > top, (table, top, nxt)

    # dual writes off: each path inserts with its own defaults, no duplicate key
    admin = Admin(p)
    admin.run("SET dual_write = off FORCE")
    v1 = p.connect(options="-c pgturnout.version=v1")
    v2 = p.connect(options="-c pgturnout.version=v2")
    try:
        for _ in range(3):
            run(v1, "INSERT INTO parent (name) VALUES ('after off, v1')")
            run(v2, "INSERT INTO %s (%s) VALUES ('after off, v2')"
                % (layout.parent("new"), layout.name_col("new")))
            with v2.cursor() as cur:
                cur.execute("INSERT INTO %s (%s) VALUES ('v2 parent') RETURNING id"
                            % (layout.parent("new"), layout.name_col("new")))
                pid = cur.fetchone()[0]
                cur.execute("INSERT INTO child (parent_id, note) VALUES (%s, 'v2 child')", (pid,))
            with v1.cursor() as cur:
                cur.execute("INSERT INTO parent (name) VALUES ('v1 parent') RETURNING id")
                pid = cur.fetchone()[0]
                cur.execute("INSERT INTO child (parent_id, note) VALUES (%s, 'v1 child')", (pid,))
    finally:
        v1.close()
        v2.close()
        admin.close()
    old_new = layout.sql("old", "SELECT count(*) FROM parent WHERE name LIKE '%%after off%%'"
                                " OR name LIKE 'v1 parent'")[0][0]
    new_new = layout.sql("new", "SELECT count(*) FROM %s WHERE %s LIKE '%%after off%%'"
                                " OR %s LIKE 'v2 parent'"
                         % (layout.parent("new"), layout.name_col("new"),
                            layout.name_col("new")))[0][0]
    assert old_new == 6 and new_new == 6, (old_new, new_new)


# ---- values of UPDATE, DELETE and ON CONFLICT DO UPDATE, applied by key ----

class HotLayout(TwoPathLayout):
    """hot(id int PRIMARY KEY, v, token, at) on old; hot_v2 with v renamed
    val on new in the schemas layout."""

    def __init__(self, pg, kind):
        super().__init__(pg, kind, unique("dh"))

    def renamed(self):
        return self.kind == "schemas"

    def table(self, role):
        return "hot_v2" if self.renamed() and role == "new" else "hot"

    def v(self, role):
        return "val" if self.renamed() and role == "new" else "v"

    def objects(self, role):
        return ("CREATE TABLE %s (id int PRIMARY KEY, %s text, token uuid, at timestamptz,"
                " n int NOT NULL DEFAULT 0);"
                "INSERT INTO %s SELECT g, 'r' || g, '00000000-0000-0000-0000-000000000000',"
                " '2026-01-01', 0 FROM generate_series(1, 60) g;"
                % (self.table(role), self.v(role), self.table(role)))

    def rows(self, role):
        return self.sql(role, "SELECT id, %s, token, at, n FROM %s ORDER BY id"
                        % (self.v(role), self.table(role)))


@pytest.fixture(params=["schemas", "databases"])
def hot(request, pg):
    lay = HotLayout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


def hot_script(layout, role):
    t, v = layout.table(role), layout.v(role)
    # Rows 1-42 are updated and upserted, rows 45-60 deleted: no row is
    # inserted while another session's statement may look for it (see
    # docs/dual-writes.md, section 5, for that window). Multi-row updates
    # take whole groups of three rows, locked in key order first, so that two
    # of them never lock the same rows in different orders (a deadlock of the
    # workload itself: heap order changes as rows are updated).
    return ("\\set id random(1, 40)\n"
            "\\set g random(0, 13)\n"
            "\\set k random(1, 40)\n"
            "\\set d random(45, 60)\n"
            "UPDATE {t} SET at = clock_timestamp(), token = gen_random_uuid(), n = n + 1"
            " WHERE id = :id;\n"
            "UPDATE {t} SET {v} = md5(random()::text) WHERE id IN (SELECT id FROM {t}"
            " WHERE id BETWEEN :g * 3 + 1 AND :g * 3 + 3 ORDER BY id FOR UPDATE) RETURNING id;\n"
            "INSERT INTO {t} (id, {v}, token, at) VALUES (:k, 'up', gen_random_uuid(), now())"
            " ON CONFLICT (id) DO UPDATE SET at = now(), n = {t}.n + 1;\n"
            "DELETE FROM {t} WHERE id = :d AND random() < 0.3;\n").format(t=t, v=v)


def test_volatile_updates_deletes_and_upserts_reach_new_by_key(proxy_factory, hot, tmp_path):
    """v1 clients (plain, half of them canaried to new) and v2 clients write
    at once: now(), clock_timestamp(), gen_random_uuid() and random() in SET
    and WHERE; new gets old's rows, applied by key."""
    paths = {role: dict(p, user="app") for role, p in hot.paths.items()}
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if hot.renamed():
        text += "\n[rewrite]\ntable.hot = hot_v2\ncolumn.hot.v = val\n"
    text += "\n[flags]\ncanary_percent = 50\ndual_write = on\nshadow_failure = journal\n"
    p = proxy_factory(paths=paths, extra=text)
    p.wait_log(r"catalog of path new: \d+ tables")

    # the client sees its own result only
    c = p.connect(options="-c pgturnout.version=v1")
    c2 = p.connect(options="-c pgturnout.version=v2")
    try:
        with c.cursor() as cur:
            cur.execute("UPDATE hot SET at = now() WHERE id IN (1, 2) RETURNING id, v")
            assert [d.name for d in cur.description] == ["id", "v"]
            assert sorted(cur.fetchall()) == [(1, "r1"), (2, "r2")]
            assert cur.statusmessage == "UPDATE 2"
            cur.execute("UPDATE hot SET token = gen_random_uuid() WHERE id = 3")
            assert cur.description is None and cur.statusmessage == "UPDATE 1"
            cur.execute("DELETE FROM hot WHERE id = 60 AND now() > '2000-01-01'")
            assert cur.description is None and cur.statusmessage == "DELETE 1"
        t, v = hot.table("new"), hot.v("new")
        with c2.cursor() as cur:
            cur.execute("UPDATE %s AS h SET at = clock_timestamp() WHERE id = 4 RETURNING h.%s"
                        % (t, v))
            assert [d.name for d in cur.description] == [v] and cur.fetchall() == [("r4",)]
            assert cur.statusmessage == "UPDATE 1"
            cur.execute("INSERT INTO %s (id, %s, at) VALUES (5, 'x', now()) ON CONFLICT (id)"
                        " DO UPDATE SET at = now() RETURNING id" % (t, v))
            assert cur.fetchall() == [(5,)] and cur.statusmessage == "INSERT 0 1"
            cur.execute("INSERT INTO %s (id, %s, at) VALUES (70, 'new row', now())"
                        " ON CONFLICT (id) DO UPDATE SET at = now()" % (t, v))
            assert cur.statusmessage == "INSERT 0 1"
    finally:
        c.close()
        c2.close()
    assert hot.rows("old") == hot.rows("new")

    s1 = tmp_path / "v1.sql"
    s1.write_text(hot_script(hot, "old"))
    s2 = tmp_path / "v2.sql"
    s2.write_text(hot_script(hot, "new"))
    env2 = dict(p.env(), PGOPTIONS="-c pgturnout.version=v2")
    import subprocess
    import threading
    out = {}

    def v2_run():
        out["v2"] = subprocess.run(["pgbench", "-n", "-c", "4", "-j", "1", "-T", str(SECONDS),
                                    "-f", str(s2)], capture_output=True, text=True, env=env2,
                                   timeout=SECONDS + 90)
    th = threading.Thread(target=v2_run)
    th.start()
    try:
        pgbench(p.env(), ["-c", "8", "-j", "2", "-T", SECONDS, "-f", s1], timeout=SECONDS + 90)
    finally:
        th.join()
    assert out["v2"].returncode == 0, out["v2"].stderr[-2000:]
    assert "number of failed transactions: 0" in out["v2"].stdout or \
        "failed transactions" not in out["v2"].stdout, out["v2"].stdout
    assert_applied_by_key(hot, p)


def journal_entries(path):
    """The journal's entries with every field (the keys of captured writes)."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            crc, _, obj = line.rstrip(b"\n").partition(b" ")
            assert int(crc, 16) == zlib.crc32(obj), line
            out.append(json.loads(obj))
    return out


def assert_applied_by_key(hot, p):
    """Both sides' hot rows identical row by row, nothing journaled, no
    mismatch and nothing counted non-deterministic (every volatile write
    was applied by key)."""
    old, new = hot.rows("old"), hot.rows("new")
    assert len(old) == len(new), (len(old), len(new))
    diff = [(a, b) for a, b in zip(old, new) if a != b]
    assert diff == [], "%d rows differ, e.g. %r" % (len(diff), diff[:3])
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    warnings = [l for l in p.log().splitlines() if "WARNING" in l][:5]
    assert all(int(r["mismatches"]) == 0 for r in stats), warnings
    assert all(int(r["nondeterministic"]) == 0 for r in stats), (stats, warnings)


def shout(hot):
    """A trigger of new's that upper-cases the value column it is given."""
    v, t = hot.v("new"), hot.table("new")
    hot.sql("new", "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$BEGIN NEW.%s := upper(NEW.%s); RETURN NEW; END$$;"
                   "CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON %s"
                   " FOR EACH ROW EXECUTE FUNCTION shout()" % (v, v, t))


def repair_journal(p):
    """pgturnout repair --journal for proxy P's configuration."""
    r = subprocess.run([pgt_bin(), "repair", "-c", p.config_path, "--journal"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_values_new_wrote_otherwise_are_a_mismatch(proxy_factory, hot):
    """New returns the rows it applied; a trigger of new's that changes a
    value makes them differ from old's: a mismatch, counted and logged with
    the fingerprint, the row counts being equal, in a simple Query and in an
    extended batch (where another statement's rows on new are not the
    apply's); journaled by key."""
    paths = {role: dict(p, user="app") for role, p in hot.paths.items()}
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n" % unique("salt"))
    if hot.renamed():
        text += "\n[rewrite]\ntable.hot = hot_v2\ncolumn.hot.v = val\n"
    text += "\n[flags]\ndual_write = on\nshadow_failure = journal\n"
    p = proxy_factory(paths=paths, extra=text)
    p.wait_log(r"catalog of path new: \d+ tables")
    c = p.connect()
    try:
        run(c, "INSERT INTO hot (id, v, at) VALUES (100, 'same', now())",
            "UPDATE hot SET at = now() WHERE id = 100")
        w = p.wire_login()
        try:  # equal values, in an extended batch with other rows of new's
            w.send(msg_parse("", "UPDATE hot SET n = n + 1 WHERE id = $1 RETURNING id, v") +
                   msg_bind("", [6]) + msg_execute() +
                   msg_parse("", "UPDATE hot SET at = now() WHERE id = $1 RETURNING v") +
                   msg_bind("", [7]) + msg_execute() + msg_sync())
            assert read_results(w, 1)[0][:2] == (["UPDATE 1", "UPDATE 1"], None)
        finally:
            w.terminate()
        stats = Admin(p).stats()
        assert int(stats["new"]["mismatches"]) == 0, stats
        shout(hot)
        run(c, "INSERT INTO hot (id, v, at) VALUES (101, 'quiet', now())")
        assert int(Admin(p).stats()["new"]["mismatches"]) == 1
        run(c, "UPDATE hot SET at = clock_timestamp() WHERE id IN (1, 2)")
        assert int(Admin(p).stats()["new"]["mismatches"]) == 2
        # extended: a copied UPDATE returning rows (left alone by the
        # trigger), then a captured one, in one batch
        w = p.wire_login()
        try:
            w.send(msg_parse("", "UPDATE hot SET v = 'X' || id WHERE id = $1 RETURNING id, v") +
                   msg_bind("", [4]) + msg_execute() +
                   msg_parse("", "UPDATE hot SET at = now() WHERE id = $1") + msg_bind("", [5]) +
                   msg_execute() + msg_sync())
            tags, err, status = read_results(w, 1)[0]
            assert (tags, err) == (["UPDATE 1", "UPDATE 1"], None)
        finally:
            w.terminate()
        assert int(Admin(p).stats()["new"]["mismatches"]) == 3
    finally:
        c.close()
    p.wait_log(r"dual-write mismatch on path new \(fingerprint [0-9a-f]{16}\): the values "
               r"written differ from the primary's \(2 rows compared\)")
    # journaled by key, old authoritative: repair --journal makes new equal
    # again once new's trigger is gone
    entries = journal_entries(journal_file(p))
    assert [(e["table"], sorted(k["id"] for k in e["keys"]),
             e["authoritative"]) for e in entries] == [("hot", ["101"], "old"),
                                                       ("hot", ["1", "2"], "old"),
                                                       ("hot", ["5"], "old")], entries
    assert all(e["error"].startswith("value mismatch") for e in entries), entries
    assert hot.rows("old") != hot.rows("new")
    hot.sql("new", "DROP TRIGGER shout ON %s" % hot.table("new"))
    repair_journal(p)
    assert hot.rows("old") == hot.rows("new")
