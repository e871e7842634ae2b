"""Routing (SPEC §5, §6, §8, §9): which path a session's statements run on.

Every test runs for two layouts of the old and new paths (the `layout`
fixture):

- `schemas`: one database, two schemas; the paths differ only by their
  `search_path` (p_old_* / p_new_*);
- `databases`: two databases on the same server, objects in `public`.

Each path has a function `whereami()` returning its role ('old' / 'new'),
found through the path's search_path, so the server itself says where a
statement ran. The old path has `users(id, name)`, the new one
`users_v2(id, full_name)`, matching the `[rewrite]` rules
(table.users = users_v2, column.users.name = full_name): SQL that reaches the
wrong schema unrewritten fails with 42P01.

Covered: version tags (startup parameter, `options`, SET at the next
transaction, unknown tag FATAL 22023), rewriting of v1 SQL on new (literals
untouched, ambiguous statements 0A000), the sticky canary over 200
connections (binomial bounds, never back to old when the percentage rises,
path == (bucket < percent × 1000)), flips during a transaction, session SETs
and prepared statements across switches (pgbench -M prepared while the
canary flips), every transaction on exactly one path (pgbench audit script),
pinned sessions, the guard rails and FORCE, RELOAD/SIGHUP, and flag changes
through HTTP. The HTTP token checks themselves (401/403 on PUT /flags) are
in test_http.py.
"""

import json
import math
import os
import re
import subprocess
import threading
import time
import urllib.request

import psycopg2
import pytest

import pgwire
from pgwire import msg_bind, msg_execute, msg_parse, msg_sync, read_results
from conftest import PASSWORDS, free_port, unique
from twopaths import Admin as BaseAdmin, TwoPathLayout, wait_for

pytestmark = pytest.mark.proxy_only

PGBENCH_SECONDS = int(os.environ.get("PGT_ROUTING_PGBENCH_SECONDS", "4"))
CANARY_CONNECTIONS = int(os.environ.get("PGT_ROUTING_CONNECTIONS", "200"))
TOKEN = "routing-test-token"

OLD_OBJECTS = """
CREATE FUNCTION whereami() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'old'::text $$;
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO users VALUES (1, 'alice'), (2, 'bob');
CREATE TABLE audit (path text NOT NULL, tid bigint NOT NULL, txid bigint NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, body text);
"""

NEW_OBJECTS = """
CREATE FUNCTION whereami() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'new'::text $$;
CREATE TABLE users_v2 (id int PRIMARY KEY, full_name text NOT NULL);
INSERT INTO users_v2 VALUES (1, 'Alice Liddell'), (2, 'Bob Builder');
CREATE TABLE audit (path text NOT NULL, tid bigint NOT NULL, txid bigint NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, body text);
"""


# ---- layouts ----------------------------------------------------------------

class Layout(TwoPathLayout):
    def __init__(self, pg, kind):
        super().__init__(pg, kind, unique("rt"))

    def objects(self, role):
        return OLD_OBJECTS if role == "old" else NEW_OBJECTS


@pytest.fixture(params=["schemas", "databases"])
def layout(request, pg):
    lay = Layout(pg, request.param)
    lay.create()
    yield lay
    lay.drop()


def migration_config(flags=None, salt=None, canary_key="connection"):
    f = {"canary_percent": "0", "dual_write": "off", "force_path": "none"}
    f.update(flags or {})
    return ("\n[migration]\nold = old\nnew = new\nsalt = %s\ncanary_key = %s\n"
            "version.v1 = old\nversion.v2 = new\n"
            "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
            "\n[flags]\n%s\n" % (salt or unique("salt"), canary_key,
                                 "\n".join("%s = %s" % kv for kv in f.items())))


def start(proxy_factory, layout, flags=None, settings=None, **kw):
    return proxy_factory(settings=settings, paths=layout.paths,
                         extra=migration_config(flags, **kw))


# ---- helpers ------------------------------------------------------------------

class Admin(BaseAdmin):
    def set(self, flag, value, force=False):
        self.run("SET %s = '%s'%s" % (flag, value, " FORCE" if force else ""))

    def error(self, command):
        with pytest.raises(psycopg2.Error) as ei:
            self.run(command)
        return ei.value

    def flags(self):
        return {r["name"]: r["value"] for r in self.run("SHOW FLAGS")}

    def clients(self):
        return [c for c in self.run("SHOW CLIENTS") if c["path"] != "admin"]

    def client(self, application):
        rows = [c for c in self.clients() if c["application"] == application]
        assert len(rows) == 1, (application, self.clients())
        return rows[0]


@pytest.fixture
def admins():
    opened = []

    def open_admin(proxy):
        a = Admin(proxy)
        opened.append(a)
        return a

    yield open_admin
    for a in opened:
        try:
            a.close()
        except psycopg2.Error:
            pass


def one(conn, query, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()[0]


def whereami(conn):
    return one(conn, "SELECT whereami()")


def switches(proxy):
    return re.findall(r"switching session from path (\w+) to (\w+)", proxy.log())


class Flipper(threading.Thread):
    """Sets canary_percent to 100 and 0 in turn, with FORCE, every PERIOD s."""

    def __init__(self, proxy, period=0.5):
        super().__init__(daemon=True)
        self.admin = Admin(proxy)
        self.period = period
        self.stop_event = threading.Event()
        self.flips = 0
        self.error = None

    def run(self):
        value = 100
        try:
            while not self.stop_event.wait(self.period):
                self.admin.set("canary_percent", value, force=True)
                self.flips += 1
                value = 0 if value == 100 else 100
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.admin.close()

    def stop(self):
        self.stop_event.set()
        self.join(10)
        assert self.error is None, "flipper failed: %r" % self.error


def pgbench(proxy, script, seconds, mode, clients=4):
    r = subprocess.run(["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
                        "-M", mode, "-f", script], capture_output=True, text=True,
                       env=proxy.env(), timeout=seconds + 60)
    out = r.stdout
    print(out)
    print(r.stderr[-3000:])
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert r.returncode == 0, (out, r.stderr[-3000:])
    assert processed and int(processed.group(1)) > 0, out
    assert failed is None or int(failed.group(1)) == 0, out
    return int(processed.group(1))


# ---- version tags -------------------------------------------------------------

def test_tagged_clients_land_on_their_paths(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    untagged = p.connect(application_name="untagged")
    v1 = p.connect(application_name="tag-v1", options="-c pgturnout.version=v1")
    v2 = p.connect(application_name="tag-v2", options="-c pgturnout.version=v2")
    try:
        assert whereami(untagged) == "old"
        assert whereami(v1) == "old"
        assert whereami(v2) == "new"
        # the tag reaches the server as an ordinary placeholder setting
        assert one(v2, "SELECT current_setting('pgturnout.version')") == "v2"
        # each runs its own dialect natively
        assert one(v1, "SELECT name FROM users WHERE id = 1") == "alice"
        assert one(v2, "SELECT full_name FROM users_v2 WHERE id = 1") == "Alice Liddell"
        rows = {c["application"]: c for c in admin.clients()}
        assert (rows["untagged"]["tag"] or "", rows["untagged"]["dialect"],
                rows["untagged"]["path"], rows["untagged"]["reason"]) == ("", "old", "old",
                                                                            "default")
        assert (rows["tag-v1"]["tag"], rows["tag-v1"]["dialect"], rows["tag-v1"]["path"],
                rows["tag-v1"]["reason"]) == ("v1", "old", "old", "tag")
        assert (rows["tag-v2"]["tag"], rows["tag-v2"]["dialect"], rows["tag-v2"]["path"],
                rows["tag-v2"]["reason"]) == ("v2", "new", "new", "tag")
        # a tag outranks the canary: at 100% only the untagged session moves
        admin.set("canary_percent", 100)
        for c in (untagged, v1, v2):
            one(c, "SELECT 1")  # the boundary
        assert [whereami(c) for c in (untagged, v1, v2)] == ["new", "old", "new"]
        assert admin.client("tag-v1")["reason"] == "tag"
    finally:
        for c in (untagged, v1, v2):
            c.close()
    # the tag as a startup parameter of its own (not inside options)
    w = p.wire_login(**{"pgturnout.version": "v2", "application_name": "wire-v2"})
    try:
        assert w.query("SELECT whereami()") == [("new",)]
    finally:
        w.terminate()


def test_unknown_tag_is_fatal_22023_naming_known_tags(proxy_factory, layout):
    p = start(proxy_factory, layout)
    for params in ({"pgturnout.version": "v9"}, {"options": "-c pgturnout.version=v9"}):
        c = p.wire()
        try:
            with pytest.raises(pgwire.WireError) as ei:
                c.startup("app", "app", PASSWORDS["app"], **params)
        finally:
            c.close()
        e = ei.value
        assert e.fields.get("S") == "FATAL", e.fields
        assert e.sqlstate == "22023", e.fields
        assert "v9" in e.message and "v1" in e.message and "v2" in e.message, e.message
        assert "pgturnout" in e.message, e.message
    with pytest.raises(psycopg2.OperationalError, match="v9"):
        p.connect(options="-c pgturnout.version=v9")
    # the proxy goes on serving
    conn = p.connect()
    assert whereami(conn) == "old"
    conn.close()


def test_set_version_tag_moves_session_at_next_transaction(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect(application_name="settag", autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT whereami()")           # BEGIN implicitly
            assert cur.fetchone() == ("old",)
            cur.execute("SET pgturnout.version = 'v2'")
            cur.execute("SELECT whereami()")
            assert cur.fetchone() == ("old",), "the tag moved the session inside a transaction"
            cur.execute("SELECT name FROM users WHERE id = 2")  # still the v1 dialect
            assert cur.fetchone() == ("bob",)
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT whereami()")
            assert cur.fetchone() == ("new",)
            cur.execute("SELECT full_name FROM users_v2 WHERE id = 2")  # now v2 SQL, native
            assert cur.fetchone() == ("Bob Builder",)
        conn.commit()
        row = admin.client("settag")
        assert (row["tag"], row["dialect"], row["path"], row["reason"]) == ("v2", "new", "new",
                                                                            "tag")
        # and back, with autocommit: the SET's own transaction is the current one
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET pgturnout.version = 'v1'")
            cur.execute("SELECT whereami()")
            assert cur.fetchone() == ("old",)
    finally:
        conn.close()


def test_set_version_tag_in_a_rolled_back_transaction_does_not_move(proxy_factory, layout):
    p = start(proxy_factory, layout)
    conn = p.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SET pgturnout.version = 'v2'")
        conn.rollback()
        assert one(conn, "SELECT current_setting('pgturnout.version', true)") in (None, "")
        conn.rollback()
        assert whereami(conn) == "old"
    finally:
        conn.close()


def test_set_unknown_tag_in_session_is_22023_and_keeps_the_path(proxy_factory, layout):
    """As at startup: 22023 naming the tag and the known ones; the whole
    query is refused (the other SET of it does not happen either)."""
    p = start(proxy_factory, layout)
    conn = p.connect(options="-c pgturnout.version=v2")
    try:
        for sql in ("SET pgturnout.version = 'v9'",
                    "SET application_name = 'moved'; SET pgturnout.version = 'v9'"):
            with conn.cursor() as cur:
                with pytest.raises(psycopg2.Error) as ei:
                    cur.execute(sql)
            e = ei.value
            assert e.pgcode == "22023", e
            assert "v9" in e.pgerror and "v1" in e.pgerror and "v2" in e.pgerror, e.pgerror
        assert one(conn, "SHOW application_name") != "moved"
        assert whereami(conn) == "new"
        assert whereami(conn) == "new"
    finally:
        conn.close()


def test_unknown_tag_at_startup_is_reported_after_authentication(proxy_factory, layout):
    """An unauthenticated client learns nothing of the tags: a wrong password
    gets 28P01, the right one completes SCRAM before the 22023."""
    p = start(proxy_factory, layout)
    with p.wire() as c:
        with pytest.raises(pgwire.WireError) as ei:
            c.startup("app", "app", "wrong", **{"pgturnout.version": "v9"})
        assert ei.value.sqlstate == "28P01", ei.value.fields
        assert "v1" not in ei.value.message
    with p.wire() as c:
        with pytest.raises(pgwire.WireError) as ei:
            c.startup("app", "app", PASSWORDS["app"], **{"pgturnout.version": "v9"})
        assert ei.value.sqlstate == "22023", ei.value.fields
        assert c.auth_codes == [10]     # SASL exchange finished (SASLFinal checked)


# ---- rewriting ------------------------------------------------------------------

def test_v1_sql_is_rewritten_on_the_new_path(proxy_factory, layout, admins):
    p = start(proxy_factory, layout, flags={"force_path": "new"})
    admin = admins(p)
    v1 = p.connect(application_name="v1-on-new", options="-c pgturnout.version=v1")
    try:
        assert whereami(v1) == "new"
        row = admin.client("v1-on-new")
        assert (row["dialect"], row["path"], row["reason"]) == ("old", "new", "forced")
        with v1.cursor() as cur:
            cur.execute("SELECT name FROM users WHERE id = 1")
            assert cur.fetchall() == [("Alice Liddell",)]
            assert [d[0] for d in cur.description] == ["name"]  # output name kept
            # a name inside a literal or a comment is not touched
            cur.execute("SELECT 'users.name' AS lit, /* users.name */ u.name "
                        "FROM users u WHERE u.name <> 'users.name' AND u.id = 2")
            assert cur.fetchall() == [("users.name", "Bob Builder")]
            # extended protocol (psycopg2 has none; parameters are inlined), and a write
            cur.execute("UPDATE users SET name = %s WHERE id = %s RETURNING name",
                        ("Bob the Builder", 2))
            assert cur.fetchall() == [("Bob the Builder",)]
        assert layout.sql("new", "SELECT full_name FROM users_v2 WHERE id = 2") == [
            ("Bob the Builder",)]
        assert layout.sql("old", "SELECT name FROM users WHERE id = 2") == [("bob",)]
        # ambiguous: 'name' could belong to audit too -> 0A000, in band
        with v1.cursor() as cur:
            with pytest.raises(psycopg2.Error) as ei:
                cur.execute("SELECT name FROM users, audit")
            assert ei.value.pgcode == "0A000", ei.value
            assert "pgturnout" in ei.value.pgerror
            cur.execute("SELECT users.name FROM users, audit WHERE users.id = 1 LIMIT 1")
            assert cur.fetchall() == []  # audit is empty; the qualified form is fine
        assert whereami(v1) == "new"  # the session goes on
        stats = admin.stats()
        assert int(stats["new"]["rewritten"]) >= 3, stats
        assert int(stats["new"]["refused"]) >= 1, stats
    finally:
        v1.close()
    # v2 SQL reaches the old path rewritten the other way
    admin.set("force_path", "old")
    v2 = p.connect(options="-c pgturnout.version=v2")
    try:
        assert whereami(v2) == "old"
        assert one(v2, "SELECT full_name FROM users_v2 WHERE id = 1") == "alice"
    finally:
        v2.close()


# ---- canary ------------------------------------------------------------------------

def binomial_bounds(n, p, sigmas=5.0):
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    return max(0, math.floor(mean - sigmas * sd)), min(n, math.ceil(mean + sigmas * sd))


def test_canary_is_sticky_and_only_adds_sessions(proxy_factory, layout, admins):
    p = start(proxy_factory, layout, settings={"log_level": "info"})
    admin = admins(p)
    n = CANARY_CONNECTIONS
    conns = []
    try:
        for i in range(n):
            conns.append(p.connect(application_name="canary-%d" % i))
        on_new = set()
        for percent in (0, 10, 50, 100):
            if percent:
                admin.set("canary_percent", percent)
            for c in conns:          # one transaction each: the boundary
                one(c, "SELECT 1")
            where = [whereami(c) for c in conns]
            now_new = {i for i, w in enumerate(where) if w == "new"}
            assert on_new <= now_new, ("sessions went back to old at %d%%: %s"
                                       % (percent, sorted(on_new - now_new)))
            lo, hi = binomial_bounds(n, percent / 100.0)
            assert lo <= len(now_new) <= hi, (percent, len(now_new), (lo, hi))
            rows = {c["application"]: c for c in admin.clients()}
            assert len(rows) == n
            for i in range(n):
                r = rows["canary-%d" % i]
                bucket = int(r["bucket"])
                assert 0 <= bucket < 100000
                inside = bucket < percent * 1000
                assert r["path"] == ("new" if inside else "old"), r
                assert (i in now_new) == inside, (i, r, where[i])
                assert r["reason"] == ("canary" if inside else "default"), r
            print("canary %d%%: %d of %d sessions on new (bounds %d..%d)"
                  % (percent, len(now_new), n, lo, hi))
            on_new = now_new
        # canary_key=connection: the buckets of the connections spread out
        buckets = sorted(int(r["bucket"]) for r in admin.clients())
        assert len(set(buckets)) > n * 0.95
        below_half = sum(1 for b in buckets if b < 50000)
        lo, hi = binomial_bounds(n, 0.5)
        assert lo <= below_half <= hi
    finally:
        for c in conns:
            c.close()


def test_canary_key_application_moves_an_application_together(proxy_factory, layout, admins):
    p = start(proxy_factory, layout, canary_key="application_name", salt="mig-orders-v2")
    admin = admins(p)
    # SPEC test vectors: billing-api -> 34611, checkout-web -> 80249
    billing = [p.connect(application_name="billing-api") for _ in range(3)]
    checkout = [p.connect(application_name="checkout-web") for _ in range(3)]
    try:
        buckets = {(c["application"], c["bucket"]) for c in admin.clients()}
        assert buckets == {("billing-api", "34611"), ("checkout-web", "80249")}, buckets
        admin.set("canary_percent", "34.612")
        for c in billing + checkout:
            one(c, "SELECT 1")
        assert [whereami(c) for c in billing] == ["new"] * 3
        assert [whereami(c) for c in checkout] == ["old"] * 3
    finally:
        for c in billing + checkout:
            c.close()


# ---- switching at transaction boundaries ------------------------------------------

def test_flip_inside_a_transaction_waits_for_its_end(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect(application_name="flipper-victim", autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT whereami()")
            assert cur.fetchone() == ("old",)
            cur.execute("INSERT INTO notes (body) VALUES ('before the flip')")
            admin.set("force_path", "new")
            for _ in range(3):
                cur.execute("SELECT whereami()")
                assert cur.fetchone() == ("old",), "moved inside a transaction"
            cur.execute("INSERT INTO notes (body) VALUES ('after the flip')")
            cur.execute("SELECT count(*) FROM notes")
            assert cur.fetchone() == (2,)
            row = admin.client("flipper-victim")
            assert row["path"] == "old" and row["in_transaction"] in ("true", "t", True), row
        conn.commit()
        assert whereami(conn) == "new"
        conn.commit()
        assert [r[0] for r in layout.sql("old", "SELECT body FROM notes ORDER BY id")] == [
            "before the flip", "after the flip"]
        assert layout.sql("new", "SELECT count(*) FROM notes") == [(0,)]
        row = admin.client("flipper-victim")
        assert (row["path"], row["reason"]) == ("new", "forced"), row
        # a rolled-back transaction is a boundary too
        with conn.cursor() as cur:
            cur.execute("SELECT whereami()")
            assert cur.fetchone() == ("new",)
            admin.set("force_path", "old")
            cur.execute("SELECT whereami()")
            assert cur.fetchone() == ("new",), "moved inside a transaction"
        conn.rollback()
        assert whereami(conn) == "old"
        conn.rollback()
    finally:
        conn.close()
    assert ("old", "new") in switches(p) and ("new", "old") in switches(p)


def test_idle_session_next_transaction_after_a_flip_runs_on_the_new_path(
        proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect()
    try:
        assert whereami(conn) == "old"
        admin.set("force_path", "new")
        assert whereami(conn) == "new"
    finally:
        conn.close()


def test_session_settings_follow_a_switch(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect(application_name="settings-follow")
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '4321ms'")
            cur.execute("SET myapp.tenant = 'acme'")
        admin.set("canary_percent", 100)
        one(conn, "SELECT 1")  # the boundary
        assert whereami(conn) == "new"
        assert one(conn, "SHOW statement_timeout") == "4321ms"
        assert one(conn, "SELECT current_setting('myapp.tenant')") == "acme"
        assert one(conn, "SELECT current_setting('application_name')") == "settings-follow"
        with conn.cursor() as cur:
            cur.execute("RESET statement_timeout")
        admin.set("canary_percent", 0, force=True)
        one(conn, "SELECT 1")
        assert whereami(conn) == "old"
        assert one(conn, "SHOW statement_timeout") == "0"
        assert one(conn, "SELECT current_setting('myapp.tenant')") == "acme"
    finally:
        conn.close()


def test_rolled_back_set_is_not_replayed_on_a_switch(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '1234ms'")
        conn.rollback()
        assert one(conn, "SHOW statement_timeout") == "0"
        conn.rollback()
        admin.set("force_path", "new")
        one(conn, "SELECT 1")
        conn.rollback()  # the boundary
        assert whereami(conn) == "new"
        conn.rollback()
        assert one(conn, "SHOW statement_timeout") == "0"
    finally:
        conn.close()


PREPARED_SCRIPT = """\\set id random(1, 2)
\\set n random(1, 1000000)
SELECT whereami(), :n::int + 1;
SELECT name FROM users WHERE id = :id;
"""


def test_prepared_statements_survive_switches(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout, settings={"log_level": "info"})
    script = tmp_path / "prepared.sql"
    script.write_text(PREPARED_SCRIPT)
    flipper = Flipper(p)
    flipper.start()
    try:
        done = pgbench(p, str(script), PGBENCH_SECONDS, "prepared")
    finally:
        flipper.stop()
    moves = switches(p)
    print("%d transactions, %d flips, %d switches" % (done, flipper.flips, len(moves)))
    assert flipper.flips >= 3
    assert ("old", "new") in moves and ("new", "old") in moves, moves
    assert re.search(r"replayed \d+ settings and [1-9]\d* prepared statements", p.log())


def test_prepared_statement_after_a_switch_onto_a_kept_connection(proxy_factory, layout,
                                                                  admins):
    """A switch that takes a kept server connection of the target path from
    the pool replays the session's prepared statements before the request
    that caused the switch reaches that backend (it was sent first, failed
    with 26000 and left the session waiting for an answer)."""
    p = start(proxy_factory, layout, settings={"log_level": "debug"})
    admin = admins(p)
    a = p.wire_login()
    assert a.query("SELECT whereami()") == [("old",)]
    a.terminate()  # its backend on old is kept for the next like it
    admin.set("canary_percent", 100)
    b = p.wire_login()
    try:
        b.send(msg_parse("where", "SELECT whereami()") + msg_sync())
        assert read_results(b, 1)[0][1] is None
        b.send(msg_bind("where", []) + msg_execute() + msg_sync())
        assert read_results(b, 1)[0][1] is None
        admin.set("canary_percent", 0, force=True)
        for _ in range(3):
            b.send(msg_bind("where", []) + msg_execute() + msg_sync())
            tags, err, status = read_results(b, 1)[0]
            assert err is None and tags == ["SELECT 1"] and status == "I", (tags, err)
        assert b.query("SELECT whereami()") == [("old",)]
    finally:
        b.terminate()
    assert re.search(r"reusing server connection to path old", p.log()), p.log()[-3000:]


AUDIT_SCRIPT = """\\set tid :client_id * 1000000000000 + random(1, 999999999999)
BEGIN;
INSERT INTO audit (path, tid, txid) VALUES (whereami(), :tid, txid_current());
SELECT whereami();
SELECT name FROM users WHERE id = 1;
INSERT INTO audit (path, tid, txid) VALUES (whereami(), :tid, txid_current());
COMMIT;
"""


@pytest.mark.parametrize("mode", ["simple", "extended"])
def test_every_transaction_runs_on_one_path(proxy_factory, layout, tmp_path, mode):
    p = start(proxy_factory, layout, settings={"log_level": "info"})
    script = tmp_path / "audit.sql"
    script.write_text(AUDIT_SCRIPT)
    flipper = Flipper(p)
    flipper.start()
    try:
        done = pgbench(p, str(script), PGBENCH_SECONDS, mode)
    finally:
        flipper.stop()
    rows = []
    for role in ("old", "new"):
        for path, tid, txid in layout.sql(role, "SELECT path, tid, txid FROM audit"):
            rows.append((role, path, tid, txid))
    by_tid = {}
    for r in rows:
        by_tid.setdefault(r[2], []).append(r)
    split = {t: rs for t, rs in by_tid.items()
             if len(rs) != 2 or len({(r[0], r[1], r[3]) for r in rs}) != 1}
    per_path = {role: sum(1 for rs in by_tid.values() if rs[0][0] == role)
                for role in ("old", "new")}
    print("%d transactions: %s; %d flips; %d switches"
          % (done, per_path, flipper.flips, len(switches(p))))
    assert not split, "transactions spread over both paths: %s" % list(split.items())[:5]
    assert all(r[0] == r[1] for r in rows)
    # pgbench counts the transactions it finished; one per client may have
    # committed as the run was ending without being counted
    assert done <= len(by_tid) <= done + 4, (done, len(by_tid))
    assert per_path["old"] > 0 and per_path["new"] > 0, per_path


# ---- pinning ----------------------------------------------------------------------------

PINNERS = {
    "temp": (["CREATE TEMP TABLE scratch (x int)"], "temporary object"),
    "listen": (["LISTEN routing_channel"], "LISTEN"),
    "advisory": (["SELECT pg_advisory_lock(4242)"], "advisory lock"),
    "hold_cursor": (["DECLARE held CURSOR WITH HOLD FOR SELECT 1"], "WITH HOLD"),
    "prepare": (["PREPARE sqlprep AS SELECT 1"], "PREPARE"),
}


@pytest.mark.parametrize("kind", sorted(PINNERS))
def test_pinned_session_stays_on_its_path(proxy_factory, layout, admins, kind):
    p = start(proxy_factory, layout)
    admin = admins(p)
    statements, reason = PINNERS[kind]
    pinned = p.connect(application_name="pinned")
    free = p.connect(application_name="free")
    try:
        with pinned.cursor() as cur:
            for s in statements:
                cur.execute(s)
        assert whereami(pinned) == "old"
        admin.set("force_path", "new")
        for c in (pinned, free):
            one(c, "SELECT 1")  # the boundary
        assert whereami(free) == "new"
        assert whereami(pinned) == "old"
        assert whereami(pinned) == "old"
        row = admin.client("pinned")
        assert row["path"] == "old", row
        assert reason.lower() in (row["pinned"] or "").lower(), row
        assert not admin.client("free")["pinned"]
        # the pinned state still works on its path
        if kind == "temp":
            with pinned.cursor() as cur:
                cur.execute("INSERT INTO scratch VALUES (1)")
                cur.execute("SELECT count(*) FROM scratch")
                assert cur.fetchone() == (1,)
        if kind == "prepare":
            assert one(pinned, "EXECUTE sqlprep") == 1
        if kind == "listen":
            layout.sql("old", "NOTIFY routing_channel, 'still here'")
            deadline = time.time() + 5
            while not pinned.notifies and time.time() < deadline:
                one(pinned, "SELECT 1")
                time.sleep(0.05)
            assert [n.payload for n in pinned.notifies] == ["still here"]
    finally:
        pinned.close()
        free.close()
    # a reconnect is free to move
    again = p.connect()
    try:
        assert whereami(again) == "new"
    finally:
        again.close()


# ---- guard rails ---------------------------------------------------------------------------

def test_guard_rail_salt_is_frozen_while_canary_is_on(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect(application_name="salted")
    try:
        before = admin.client("salted")["bucket"]
        admin.set("canary_percent", 10)
        e = admin.error("SET salt = 'another-salt'")
        assert e.pgcode == "55000", e
        assert "salt" in e.pgerror and "FORCE" in e.pgerror, e.pgerror
        assert admin.flags()["salt"] != "another-salt"
        admin.run("SET salt = 'another-salt' FORCE")
        assert admin.flags()["salt"] == "another-salt"
        one(conn, "SELECT 1")
        one(conn, "SELECT 1")
        after = admin.client("salted")["bucket"]
        # a new salt re-buckets (the same bucket by chance: 1 in 100000)
        assert after != before
        row = admin.client("salted")
        assert row["path"] == ("new" if int(after) < 10000 else "old"), row
        # with the canary at 0 the salt may change freely
        admin.set("canary_percent", 0, force=True)
        admin.set("salt", "third-salt")
        assert admin.flags()["salt"] == "third-salt"
    finally:
        conn.close()


def test_guard_rail_lowering_canary_after_unmirrored_writes(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect()
    try:
        # reads on new do not block lowering
        admin.set("canary_percent", 100)
        one(conn, "SELECT 1")
        assert whereami(conn) == "new"
        admin.set("canary_percent", 50)
        # back to 100, so the session surely runs its next transaction on new
        # (at 50 it moves back to old at its next transaction if its bucket
        # is in the upper half)
        admin.set("canary_percent", 100)
        assert whereami(conn) == "new"
        # a write on new while dual_write is off does block it
        with conn.cursor() as cur:
            cur.execute("INSERT INTO notes (body) VALUES ('only on new')")
        assert whereami(conn) == "new"
        e = admin.error("SET canary_percent = 10")
        assert e.pgcode == "55000", e
        assert "lowering canary_percent" in e.pgerror and "FORCE" in e.pgerror, e.pgerror
        assert admin.flags()["canary_percent"] == "100"
        admin.set("canary_percent", 0, force=True)
        assert admin.flags()["canary_percent"] == "0"
        one(conn, "SELECT 1")
        assert whereami(conn) == "old"
    finally:
        conn.close()


def test_guard_rail_dual_write_off(proxy_factory, layout, admins):
    p = start(proxy_factory, layout)
    admin = admins(p)
    # (1) writes on new made while dual_write was off keep it from going off again
    v2 = p.connect(options="-c pgturnout.version=v2")
    try:
        with v2.cursor() as cur:
            cur.execute("INSERT INTO notes (body) VALUES ('unmirrored')")
    finally:
        v2.close()
    wait_for(lambda: not admin.clients(), "the v2 session to end")
    admin.set("dual_write", "on")
    e = admin.error("SET dual_write = off")
    assert e.pgcode == "55000", e
    assert "dual_write" in e.pgerror and "FORCE" in e.pgerror, e.pgerror
    assert "no copy on old" in e.pgerror, e.pgerror
    assert admin.flags()["dual_write"] == "on"
    admin.set("dual_write", "off", force=True)
    assert admin.flags()["dual_write"] == "off"


def test_guard_rail_dual_write_off_while_sessions_may_write_to_new(proxy_factory, layout,
                                                                   admins):
    p = start(proxy_factory, layout, flags={"dual_write": "on"})
    admin = admins(p)
    # nothing on new, canary 0, force none: allowed
    admin.set("dual_write", "off")
    # on again: new may have missed writes meanwhile, so it takes FORCE until a
    # verify passes (test_journal.py has the rest of that guard rail)
    assert admin.error("SET dual_write = on").pgcode == "55000"
    admin.set("dual_write", "on", force=True)
    # a session on new (by tag), no write yet
    v2 = p.connect(options="-c pgturnout.version=v2")
    try:
        assert whereami(v2) == "new"
        e = admin.error("SET dual_write = off")
        assert e.pgcode == "55000", e
        assert "sessions may write to new" in e.pgerror, e.pgerror
    finally:
        v2.close()
    wait_for(lambda: not admin.clients(), "the v2 session to end")
    # a canary above 0, or force_path = new, count as "may write to new"
    admin.set("canary_percent", 1)
    assert admin.error("SET dual_write = off").pgcode == "55000"
    admin.set("canary_percent", 0)
    admin.set("force_path", "new")
    assert admin.error("SET dual_write = off").pgcode == "55000"
    admin.run("SET dual_write = off FORCE")
    assert admin.flags()["dual_write"] == "off"


# ---- reload ----------------------------------------------------------------------------------

def rewrite_flags(proxy, **changes):
    text = open(proxy.config_path).read()
    for k, v in changes.items():
        text, n = re.subn(r"(?m)^%s = .*$" % k, "%s = %s" % (k, v), text)
        assert n == 1, k
    proxy.write_config(text)


@pytest.mark.parametrize("how", ["sighup", "console"])
def test_reload_changes_routing(proxy_factory, layout, admins, how):
    p = start(proxy_factory, layout)
    admin = admins(p)
    conn = p.connect(application_name="reloaded")
    try:
        assert whereami(conn) == "old"
        admin.set("canary_percent", "12.5")   # a runtime value the file does not touch
        rewrite_flags(p, force_path="new")
        if how == "sighup":
            p.reload()
        else:
            admin.run("RELOAD")
        wait_for(lambda: admin.flags()["force_path"] == "new", "the reload")
        f = admin.flags()
        assert f["canary_percent"] == "12.5", f
        hist = admin.run("SHOW HISTORY")
        assert (hist[-1]["name"], hist[-1]["new"], hist[-1]["surface"]) == (
            "force_path", "new", "reload"), hist
        one(conn, "SELECT 1")  # the boundary
        assert whereami(conn) == "new"
        row = admin.client("reloaded")
        assert (row["path"], row["reason"]) == ("new", "forced"), row
        # a reload whose file changes canary_percent overrides the runtime value
        rewrite_flags(p, force_path="none", canary_percent="0.001")
        admin.run("RELOAD")
        f = wait_for(lambda: (lambda f: f if f["force_path"] == "none" else None)(admin.flags()),
                     "the second reload")
        assert f["canary_percent"] == "0.001", f
        one(conn, "SELECT 1")
        row = admin.client("reloaded")
        expected = "new" if int(row["bucket"]) < 1 else "old"
        assert (row["path"], whereami(conn)) == (expected, expected), row
    finally:
        conn.close()


def test_bad_reload_keeps_routing(proxy_factory, layout, admins):
    p = start(proxy_factory, layout, flags={"force_path": "new"})
    admin = admins(p)
    conn = p.connect()
    try:
        assert whereami(conn) == "new"
        rewrite_flags(p, force_path="sideways")
        p.reload()
        p.wait_log(r"reload \(\w+\) refused")
        assert admin.flags()["force_path"] == "new"
        one(conn, "SELECT 1")
        assert whereami(conn) == "new"
    finally:
        conn.close()


# ---- HTTP --------------------------------------------------------------------------------------

def http_put_flags(proxy, port, body, token):
    req = urllib.request.Request("http://127.0.0.1:%d/flags" % port, method="PUT",
                                 data=json.dumps(body).encode())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_http_flag_change_moves_sessions(proxy_factory, layout, admins, tmp_path):
    token_file = tmp_path / "http_token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    p = start(proxy_factory, layout, settings={"http_listen": "127.0.0.1:%d" % port,
                                              "http_token_file": str(token_file)})
    admin = admins(p)
    conn = p.connect()
    try:
        assert whereami(conn) == "old"
        # refused without the token (the full token checks are in test_http.py)
        status, _ = http_put_flags(p, port, {"force_path": "new"}, None)
        assert status == 401
        one(conn, "SELECT 1")
        assert whereami(conn) == "old"
        status, body = http_put_flags(p, port, {"force_path": "new"}, TOKEN)
        assert status == 200, body
        assert body["flags"]["force_path"] == "new"
        one(conn, "SELECT 1")
        assert whereami(conn) == "new"
        # a guard rail answers 409; force overrides it
        with conn.cursor() as cur:
            cur.execute("INSERT INTO notes (body) VALUES ('http')")
        status, _ = http_put_flags(p, port, {"canary_percent": 30}, TOKEN)
        assert status == 200
        status, _ = http_put_flags(p, port, {"canary_percent": 0}, TOKEN)
        assert status == 409
        status, _ = http_put_flags(p, port, {"canary_percent": 0, "force_path": "old",
                                             "force": True}, TOKEN)
        assert status == 200
        one(conn, "SELECT 1")
        assert whereami(conn) == "old"
        assert admin.flags()["force_path"] == "old"
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            metrics = r.read().decode()
        for role in ("old", "new"):
            m = re.search(r'^pgturnout_path_switches_total\{path="%s"\} (\d+)' % role, metrics,
                          re.M)
            assert m and int(m.group(1)) >= 1, (role, metrics[:3000])
    finally:
        conn.close()
