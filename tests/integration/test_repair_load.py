"""`pgturnout backfill` and `pgturnout repair` under load (SPEC §11,
docs/repair.md).

- SIGKILLed again and again while pgbench writes through pgturnout with dual
  writes on at canary 50 (sessions on both paths, so both write orders
  run), then run to the end. The load updates, deletes and inserts rows of
  users in autocommit and in transactions, in repeated short pgbench runs
  for as long as the tools run; none of them may fail.
- A row a dual write has committed on the target while its INSERT on the
  source is still in flight (between the two commits) is not deleted.
- A verify report of hundreds of keys is repaired (long key lists).

Layout of test_verify.py: one database, a schema per path, old `users` and
new `users_v2` (name renamed full_name), `items` on both. Each test ends
with both sides equal row by row through the rename map (SQL) and `pgturnout
verify` reporting 0 differences.
"""

import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIG, pgt_bin
from test_repair import assert_equal, dual_proxy, fill_old, tables_by_name, tool_json
from test_verify import layout, write_config  # noqa: F401  (fixture)
from test_verify import run_json as verify_json
from twopaths import wait_for

pytestmark = pytest.mark.proxy_only

KILLS = 8 if BIG else 3
RNG = random.Random(os.environ.get("PGT_SEED", "tools-kill"))


def canary_proxy(proxy_factory, layout):
    return dual_proxy(proxy_factory, layout, canary=50, migration="canary_key = connection\n")


class Load(threading.Thread):
    """pgbench -c 4 through PROXY in runs of 2 s until stop(): updates and
    deletes of users 1..ROWS, inserts far above them."""

    def __init__(self, proxy, tmp_path, rows):
        super().__init__(daemon=True)
        self.env = proxy.env()
        self.script = tmp_path / "load.sql"
        self.script.write_text(
            "\\set id random(1, %(rows)d)\n\\set v random(1, 1000000)\n"
            "\\set k random(1000000, 2000000000)\n"
            "UPDATE users SET email = 'e' || :v WHERE id = :id;\n"
            "BEGIN;\n"
            "UPDATE users SET name = 'n' || :v WHERE id = %(top)d - :id;\n"
            "INSERT INTO users (id, name, email) VALUES (:k, 'k' || :v, NULL)"
            " ON CONFLICT (id) DO NOTHING;\n"
            "COMMIT;\n"
            "DELETE FROM users WHERE id = :id AND :v <= 2000;\n"
            % {"rows": rows, "top": rows + 1})
        self.halt = threading.Event()
        self.runs, self.transactions, self.problems = 0, 0, []

    def run(self):
        while not self.halt.is_set():
            r = subprocess.run(["pgbench", "-n", "-c", "4", "-j", "2", "-T", "2", "-f",
                                str(self.script)], env=self.env, capture_output=True, text=True,
                               timeout=120)
            done = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
            failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
            self.runs += 1
            if r.returncode != 0 or not done or (failed and int(failed.group(1))):
                self.problems.append(r.stdout + r.stderr[-3000:])
                return
            self.transactions += int(done.group(1))

    def stop(self):
        self.halt.set()
        self.join(180)
        assert not self.is_alive(), "pgbench does not end"
        assert not self.problems, self.problems[0]
        assert self.runs >= 2 and self.transactions > 0
        print("load: %d pgbench runs, %d transactions" % (self.runs, self.transactions))


def killed_run(args, progress, what):
    """Starts the tool ARGS, waits for PROGRESS() to become true, lets it go on
    for a random moment and SIGKILLs it; True when the kill found it running."""
    p = subprocess.Popen([pgt_bin()] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: progress() or p.poll() is not None, what, timeout=60)
        time.sleep(RNG.uniform(0.0, 0.3))
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    if p.returncode != -signal.SIGKILL:
        assert p.returncode == 0, out + err  # it finished before its kill
    return p.returncode == -signal.SIGKILL


def killed_under_load(proxy, tmp_path, rows, args_of, measure, finish, least=KILLS - 1):
    """Under the load: KILLS runs of the tool (arguments ARGS_OF(i)), each
    SIGKILLed a moment after MEASURE() moved, then FINISH() (the run to the
    end). The values of MEASURE() at the kills that found a run going: at
    least LEAST (a run may finish before its kill)."""
    load = Load(proxy, tmp_path, rows)
    load.start()
    kills = []
    try:
        time.sleep(1)
        for i in range(KILLS):
            before = measure()
            if killed_run(args_of(i), lambda: measure() != before, "run %d under way" % i):
                kills.append(measure())
        finish()
        time.sleep(1)  # the load goes on over the finished work
    finally:
        load.stop()
    assert len(kills) >= least, kills
    return kills


def test_backfill_killed_under_load_at_canary_50(layout, proxy_factory, tmp_path):
    rows, chunk = 20000, 500
    fill_old(layout, rows)
    proxy = canary_proxy(proxy_factory, layout)
    config = proxy.config_path
    new = layout.schema("new")
    copied = lambda: layout.pg.sql("SELECT count(*) FROM %s.users_v2 WHERE id <= %d"  # noqa: E731
                                   % (new, rows))[0][0]

    def finish():
        code, s = tool_json("backfill", config, "--chunk-rows", str(chunk), "--resume")
        assert code == 0, s
        assert tables_by_name(s)["users"]["deleted"] == 0

    kills = killed_under_load(
        proxy, tmp_path, rows,
        lambda i: ["backfill", "-c", config, "--chunk-rows", chunk, "--max-rate", 6000]
        + (["--resume"] if i else []), copied, finish)
    print("backfill killed %d times, rows of users on new at each kill: %s" % (len(kills), kills))
    assert_equal(layout, config, tmp_path)


def plant(layout, rows):
    """New differs from old: values, missing rows, rows only on new."""
    layout.sql("new", "UPDATE users_v2 SET email = NULL WHERE id % 4 = 0")
    layout.sql("new", "UPDATE users_v2 SET full_name = '' WHERE id % 9 = 0")
    layout.sql("new", "DELETE FROM users_v2 WHERE id % 7 = 0")
    layout.sql("new", "INSERT INTO users_v2 (id, full_name) SELECT g, 'stray'"
                      " FROM generate_series(%d, %d) g" % (rows + 1, rows + 500))
    layout.sql("new", "UPDATE items SET v = v || '!' WHERE id % 5 = 0")


def test_repair_killed_under_load_at_canary_50(layout, proxy_factory, tmp_path):
    rows = 60000 if BIG else 20000
    layout.fill(rows)
    plant(layout, rows)
    proxy = canary_proxy(proxy_factory, layout)
    config = proxy.config_path
    new = layout.schema("new")
    missing = lambda: layout.pg.sql("SELECT count(*) FROM generate_series(7, %d, 7) g WHERE NOT"  # noqa: E731
                                    " EXISTS (SELECT 1 FROM %s.users_v2 WHERE id = g)"
                                    % (rows, new))[0][0]

    def finish():
        code, s = tool_json("repair", config, "--table", "users", "--table", "items")
        assert code == 0, s

    kills = killed_under_load(
        proxy, tmp_path, rows,
        lambda i: ["repair", "-c", config, "--table", "users", "--table", "items",
                   "--chunk-rows", 200], missing, finish,
        # (each run starts again from the first key: the last runs may have
        # nothing left to repair before their kill)
        least=min(KILLS - 1, 3))
    print("repair killed %d times; rows still missing on new at each kill: %s"
          % (len(kills), kills))
    assert layout.sql("new", "SELECT count(*) FROM users_v2 WHERE full_name = 'stray'") == [(0,)]
    assert_equal(layout, config, tmp_path)
    # a second repair changes nothing
    code, s = tool_json("repair", config, "--table", "users", "--table", "items")
    assert code == 0
    for t in s["tables"]:
        assert (t["inserted"], t["updated"], t["deleted"]) == (0, 0, 0), s


def test_repair_leaves_a_row_in_its_commit_window(layout, tmp_path):
    """A row committed on the target whose INSERT on the source is still in
    flight (a dual write between its two commits) is not deleted: repair
    waits for the source's writers before deleting what the source lacks,
    and then finds it. A row the source really lacks is deleted."""
    layout.fill(3000)
    config = write_config(layout.pg, layout, tmp_path)
    layout.sql("new", "INSERT INTO users_v2 (id, full_name, email) VALUES"
                      " (5000, 'in flight', 'f'), (5001, 'stray', 's')")
    writer = layout.pg.connect()
    writer.autocommit = False
    cur = writer.cursor()
    cur.execute("INSERT INTO %s.users (id, name, email) VALUES (5000, 'in flight', 'f')"
                % layout.schema("old"))
    p = subprocess.Popen([pgt_bin(), "repair", "-c", config, "--table", "users", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the repair has read both sides and looks at the source's writers
        try:
            wait_for(lambda: layout.pg.sql(
                "SELECT 1 FROM pg_stat_activity WHERE usename = 'app' AND query LIKE"
                " '%transactionid::text = ANY%'"), "repair waiting for the writer", timeout=10)
        except AssertionError as e:
            print(e)
        writer.commit()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        writer.close()
    print(out, err)
    assert p.returncode == 0, err
    s = tables_by_name(json.loads(out.strip().splitlines()[-1]))["users"]
    assert (s["inserted"], s["deleted"]) == (0, 1), s
    assert layout.sql("new", "SELECT id FROM users_v2 WHERE id >= 5000") == [(5000,)]
    assert_equal(layout, config, tmp_path)


def test_repair_report_with_many_keys(layout, tmp_path):
    """A verify report naming hundreds of keys: repair --report reads and
    fixes them in lists of keys (statements far longer than a line)."""
    layout.fill(3000)
    config = write_config(layout.pg, layout, tmp_path)
    layout.sql("new", "UPDATE users_v2 SET email = 'x' || id WHERE id % 10 = 3")
    layout.sql("new", "DELETE FROM users_v2 WHERE id % 10 = 7")
    layout.sql("new", "INSERT INTO users_v2 (id, full_name) SELECT g, 'stray'"
                      " FROM generate_series(4001, 4300) g")
    report = tmp_path / "diff.jsonl"
    code, _ = verify_json(config, "--table", "users", "--report", report)
    assert code == 1
    code, s = tool_json("repair", config, "--report", str(report), "--chunk-rows", "400")
    assert code == 0, s
    assert (tables_by_name(s)["users"]["inserted"], tables_by_name(s)["users"]["updated"],
            tables_by_name(s)["users"]["deleted"]) == (300, 300, 300), s
    assert_equal(layout, config, tmp_path)
