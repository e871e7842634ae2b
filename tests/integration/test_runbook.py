"""The runbook of docs/operations.md, end to end (SPEC §11), with pgbench
writing through pgturnout the whole time: create the new table, dual_write
on, backfill, verify; canary 1 -> 10 -> 50 -> 100 with a verify at each
step; roll back to 0 and verify; repair --journal. Every verify must report
0 differences, and the test ends by comparing the two sides row by row
through the rename map.

Two layouts: the demo's (docker/init.sql: old users(id, name, email), new
users_v2(id, full_name, email) in another schema of one database) and the
same tables on two PostgreSQL servers.
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import unique
from test_repair import run_tool, tool_json
from test_verify import second_pg  # noqa: F401  (fixture)
from twopaths import Admin, drop_sides, open_sides, users_proxy

pytestmark = pytest.mark.proxy_only

ROWS = 5000
PGBENCH_SECONDS = int(os.environ.get("PGT_RUNBOOK_SECONDS", "120" if os.environ.get("PGT_BIG") else "30"))

SCRIPT = """\\set id random(1, %(rows)d)
\\set v random(1, 1000000)
\\set k 100000 * (1 + :client_id) + random(1, 300)
UPDATE users SET email = 'e' || :v WHERE id = :id;
BEGIN;
UPDATE users SET name = 'n' || :v WHERE id = %(rows)d + 1 - :id;
DELETE FROM users WHERE id = :k;
INSERT INTO users (id, name, email) VALUES (:k, 'k' || :v, NULL);
COMMIT;
"""


@pytest.fixture(params=["one_database", "two_servers"])
def sides(request, pg):
    s = open_sides(request, pg, unique("rb"))
    # the application's table, as in docker/init.sql; its sequence is past the
    # keys the workload inserts explicitly (verify checks sequence positions)
    s["old"].sql("SET ROLE app; CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);"
                 " INSERT INTO users (id, name, email) SELECT g, 'user ' || g, CASE WHEN g %% 9 = 0"
                 " THEN NULL WHEN g %% 9 = 1 THEN '' ELSE 'u' || g || '@example.com' END"
                 " FROM generate_series(1, %d) g; SELECT setval('users_id_seq', 10000000)" % ROWS)
    yield s
    drop_sides(s)


def rows_through_the_map(sides):
    """Both sides' rows, new's through the rename map; sorted."""
    old = sides["old"].sql("SELECT id, name, email FROM users ORDER BY id")
    new = sides["new"].sql("SELECT id, full_name, email FROM users_v2 ORDER BY id")
    return old, new


def verify_zero(config, what):
    r = run_tool("verify", config, "--recheck-delay", "200")
    assert r.returncode == 0, "%s: verify found differences:\n%s\n%s" % (what, r.stdout, r.stderr)
    assert "result: equal" in r.stdout
    return r.stdout


def test_runbook_under_pgbench(sides, proxy_factory, tmp_path):
    p = users_proxy(proxy_factory, sides)
    cfg = p.config_path
    script = tmp_path / "app.sql"
    script.write_text(SCRIPT % {"rows": ROWS})
    # a new connection per transaction (-C), so that each canary step moves sessions
    load = subprocess.Popen(["pgbench", "-n", "-C", "-c", "4", "-j", "2", "-R", "150", "-T",
                             str(PGBENCH_SECONDS), "-f", str(script)], env=p.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    admin = Admin(p)
    steps = []
    started = time.monotonic()

    def step(name):
        steps.append((name, round(time.monotonic() - started, 1)))
        assert load.poll() is None, "pgbench ended before step %r: %s" % (name, load.communicate()[0])

    try:
        time.sleep(1)
        # 1. the migration creates the new table, empty; RELOAD reads its columns
        step("create table")
        sides["new"].sql("SET ROLE app; CREATE TABLE users_v2 (id integer PRIMARY KEY,"
                         " full_name text NOT NULL, email text)")
        admin.run("RELOAD")
        # 2. dual writes on: from now on new gets every write
        step("dual_write on")
        admin.run("SET dual_write = on")
        # 3. backfill the rows new lacks
        step("backfill")
        code, s = tool_json("backfill", cfg, "--chunk-rows", "1000")
        assert code == 0, s
        users = [t for t in s["tables"] if t["table"].split(".")[-1] == "users"][0]
        assert users["inserted"] >= ROWS - 50, users
        # 4. verify: equal
        step("verify after backfill")
        verify_zero(cfg, "after backfill")
        # 5. the canary, step by step, each checked
        for pct in (1, 10, 50, 100):
            step("canary %d" % pct)
            admin.run("SET canary_percent = %d" % pct)
            time.sleep(1.5)
            verify_zero(cfg, "at canary %d" % pct)
        stats = admin.stats()
        assert int(stats["new"]["writes"]) > 0, stats     # sessions did write on new
        # 6. roll back: every session to old, dual writes stay on
        step("rollback")
        admin.run("SET canary_percent = 0")
        time.sleep(1)
        verify_zero(cfg, "after rollback")
        # 7. whatever the journal holds is repaired
        step("repair --journal")
        code, s = tool_json("repair", cfg, "--journal")
        assert code == 0, s
        assert load.poll() is None, "pgbench did not run the whole time"
    finally:
        if load.poll() is None and time.monotonic() - started > PGBENCH_SECONDS + 30:
            load.send_signal(signal.SIGINT)
        out, _ = load.communicate(timeout=PGBENCH_SECONDS + 60)
        admin.close()
    print(out)
    print("steps (seconds since pgbench started): %s" % steps)
    assert load.returncode == 0, out
    assert "number of failed transactions: 0" in out or "failed" not in out, out
    old, new = rows_through_the_map(sides)
    assert len(old) > ROWS
    assert old == new
    verify_zero(cfg, "at the end")
    rows = Admin(p).run("SHOW VERIFY")
    assert [r["result"] for r in rows if r["table"].split(".")[-1] == "users"] == ["equal"], rows
    assert Admin(p).run("SHOW JOURNAL") == []
