"""Dual writes in one global lock order (SPEC §7 "No deadlock across paths",
"Order"): every mirrored write runs on old first, then on new, whichever
path is the session's primary, and an autocommit write keeps the first
side's row locks until the second side has applied it.

Covered, in both layouts of test_dual.py (one database with two schemas and
renames; two databases):
- the smallest cross-path cycle (a v1 session holding a row lock on old, a
  v2 session updating the same row): no hang, both writes land on both sides;
- pgbench tpcb-like at canary 50 and while the canary flips between 0 and
  100: no stall, no failed transaction, the four tables identical;
- 16 sessions of autocommit absolute updates on 10 hot rows, half of them on
  each path: identical afterwards;
- a shadow wait longer than lock_timeout becomes a journaled shadow failure,
  not a hang.
"""

import os
import subprocess
import threading
import time

import pytest

from conftest import BIG
from test_dual import (Admin, Layout, bench_digest, databases_layout, direct_env, dual_config,  # noqa: F401
                       journal_file, layout, pgbench, read_journal, run, start)

pytestmark = pytest.mark.proxy_only

BENCH_SECONDS = 30 if BIG else 8


@pytest.fixture(params=["schemas", "databases"])
def tpcb_layout(request, pg):
    """pgbench -i on each side; in the schemas layout, each path's search_path
    holds its own copy of the four tables."""
    lay = Layout(pg, request.param, objects=False)
    lay.create()
    for role in ("old", "new"):
        db, schema = lay.where[role]
        env = direct_env(pg, db)
        env["PGOPTIONS"] = "-c search_path=%s" % schema
        r = subprocess.run(["pgbench", "-i", "-q", "-s", "1"], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0, r.stderr
    yield lay
    lay.drop()


def start_plain(proxy_factory, layout, flags=None, settings=None):
    """A proxy without rewrite rules (tpcb: the same tables on both sides)."""
    text = dual_config(layout, flags)
    text = text.replace("[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n", "")
    return proxy_factory(settings=settings, paths=layout.paths, extra=text)


def test_cross_path_lock_cycle_does_not_hang(proxy_factory, layout):
    p = start(proxy_factory, layout)
    t_new, col_new = layout.table("new"), layout.name_col("new")
    seed = p.connect()
    run(seed, "INSERT INTO users (id, name, email) VALUES (1, 'one', 'x')")
    seed.close()
    a = p.connect(options="-c pgturnout.version=v1")
    b = p.connect(options="-c pgturnout.version=v2")
    a.autocommit = b.autocommit = False
    try:
        run(a, "SELECT id FROM users WHERE id = 1 FOR UPDATE")
        done = threading.Event()
        errors = []

        def b_update():
            try:
                run(b, "UPDATE %s SET email = 'b' WHERE id = 1" % t_new)
                b.commit()
            except Exception as e:  # reported below
                errors.append(e)
            done.set()

        tb = threading.Thread(target=b_update, daemon=True)
        tb.start()
        time.sleep(0.5)
        # A's write must not wait for B: B has taken nothing before old.
        ta_done = threading.Event()

        def a_update():
            try:
                run(a, "UPDATE users SET email = 'a', name = 'uno' WHERE id = 1")
                a.commit()
            except Exception as e:
                errors.append(e)
            ta_done.set()

        ta = threading.Thread(target=a_update, daemon=True)
        ta.start()
        assert ta_done.wait(15), "the v1 session's update hangs: a cross-path lock cycle"
        assert done.wait(15), "the v2 session's update hangs"
        assert errors == [], errors
    finally:
        a.close()
        b.close()
    layout.assert_identical()
    rows = layout.rows("old")
    assert rows == [(1, "uno", "b")], rows
    assert read_journal(journal_file(p)) == []
    del col_new


def tpcb_digest(layout, role):
    return bench_digest(layout, role)  # the same tables, in a path's schema or database


class Flipper(threading.Thread):
    """Flips canary_percent between 0 and 100 every second (FORCE: the
    guard rails would refuse lowering it while sessions write on new)."""

    def __init__(self, proxy):
        super().__init__(daemon=True)
        self.proxy = proxy
        self.stop_event = threading.Event()
        self.flips = 0

    def run(self):
        admin = Admin(self.proxy)
        try:
            value = 100
            while not self.stop_event.wait(1.0):
                admin.run("SET canary_percent = %d FORCE" % value)
                self.flips += 1
                value = 100 - value
        finally:
            admin.close()


@pytest.mark.parametrize("canary", ["50", "flip"])
def test_pgbench_tpcb_with_a_canary_does_not_stall(proxy_factory, tpcb_layout, canary):
    layout = tpcb_layout
    p = start_plain(proxy_factory, layout,
                    flags={"canary_percent": "50" if canary == "50" else "0"},
                    settings={"canary_key": "connection"} if False else None)
    flipper = Flipper(p) if canary == "flip" else None
    if flipper:
        flipper.start()
    try:
        n = pgbench(p.env(), ["-c", "8", "-j", "2", "-T", BENCH_SECONDS, "-P", "1"],
                    timeout=BENCH_SECONDS + 60)
    finally:
        if flipper:
            flipper.stop_event.set()
            flipper.join()
    assert n > 0
    old, new = tpcb_digest(layout, "old"), tpcb_digest(layout, "new")
    assert old[3] == n
    assert old == new, (old, new)
    stats = Admin(p).stats()
    assert int(stats["new"]["mismatches"]) == 0 and int(stats["old"]["mismatches"]) == 0, stats
    if canary == "50":
        assert int(stats["old"]["shadow_writes"]) > 0 and int(stats["new"]["shadow_writes"]) > 0, \
            stats
    assert read_journal(journal_file(p)) == []


def test_autocommit_hot_rows_reach_both_sides_in_one_order(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout, flags={"canary_percent": "50"})
    seed = p.connect(options="-c pgturnout.version=v1")
    run(seed, "INSERT INTO users (id, name, email) SELECT g, 'n' || g, '0' FROM generate_series(1, 10) g")
    seed.close()
    script = tmp_path / "hot.sql"
    script.write_text("\\set id random(1, 10)\n\\set v random(1, 1000000)\n"
                      "UPDATE users SET email = :v WHERE id = :id;\n")
    env = p.env()
    procs = []
    for i in range(2):
        e = dict(env)
        e["PGAPPNAME"] = "hot-%d" % i
        procs.append(subprocess.Popen(
            ["pgbench", "-n", "-c", "8", "-j", "2", "-T", str(BENCH_SECONDS // 2 + 2),
             "-f", str(script)], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    for pr in procs:
        out, err = pr.communicate(timeout=BENCH_SECONDS + 60)
        assert pr.returncode == 0, (out, err[-2000:])
        assert "number of failed transactions: 0" in out or "failed" not in out, out
    layout.assert_identical()
    assert read_journal(journal_file(p)) == []


def test_shadow_lock_wait_is_bounded_and_journaled(proxy_factory, databases_layout):
    layout = databases_layout
    text = dual_config(layout).replace("[migration]\n", "[migration]\nshadow_lock_timeout = 500ms\n")
    p = proxy_factory(paths=layout.paths, extra=text)
    c = p.connect()
    run(c, "INSERT INTO users (id, name, email) VALUES (1, 'one', 'x')")
    # a direct session on new holds the row: the shadow's update must give up
    holder = layout.pg.connect(dbname=layout.where["new"][0])
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT * FROM users WHERE id = 1 FOR UPDATE")
    t0 = time.monotonic()
    run(c, "UPDATE users SET email = 'y' WHERE id = 1")
    assert time.monotonic() - t0 < 10
    holder.rollback()
    holder.close()
    c.close()
    entries = read_journal(journal_file(p))
    assert len(entries) == 1 and "55P03" in entries[0]["error"], entries
    assert layout.rows("old") == [(1, "one", "y")]




@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 kB tmpfs: the journal's disk, filled by the test."""
    where = tmp_path / "tiny"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(path):
    """Fills the filesystem of PATH; returns the filler file."""
    filler = path / "filler"
    fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_journal_on_a_full_disk_fails_the_commit(proxy_factory, databases_layout, tiny_fs):
    layout = databases_layout
    jdir = tiny_fs / "journal"
    p = proxy_factory(paths=layout.paths, extra=dual_config(layout),
                      settings={"journal_dir": str(jdir)})
    layout.drop_users("new")  # every mirrored write now fails on the shadow
    filler = fill(tiny_fs)
    c = p.connect()
    w = p.wire_login()
    try:
        c.autocommit = False
        run(c, "INSERT INTO users (id, name) VALUES (1, 'in a transaction')")
        with pytest.raises(Exception) as e:
            c.commit()
        assert "journal" in str(e.value), e.value
        c.rollback()
        c.autocommit = True
        with pytest.raises(Exception) as e:
            run(c, "INSERT INTO users (id, name) VALUES (2, 'autocommit')")
        assert "journal" in str(e.value), e.value
        # nothing the client was told failed is on the primary
        assert layout.rows("old") == []
        # the session and the proxy go on; with room again, losses are journaled
        filler.unlink()
        run(c, "INSERT INTO users (id, name) VALUES (3, 'journaled')")
        assert [r[0] for r in layout.rows("old")] == [3]
    finally:
        c.close()
        w.terminate()
    entries = read_journal(os.path.join(str(jdir), "dual_write_journal.log"))
    assert [e["statement"].startswith("INSERT") for e in entries] == [True], entries
