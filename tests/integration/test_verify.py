"""pgturnout verify (SPEC §2, §11): the old and the new path compared through
the rename map; see docs/verify.md.

Layout: one database, a schema per path (twopaths.TwoPathLayout "schemas"):

- old `users(id, name, email, created timestamptz, nick)`, new
  `users_v2(id, full_name, email, created, extra)`, with `[rewrite]
  table.users = users_v2`, `column.users.name = full_name`; `nick` exists on
  old only and `extra` on new only: reported, never compared;
- `items(id serial, v)` under the same name on both sides (no rule).

Every expectation about which rows differ is computed with SQL over both
schemas (a full outer join on the key, IS DISTINCT FROM per column) and
compared with what verify reports, key by key.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import pgt_bin, started_server, unique
from twopaths import TwoPathLayout, wait_for

pytestmark = pytest.mark.proxy_only

USERS_ROWS = 3000


class Layout(TwoPathLayout):
    def __init__(self, pg, extra_old="", extra_new=""):
        super().__init__(pg, "schemas", unique("vf"))
        self.extra = {"old": extra_old, "new": extra_new}

    def objects(self, role):
        if role == "old":
            users = ("CREATE TABLE users (id int PRIMARY KEY, name text, email text,"
                     " created timestamptz, nick text);")
        else:
            users = ("CREATE TABLE users_v2 (id int PRIMARY KEY, full_name text, email text,"
                     " created timestamptz, extra int DEFAULT 0);")
        return users + "CREATE TABLE items (id serial PRIMARY KEY, v text);" + self.extra[role]

    def fill(self, n=USERS_ROWS):
        for role, table, name in (("old", "users", "name"), ("new", "users_v2", "full_name")):
            self.sql(role, "INSERT INTO %s (id, %s, email, created) SELECT g, 'user ' || g,"
                           " 'u' || g || '@example.com', timestamptz '2026-01-01 00:00:00+00'"
                           " + g * interval '1 minute' FROM generate_series(1, %d) g"
                     % (table, name, n))
            self.sql(role, "INSERT INTO items (v) SELECT 'item ' || g FROM generate_series(1, 500) g")

    def schema(self, role):
        return self.where[role][1]


def write_config(pg, layout, tmp_path, rules=True):
    """A config whose paths are the layout's schemas, as user app."""
    lines = ["[pgturnout]", "listen = 127.0.0.1:1", "auth_type = trust",
             "journal_dir = %s" % (tmp_path / "journal")]
    for role in ("old", "new"):
        lines += ["", "[path %s]" % role, "host = %s" % pg.host, "port = %d" % pg.port,
                  "dbname = app", "user = app", "password = app", "sslmode = disable",
                  "search_path = %s" % layout.schema(role)]
    lines += ["", "[migration]", "old = old", "new = new"]
    if rules:
        lines += ["", "[rewrite]", "table.users = users_v2", "column.users.name = full_name"]
    path = tmp_path / "pgturnout.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def verify_cmd(config, *args):
    return [pgt_bin(), "verify", "-c", config, "--recheck-delay", "100"] + [str(a) for a in args]


def run_verify(config, *args, timeout=300):
    r = subprocess.run(verify_cmd(config, *args), capture_output=True, text=True, timeout=timeout)
    print(r.stdout)
    print(r.stderr)
    return r


def run_json(config, *args):
    r = run_verify(config, "--json", *args)
    assert r.returncode in (0, 1, 2), r.stderr
    return r.returncode, json.loads(r.stdout)


def tables_by_name(summary):
    return {t["table"].split(".")[-1]: t for t in summary["tables"]}


def report_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def expected_user_diffs(layout):
    """What SQL says differs between users and users_v2 over the compared
    columns: {id: kind or sorted columns}."""
    o, n = layout.schema("old"), layout.schema("new")
    rows = layout.pg.sql(
        "SELECT coalesce(o.id, n.id),"
        "       CASE WHEN o.id IS NULL THEN 'missing_on_old'"
        "            WHEN n.id IS NULL THEN 'missing_on_new' END,"
        "       o.name IS DISTINCT FROM n.full_name, o.email IS DISTINCT FROM n.email,"
        "       o.created IS DISTINCT FROM n.created"
        "  FROM %s.users o FULL JOIN %s.users_v2 n ON o.id = n.id"
        " WHERE o.id IS NULL OR n.id IS NULL OR (o.name, o.email, o.created)"
        "       IS DISTINCT FROM (n.full_name, n.email, n.created)" % (o, n))
    out = {}
    for key, kind, name, email, created in rows:
        cols = [c for c, d in (("created", created), ("email", email), ("name", name)) if d]
        out[str(key)] = kind or ("different", tuple(cols))
    return out


def reported_user_diffs(report):
    out = {}
    for r in report:
        if r["table"].endswith(".users") and r["kind"] != "sequence_behind":
            k = r["key"]["id"]
            assert k not in out, "key reported twice: %r" % r
            out[k] = r["kind"] if r["kind"] != "different" else ("different", tuple(sorted(r["columns"])))
    return out


@pytest.fixture
def layout(pg):
    lay = Layout(pg)
    lay.create()
    yield lay
    lay.drop()


def test_verify_equal_tables_exit_0(layout, tmp_path):
    layout.fill()
    config = write_config(layout.pg, layout, tmp_path)
    code, s = run_json(config, "--chunk-rows", "700")
    assert code == 0
    assert s["result"] == "equal"
    t = tables_by_name(s)
    assert set(t) == {"users", "items"}
    u = t["users"]
    assert u["new_table"].endswith(".users_v2")
    assert (u["rows"], u["rows_old"], u["rows_new"]) == (USERS_ROWS, USERS_ROWS, USERS_ROWS)
    assert (u["missing_on_old"], u["missing_on_new"], u["different"]) == (0, 0, 0)
    assert u["settled_on_recheck"] == 0 and u["sequences_behind"] == 0
    assert u["only_on_old"] == ["nick"] and u["only_on_new"] == ["extra"]
    assert t["items"]["rows"] == 500 and t["items"]["equal"]
    assert report_rows(s["report"]) == []
    # the text summary says the same
    r = run_verify(config)
    assert r.returncode == 0, r.stderr
    assert "result: equal" in r.stdout
    assert "only on old: nick" in r.stdout and "only on new: extra" in r.stdout
    # progress on stderr, not a terminal: one plain line per table when done
    done = [l for l in r.stderr.splitlines() if "done in" in l]
    assert any(l.startswith("verify: users -> users_v2: %d of %d rows (100%%)" % (USERS_ROWS, USERS_ROWS))
               for l in done), r.stderr


def plant_differences(layout):
    """Differences of every kind, plus changes that must NOT count."""
    old = lambda q: layout.sql("old", q)  # noqa: E731
    new = lambda q: layout.sql("new", q)  # noqa: E731
    old("DELETE FROM users WHERE id = 10")                        # missing on old
    new("DELETE FROM users_v2 WHERE id = 20")                     # missing on new
    new("UPDATE users_v2 SET email = 'changed@example.com' WHERE id = 30")
    old("UPDATE users SET name = NULL WHERE id = 40")             # NULL vs ''
    new("UPDATE users_v2 SET full_name = '' WHERE id = 40")
    old("UPDATE users SET email = NULL WHERE id = 41")            # NULL vs text 'NULL'
    new("UPDATE users_v2 SET email = 'NULL' WHERE id = 41")
    old("UPDATE users SET name = 'a,b' WHERE id = 42")            # a comma inside a value ...
    new("UPDATE users_v2 SET full_name = 'a', email = 'b,' || email WHERE id = 42")
    # the same instant written in another time zone: equal
    old("UPDATE users SET created = '2026-03-01 07:00:00+00' WHERE id = 50")
    new("SET TimeZone = 'Asia/Kolkata'; UPDATE users_v2 SET created = '2026-03-01 12:30:00' WHERE id = 50")
    new("UPDATE users_v2 SET created = created + interval '1 microsecond' WHERE id = 51")
    # columns on one side only never make rows differ
    old("UPDATE users SET nick = 'nick' WHERE id = 60")
    new("UPDATE users_v2 SET extra = 7 WHERE id = 61")
    # a row only on new, beyond old's last key, and one before its first
    new("INSERT INTO users_v2 (id, full_name, email) VALUES (%d, 'late', NULL), (-5, 'early', NULL)"
        % (USERS_ROWS + 1000))
    new("UPDATE users_v2 SET full_name = 'x' WHERE id = %d" % USERS_ROWS)


def test_verify_progress_on_a_terminal_draws_a_bar_per_table(layout, tmp_path):
    """On a terminal each table gets a live line with a bar, rows, rate and
    ETA, kept when the next table starts; stdout's summary follows."""
    import pty
    layout.fill()
    config = write_config(layout.pg, layout, tmp_path)
    layout.sql("old", "ANALYZE users")
    layout.sql("new", "ANALYZE users_v2")
    master, slave = pty.openpty()
    p = subprocess.Popen(verify_cmd(config, "--chunk-rows", "100", "--max-rate", "20000"),
                         stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    stdout, _ = p.communicate(timeout=120)
    os.close(master)
    assert p.returncode == 0, out
    text = out.decode()
    assert "\r\x1b[K" in text
    assert re.search(r"verify users -> users_v2 \[#*\.*\] +\d+% [\d,]+/~[\d,]+ rows +[\d,]+ rows/s", text), text
    assert re.search(r"verify users -> users_v2 \[#{24}\] 100% [\d,]+/[\d,]+ rows .* done in", text), text
    assert "result: equal" in stdout


def test_verify_finds_planted_differences(layout, tmp_path):
    layout.fill()
    plant_differences(layout)
    expected = expected_user_diffs(layout)
    assert expected == {
        "10": "missing_on_old", "20": "missing_on_new",
        "30": ("different", ("email",)), "40": ("different", ("name",)),
        "41": ("different", ("email",)), "42": ("different", ("email", "name")),
        "51": ("different", ("created",)),
        str(USERS_ROWS + 1000): "missing_on_old", "-5": "missing_on_old",
        str(USERS_ROWS): ("different", ("name",)),
    }
    config = write_config(layout.pg, layout, tmp_path)
    report = str(tmp_path / "report.jsonl")
    code, s = run_json(config, "--chunk-rows", "500", "--report", report)
    assert code == 1
    assert s["result"] == "different" and s["report"] == report
    rows = report_rows(report)
    assert reported_user_diffs(rows) == expected
    u = tables_by_name(s)["users"]
    assert (u["missing_on_old"], u["missing_on_new"], u["different"]) == (3, 1, 6)
    assert u["columns"] == {"name": 3, "email": 3, "created": 1}
    assert u["rows"] == USERS_ROWS + 2
    assert (u["rows_old"], u["rows_new"]) == (USERS_ROWS - 1, USERS_ROWS + 1)
    assert tables_by_name(s)["items"]["equal"]
    for r in rows:
        assert r["new_table"].endswith(".users_v2")
        assert r["columns"] == [] or r["kind"] == "different"
    # one chunk for the whole table finds the same
    code2, s2 = run_json(config, "--chunk-rows", "100000", "--report", report)
    assert code2 == 1 and reported_user_diffs(report_rows(report)) == expected
    # the text summary names the renamed column both ways
    r = run_verify(config, "--report", report)
    assert r.returncode == 1
    assert "name/full_name (3)" in r.stdout and "result: different" in r.stdout


def test_verify_table_option_selects_pairs(layout, tmp_path):
    layout.fill(200)
    layout.sql("new", "UPDATE items SET v = 'changed' WHERE id = 7")
    config = write_config(layout.pg, layout, tmp_path)
    code, s = run_json(config, "--table", "users_v2")      # a new name finds its pair
    assert code == 0 and list(tables_by_name(s)) == ["users"]
    code, s = run_json(config, "--table", "items")
    assert code == 1 and list(tables_by_name(s)) == ["items"]
    assert report_rows(s["report"]) == [{
        "table": "%s.items" % layout.schema("old"), "new_table": "%s.items" % layout.schema("new"),
        "key": {"id": "7"}, "kind": "different", "columns": ["v"],
        "values": {"v": {"kind": "same", "expected": "item 7", "found": "changed"}}}]
    code, s = run_json(config, "--table", "nosuch")
    assert code == 2 and "not found" in s["tables"][0]["error"]


def test_verify_sequence_behind_its_column(layout, tmp_path):
    layout.fill(100)
    # the same rows on both sides, but new's were written with explicit keys
    # past its sequence: new's sequence would hand out a key already taken
    for role in ("old", "new"):
        layout.sql(role, "INSERT INTO items (id, v) VALUES (600, 'explicit')")
    layout.sql("old", "SELECT setval('items_id_seq', 600)")
    config = write_config(layout.pg, layout, tmp_path)
    code, s = run_json(config, "--table", "items")
    assert code == 1
    t = tables_by_name(s)["items"]
    assert t["sequences_behind"] == 1 and t["rows"] == 501 and t["different"] == 0
    [r] = report_rows(s["report"])
    assert r["kind"] == "sequence_behind" and r["path"] == "new"
    assert r["sequence"].endswith("items_id_seq") and (r["next"], r["max"]) == (501, 600)
    layout.sql("new", "SELECT setval('items_id_seq', 600)")
    code, s = run_json(config, "--table", "items")
    assert code == 0


def test_verify_pair_without_key_is_reported(pg, tmp_path):
    lay = Layout(pg, extra_old="CREATE TABLE nokey (a int, b text);",
                 extra_new="CREATE TABLE nokey (a int, b text);")
    lay.create()
    try:
        config = write_config(pg, lay, tmp_path)
        code, s = run_json(config)
        assert code == 2
        t = tables_by_name(s)
        assert "no primary key" in t["nokey"]["error"]
        assert t["users"]["equal"] and t["items"]["equal"]
    finally:
        lay.drop()


def test_verify_rechecks_a_row_in_flight(layout, tmp_path):
    layout.fill(100)
    layout.sql("new", "UPDATE users_v2 SET email = 'in flight' WHERE id = 5")
    config = write_config(layout.pg, layout, tmp_path)
    cmd = [pgt_bin(), "verify", "-c", config, "--json", "--recheck-delay", "15000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # verify has seen the difference and waits to re-read it (a loaded machine
    # may take seconds to get there: the delay leaves room)
    time.sleep(5)
    layout.sql("new", "UPDATE users_v2 SET email = 'u5@example.com' WHERE id = 5")
    out, err = proc.communicate(timeout=60)
    print(err)
    assert proc.returncode == 0, out
    s = json.loads(out)
    assert s["result"] == "equal"
    # it did see the difference, and let it go only after re-reading the row
    assert tables_by_name(s)["users"]["settled_on_recheck"] == 1


def test_verify_resume_after_kill(pg, tmp_path):
    n = 200000
    lay = Layout(pg)
    lay.create()
    try:
        lay.fill(n)
        lay.sql("new", "DELETE FROM users_v2 WHERE id IN (3, 150000)")
        lay.sql("old", "UPDATE users SET email = 'x' WHERE id IN (120000, 199999)")
        lay.sql("new", "INSERT INTO users_v2 (id, full_name) VALUES (250000, 'new only')")
        expected = expected_user_diffs(lay)
        config = write_config(pg, lay, tmp_path)
        report = tmp_path / "report.jsonl"
        checkpoint = tmp_path / "report.jsonl.checkpoint"
        args = ["--json", "--chunk-rows", "2000", "--max-rate", "20000", "--report", report,
                "--table", "users"]
        proc = subprocess.Popen(verify_cmd(config, *args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def midway():
            try:
                text = checkpoint.read_text()
            except OSError:
                return False
            return "\nlo 0 1 " in text and report.stat().st_size > 0
        # checkpoints wait for the pending candidates to be re-read (a batch
        # after 5 s): a checkpoint with a report behind it is past the first
        wait_for(midway, "a checkpoint past the first difference", timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first = checkpoint.read_text()
        lo_hex = first.split("\nlo 0 1 ")[1].split()[0]
        lo = int(bytes.fromhex(lo_hex).decode())
        assert 0 < lo < n, "killed too late to prove anything: %s" % first

        r = run_verify(config, *(args + ["--resume"]))
        assert r.returncode == 1, r.stderr
        s = json.loads(r.stdout)
        assert reported_user_diffs(report_rows(report)) == expected
        u = tables_by_name(s)["users"]
        assert (u["rows_old"], u["rows_new"], u["rows"]) == (n, n - 1, n + 1)
        assert (u["missing_on_old"], u["missing_on_new"], u["different"]) == (1, 2, 2)
        assert not checkpoint.exists()

        # an uninterrupted run gives the same summary
        r2 = run_verify(config, "--json", "--table", "users", "--report", tmp_path / "r2.jsonl")
        assert r2.returncode == 1
        assert json.loads(r2.stdout)["tables"] == s["tables"]
    finally:
        lay.drop()


def test_verify_text_keys_sorted_differently_on_each_side(pg, tmp_path):
    """Old sorts its key bytewise ("C": 'B' < 'a'), new with ICU ('a' < 'B'):
    chunks must still hold the same keys on both sides."""
    lay = Layout(pg, extra_old="CREATE TABLE codes (code text COLLATE \"C\" PRIMARY KEY, v int);",
                 extra_new="CREATE TABLE codes (code text COLLATE \"und-x-icu\" PRIMARY KEY, v int);")
    lay.create()
    try:
        # mixed case: 'a...' and 'B...' sort one way bytewise, the other way in ICU
        fill = ("INSERT INTO codes SELECT chr(65 + g % 26 + g % 2 * 32) || chr(97 + g / 26 % 26) || g, g"
                " FROM generate_series(1, 2000) g")
        for role in ("old", "new"):
            lay.sql(role, fill)
        lay.sql("new", "UPDATE codes SET v = -v WHERE v IN (27, 1354)")
        lay.sql("old", "DELETE FROM codes WHERE v = 777")
        o, n = lay.schema("old"), lay.schema("new")
        expected = {r[0] for r in pg.sql(
            "SELECT coalesce(o.code, n.code COLLATE \"C\") FROM %s.codes o FULL JOIN %s.codes n"
            " ON o.code = n.code COLLATE \"C\" WHERE o.v IS DISTINCT FROM n.v" % (o, n))}
        assert len(expected) == 3
        config = write_config(pg, lay, tmp_path)
        code, s = run_json(config, "--table", "codes", "--chunk-rows", "37")
        assert code == 1
        t = tables_by_name(s)["codes"]
        assert (t["rows"], t["different"], t["missing_on_old"], t["settled_on_recheck"]) == (2000, 2, 1, 0)
        assert {r["key"]["code"] for r in report_rows(s["report"])} == expected
    finally:
        lay.drop()


@pytest.fixture(scope="module")
def second_pg():
    """A second PostgreSQL server (scripts/pg.sh), for paths on two servers."""
    with started_server() as server:
        yield server


def test_verify_two_servers_composite_key(pg, second_pg, tmp_path):
    table = unique("orders")
    ddl = ("CREATE TABLE %s (tenant int, code text, amount numeric, at timestamptz, note text,"
           " PRIMARY KEY (tenant, code))" % table)
    fill = ("INSERT INTO %s SELECT g %% 7, 'c' || g, g * 1.5, timestamptz '2026-01-01 00:00+00'"
            " + g * interval '1 hour', CASE WHEN g %% 5 = 0 THEN NULL ELSE 'n' || g END"
            " FROM generate_series(1, 5000) g" % table)
    servers = {"old": pg, "new": second_pg}
    for role, server in servers.items():
        server.sql("SET ROLE app; " + ddl + "; " + fill)
    try:
        second_pg.sql("UPDATE %s SET note = '' WHERE tenant = 0 AND code = 'c35'" % table)  # was NULL
        # 1.5 and 1.50 are equal numbers but print differently: a difference
        second_pg.sql("UPDATE %s SET amount = 1.50 WHERE tenant = 1 AND code = 'c1'" % table)
        second_pg.sql("SET TimeZone = 'America/New_York'; UPDATE %s SET at = at WHERE tenant = 2" % table)
        pg.sql("DELETE FROM %s WHERE tenant = 1 AND code = 'c4999'" % table)
        lines = ["[pgturnout]", "listen = 127.0.0.1:1", "auth_type = trust",
                 "journal_dir = %s" % (tmp_path / "journal")]
        for role, server in servers.items():
            lines += ["[path %s]" % role, "host = %s" % server.host, "port = %d" % server.port,
                      "dbname = app", "user = app", "password = app", "sslmode = disable"]
        lines += ["[migration]", "old = old", "new = new"]
        config = tmp_path / "two.ini"
        config.write_text("\n".join(lines) + "\n")
        code, s = run_json(str(config), "--table", table, "--chunk-rows", "400")
        assert code == 1
        t = tables_by_name(s)[table]
        assert (t["rows"], t["missing_on_old"], t["different"]) == (5000, 1, 2)
        assert t["columns"] == {"note": 1, "amount": 1}, t
        keys = {(r["key"]["tenant"], r["key"]["code"], r["kind"]) for r in report_rows(s["report"])}
        assert keys == {("0", "c35", "different"), ("1", "c1", "different"),
                        ("1", "c4999", "missing_on_old")}
    finally:
        for server in servers.values():
            server.sql("DROP TABLE IF EXISTS %s" % table)


def test_verify_during_dual_writes_through_the_proxy(pg, proxy_factory, tmp_path):
    """pgbench writes through pgturnout with dual writes on (one database:
    both sides commit in one transaction) while verify runs again and again:
    every run must find the sides equal, and so must one after the load."""
    lay = Layout(pg)
    lay.create()
    try:
        lay.fill(2000)
        paths = {role: dict(p, user="app") for role, p in lay.paths.items()}
        proxy = proxy_factory(paths=paths, extra=(
            "\n[migration]\nold = old\nnew = new\nsalt = %s\nversion.v1 = old\nversion.v2 = new\n"
            "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
            "\n[flags]\ndual_write = on\n" % unique("salt")))
        script = tmp_path / "writes.sql"
        script.write_text(
            "\\set id random(1, 2000)\n\\set v random(1, 1000000)\n"
            "BEGIN;\n"
            "UPDATE users SET email = 'e' || :v WHERE id = :id;\n"
            "UPDATE users SET name = 'n' || :v, created = timestamptz '2026-01-01 00:00+00'"
            " + :v * interval '1 second' WHERE id = 2001 - :id;\n"
            "COMMIT;\n"
            "DELETE FROM users WHERE id = :v + 100000;\n"
            "INSERT INTO users (id, name, email) VALUES (:v + 100000, 'ins', NULL);\n")
        load = subprocess.Popen(["pgbench", "-n", "-c", "4", "-j", "2", "-T", "12", "-f", str(script)],
                                env=proxy.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        config = proxy.config_path
        runs = 0
        try:
            while load.poll() is None:
                # a transaction's two COMMIT PREPAREDs run on two backends:
                # on a busy machine one may trail the other by more than
                # the default half second of recheck delay
                code, s = run_json(config, "--table", "users", "--chunk-rows", "300",
                                   "--recheck-delay", "2000",
                                   "--report", tmp_path / "during.jsonl")
                assert code == 0, report_rows(tmp_path / "during.jsonl")
                runs += 1
        finally:
            out, _ = load.communicate(timeout=60)
        print(out)
        assert load.returncode == 0, out
        assert runs >= 2
        code, s = run_json(config, "--report", tmp_path / "after.jsonl")
        assert code == 0, report_rows(tmp_path / "after.jsonl")
        assert tables_by_name(s)["users"]["rows"] >= 2000
    finally:
        lay.drop()
