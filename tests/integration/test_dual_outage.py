"""The shadow's backend or server going away at each step of a mirrored
transaction (SPEC §7, docs/dual-writes.md §3), dual_commit = ordered,
shadow_failure = journal.

Old is the test server, new a PostgreSQL of its own (so that it can be
stopped). A raw protocol client (simple Query, or Parse/Bind/Execute/Sync
per statement) writes through pgturnout at canary 0 while the shadow's
backend is terminated (pg_terminate_backend from a side connection) or new's
server is stopped (fast or immediate) at one step:

- after BEGIN, after a write (the shadow idle in its transaction);
- during the primary's COMMIT, during the shadow's COMMIT (a deferred
  constraint trigger waits there);
- in the wrapped autocommit write: while the shadow applies it (a row
  trigger of new's waits), during the primary's COMMIT of pgturnout's own
  transaction, during the shadow's COMMIT.

The triggers wait for an advisory lock the test holds (a "gate"): the test
sees the backend waiting, kills the shadow, waits for pgturnout's log to
say the shadow is lost, then opens the gate, so every kill lands at its
step whatever the machine's load.

Each answer the client gets must be the one to its own request: the right
command tags and a ReadyForQuery saying 'I' after every COMMIT and
autocommit statement, 'T' inside the transaction; a SELECT afterwards is
answered with its own row. Old holds what was committed, new lacks it, and
the journal names the lost statements; the session goes on (a write a
second later reaches both sides), and after `pgturnout repair --journal`
the two sides are equal row by row through the rename map.
"""

import json
import os
import struct
import subprocess
import time
import zlib

import pytest

import pgwire
from conftest import BIG, StoppablePostgres, pgt_bin, unique
from twopaths import wait_for

pytestmark = pytest.mark.proxy_only

RETRY = 1.1          # pgturnout reconnects a lost shadow at most once a second
LOST = "shadow on path new lost"   # pgturnout's log line


@pytest.fixture(scope="module")
def shadow_pg():
    s = StoppablePostgres()
    yield s
    s.destroy()


def objects(table, name_col, gate, slow_commit, slow_write):
    """The table of one side, its rows, and the triggers that hold a step
    until the advisory lock GATE is free: a deferred constraint trigger (at
    COMMIT) for an email starting SLOW_COMMIT, a row trigger for one
    starting SLOW_WRITE (None: none)."""
    sql = ("CREATE TABLE %(t)s (id bigint PRIMARY KEY, %(n)s text, email text,"
           " n int NOT NULL DEFAULT 0);"
           "INSERT INTO %(t)s SELECT g, 'user ' || g, 'u' || g, 0 FROM generate_series(1, 20) g;"
           "CREATE FUNCTION wait_gate() RETURNS trigger LANGUAGE plpgsql AS"
           " $$BEGIN PERFORM pg_advisory_xact_lock_shared(%(g)d); RETURN NEW; END$$;"
           "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT OR UPDATE ON %(t)s"
           " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
           " WHEN (NEW.email LIKE '%(c)s%%') EXECUTE FUNCTION wait_gate();"
           % {"t": table, "n": name_col, "g": gate, "c": slow_commit})
    if slow_write:
        sql += ("CREATE TRIGGER slow_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW"
                " WHEN (NEW.email LIKE '%s%%') EXECUTE FUNCTION wait_gate();" % (table, slow_write))
    return sql


class Sides:
    def __init__(self, pg, shadow_pg):
        self.schema = unique("outage")
        self.gate = zlib.crc32(self.schema.encode()) & 0x7fffffff
        self.old, self.new = pg, shadow_pg
        for server, sql in ((pg, objects("users", "name", self.gate, "slowold", None)),
                            (shadow_pg, objects("users_v2", "full_name", self.gate, "slownew",
                                                "slowapply"))):
            server.sql("SET ROLE app; CREATE SCHEMA %s; SET search_path = %s; %s"
                       % (self.schema, self.schema, sql))

    def old_rows(self):
        return sorted(self.old.sql("SELECT id, name, email, n FROM %s.users" % self.schema))

    def new_rows(self):
        return sorted(self.new.sql("SELECT id, full_name, email, n FROM %s.users_v2"
                                   % self.schema))

    def row(self, side, key):
        table = "users" if side == "old" else "users_v2"
        server = self.old if side == "old" else self.new
        r = server.sql("SELECT email, n FROM %s.%s WHERE id = %d" % (self.schema, table, key))
        return r[0] if r else None

    def drop(self):
        for server in (self.old, self.new):
            try:
                server.sql("DROP SCHEMA IF EXISTS %s CASCADE" % self.schema)
            except Exception as e:  # noqa: BLE001 teardown must not hide the result
                print("cleanup: %s" % e)


@pytest.fixture
def sides(pg, shadow_pg):
    s = Sides(pg, shadow_pg)
    yield s
    s.drop()


def start_proxy(proxy_factory, sides):
    return proxy_factory(paths={
        "old": {"dbname": "app", "search_path": sides.schema, "user": "app"},
        "new": {"host": "127.0.0.1", "port": sides.new.port, "dbname": "app",
                "search_path": sides.schema, "user": "app"},
    }, extra=("\n[migration]\nold = old\nnew = new\nsalt = %s\ndual_commit = ordered\n"
              "version.v2 = new\n"
              "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
              "\n[flags]\ndual_write = on\ncanary_percent = 0\nforce_path = none\n"
              "shadow_failure = journal\n" % unique("salt")))


# ---- the client: one request at a time, its answers read separately ----------

def request(sql, extended):
    """The bytes of one request for SQL: a Query, or Parse/Bind/Execute/Sync."""
    if not extended:
        return pgwire.message(b"Q", sql.encode() + b"\0")
    return (pgwire.message(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))
            + pgwire.message(b"B", b"\0\0" + struct.pack("!HHH", 0, 0, 0))
            + pgwire.message(b"E", b"\0" + struct.pack("!I", 0))
            + pgwire.message(b"S"))


def answer(conn):
    """The answer to one request: (command tags, SQLSTATE or None, rows,
    ReadyForQuery status)."""
    tags, err, rows = [], None, []
    while True:
        kind, body = conn.recv_message()
        if kind == b"C":
            tags.append(body.rstrip(b"\0").decode())
        elif kind == b"E":
            err = pgwire.parse_error_fields(body).get("C")
        elif kind == b"D":
            rows.append(pgwire.parse_data_row(body))
        elif kind == b"Z":
            return tags, err, rows, body.decode()


def ask(conn, sql, extended, expect_tag, expect_status):
    conn.send(request(sql, extended))
    got = answer(conn)
    assert got[1] is None and got[0] == [expect_tag] and got[3] == expect_status, \
        "%r answered %r; expected tag %r, status %r" % (sql, got, expect_tag, expect_status)
    return got


# ---- the shadow going away ---------------------------------------------------

def terminate_shadow(shadow_pg):
    """pg_terminate_backend of every backend of app on new (only the proxy's)."""
    n = 0
    deadline = time.time() + 5
    while n == 0 and time.time() < deadline:
        n = shadow_pg.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                          " WHERE usename = 'app' AND backend_type = 'client backend'")[0][0]
    assert n > 0, "no shadow backend to terminate"


def kill_shadow(how, shadow_pg):
    """Makes the shadow's connection go away; returns when it did."""
    if how == "terminate":
        terminate_shadow(shadow_pg)
        return time.time()
    if how == "immediate":
        # the test server commits asynchronously (synchronous_commit = off):
        # what new committed before must survive the crash stop
        shadow_pg.sql("CHECKPOINT")
    shadow_pg.stop(how)
    gone = time.time()
    shadow_pg.start()
    return gone


class Gate:
    """Holds the advisory lock GATE on SERVER: the slow triggers wait there."""

    def __init__(self, server, gate):
        self.server, self.gate = server, gate
        self.conn = server.superuser()
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%d)" % gate)

    def wait_until_held(self, what):
        """Returns once a backend waits at the gate (the step is reached)."""
        wait_for(lambda: self.server.sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %d"
            " AND NOT granted" % self.gate)[0][0] > 0, what)

    def open(self):
        try:
            self.conn.close()  # a server stop may have ended it already
        except Exception:  # noqa: BLE001
            pass


def read_journal(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), "torn journal tail"
    for line in data.splitlines():
        crc, _, obj = line.partition(b" ")
        assert int(crc, 16) == zlib.crc32(obj), "bad checksum: %r" % line
        out.append(json.loads(obj))
    return out


# Each step: (the client's requests, the index of the request in flight when
# the shadow goes away, or after which one it does (then "idle"), the email
# marker the lost write carries). Requests are (sql, tag, status).
def steps(mark):
    upd = "UPDATE users SET n = n + 1, email = '%s' WHERE id = 1" % mark
    ins = "INSERT INTO users (id, name, email) VALUES (100, 'ins', '%s')" % mark
    tx = [("BEGIN", "BEGIN", "T"), (upd, "UPDATE 1", "T"), (ins, "INSERT 0 1", "T"),
          ("COMMIT", "COMMIT", "I")]
    return {
        "after_begin": (tx, 0, "idle"),
        "after_write": (tx, 1, "idle"),
        "primary_commit": (tx, 3, "flight"),
        "shadow_commit": (tx, 3, "flight"),
        "wrap_apply": ([(upd, "UPDATE 1", "I")], 0, "flight"),
        "wrap_primary_commit": ([(upd, "UPDATE 1", "I")], 0, "flight"),
        "wrap_shadow_commit": ([(upd, "UPDATE 1", "I")], 0, "flight"),
    }


MARKS = {"primary_commit": "slowold", "wrap_primary_commit": "slowold",
         "shadow_commit": "slownew", "wrap_shadow_commit": "slownew",
         "wrap_apply": "slowapply"}


def run_case(proxy_factory, sides, step, extended, how):
    proxy = start_proxy(proxy_factory, sides)
    journal = os.path.join(proxy.dir, "journal", "dual_write_journal.log")
    mark = MARKS.get(step, "plain") + "-" + unique("m")
    requests, at, when = steps(mark)[step]
    conn = proxy.wire_login()
    try:
        # the shadow is up and mirrors (a first write reaches both sides)
        ask(conn, "UPDATE users SET email = 'warm' WHERE id = 3", extended, "UPDATE 1", "I")
        assert sides.row("new", 3) == ("warm", 0)
        gone = None
        for i, (sql, tag, status) in enumerate(requests):
            if i == at and when == "flight":
                gate = Gate(sides.old if mark.startswith("slowold") else sides.new, sides.gate)
                try:
                    conn.send(request(sql, extended))
                    gate.wait_until_held("%s: the request at its step" % step)
                    seen = proxy.log().count(LOST)
                    gone = kill_shadow(how, sides.new)
                    # the step goes on only once pgturnout knows the shadow is gone
                    wait_for(lambda: proxy.log().count(LOST) > seen, "pgturnout noticing the loss")
                finally:
                    gate.open()
                got = answer(conn)
                assert got[1] is None and got[0] == [tag] and got[3] == status, \
                    "%r answered %r; expected tag %r, status %r" % (sql, got, tag, status)
                continue
            ask(conn, sql, extended, tag, status)
            if i == at and when == "idle":
                gone = kill_shadow(how, sides.new)
        # the session goes on: its next answers are its own
        got = ask(conn, "SELECT 42", extended, "SELECT 1", "I")
        assert got[2] == [("42",)], got
        # old has the transaction; new lost it; the journal names it
        assert sides.row("old", 1) == (mark, 1)
        assert sides.row("new", 1) == ("u1", 0)
        if requests is not None and len(requests) > 1:
            assert sides.row("old", 100) == (mark, 0)
            assert sides.row("new", 100) is None
        entries = read_journal(journal)
        assert any(mark in e["statement"] or mark in e.get("parameters", "") for e in entries), \
            entries
        # a second after pgturnout noticed the loss (before it journaled it;
        # on a busy machine well after the kill) the shadow is back for the
        # session's next write
        time.sleep(RETRY)
        ask(conn, "SELECT 1", extended, "SELECT 1", "I")
        ask(conn, "UPDATE users SET email = 'after' WHERE id = 2", extended, "UPDATE 1", "I")
        assert sides.row("old", 2) == ("after", 0)
        assert sides.row("new", 2) == ("after", 0)
    finally:
        conn.close()
    assert sides.old_rows() != sides.new_rows()
    r = subprocess.run([pgt_bin(), "repair", "-c", proxy.config_path, "--journal"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sides.old_rows() == sides.new_rows()


STEPS = ["after_begin", "after_write", "primary_commit", "shadow_commit", "wrap_apply",
         "wrap_primary_commit", "wrap_shadow_commit"]
# every step in the simple protocol; in the extended one those around a
# COMMIT by default, all with PGT_BIG=1
EXTENDED_STEPS = STEPS if BIG else ["primary_commit", "wrap_primary_commit", "wrap_shadow_commit"]
CASES = ([(step, False) for step in STEPS] + [(step, True) for step in EXTENDED_STEPS])


@pytest.mark.parametrize("step,extended", CASES,
                         ids=["%s-%s" % (s, "extended" if e else "simple") for s, e in CASES])
def test_terminated_shadow_backend(proxy_factory, sides, step, extended):
    run_case(proxy_factory, sides, step, extended, "terminate")


# A server stop takes a few seconds (start included): two by default,
# every step both ways with PGT_BIG=1.
STOPS = ([(step, how) for step in STEPS for how in ("fast", "immediate")] if BIG
         else [("wrap_primary_commit", "fast"), ("after_write", "immediate")])


@pytest.mark.parametrize("step,how", STOPS, ids=["%s-%s" % c for c in STOPS])
def test_stopped_shadow_server(proxy_factory, sides, step, how):
    run_case(proxy_factory, sides, step, False, how)


@pytest.mark.parametrize("how", ["terminate", "fast"])
def test_shadow_lost_between_transactions(proxy_factory, sides, how):
    """The shadow goes away while the session is idle: nothing is lost, and
    once it is back the next writes reach it (the FATAL of the idle
    shadow's backend fails no later request)."""
    proxy = start_proxy(proxy_factory, sides)
    journal = os.path.join(proxy.dir, "journal", "dual_write_journal.log")
    conn = proxy.wire_login()
    try:
        ask(conn, "UPDATE users SET email = 'warm' WHERE id = 3", False, "UPDATE 1", "I")
        kill_shadow(how, sides.new)
        # its FATAL and end of file are in: pgturnout retries a second later
        wait_for(lambda: LOST in proxy.log(), "pgturnout noticing the loss")
        ask(conn, "SELECT 1", False, "SELECT 1", "I")
        time.sleep(RETRY)
        ask(conn, "SELECT 1", False, "SELECT 1", "I")  # the shadow reconnects here
        ask(conn, "UPDATE users SET email = 'back' WHERE id = 4", False, "UPDATE 1", "I")
        ask(conn, "BEGIN", False, "BEGIN", "T")
        ask(conn, "UPDATE users SET email = 'back' WHERE id = 5", False, "UPDATE 1", "T")
        ask(conn, "COMMIT", False, "COMMIT", "I")
    finally:
        conn.close()
    assert read_journal(journal) == []
    assert sides.old_rows() == sides.new_rows()


def test_primary_lost_between_the_two_commits(proxy_factory, sides):
    """A session on new (tag v2), whose shadow old commits after new: new's
    backend is terminated while old's COMMIT runs. The session ends with the
    server's error, and its transaction is journaled as in doubt at once,
    not only at the next start."""
    proxy = start_proxy(proxy_factory, sides)
    journal = os.path.join(proxy.dir, "journal", "dual_write_journal.log")
    mark = "slowold-" + unique("m")
    conn = proxy.wire_login(options="-c pgturnout.version=v2")
    try:
        ask(conn, "BEGIN", False, "BEGIN", "T")
        ask(conn, "UPDATE users_v2 SET n = n + 1, email = '%s' WHERE id = 1" % mark, False,
            "UPDATE 1", "T")
        gate = Gate(sides.old, sides.gate)
        try:
            conn.send(request("COMMIT", False))
            gate.wait_until_held("old's COMMIT at the gate")
            terminate_shadow(sides.new)  # (new is this session's primary)
            data = conn.read_until_closed()
        finally:
            gate.open()
    finally:
        conn.close()
    assert (pgwire.first_error(data) or {}).get("C") == "57P01", data
    entries = read_journal(journal)
    assert any(mark in e["statement"] and e["error"].startswith("in doubt") for e in entries), \
        entries
    # old's COMMIT was on its way: once it is over, the journal's entries
    # make the sides equal
    wait_for(lambda: sides.old.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                   " AND objid = %d" % sides.gate)[0][0] == 0, "old's COMMIT")
    r = subprocess.run([pgt_bin(), "repair", "-c", proxy.config_path, "--journal"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sides.old_rows() == sides.new_rows()
