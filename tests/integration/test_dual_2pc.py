"""Two-phase commit of dual writes (`[migration] dual_commit = 2pc`, SPEC §7;
docs/dual-writes.md): both paths commit a transaction or neither does.

- transactions and autocommit writes from sessions on either path are on
  both sides afterwards, through the rename map, with no prepared
  transaction left behind;
- a transaction that fails its PREPARE on one side (a deferred constraint
  only the new side has) is rolled back on both, and the client's COMMIT
  gets a clear error with the side's SQLSTATE; the session goes on;
- the resolver: prepared transactions of this instance left by an earlier
  run are committed when their decision is recorded and rolled back when
  it is not, at start; another instance's are left alone;
- `2pc` where it cannot work (no [path] user for the resolver) refuses to
  start with a clear message; `auto` falls back to ordered and says so.
"""

import os
import re
import signal
import socket
import threading

import psycopg2
import pytest

from conftest import unique
from test_dual import Layout, dual_config, layout, run  # noqa: F401
from twopaths import wait_for

pytestmark = pytest.mark.proxy_only


def twopc_paths(layout, user="app"):
    paths = layout.paths
    for p in paths.values():
        p["user"] = user
    return paths


def twopc_config(layout, flags=None, commit="2pc", fleet_name=None):
    text = dual_config(layout, flags)
    text = text.replace("[migration]\n", "[migration]\ndual_commit = %s\n" % commit, 1)
    if fleet_name:
        text += "\n[fleet]\nname = %s\n" % fleet_name
    return text


def gid_prefix(proxy):
    """The prefix of the gids PROXY prepares (from its start-up log line);
    other tests' proxies share the server, and database app."""
    m = re.search(r"two-phase commit: gids (pgturnout_\w+?_)<n>_old", proxy.log())
    assert m, "no two-phase commit in the log"
    return m.group(1)


def prepared(layout, prefix):
    """The gids of prepared transactions in the layout's databases starting with PREFIX."""
    dbs = sorted(set(db for db, _ in layout.where.values()))
    out = []
    for db in dbs:
        out += [r[0] for r in layout.pg.sql(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
            "AND starts_with(gid, '%s')" % prefix, dbname=db)]
    return sorted(out)


def users_ids(layout, role):
    return [r[0] for r in layout.rows(role)]


def test_2pc_commits_on_both_sides(proxy_factory, layout):
    p = proxy_factory(paths=twopc_paths(layout), extra=twopc_config(layout))
    p.wait_log(r"dual writes commit two-phase")
    errors = []

    def worker(n):
        try:
            conn = p.connect()
            conn.autocommit = False
            base = n * 1000
            for i in range(1, 31):
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO users (id, name, email) VALUES (%s, %s, 'a')",
                                (base + i, "w%d" % n))
                    cur.execute("UPDATE users SET email = email || 'b' WHERE id = %s", (base + i,))
                conn.commit()
            conn.autocommit = True
            for i in range(31, 41):
                run(conn, "INSERT INTO users (id, name, email) VALUES (%d, 'ac', 'c')" % (base + i))
                run(conn, "UPDATE users SET email = 'd' WHERE id = %d" % (base + i))
            conn.close()
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert layout.assert_identical() == 4 * 40
    assert prepared(layout, gid_prefix(p)) == []
    assert re.search(r"-> two-phase", p.log())


def test_2pc_sessions_on_new(proxy_factory, layout):
    """Canary 100: every session's primary is new, old (the shadow) runs first."""
    p = proxy_factory(paths=twopc_paths(layout),
                      extra=twopc_config(layout, {"canary_percent": "100"}))
    conn = p.connect(autocommit=False)
    for i in range(1, 21):
        run(conn, "INSERT INTO users (id, name, email) VALUES (%d, 'n', 'x')" % i,
            "UPDATE users SET email = 'y' WHERE id = %d" % i)
        conn.commit()
    conn.autocommit = True
    for i in range(21, 31):
        run(conn, "INSERT INTO users (id, name, email) VALUES (%d, 'ac', 'z')" % i)
    run(conn, "DELETE FROM users WHERE id = 5")
    conn.close()
    assert layout.assert_identical() == 29
    assert prepared(layout, gid_prefix(p)) == []


def test_2pc_failed_prepare_rolls_back_both(proxy_factory, layout):
    # only new has it: the second INSERT below passes there, and fails at PREPARE
    new_table = layout.table("new")
    layout.sql("new", "ALTER TABLE %s ADD CONSTRAINT email_once UNIQUE (email) "
               "DEFERRABLE INITIALLY DEFERRED" % new_table)
    p = proxy_factory(paths=twopc_paths(layout), extra=twopc_config(layout))
    conn = p.connect(autocommit=False)
    run(conn, "INSERT INTO users (id, name, email) VALUES (1, 'a', 'same')",
        "INSERT INTO users (id, name, email) VALUES (2, 'b', 'same')")
    with pytest.raises(psycopg2.Error) as e:
        conn.commit()
    assert e.value.pgcode == "23505", e.value
    assert "two-phase commit failed" in str(e.value)
    assert "rolled back on both paths" in str(e.value)
    # the session goes on, and so does everyone else
    run(conn, "INSERT INTO users (id, name, email) VALUES (3, 'c', 'other')")
    conn.commit()
    other = p.connect()
    run(other, "INSERT INTO users (id, name, email) VALUES (4, 'd', 'fourth')")
    other.close()
    conn.close()
    assert users_ids(layout, "old") == [3, 4]
    assert layout.assert_identical() == 2
    assert prepared(layout, gid_prefix(p)) == []


def instance_part(proxy):
    raw = "%s_%d" % (socket.gethostname()[:63], proxy.port)
    return re.sub(r"[^A-Za-z0-9_]", "_", raw)[:60]


def test_resolver_finishes_what_a_dead_run_left(proxy_factory, layout):
    name = unique("inst")
    config = twopc_config(layout, fleet_name=name)
    p = proxy_factory(paths=twopc_paths(layout), extra=config)
    p.wait_log(r"dual writes commit two-phase")
    p.stop()
    decided, undecided = 1000, 1001
    prefix = "pgturnout_%s_" % name
    foreign = "pgturnout_%s_x_7_old" % unique("other")
    # what a killed run left: both sides prepared, one with its decision
    for role in ("old", "new"):
        db, schema = layout.where[role]
        c = layout.pg.connect(user="app", dbname=db)
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("SET search_path = %s" % schema)
            for n, rid in ((decided, 901), (undecided, 902)):
                cur.execute("BEGIN")
                cur.execute("INSERT INTO %s VALUES (%d, 'left', 'over')"
                            % (layout.table(role), rid))
                cur.execute("PREPARE TRANSACTION '%s%d_%s'" % (prefix, n, role))
            if role == "old":
                cur.execute("BEGIN")
                cur.execute("INSERT INTO %s VALUES (903, 'foreign', 'x')" % layout.table(role))
                cur.execute("PREPARE TRANSACTION '%s'" % foreign)
        c.close()
    decisions = os.path.join(p.dir, "journal", "dual_write_decisions.log")
    with open(decisions, "a") as f:
        f.write('{"commit":%d}\n' % decided)
    try:
        q = proxy_factory(config_text=open(p.config_path).read(), wait=False)
        q.port = p.port  # the config's listen address
        wait_for(lambda: prepared(layout, prefix) == [], "the resolver", timeout=15)
        assert users_ids(layout, "old") == [901]
        assert users_ids(layout, "new") == [901]
        assert prepared(layout, foreign) == [foreign]
        log = q.log()
        assert re.search(r"%s%d_old on path old committed" % (prefix, decided), log)
        assert re.search(r"%s%d_new on path new rolled back" % (prefix, undecided), log)
        wait_for(lambda: '{"done":%d}' % decided in open(decisions).read(),
                 "the decision closed", timeout=15)
    finally:
        db, _ = layout.where["old"]
        c = layout.pg.connect(user="app", dbname=db)
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("ROLLBACK PREPARED '%s'" % foreign)
        c.close()


def test_2pc_refused_without_resolver_user(proxy_factory, layout):
    p = proxy_factory(paths=layout.paths, extra=twopc_config(layout), wait=False)
    p.expect_exit = True
    p.proc.wait(20)
    assert p.proc.returncode != 0
    assert re.search(r"dual_commit = 2pc cannot be used: \[path old\] has no user", p.log())


def test_auto_says_what_it_picked(proxy_factory, layout):
    p = proxy_factory(paths=layout.paths, extra=twopc_config(layout, commit="auto"))
    p.wait_log(r"dual writes commit ordered \(dual_commit = auto: ordered, since \[path old\] "
               r"has no user")
    p.stop(signal.SIGTERM)
    q = proxy_factory(paths=twopc_paths(layout), extra=twopc_config(layout, commit="auto"))
    q.wait_log(r"dual writes commit two-phase \(dual_commit = auto: both paths allow")


def test_client_prepare_transaction_mirrored(proxy_factory, layout):
    """A client's PREPARE TRANSACTION 'x' prepares old as 'x' and new as
    'pgturnout_mirror_x'; COMMIT / ROLLBACK PREPARED 'x' from any session
    finish both."""
    p = proxy_factory(paths=twopc_paths(layout),
                      extra=twopc_config(layout, {"canary_percent": "50"}))
    a = p.connect()
    run(a, "BEGIN", "INSERT INTO users (id, name, email) VALUES (1, 'p', 'q')",
        "PREPARE TRANSACTION 'app_tx1'")
    assert prepared(layout, "app_tx1") == ["app_tx1"]
    assert prepared(layout, "pgturnout_mirror_app_tx1") == ["pgturnout_mirror_app_tx1"]
    assert users_ids(layout, "old") == [] and users_ids(layout, "new") == []
    # the decision comes from other sessions, on either path (canary 50)
    for n in range(4):
        b = p.connect()
        run(b, "SELECT 1")
        b.close()
    b = p.connect()
    run(b, "COMMIT PREPARED 'app_tx1'")
    assert users_ids(layout, "old") == [1] and users_ids(layout, "new") == [1]
    run(a, "BEGIN", "INSERT INTO users (id, name, email) VALUES (2, 'r', 's')",
        "PREPARE TRANSACTION 'it''s mine'")
    assert prepared(layout, "it''s mine") == ["it's mine"]
    assert prepared(layout, "pgturnout_mirror_it''s mine") == ["pgturnout_mirror_it's mine"]
    run(b, "ROLLBACK PREPARED 'it''s mine'")
    # a name that was never prepared: the client gets the server's error
    with pytest.raises(psycopg2.Error) as e:
        run(b, "COMMIT PREPARED 'never'")
    assert e.value.pgcode == "42704", e.value
    run(a, "INSERT INTO users (id, name, email) VALUES (3, 't', 'u')")
    a.close()
    b.close()
    for name in ("app_tx1", "pgturnout_mirror_app_tx1", "it''s mine", "pgturnout_mirror_it''s"):
        assert prepared(layout, name) == []
    assert prepared(layout, gid_prefix(p)) == []
    assert layout.assert_identical() == 2
    decisions = open(os.path.join(p.dir, "journal", "dual_write_decisions.log")).read()
    assert '"old":"app_tx1"' in decisions and '"done"' in decisions, decisions
