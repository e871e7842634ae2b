"""pgturnout repair and backfill (SPEC §2, §11): one path's rows made equal to
the other's through the rename map; see docs/repair.md.

Layout as in test_verify.py: one database, a schema per path; old
`users(id, name, email, created timestamptz, nick)`, new `users_v2(id,
full_name, email, created, extra)` with `[rewrite] table.users = users_v2,
column.users.name = full_name`, and `items(id serial, v)` on both sides.

Every test ends by comparing the two sides with SQL (a full outer join on the
key, IS DISTINCT FROM per column: expected_user_diffs) and with verify.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import pgt_bin, unique
from test_verify import (USERS_ROWS, Layout, expected_user_diffs, plant_differences,
                         report_rows, run_json as verify_json, tables_by_name, write_config)
from test_verify import layout, second_pg  # noqa: F401  (fixtures)
from twopaths import wait_for

pytestmark = pytest.mark.proxy_only


def run_tool(tool, config, *args, timeout=300):
    r = subprocess.run([pgt_bin(), tool, "-c", config] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    print(r.stdout)
    print(r.stderr)
    return r


def tool_json(tool, config, *args):
    r = run_tool(tool, config, "--json", *args)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])


def counts(summary, name):
    t = tables_by_name(summary)[name]
    return t["inserted"], t["updated"], t["deleted"]


def items_diffs(layout):
    o, n = layout.schema("old"), layout.schema("new")
    return layout.pg.sql(
        "SELECT coalesce(o.id, n.id) FROM %s.items o FULL JOIN %s.items n ON o.id = n.id"
        " WHERE o.id IS NULL OR n.id IS NULL OR o.v IS DISTINCT FROM n.v" % (o, n))


def assert_equal(layout, config, tmp_path):
    """Both sides equal row by row (SQL) and for verify."""
    assert expected_user_diffs(layout) == {}
    assert items_diffs(layout) == []
    code, s = verify_json(config, "--report", tmp_path / "after.jsonl")
    assert code == 0, report_rows(tmp_path / "after.jsonl")
    return s


def test_repair_report_fixes_planted_differences(layout, tmp_path):
    layout.fill()
    plant_differences(layout)
    # updated again after the loss: repair takes old's current value
    layout.sql("new", "UPDATE users_v2 SET email = 'stale' WHERE id = 70")
    layout.sql("old", "UPDATE users SET email = 'first' WHERE id = 70")
    layout.sql("old", "UPDATE users SET email = 'second' WHERE id = 70")
    config = write_config(layout.pg, layout, tmp_path)
    report = tmp_path / "verify.jsonl"
    code, _ = verify_json(config, "--report", report)
    assert code == 1
    keys = {r["key"]["id"] for r in report_rows(report) if r["table"].endswith(".users")}
    assert keys == set(expected_user_diffs(layout))
    before = layout.pg.sql("SELECT count(*) FROM %s.users_v2" % layout.schema("new"))

    # a dry run changes nothing and says what it would do
    r = run_tool("repair", config, "--report", report, "--dry-run")
    assert r.returncode == 1, r.stderr
    assert "would delete from" in r.stdout and "would insert into" in r.stdout
    assert "would update" in r.stdout
    assert set(expected_user_diffs(layout)) == keys
    assert layout.pg.sql("SELECT count(*) FROM %s.users_v2" % layout.schema("new")) == before

    code, s = tool_json("repair", config, "--report", report)
    assert code == 0
    # missing on new: 20; on new only: 10, -5, USERS_ROWS + 1000; different: 30, 40, 41,
    # 42, 51, 70, USERS_ROWS
    assert counts(s, "users") == (1, 7, 3), s
    assert expected_user_diffs(layout) == {}
    # NULL stays NULL, '' stays '', the other time zone's instant equal, columns
    # on one side only left alone
    new = layout.schema("new")
    rows = dict((r[0], r[1:]) for r in layout.pg.sql(
        "SELECT id, full_name, email, created = timestamptz '2026-03-01 07:00:00+00', extra"
        " FROM %s.users_v2 WHERE id IN (40, 41, 50, 61, 70)" % new))
    assert rows[40][0] is None and rows[41][1] is None
    assert rows[50][2] is True
    assert rows[61][3] == 7
    assert rows[70][1] == "second"
    assert layout.pg.sql("SELECT nick FROM %s.users WHERE id = 60" % layout.schema("old")) == [("nick",)]
    assert_equal(layout, config, tmp_path)

    # idempotent: a second run changes nothing
    code, s = tool_json("repair", config, "--report", report)
    assert code == 0 and counts(s, "users") == (0, 0, 0), s


def test_repair_table_many_differences(layout, tmp_path):
    layout.fill()
    old = lambda q: layout.sql("old", q)  # noqa: E731
    new = lambda q: layout.sql("new", q)  # noqa: E731
    new("DELETE FROM users_v2 WHERE id % 3 = 0")                              # 1000 missing on new
    new("UPDATE users_v2 SET email = upper(email) WHERE id % 3 = 1 AND id < 1500")  # 500 different
    new("UPDATE users_v2 SET full_name = '' WHERE id % 3 = 1 AND id >= 2900")
    old("UPDATE users SET name = NULL WHERE id % 3 = 1 AND id >= 2900")
    new("INSERT INTO users_v2 (id, full_name) SELECT g, 'only new' FROM generate_series(5001, 5700) g")
    new("SET TimeZone = 'Pacific/Auckland'; UPDATE users_v2 SET created = created::text::timestamp"
        " WHERE id % 3 = 2 AND id < 200")                               # same instant, other zone: equal
    tail = len([i for i in range(2900, USERS_ROWS + 1) if i % 3 == 1])
    diffs = expected_user_diffs(layout)
    assert len(diffs) == 1000 + 500 + 700 + tail
    config = write_config(layout.pg, layout, tmp_path)
    started = time.monotonic()
    code, s = tool_json("repair", config, "--table", "users", "--chunk-rows", "250")
    took = time.monotonic() - started
    assert code == 0
    assert counts(s, "users") == (1000, 500 + tail, 700), s
    print("repair --table: %d differences of %d rows in %.2fs" % (len(diffs), USERS_ROWS + 700, took))
    assert_equal(layout, config, tmp_path)
    code, s = tool_json("repair", config, "--table", "users", "--chunk-rows", "250")
    assert code == 0 and counts(s, "users") == (0, 0, 0)

    # the other way: old made equal to new
    new("DELETE FROM items WHERE id > 450")
    new("UPDATE items SET v = NULL WHERE id < 10")
    new("INSERT INTO items (v) VALUES ('')")                  # id 501 from new's sequence
    code, s = tool_json("repair", config, "--table", "items", "--from", "new")
    assert code == 0 and counts(s, "items") == (1, 9, 50), s
    assert tables_by_name(s)["items"]["sequences_set"] == 1     # old's, past the key it got
    assert items_diffs(layout) == []
    assert layout.pg.sql("SELECT v FROM %s.items WHERE id = 501" % layout.schema("old")) == [("",)]
    assert layout.pg.sql("SELECT nextval('%s.items_id_seq')" % layout.schema("old")) == [(502,)]
    assert_equal(layout, config, tmp_path)


def test_repair_two_servers(pg, second_pg, tmp_path):
    """Paths on two servers: the source transaction holds its share locks while
    the target commits."""
    table = unique("events")
    servers = {"old": pg, "new": second_pg}
    for server in servers.values():
        server.sql("SET ROLE app; CREATE TABLE %s (region text, n int, payload jsonb, at timestamptz,"
                   " flag boolean, PRIMARY KEY (region, n)); INSERT INTO %s SELECT"
                   " (ARRAY['eu', 'us', 'ap'])[1 + g %% 3], g, jsonb_build_object('g', g),"
                   " timestamptz '2026-02-01 00:00+00' + g * interval '1 second',"
                   " CASE WHEN g %% 4 = 0 THEN NULL ELSE g %% 2 = 0 END"
                   " FROM generate_series(1, 3000) g" % (table, table))
    try:
        second_pg.sql("UPDATE %s SET flag = false WHERE flag IS NULL AND region = 'eu'" % table)
        second_pg.sql("UPDATE %s SET payload = '{}' WHERE region = 'us'" % table)
        second_pg.sql("SET TimeZone = 'America/New_York'; UPDATE %s SET at = at WHERE region = 'ap'" % table)
        second_pg.sql("DELETE FROM %s WHERE region = 'ap' AND n < 1500" % table)
        second_pg.sql("INSERT INTO %s VALUES ('zz', 1, NULL, now(), true)" % table)
        config = tmp_path / "two.ini"
        config.write_text("\n".join(
            ["[pgturnout]", "listen = 127.0.0.1:1", "auth_type = trust",
             "journal_dir = %s" % (tmp_path / "journal")]
            + sum((["[path %s]" % role, "host = %s" % srv.host, "port = %d" % srv.port, "dbname = app",
                    "user = app", "password = app", "sslmode = disable"]
                   for role, srv in servers.items()), [])
            + ["[migration]", "old = old", "new = new"]) + "\n")
        code, _ = verify_json(str(config), "--table", table, "--report", tmp_path / "r.jsonl")
        assert code == 1
        code, s = tool_json("repair", str(config), "--table", table, "--chunk-rows", "400")
        assert code == 0
        # eu: 1000 rows, a quarter with flag NULL; us: 1000; ap below 1500: 500
        assert counts(s, table) == (500, 250 + 1000, 1), s
        rows = {}
        for role, server in servers.items():
            rows[role] = server.sql("SET TimeZone = 'UTC'; SELECT region, n, payload::text, at::text,"
                                    " flag FROM %s ORDER BY 1, 2" % table)
        assert rows["old"] == rows["new"]
        code, _ = verify_json(str(config), "--table", table, "--report", tmp_path / "r2.jsonl")
        assert code == 0
        code, s = tool_json("repair", str(config), "--table", table)
        assert code == 0 and counts(s, table) == (0, 0, 0)
    finally:
        for server in servers.values():
            server.sql("DROP TABLE IF EXISTS %s" % table)


def dual_proxy(proxy_factory, layout, canary=0,
               migration="version.v1 = old\nversion.v2 = new\n"):
    paths = {role: dict(p, user="app") for role, p in layout.paths.items()}
    return proxy_factory(paths=paths, extra=(
        "\n[migration]\nold = old\nnew = new\nsalt = %s\n%s"
        "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
        "\n[flags]\ndual_write = on\ncanary_percent = %d\nforce_path = none\n"
        "shadow_failure = journal\n" % (unique("salt"), migration, canary)))


def test_repair_journal(layout, proxy_factory, tmp_path):
    layout.fill(1000)
    proxy = dual_proxy(proxy_factory, layout)
    journal = os.path.join(proxy.dir, "journal", "dual_write_journal.log")
    repaired = os.path.join(proxy.dir, "journal", "dual_write_journal.repaired")
    c = proxy.connect(user="app")
    cur = c.cursor()
    cur.execute("UPDATE users SET email = 'before' WHERE id = 1")
    # new's table refuses writes for a while: the shadow loses them
    layout.sql("new", "ALTER TABLE users_v2 RENAME TO users_v2_away")
    try:
        cur.execute("UPDATE users SET email = 'lost' WHERE id BETWEEN 10 AND 19")
        cur.execute("INSERT INTO users (id, name, email) VALUES (5000, 'lost insert', NULL)")
        cur.execute("DELETE FROM users WHERE id = 30")
        cur.execute("UPDATE users SET name = '' WHERE id = 40")
        cur.execute("UPDATE users SET email = 'again' WHERE id = 10")   # updated again
    finally:
        layout.sql("new", "ALTER TABLE users_v2_away RENAME TO users_v2")
    wait_for(lambda: os.path.exists(journal) and len(open(journal).readlines()) >= 5, "journal entries")
    diffs = expected_user_diffs(layout)
    assert set(diffs) == {str(i) for i in list(range(10, 20)) + [5000, 30, 40]}, diffs
    code, s = tool_json("repair", proxy.config_path, "--journal")
    assert code == 0
    assert s["journal_entries"] >= 5, s
    assert tables_by_name(s)["users"]["from"] == "old"
    assert counts(s, "users") == (1, 11, 1), s
    with open(repaired) as f:
        lines = f.read().split("\n")
    assert lines[0] == "pgturnout journal repaired 1"
    offset, count = (int(x) for x in lines[1].split())
    assert offset == os.path.getsize(journal) and count == len(open(journal).readlines())
    assert_equal(layout, proxy.config_path, tmp_path)
    # the proxy goes on writing; both sides get it and nothing is left to repair
    cur.execute("UPDATE users SET email = 'after' WHERE id = 11")
    c.close()
    code, s = tool_json("repair", proxy.config_path, "--journal")
    assert code == 0 and s["journal_entries"] == 0 and s["tables"] == []
    assert_equal(layout, proxy.config_path, tmp_path)


def test_repair_table_during_dual_writes(layout, proxy_factory, tmp_path):
    """repair --table while pgbench updates and deletes through the proxy with
    dual writes on: no chunk is overtaken, none deadlocks for good, and the
    sides end equal."""
    layout.fill(5000)
    layout.sql("new", "UPDATE users_v2 SET email = NULL WHERE id % 4 = 0")
    layout.sql("new", "DELETE FROM users_v2 WHERE id % 7 = 0")
    layout.sql("new", "INSERT INTO users_v2 (id, full_name) SELECT g, 'stray' FROM generate_series(6001, 6300) g")
    proxy = dual_proxy(proxy_factory, layout)
    script = tmp_path / "writes.sql"
    script.write_text(
        "\\set id random(1, 5000)\n\\set v random(1, 1000000)\n"
        "BEGIN;\n"
        "UPDATE users SET email = 'e' || :v WHERE id = :id;\n"
        "UPDATE users SET name = 'n' || :v WHERE id = 5001 - :id;\n"
        "COMMIT;\n"
        "DELETE FROM users WHERE id = :id AND :v <= 1000;\n")
    load = subprocess.Popen(["pgbench", "-n", "-c", "4", "-j", "2", "-T", "8", "-f", str(script)],
                            env=proxy.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    runs = 0
    try:
        time.sleep(0.5)
        while load.poll() is None:
            code, s = tool_json("repair", proxy.config_path, "--table", "users", "--chunk-rows", "300")
            assert code == 0, s
            runs += 1
    finally:
        out, _ = load.communicate(timeout=60)
    print(out)
    assert load.returncode == 0, out
    assert runs >= 2
    assert_equal(layout, proxy.config_path, tmp_path)


def fill_old(layout, n):
    """Old's tables filled; new's stay as the migration created them: empty."""
    layout.sql("old", "INSERT INTO users (id, name, email, created) SELECT g, CASE WHEN g %% 10 = 0"
                      " THEN '' WHEN g %% 10 = 1 THEN NULL ELSE 'user ' || g END, 'u' || g,"
                      " timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'"
                      " FROM generate_series(1, %d) g" % n)
    layout.sql("old", "INSERT INTO items (v) SELECT 'item ' || g FROM generate_series(1, 700) g")


def test_backfill_during_dual_writes(layout, proxy_factory, tmp_path):
    lay = layout
    rows = 20000
    fill_old(lay, rows)
    proxy = dual_proxy(proxy_factory, lay)
    script = tmp_path / "writes.sql"
    script.write_text(
        "\\set id random(1, %d)\n\\set v random(1, 1000000)\n"
        "UPDATE users SET email = 'e' || :v WHERE id = :id;\n"
        "BEGIN;\n"
        "UPDATE users SET name = 'n' || :v WHERE id = %d - :id;\n"
        "COMMIT;\n"
        "DELETE FROM users WHERE id = :id AND :v <= 2000;\n" % (rows, rows + 1))
    load = subprocess.Popen(["pgbench", "-n", "-c", "4", "-j", "2", "-T", "10", "-f", str(script)],
                            env=proxy.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        time.sleep(1)
        started = time.monotonic()
        # throttled, so that the whole copy runs under the load
        code, s = tool_json("backfill", proxy.config_path, "--chunk-rows", "1000", "--max-rate", "6000")
        took = time.monotonic() - started
        assert code == 0, s
    finally:
        out, _ = load.communicate(timeout=60)
    print(out)
    assert load.returncode == 0, out
    t = tables_by_name(s)
    print("backfill: %d rows in %.2fs under load" % (t["users"]["inserted"], took))
    assert took > 2  # the load ran all along
    assert t["users"]["updated"] == 0 and t["users"]["deleted"] == 0
    assert t["items"]["inserted"] == 700 and t["items"]["sequences_set"] == 1
    # rows changed while the backfill was running: rows whose dual write came
    # before the copy are left alone, and verify finds no difference
    assert_equal(lay, proxy.config_path, tmp_path)
    new = lay.schema("new")
    seq = lay.pg.sql("SELECT last_value, (SELECT max(id) FROM %s.items) FROM %s.items_id_seq" % (new, new))
    assert seq == [(700, 700)]
    assert lay.pg.sql("SELECT nextval('%s.items_id_seq')" % new) == [(701,)]
    # a second backfill copies nothing
    code, s = tool_json("backfill", proxy.config_path)
    assert code == 0 and tables_by_name(s)["users"]["inserted"] == 0


def backfill_killed(config, table, chunk, max_rate, under_way):
    """Starts `backfill --table TABLE` and SIGKILLs it once UNDER_WAY() holds."""
    p = subprocess.Popen([pgt_bin(), "backfill", "-c", config, "--table", table, "--chunk-rows",
                          str(chunk), "--max-rate", str(max_rate)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(under_way, "the backfill under way", timeout=30)
    finally:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL


def test_backfill_killed_and_resumed(layout, tmp_path):
    lay = layout
    rows = 20000
    chunk = 500
    fill_old(lay, rows)
    config = write_config(lay.pg, lay, tmp_path)
    checkpoint = tmp_path / "journal" / "backfill.checkpoint"
    count = lambda: lay.pg.sql("SELECT count(*) FROM %s.users_v2" % lay.schema("new"))[0][0]  # noqa: E731
    backfill_killed(config, "users", chunk, 4000, lambda: count() >= 4000)
    copied = count()
    assert 4000 <= copied < rows
    assert checkpoint.exists()
    assert checkpoint.read_text().startswith("pgturnout backfill checkpoint 1\nat ")
    code, s = tool_json("backfill", config, "--table", "users", "--chunk-rows", str(chunk), "--resume")
    assert code == 0
    u = tables_by_name(s)["users"]
    # resumed where it stopped: at most one chunk walked again
    assert u["rows"] <= rows - copied + chunk, (u, copied)
    assert u["inserted"] == rows - copied
    assert not checkpoint.exists()
    assert expected_user_diffs(lay) == {}
    code, _ = verify_json(config, "--table", "users", "--report", tmp_path / "r.jsonl")
    assert code == 0


def checkpoint_lo(path):
    """The key (an int) the backfill checkpoint resumes at, or None."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("at "):
            parts = line.split()
            return int(bytes.fromhex(parts[3]).decode())
    return None


def test_backfill_killed_five_times_then_resumed(layout, tmp_path):
    """SIGKILL at five random points, each run resuming the last: at every kill
    the rows already copied past the checkpoint are at most one chunk (the only
    chunk a resume walks again, so none is copied more than twice), and the
    end is equal."""
    import random
    lay = layout
    rows, chunk = 20000, 500
    fill_old(lay, rows)
    config = write_config(lay.pg, lay, tmp_path)
    checkpoint = tmp_path / "journal" / "backfill.checkpoint"
    count = lambda lo=0: lay.pg.sql("SELECT count(*) FROM %s.users_v2 WHERE id >= %d"  # noqa: E731
                                    % (lay.schema("new"), lo))[0][0]
    rng = random.Random(os.environ.get("PGT_SEED", "backfill"))
    kills = []
    for i in range(5):
        args = [pgt_bin(), "backfill", "-c", config, "--table", "users", "--chunk-rows", str(chunk),
                "--max-rate", "8000"] + (["--resume"] if i else [])
        before = count()
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # a random point after this run has copied something
            wait_for(lambda: count() > before, "run %d copying" % i, timeout=30)
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=30)
        assert p.returncode == -signal.SIGKILL, "run %d ended before its kill" % i
        lo = checkpoint_lo(checkpoint)
        done = count()
        again = count(lo) if lo is not None else done
        kills.append((done, lo, again))
        assert again <= chunk, kills
    assert kills[-1][0] < rows, kills
    code, s = tool_json("backfill", config, "--table", "users", "--chunk-rows", str(chunk), "--resume")
    assert code == 0
    u = tables_by_name(s)["users"]
    assert u["inserted"] == rows - kills[-1][0]
    assert u["rows"] <= rows - kills[-1][0] + chunk, (u, kills)
    print("kills (rows on new, checkpoint key, rows a resume walks again): %s" % kills)
    assert not checkpoint.exists()
    assert expected_user_diffs(lay) == {}
    code, _ = verify_json(config, "--table", "users", "--report", tmp_path / "r.jsonl")
    assert code == 0


def test_repair_journal_by_keys(layout, proxy_factory, tmp_path):
    """Captured writes the shadow lost are journaled with their table, the
    keys of their rows and the path that holds them right; repair --journal
    then repairs those keys only (a difference planted elsewhere is left)."""
    layout.fill(1000)
    proxy = dual_proxy(proxy_factory, layout)
    journal = os.path.join(proxy.dir, "journal", "dual_write_journal.log")
    layout.sql("new", "ALTER TABLE users_v2 ADD CONSTRAINT no_refused"
                      " CHECK (email IS DISTINCT FROM 'refused')")
    c = proxy.connect(user="app")
    cur = c.cursor()
    try:
        cur.execute("INSERT INTO users (id, name, email) VALUES (6000, 'k', 'refused'),"
                    " (6001, 'k2', 'refused')")
        cur.execute("UPDATE users SET email = 'refused', created = now() WHERE id IN (20, 21)")
        cur.execute("DELETE FROM users WHERE id = 22 AND now() > '2000-01-01'")  # reaches new
    finally:
        c.close()
    layout.sql("new", "ALTER TABLE users_v2 DROP CONSTRAINT no_refused")
    layout.sql("new", "UPDATE users_v2 SET email = 'planted' WHERE id = 500")
    wait_for(lambda: os.path.exists(journal) and len(open(journal).readlines()) >= 2,
             "journal entries")
    entries = [json.loads(l.split(" ", 1)[1]) for l in open(journal)]
    keyed = [e for e in entries if "keys" in e]
    assert len(keyed) == 2, entries
    assert all(e["table"] == "users" and e["authoritative"] == "old" for e in keyed), keyed
    assert sorted(k["id"] for e in keyed for k in e["keys"]) == ["20", "21", "6000", "6001"]
    diffs = expected_user_diffs(layout)
    assert set(diffs) == {"20", "21", "6000", "6001", "500"}, diffs
    code, s = tool_json("repair", proxy.config_path, "--journal")
    assert code == 0, s
    assert tables_by_name(s)["users"]["from"] == "old"
    assert counts(s, "users") == (2, 2, 0), s
    assert set(expected_user_diffs(layout)) == {"500"}
