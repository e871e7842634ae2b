"""repair --journal after the shadow's server was stopped under load (SPEC
§11): clients write through pgturnout with dual writes on (dual_commit =
ordered, shadow_failure = journal) while the new path's PostgreSQL is
stopped and started again (4 s by default, 10 s with PGT_BIG=1); nothing
acknowledged fails, every answer is the client's own (a COMMIT leaves it
outside a transaction), the losses are journaled, rows are updated again
after the loss, and `pgturnout repair --journal` then leaves verify with 0
differences, compared row by row through the rename map as well.

- canary 0: pgbench; every session's primary is old and none may fail.
- canary 50: sessions on both paths (threads with psycopg2, checking the
  transaction status after every statement). Those on old must not fail;
  those on new lose their primary with the server and may fail only while
  it is away, then reconnect and go on.
"""

import os
import random
import re
import subprocess
import threading
import time

import psycopg2
import psycopg2.extensions as ext
import pytest

from conftest import BIG, StoppablePostgres, pgt_bin, unique
from twopaths import wait_for

pytestmark = pytest.mark.proxy_only

ROWS = 1000
OUTAGE_SECONDS = 10 if BIG else 4

SCRIPT = """\\set id random(1, %d)
\\set k random(100000, 1000000000)
UPDATE users SET n = n + 1, email = 'u' || :id || '-' || (n + 1) WHERE id = :id;
BEGIN;
UPDATE users SET n = n + 1 WHERE id = :id;
INSERT INTO users (id, name, email, n) VALUES (:k, 'new ' || :k, 'k@example.com', 0)
  ON CONFLICT (id) DO NOTHING;
COMMIT;
""" % ROWS


@pytest.fixture(scope="module")
def shadow_pg():
    s = StoppablePostgres()
    yield s
    s.destroy()


def table_sql(table, name_col):
    return ("CREATE TABLE %s (id bigint PRIMARY KEY, %s text, email text, n int NOT NULL DEFAULT 0);"
            "INSERT INTO %s SELECT g, 'user ' || g, 'u' || g || '@example.com', 0"
            " FROM generate_series(1, %d) g;" % (table, name_col, table, ROWS))


def rows(pg_sql, query):
    return sorted(pg_sql(query))


@pytest.fixture
def outage(pg, shadow_pg, proxy_factory):
    """(proxy factory for a canary, schema) over old on PG and new on SHADOW_PG."""
    schema = unique("outage")
    pg.sql("SET ROLE app; CREATE SCHEMA %s; SET search_path = %s; %s"
           % (schema, schema, table_sql("users", "name")))
    shadow_pg.sql("SET ROLE app; CREATE SCHEMA %s; SET search_path = %s; %s"
                  % (schema, schema, table_sql("users_v2", "full_name")))

    def start(canary):
        return proxy_factory(paths={
            "old": {"dbname": "app", "search_path": schema, "user": "app"},
            "new": {"host": "127.0.0.1", "port": shadow_pg.port, "dbname": "app",
                    "search_path": schema, "user": "app"},
        }, extra=("\n[migration]\nold = old\nnew = new\nsalt = %s\ndual_commit = ordered\n"
                  "canary_key = connection\n"
                  "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
                  "\n[flags]\ndual_write = on\ncanary_percent = %d\nforce_path = none\n"
                  "shadow_failure = journal\n" % (unique("salt"), canary)))
    try:
        yield start, schema
    finally:
        pg.sql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)


def repair_and_compare(pg, shadow_pg, proxy, schema):
    """repair --journal, then verify 0 and both sides equal row by row."""
    journal = os.path.join(proxy.dir, "journal", "dual_write_journal.log")
    wait_for(lambda: os.path.exists(journal) and os.path.getsize(journal) > 0,
             "journal entries of the outage")
    lost = len(open(journal).readlines())
    old_rows = lambda: rows(pg.sql, "SELECT id, name, email, n FROM %s.users" % schema)  # noqa: E731
    new_rows = lambda: rows(shadow_pg.sql,  # noqa: E731
                            "SELECT id, full_name, email, n FROM %s.users_v2" % schema)
    assert old_rows() != new_rows()  # new differs from old now
    r = subprocess.run([pgt_bin(), "repair", "-c", proxy.config_path, "--journal"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([pgt_bin(), "verify", "-c", proxy.config_path], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "result: equal" in r.stdout
    assert old_rows() == new_rows()
    return lost


def test_repair_journal_after_the_shadow_was_stopped_under_load(pg, shadow_pg, outage, tmp_path):
    start, schema = outage
    proxy = start(0)
    script = tmp_path / "outage.sql"
    script.write_text(SCRIPT)
    load = subprocess.Popen(["pgbench", "-n", "-c", "4", "-j", "2", "-T",
                             str(OUTAGE_SECONDS + (16 if BIG else 7)), "-f", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=proxy.env())
    try:
        time.sleep(2)
        shadow_pg.stop()
        time.sleep(OUTAGE_SECONDS)
        shadow_pg.start()
        # the load goes on: rows lost on new are updated again on old
    finally:
        out, _ = load.communicate(timeout=120)
    assert load.returncode == 0, out
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed > 0 and (failed is None or int(failed.group(1)) == 0), out
    lost = repair_and_compare(pg, shadow_pg, proxy, schema)
    print("transactions %d, journal entries %d" % (processed, lost))


class Worker(threading.Thread):
    """The script of the canary 0 test in a loop, every statement's
    transaction status checked; a new session after an error and now and
    then. Records which path (by the server's port) each session had."""

    def __init__(self, n, proxy, old_port):
        super().__init__(daemon=True)
        self.n, self.proxy, self.old_port = n, proxy, old_port
        self.halt = threading.Event()
        self.done = {"old": 0, "new": 0}
        self.errors = []     # (time, path or None, error)
        self.status = []     # answers that left the client in the wrong state

    def step(self, conn, sql, args, expect):
        with conn.cursor() as cur:
            cur.execute(sql, args)
        got = conn.info.transaction_status
        if got != expect:
            self.status.append("%s: transaction status %d, expected %d" % (sql, got, expect))
            raise psycopg2.InterfaceError("wrong transaction status")

    def run(self):
        rng = random.Random(self.n)
        conn, path = None, None
        while not self.halt.is_set():
            try:
                if conn is None:
                    path = None
                    conn = psycopg2.connect(self.proxy.dsn(connect_timeout=3))
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute("SELECT inet_server_port()")
                        path = "old" if cur.fetchone()[0] == self.old_port else "new"
                key, k = rng.randint(1, ROWS), rng.randint(100000, 1000000000)
                self.step(conn, "UPDATE users SET n = n + 1, email = 'u' || %s || '-' || (n + 1)"
                          " WHERE id = %s", (key, key), ext.TRANSACTION_STATUS_IDLE)
                self.step(conn, "BEGIN", None, ext.TRANSACTION_STATUS_INTRANS)
                self.step(conn, "UPDATE users SET n = n + 1 WHERE id = %s", (key,),
                          ext.TRANSACTION_STATUS_INTRANS)
                self.step(conn, "INSERT INTO users (id, name, email, n) VALUES (%s, 'new ' || %s,"
                          " 'k@example.com', 0) ON CONFLICT (id) DO NOTHING", (k, k),
                          ext.TRANSACTION_STATUS_INTRANS)
                self.step(conn, "COMMIT", None, ext.TRANSACTION_STATUS_IDLE)
                self.done[path] += 1
                if rng.random() < 0.05:
                    conn.close()  # a new session, bucketed anew by the canary
                    conn = None
            except psycopg2.Error as e:
                self.errors.append((time.time(), path, str(e).strip()))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
        if conn is not None:
            conn.close()


def test_shadow_outage_at_canary_50(pg, shadow_pg, outage):
    start, schema = outage
    proxy = start(50)
    workers = [Worker(n, proxy, pg.port) for n in range(6)]
    for w in workers:
        w.start()
    try:
        time.sleep(2)
        before = {p: sum(w.done[p] for w in workers) for p in ("old", "new")}
        stopped = time.time()
        shadow_pg.stop()
        time.sleep(OUTAGE_SECONDS)
        shadow_pg.start()
        started = time.time()
        during = {p: sum(w.done[p] for w in workers) - before[p] for p in ("old", "new")}
        time.sleep(4)  # the sessions on new reconnect; rows lost on new are written again
    finally:
        for w in workers:
            w.halt.set()
        for w in workers:
            w.join(60)
    done = {p: sum(w.done[p] for w in workers) for p in ("old", "new")}
    errors = [e for w in workers for e in w.errors]
    status = [s for w in workers for s in w.status]
    print("transactions on old %d, on new %d; during the outage on old %d; errors %d"
          % (done["old"], done["new"], during["old"], len(errors)))
    assert not status, status
    assert before["old"] > 0 and before["new"] > 0, before  # sessions on both paths
    assert during["old"] > 0  # old's sessions went on while new was away
    shown = [(round(t - stopped, 2), path, e) for t, path, e in errors]
    print("errors (seconds after the stop, path, error): %s" % shown)
    assert [e for e in shown if e[1] == "old"] == [], shown
    # sessions on new fail only while their server is away (or just after)
    window = started - stopped + 2
    assert not [e for e in shown if not 0 <= e[0] <= window], (window, shown)
    after = {p: sum(w.done[p] for w in workers) for p in ("old", "new")}
    assert after["new"] > before["new"] + during["new"], (before, during, after)
    lost = repair_and_compare(pg, shadow_pg, proxy, schema)
    print("journal entries %d" % lost)
