"""Dual writes copy values, not statements (SPEC §7 "Values, not
statements"): an INSERT runs on old with a capture of the rows it wrote, and
new gets those values, serial ids, uuid and clock defaults included, whichever
path is the session's primary. The client sees its own result only.

Both layouts: "schemas" (items(id bigserial, name, ...) on old,
items_v2(id bigint without a default, title, ...) on new, with renames) and
"databases" (the same items table, with its own sequence, on both).
Every test ends by comparing the two sides row by row, all columns.
"""

import os
import subprocess

import pytest

from conftest import BIG, unique
from test_dual import journal_file, pgbench, read_journal, run
from twopaths import Admin, TwoPathLayout

pytestmark = pytest.mark.proxy_only

SECONDS = 20 if BIG else 4


class ItemsLayout(TwoPathLayout):
    def __init__(self, pg, kind):
        super().__init__(pg, kind, unique("dv"))

    def renamed(self):
        return self.kind == "schemas"

    def table(self, role):
        return "items_v2" if self.renamed() and role == "new" else "items"

    def name_col(self, role):
        return "title" if self.renamed() and role == "new" else "name"

    def objects(self, role):
        if role == "new" and self.renamed():
            key = "id bigint PRIMARY KEY"
        else:
            key = "id bigserial PRIMARY KEY"
        return ("CREATE TABLE %s (%s, %s text, token uuid DEFAULT gen_random_uuid(), "
                "created timestamptz DEFAULT clock_timestamp(), n int);"
                "CREATE TABLE notes (id bigint, body text);"
                % (self.table(role), key, self.name_col(role)))

    def rows(self, role):
        return self.sql(role, "SELECT id, %s, token, created, n FROM %s ORDER BY id"
                        % (self.name_col(role), self.table(role)))

    def assert_identical(self):
        old, new = self.rows("old"), self.rows("new")
        assert len(old) == len(new), (len(old), len(new))
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert diff == [], "%d rows differ, e.g. %r" % (len(diff), diff[:3])
        return len(old)


def config(layout, flags=None):
    f = {"canary_percent": "0", "dual_write": "on", "shadow_failure": "journal",
         "force_path": "none"}
    f.update(flags or {})
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if layout.renamed():
        text += "\n[rewrite]\ntable.items = items_v2\ncolumn.items.name = title\n"
    text += "\n[flags]\n%s\n" % "\n".join("%s = %s" % kv for kv in f.items())
    return text


@pytest.fixture(params=["schemas", "databases"])
def layout(request, pg):
    lay = ItemsLayout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


def test_generated_values_reach_new_from_a_v1_client(proxy_factory, layout):
    p = proxy_factory(paths=layout.paths, extra=config(layout))
    c = p.connect(options="-c pgturnout.version=v1")
    try:
        run(c, "INSERT INTO items (name, n) VALUES ('a', 1)",
            "INSERT INTO items (name, n) VALUES ('b', 2), ('c', 3) -- trailing comment",
            "INSERT INTO items (name) SELECT 'g' || g FROM generate_series(1, 5) g;")
        with c.cursor() as cur:
            cur.execute("INSERT INTO items AS i (name, n) VALUES ('r', 7) RETURNING i.id, n")
            rid, rn = cur.fetchone()
            assert rn == 7 and cur.description[0].name == "id" and len(cur.description) == 2
            cur.execute("INSERT INTO items (name) VALUES ('x')")
            assert cur.rowcount == 1 and cur.description is None
            # an alias that is a reserved word: the capture quotes it
            cur.execute('INSERT INTO items AS "order" (name, n) VALUES (\'o\', 8) '
                        'RETURNING "order".n')
            assert cur.fetchone() == (8,)
        c.autocommit = False
        run(c, "INSERT INTO items (name, n) VALUES ('t', 9)")
        run(c, "INSERT INTO notes SELECT %d, 'child of r'" % rid)
        c.commit()
        run(c, "INSERT INTO items (name) VALUES ('rolled back')")
        c.rollback()
    finally:
        c.close()
    assert layout.assert_identical() == 12
    assert layout.sql("new", "SELECT count(*) FROM notes")[0][0] == 1
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    assert all(int(r["mismatches"]) == 0 for r in stats), stats


def test_generated_values_reach_old_from_a_v2_client(proxy_factory, layout):
    """New has no default for id in the schemas layout: the v2 client's
    INSERT works because old runs it first and new gets old's values."""
    p = proxy_factory(paths=layout.paths, extra=config(layout))
    t, col = layout.table("new"), layout.name_col("new")
    c = p.connect(options="-c pgturnout.version=v2")
    try:
        with c.cursor() as cur:
            cur.execute("INSERT INTO %s (%s, n) VALUES ('v2a', 1), ('v2b', 2) RETURNING id, %s"
                        % (t, col, col))
            got = cur.fetchall()
            assert [r[1] for r in got] == ["v2a", "v2b"]
            assert [d.name for d in cur.description] == ["id", col]
        run(c, "INSERT INTO %s (%s) VALUES ('plain')" % (t, col))
    finally:
        c.close()
    assert layout.assert_identical() == 3
    ids = [r[0] for r in layout.rows("new")]
    assert [r[0] for r in got] == ids[:2]
    assert read_journal(journal_file(p)) == []


CONCURRENT_CASES = ([(c, m) for c in ("0", "50", "100") for m in ("simple", "prepared", "extended")]
                    if BIG else [("0", "simple"), ("50", "simple"), ("100", "simple"),
                                 ("0", "prepared"), ("50", "prepared"), ("50", "extended")])


@pytest.mark.parametrize("canary,mode", CONCURRENT_CASES)
def test_concurrent_inserts_with_generated_values_stay_identical(proxy_factory, layout, tmp_path,
                                                                 canary, mode):
    p = proxy_factory(paths=layout.paths, extra=config(layout, {"canary_percent": canary}))
    script = tmp_path / "ins.sql"
    script.write_text("\\set n random(1, 1000)\n"
                      "INSERT INTO items (name, n) VALUES ('p' || :n, :n) RETURNING id;\n")
    n = pgbench(p.env(), ["-c", "8", "-j", "2", "-T", SECONDS, "-M", mode, "-f", script],
                timeout=SECONDS + 60)
    assert layout.assert_identical() == n
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    assert all(int(r["mismatches"]) == 0 for r in stats), stats


@pytest.fixture
def demo_db(pg):
    """A database holding the demo's schema (docker/init.sql) as shipped."""
    db = unique("demo")
    pg.sql("CREATE DATABASE %s OWNER app" % db, dbname="postgres")
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "docker", "init.sql")) as f:
        pg.sql("SET ROLE app; " + f.read(), dbname=db)
    yield db
    pg.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def demo_rewrite_section():
    """The [rewrite] section of the demo's config (docker/pgturnout.ini)."""
    here = os.path.dirname(os.path.abspath(__file__))
    out, inside = [], False
    with open(os.path.join(here, "..", "..", "docker", "pgturnout.ini")) as f:
        for line in f:
            if line.startswith("["):
                inside = line.strip() == "[rewrite]"
            if inside and not line.startswith(";"):
                out.append(line)
    assert any(l.startswith("up.") for l in out), out
    return "".join(out)


@pytest.mark.parametrize("canary", ["0", "50"])
def test_demo_schema_stays_identical(proxy_factory, pg, demo_db, canary):
    """scripts/demo.sh's schema and rules: serial users.id on old, a plain
    integer users_v2.id on new; v1 and v2 clients insert, update, delete."""
    # as the demo's config: the catalog read as app (captured INSERTs then
    # leave out old's nickname, which new does not have), its [rewrite] lines
    paths = {"old": {"dbname": demo_db, "user": "app"},
             "new": {"dbname": demo_db, "search_path": "app_v2, public", "user": "app"}}
    extra = ("\n[migration]\nold = old\nnew = new\nsalt = %s\nversion.v1 = old\n"
             "version.v2 = new\n\n%s\n[flags]\ndual_write = on\n"
             "canary_percent = %s\n" % (unique("salt"), demo_rewrite_section(), canary))
    p = proxy_factory(paths=paths, extra=extra)
    v1 = p.connect(options="-c pgturnout.version=v1")
    v2 = p.connect(options="-c pgturnout.version=v2")
    plain = [p.connect() for _ in range(4)]
    try:
        run(v1, "INSERT INTO users (name, email) VALUES ('Barbara Liskov', 'barbara@example.com')",
            "UPDATE users SET email = 'ada@lovelace.org' WHERE name = 'Ada Lovelace'")
        run(v2, "INSERT INTO users_v2 (full_name, email) VALUES ('Donald Knuth', 'don@example.com')",
            "UPDATE users_v2 SET full_name = 'Alan M. Turing' WHERE full_name = 'Alan Turing'",
            "DELETE FROM users_v2 WHERE full_name = 'Edsger Dijkstra'")
        for i, c in enumerate(plain):
            run(c, "INSERT INTO users (name) VALUES ('plain %d')" % i,
                "UPDATE users SET email = 'p%d@example.com' WHERE name = 'plain %d'" % (i, i))
        run(v1, "DELETE FROM users WHERE name = 'plain 0'")
    finally:
        for c in [v1, v2] + plain:
            c.close()
    old = pg.sql("SELECT id, name, email FROM public.users ORDER BY id", dbname=demo_db)
    new = pg.sql("SELECT id, full_name, email FROM app_v2.users_v2 ORDER BY id", dbname=demo_db)
    assert old == new, (old, new)
    assert len(old) == 4 + 2 - 1 + 4 - 1
    # writes through the demo's expressions: new's email_domain follows every
    # email written by v1 and v2 clients, old's nickname every name v2 wrote
    assert pg.sql("SELECT count(*) FROM app_v2.users_v2 WHERE email_domain IS DISTINCT FROM "
                  "split_part(email, '@', 2)", dbname=demo_db) == [(0,)]
    assert pg.sql("SELECT email_domain FROM app_v2.users_v2 WHERE full_name = 'Barbara Liskov'",
                  dbname=demo_db) == [("example.com",)]
    assert pg.sql("SELECT name, nickname FROM public.users WHERE name IN ('Donald Knuth', "
                  "'Alan M. Turing') ORDER BY name", dbname=demo_db) == \
        [("Alan M. Turing", "Alan"), ("Donald Knuth", "Donald")]
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    assert all(int(r["mismatches"]) == 0 for r in stats), stats


@pytest.mark.parametrize("mode", ["simple", "prepared"])
def test_columns_only_one_side_has_are_left_to_it(proxy_factory, pg, tmp_path, mode):
    """Old has a column new dropped (nick), new has one old lacks (extra,
    with its own default) and a generated one (twice): the captured values
    reach new through the columns new has; new computes the rest. Needs the
    new path's catalog, read at start (user set on [path new])."""
    lay = ItemsLayout(pg, "schemas")
    lay.objects = lambda role: (
        "CREATE TABLE items (id bigserial PRIMARY KEY, name text, nick text DEFAULT 'n',"
        " n int);" if role == "old" else
        "CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text, extra text DEFAULT 'x',"
        " n int, twice bigint GENERATED ALWAYS AS (id * 2) STORED);")
    lay.create()
    try:
        paths = {role: dict(p, user="app") for role, p in lay.paths.items()}
        p = proxy_factory(paths=paths, extra=config(lay, {"canary_percent": "50"}))
        p.wait_log(r"catalog of path new: \d+ tables")
        script = tmp_path / "ins.sql"
        script.write_text("\\set n random(1, 1000)\n"
                          "INSERT INTO items (name, n) VALUES ('p' || :n, :n);\n")
        n = pgbench(p.env(), ["-c", "4", "-j", "2", "-t", "50", "-M", mode, "-f", script])
        old = lay.sql("old", "SELECT id, name, n FROM items ORDER BY id")
        new = lay.sql("new", "SELECT id, title, n FROM items_v2 ORDER BY id")
        assert old == new and len(old) == n
        assert lay.sql("new", "SELECT count(*) FROM items_v2 WHERE extra = 'x' "
                              "AND twice = id * 2")[0][0] == n
        assert read_journal(journal_file(p)) == []
    finally:
        lay.drop()
