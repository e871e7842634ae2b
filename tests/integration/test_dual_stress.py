"""Dual writes under churn: many short connections (pgbench -C) writing hot
rows through pgturnout with dual_write = on, autocommit writes and explicit
transactions, while canary_percent flips between 0, 50 and 100 every half
second, so that sessions change paths at every transaction boundary. Both
commit modes (2pc, ordered) and both layouts (one database, two servers).

Every client must finish (a session that never gets its answer is a hang:
the test then prints what the servers' sessions wait for), and the test
ends by comparing the two sides row by row through the rename map.

PGT_STRESS_SECONDS sets the load's length (default 6 s; 60 s with PGT_BIG=1).
"""

import os
import subprocess
import time

import pytest

from conftest import unique
from test_verify import second_pg  # noqa: F401  (fixture)
from twopaths import Admin, drop_sides, open_sides, users_proxy, wait_for

pytestmark = pytest.mark.proxy_only

SECONDS = int(os.environ.get("PGT_STRESS_SECONDS", "60" if os.environ.get("PGT_BIG") else "6"))
ROWS = 40
HOT = 8

# hot rows (1..HOT) for conflicts, an autocommit write, an explicit
# transaction that deletes and inserts a key of the client's own
SCRIPT = """\\set id random(1, %(hot)d)
\\set id2 random(1, %(rows)d)
\\set v random(1, 1000000)
\\set k 100000 * (1 + :client_id) + random(1, 50)
UPDATE users SET email = 'e' || :v WHERE id = :id;
BEGIN;
UPDATE users SET name = 'n' || :v WHERE id = :id2;
DELETE FROM users WHERE id = :k;
INSERT INTO users (id, name, email) VALUES (:k, 'k' || :v, NULL);
COMMIT;
"""

SERVER_STATE = [
    "SELECT pid, datname, usename, state, wait_event_type, wait_event, xact_start,"
    " left(query, 120) AS query FROM pg_stat_activity WHERE backend_type = 'client backend'",
    "SELECT l.pid, l.locktype, l.relation::regclass, l.mode, l.granted, l.virtualtransaction"
    " FROM pg_locks l WHERE NOT l.granted OR l.pid IS NULL OR l.virtualtransaction LIKE '-1/%'",
    "SELECT gid, prepared, owner, database FROM pg_prepared_xacts",
]


@pytest.fixture(params=["one_database", "two_servers"])
def sides(request, pg):
    s = open_sides(request, pg, unique("ds"))
    fill = ("INSERT INTO %s (id, %s, email) SELECT g, 'user ' || g, 'u' || g"
            " FROM generate_series(1, %d) g")
    s["old"].sql("SET ROLE app; CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL,"
                 " email text); " + fill % ("users", "name", ROWS))
    s["new"].sql("SET ROLE app; CREATE TABLE users_v2 (id integer PRIMARY KEY, full_name text"
                 " NOT NULL, email text); " + fill % ("users_v2", "full_name", ROWS))
    yield s
    drop_sides(s)


def server_state(sides):
    """What every backend of the servers waits for, for a hang's report."""
    out = []
    servers = {id(side.server): side.server for side in sides.values()}
    for server in servers.values():
        for q in SERVER_STATE:
            out.append("-- %s:%s %s" % (server.host, server.port, q))
            out += ["   %r" % (r,) for r in server.sql(q) or []]
    return "\n".join(out)


@pytest.mark.parametrize("commit", ["2pc", "ordered"])
def test_dual_writes_under_canary_churn(sides, commit, proxy_factory):
    p = users_proxy(proxy_factory, sides, dual_write="on",
                    migration="dual_commit = %s\nshadow_lock_timeout = 2s\n" % commit)
    p.wait_log("dual writes commit %s" % ("two-phase" if commit == "2pc" else "ordered"), timeout=10)
    script = p.dir + "/stress.sql"
    with open(script, "w") as f:
        f.write(SCRIPT % {"hot": HOT, "rows": ROWS})
    load = subprocess.Popen(["pgbench", "-n", "-C", "-c", "8", "-j", "4", "-T", str(SECONDS),
                             "-f", script], env=p.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    admin = Admin(p)
    flips = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < SECONDS and load.poll() is None:
            admin.run("SET canary_percent = %d" % (0, 50, 100, 50)[flips % 4])
            flips += 1
            time.sleep(0.5)
        try:
            out, _ = load.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            state = server_state(sides)
            clients = admin.run("SHOW CLIENTS")
            load.kill()
            out, _ = load.communicate()
            pytest.fail("a client never got its answer (hang)\n%s\nSHOW CLIENTS: %r\n%s"
                        % (state, clients, out[-3000:]))
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
        admin.close()
    print(out)
    assert load.returncode == 0, out
    assert "number of failed transactions: 0" in out or "failed" not in out, out
    assert flips >= 4
    # none left behind: when pgbench stops at -T, a client may go away while
    # pgturnout commits its last write in two phases; that session's prepared
    # transactions are the resolver's (every 5 s). So: once every session has
    # ended, the resolver must leave none.
    admin = Admin(p)
    try:
        wait_for(lambda: not [c for c in admin.run("SHOW CLIENTS") if c["path"] != "admin"],
                 "every session to end", 15)
    finally:
        admin.close()

    # and every backend pgturnout had opened for them is idle (kept for the
    # next client) or gone: a PREPARE sent just before the session closed
    # still lands after the close
    def busy():
        return sum(side.server.sql("SELECT count(*) FROM pg_stat_activity "
                                   "WHERE application_name = 'pgbench' AND state <> 'idle'")[0][0]
                   for side in sides.values())
    wait_for(lambda: busy() == 0, "the sessions' backends to finish", 15)

    def prepared():
        return [g for side in sides.values() for g in
                side.server.sql("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'pgturnout_%'")]
    wait_for(lambda: not prepared(), "the resolver to finish the prepared transactions", 20)
    # every client's transactions went through, on both sides alike
    old = sides["old"].sql("SELECT id, name, email FROM users ORDER BY id")
    new = sides["new"].sql("SELECT id, full_name, email FROM users_v2 ORDER BY id")
    assert len(old) >= ROWS
    assert old == new
    assert prepared() == []
