"""The dual-write journal an operator works with (SPEC §11, docs/dual-writes.md
§4): indexed after start-up instead of parsed into memory, SHOW JOURNAL pages
through the unrepaired entries and shows each entry's repaired state, ROTATE
JOURNAL moves the file aside for `repair --journal`; the last verify's result
in SHOW VERIFY and /metrics; and the guard rail on turning dual_write on again.

Layout as in test_verify.py (one database, a schema per path, users renamed
to users_v2 with name -> full_name). Tests that change data end with the two
sides compared row by row (expected_user_diffs) and by verify.
"""

import json
import os
import re
import subprocess
import time
import urllib.request
import zlib

import psycopg2
import pytest

from conftest import free_port, pgt_bin, sanitized_binary, unique
from test_repair import assert_equal, counts, tool_json
from test_verify import expected_user_diffs, tables_by_name
from test_verify import layout  # noqa: F401  (fixture)
from twopaths import Admin, wait_for

pytestmark = pytest.mark.proxy_only


def journal_proxy(proxy_factory, layout, dual_write="on", journal_dir=None):
    paths = {role: dict(p, user="app") for role, p in layout.paths.items()}
    http = free_port()
    settings = {"http_listen": "127.0.0.1:%d" % http}
    if journal_dir:
        settings["journal_dir"] = journal_dir
    p = proxy_factory(settings=settings, paths=paths, extra=(
        "\n[migration]\nold = old\nnew = new\nsalt = %s\nversion.v1 = old\nversion.v2 = new\n"
        "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
        "\n[flags]\ndual_write = %s\ncanary_percent = 0\nforce_path = none\n"
        "shadow_failure = journal\n" % (unique("salt"), dual_write)))
    p.http_port = http
    return p


def jdir(proxy):
    return os.path.join(proxy.dir, "journal")


def console(proxy, command):
    """(rows as dicts or None, notices) of one console command."""
    conn = proxy.connect(user="admin", dbname="pgturnout")
    try:
        with conn.cursor() as cur:
            cur.execute(command)
            rows = None
            if cur.description is not None:
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r)) for r in cur.fetchall()]
        return rows, [n.strip() for n in conn.notices]
    finally:
        conn.close()


def console_error(proxy, command):
    conn = proxy.connect(user="admin", dbname="pgturnout")
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error) as e:
                cur.execute(command)
        return e.value.pgcode, e.value.pgerror
    finally:
        conn.close()


def metrics(proxy):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % proxy.http_port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(pgturnout_(?:journal|verify|drift)\w*(?:\{[^}]*\})?) (\d+)$', line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def lose_writes(layout, proxy, statements):
    """Runs STATEMENTS through the proxy while new's table is away: each is
    journaled."""
    c = proxy.connect(user="app")
    cur = c.cursor()
    layout.sql("new", "ALTER TABLE users_v2 RENAME TO users_v2_away")
    try:
        for s in statements:
            cur.execute(s)
    finally:
        layout.sql("new", "ALTER TABLE users_v2_away RENAME TO users_v2")
        c.close()


def test_journal_pages_repaired_state_and_rotation(layout, proxy_factory, tmp_path):
    layout.fill(1000)
    p = journal_proxy(proxy_factory, layout)
    lose_writes(layout, p, ["UPDATE users SET email = 'lost %d' WHERE id = %d" % (i, i)
                            for i in range(1, 151)])
    assert len(expected_user_diffs(layout)) == 150

    # a bounded default page, and it says so
    rows, notices = console(p, "SHOW JOURNAL")
    assert len(rows) == 100
    assert [r["entry"] for r in rows[:2]] == ["1", "2"]
    assert all(r["repaired"] == "false" for r in rows)
    assert "lost 1'" in rows[0]["statement"]
    assert any("showing 100 of 150 unrepaired entries" in n for n in notices), notices
    rows, notices = console(p, "SHOW JOURNAL LIMIT 10 OFFSET 145")
    assert [r["entry"] for r in rows] == ["146", "147", "148", "149", "150"]
    assert notices == []
    rows, _ = console(p, "show journal limit 0")
    assert rows == []
    code, msg = console_error(p, "SHOW JOURNAL LIMIT many")
    assert code == "22023" and "LIMIT" in msg
    code, msg = console_error(p, "SHOW JOURNAL OFFSET 1 LIMIT 1")
    assert code == "42601"
    assert metrics(p)["pgturnout_journal_unrepaired"] == 150

    # repair --journal marks them repaired: gone from the default view, kept in ALL
    code, s = tool_json("repair", p.config_path, "--journal")
    assert code == 0 and s["journal_entries"] == 150, s
    assert expected_user_diffs(layout) == {}
    rows, _ = console(p, "SHOW JOURNAL")
    assert rows == []
    rows, _ = console(p, "SHOW JOURNAL ALL LIMIT 3 OFFSET 148")
    assert [(r["entry"], r["repaired"]) for r in rows] == [("149", "true"), ("150", "true")]
    m = metrics(p)
    assert m["pgturnout_journal_unrepaired"] == 0 and m["pgturnout_journal_entries"] == 150

    # rotation: refused while entries are unrepaired, FORCE moves them aside
    lose_writes(layout, p, ["UPDATE users SET name = '' WHERE id = 500",
                            "DELETE FROM users WHERE id = 501"])
    rows, _ = console(p, "SHOW JOURNAL")
    assert [r["entry"] for r in rows] == ["151", "152"]
    code, msg = console_error(p, "ROTATE JOURNAL")
    assert code == "55000" and "2 journal entries are unrepaired" in msg, msg
    _, notices = console(p, "ROTATE JOURNAL FORCE")
    assert any("journal rotated to" in n for n in notices), notices
    rotated = [f for f in os.listdir(jdir(p)) if re.match(r"dual_write_journal\.\d{8}T.*Z\.log$", f)]
    assert len(rotated) == 1
    side = rotated[0][:-4] + ".repaired"
    assert os.path.exists(os.path.join(jdir(p), side))        # the sidecar went with it
    assert console(p, "SHOW JOURNAL ALL")[0] == []
    assert metrics(p)["pgturnout_journal_entries"] == 0
    # the proxy goes on journaling into the fresh file
    lose_writes(layout, p, ["INSERT INTO users (id, name) VALUES (7000, 'after rotation')"])
    rows, _ = console(p, "SHOW JOURNAL")
    assert [r["entry"] for r in rows] == ["1"]
    assert len(expected_user_diffs(layout)) == 3
    # repair --journal reads the rotated file (past its sidecar) and the current one
    code, s = tool_json("repair", p.config_path, "--journal")
    assert code == 0 and s["journal_entries"] == 3, s
    assert counts(s, "users") == (1, 1, 1), s
    assert_equal(layout, p.config_path, tmp_path)
    code, s = tool_json("repair", p.config_path, "--journal")
    assert code == 0 and s["journal_entries"] == 0
    # an empty journal rotates without FORCE
    console(p, "ROTATE JOURNAL")
    assert p.alive()


def write_journal(path, n, torn=False):
    with open(path, "w") as f:
        for i in range(n):
            o = {"time": "2026-01-01T00:00:00.000Z", "session": i, "path": "new",
                 "fingerprint": "%016x" % i,
                 "statement": "UPDATE users SET email = 'x%d' WHERE id = %d" % (i, i),
                 "parameters": "", "error": "42P01: relation does not exist",
                 "future_field": {"table": "users", "keys": [i]}}
            s = json.dumps(o, separators=(",", ":"))
            f.write("%08x %s\n" % (zlib.crc32(s.encode()) & 0xffffffff, s))
        if torn:
            f.write('0badc0de {"time":"2026-01-01')


def test_journal_large_file_indexed_after_start(layout, proxy_factory):
    """60k entries (the size that took 6 s to load): the proxy answers at once,
    indexes in the background and holds offsets, not entries."""
    n = 60000
    d = os.path.join(str(layout.pg.sockdir), unique("jdir"))
    os.makedirs(d)
    write_journal(os.path.join(d, "dual_write_journal.log"), n, torn=True)
    paths = {role: dict(pth, user="app") for role, pth in layout.paths.items()}
    started = time.monotonic()
    p = proxy_factory(settings={"journal_dir": d}, paths=paths, extra=(
        "\n[migration]\nold = old\nnew = new\n\n[flags]\ndual_write = off\n"))
    c = p.connect(user="app")
    with c.cursor() as cur:
        cur.execute("SELECT 1")
    c.close()
    ready = time.monotonic() - started
    p.wait_log(r"dual-write journal: line %d is torn" % (n + 1), timeout=30)
    p.wait_log(r"dual-write journal indexed: %d entries" % n, timeout=30)
    rows, notices = console(p, "SHOW JOURNAL LIMIT 2 OFFSET %d" % (n - 1))
    assert [r["entry"] for r in rows] == [str(n)] and notices == []
    assert rows[0]["statement"] == "UPDATE users SET email = 'x%d' WHERE id = %d" % (n - 1, n - 1)
    rss = p.rss_kb()
    print("ready after %.2fs with %d entries; rss %d kB" % (ready, n, rss))
    if not sanitized_binary():  # ASan's shadow memory and quarantine count in RSS
        assert rss < 60000, rss     # an index, not the entries (they were ~115 MB)
        assert ready < 5, ready


def test_show_verify_metrics_and_the_dual_write_guard(layout, proxy_factory, tmp_path):
    layout.fill(1000)
    jd = str(tmp_path / "journal")
    p = journal_proxy(proxy_factory, layout, journal_dir=jd)
    _, notices = console(p, "SHOW VERIFY")
    assert any("no verify result yet" in n for n in notices)
    assert "pgturnout_verify_last_differences" not in metrics(p)

    code, _ = tool_json("verify", p.config_path)
    assert code == 0
    rows, notices = console(p, "SHOW VERIFY")
    by = {r["table"].split(".")[-1]: r for r in rows}
    assert by["users"]["rows"] == "1000" and by["users"]["result"] == "equal", rows
    assert by["users"]["new_table"].endswith("users_v2") and by["users"]["tool"] == "verify"
    m = metrics(p)
    assert m["pgturnout_verify_last_differences"] == 0 and m["pgturnout_verify_last_equal"] == 1
    assert abs(m["pgturnout_verify_last_run_timestamp_seconds"] - time.time()) < 60

    # dual_write off, then writes on old only: new missed them
    console(p, "SET dual_write = off")
    c = p.connect(user="app")
    c.cursor().execute("UPDATE users SET email = 'while off' WHERE id <= 5")
    c.close()
    code, msg = console_error(p, "SET dual_write = on")
    assert code == "55000", msg
    assert "new side missed writes" in msg and "dual_write was off since" in msg, msg
    assert "backfill" in msg and "verify" in msg and "FORCE" in msg
    # FORCE turns it on, with the same warning
    _, notices = console(p, "SET dual_write = on FORCE")
    assert any("WARNING" in n and "missed writes" in n for n in notices), notices
    code, s = tool_json("verify", p.config_path)
    assert code == 1
    rows, _ = console(p, "SHOW VERIFY")
    users = [r for r in rows if r["table"].endswith(".users")][0]
    assert users["different"] == "5" and users["result"] == "different"
    m = metrics(p)
    assert m["pgturnout_verify_last_differences"] == 5 and m["pgturnout_verify_last_equal"] == 0
    drift = [v for k, v in m.items() if k.startswith("pgturnout_drift_rows{") and ".users\"" in k]
    assert drift == [5], m
    code, s = tool_json("repair", p.config_path, "--table", "users")
    assert code == 0 and counts(s, "users") == (0, 5, 0)
    assert_equal(layout, p.config_path, tmp_path)

    # off again, no writes meanwhile: still refused until a verify passes since
    console(p, "SET dual_write = off")
    code, msg = console_error(p, "SET dual_write = on")
    assert code == "55000", msg
    # a partial verify (--table) does not count
    code, _ = tool_json("verify", p.config_path, "--table", "users")
    assert code == 0
    assert console_error(p, "SET dual_write = on")[0] == "55000"
    code, _ = tool_json("verify", p.config_path)
    assert code == 0
    _, notices = console(p, "SET dual_write = on")
    assert not any("WARNING" in n for n in notices), notices
    # the flag history keeps the guard across a restart
    console(p, "SET dual_write = off")
    assert p.stop() == 0
    p2 = journal_proxy(proxy_factory, layout, dual_write="off", journal_dir=jd)
    code, msg = console_error(p2, "SET dual_write = on")
    assert code == "55000" and "missed writes" in msg, msg
