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

import pytest

from conftest import BIG, unique
from test_dual import journal_file, pgbench, read_journal, run
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


def config(layout, canary):
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if layout.renamed():
        text += "\n[rewrite]\ntable.parent = parent_v2\ncolumn.parent.name = title\n"
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
