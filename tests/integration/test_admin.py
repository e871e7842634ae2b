"""The admin console (SPEC §8): psql against database `pgturnout` as an
admin user. Every SHOW command returns a table; SET changes a flag and SHOW
FLAGS / SHOW HISTORY reflect it; bad values and guard rails are refused with
their SQLSTATE; FORCE overrides a guard rail; non-admin users are refused;
the history survives a restart."""

import csv
import io
import os
import subprocess

import psycopg2
import pytest

from conftest import PASSWORDS, unique

pytestmark = pytest.mark.proxy_only

TWO_PATHS = {"old": {}, "new": {"search_path": "public"}}
MIGRATION = ("\n[migration]\nold = old\nnew = new\nsalt = admin-test\n"
             "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n")


def psql(proxy, command, user="admin", dbname="pgturnout", check=True):
    """Runs COMMAND with psql --csv; returns (header, rows) or the failed run."""
    env = proxy.env(user)
    env["PGPASSWORD"] = PASSWORDS.get(user, "")
    r = subprocess.run(["psql", "-X", "--csv", "-v", "ON_ERROR_STOP=1", "-h", proxy.host,
                        "-p", str(proxy.port), "-U", user, "-d", dbname, "-c", command],
                       capture_output=True, text=True, env=env, timeout=30)
    if not check:
        return r
    assert r.returncode == 0, "psql %r failed: %s" % (command, r.stderr)
    rows = list(csv.reader(io.StringIO(r.stdout)))
    return rows[0], rows[1:]


def as_dicts(table):
    header, rows = table
    return [dict(zip(header, row)) for row in rows]


def flags(proxy):
    return {r["name"]: r for r in as_dicts(psql(proxy, "SHOW FLAGS"))}


def admin_conn(proxy):
    return proxy.connect(user="admin", dbname="pgturnout")


def admin_error(proxy, command):
    conn = admin_conn(proxy)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error) as ei:
                cur.execute(command)
        return ei.value
    finally:
        conn.close()


SHOWS = {
    "HELP": ["command", "description"],
    "VERSION": ["version"],
    "CONFIG": ["section", "key", "value", "default", "reloadable", "description"],
    "FLAGS": ["name", "value", "changed_at", "changed_by"],
    "HISTORY": ["time", "who", "surface", "name", "old", "new"],
    "CLIENTS": ["id", "user", "database", "address", "port", "application", "tag", "dialect",
                "path", "bucket", "state", "in_transaction", "pinned", "reason",
                "connected_at"],
    "PATHS": ["role", "name", "host", "port", "database", "search_path", "sessions",
              "server_connections", "idle_server_connections", "connects", "connect_failures",
              "healthy"],
    "STATS": ["path", "name", "sessions", "queries", "reads", "writes", "rewritten", "refused",
              "shadow_writes", "shadow_errors", "mismatches", "latency_p50_ms",
              "latency_p99_ms", "latency_avg_ms", "nondeterministic", "journaled"],
    "JOURNAL": ["entry", "time", "session", "path", "fingerprint", "statement", "parameters", "error",
                "repaired"],
    "GUARDS": ["guard", "threshold", "action", "state", "value", "figures", "tripped_at",
               "tripped_by", "action_taken", "trips"],
    "SHADOW_READS": ["fingerprint", "runs", "mismatches", "errors", "unstable", "noisy",
                     "old_avg_ms", "new_avg_ms", "sample", "last_difference"],
}


def test_admin_every_show_command_returns_a_table(proxy):
    for what, columns in SHOWS.items():
        header, rows = psql(proxy, "SHOW %s" % what)
        assert header == columns, what
    _, rows = psql(proxy, "show version;")
    assert rows == [["pgturnout 0.1.0"]]
    help_rows = as_dicts(psql(proxy, "SHOW HELP"))
    assert any(r["command"].startswith("SET <flag>") for r in help_rows)
    config = as_dicts(psql(proxy, "SHOW CONFIG"))
    assert any(r["key"] == "listen" and r["value"] == "127.0.0.1:%d" % proxy.port for r in config)
    assert set(flags(proxy)) == {"canary_percent", "dual_write", "shadow_failure",
                                 "force_path", "shadow_reads", "salt"}


def test_admin_set_changes_flag_and_history_records_it(proxy):
    before = flags(proxy)
    assert before["canary_percent"]["value"] == "0"
    assert before["canary_percent"]["changed_by"] == "startup"
    psql(proxy, "SET canary_percent = 12.5")
    f = flags(proxy)
    assert f["canary_percent"]["value"] == "12.5"
    assert f["canary_percent"]["changed_by"] == "admin"
    # TO, a quoted value, lower case, trailing ';' and blanks
    psql(proxy, "  set   CANARY_PERCENT to '20' ;  ")
    psql(proxy, "SET dual_write = on")
    f = flags(proxy)
    assert f["canary_percent"]["value"] == "20"
    assert f["dual_write"]["value"] == "on"
    hist = as_dicts(psql(proxy, "SHOW HISTORY"))
    assert [(h["name"], h["old"], h["new"], h["who"], h["surface"]) for h in hist] == [
        ("canary_percent", "0", "12.5", "admin", "console"),
        ("canary_percent", "12.5", "20", "admin", "console"),
        ("dual_write", "off", "on", "admin", "console"),
    ]
    assert all(h["time"].endswith("Z") for h in hist)


def test_admin_set_to_the_same_value_changes_nothing(proxy):
    r = psql(proxy, "SET force_path = none", check=False)
    assert r.returncode == 0, r.stderr
    assert "already" in r.stderr
    assert as_dicts(psql(proxy, "SHOW HISTORY")) == []


def test_admin_bad_value_is_refused_naming_allowed_values(proxy):
    e = admin_error(proxy, "SET force_path = sideways")
    assert e.pgcode == "22023"
    assert "none, old, new" in e.pgerror
    e = admin_error(proxy, "SET canary_percent = 101")
    assert e.pgcode == "22023"
    e = admin_error(proxy, "SET no_such_flag = 1")
    assert e.pgcode == "42704"
    f = flags(proxy)
    assert f["force_path"]["value"] == "none"
    assert f["canary_percent"]["value"] == "0"


def test_admin_guard_rail_refuses_and_force_overrides(proxy):
    psql(proxy, "SET canary_percent = 10")
    e = admin_error(proxy, "SET salt = 'another-salt'")
    assert e.pgcode == "55000"
    assert "FORCE" in e.pgerror
    assert flags(proxy)["salt"]["value"] != "another-salt"
    e = admin_error(proxy, "SET dual_write = on; SET dual_write = off")
    assert e.pgcode == "55000"
    psql(proxy, "SET salt = 'another-salt' FORCE")
    psql(proxy, "set dual_write to off force")
    f = flags(proxy)
    assert f["salt"]["value"] == "another-salt"
    assert f["dual_write"]["value"] == "off"


def test_admin_unknown_command_points_to_show_help(proxy):
    for bad in ("SHOW NOTHING", "HELLO", "SET canary_percent", "SHOW REWRITE select 1",
                "SHOW FLAGS 'x", "SET x = = 1"):
        e = admin_error(proxy, bad)
        assert e.pgcode == "42601", bad


def test_admin_error_stops_the_rest_of_a_multi_command_query(proxy):
    e = admin_error(proxy, "SET dual_write = on; BOGUS; SET shadow_failure = fail")
    assert e.pgcode == "42601"
    f = flags(proxy)
    assert f["dual_write"]["value"] == "on"
    assert f["shadow_failure"]["value"] == "journal"


def test_admin_empty_query(proxy):
    conn = admin_conn(proxy)
    try:
        with conn.cursor() as cur:
            # EmptyQueryResponse: psycopg2 reports it as "empty query"
            with pytest.raises(psycopg2.ProgrammingError, match="empty query"):
                cur.execute(" ; ")
            cur.execute("SHOW VERSION")
            assert cur.fetchall() == [("pgturnout 0.1.0",)]
    finally:
        conn.close()


def test_admin_non_admin_user_is_refused(proxy):
    r = psql(proxy, "SHOW FLAGS", user="app", check=False)
    assert r.returncode != 0
    assert "admin" in r.stderr or "pgturnout" in r.stderr, r.stderr
    with pytest.raises(psycopg2.Error):
        proxy.connect(user="app", dbname="pgturnout").close()


def test_admin_show_clients_and_stats_see_sessions(proxy):
    conn = proxy.connect(application_name="billing-api")
    try:
        with conn.cursor() as cur:
            for _ in range(20):
                cur.execute("SELECT 1")
        clients = as_dicts(psql(proxy, "SHOW CLIENTS"))
        mine = [c for c in clients if c["application"] == "billing-api"]
        assert len(mine) == 1, clients
        c = mine[0]
        assert c["user"] == "app" and c["database"] == "app"
        assert c["path"] == "old" and c["dialect"] == "old"
        assert c["state"] == "idle" and c["in_transaction"] == "false"
        assert c["reason"] == "default"
        assert any(c["path"] == "admin" for c in clients)
        stats = {r["path"]: r for r in as_dicts(psql(proxy, "SHOW STATS"))}
        assert int(stats["old"]["queries"]) >= 20
        assert float(stats["old"]["latency_p50_ms"]) > 0
        assert float(stats["old"]["latency_p99_ms"]) >= float(stats["old"]["latency_p50_ms"])
        paths = {r["role"]: r for r in as_dicts(psql(proxy, "SHOW PATHS"))}
        assert int(paths["old"]["server_connections"]) >= 1
        assert paths["old"]["healthy"] == "true"
    finally:
        conn.close()


def test_admin_show_rewrite_gives_each_paths_text(proxy_factory):
    p = proxy_factory(paths=TWO_PATHS, extra=MIGRATION)
    rows = as_dicts(psql(p, "SHOW REWRITE 'SELECT name FROM users WHERE name = ''users'''"))
    assert [r["path"] for r in rows] == ["old", "new"]
    assert rows[0]["text"] == "SELECT name FROM users WHERE name = 'users'"
    assert rows[1]["text"] == ("SELECT full_name AS name FROM users_v2 "
                               "WHERE full_name = 'users'")
    assert rows[0]["classification"].startswith("read")
    rows = as_dicts(psql(p, "SHOW REWRITE 'INSERT INTO users_v2 (full_name) VALUES (1)' FROM new"))
    assert rows[0]["dialect"] == "new"
    assert rows[0]["text"] == "INSERT INTO users (name) VALUES (1)"
    assert rows[1]["text"] == "INSERT INTO users_v2 (full_name) VALUES (1)"
    assert rows[0]["classification"].startswith("write")


def test_admin_reload_pause_resume(proxy):
    conn = admin_conn(proxy)
    try:
        with conn.cursor() as cur:
            cur.execute("RELOAD")
            assert cur.statusmessage == "RELOAD"
            cur.execute("PAUSE")
            assert cur.statusmessage == "PAUSE"
            cur.execute("RESUME")
            assert cur.statusmessage == "RESUME"
    finally:
        conn.close()
    app = proxy.connect()
    try:
        with app.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        app.close()


def test_admin_history_survives_a_restart(proxy_factory, tmp_path):
    journal = str(tmp_path / ("journal_" + unique()))
    p1 = proxy_factory(settings={"journal_dir": journal})
    psql(p1, "SET canary_percent = 3")
    psql(p1, "SET dual_write = on")
    assert p1.stop() == 0
    assert os.path.exists(os.path.join(journal, "flag_history.jsonl"))
    p2 = proxy_factory(settings={"journal_dir": journal})
    hist = as_dicts(psql(p2, "SHOW HISTORY"))
    assert [(h["name"], h["new"]) for h in hist] == [("canary_percent", "3"),
                                                    ("dual_write", "on")]
    # a new proxy on the same journal_dir and an unchanged file: the flags in
    # force at stop come back (tests/integration/test_flag_restore.py)
    assert flags(p2)["canary_percent"]["value"] == "3"
    assert flags(p2)["dual_write"]["value"] == "on"
