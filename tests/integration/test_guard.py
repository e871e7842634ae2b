"""Guards (SPEC §12): thresholds on the new path against the old one that
roll a canary back by themselves.

The schema is the demo's: old has users(id, name, email), new has
users_v2(id, full_name, email) in a schema of its own, mapped by [rewrite].
Each path has whereami() so the server says where a statement ran.

Covered: a new_error_rate rollback guard trips within its window when the
new path starts failing (SELECT revoked there) at canary 50; canary_percent
goes to 0 as if typed with FORCE, every untagged session ends on old at its
next transaction boundary and stops failing; the flag history says which
guard and why; SHOW GUARDS, /metrics and a WARNING log line show it;
raising the canary is refused (FORCE too) until RESET GUARD. A single error
at a small sample does not trip it, nor does an error rate new shares with
old. An alert guard (p99 latency ratio) logs and shows, and changes no
flag. With [fleet], the rollback goes through the flag store and every
instance applies it.
"""

import os
import re
import subprocess
import threading
import time

import psycopg2
import pytest

from conftest import free_port, pgt_bin, unique
from test_fleet import start_fleet, store_db  # noqa: F401 (store_db is a fixture)
from test_http import call
from twopaths import Admin as BaseAdmin, TwoPathLayout, created, wait_for

pytestmark = pytest.mark.proxy_only

TOKEN = "guard-token"
WORKERS = int(os.environ.get("PGT_GUARD_WORKERS", "16"))

OLD_OBJECTS = """
CREATE FUNCTION whereami() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'old'::text $$;
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO users (name, email)
  SELECT 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 50) g;
"""

NEW_OBJECTS = """
CREATE FUNCTION whereami() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'new'::text $$;
CREATE TABLE users_v2 (id integer PRIMARY KEY, full_name text NOT NULL, email text);
INSERT INTO users_v2 (id, full_name, email)
  SELECT g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 50) g;
"""


class Layout(TwoPathLayout):
    def __init__(self, pg):
        super().__init__(pg, "schemas", unique("gd"))

    def objects(self, role):
        return OLD_OBJECTS if role == "old" else NEW_OBJECTS

    def qualified(self, role, table):
        return "%s.%s" % (self.where[role][1], table)


@pytest.fixture
def layout(pg):
    yield from created(Layout(pg))


class Admin(BaseAdmin):
    def guards(self):
        return {r["guard"]: r for r in self.run("SHOW GUARDS")}

    def flag(self, name):
        return {r["name"]: r["value"] for r in self.run("SHOW FLAGS")}[name]

    def error(self, command):
        with pytest.raises(psycopg2.Error) as ei:
            self.run(command)
        return ei.value

    def untagged_paths(self):
        return [c["path"] for c in self.run("SHOW CLIENTS")
                if c["path"] != "admin" and c["application"].startswith("worker")]


def config(guard, canary="50", salt=None, dual_write="off"):
    return ("\n[migration]\nold = old\nnew = new\nsalt = %s\ncanary_key = connection\n"
            "version.v1 = old\nversion.v2 = new\n"
            "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
            "\n[flags]\ncanary_percent = %s\ndual_write = %s\n"
            "\n[guard]\n%s\n" % (salt or unique("salt"), canary, dual_write, guard))


def start(proxy_factory, layout, guard, tmp_path, canary="50", dual_write="off", paths=None):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    port = free_port()
    p = proxy_factory(settings={"http_listen": "127.0.0.1:%d" % port,
                                "http_token_file": str(token)},
                      paths=paths or layout.paths, extra=config(guard, canary, dual_write=dual_write))
    p.http = "http://127.0.0.1:%d" % port
    return p


class Traffic:
    """WORKERS untagged sessions, each running v1 reads in autocommit until
    stopped; records per statement (time, path or None, error text)."""

    def __init__(self, proxy, n=WORKERS, pause=0.02):
        self.proxy = proxy
        self.pause = pause
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.conns = [proxy.connect(application_name="worker%d" % i) for i in range(n)]
        self.threads = [threading.Thread(target=self.run, args=(c, i), daemon=True)
                        for i, c in enumerate(self.conns)]
        for t in self.threads:
            t.start()

    def run(self, conn, i):
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT whereami(), name, email FROM users WHERE id = %s",
                                ((n + i) % 50 + 1,))
                    row = cur.fetchone()
                rec = (time.time(), row[0], None)
            except psycopg2.Error as e:
                rec = (time.time(), None, e.pgcode or str(e))
            with self.lock:
                self.results.append(rec)
            time.sleep(self.pause)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)
        for c in self.conns:
            c.close()


def metric(p, name, guard):
    status, _, text = call(p, "GET", "/metrics")
    assert status == 200
    m = re.search(r'^%s\{guard="%s"[^}]*\} ([\d.e+-]+)$' % (name, guard), text, re.M)
    return float(m.group(1)) if m else None


def compare_users(layout):
    """The two sides equal row by row through the rename map."""
    old = layout.pg.sql("SELECT id, name, email FROM %s ORDER BY id"
                        % layout.qualified("old", "users"))
    new = layout.pg.sql("SELECT id, full_name, email FROM %s ORDER BY id"
                        % layout.qualified("new", "users_v2"))
    assert old == new


def test_error_rate_guard_rolls_the_canary_back(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout, "new_error_rate = 5% rollback\nwindow = 4s\nmin_sample = 100\n",
              tmp_path)
    admin = Admin(p)
    traffic = Traffic(p)
    revoked = False
    try:
        # both paths serve, nothing fails, the guard is judged and ok
        wait_for(lambda: admin.guards()["new_error_rate"]["state"] == "ok", "a judged guard", 15)
        paths = admin.untagged_paths()
        assert "new" in paths and "old" in paths, paths
        assert all(r[2] is None for r in traffic.since(0))
        g = admin.guards()["new_error_rate"]
        assert g["threshold"] == "5%" and g["action"] == "rollback" and g["trips"] == "0"

        # the new path breaks
        layout.pg.sql("REVOKE SELECT ON %s FROM app" % layout.qualified("new", "users_v2"))
        revoked = True
        broke_at = time.time()
        g = wait_for(lambda: (lambda r: r if r["state"] == "tripped" else None)(
            admin.guards()["new_error_rate"]), "the guard to trip", 40)
        tripped_after = time.time() - broke_at
        print("new_error_rate tripped %.2f s after the REVOKE" % tripped_after)
        assert tripped_after < 4 + 3, tripped_after     # within its window (+ ticks, psql)
        assert g["trips"] == "1"
        assert "failed" in g["tripped_by"], g
        assert admin.flag("canary_percent") == "0"
        # every untagged session is back on old at its next boundary, and stops failing
        wait_for(lambda: set(admin.untagged_paths()) == {"old"}, "every worker on old", 10)
        settled = time.time() + 0.5
        time.sleep(1.5)
        after = traffic.since(settled)
        assert after and all(r[1] == "old" and r[2] is None for r in after), after[:5]
        errors = [r for r in traffic.since(broke_at) if r[2] is not None]
        assert errors and all(r[2] == "42501" for r in errors), errors[:3]

        # the history says who (the guard) and why (the figures)
        last = admin.run("SHOW HISTORY")[-1]
        assert last["name"] == "canary_percent" and last["old"] == "50" and last["new"] == "0"
        assert last["surface"] == "guard"
        assert re.match(r"guard new_error_rate: [\d.]+% of \d+ failed > 5%$", last["who"]), last
        assert re.search(r"WARNING -: guard new_error_rate tripped: new: [\d.]+% of \d+ requests "
                         r"failed; old: 0\.00% of \d+", p.log())
        assert metric(p, "pgturnout_guard_tripped", "new_error_rate") == 1
        assert metric(p, "pgturnout_guard_trips_total", "new_error_rate") == 1

        # raising the canary is refused until RESET GUARD, FORCE or not, console or HTTP
        for cmd in ("SET canary_percent = 10", "SET canary_percent = 10 FORCE"):
            e = admin.error(cmd)
            assert "guard new_error_rate rolled the canary back" in str(e)
            assert "RESET GUARD new_error_rate" in str(e)
        status, _, text = call(p, "PUT", "/flags", {"canary_percent": "10"}, token=TOKEN)
        assert status >= 400 and "RESET GUARD" in text, (status, text)
        assert admin.flag("canary_percent") == "0"
        admin.run("SET canary_percent = 0")         # not raising: allowed
        # nor through a reload of [flags]
        text = open(p.config_path).read()
        p.write_config(text.replace("canary_percent = 50", "canary_percent = 60"))
        e = admin.error("RELOAD")
        assert "configuration reload refused" in str(e)
        assert "refused: [flags] canary_percent = 60: refused: guard new_error_rate" in p.log()
        p.write_config(text)
        assert admin.flag("canary_percent") == "0"

        layout.pg.sql("GRANT SELECT ON %s TO app" % layout.qualified("new", "users_v2"))
        revoked = False
        admin.run("RESET GUARD new_error_rate")
        assert admin.guards()["new_error_rate"]["state"] in ("waiting", "ok")
        assert metric(p, "pgturnout_guard_tripped", "new_error_rate") == 0
        admin.run("SET canary_percent = 50")
        wait_for(lambda: "new" in admin.untagged_paths(), "workers back on new", 10)
        time.sleep(2)
        assert admin.guards()["new_error_rate"]["state"] != "tripped"
        e = admin.error("RESET GUARD no_such_guard")
        assert "unknown guard 'no_such_guard'" in str(e)
    finally:
        traffic.stop()
        if revoked:
            layout.pg.sql("GRANT SELECT ON %s TO app" % layout.qualified("new", "users_v2"))
        admin.close()
    compare_users(layout)


def test_one_error_at_a_small_sample_does_not_trip(proxy_factory, layout, tmp_path):
    # canary 0: only the v2-tagged session runs on new
    p = start(proxy_factory, layout, "new_error_rate = 1% rollback\nwindow = 10s\nmin_sample = 200\n",
              tmp_path, canary="0")
    admin = Admin(p)
    old = p.connect(application_name="worker-old")
    v2 = p.connect(application_name="v2", options="-c pgturnout.version=v2")
    try:
        def run(conn, n, fail=False):
            # a v2-tagged session speaks the new schema's SQL
            sql = ("SELECT full_name FROM users_v2 WHERE id = %s" if conn is v2
                   else "SELECT name FROM users WHERE id = %s")
            with conn.cursor() as cur:
                for i in range(n):
                    cur.execute(sql, (i % 50 + 1,))
                    cur.fetchall()
                if fail:
                    with pytest.raises(psycopg2.Error):
                        cur.execute("SELECT 1 / 0")

        run(old, 300)
        run(v2, 20, fail=True)              # 1 failure among 21 requests on new
        time.sleep(2.5)
        g = admin.guards()["new_error_rate"]
        assert g["state"] == "waiting", g
        assert "21 of 200 requests on new" in g["figures"], g
        # a large sample with that one error: 0.2 % is under 1 %
        run(v2, 480)
        time.sleep(1.5)
        g = admin.guards()["new_error_rate"]
        assert g["state"] == "ok" and float(g["value"]) < 1, g
        # errors old has as much as new are no reason to roll back
        for conn, n in ((old, 60), (v2, 30)):
            with conn.cursor() as cur:
                for _ in range(n):
                    with pytest.raises(psycopg2.Error):
                        cur.execute("SELECT 1 / 0")
        run(old, 300)
        time.sleep(1.5)
        g = admin.guards()["new_error_rate"]
        assert g["state"] == "ok", g
        assert "guard new_error_rate tripped" not in p.log()
        assert admin.run("SHOW HISTORY") == [] or all(
            r["surface"] != "guard" for r in admin.run("SHOW HISTORY"))
    finally:
        old.close()
        v2.close()
        admin.close()


def test_alert_guard_logs_and_changes_no_flag(proxy_factory, layout, tmp_path):
    p = start(proxy_factory, layout,
              "p99_latency_ratio = 3 alert\nwindow = 20s\nmin_sample = 50\n", tmp_path, canary="0")
    admin = Admin(p)
    old = p.connect(application_name="worker-old")
    v2 = p.connect(application_name="v2", options="-c pgturnout.version=v2")
    try:
        # new's p99 at 50 ms and more; old's (300 requests: its 3 slowest do not
        # count) stays far under 50 / 3 ms even on a busy machine
        with old.cursor() as cur:
            for _ in range(300):
                cur.execute("SELECT 1")
        with v2.cursor() as cur:
            for _ in range(60):
                cur.execute("SELECT pg_sleep(0.05)")
        g = wait_for(lambda: (lambda r: r if r["state"] == "tripped" else None)(
            admin.guards()["p99_latency_ratio"]), "the alert guard to trip", 10)
        assert g["action"] == "alert" and "ratio" in g["tripped_by"], g
        assert float(g["value"]) > 3
        assert "WARNING -: guard p99_latency_ratio tripped: p99 new" in p.log()
        # an alert changes nothing, and does not hold the canary
        assert all(r["surface"] != "guard" for r in admin.run("SHOW HISTORY"))
        admin.run("SET canary_percent = 5")
        assert admin.flag("canary_percent") == "5"
        admin.run("RESET GUARD p99_latency_ratio")
        assert admin.guards()["p99_latency_ratio"]["trips"] == "1"
        assert admin.guards()["p99_latency_ratio"]["state"] != "tripped"
    finally:
        old.close()
        v2.close()
        admin.close()


def test_fleet_rollback_goes_through_the_flag_store(proxy_factory, layout, tmp_path, pg,
                                                    store_db):  # noqa: F811
    dsn = "host=%s port=%d dbname=%s user=app password=app sslmode=disable" % (
        pg.host, pg.port, store_db)
    ps = start_fleet(proxy_factory, tmp_path, dsn, n=2, paths=layout.paths,
                     extra=config("new_error_rate = 5% rollback\nwindow = 8s\nmin_sample = 50\n",
                                  canary="0"))
    a, b = Admin(ps[0]), Admin(ps[1])
    a.run("SET canary_percent = 50")
    wait_for(lambda: b.flag("canary_percent") == "50", "canary 50 on the other instance", 5)
    traffic = Traffic(ps[0], n=12)
    revoked = False
    try:
        layout.pg.sql("REVOKE SELECT ON %s FROM app" % layout.qualified("new", "users_v2"))
        revoked = True
        # a busy machine (sanitizers, parallel tests) runs the traffic slowly
        wait_for(lambda: a.guards()["new_error_rate"]["state"] == "tripped", "the guard to trip", 40)
        # both instances apply the rollback: it went through the store
        wait_for(lambda: a.flag("canary_percent") == "0" and b.flag("canary_percent") == "0",
                 "canary 0 on both instances", 5)
        rows = pg.sql("SELECT who, surface, name, new_value FROM pgturnout.flag_changes "
                      "ORDER BY epoch DESC LIMIT 1", dbname=store_db)
        who, surface, name, value = rows[0]
        assert who.startswith("guard new_error_rate: ") and surface == "guard"
        assert (name, value) == ("canary_percent", "0")
        wait_for(lambda: set(a.untagged_paths()) == {"old"}, "every worker on old", 10)
        # the instance that tripped refuses to raise it again
        assert "RESET GUARD" in str(a.error("SET canary_percent = 20"))
    finally:
        traffic.stop()
        if revoked:
            layout.pg.sql("GRANT SELECT ON %s TO app" % layout.qualified("new", "users_v2"))
        a.close()
        b.close()
    compare_users(layout)


def test_dual_write_guards(proxy_factory, layout, tmp_path):
    """Mismatches (rows one side lacks) roll the canary back; shadow errors
    (a write the shadow refuses) raise an alert."""
    p = start(proxy_factory, layout,
              "dual_write_mismatches = 2 rollback\nshadow_errors = 1 alert\n", tmp_path,
              canary="50", dual_write="on")
    admin = Admin(p)
    conns = [p.connect(application_name="worker%d" % i) for i in range(8)]
    revoked = False
    try:
        paths = admin.untagged_paths()
        assert "old" in paths and "new" in paths, paths
        # rows 1..10 are missing on new: dual-written UPDATEs of them mismatch
        layout.pg.sql("DELETE FROM %s WHERE id <= 10" % layout.qualified("new", "users_v2"))
        for i, c in enumerate(conns):
            with c.cursor() as cur:
                cur.execute("UPDATE users SET email = %s WHERE id = %s",
                            ("m%d@example.com" % i, i + 1))
        g = wait_for(lambda: (lambda r: r if r["state"] == "tripped" else None)(
            admin.guards()["dual_write_mismatches"]), "the mismatch guard to trip", 5)
        assert re.match(r"\d+ dual-write mismatches in the last minute", g["tripped_by"]), g
        assert admin.flag("canary_percent") == "0"
        last = admin.run("SHOW HISTORY")[-1]
        assert re.match(r"guard dual_write_mismatches: \d+/min > 2$", last["who"]), last
        assert (last["name"], last["old"], last["new"]) == ("canary_percent", "50", "0")
        # each session moves at its next transaction boundary: its next request
        for c in conns:
            with c.cursor() as cur:
                cur.execute("SELECT whereami()")
                assert cur.fetchone()[0] == "old"
        assert set(admin.untagged_paths()) == {"old"}
        assert admin.guards()["shadow_errors"]["state"] == "ok"

        # new refuses the mirrored writes: shadow errors, an alert only
        layout.pg.sql("REVOKE UPDATE ON %s FROM app" % layout.qualified("new", "users_v2"))
        revoked = True
        for i, c in enumerate(conns[:3]):
            with c.cursor() as cur:
                cur.execute("UPDATE users SET email = %s WHERE id = %s",
                            ("s%d@example.com" % i, 20 + i))
        g = wait_for(lambda: (lambda r: r if r["state"] == "tripped" else None)(
            admin.guards()["shadow_errors"]), "the shadow error guard to trip", 5)
        assert g["action"] == "alert" and "shadow errors" in g["tripped_by"], g
        assert [r["who"] for r in admin.run("SHOW HISTORY")].count(last["who"]) == 1
        layout.pg.sql("GRANT UPDATE ON %s TO app" % layout.qualified("new", "users_v2"))
        revoked = False
    finally:
        for c in conns:
            c.close()
        if revoked:
            layout.pg.sql("GRANT UPDATE ON %s TO app" % layout.qualified("new", "users_v2"))
        admin.close()
    # rows 11..50, except the three whose copies new refused, are equal through the rename map
    old = layout.pg.sql("SELECT id, name, email FROM %s WHERE id > 10 AND id NOT IN (20, 21, 22) "
                        "ORDER BY id" % layout.qualified("old", "users"))
    new = layout.pg.sql("SELECT id, full_name, email FROM %s WHERE id > 10 AND id NOT IN (20, 21, 22) "
                        "ORDER BY id" % layout.qualified("new", "users_v2"))
    assert old == new and len(old) == 37


def test_drift_rows_guard_reads_the_last_verify_report(proxy_factory, layout, tmp_path):
    paths = {role: dict(p, user="app", password="app") for role, p in layout.paths.items()}
    p = start(proxy_factory, layout, "drift_rows = 2 alert\n", tmp_path, canary="0", paths=paths)
    admin = Admin(p)
    try:
        time.sleep(1.2)
        assert admin.guards()["drift_rows"]["state"] == "waiting"   # no report yet

        def verify():
            r = subprocess.run([pgt_bin(), "verify", "-c", p.config_path, "--recheck-delay", "100"],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode in (0, 1), r.stdout + r.stderr
            return r.returncode

        assert verify() == 0
        wait_for(lambda: admin.guards()["drift_rows"]["state"] == "ok", "a judged guard", 5)
        assert admin.guards()["drift_rows"]["value"] == "0"
        # two rows differ, one is missing on new: 3 differing rows > 2
        layout.sql("new", "UPDATE users_v2 SET email = 'x' WHERE id IN (3, 4); "
                          "DELETE FROM users_v2 WHERE id = 5")
        assert verify() == 1
        g = wait_for(lambda: (lambda r: r if r["state"] == "tripped" else None)(
            admin.guards()["drift_rows"]), "the drift guard to trip", 5)
        assert g["tripped_by"].startswith("3 differing rows in the last verify report"), g
        assert admin.flag("canary_percent") == "0"
    finally:
        admin.close()
