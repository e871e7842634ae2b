"""New's catalog kept current (session/catalog_watch.c, docs/dual-writes.md,
"Catalog"): dual writes apply captured values through what new's catalog
says of a table (its columns, primary key, sequence-owning columns). The
catalog is read at start, blocking; after that it is read again on the
event loop, never stopping it:

- after DDL that passed through pgturnout, once the session is out of its
  transaction;
- when a captured write names a table the catalog does not have (a table
  created behind pgturnout's back);
- at reload, and after a failed read (5 s, then up to every 60 s).

Each test ends by comparing the two sides row by row through the rename
map, with concurrent sessions writing at canary 50. The catalog also names
the user's functions that are not immutable: a write calling one is applied
by key like one calling now() (token() below).
"""

import threading
import time

import psycopg2
import pytest

from conftest import unique
from test_dual import run
from twopaths import Admin, BlackHole, TwoPathLayout, wait_for

pytestmark = pytest.mark.proxy_only


class WatchLayout(TwoPathLayout):
    """Only a placeholder table at start: the tests create theirs later."""

    def __init__(self, pg, kind):
        super().__init__(pg, kind, unique("cw"))

    def renamed(self):
        return self.kind == "schemas"

    def items(self, role):
        return "items_v2" if self.renamed() and role == "new" else "items"

    def objects(self, role):
        return "CREATE TABLE placeholder (id int PRIMARY KEY);"

    def rows(self, role, cols="id, name, at, note"):
        return self.sql(role, "SELECT %s FROM %s ORDER BY id" % (cols, self.items(role)))

    def assert_identical(self, cols="id, name, at, note"):
        old, new = self.rows("old", cols), self.rows("new", cols)
        assert len(old) == len(new), (len(old), len(new))
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert diff == [], "%d rows differ, e.g. %r" % (len(diff), diff[:3])
        return len(old)


@pytest.fixture(params=["schemas", "databases"])
def layout(request, pg):
    lay = WatchLayout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


def start(proxy_factory, layout, new_path=None, flags="dual_write = on\ncanary_percent = 50\n",
          settings=None):
    paths = {role: dict(p, user="app") for role, p in layout.paths.items()}
    if new_path:
        paths["new"].update(new_path)
    extra = ("\n[migration]\nold = old\nnew = new\nsalt = %s\ndual_commit = ordered\n"
             "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if layout.renamed():
        extra += "\n[rewrite]\ntable.items = items_v2\n"
    extra += "\n[flags]\nshadow_failure = journal\n" + flags
    return proxy_factory(paths=paths, extra=extra, settings=settings)


def table_sql(name, note=False):
    return ("CREATE TABLE %s (id bigserial PRIMARY KEY, name text, at timestamptz"
            "%s)" % (name, ", note text DEFAULT 'default'" if note else ""))


def writers(proxy, n_sessions, seconds, note, token=False):
    """N_SESSIONS sessions (canary 50: some on old, some on new) inserting
    and updating items with volatile values for SECONDS (with TOKEN, also
    note = token(), a volatile function of the user's); returns errors."""
    errors = []
    stop = time.time() + seconds

    def work(i):
        try:
            conn = proxy.connect(application_name="w%d" % i)
            ids = []
            while time.time() < stop:
                with conn.cursor() as cur:
                    if note:
                        cur.execute("INSERT INTO items (name, at, note) VALUES (%s, clock_timestamp(),"
                                    " %s) RETURNING id", ("w%d" % i, "given %d" % i))
                    else:
                        cur.execute("INSERT INTO items (name, at) VALUES (%s, clock_timestamp())"
                                    " RETURNING id", ("w%d" % i,))
                    ids.append(cur.fetchone()[0])
                    # applied by key only when new's catalog has the table
                    cur.execute("UPDATE items SET at = clock_timestamp(), name = name || '+'"
                                " WHERE id = %s", (ids[len(ids) // 2],))
                    if token:
                        cur.execute("UPDATE items SET note = token() WHERE id = %s",
                                    (ids[len(ids) // 2],))
            conn.close()
        except psycopg2.Error as e:
            errors.append(str(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


TOKEN = ("CREATE FUNCTION token() RETURNS text LANGUAGE sql VOLATILE"
         " AS $$ SELECT md5(random()::text) $$")


def nondeterministic(proxy):
    return sum(int(r["nondeterministic"]) for r in Admin(proxy).run("SHOW STATS"))


def test_ddl_through_the_proxy_is_read_before_the_next_write(proxy_factory, layout):
    p = start(proxy_factory, layout)
    p.wait_log(r"catalog of path new: \d+ tables")
    v1 = p.connect(options="-c pgturnout.version=v1")
    v2 = p.connect(options="-c pgturnout.version=v2")
    # each schema changed by its own migration, through the proxy
    run(v1, table_sql("items"))
    v2.autocommit = False
    run(v2, table_sql(layout.items("new")))
    v2.commit()  # read once the transaction is over
    v2.autocommit = True
    p.wait_log(r"catalog of path new read \(after DDL\): \d+ tables")
    wait_for(lambda: "read (after DDL)" in p.log().split(layout.items("new"))[-1],
             "the catalog read after the second DDL")
    before = nondeterministic(p)
    assert writers(p, 8, 3, note=False) == []
    n = layout.assert_identical("id, name, at")
    assert n > 8
    # volatile UPDATEs were applied by key, not copied as statements
    assert nondeterministic(p) == before

    # a column added on both sides: captured INSERTs carry it to new
    run(v1, "ALTER TABLE items ADD COLUMN note text DEFAULT 'default'")
    run(v2, "ALTER TABLE %s ADD COLUMN note text DEFAULT 'default'" % layout.items("new"))
    # and a volatile function of the user's: writes calling it are applied by key
    run(v1, TOKEN)
    run(v2, TOKEN)
    # (reads asked for during a read fold into one after it: the last one
    # read all four, and is the first to see the function on new)
    p.wait_log(r"catalog of path new read \(after DDL\): \d+ tables, 1 non-immutable functions")
    assert writers(p, 8, 3, note=True, token=True) == []
    layout.assert_identical()
    assert nondeterministic(p) == before
    given = layout.sql("new", "SELECT count(*) FROM %s WHERE note LIKE 'given%%'"
                       % layout.items("new"))[0][0]
    assert given > 8
    v1.close()
    v2.close()


def test_a_table_created_behind_the_proxy_is_read_at_its_first_write(proxy_factory, layout):
    p = start(proxy_factory, layout)
    p.wait_log(r"catalog of path new: \d+ tables")
    for role in ("old", "new"):
        layout.sql(role, "SET ROLE app; " + table_sql(layout.items(role), note=True) + ";" + TOKEN)
    conn = p.connect()
    run(conn, "INSERT INTO items (name, at, note) VALUES ('first', now(), 'first')")
    p.wait_log(r"catalog of path new read \(table [\w.]*items(_v2)? not in it\): \d+ tables")
    before = nondeterministic(p)
    assert writers(p, 8, 3, note=True, token=True) == []
    layout.assert_identical()
    assert nondeterministic(p) == before
    # a table new does not have asks once, not at every write
    layout.sql("old", "SET ROLE app; CREATE TABLE old_only (id int PRIMARY KEY, v int)")
    conn.close()
    conn = p.connect(options="-c pgturnout.version=v1")
    for i in range(20):
        run(conn, "INSERT INTO old_only VALUES (%d, 1)" % i)
    time.sleep(1.5)
    for i in range(20, 40):
        run(conn, "INSERT INTO old_only VALUES (%d, 1)" % i)
    assert p.log().count("old_only not in it") <= 1
    conn.close()


def test_a_hanging_catalog_read_does_not_stop_the_proxy(proxy_factory, pg):
    lay = WatchLayout(pg, "databases")
    lay.create()
    hole = BlackHole()
    try:
        # new's server hangs: the read at start gives up after 3 s, the
        # retry 5 s later waits on the loop
        p = start(proxy_factory, lay, new_path={"port": hole.port}, flags="dual_write = off\n")
        p.wait_log(r"catalog of path new not read: .*trying again in 5 s")
        wait_for(lambda: len(hole.conns) >= 2, "the retry's connection", timeout=15)
        conn = p.connect()
        for _ in range(20):
            run(conn, "SELECT 1")
        p.reload()
        for _ in range(20):
            run(conn, "SELECT 1")
        # answered while the read still hung
        assert "not read (retry)" not in p.log()
        p.wait_log(r"catalog of path new not read \(retry\): no answer within 15 s", timeout=25)
        run(conn, "SELECT 1")
        conn.close()
    finally:
        hole.close()
        lay.drop()
