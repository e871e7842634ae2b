"""Fleet (SPEC §13): several pgturnout instances share their flags through a
flag store in PostgreSQL. A change made on any instance is written to the
store first and applied by every instance within a second; SHOW FLEET lists
the instances and the epoch each applied; pgbench through three instances
sees no failed transaction while the canary is flipped on different ones;
with the store down the instances keep serving with their flags, refuse
changes with a clear error, say "degraded" in /healthz and /metrics, and
converge on the newest epoch once it is back; an instance restarted while
the store is down comes back with the flags it last applied."""

import datetime
import os
import re
import signal
import socket
import subprocess
import time

import psycopg2
import pytest

from conftest import StoppablePostgres, free_port, unique
from test_admin import as_dicts, psql
from test_flag_restore import restart
from test_http import call

pytestmark = pytest.mark.proxy_only

TOKEN = "fleet-token"


def fleet_dsn(host, port, dbname):
    return "host=%s port=%d dbname=%s user=app password=app sslmode=disable" % (host, port, dbname)


def start_fleet(proxy_factory, tmp_path, dsn, n=3, paths=None, extra=""):
    token = tmp_path / "http_token"
    token.write_text(TOKEN + "\n")
    proxies = []
    for i in range(n):
        port = free_port()
        p = proxy_factory(settings={"http_listen": "127.0.0.1:%d" % port,
                                    "http_token_file": str(token)},
                          paths=paths,
                          extra=extra + "\n[fleet]\ndsn = %s\nname = i%d\npoll_interval = 500ms\n"
                          "timeout = 2s\n" % (dsn, i))
        p.http = "http://127.0.0.1:%d" % port
        wait_for(lambda: http_up(port), 10, "HTTP on %d" % port)
        proxies.append(p)
    for p in proxies:
        wait_for(lambda: fleet_rows(p) and len([r for r in fleet_rows(p) if r["live"] == "true"]) == n,
                 15, "SHOW FLEET on %s lists %d live instances" % (p.port, n))
    return proxies


def http_up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for: " + what)


def applied_at(p, epoch):
    """When P's log says it applied EPOCH (seconds, from the log line's time)."""
    m = re.search(r"^(\d+-\d+-\d+ \d+:\d+:\d+\.\d+) UTC \[\d+\] INFO -: fleet: epoch %d from "
                  r"instance \w+ applied$" % epoch, p.log(), re.M)
    assert m, "no 'epoch %d applied' in the log of %s" % (epoch, p.port)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def fleet_rows(p):
    return as_dicts(psql(p, "SHOW FLEET"))


def flag(p, name):
    return {r["name"]: r["value"] for r in as_dicts(psql(p, "SHOW FLAGS"))}[name]


def metrics(p):
    status, _, text = call(p, "GET", "/metrics")
    assert status == 200
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(pgturnout_fleet_\w+) ([\d.]+)$", text, re.M)}


def admin_set(p, command):
    """Runs COMMAND on P's console; returns None or the psycopg2 error."""
    conn = p.connect(user="admin", dbname="pgturnout")
    try:
        with conn.cursor() as cur:
            cur.execute(command)
        return None
    except psycopg2.Error as e:
        return e
    finally:
        conn.close()


@pytest.fixture
def store_db(pg):
    """A database of the shared test server of its own: the flag store."""
    name = unique("fleet")
    pg.sql("CREATE DATABASE %s OWNER app" % name, dbname="postgres")
    yield name
    pg.sql("DROP DATABASE %s WITH (FORCE)" % name, dbname="postgres")


def test_a_change_on_any_instance_is_applied_by_all_within_a_second(proxy_factory, tmp_path,
                                                                     pg, store_db):
    ps = start_fleet(proxy_factory, tmp_path, fleet_dsn(pg.host, pg.port, store_db))
    # the store was created on first start, and seeded with the first instance's flags
    tables = pg.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'pgturnout' "
                    "ORDER BY 1", dbname=store_db)
    assert tables == [("flag_changes",), ("instances",)]
    for i, (where, value) in enumerate([(0, "5"), (1, "12.5"), (2, "0")]):
        assert admin_set(ps[where], "SET canary_percent = %s" % value) is None
        # the instance that took the change has it when SET returns
        assert flag(ps[where], "canary_percent") == value
        for p in ps:
            wait_for(lambda: flag(p, "canary_percent") == value, 5,
                     "canary_percent = %s on %s" % (value, p.port))
        # every instance applied it within a second of the one that took it
        # (their logs' timestamps: psql's own start-up time is not counted)
        epoch = pg.sql("SELECT max(epoch) FROM pgturnout.flag_changes", dbname=store_db)[0][0]
        at = [applied_at(p, epoch) for p in ps]
        assert max(at) - at[where] < 1.0, at
    # HTTP writes go through the store too
    status, _, text = call(ps[1], "PUT", "/flags", {"shadow_failure": "fail"}, token=TOKEN)
    assert status == 200, text
    for p in ps:
        wait_for(lambda: flag(p, "shadow_failure") == "fail", 5, "shadow_failure on all")
    # every change is in the store's history, with its epoch
    changes = pg.sql("SELECT epoch, instance, surface, name, new_value FROM "
                     "pgturnout.flag_changes WHERE surface <> 'seed' ORDER BY epoch",
                     dbname=store_db)
    assert [(c[1], c[2], c[3], c[4]) for c in changes] == [
        ("i0", "console", "canary_percent", "5"), ("i1", "console", "canary_percent", "12.5"),
        ("i2", "console", "canary_percent", "0"), ("i1", "http", "shadow_failure", "fail")]
    newest = changes[-1][0]
    # SHOW FLEET: all three, the same epoch, on every instance
    for p in ps:
        wait_for(lambda: [(r["name"], r["applied_epoch"], r["live"]) for r in fleet_rows(p)] ==
                 [("i%d" % i, str(newest), "true") for i in range(3)], 3,
                 "SHOW FLEET on %s: every instance at epoch %d" % (p.port, newest))
        rows = fleet_rows(p)
        assert [r["this"] for r in rows].count("true") == 1
        assert all(r["version"] and r["started"] and r["last_seen"] for r in rows)
        m = metrics(p)
        assert m["pgturnout_fleet_epoch"] == newest
        assert m["pgturnout_fleet_instances"] == 3
        assert m["pgturnout_fleet_store_up"] == 1
    # each instance's local history has the change too (a restart restores it)
    hist = as_dicts(psql(ps[2], "SHOW HISTORY"))
    assert ("shadow_failure", "fail", "http") in [(h["name"], h["new"], h["surface"]) for h in hist]
    # a refused change (bad value, guard rail) is refused before the store
    e = admin_set(ps[0], "SET force_path = sideways")
    assert e is not None and e.pgcode == "22023"


@pytest.fixture
def bench_dbs(pg):
    """Two databases, one per path, each with the table that records which
    transaction wrote where."""
    names = [unique("fbench"), unique("fbench")]
    for name in names:
        pg.sql("CREATE DATABASE %s OWNER app" % name, dbname="postgres")
        pg.sql("CREATE TABLE tx_marks (c int, r bigint, step int, PRIMARY KEY (c, r, step)); "
               "ALTER TABLE tx_marks OWNER TO app", dbname=name)
    yield names
    for name in names:
        pg.sql("DROP DATABASE %s WITH (FORCE)" % name, dbname="postgres")


def bench_paths(dbs):
    return {"old": {"dbname": dbs[0]}, "new": {"dbname": dbs[1]}}


MIGRATION = "\n[migration]\nold = old\nnew = new\nsalt = fleet-test\n"

# Each transaction writes its mark twice, a statement apart: a transaction
# split across the paths leaves its steps in both databases.
MARKS_SCRIPT = """\\set r random(1, 1000000000000)
BEGIN;
INSERT INTO tx_marks VALUES (:client_id + 100 * :instance, :r, 1);
SELECT count(*) FROM tx_marks WHERE c = :client_id + 100 * :instance;
INSERT INTO tx_marks VALUES (:client_id + 100 * :instance, :r, 2);
COMMIT;
"""


class Bench:
    """pgbench through one proxy in the background, running MARKS_SCRIPT."""

    def __init__(self, p, db, seconds, instance, script_dir, clients=2):
        env = p.env()
        env["PGDATABASE"] = db
        script = os.path.join(script_dir, "marks.sql")
        with open(script, "w") as f:
            f.write(MARKS_SCRIPT)
        self.proc = subprocess.Popen(["pgbench", "-n", "-c", str(clients), "-j", "1", "-T",
                                      str(seconds), "-M", "extended", "-f", script,
                                      "-D", "instance=%d" % instance],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)

    def result(self):
        try:
            out, err = self.proc.communicate(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.returncode == 0, (out, err[-3000:])
        processed = re.search(r"number of transactions actually processed: (\d+)", out)
        failed = re.search(r"number of failed transactions: (\d+)", out)
        assert processed and int(processed.group(1)) > 0, out
        assert failed is None or int(failed.group(1)) == 0, out
        return int(processed.group(1))


def test_pgbench_through_three_instances_while_the_canary_flips(proxy_factory, tmp_path, pg,
                                                                 store_db, bench_dbs):
    ps = start_fleet(proxy_factory, tmp_path, fleet_dsn(pg.host, pg.port, store_db),
                     paths=bench_paths(bench_dbs), extra=MIGRATION)
    benches = [Bench(p, "app", 8, i, str(tmp_path)) for i, p in enumerate(ps)]
    try:
        time.sleep(1)
        for where, value in [(0, "100"), (1, "0"), (2, "100"), (0, "0")]:
            # without dual writes, lowering needs FORCE (the writes on new
            # have no copy on old)
            assert admin_set(ps[where], "SET canary_percent = %s FORCE" % value) is None
            for p in ps:
                wait_for(lambda: flag(p, "canary_percent") == value, 5,
                         "canary_percent = %s everywhere" % value)
            time.sleep(1)
    finally:
        results = [b.result() for b in benches]
    assert all(n > 0 for n in results)
    # every transaction ran on one path: both of its steps in one database,
    # none of them in the other
    marks = []
    for db in bench_dbs:
        rows = pg.sql("SELECT c, r, step FROM tx_marks", dbname=db)
        marks.append({(c, r): set() for c, r, _ in rows})
        for c, r, step in rows:
            marks[-1][(c, r)].add(step)
    split = set(marks[0]) & set(marks[1])
    assert not split, "transactions on both paths: %s" % sorted(split)[:5]
    for side in marks:
        half = [k for k, steps in side.items() if steps != {1, 2}]
        assert not half, "transactions with one step: %s" % half[:5]
    assert len(marks[0]) + len(marks[1]) == sum(results)
    assert marks[0] and marks[1], "both paths served transactions"
    # sessions did move: the new path served queries on every instance
    for p in ps:
        stats = {r["path"]: r for r in as_dicts(psql(p, "SHOW STATS"))}
        assert int(stats["new"]["queries"]) > 0, stats


@pytest.fixture
def store_pg():
    s = StoppablePostgres()
    yield s
    s.destroy()


def test_store_down_keeps_flags_refuses_changes_and_converges_after(proxy_factory, tmp_path,
                                                                    pg, bench_dbs, store_pg):
    ps = start_fleet(proxy_factory, tmp_path, fleet_dsn("127.0.0.1", store_pg.port, "app"),
                     paths=bench_paths(bench_dbs), extra=MIGRATION)
    assert admin_set(ps[0], "SET shadow_failure = fail") is None
    # (a change on an instance that has not applied the fleet's last one yet
    # is refused, "try again": wait until it has)
    wait_for(lambda: flag(ps[1], "shadow_failure") == "fail", 5, "the first change on %s" % ps[1].port)
    assert admin_set(ps[1], "SET canary_percent = 5") is None
    for p in ps:
        wait_for(lambda: flag(p, "canary_percent") == "5" and flag(p, "shadow_failure") == "fail", 5,
                 "the flags on every instance")
    benches = [Bench(p, "app", 10, i, str(tmp_path)) for i, p in enumerate(ps)]
    try:
        time.sleep(1)
        store_pg.stop()
        for p in ps:
            wait_for(lambda: call(p, "GET", "/healthz")[2].startswith("degraded"), 5,
                     "/healthz degraded on %s" % p.port)
            status, _, text = call(p, "GET", "/healthz")
            assert status == 200 and "flag store is unreachable" in text, text
            assert metrics(p)["pgturnout_fleet_store_up"] == 0
            # the flags in force stay
            assert flag(p, "canary_percent") == "5"
            assert flag(p, "shadow_failure") == "fail"
        # changes are refused, with a clear error, on the console and over HTTP
        e = admin_set(ps[2], "SET canary_percent = 50")
        assert e is not None and e.pgcode == "57P03", e
        assert "flag store is unreachable" in str(e)
        status, _, text = call(ps[0], "PUT", "/flags", {"canary_percent": 50}, token=TOKEN)
        assert status == 503 and "flag store is unreachable" in text, text
        # an instance killed and restarted while the store is down comes back
        # with the flags it last applied (with [fleet], even when its file's
        # [flags] changed meanwhile: the flags are the fleet's)
        with open(ps[2].config_path, "a") as f:
            f.write("\n[flags]\ncanary_percent = 30\n")
        restart(ps[2], signal.SIGKILL)
        assert flag(ps[2], "canary_percent") == "5"
        assert flag(ps[2], "shadow_failure") == "fail"
        assert call(ps[2], "GET", "/healthz")[2].startswith("degraded")
        time.sleep(1)
        store_pg.start()
        # the store is back: a change is accepted again, and everyone converges
        wait_for(lambda: admin_set(ps[1], "SET canary_percent = 20") is None, 10,
                 "a change accepted once the store is back")
        for p in ps:
            wait_for(lambda: flag(p, "canary_percent") == "20", 3,
                     "canary_percent = 20 on %s" % p.port)
            wait_for(lambda: call(p, "GET", "/healthz")[2] == "ok\n", 5, "/healthz ok")
    finally:
        results = [b.result() for b in benches[:2]]
        # the restarted instance's pgbench lost its connections with it
        benches[2].proc.kill()
        benches[2].proc.wait()
    assert all(n > 0 for n in results)
    newest = max(int(r["applied_epoch"]) for r in fleet_rows(ps[0]))
    for p in ps:
        wait_for(lambda: {r["applied_epoch"] for r in fleet_rows(p) if r["live"] == "true"} ==
                 {str(newest)} and len([r for r in fleet_rows(p) if r["live"] == "true"]) == 3,
                 5, "every instance at epoch %d on %s" % (newest, p.port))
        assert metrics(p)["pgturnout_fleet_epoch"] == newest


def test_guard_rails_are_judged_across_the_fleet(proxy_factory, tmp_path, pg, store_db):
    """A session on new through one instance makes another instance refuse
    to turn dual_write off (SPEC §8 guard rail, §13 across the fleet)."""
    ps = start_fleet(proxy_factory, tmp_path, fleet_dsn(pg.host, pg.port, store_db), n=2,
                     paths={"old": {}, "new": {"search_path": "public"}},
                     extra=MIGRATION + "version.v1 = old\nversion.v2 = new\n")
    assert admin_set(ps[1], "SET dual_write = on") is None
    on_new = ps[0].connect(options="-c pgturnout.version=v2")
    try:
        with on_new.cursor() as cur:
            cur.execute("SELECT 1")
        # ps[1] learns of ps[0]'s session on new with ps[0]'s next heartbeat
        deadline = time.time() + 5
        while True:
            e = admin_set(ps[1], "SET dual_write = off")
            if e is not None or time.time() > deadline:
                break
            # on again after off: FORCE (guard rail: new may have missed writes)
            assert admin_set(ps[1], "SET dual_write = on FORCE") is None
            time.sleep(0.2)
        assert e is not None and e.pgcode == "55000", e
        assert "1 sessions on new" in str(e), str(e)
        assert flag(ps[0], "dual_write") == "on"
    finally:
        on_new.close()
    # the session is gone: once the heartbeat says so, the change goes through
    wait_for(lambda: admin_set(ps[1], "SET dual_write = off") is None, 5,
             "dual_write off once no session is on new")
    for p in ps:
        wait_for(lambda: flag(p, "dual_write") == "off", 5, "dual_write off everywhere")


def test_set_wait_answers_once_every_live_instance_applied_it(proxy_factory, tmp_path, pg,
                                                              store_db):
    ps = start_fleet(proxy_factory, tmp_path, fleet_dsn(pg.host, pg.port, store_db))
    assert admin_set(ps[0], "SET canary_percent = 3 WAIT") is None
    # acknowledged: every instance has it when SET returns
    assert [flag(p, "canary_percent") for p in ps] == ["3", "3", "3"]
    # an instance that cannot apply it (stopped, still counted live for 3 s)
    # is named in the answer; the change itself is in force
    os.kill(ps[2].pid, signal.SIGSTOP)
    try:
        e = admin_set(ps[1], "SET canary_percent = 4 WAIT")
        assert e is not None and e.pgcode == "55000", e
        assert "not acknowledged" in str(e) and "i2" in str(e), str(e)
        assert "i0" not in str(e)
        assert flag(ps[0], "canary_percent") == "4"
    finally:
        os.kill(ps[2].pid, signal.SIGCONT)
    wait_for(lambda: flag(ps[2], "canary_percent") == "4", 2, "i2 catches up")
